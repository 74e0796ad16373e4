"""A GPT-style decoder-only transformer language model: its config, KV cache and model.

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

Read it as nanoGPT's ``model.py``, top to bottom: :class:`GPTConfig` (a
comment per field), :class:`KVCache`, then :class:`GPT`. The layers a
:class:`GPT` stacks (attention, MLP, block, masks) are in
:mod:`genarch.models.transformer_layers`, because the module-free decoding step
(:mod:`genarch.models.decode_step`) reuses their functions too.

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

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Self, cast

import torch
import torch.nn.functional as F  # noqa: N812 - the usual torch spelling
from pydantic import Field, model_validator
from torch import Tensor, nn

from genarch._deprecated import renamed_names
from genarch.configured import Configured
from genarch.errors import InvalidInputError
from genarch.models._weights import check_saved_shapes, module_shapes, saved_shapes
from genarch.models.output_loss import linear_cross_entropy
from genarch.models.transformer_layers import (
    Block,
    attention_mask,
    dropout,
    norm_layer,
    rotary_tables,
)
from genarch.persistence import WEIGHTS_FILE, load_state, open_saved, reading, save_component
from genarch.protocols import PathLike
from genarch.schemas import Config

__all__ = [
    "GPT",
    "MAX_CONTEXT_LENGTH",
    "MAX_ELEMENTS",
    "MAX_HEADS",
    "MAX_LAYERS",
    "MAX_VOCAB_SIZE",
    "MAX_WIDTH",
    "GPTConfig",
    "KVCache",
]

logger = logging.getLogger(__name__)

FORMAT = "genarch.GPT"  # the kind in config.json (kept from the first release: old saves load)

# The bounds of GPTConfig's sizes: far above any model this library trains or
# loads (GPT-2 XL: 50,257 x 1,024 positions, 48 layers, width 1,600), far below
# what would make building the model try to allocate terabytes.
MAX_VOCAB_SIZE = 2**24  #: token ids: 16.7M (the largest public vocabularies hold ~256k)
MAX_CONTEXT_LENGTH = 2**20  #: positions: 1M
MAX_LAYERS = 1024  #: transformer blocks
MAX_HEADS = 1024  #: attention heads
MAX_WIDTH = 2**16  #: the residual stream's width (n_embd); the MLP's is at most 4x this
MAX_ELEMENTS = 2**36  #: weights and position tables together: 68.7G numbers (275 GB in float32)


class GPTConfig(Config):
    """Everything that defines a :class:`GPT` (frozen; unknown, inconsistent or
    out-of-bounds fields raise :class:`~genarch.errors.ConfigError`).

    Every size is bounded (:data:`MAX_VOCAB_SIZE`, :data:`MAX_CONTEXT_LENGTH`,
    :data:`MAX_LAYERS`, :data:`MAX_HEADS`, :data:`MAX_WIDTH`), and so is the
    whole (:data:`MAX_ELEMENTS`, see :meth:`num_elements`): a config read from a
    damaged or hostile file fails here, before anything is allocated.

    Attributes:
        vocab_size: number of token ids the model reads and predicts.
        context_length: the longest sequence the model attends over (positions).
        n_layer: number of transformer blocks.
        n_head: number of attention (query) heads.
        n_kv_head: number of key/value heads; ``None`` means ``n_head`` (ordinary
            multi-head attention), ``1`` is multi-query attention, anything that
            divides ``n_head`` is grouped-query attention.
        n_embd: width of the residual stream; must be divisible by ``n_head``
            unless ``head_size`` is given.
        head_size: width of one attention head; ``None`` means ``n_embd // n_head``
            (a model whose heads were pruned keeps its head size with fewer heads).
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

    vocab_size: Annotated[int, Field(ge=1, le=MAX_VOCAB_SIZE)]
    context_length: Annotated[int, Field(ge=1, le=MAX_CONTEXT_LENGTH)] = 256
    n_layer: Annotated[int, Field(ge=1, le=MAX_LAYERS)] = 6
    n_head: Annotated[int, Field(ge=1, le=MAX_HEADS)] = 6
    n_kv_head: Annotated[int, Field(ge=1, le=MAX_HEADS)] | None = None
    n_embd: Annotated[int, Field(ge=1, le=MAX_WIDTH)] = 384
    head_size: Annotated[int, Field(ge=1, le=MAX_WIDTH)] | None = None
    positions: Literal["learned", "rotary"] = "learned"
    rope_base: Annotated[float, Field(gt=1.0, allow_inf_nan=False)] = 10000.0
    norm: Literal["layernorm", "rmsnorm"] = "layernorm"
    norm_eps: Annotated[float, Field(gt=0.0, le=1.0)] = 1e-5
    mlp: Literal["gelu", "gelu_tanh", "swiglu"] = "gelu"
    mlp_hidden: Annotated[int, Field(ge=1, le=4 * MAX_WIDTH)] | None = None
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    bias: bool = True
    tie_embeddings: bool = True

    @model_validator(mode="after")
    def _shapes_fit(self) -> Self:
        if self.head_size is None and self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if self.n_head % self.kv_heads:
            raise ValueError(
                f"n_head ({self.n_head}) must be divisible by n_kv_head ({self.kv_heads})"
            )
        if self.positions == "rotary" and self.head_dim % 2:
            raise ValueError(f"rotary positions need an even head size, got {self.head_dim}")
        if self.num_elements() > MAX_ELEMENTS:
            raise ValueError(
                f"the model would hold about {self.num_elements():,} parameters and tables, more "
                f"than the {MAX_ELEMENTS:,} a GPTConfig allows; check vocab_size, "
                "context_length, n_layer, n_embd and mlp_hidden"
            )
        return self

    def num_elements(self) -> int:
        """About how many numbers the model holds (weights and position tables):
        what building it allocates, computed without building it."""
        width, hidden, kv = self.n_embd, self.hidden_width, self.kv_heads * self.head_dim
        attention = 2 * width * (self.n_head * self.head_dim + kv)
        mlp = (3 if self.mlp == "swiglu" else 2) * width * hidden
        tables = self.vocab_size * width * (1 if self.tie_embeddings else 2)
        tables += self.context_length * (width if self.positions == "learned" else self.head_dim)
        return self.n_layer * (attention + mlp) + tables

    @property
    def head_dim(self) -> int:
        """Width of one attention head: ``head_size``, by default ``n_embd // n_head``."""
        return self.head_size or self.n_embd // self.n_head

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


# ---------------------------------------------------------------------- the model


class GPT(nn.Module, Configured[GPTConfig]):
    """A decoder-only transformer language model.

    Args:
        config: a :class:`GPTConfig` (or a mapping of its fields).
        **fields: the config's fields as keyword arguments, instead of ``config``.

    Raises:
        ConfigError: both a config and fields, or an invalid or inconsistent config.

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

    def __init__(self, config: GPTConfig | Mapping[str, Any] | None = None, **fields: Any) -> None:
        nn.Module.__init__(self)
        Configured.__init__(self, config, **fields)
        config = self.config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = (
            nn.Embedding(config.context_length, config.n_embd)
            if config.positions == "learned"
            else None
        )
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.norm_f = norm_layer(config)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.wte.weight
        if config.positions == "rotary":
            cos, sin = rotary_tables(config)
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

    # ------------------------------------------------------------------- sizes

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
        x = dropout(x, self.config.dropout, self.training)
        rotary = None
        if self.config.positions == "rotary":
            cos = at_positions(self.get_buffer("rope_cos")).unsqueeze(1)  # (B, 1, T, hs/2)
            sin = at_positions(self.get_buffer("rope_sin")).unsqueeze(1)
            rotary = (cos, sin)
        mask = attention_mask(start, T, key_mask, idx.device)
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
        """Write ``config.json`` and ``model.safetensors`` into ``directory`` atomically.

        A tied output layer is not written twice: it is the token-embedding table.
        """
        state = dict(self.state_dict())
        if getattr(self.lm_head, "weight", None) is self.wte.weight:
            state.pop("lm_head.weight")  # the same tensor as wte.weight
        # A quantised model (genarch.models.compression) records how, so a load rebuilds it.
        quantization = getattr(self, "quantization", None)
        header = None if quantization is None else {"quantization": quantization.model_dump()}
        save_component(directory, FORMAT, config=self.config, header=header, tensors=state)

    @classmethod
    def load(cls, directory: PathLike, *, device: str | torch.device = "cpu") -> Self:
        """Load a model written by :meth:`save` (also after a save interrupted by a crash).

        Raises:
            NotFoundError: ``directory`` holds no saved model.
            IntegrityError: the files are corrupt or belong to another kind of model.
        """
        saved = open_saved(directory, FORMAT)
        config = saved.config(GPTConfig)
        where = f"the saved {FORMAT} in {str(saved.root)!r}"
        # The weights' shapes are checked against the config before the model is
        # allocated: a config that does not belong to its weights fails cheaply.
        quantization = saved.header.get("quantization")

        def build() -> GPT:
            if quantization is None:
                return cls(config)
            from genarch.models.compression.layers import quantized_layout

            with reading(FORMAT, saved.root):
                return quantized_layout(cls(config), quantization)

        check_saved_shapes(
            saved_shapes(saved.path(WEIGHTS_FILE)),
            module_shapes(build),
            where,
            optional=frozenset({"lm_head.weight"}) if config.tie_embeddings else frozenset(),
        )
        model = cast(Self, build())
        model.load_weights(saved.tensors(), where=where)
        return model.to(device)

    def load_weights(self, state: Mapping[str, Tensor], *, where: str = "state") -> None:
        """Copy ``state`` (names as in :meth:`state_dict`) into the model, checking every name and shape.

        A tied output layer may be absent from ``state``: it is the token-embedding table.
        A failed load leaves the model untouched.

        Raises:
            IntegrityError: missing, unexpected or mis-shaped tensors.
        """
        state = dict(state)
        if getattr(self.lm_head, "weight", None) is self.wte.weight and "wte.weight" in state:
            state.setdefault("lm_head.weight", state["wte.weight"])
        load_state(self, state, where)


# The layers lived here until they moved to genarch.models.transformer_layers.
__getattr__ = renamed_names(
    __name__,
    {name: ("genarch.models.transformer_layers", name) for name in ("CausalSelfAttention", "MLP")},
)
