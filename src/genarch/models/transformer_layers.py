"""The layers of :class:`~genarch.models.transformer.GPT`: attention, MLP, block, masks.

:mod:`genarch.models.transformer` assembles these into the model;
:mod:`genarch.models.decode_step` reuses the functions (rotation, SwiGLU, the
attention mask) for its module-free decoding step, which
is why they live in a module of their own. In reading order:

* normalisation (:func:`norm_layer`: LayerNorm as GPT-2, or RMSNorm) and
  rotary position embeddings (:func:`rotary_tables`, :func:`rotate`; Su et al.,
  2021, "RoFormer");
* :class:`CausalSelfAttention` — multi-head or grouped-query (Ainslie et al.,
  2023) causal attention over an optional KV cache, through PyTorch's
  :func:`~torch.nn.functional.scaled_dot_product_attention` (also for the
  single query of a decoding step: on PyTorch 2.13 its CPU kernel beat two
  batched products and a softmax at every cache length we measured, 16 to
  512 slots, batch 1 and 8);
* :class:`MLP` — GELU or SwiGLU (Shazeer, 2020, "GLU Variants Improve Transformer");
* :class:`Block` — pre-norm attention then pre-norm MLP, each added to the residual;
* :func:`dropout` (free when off) and :func:`attention_mask`, the two
  helpers every forward pass calls.

Shapes follow nanoGPT's letters: ``B`` batch, ``T`` new positions, ``S`` cache
slots, ``C`` channels (``n_embd``), ``nh``/``nkv`` query/key-value heads and
``hs`` the head size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F  # noqa: N812 - the usual torch spelling
from torch import Tensor, nn

if TYPE_CHECKING:  # the config is defined with the model that it configures
    from genarch.models.transformer import GPTConfig

__all__ = [
    "MLP",
    "Block",
    "CausalSelfAttention",
    "attention_mask",
    "dropout",
    "norm_layer",
    "rotary_tables",
    "rotate",
    "swiglu",
]


def norm_layer(config: GPTConfig) -> nn.Module:
    """The normalisation ``config.norm`` names, over ``n_embd`` channels."""
    if config.norm == "rmsnorm":
        return nn.RMSNorm(config.n_embd, eps=config.norm_eps)
    return nn.LayerNorm(config.n_embd, eps=config.norm_eps, bias=config.bias)


def rotary_tables(config: GPTConfig) -> tuple[Tensor, Tensor]:
    """cos and sin of every (position, frequency) pair: two ``(context_length, head_dim/2)`` tables."""
    half = config.head_dim // 2
    frequencies = config.rope_base ** (-torch.arange(half, dtype=torch.float64) / half)
    angles = torch.outer(torch.arange(config.context_length, dtype=torch.float64), frequencies)
    return angles.cos().float(), angles.sin().float()


def rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate pairs ``(x[i], x[i + hs/2])`` of ``x (B, nh, T, hs)`` by the angles in cos/sin ``(B, 1, T, hs/2)``."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


class CausalSelfAttention(nn.Module):
    """Multi-head (or grouped-query) causal self-attention with an optional KV cache."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head, self.n_kv_head, self.head_dim = config.n_head, config.kv_heads, config.head_dim
        # Queries, keys and values in one matmul: [q (nh*hs) | k (nkv*hs) | v (nkv*hs)].
        self.qkv = nn.Linear(
            config.n_embd, (self.n_head + 2 * self.n_kv_head) * self.head_dim, bias=config.bias
        )
        self.proj = nn.Linear(self.n_head * self.head_dim, config.n_embd, bias=config.bias)
        self.dropout = config.dropout

    def forward(
        self,
        x: Tensor,
        rotary: tuple[Tensor, Tensor] | None,
        cache: tuple[Tensor, Tensor] | None,
        start: int,
        mask: Tensor | None,
    ) -> Tensor:
        B, T, _ = x.shape  # noqa: N806 - batch, time as in the papers
        nh, nkv, hs = self.n_head, self.n_kv_head, self.head_dim
        # split, not three slices: its backward joins the gradients in one copy, where each
        # slice's backward would fill a zero tensor of the full width and add them up.
        q, k, v = (
            part.view(B, T, -1, hs).transpose(1, 2)  # (B, heads, T, hs)
            for part in self.qkv(x).split((nh * hs, nkv * hs, nkv * hs), dim=-1)
        )
        if rotary is not None:
            q, k = rotate(q, *rotary), rotate(k, *rotary)
        if cache is not None:  # write this step's keys and values, then attend to all so far
            keys, values = cache  # each (B, nkv, S, hs)
            keys.narrow(2, start, T).copy_(k)
            values.narrow(2, start, T).copy_(v)
            k, v = keys.narrow(2, 0, start + T), values.narrow(2, 0, start + T)
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=mask is None and T > 1,
            enable_gqa=self.n_kv_head != self.n_head,
        )  # (B, nh, T, hs)
        y = y.transpose(1, 2).reshape(B, T, nh * hs)  # re-assemble the heads side by side
        return dropout(self.proj(y), self.dropout, self.training)


class MLP(nn.Module):
    """The position-wise feed-forward network: GELU or SwiGLU."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        hidden = config.hidden_width
        self.gated = config.mlp == "swiglu"
        # SwiGLU needs two projections up (gate and value); fuse them into one matmul.
        self.up = nn.Linear(config.n_embd, hidden * (2 if self.gated else 1), bias=config.bias)
        self.down = nn.Linear(hidden, config.n_embd, bias=config.bias)
        self.approximate = "tanh" if config.mlp == "gelu_tanh" else "none"
        self.dropout = config.dropout

    def forward(self, x: Tensor) -> Tensor:
        h = self.up(x)
        h = swiglu(h) if self.gated else F.gelu(h, approximate=self.approximate)
        return dropout(self.down(h), self.dropout, self.training)


def swiglu(h: Tensor) -> Tensor:
    """SwiGLU's activation of the fused up-projection ``[gate | value]``: ``silu(gate) * value``."""
    gate, value = h.chunk(2, dim=-1)
    return F.silu(gate) * value


class Block(nn.Module):
    """One transformer block: pre-norm attention, then pre-norm MLP, each added to the residual."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.norm1 = norm_layer(config)
        self.attn = CausalSelfAttention(config)
        self.norm2 = norm_layer(config)
        self.mlp = MLP(config)

    def forward(
        self,
        x: Tensor,
        rotary: tuple[Tensor, Tensor] | None,
        cache: tuple[Tensor, Tensor] | None,
        start: int,
        mask: Tensor | None,
    ) -> Tensor:
        x = x + self.attn(self.norm1(x), rotary, cache, start, mask)
        return x + self.mlp(self.norm2(x))  # type: ignore[no-any-return]


def dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """Dropout that costs nothing when off (the common case, and always in generation)."""
    return F.dropout(x, p, training=True) if p and training else x


def attention_mask(
    start: int, steps: int, key_mask: Tensor | None, device: torch.device
) -> Tensor | None:
    """The boolean attention mask ``(B or 1, 1, T, S)``, or None when ``is_causal`` says it all.

    Query ``i`` (at slot ``start + i``) may attend to slots ``<= start + i`` that
    hold real tokens. A padding query would then attend to nothing, which makes
    attention NaN, so every slot may always attend to itself; the outputs at
    padding slots are never used.
    """
    if key_mask is None and (start == 0 or steps == 1):
        return None  # plain causal prefill, or one new token that may see everything
    total = start + steps
    slots = torch.arange(total, device=device)
    queries = torch.arange(start, total, device=device).unsqueeze(1)  # (T, 1)
    causal = slots.unsqueeze(0) <= queries  # (T, S)
    if key_mask is None:
        return causal.view(1, 1, steps, total)
    allowed = causal & key_mask[:, None, :total]  # (B, T, S)
    allowed |= slots.unsqueeze(0) == queries  # each slot sees itself
    return allowed.unsqueeze(1)  # (B, 1, T, S)
