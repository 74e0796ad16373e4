"""The module-free decoding step equals the general path, and is only used for stock models."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import NamedTuple

import pytest
import torch

from genarch.errors import InvalidInputError
from genarch.models import GPT, KVCache
from genarch.models.decode_step import _fast_step, _module_step, step_function
from genarch.training import apply_lora
from models.gpt_testing import VARIANTS, one_torch_thread, tiny_model


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


class Prompts(NamedTuple):
    """Two prompts (3 and 5 tokens) prefilled into an 11-slot cache, left-padded or not."""

    cache: KVCache
    last_logits: torch.Tensor  # (2, V)
    key_mask: torch.Tensor | None  # (2, 11)
    lengths: torch.Tensor | None  # real tokens per row when padded


def prefilled(model: GPT, padded: bool) -> Prompts:
    short, long = torch.tensor([[5, 6, 7]]), torch.tensor([[9, 8, 7, 6, 5]])
    if padded:
        idx = torch.cat([torch.cat([torch.zeros(1, 2, dtype=torch.long), short], 1), long])
        key_mask = torch.ones(2, 11, dtype=torch.bool)
        key_mask[0, :2] = False
        lengths = torch.tensor([3, 5])
        positions = (torch.arange(5) - (5 - lengths)[:, None]).clamp(min=0)
    else:
        idx, key_mask, positions, lengths = long.repeat(2, 1), None, None, None
    cache = model.new_cache(2, 11)
    with torch.no_grad():
        hidden = model.hidden_states(idx, positions=positions, cache=cache, key_mask=key_mask)
        return Prompts(cache, model.lm_head(hidden[:, -1]), key_mask, lengths)


def decode(step: object, model: GPT, padded: bool) -> torch.Tensor:
    """Prefill a left-padded batch of two prompts, then decode 6 tokens; the logits of each step."""
    cache, logits, key_mask, lengths = prefilled(model, padded)
    outputs = []
    with torch.no_grad():
        for i in range(6):
            at = None if lengths is None else lengths + i
            logits = step(logits.argmax(-1), cache, at, key_mask)  # type: ignore[operator]
            outputs.append(logits)
    assert cache.length == 11
    return torch.stack(outputs)


@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("name", list(VARIANTS))
def test_fast_step_equals_the_module_path(name: str, padded: bool) -> None:
    model = tiny_model(**VARIANTS[name])
    assert step_function(model).func is _fast_step  # type: ignore[attr-defined]
    fast = decode(step_function(model), model, padded)
    general = decode(partial(_module_step, model), model, padded)
    torch.testing.assert_close(fast, general, rtol=0, atol=1e-5)


def test_lora_hooks_subclasses_and_training_mode_take_the_module_path() -> None:
    def path(model: GPT) -> object:
        return step_function(model).func  # type: ignore[attr-defined]

    adapted = tiny_model()
    apply_lora(adapted, ["*.attn.qkv"])
    assert path(adapted) is _module_step

    hooked, calls = tiny_model(), []
    hooked.blocks[0].mlp.register_forward_hook(lambda *args: calls.append(1))
    assert path(hooked) is _module_step
    decode(step_function(hooked), hooked, padded=False)
    assert calls  # the hook saw every step

    class Custom(GPT):
        pass

    assert path(Custom(tiny_model().config).eval()) is _module_step
    assert path(tiny_model().train()) is _module_step


def test_a_full_cache_is_refused() -> None:
    model = tiny_model()
    cache = model.new_cache(1, 3)
    with torch.no_grad():
        model.hidden_states(torch.tensor([[1, 2, 3]]), cache=cache)
        with pytest.raises(InvalidInputError, match="at most 3 fit"):
            step_function(model)(torch.tensor([4]), cache, None, None)


def several(step: object, model: GPT, padded: bool) -> torch.Tensor:
    """Prefill as :func:`decode` does, then feed 3 tokens per row in one call, then 3 more."""
    cache, _, key_mask, lengths = prefilled(model, padded)
    outputs = []
    with torch.no_grad():
        for fed in (torch.tensor([[1, 2, 3], [4, 5, 6]]), torch.tensor([[7, 8, 9], [9, 10, 11]])):
            at = None if lengths is None else lengths[:, None] + torch.arange(fed.shape[1])
            outputs.append(step(fed, cache, at, key_mask))  # type: ignore[operator]
            lengths = None if lengths is None else lengths + fed.shape[1]
    assert cache.length == 11
    return torch.cat(outputs, dim=1)


@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("name", [*VARIANTS, "int8-dynamic"])
def test_several_tokens_per_row_equal_the_module_path(name: str, padded: bool) -> None:
    from genarch.models.compression import quantize

    if name == "int8-dynamic":
        model = quantize(tiny_model(), "int8", activations="dynamic")
    else:
        model = tiny_model(**VARIANTS[name])
    assert step_function(model).func is _fast_step  # type: ignore[attr-defined]
    fast = several(step_function(model), model, padded)
    general = several(partial(_module_step, model), model, padded)
    assert fast.shape == (2, 6, model.config.vocab_size)
    torch.testing.assert_close(fast, general, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_several_tokens_from_an_empty_cache_equal_the_whole_sequence_forward(name: str) -> None:
    model = tiny_model(**VARIANTS[name])
    idx = torch.tensor([[3, 1, 4, 1, 5, 9], [2, 6, 5, 3, 5, 8]])
    with torch.no_grad():
        logits = step_function(model)(idx, model.new_cache(2, 8), None, None)
        torch.testing.assert_close(logits, model(idx), rtol=0, atol=1e-5)
