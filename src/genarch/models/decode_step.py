"""One decoding step of a :class:`~genarch.models.GPT` without module dispatch.

Decoding a small model one token per step costs, besides reading every weight
once, ~100 small kernels per step at batch 1; calling them through
``nn.Module.__call__``, with the views a whole-sequence ``forward`` makes,
made a step about a fifth slower on the CPU we benchmark on (2.97 against
2.46 ms per token, ``benchmarks/bench_generate.py``'s model).
:func:`step_function` returns a function that runs the same arithmetic as
``GPT.hidden_states`` + ``lm_head`` for one new token per row (or a few, as
when speculative decoding verifies a draft's proposals in one pass), calling
``torch.nn.functional`` directly on the modules' parameters. It collects the
parameter tensors once, when it is made (the generation engine makes one per
call), so in-place updates such as an optimizer's show, but a replaced
module or parameter needs a new step function.

It is only used for a stock model: a :class:`~genarch.models.GPT` (not a
subclass) whose sub-modules are all the standard ones or the quantised
linear layers of :func:`~genarch.models.compression.quantize` (called through
their packed kernels), with no forward hooks. A model with LoRA adapters,
other replaced layers or hooks gets the general path, which calls every module.

Examples:
    >>> import torch
    >>> from genarch.models import GPT
    >>> torch.manual_seed(0) and None
    >>> model = GPT(vocab_size=50, context_length=16, n_layer=2, n_head=2, n_embd=16).eval()
    >>> step, cache = step_function(model), model.new_cache(1, 16)
    >>> with torch.no_grad():
    ...     prompt = model.lm_head(model.hidden_states(torch.tensor([[1, 2, 3]]), cache=cache))
    ...     logits = step(torch.tensor([4]), cache)  # the 4th token
    >>> logits.shape, cache.length
    (torch.Size([1, 50]), 4)
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import NamedTuple

import torch
import torch.nn.functional as F  # noqa: N812 - the usual torch spelling
from torch import Tensor, nn

from genarch.errors import InvalidInputError
from genarch.models.compression.layers import QuantizedLinear, linear_kernel
from genarch.models.transformer import GPT, KVCache
from genarch.models.transformer_layers import (
    MLP,
    Block,
    CausalSelfAttention,
    attention_mask,
    rotate,
    swiglu,
)

__all__ = ["StepFunction", "decoding", "step_function"]

#: ``step(tokens, cache, positions | None, key_mask (B, S) | None) -> logits``: run the
#: model on one new token per row (``tokens (B,)``, ``positions (B,)`` -> ``(B, V)``) or
#: on a few (``tokens (B, T)``, ``positions (B, T)`` -> ``(B, T, V)``), appending them
#: to ``cache``.
StepFunction = Callable[[Tensor, KVCache, Tensor | None, Tensor | None], Tensor]

_STOCK_MODULES = (
    GPT,
    Block,
    CausalSelfAttention,
    MLP,
    nn.ModuleList,
    nn.Linear,
    QuantizedLinear,
    nn.Embedding,
    nn.LayerNorm,
    nn.RMSNorm,
)


def step_function(model: GPT) -> StepFunction:
    """The fastest exact way to run ``model`` on one new token per row, or on a few.

    Returns ``step(tokens, cache, positions=None, key_mask=None)``: the
    logits ``(B, vocab_size)`` of ``tokens (B,)`` appended to ``cache``, or
    ``(B, T, vocab_size)`` of ``tokens (B, T)`` (speculative decoding verifies
    a draft's ``T - 1`` tokens this way), where ``positions`` (``(B,)`` or
    ``(B, T)``) and ``key_mask (B, S)`` are as in
    :meth:`GPT.hidden_states <genarch.models.GPT.hidden_states>`. Call it once
    per generation call, not per step: it walks the modules and collects every
    layer's parameters (the tensors themselves, so in-place updates show).
    """
    if _is_stock(model):
        layers = [_Layer.of(block) for block in model.blocks]
        return functools.partial(_fast_step, model, layers, linear_kernel(model.lm_head))
    return functools.partial(_module_step, model)


class _Layer(NamedTuple):
    """One block's parameters, collected once so a step reads no module attributes."""

    norm1: Callable[[Tensor], Tensor]
    qkv: Callable[[Tensor], Tensor]
    proj: Callable[[Tensor], Tensor]
    norm2: Callable[[Tensor], Tensor]
    up: Callable[[Tensor], Tensor]
    down: Callable[[Tensor], Tensor]
    activation: Callable[[Tensor], Tensor]

    @classmethod
    def of(cls, block: nn.Module) -> _Layer:
        assert isinstance(block, Block)
        attn, mlp = block.attn, block.mlp
        linear = linear_kernel  # F.linear on the parameters, or a quantised layer's kernel
        activation = swiglu if mlp.gated else functools.partial(F.gelu, approximate=mlp.approximate)
        return cls(
            _normaliser(block.norm1),
            linear(attn.qkv),
            linear(attn.proj),
            _normaliser(block.norm2),
            linear(mlp.up),
            linear(mlp.down),
            activation,
        )


def _normaliser(norm: nn.Module) -> Callable[[Tensor], Tensor]:
    if isinstance(norm, nn.LayerNorm):
        return functools.partial(
            F.layer_norm,
            normalized_shape=norm.normalized_shape,
            weight=norm.weight,
            bias=norm.bias,
            eps=norm.eps,
        )
    assert isinstance(norm, nn.RMSNorm)
    return functools.partial(
        F.rms_norm, normalized_shape=norm.normalized_shape, weight=norm.weight, eps=norm.eps
    )


def _is_stock(model: nn.Module) -> bool:
    global_hooks = (
        getattr(nn.modules.module, "_global_forward_hooks", None),
        getattr(nn.modules.module, "_global_forward_pre_hooks", None),
    )
    return (
        type(model) is GPT
        and not model.training
        and not any(global_hooks)
        and all(
            type(m) in _STOCK_MODULES and not (m._forward_hooks or m._forward_pre_hooks)
            for m in model.modules()
        )
    )


def _module_step(
    model: GPT,
    tokens: Tensor,
    cache: KVCache,
    positions: Tensor | None = None,
    key_mask: Tensor | None = None,
) -> Tensor:
    if tokens.dim() == 2:
        hidden = model.hidden_states(tokens, positions=positions, cache=cache, key_mask=key_mask)
        return model.lm_head(hidden)  # type: ignore[no-any-return]
    hidden = model.hidden_states(
        tokens[:, None],
        positions=None if positions is None else positions[:, None],
        cache=cache,
        key_mask=key_mask,
    )
    return model.lm_head(hidden[:, -1])  # type: ignore[no-any-return]


def _fast_step(
    model: GPT,
    layers: list[_Layer],
    lm_head: Callable[[Tensor], Tensor],
    tokens: Tensor,
    cache: KVCache,
    positions: Tensor | None = None,
    key_mask: Tensor | None = None,
) -> Tensor:
    config = model.config
    start, steps = cache.length, 1 if tokens.dim() == 1 else tokens.shape[1]
    if start + steps > cache.max_length:
        raise InvalidInputError(
            f"the sequence would have {start + steps} positions, but at most {cache.max_length} fit"
        )
    rows, size = tokens.shape[0], config.head_dim
    heads = [config.n_head, config.kv_heads, config.kv_heads]
    grouped = config.kv_heads != config.n_head
    # Positions: one for all rows (an int or a slice), or one per token (a tensor).
    at = (start if steps == 1 else slice(start, start + steps)) if positions is None else positions
    x = model.wte.weight[tokens]  # (B, C) or (B, T, C)
    if model.wpe is not None:
        x = x + model.wpe.weight[at]
    if steps > 1:
        x = x.view(rows * steps, -1)  # the linear layers see one row per token
    rotary = None
    if config.positions == "rotary":
        cos, sin = model.get_buffer("rope_cos")[at], model.get_buffer("rope_sin")[at]
        shape = (-1, 1, steps, size // 2)  # (B or 1, 1, T, hs/2)
        rotary = (cos.view(shape), sin.view(shape))
    mask = attention_mask(start, steps, key_mask, x.device)
    causal = mask is None and steps > 1  # a plain prefill from slot 0

    # (B*T, heads*hs) <-> (B, heads, T, hs); one token per row needs no transpose, and
    # at batch 1 each small op costs more than its arithmetic (see genarch._int8)
    def split_heads(t: Tensor) -> Tensor:
        if steps == 1:
            return t.view(rows, -1, 1, size)
        return t.view(rows, steps, -1, size).transpose(1, 2)

    def join_heads(t: Tensor) -> Tensor:
        return t.view(rows, -1) if steps == 1 else t.transpose(1, 2).reshape(rows * steps, -1)

    for keys, values, layer in zip(cache.keys, cache.values, layers, strict=True):
        q, k, v = split_heads(layer.qkv(layer.norm1(x))).split_with_sizes(heads, dim=1)
        if rotary is not None:
            q, k = rotate(q, *rotary), rotate(k, *rotary)
        keys.narrow(2, start, steps).copy_(k)  # keys, values: (B, nkv, S, hs)
        values.narrow(2, start, steps).copy_(v)
        y = F.scaled_dot_product_attention(
            q,
            keys.narrow(2, 0, start + steps),
            values.narrow(2, 0, start + steps),
            attn_mask=mask,
            is_causal=causal,
            enable_gqa=grouped,
        )  # (B, nh, T, hs)
        x = x + layer.proj(join_heads(y))
        x = x + layer.down(layer.activation(layer.up(layer.norm2(x))))
    cache.length = start + steps
    logits = lm_head(model.norm_f(x))
    return logits if tokens.dim() == 1 else logits.view(rows, steps, -1)


@contextlib.contextmanager
def decoding(model: nn.Module) -> Iterator[None]:
    """Inference mode with dropout off for the block; then the model's training flag is restored."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        model.train(was_training)
