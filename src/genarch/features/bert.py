"""BERT, the encoder network of the pretrained sentence encoders (inference only, plain PyTorch).

BERT (Devlin et al., 2019, "BERT: Pre-training of Deep Bidirectional
Transformers for Language Understanding") maps token ids to contextual hidden
states with a stack of post-LN transformer encoder layers.
:class:`~genarch.features.minilm.MiniLMEncoder` pools them into sentence
embeddings (Reimers & Gurevych, 2019, "Sentence-BERT"; Wang et al., 2020,
"MiniLM"). :meth:`BertModel.load_hf_state` reads the weights of a Hugging Face
``BertModel``, so ``transformers`` is never imported at run time.

Why this model family lives in :mod:`genarch.features` and not in
:mod:`genarch.models`: the layers import downwards only (data → features →
models → orchestration), and the feature extractor that runs this network
(:class:`~genarch.features.minilm.MiniLMEncoder`) is in the features layer, so
the network must be in that layer or below. It is also not a generative model
(it satisfies no ``Generator`` protocol): here it only turns texts into
features. It still has a file of its own, one file per model family, apart
from the checkpoint reader and the extractor in :mod:`genarch.features.minilm`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import torch
import torch.nn.functional as F  # noqa: N812 - the usual torch spelling
from pydantic import Field
from torch import Tensor, nn

from genarch import _int8
from genarch.configured import Configured
from genarch.errors import ConfigError, IntegrityError
from genarch.schemas import Config

__all__ = ["BertConfig", "BertModel"]

_LINEARS = ("qkv", "attention_out", "ffn_in", "ffn_out")  # the linear layers of a _Layer


class BertConfig(Config):
    """The shape of a BERT encoder (the fields of a Hugging Face ``config.json`` that matter).

    Attributes:
        vocab_size: rows of the token embedding table.
        hidden_size: width of the hidden states.
        num_hidden_layers: number of encoder layers.
        num_attention_heads: heads per layer; must divide ``hidden_size``.
        intermediate_size: hidden width of each layer's feed-forward network.
        max_position_embeddings: the longest sequence the model reads.
        type_vocab_size: number of segment (token type) embeddings.
        layer_norm_eps: epsilon of every LayerNorm.
    """

    vocab_size: Annotated[int, Field(ge=1)] = 30522
    hidden_size: Annotated[int, Field(ge=1)] = 384
    num_hidden_layers: Annotated[int, Field(ge=1)] = 6
    num_attention_heads: Annotated[int, Field(ge=1)] = 12
    intermediate_size: Annotated[int, Field(ge=1)] = 1536
    max_position_embeddings: Annotated[int, Field(ge=2)] = 512
    type_vocab_size: Annotated[int, Field(ge=1)] = 2
    layer_norm_eps: Annotated[float, Field(gt=0)] = 1e-12


class _Embeddings(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.words = nn.Embedding(config.vocab_size, config.hidden_size)
        self.positions = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_types = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, input_ids: Tensor, positions: Tensor) -> Tensor:
        """Embed tokens given as matching 1-D tensors of ids and positions: ``(N, C)``."""
        # One segment only, so every token has token type 0.
        x = self.words(input_ids) + self.token_types.weight[0] + self.positions(positions)
        return self.norm(x)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class _Packing:
    """Where the real (non-padding) tokens of a padded ``(B, T)`` batch are.

    The layers compute on the ``N`` real tokens only, as a ``(N, C)`` matrix, so
    padding costs nothing in the matrix products, LayerNorms and GELUs (most of
    the work); only attention sees the padded ``(B, nh, T, hs)`` layout.

    Attributes:
        batch: ``B``, the number of sequences.
        length: ``T``, the padded sequence length.
        tokens: flat indices (into ``B * T``) of the real tokens, ``(N,)``;
            ``None`` when nothing is padding (then ``N == B * T``).
        mask: ``(B, 1, 1, T)``, which keys each query may see; ``None`` when
            nothing is padding.
    """

    batch: int
    length: int
    tokens: Tensor | None
    mask: Tensor | None

    def pad(self, x: Tensor) -> Tensor:
        """``(N, D)`` rows of the real tokens → ``(B, T, D)``, zeros at padding."""
        if self.tokens is None:
            return x.view(self.batch, self.length, x.shape[-1])
        padded = x.new_zeros(self.batch * self.length, x.shape[-1])
        return padded.index_copy_(0, self.tokens, x).view(self.batch, self.length, x.shape[-1])

    def unpad(self, x: Tensor) -> Tensor:
        """``(B * T, ...)`` rows, padding included → ``(N, ...)``, the real tokens only."""
        return x if self.tokens is None else x.index_select(0, self.tokens)


class _Layer(nn.Module):
    """One post-LN encoder layer: ``x = LN(x + attention(x)); x = LN(x + FFN(x))``."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        width = config.hidden_size
        self.heads = config.num_attention_heads
        self.qkv = nn.Linear(width, 3 * width)  # query, key and value in one matmul
        self.attention_out = nn.Linear(width, width)
        self.attention_norm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.ffn_in = nn.Linear(width, config.intermediate_size)
        self.ffn_out = nn.Linear(config.intermediate_size, width)
        self.ffn_norm = nn.LayerNorm(width, eps=config.layer_norm_eps)

    def forward(self, x: Tensor, packing: _Packing) -> Tensor:
        """``(N, C)`` states of the real tokens → the next layer's ``(N, C)``."""
        C = x.shape[1]  # noqa: N806  (x is (N, C))
        B, T, nh = packing.batch, packing.length, self.heads  # noqa: N806
        qkv = packing.pad(self.qkv(x)).view(B, T, 3, nh, C // nh)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, nh, T, hs), strided views
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=packing.mask)  # (B, nh, T, hs)
        attended = packing.unpad(attended.transpose(1, 2).reshape(B * T, C))  # (N, C)
        # The residual sums and the GELU are done in place: each fresh (N, C) buffer
        # costs an allocation and page faults, a large share of a layer on a CPU.
        h = self.attention_out(attended)
        x = self.attention_norm(h.add_(x))
        h = self.ffn_out(torch.ops.aten.gelu_(self.ffn_in(x)))
        return self.ffn_norm(h.add_(x))  # type: ignore[no-any-return]


class _Int8Linear(nn.Module):
    """A linear layer with int8 weights and int8 activations (dynamic quantisation).

    Weights are quantised once, symmetric per output channel
    (``w ≈ scale[o] * q[o, i]``, ``|q| <= weight_limit``); activations are
    quantised on each call, symmetric per row (per token), so an embedding
    never depends on the other sentences of its batch. The kernel is
    :func:`genarch._int8.row_scaled_linear` (shared with quantised GPTs).

    ``weight_limit`` is 127 on CPUs with VNNI (int8 dot products accumulate in
    int32). Without VNNI the kernel sums pairs of uint8 * int8 products in
    int16, which full-range weights could overflow with 8-bit activations
    (2 * 255 * 127 > 32767); 63 keeps every pair in range (2 * 255 * 63 = 32130).

    ``smoothing`` (SmoothQuant: Xiao et al., 2023, "SmoothQuant: Accurate and
    Efficient Post-Training Quantization for Large Language Models") moves
    quantisation difficulty from the activations to the weights: input
    channel ``j`` is divided by ``smoothing[j]`` and weight column ``j`` is
    multiplied by it, which leaves the product unchanged in exact arithmetic.
    A few input channels of a transformer are much larger than the rest, and
    with a per-token scale they leave the others only a few int8 levels;
    dividing them down gives every channel a fair share.

    The int8 weights and their scales are buffers, so ``state_dict`` holds
    plain tensors (what :func:`~genarch.features.embedding_cache.model_fingerprint`
    hashes); the kernel's packed copy is built from them.
    """

    def __init__(
        self, linear: nn.Linear, weight_limit: int, smoothing: Tensor | None = None
    ) -> None:
        super().__init__()
        weight = linear.weight.detach().float()
        self.input_scale: Tensor | None
        if smoothing is None:
            self.register_buffer("input_scale", None)
        else:
            weight = weight * smoothing[None, :]
            self.register_buffer("input_scale", 1 / smoothing.float())
        scale = weight.abs().amax(dim=1).clamp(min=1e-12) / weight_limit  # (out,)
        q = torch.round(weight / scale[:, None]).clamp(-weight_limit, weight_limit)
        self.weight_int8: Tensor
        self.weight_scale: Tensor
        self.bias: Tensor
        self.register_buffer("weight_int8", q.to(torch.int8))
        self.register_buffer("weight_scale", scale)
        bias = linear.bias if linear.bias is not None else torch.zeros(weight.shape[0])
        self.register_buffer("bias", bias.detach().float().clone())
        self._packed = _int8.pack(self.weight_int8, self.weight_scale, self.bias)
        self._levels = _int8.activation_levels(weight_limit)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, in)`` float32 → ``(N, out)`` float32."""
        if self.input_scale is None:
            return _int8.row_scaled_linear(x, self._packed, self.bias, self._levels)
        # x * input_scale is a new tensor, so it may be scaled in place
        scaled = x * self.input_scale
        return _int8.row_scaled_linear(scaled, self._packed, self.bias, self._levels, inplace=True)


class BertModel(nn.Module, Configured[BertConfig]):
    """A BERT encoder: token ids and an attention mask to contextual hidden states.

    Inference only (no dropout); GELU is the exact (erf) form, as in BERT.
    Padding costs (almost) nothing: the layers run on the real tokens only,
    packed into one matrix, and attention masks padded keys.

    Args:
        config: the shape of the model; keyword fields are shorthand.

    Raises:
        ConfigError: ``hidden_size`` is not a multiple of ``num_attention_heads``,
            or both a config and keyword fields were given.

    Examples:
        >>> torch.manual_seed(0) and None
        >>> model = BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
        ...                              num_attention_heads=2, intermediate_size=32))
        >>> ids = torch.tensor([[2, 7, 9, 3], [2, 5, 3, 0]])
        >>> model(ids, torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])).shape
        torch.Size([2, 4, 16])
    """

    def __init__(self, config: BertConfig | Mapping[str, Any] | None = None, **fields: Any) -> None:
        nn.Module.__init__(self)
        Configured.__init__(self, config, **fields)
        config = self.config
        if config.hidden_size % config.num_attention_heads:
            raise ConfigError(
                f"hidden_size ({config.hidden_size}) must be divisible by "
                f"num_attention_heads ({config.num_attention_heads})"
            )
        self.embeddings = _Embeddings(config)
        self.layers = nn.ModuleList(_Layer(config) for _ in range(config.num_hidden_layers))

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Hidden states ``(B, T, hidden_size)``; padding (mask 0) is never attended to.

        The states at padding positions are zeros.
        """
        B, T = input_ids.shape  # noqa: N806
        positions = torch.arange(T, device=input_ids.device).expand(B, T)
        keep = attention_mask.bool()
        if bool(keep.all()):  # nothing is padding: no gathers, no mask (faster attention)
            packing = _Packing(B, T, None, None)
        else:
            tokens = keep.reshape(-1).nonzero().squeeze(1)  # (N,)
            packing = _Packing(B, T, tokens, keep[:, None, None, :])
        x: Tensor = self.embeddings(  # (N, C)
            packing.unpad(input_ids.reshape(B * T)), packing.unpad(positions.reshape(B * T))
        )
        for layer in self.layers:
            x = layer(x, packing)
        return packing.pad(x)

    def linear_input_ranges(self, run: Callable[[], object]) -> dict[str, Tensor]:
        """The largest magnitude of each input channel of every linear layer while ``run()`` runs.

        ``run`` feeds the model some representative inputs (calibration);
        the result maps ``"layers.<i>.<name>"`` to a ``(in_features,)`` tensor,
        what :meth:`quantize_int8` smooths with.
        """
        ranges: dict[str, Tensor] = {}

        def record(name: str) -> Callable[[nn.Module, tuple[Tensor, ...], Tensor], None]:
            def hook(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
                largest = inputs[0].detach().abs().reshape(-1, inputs[0].shape[-1]).amax(0)
                ranges[name] = torch.maximum(ranges[name], largest) if name in ranges else largest

            return hook

        handles = [
            getattr(layer, name).register_forward_hook(record(f"layers.{index}.{name}"))
            for index, layer in enumerate(self.layers)
            for name in _LINEARS
        ]
        try:
            run()
        finally:
            for handle in handles:
                handle.remove()
        return ranges

    def quantize_int8(
        self, input_ranges: Mapping[str, Tensor] | None = None, *, alpha: float = 0.5
    ) -> None:
        """Replace every linear layer of the encoder with an int8 one (:class:`_Int8Linear`).

        CPU only and irreversible (reload the checkpoint for fp32). Embeddings
        and LayerNorms stay in float32.

        Args:
            input_ranges: per-channel input magnitudes from
                :meth:`linear_input_ranges`; when given, each layer is smoothed
                (SmoothQuant) with ``s_j = range_j**alpha / max|W[:, j]|**(1 - alpha)``.
                Without them, activations are quantised as they are.
            alpha: how much of the difficulty moves to the weights (0.5 as in
                the SmoothQuant paper).

        Raises:
            ConfigError: the model is not on the CPU, this PyTorch build has
                no int8 linear kernel, ``alpha`` is outside [0, 1], or a range
                is missing or of the wrong shape.
        """
        device = self.embeddings.words.weight.device
        if device.type != "cpu":
            raise ConfigError(f"int8 quantisation runs on the CPU only; the model is on {device}")
        if not _int8.int8_kernels_available():
            raise ConfigError(
                "int8 quantisation needs PyTorch's x86/fbgemm quantized engine; this build "
                f"supports only {torch.backends.quantized.supported_engines}"
            )
        if not 0 <= alpha <= 1:
            raise ConfigError(f"alpha must be in [0, 1], got {alpha!r}")
        limit = 127 if _int8.has_vnni() else 63  # see _Int8Linear
        for index, layer in enumerate(self.layers):
            assert isinstance(layer, _Layer)
            for name in _LINEARS:
                linear = getattr(layer, name)
                if not isinstance(linear, nn.Linear):
                    continue
                smoothing = None
                if input_ranges is not None:
                    key = f"layers.{index}.{name}"
                    found = input_ranges.get(key)
                    if found is None or tuple(found.shape) != (linear.in_features,):
                        raise ConfigError(
                            f"input_ranges[{key!r}] must be a tensor of shape "
                            f"({linear.in_features},), got {found!r}"
                        )
                    weights = linear.weight.detach().abs().amax(dim=0).clamp(min=1e-5)
                    smoothing = found.float().clamp(min=1e-5) ** alpha / weights ** (1 - alpha)
                    smoothing = smoothing.clamp(min=1e-5)
                setattr(layer, name, _Int8Linear(linear, limit, smoothing))

    def load_hf_state(self, state: Mapping[str, Tensor], *, where: str) -> None:
        """Copy a Hugging Face ``BertModel`` state dict into this model, checking every tensor.

        The pooler and the ``position_ids`` buffer are not needed and are ignored.

        Raises:
            IntegrityError: a tensor is missing, unexpected or of the wrong shape or dtype.
        """
        names = {
            "embeddings.words.weight": "embeddings.word_embeddings.weight",
            "embeddings.positions.weight": "embeddings.position_embeddings.weight",
            "embeddings.token_types.weight": "embeddings.token_type_embeddings.weight",
            "embeddings.norm.weight": "embeddings.LayerNorm.weight",
            "embeddings.norm.bias": "embeddings.LayerNorm.bias",
        }
        parts = {
            "attention_out": "attention.output.dense",
            "attention_norm": "attention.output.LayerNorm",
            "ffn_in": "intermediate.dense",
            "ffn_out": "output.dense",
            "ffn_norm": "output.LayerNorm",
        }
        for index in range(len(self.layers)):
            for ours, theirs in parts.items():
                for kind in ("weight", "bias"):
                    names[f"layers.{index}.{ours}.{kind}"] = (
                        f"encoder.layer.{index}.{theirs}.{kind}"
                    )
        fused = {  # our qkv = their query, key and value stacked
            f"layers.{i}.qkv.{kind}": [
                f"encoder.layer.{i}.attention.self.{p}.{kind}" for p in ("query", "key", "value")
            ]
            for i in range(len(self.layers))
            for kind in ("weight", "bias")
        }
        ignored = {"embeddings.position_ids"}
        prefix = "bert." if any(k.startswith("bert.") for k in state) else ""
        expected = self.state_dict()
        sources = {ours: [theirs] for ours, theirs in names.items()} | fused
        wanted = [t for group in sources.values() for t in group]
        if missing := sorted(t for t in wanted if prefix + t not in state):
            raise IntegrityError(f"{where} lacks tensors {missing[:5]} for this BertConfig")
        used = {prefix + t for t in wanted}
        extra = sorted(
            k
            for k in state
            if k not in used
            and not k.startswith(f"{prefix}pooler.")
            and k.removeprefix(prefix) not in ignored
        )
        if extra:
            raise IntegrityError(f"{where} has tensors a BERT encoder does not: {extra[:5]}")
        with torch.no_grad():
            for ours, group in sources.items():
                parts_ = [state[prefix + t] for t in group]
                if not all(p.is_floating_point() for p in parts_):
                    raise IntegrityError(f"{where}: {group[0]} is not a float tensor")
                tensor = torch.cat(parts_) if len(parts_) > 1 else parts_[0]
                if tensor.shape != expected[ours].shape:
                    raise IntegrityError(
                        f"{where}: {', '.join(group)} have shape {tuple(tensor.shape)} together, "
                        f"the config needs {tuple(expected[ours].shape)}"
                    )
                expected[ours].copy_(tensor)
