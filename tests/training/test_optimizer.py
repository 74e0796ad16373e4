"""ObjectiveOptimizer and Trainer keep the Optimizer contract for one and two players."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from genarch.errors import ConfigError, InvalidInputError
from genarch.protocols import Optimizer
from genarch.testing import check_optimizer
from genarch.training import (
    LanguageModeling,
    ObjectiveOptimizer,
    OptimizerConfig,
    Trainer,
    adamw,
    parameter_groups,
    sgd,
    split_batch,
)
from training.tiny_models import TinyDPO, TinyGAN, TinyLM, dpo_data, gan_data, lm_data, seeded


def lm_batches() -> list[torch.Tensor]:
    data = lm_data(24)
    return [data[0:8], data[8:16], data[16:24]]


def test_objective_optimizer_passes_the_conformance_kit() -> None:
    def make() -> ObjectiveOptimizer[Any]:
        model = seeded(0, TinyLM)
        return ObjectiveOptimizer(LanguageModeling(model), optimizer=adamw(1e-2), seed=3)

    check_optimizer(make, lm_batches(), invalid_batches=[torch.zeros(4, 9), torch.zeros(4, 1)])


def test_trainer_passes_the_conformance_kit_for_language_modelling() -> None:
    def make() -> Trainer:
        model = seeded(0, TinyLM)
        return Trainer(LanguageModeling(model), batch_size=8, accumulation_steps=2, progress=False)

    assert isinstance(make(), Optimizer)
    check_optimizer(make, lm_batches(), invalid_batches=[torch.zeros(4, 9), "tokens"])


def test_trainer_drives_a_two_player_gan() -> None:
    data = gan_data(24)

    def make() -> Trainer:
        return Trainer(seeded(1, TinyGAN), batch_size=8, progress=False)

    check_optimizer(make, [data[0:8], data[8:16], data[16:24]], invalid_batches=[torch.zeros(8, 3)])
    report = make().step(data[:8])
    assert set(report.losses) == {"discriminator", "generator"}


def test_trainer_drives_dpo_and_leaves_the_reference_frozen() -> None:
    data = dpo_data(12)
    batches = [{k: v[i : i + 4] for k, v in data.items()} for i in (0, 4, 8)]

    def make() -> Trainer:
        return Trainer(
            TinyDPO(seeded(2, lambda: TinyLM(dropout=0.0))),
            batch_size=4,
            optimizer=OptimizerConfig(learning_rate=1e-2),
            progress=False,
        )

    check_optimizer(make, batches, invalid_batches=[{"chosen": data["chosen"]}])
    trainer = make()
    objective = trainer.objective
    assert isinstance(objective, TinyDPO)
    reference = {k: v.clone() for k, v in objective.reference.state_dict().items()}
    losses = [trainer.step(batches[0]).losses["policy"] for _ in range(8)]
    assert losses[-1] < losses[0]
    for key, value in objective.reference.state_dict().items():
        assert torch.equal(value, reference[key]), f"the frozen reference changed at {key}"


def test_accumulation_gives_the_same_update_as_one_big_batch() -> None:
    batch = lm_data(8)
    results = []
    for steps in (1, 2, 4):
        model = seeded(0, lambda: TinyLM(dropout=0.0))
        trainer = Trainer(LanguageModeling(model), batch_size=8, accumulation_steps=steps)
        loss = trainer.step(batch).losses["model"]
        results.append((loss, torch.cat([p.detach().reshape(-1) for p in model.parameters()])))
    for loss, params in results[1:]:
        assert loss == pytest.approx(results[0][0], rel=1e-5)
        torch.testing.assert_close(params, results[0][1], rtol=1e-5, atol=1e-6)


@given(rows=st.integers(1, 40), pieces=st.integers(1, 8))
def test_split_batch_covers_every_row_once_with_weights_summing_to_one(
    rows: int, pieces: int
) -> None:
    batch = (torch.arange(rows), {"y": torch.arange(rows) * 2})
    if pieces > rows:
        with pytest.raises(InvalidInputError):
            split_batch(batch, pieces)
        return
    parts = split_batch(batch, pieces)
    assert len(parts) == pieces
    assert sum(w for _, w in parts) == pytest.approx(1.0)
    assert torch.equal(torch.cat([p[0] for p, _ in parts]), torch.arange(rows))
    assert torch.equal(torch.cat([p[1]["y"] for p, _ in parts]), torch.arange(rows) * 2)


def test_weight_decay_skips_biases_and_norm_gains() -> None:
    model = TinyLM()
    groups = parameter_groups(list(model.parameters()), weight_decay=0.1)
    decayed, plain = groups
    assert decayed["weight_decay"] == 0.1
    assert plain["weight_decay"] == 0.0
    assert all(p.ndim >= 2 for p in decayed["params"])
    assert {id(p) for p in plain["params"]} == {
        id(model.norm.weight), id(model.norm.bias), id(model.mix.bias), id(model.head.bias)
    }  # fmt: skip


def test_sgd_with_momentum_trains() -> None:
    model = seeded(0, lambda: TinyLM(dropout=0.0))
    trainer = Trainer(
        LanguageModeling(model),
        optimizer=OptimizerConfig(name="sgd", learning_rate=0.5, momentum=0.9),
        batch_size=8,
    )
    batch = lm_data(8)
    first = trainer.step(batch).losses["model"]
    for _ in range(30):
        last = trainer.step(batch).losses["model"]
    assert last < first / 2


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: adamw(-1e-3), "learning_rate"),
        (lambda: adamw(1e-3, weight_decay=-1), "weight_decay"),
        (lambda: sgd(1e-2, momentum=1.0), "momentum"),
        (lambda: OptimizerConfig(learning_rate=0), "learning_rate"),
        (lambda: Trainer(LanguageModeling(TinyLM()), batch_size=0), "batch_size"),
        (
            lambda: Trainer(LanguageModeling(TinyLM()), optimizer={"learning_rate": -1}),
            "learning_rate",
        ),
        (
            lambda: Trainer(LanguageModeling(TinyLM()), batch_size=2, accumulation_steps=4),
            "accumulation",
        ),
        (lambda: Trainer(LanguageModeling(TinyLM()), eval_player="critic"), "critic"),
        (lambda: Trainer(LanguageModeling(TinyLM()), max_grad_norm=0), "max_grad_norm"),
        (lambda: Trainer(LanguageModeling(TinyLM()), bogus=1), "bogus"),
        (lambda: LanguageModeling(TinyLM(), label_smoothing=1.0), "label_smoothing"),
    ],
)
def test_bad_settings_raise_a_clear_config_error(make: Any, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        make()


def test_a_model_without_trainable_parameters_is_refused() -> None:
    model = TinyLM().requires_grad_(False)
    with pytest.raises(ConfigError, match="no trainable parameters"):
        Trainer(LanguageModeling(model))
