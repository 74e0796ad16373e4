"""Pruning: masks and sparsity, smaller shapes that save and load, recovery, prune then quantise."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from genarch.errors import InvalidInputError
from genarch.models import GPT
from genarch.models.compression import (
    QuantizedLinear,
    prune_magnitude,
    prune_structured,
    quantize,
    recover,
    sparsity,
)
from genarch.models.decode_step import step_function
from models.gpt_testing import block, tiny_model  # type: ignore[import-not-found]

FIELDS = [{}, {"positions": "rotary", "norm": "rmsnorm", "mlp": "swiglu", "n_kv_head": 2}]


def tiny(**fields: Any) -> GPT:
    base = {"vocab_size": 128, "context_length": 32, "n_layer": 2, "n_head": 4, "n_embd": 64}
    return tiny_model(0, **(base | fields))


def test_magnitude_pruning_zeroes_the_smallest_weights_and_reports_sparsity() -> None:
    model = tiny()
    before = block(model, 0).mlp.up.weight.detach().abs().clone()
    masks = prune_magnitude(model, 0.3)
    report = sparsity(model)
    assert report.sparsity == pytest.approx(0.3, abs=1e-3)
    assert all(v == pytest.approx(0.3, abs=1e-3) for v in report.per_layer.values())
    mask = masks.masks["blocks.0.mlp.up.weight"]
    assert before[~mask].max() <= before[mask].min()  # the smallest ones went
    assert block(model, 0).mlp.up.weight.shape == before.shape  # shapes unchanged


def test_recovery_keeps_pruned_weights_at_zero_and_lowers_the_loss() -> None:
    model = tiny().train()
    masks = prune_magnitude(model, 0.5)
    tokens = torch.arange(3000) % 17  # a pattern a tiny model learns in a few steps
    report = recover(
        model, tokens, steps=15, batch_size=4, block_size=16, learning_rate=3e-3, masks=masks
    )
    assert sparsity(model).sparsity >= 0.5 - 1e-3
    assert report.train_loss[-1] < report.train_loss[0]


@pytest.mark.parametrize("fields", FIELDS)
def test_structured_pruning_shrinks_tensors(fields: dict[str, object]) -> None:
    model = tiny(**fields)
    pruned = prune_structured(model, heads=0.5, mlp=0.3)
    config = pruned.config
    assert config.head_dim == model.config.head_dim
    assert config.kv_heads == model.config.kv_heads // 2
    assert config.n_head == model.config.n_head // 2
    assert config.mlp_hidden == model.config.hidden_width - math.floor(
        0.3 * model.config.hidden_width
    )
    attn = block(pruned, 0).attn
    assert attn.proj.weight.shape == (64, config.n_head * config.head_dim)
    assert pruned.num_parameters() < model.num_parameters()
    assert model.config.n_head == 4  # the original is untouched


def test_structured_pruning_keeps_the_function_of_kept_parts() -> None:
    """With nothing pruned the model is the same; removing an all-zero channel changes nothing."""
    model = tiny()
    idx = torch.randint(0, 128, (2, 10), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(prune_structured(model)(idx), model(idx))
        for index in range(2):  # 20 channels of every block write nothing
            block(model, index).mlp.down.weight[:, :20] = 0
        pruned = prune_structured(model, mlp=20 / 256)
        assert torch.allclose(pruned(idx), model(idx), atol=1e-5)


@pytest.mark.parametrize("fields", FIELDS)
def test_pruned_then_quantised_model_saves_loads_and_decodes_fast(
    tmp_path: Path, fields: dict[str, object]
) -> None:
    model = quantize(prune_structured(tiny(**fields), heads=0.25, mlp=0.3), "int8")
    model.save(tmp_path / "m")
    loaded = GPT.load(tmp_path / "m").eval()
    assert loaded.config == model.config
    assert isinstance(block(loaded, 0).mlp.up, QuantizedLinear)
    idx = torch.randint(0, 128, (2, 8), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(loaded(idx), model(idx))
        step = step_function(loaded)
        assert getattr(step, "func", None).__name__ == "_fast_step"  # type: ignore[union-attr]
        cache = loaded.new_cache(2, 16)
        loaded.hidden_states(idx[:, :7], cache=cache)
        assert torch.allclose(step(idx[:, 7], cache, None, None), loaded(idx)[:, -1], atol=1e-4)


@pytest.mark.parametrize("amount", [-0.1, 1.0, 1.5, float("nan"), "half", True])
def test_amounts_outside_zero_one_raise_invalid_input(amount: object) -> None:
    with pytest.raises(InvalidInputError, match=r"\[0, 1\)"):
        prune_magnitude(tiny(), amount)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match=r"\[0, 1\)"):
        prune_structured(tiny(), mlp=amount)  # type: ignore[arg-type]


def test_quantised_models_are_not_pruned() -> None:
    with pytest.raises(InvalidInputError, match="prune the fp32 model first"):
        prune_structured(quantize(tiny(), "int8"), heads=0.5)
