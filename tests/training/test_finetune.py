"""Freezing by name and LoRA adapters: merge, unmerge, save alone, train alone."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from genarch.errors import IntegrityError, InvalidInputError, NotFoundError
from genarch.training import (
    LanguageModeling,
    LoRAConfig,
    LoRALinear,
    Trainer,
    apply_lora,
    count_parameters,
    freeze,
    load_adapters,
    lora_state_dict,
    merge_lora,
    save_adapters,
    unfreeze,
    unmerge_lora,
)
from training.tiny_models import TinyLM, lm_data, seeded


def trained_adapters(model: TinyLM) -> None:
    """Give the adapters non-zero weights so that merging changes something."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, LoRALinear):
                module.lora_b.normal_(0, 0.5)


def test_freeze_by_pattern_stops_exactly_those_parameters_training() -> None:
    model = TinyLM()
    frozen = freeze(model, ["tok.*", "*.bias"])
    assert frozen == ["tok.weight", "norm.bias", "mix.bias", "head.bias"]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = Trainer(LanguageModeling(model), batch_size=8, progress=False)
    trainer.step(lm_data(8))
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]) == (name in frozen), name
    assert unfreeze(model, ["tok.weight"]) == ["tok.weight"]
    assert model.tok.weight.requires_grad


def test_a_pattern_that_matches_nothing_is_an_error() -> None:
    with pytest.raises(InvalidInputError, match="matches no parameter"):
        freeze(TinyLM(), ["blocks.*"])
    with pytest.raises(InvalidInputError, match=r"matches no nn\.Linear"):
        apply_lora(TinyLM(), ["attention"])


def test_lora_leaves_only_the_adapters_trainable_and_starts_equal() -> None:
    model = seeded(0, lambda: TinyLM(dropout=0.0))
    batch = lm_data(4)[:, :-1]
    before = model(batch)
    assert apply_lora(model, ["mix", "head"], LoRAConfig(rank=2)) == ["mix", "head"]
    torch.testing.assert_close(model(batch), before)  # B starts at zero
    count = count_parameters(model)
    assert count.trainable == 2 * (16 + 16) + 2 * (16 + 16)
    assert count.fraction == count.trainable / count.total < 0.2
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {
        "mix.lora_a", "mix.lora_b", "head.lora_a", "head.lora_b"
    }  # fmt: skip


@given(rank=st.integers(1, 6), alpha=st.floats(0.5, 32), seed=st.integers(0, 2**16))
def test_merging_adapters_keeps_the_outputs_and_unmerging_restores_the_weights(
    rank: int, alpha: float, seed: int
) -> None:
    model = seeded(seed, lambda: TinyLM(dropout=0.0))
    apply_lora(model, ["mix", "head"], LoRAConfig(rank=rank, alpha=alpha))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        trained_adapters(model)
    batch = lm_data(4, seed=seed)[:, :-1]
    base = model.head.base.weight.detach().clone()  # type: ignore[union-attr]
    expected = model(batch)
    merge_lora(model)
    assert not torch.equal(model.head.base.weight, base)  # type: ignore[union-attr]
    torch.testing.assert_close(model(batch), expected, rtol=1e-4, atol=1e-4)
    unmerge_lora(model)
    torch.testing.assert_close(model.head.base.weight, base, rtol=0, atol=1e-5)  # type: ignore[union-attr]
    # The weights are back within float rounding; with alpha / rank up to 32 that
    # rounding is amplified in the outputs, so they get the merged tolerance.
    torch.testing.assert_close(model(batch), expected, rtol=1e-4, atol=1e-4)


def test_adapters_save_alone_and_load_into_a_fresh_copy_of_the_base(tmp_path: Path) -> None:
    base = seeded(0, lambda: TinyLM(dropout=0.0))
    tuned = seeded(0, lambda: TinyLM(dropout=0.0))
    apply_lora(tuned, ["mix"], LoRAConfig(rank=3, alpha=6))
    trained_adapters(tuned)
    save_adapters(tuned, tmp_path / "adapters")
    assert sorted(p.name for p in (tmp_path / "adapters").iterdir()) == [
        "SHA256SUMS",
        "adapters.json",
        "adapters.safetensors",
    ]
    assert load_adapters(base, tmp_path / "adapters") == ["mix"]
    batch = lm_data(4)[:, :-1]
    torch.testing.assert_close(base(batch), tuned(batch))
    assert set(lora_state_dict(base)) == {"mix.lora_a", "mix.lora_b"}


def test_adapters_for_another_model_are_refused(tmp_path: Path) -> None:
    tuned = TinyLM(width=8)
    apply_lora(tuned, ["mix"])
    save_adapters(tuned, tmp_path / "adapters")
    with pytest.raises(IntegrityError, match="does not fit"):
        load_adapters(TinyLM(width=16), tmp_path / "adapters")
    with pytest.raises(NotFoundError):
        load_adapters(TinyLM(), tmp_path / "nothing")


def test_lora_fine_tuning_lowers_the_loss_while_the_base_stays_fixed() -> None:
    model = seeded(0, lambda: TinyLM(dropout=0.0))
    apply_lora(model, ["mix", "head"], LoRAConfig(rank=4, alpha=8, dropout=0.1))
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    trainer = Trainer(
        LanguageModeling(model), batch_size=8, max_steps=40, optimizer={"learning_rate": 0.05},
        progress=False,
    )  # fmt: skip
    report = trainer.fit(lm_data(32))
    assert report.train_loss[-1] < report.train_loss[0] * 0.8
    for name, value in model.named_parameters():
        if name in frozen:
            assert torch.equal(value, frozen[name]), name
