"""The quantised linear layer, its config and kernels: what a quantised GPT is made of.

:func:`~genarch.models.compression.quantize.quantize` swaps a model's linear
layers for :class:`QuantizedLinear` ones; :func:`quantized_layout` rebuilds
that layout when :meth:`GPT.load <genarch.models.GPT.load>` reads a quantised
model back, and :func:`linear_kernel` is what the fast decoding step calls.
This module knows layers, not models, so the model may import it (lazily,
when loading) without an import cycle.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, Self, TypeVar

import torch
import torch.nn.functional as F  # noqa: N812 - the usual torch spelling
from pydantic import Field, model_validator
from torch import Tensor, nn

from genarch import _int8
from genarch.errors import InvalidInputError
from genarch.schemas import Config

__all__ = [
    "INT4_GROUP_SIZES",
    "QuantizationConfig",
    "QuantizedLinear",
    "check_layer_fits",
    "linear_kernel",
    "quantization_of",
    "quantized_layout",
]

M = TypeVar("M", bound=nn.Module)
_ATTRIBUTE = "quantization"  # where a quantised GPT keeps its QuantizationConfig

#: group sizes PyTorch's CPU int4 kernel accepts
INT4_GROUP_SIZES = (32, 64, 128, 256)


class QuantizationConfig(Config):
    """How a model's linear layers are quantised (stored in the saved ``config.json``).

    Attributes:
        scheme: ``"int8"`` (symmetric, per output channel) or ``"int4"``
            (per group of ``group_size`` input channels, each group's 16 levels
            on its row's int8 grid; the formulas are in :class:`QuantizedLinear`).
        group_size: input channels per int4 scale (one of 32, 64, 128, 256);
            ignored by int8 (``None``).
        activations: ``"none"``: weight-only, activations stay fp32;
            ``"dynamic"``: each call also quantises its input to int8 and
            FBGEMM multiplies int8 by int8 (int4 weights are widened to the
            int8 values they stand for, exactly, when the kernel is made).
        lm_head: whether the output layer is quantised too.
    """

    scheme: Literal["int8", "int4"]
    group_size: Annotated[int, Field(ge=1)] | None = None
    activations: Literal["none", "dynamic"] = "none"
    lm_head: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.scheme == "int4" and self.group_size not in INT4_GROUP_SIZES:
            raise ValueError(
                f"group_size must be one of {INT4_GROUP_SIZES} for int4, got {self.group_size}"
            )
        if self.scheme == "int8" and self.group_size is not None:
            raise ValueError("int8 is quantised per output channel: group_size must be None")
        return self


class QuantizedLinear(nn.Module):
    """A linear layer with quantised weights.

    int8: ``w = scale[n] * qweight[n, k]``. int4: ``w = scale[n] *
    (multiplier[n, g] * (q[n, k] - 8) + offset[n, g])`` for ``k`` in group
    ``g``, so every int4 weight is an int8 value on its row's grid
    (:meth:`int8_values`).

    Build one with :meth:`from_linear` (quantises a trained layer) or
    the constructor (the shapes only, to load saved values into). Buffers, as
    saved: ``qweight`` (int8 ``(out, in)``, or uint8 ``(out, in/2)`` holding two
    int4 values ``q`` per byte, even input channel in the low nibble),
    ``scale`` (fp32 ``(out,)``), for int4 ``multiplier`` (uint8, 1 to 17) and
    ``offset`` (int8), both ``(out, in/group_size)``, and ``bias``.
    """

    qweight: Tensor
    scale: Tensor
    multiplier: Tensor
    offset: Tensor
    bias: Tensor | None

    def __init__(
        self,
        in_features: int,
        out_features: int,
        config: QuantizationConfig,
        *,
        bias: bool,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.in_features, self.out_features, self.config = in_features, out_features, config
        check_layer_fits(in_features, config, "in_features")
        if config.scheme == "int8":
            self.register_buffer(
                "qweight", torch.zeros((out_features, in_features), dtype=torch.int8, device=device)
            )
            self.register_buffer("scale", torch.ones(out_features, device=device))
        else:
            groups = in_features // (config.group_size or 1)
            self.register_buffer(
                "qweight",
                torch.zeros((out_features, in_features // 2), dtype=torch.uint8, device=device),
            )
            self.register_buffer("scale", torch.ones(out_features, device=device))
            self.register_buffer(
                "multiplier",
                torch.ones((out_features, groups), dtype=torch.uint8, device=device),
            )
            self.register_buffer(
                "offset", torch.zeros((out_features, groups), dtype=torch.int8, device=device)
            )
        self.register_buffer("bias", torch.zeros(out_features, device=device) if bias else None)
        self._kernel: Callable[[Tensor], Tensor] | None = None

    @classmethod
    def from_linear(cls, layer: nn.Linear, config: QuantizationConfig) -> QuantizedLinear:
        """Quantise a trained ``nn.Linear`` (its weights are read, not changed)."""
        weight = layer.weight.detach().float()
        out = cls(
            layer.in_features,
            layer.out_features,
            config,
            bias=layer.bias is not None,
            device=weight.device,
        )
        with torch.no_grad():
            if config.scheme == "int8":
                scale = weight.abs().amax(dim=1).clamp(min=1e-12) / 127
                out.qweight.copy_(torch.round(weight / scale[:, None]).clamp(-127, 127))
                out.scale.copy_(scale)
            else:
                q, scale, multiplier, offset = _int4_values(weight, config.group_size or 1)
                out.qweight.copy_(_pack_nibbles(q))
                out.scale.copy_(scale)
                out.multiplier.copy_(multiplier)
                out.offset.copy_(offset)
            if layer.bias is not None and out.bias is not None:
                out.bias.copy_(layer.bias.detach())
        return out

    def dequantized_weight(self) -> Tensor:
        """The fp32 ``(out, in)`` weight these values stand for."""
        return self.int8_values().float() * self.scale[:, None]

    def int8_values(self) -> Tensor:
        """The int8 ``(out, in)`` values ``v`` with ``weight = scale[:, None] * v``, exactly.

        For int8 that is ``qweight``; an int4 value ``q`` in ``[0, 15]`` of
        group ``g`` stands for ``multiplier[n, g] * (q - 8) + offset[n, g]``,
        which lies in ``[-128, 127]``.
        """
        if self.config.scheme == "int8":
            return self.qweight
        group = self.config.group_size or 1
        q = _unpack_nibbles(self.qweight).to(torch.int16).view(self.out_features, -1, group) - 8
        wide = q * self.multiplier[..., None].to(torch.int16) + self.offset[..., None]
        return wide.view(self.out_features, self.in_features).to(torch.int8)

    def kernel(self) -> Callable[[Tensor], Tensor]:
        """``x (..., in) -> (..., out)`` with the packed weights bound (packed once, then cached).

        The decoding step (:mod:`genarch.models.decode_step`) calls this
        function directly, without module dispatch.
        """
        if self._kernel is None:
            self._kernel = self._make_kernel()
        return self._kernel

    def forward(self, x: Tensor) -> Tensor:
        return self.kernel()(x)

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._kernel = None  # new values: pack again on the next call

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, {self.config!r}"

    def _make_kernel(self) -> Callable[[Tensor], Tensor]:
        bias = self.bias
        if self.config.activations == "dynamic":  # int8, or int4 widened to int8 exactly
            packed = _int8.pack(self.int8_values(), self.scale, bias)
            levels = _int8.activation_levels(127)
            return functools.partial(
                _int8.row_scaled_linear, packed=packed, bias=bias, levels=levels
            )
        if self.config.scheme == "int4":
            group = self.config.group_size or 1
            q = _unpack_nibbles(self.qweight).to(torch.int32)
            packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 2)
            step = self.scale[:, None] * self.multiplier.float()  # (out, groups)
            zero = self.scale[:, None] * self.offset.float()
            # the kernel computes (q - 8) * step + zero, per group
            scales_zeros = torch.stack((step.t(), zero.t()), dim=-1).contiguous()
            return functools.partial(_int4_matmul, packed, group, scales_zeros, bias)
        return functools.partial(_int8_matmul, self.qweight, self.scale, bias)

    def runtime_bytes(self) -> int:
        """Bytes this layer holds once its kernel is made: saved buffers plus the packed copy.

        The packed copy is FBGEMM's int8 matrix (one byte per weight, plus
        per-channel column offsets) for ``activations="dynamic"``, PyTorch's
        int4 layout (half a byte per weight) for int4 weight-only, and nothing
        for int8 weight-only (its kernel reads ``qweight`` itself).
        """
        saved = sum(b.numel() * b.element_size() for b in self.buffers())
        weights = self.in_features * self.out_features
        if self.config.activations == "dynamic":
            return saved + weights + 4 * self.out_features
        if self.config.scheme == "int4":
            return saved + weights // 2
        return saved


def _int8_matmul(qweight: Tensor, scale: Tensor, bias: Tensor | None, x: Tensor) -> Tensor:
    y = torch._weight_int8pack_mm(x.reshape(-1, x.shape[-1]).contiguous(), qweight, scale)
    if bias is not None:
        y = y.add_(bias)
    return y.view(*x.shape[:-1], -1)


def _int4_matmul(
    packed: Tensor, group: int, scales_zeros: Tensor, bias: Tensor | None, x: Tensor
) -> Tensor:
    rows = x.reshape(-1, x.shape[-1]).contiguous()  # the kernel wants contiguous rows
    y = torch._weight_int4pack_mm_for_cpu(rows, packed, group, scales_zeros)
    if bias is not None:
        y = y.add_(bias)
    return y.view(*x.shape[:-1], -1)


def _int4_values(weight: Tensor, group: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """int4 values ``(out, in)`` in [0, 15] and ``scale`` ``(out,)``, ``multiplier``, ``offset``.

    Row ``n`` gets the int8 grid ``scale[n] = max|w[n, :]| / 127``; group ``g``
    puts its 16 levels on that grid, ``multiplier`` (1 to 17) steps apart from
    ``offset - 8 * multiplier``, centred on the group's range. Each group keeps
    the multiplier with the least squared error (a wide step covers outliers,
    a narrow one resolves the rest), and every level is an int8 value
    ``multiplier * (q - 8) + offset`` in [-128, 127] exactly. The candidates
    are the narrowest step covering the group's range and the four below it.
    """
    rows = weight.shape[0]
    grouped = weight.view(rows, -1, group) / (
        scale := weight.abs().amax(dim=1).clamp(min=1e-12) / 127
    ).view(rows, 1, 1)  # in units of the row's int8 step: within [-127, 127]
    smallest, largest = grouped.amin(dim=-1), grouped.amax(dim=-1)  # (out, groups)
    middle = (smallest + largest) / 2
    widest = torch.ceil((largest - smallest) / 15 - 1e-4).clamp(
        1, 17
    )  # covers the range: no clipping
    best: tuple[Tensor, Tensor, Tensor, Tensor] | None = None
    for narrower in range(5):  # 17 * 15 = 255: a step above 17 would not fit in int8
        m = (widest - narrower).clamp(min=1)
        offset = torch.round(middle + m / 2).clamp(-128 + 8 * m, 127 - 7 * m)
        low = (offset - 8 * m)[..., None]
        q = torch.round((grouped - low) / m[..., None]).clamp(0, 15)
        error = (low + m[..., None] * q - grouped).square().sum(dim=-1)  # (out, groups)
        if best is None:
            best = (error, q, m, offset)
            continue
        better = error < best[0]
        best = (
            torch.where(better, error, best[0]),
            torch.where(better[..., None], q, best[1]),
            torch.where(better, m, best[2]),
            torch.where(better, offset, best[3]),
        )
    assert best is not None
    _, q, multiplier, offset = best
    return (
        q.view(rows, -1).to(torch.uint8),
        scale,
        multiplier.to(torch.uint8),
        offset.to(torch.int8),
    )


def _pack_nibbles(q: Tensor) -> Tensor:
    """``(out, in)`` values in [0, 15] -> ``(out, in/2)`` bytes, even column in the low nibble."""
    return (q[:, 0::2] | (q[:, 1::2] << 4)).to(torch.uint8)


def _unpack_nibbles(packed: Tensor) -> Tensor:
    """Inverse of :func:`_pack_nibbles`."""
    return torch.stack((packed & 15, packed >> 4), dim=-1).view(packed.shape[0], -1)


def check_layer_fits(in_features: int, config: QuantizationConfig, name: str) -> None:
    """Raise :class:`InvalidInputError` when ``in_features`` cannot be int4-grouped."""
    if config.scheme == "int4" and in_features % (config.group_size or 1):
        raise InvalidInputError(
            f"group_size {config.group_size} must divide every layer's input width; "
            f"a layer has {name}={in_features}"
        )


def quantization_of(model: nn.Module) -> QuantizationConfig | None:
    """The :class:`QuantizationConfig` of a quantised model, or None."""
    found = getattr(model, _ATTRIBUTE, None)
    return found if isinstance(found, QuantizationConfig) else None


def quantized_layout(model: M, saved: Mapping[str, Any]) -> M:
    """Give ``model`` (just built from its config) the empty quantised layers ``saved`` describes.

    ``saved`` is the ``"quantization"`` field of a saved ``config.json``; this
    is how :meth:`GPT.load <genarch.models.GPT.load>` rebuilds a quantised model
    before loading its values. Works on the ``meta`` device too.

    Raises:
        ConfigError: ``saved`` is not a valid :class:`QuantizationConfig`.
    """
    config = QuantizationConfig.parse(saved)
    for name, layer in _linear_layers(model, config).items():
        assert isinstance(layer, nn.Linear)
        model.set_submodule(
            name,
            QuantizedLinear(
                layer.in_features,
                layer.out_features,
                config,
                bias=layer.bias is not None,
                device=layer.weight.device,
            ),
        )
    setattr(model, _ATTRIBUTE, config)
    return model


def _linear_layers(model: nn.Module, config: QuantizationConfig) -> dict[str, nn.Module]:
    """The linear layers of a GPT-shaped ``model`` (``blocks``, ``lm_head``) that ``config`` quantises."""
    blocks = model.get_submodule("blocks")
    assert isinstance(blocks, nn.ModuleList)
    names = [
        f"blocks.{i}.{part}"
        for i in range(len(blocks))
        for part in ("attn.qkv", "attn.proj", "mlp.up", "mlp.down")
    ]
    if config.lm_head:
        names.append("lm_head")
    return {name: model.get_submodule(name) for name in names}


def linear_kernel(layer: nn.Module) -> Callable[[Tensor], Tensor]:
    """``x -> layer(x)`` without module dispatch, for an ``nn.Linear`` or a :class:`QuantizedLinear`."""
    if isinstance(layer, QuantizedLinear):
        return layer.kernel()
    assert isinstance(layer, nn.Linear)
    return functools.partial(_linear, layer.weight, layer.bias)


def _linear(weight: Tensor, bias: Tensor | None, x: Tensor) -> Tensor:
    return F.linear(x, weight, bias)
