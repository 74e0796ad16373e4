"""A GPT-style decoder-only transformer language model, in one readable file.

The model follows GPT-2 (Radford et al., 2019, "Language Models are
Unsupervised Multitask Learners") as distilled by Karpathy's nanoGPT, with the
switches that later models made common, each one field of :class:`GPTConfig`:

* grouped-query attention (Ainslie et al., 2023): fewer key/value heads than
  query heads, so the KV cache is smaller;
* rotary position embeddings (Su et al., 2021, "RoFormer") instead of learned ones;
* RMSNorm (Zhang & Sennrich, 2019) instead of LayerNorm;
* a SwiGLU MLP (Shazeer, 2020, "GLU Variants Improve Transformer") instead of GELU.

Attention uses :func:`torch.nn.functional.scaled_dot_product_attention`, which
picks a fused kernel where one exists. The same forward pass serves training
(whole sequences, causal) and generation (a :class:`KVCache`, positions per
row and a padding mask, see :mod:`genarch.models.generation`).

Examples:
    >>> import torch
    >>> config = GPTConfig(vocab_size=256, context_length=32, n_layer=2, n_head=2, n_embd=32)
    >>> model = GPT(config)
    >>> idx = torch.randint(0, 256, (4, 16), generator=torch.Generator().manual_seed(0))
    >>> model(idx).shape
    torch.Size([4, 16, 256])
    >>> loss = model.loss(idx[:, :-1], idx[:, 1:])
    >>> 5.0 < loss.item() < 6.0  # about log(256) = 5.55 before training
    True
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import torch
import torch.nn.functional as F  # noqa: N812 - the usual torch spelling
from pydantic import BaseModel, Field, model_validator
from torch import Tensor, nn

from genarch._io import atomic_directory
from genarch.errors import ConfigError, IntegrityError, InvalidInputError, NotFoundError
from genarch.models.output_loss import linear_cross_entropy
from genarch.protocols import PathLike
from genarch.schemas import Config

__all__ = ["GPT", "GPTConfig", "KVCache"]

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT = "genarch.GPT"


class GPTConfig(Config):
    """Everything that defines a :class:`GPT` (frozen; unknown or inconsistent fields raise
    :class:`~genarch.errors.ConfigError`).

    Attributes:
        vocab_size: number of token ids the model reads and predicts.
        context_length: the longest sequence the model attends over (positions).
        n_layer: number of transformer blocks.
        n_head: number of attention (query) heads.
        n_kv_head: number of key/value heads; ``None`` means ``n_head`` (ordinary
            multi-head attention), ``1`` is multi-query attention, anything that
            divides ``n_head`` is grouped-query attention.
        n_embd: width of the residual stream; must be divisible by ``n_head``.
        positions: ``"learned"`` (GPT-2: a table added to the token embeddings)
            or ``"rotary"`` (RoPE: queries and keys rotated by position).
        rope_base: the base of the rotary frequencies.
        norm: ``"layernorm"`` (GPT-2) or ``"rmsnorm"``.
        norm_eps: epsilon of the normalisation layers.
        mlp: ``"gelu"`` (exact GELU, nanoGPT), ``"gelu_tanh"`` (the tanh
            approximation GPT-2 used) or ``"swiglu"``.
        mlp_hidden: hidden width of the MLP; ``None`` means ``4 * n_embd`` for
            GELU and ``8/3 * n_embd`` rounded up to a multiple of 64 for SwiGLU
            (the same parameter count).
        dropout: dropout probability on attention weights and residual branches
            during training (0 disables it; generation never uses it).
        bias: whether linear and LayerNorm layers have biases (GPT-2: yes).
        tie_embeddings: share the token-embedding matrix with the output layer.
    """

    vocab_size: Annotated[int, Field(ge=1)]
    context_length: Annotated[int, Field(ge=1)] = 256
    n_layer: Annotated[int, Field(ge=1)] = 6
    n_head: Annotated[int, Field(ge=1)] = 6
    n_kv_head: Annotated[int, Field(ge=1)] | None = None
    n_embd: Annotated[int, Field(ge=1)] = 384
    positions: Literal["learned", "rotary"] = "learned"
    rope_base: Annotated[float, Field(gt=1.0)] = 10000.0
    norm: Literal["layernorm", "rmsnorm"] = "layernorm"
    norm_eps: Annotated[float, Field(gt=0.0)] = 1e-5
    mlp: Literal["gelu", "gelu_tanh", "swiglu"] = "gelu"
    mlp_hidden: Annotated[int, Field(ge=1)] | None = None
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    bias: bool = True
    tie_embeddings: bool = True

    @model_validator(mode="after")
    def _shapes_fit(self) -> Self:
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if self.n_head % self.kv_heads:
            raise ValueError(
                f"n_head ({self.n_head}) must be divisible by n_kv_head ({self.kv_heads})"
            )
        if self.positions == "rotary" and self.head_dim % 2:
            raise ValueError(f"rotary positions need an even head size, got {self.head_dim}")
        return self

    @property
    def head_dim(self) -> int:
        """Width of one attention head: ``n_embd // n_head``."""
        return self.n_embd // self.n_head

    @property
    def kv_heads(self) -> int:
        """The number of key/value heads actually used."""
        return self.n_kv_head or self.n_head

    @property
    def hidden_width(self) -> int:
        """The MLP's hidden width (``mlp_hidden`` or its default)."""
        if self.mlp_hidden is not None:
            return self.mlp_hidden
        if self.mlp == "swiglu":
            return 64 * math.ceil(8 * self.n_embd / 3 / 64)
        return 4 * self.n_embd


@dataclass
class KVCache:
    """Pre-allocated keys and values of every layer, filled as tokens are decoded.

    One tensor of shape ``(n_layer, 2, batch, n_kv_head, max_length, head_dim)``
    holds everything, so decoding allocates nothing per step; ``keys[i]`` and
    ``values[i]`` are views of layer ``i``'s part. ``length`` is how many
    positions are filled; :meth:`GPT.hidden_states` writes the next ones and
    advances it. A cache belongs to one generation call: create a fresh one per
    call (:meth:`GPT.new_cache`) so no state leaks between calls.
    """

    data: Tensor
    length: int = 0
    keys: list[Tensor] = field(init=False)
    values: list[Tensor] = field(init=False)

    def __post_init__(self) -> None:
        self.keys = list(self.data[:, 0].unbind(0))  # each (B, nkv, S, hs)
        self.values = list(self.data[:, 1].unbind(0))

    @property
    def max_length(self) -> int:
        """How many positions the cache can hold."""
        return int(self.data.shape[4])


# ------------------------------------------------------------------ building blocks


def _norm(config: GPTConfig) -> nn.Module:
    if config.norm == "rmsnorm":
        return nn.RMSNorm(config.n_embd, eps=config.norm_eps)
    return nn.LayerNorm(config.n_embd, eps=config.norm_eps, bias=config.bias)


def _rotary_tables(config: GPTConfig) -> tuple[Tensor, Tensor]:
    """cos and sin of every (position, frequency) pair: two ``(context_length, head_dim/2)`` tables."""
    half = config.head_dim // 2
    frequencies = config.rope_base ** (-torch.arange(half, dtype=torch.float64) / half)
    angles = torch.outer(torch.arange(config.context_length, dtype=torch.float64), frequencies)
    return angles.cos().float(), angles.sin().float()


def _rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
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
        self.proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = config.dropout

    def forward(
        self,
        x: Tensor,
        rotary: tuple[Tensor, Tensor] | None,
        cache: tuple[Tensor, Tensor] | None,
        start: int,
        mask: Tensor | None,
    ) -> Tensor:
        B, T, C = x.shape  # noqa: N806 - batch, time, channels as in the papers
        nh, nkv, hs = self.n_head, self.n_kv_head, self.head_dim
        # split, not three slices: its backward joins the gradients in one copy, where each
        # slice's backward would fill a zero tensor of the full width and add them up.
        q, k, v = (
            part.view(B, T, -1, hs).transpose(1, 2)  # (B, heads, T, hs)
            for part in self.qkv(x).split((nh * hs, nkv * hs, nkv * hs), dim=-1)
        )
        if rotary is not None:
            q, k = _rotate(q, *rotary), _rotate(k, *rotary)
        if cache is not None:  # write this step's keys and values, then attend to all so far
            keys, values = cache  # each (B, nkv, S, hs)
            keys.narrow(2, start, T).copy_(k)
            values.narrow(2, start, T).copy_(v)
            k, v = keys.narrow(2, 0, start + T), values.narrow(2, 0, start + T)
        if T == 1 and cache is not None and not self.training:
            y = _one_query_attention(q, k, v, mask).view(B, T, C)
        else:
            y = F.scaled_dot_product_attention(
                q,
                k,
                v,
                attn_mask=mask,
                dropout_p=self.dropout if self.training else 0.0,
                is_causal=mask is None and T > 1,
                enable_gqa=self.n_kv_head != self.n_head,
            )  # (B, nh, T, hs)
            y = y.transpose(1, 2).reshape(B, T, C)  # re-assemble the heads side by side
        return _dropout(self.proj(y), self.dropout, self.training)


def _one_query_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
    """Attention of a single query per row, as when decoding: ``softmax(q kᵀ / √hs) v``.

    ``q`` is ``(B, nh, 1, hs)``, ``k`` and ``v`` are ``(B, nkv, S, hs)`` and
    ``mask`` is None or ``(B, 1, 1, S)``; returns ``(B, nh, hs)``. The query
    heads that share a key/value head are stacked as that head's rows, so
    grouped-query attention needs no copies of the keys. Two batched matrix
    products and a softmax cost less than
    :func:`~torch.nn.functional.scaled_dot_product_attention`'s kernel set-up,
    which dominates for a single query at this size (about a tenth of a decoding
    step at batch 1 in ``benchmarks/bench_generate.py``).
    """
    B, nh, _, hs = q.shape  # noqa: N806
    nkv, S = k.shape[1], k.shape[2]  # noqa: N806
    q = q.reshape(B * nkv, nh // nkv, hs)
    scores = torch.bmm(q, k.reshape(B * nkv, S, hs).transpose(1, 2)).mul_(hs**-0.5)
    if mask is not None:  # (B, 1, 1, S): the same keys are hidden from every head of a row
        hidden = ~mask.expand(B, nkv, 1, S).reshape(B * nkv, 1, S)
        scores = scores.masked_fill_(hidden, -torch.inf)
    return torch.bmm(scores.softmax(dim=-1), v.reshape(B * nkv, S, hs)).view(B, nh, hs)


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
        h = _swiglu(h) if self.gated else F.gelu(h, approximate=self.approximate)
        return _dropout(self.down(h), self.dropout, self.training)


def _swiglu(h: Tensor) -> Tensor:
    """SwiGLU's activation of the fused up-projection ``[gate | value]``: ``silu(gate) * value``."""
    gate, value = h.chunk(2, dim=-1)
    return F.silu(gate) * value


class Block(nn.Module):
    """One transformer block: pre-norm attention, then pre-norm MLP, each added to the residual."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.norm1 = _norm(config)
        self.attn = CausalSelfAttention(config)
        self.norm2 = _norm(config)
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


# ---------------------------------------------------------------------- the model


class GPT(nn.Module):
    """A decoder-only transformer language model.

    Args:
        config: a :class:`GPTConfig`, or its fields as keyword arguments.

    The weights are initialised as GPT-2's: normal with standard deviation
    0.02, biases zero, and the projections back into the residual stream
    scaled down by ``1/sqrt(2 * n_layer)`` so the residual's variance does not
    grow with depth. Seed torch (``torch.manual_seed``) before building the
    model for reproducible weights.

    Examples:
        >>> torch.manual_seed(0) and None
        >>> model = GPT(vocab_size=100, context_length=16, n_layer=1, n_head=2, n_embd=16)
        >>> model.num_parameters()
        5168
        >>> model(torch.tensor([[1, 2, 3]])).shape
        torch.Size([1, 3, 100])
    """

    def __init__(self, config: GPTConfig | None = None, **fields: Any) -> None:
        super().__init__()
        if config is not None and fields:
            raise ConfigError("pass either a GPTConfig or keyword fields, not both")
        if config is None:
            config = GPTConfig(**fields)
        elif not isinstance(config, GPTConfig):
            raise ConfigError(f"GPT expected a GPTConfig, got {type(config).__name__}")
        self._config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = (
            nn.Embedding(config.context_length, config.n_embd)
            if config.positions == "learned"
            else None
        )
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.norm_f = _norm(config)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.wte.weight
        if config.positions == "rotary":
            cos, sin = _rotary_tables(config)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        self.apply(self._init_weights)
        for name, parameter in self.named_parameters():
            if name.endswith(("attn.proj.weight", "mlp.down.weight")):
                nn.init.normal_(parameter, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    # ------------------------------------------------------------ configuration

    @property
    def config(self) -> GPTConfig:
        """The frozen configuration."""
        return self._config

    @classmethod
    def from_config(cls, config: BaseModel | Mapping[str, Any]) -> Self:
        """Build a fresh (untrained) model from a config object or mapping.

        Raises:
            ConfigError: unknown or out-of-range fields.
        """
        if isinstance(config, GPTConfig):
            return cls(config)
        if isinstance(config, BaseModel):
            config = config.model_dump()
        if not isinstance(config, Mapping):
            raise ConfigError(f"GPT.from_config expected a GPTConfig or a mapping, got {config!r}")
        return cls(GPTConfig.parse(config))

    def num_parameters(self, *, exclude_embeddings: bool = False) -> int:
        """Number of parameters (shared tensors counted once).

        Args:
            exclude_embeddings: leave out the token and position embedding tables
                (the usual convention for scaling laws). A tied output layer is
                then left out too, as it is the token table.
        """
        total = sum(p.numel() for p in self.parameters())
        if exclude_embeddings:
            total -= self.wte.weight.numel()
            if self.wpe is not None:
                total -= self.wpe.weight.numel()
        return total

    def flops_per_token(self, sequence_length: int | None = None, *, training: bool = True) -> int:
        """Floating-point operations per token, for model-FLOPs utilisation (MFU).

        Counts ``2`` FLOPs per multiply-add of every weight matrix a token
        passes through (the output layer included, embedding lookups excluded)
        plus attention's ``2 * 2 * n_layer * T * n_embd`` (scores and weighted
        sum), as in the PaLM paper's appendix B; training is three times the
        forward pass (forward, and backward for activations and weights), i.e.
        ``6 N + 12 L T C``.

        Args:
            sequence_length: the ``T`` attended over (default: context length).
            training: count forward + backward (default) or forward only.
        """
        config = self.config
        steps = config.context_length if sequence_length is None else sequence_length
        if steps < 1:
            raise InvalidInputError(f"sequence_length must be at least 1, got {steps}")
        matmul_weights = sum(
            p.numel() for name, p in self.named_parameters() if p.ndim == 2 and name != "wpe.weight"
        )
        if not config.tie_embeddings:
            matmul_weights -= self.wte.weight.numel()  # a lookup, not a matmul
        forward = 2 * matmul_weights + 4 * config.n_layer * steps * config.n_embd
        return 3 * forward if training else forward

    # ------------------------------------------------------------------ forward

    def new_cache(self, batch_size: int, max_length: int) -> KVCache:
        """An empty :class:`KVCache` for ``batch_size`` rows of up to ``max_length`` positions."""
        config = self.config
        weight = self.wte.weight
        data = torch.empty(
            (config.n_layer, 2, batch_size, config.kv_heads, max_length, config.head_dim),
            dtype=weight.dtype,
            device=weight.device,
        )
        return KVCache(data)

    def hidden_states(
        self,
        idx: Tensor,
        *,
        positions: Tensor | None = None,
        cache: KVCache | None = None,
        key_mask: Tensor | None = None,
    ) -> Tensor:
        """The final-normalised hidden states ``(B, T, n_embd)`` of token ids ``idx (B, T)``.

        Args:
            idx: token ids, shape ``(B, T)``.
            positions: position of every token, shape ``(B, T)`` or ``(1, T)``;
                default ``cache.length + arange(T)``. Left-padded rows give their
                real tokens positions from 0, as if they were alone.
            cache: keys and values of earlier positions; this call appends
                ``T`` positions to it.
            key_mask: ``(B, S)`` booleans, True for real tokens and False for
                padding, over every cache slot ``S >= cache.length + T``. Padding
                is never attended to.
        """
        T = idx.shape[1]  # noqa: N806
        start = cache.length if cache is not None else 0
        if start + T > (cache.max_length if cache is not None else self.config.context_length):
            limit = cache.max_length if cache is not None else self.config.context_length
            raise InvalidInputError(
                f"the sequence would have {start + T} positions, but at most {limit} fit"
            )

        # Without explicit positions every row is at start..start+T: a slice, not a gather.
        def at_positions(table: Tensor) -> Tensor:  # (P, D) -> (B or 1, T, D)
            return table[start : start + T][None] if positions is None else table[positions]

        x = self.wte(idx)  # (B, T, C)
        if self.wpe is not None:
            x = x + at_positions(self.wpe.weight)
        x = _dropout(x, self.config.dropout, self.training)
        rotary = None
        if self.config.positions == "rotary":
            cos = at_positions(self.get_buffer("rope_cos")).unsqueeze(1)  # (B, 1, T, hs/2)
            sin = at_positions(self.get_buffer("rope_sin")).unsqueeze(1)
            rotary = (cos, sin)
        mask = _attention_mask(start, T, key_mask, idx.device)
        for layer, block in enumerate(self.blocks):
            kv = (cache.keys[layer], cache.values[layer]) if cache is not None else None
            x = block(x, rotary, kv, start, mask)
        if cache is not None:
            cache.length = start + T
        return self.norm_f(x)  # type: ignore[no-any-return]

    def forward(self, idx: Tensor) -> Tensor:
        """Logits ``(B, T, vocab_size)`` for token ids ``idx (B, T)``; position ``t`` predicts ``t + 1``.

        Raises:
            InvalidInputError: ``idx`` is not a 2-D integer tensor, holds ids
                outside the vocabulary, or is longer than the context.
        """
        self._check_ids(idx, "idx")
        return self.lm_head(self.hidden_states(idx))  # type: ignore[no-any-return]

    def loss(self, idx: Tensor, targets: Tensor, *, label_smoothing: float = 0.0) -> Tensor:
        """Mean cross-entropy of predicting ``targets (B, T)`` from ``idx (B, T)``.

        Target ids of ``-100`` are ignored (padding), as in
        :func:`torch.nn.functional.cross_entropy`. With a plain output layer
        in float32 (no autocast, no LoRA on ``lm_head``) the output layer and
        the loss run together a chunk of rows at a time
        (:func:`~genarch.models.output_loss.linear_cross_entropy`): the same
        value and gradients, without the ``(B, T, vocab_size)`` logits tensor.

        Raises:
            InvalidInputError: mismatched shapes or ids outside the vocabulary.
        """
        if not isinstance(targets, Tensor) or targets.shape != getattr(idx, "shape", None):
            raise InvalidInputError(
                f"targets must be a tensor shaped like idx {tuple(getattr(idx, 'shape', ()))}, "
                f"got {getattr(targets, 'shape', type(targets).__name__)}"
            )
        if not 0.0 <= label_smoothing < 1.0:
            raise InvalidInputError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self._check_ids(idx, "idx")
        hidden, head = self.hidden_states(idx), self.lm_head
        if (
            type(head) is nn.Linear  # not wrapped (LoRA) or replaced
            and getattr(head, "bias", None) is None  # typed as a Tensor, may be None
            and hidden.dtype == head.weight.dtype
            and not torch.is_autocast_enabled(hidden.device.type)
        ):  # the same loss without ever holding every logit: see genarch.models.output_loss
            return linear_cross_entropy(
                hidden, head.weight, targets, label_smoothing=label_smoothing
            )
        logits = head(hidden)
        return F.cross_entropy(
            logits.reshape(-1, logits.size(-1)).float(),
            targets.reshape(-1),
            ignore_index=-100,
            label_smoothing=label_smoothing,
        )

    def _check_ids(self, idx: object, name: str) -> None:
        if not isinstance(idx, Tensor) or idx.ndim != 2 or idx.is_floating_point():
            shown = tuple(idx.shape) if isinstance(idx, Tensor) else type(idx).__name__
            raise InvalidInputError(f"{name} must be a 2-D integer tensor (B, T), got {shown}")
        if idx.shape[1] > self.config.context_length:
            raise InvalidInputError(
                f"{name} has {idx.shape[1]} positions, but the context length is "
                f"{self.config.context_length}"
            )
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= self.config.vocab_size):
            raise InvalidInputError(
                f"{name} holds ids outside range({self.config.vocab_size}): "
                f"min {int(idx.min())}, max {int(idx.max())}"
            )

    # -------------------------------------------------------------- persistence

    def save(self, directory: PathLike) -> None:
        """Write ``config.json`` and ``model.safetensors`` into ``directory`` atomically."""
        from safetensors.torch import save_file

        state = {
            name: tensor.detach().cpu().contiguous() for name, tensor in self.state_dict().items()
        }
        if self.config.tie_embeddings:
            state.pop("lm_head.weight")  # the same tensor as wte.weight
        document = {"format": FORMAT, "config": self.config.model_dump(mode="json")}
        with atomic_directory(directory) as staging:
            (staging / CONFIG_FILE).write_text(json.dumps(document, indent=2) + "\n")
            save_file(state, str(staging / WEIGHTS_FILE))

    @classmethod
    def load(cls, directory: PathLike, *, device: str | torch.device = "cpu") -> Self:
        """Load a model written by :meth:`save`.

        Raises:
            NotFoundError: ``directory`` holds no saved model.
            IntegrityError: the files are corrupt or belong to another kind of model.
        """
        from safetensors.torch import load_file

        root = Path(directory)
        if not (root / CONFIG_FILE).is_file() or not (root / WEIGHTS_FILE).is_file():
            raise NotFoundError(f"no saved GPT in {root} (expected {CONFIG_FILE}, {WEIGHTS_FILE})")
        try:
            document = json.loads((root / CONFIG_FILE).read_text())
            if not isinstance(document, dict) or document.get("format") != FORMAT:
                raise IntegrityError(f"{root / CONFIG_FILE} was not written by GPT.save")
            config = GPTConfig.parse(document["config"])
            state = load_file(str(root / WEIGHTS_FILE))
        except IntegrityError:
            raise
        except Exception as error:
            raise IntegrityError(f"cannot read the model in {root}: {error}") from error
        model = cls(config)
        model.load_weights(state, where=str(root))
        return model.to(device)

    def load_weights(self, state: Mapping[str, Tensor], *, where: str = "state") -> None:
        """Copy ``state`` (names as in :meth:`state_dict`) into the model, checking every name and shape.

        A tied output layer may be absent from ``state``.

        Raises:
            IntegrityError: missing, unexpected or mis-shaped tensors.
        """
        expected = self.state_dict()
        names = set(state)
        required = set(expected) - ({"lm_head.weight"} if self.config.tie_embeddings else set())
        if missing := sorted(required - names):
            raise IntegrityError(f"{where} lacks tensors {missing[:5]} for this GPTConfig")
        if unexpected := sorted(names - set(expected)):
            raise IntegrityError(f"{where} has tensors this GPTConfig lacks: {unexpected[:5]}")
        for name in names:
            if tuple(state[name].shape) != tuple(expected[name].shape):
                raise IntegrityError(
                    f"{where}: {name} has shape {tuple(state[name].shape)}, "
                    f"the config needs {tuple(expected[name].shape)}"
                )
        with torch.no_grad():
            for name in names:
                expected[name].copy_(state[name])


def _dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """Dropout that costs nothing when off (the common case, and always in generation)."""
    return F.dropout(x, p, training=True) if p and training else x


def _attention_mask(
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
