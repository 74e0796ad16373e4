"""The int8 x int8 linear kernel shared by the MiniLM encoder and quantised GPTs.

Weights are int8, symmetric per output channel (``w ≈ scale[o] * q[o, i]``),
packed once for PyTorch's fbgemm/x86 kernel. Activations are quantised on each
call, symmetric **per row**: each row is divided by its largest magnitude and
quantised with a fixed step, so a row's result never depends on the other rows
of its batch. (PyTorch's ``quantized::linear_dynamic`` takes one range from
the whole input instead: a token's output would change with its batch
companions, and a row of small values next to one of large values would keep
almost no precision.) The product is accumulated in int32 by the kernel and
returned in float32 with the bias added (it is packed with the weights); a
batch's product is then scaled back per row.

How many activation levels are safe depends on the CPU. With VNNI, int8 dot
products accumulate in int32 and nothing can overflow: 8-bit activations.
Without VNNI the kernel sums pairs of uint8 x int8 products in int16, so
``2 * activation_max * weight_max`` must stay at or below 32767: full-range
weights (127) then allow 64 levels a side, about 7 bits (uint8 values up to
129: ``2 * 129 * 127 = 32766``).
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor

__all__ = ["activation_levels", "has_vnni", "int8_kernels_available", "pack", "row_scaled_linear"]


def has_vnni() -> bool:
    """Whether this CPU has VNNI int8 dot products (int32 accumulation)."""
    return bool(getattr(torch.cpu, "_is_vnni_supported", lambda: False)())


def int8_kernels_available() -> bool:
    """Whether this PyTorch build has the x86/fbgemm int8 linear kernels."""
    return bool({"x86", "fbgemm"} & set(torch.backends.quantized.supported_engines)) and hasattr(
        torch.ops.quantized, "linear_with_input_q_dq_qweight_dq_output_fp32"
    )


def activation_levels(weight_limit: int) -> int:
    """Largest activation level ``L`` (rows map to ``[-L, L]``) safe with weights ``|q| <= weight_limit``."""
    if has_vnni():
        return 127
    # rows take the uint8 values 1 .. 2L + 1, so 2 * (2L + 1) * weight_limit <= 32767
    return min(127, (32767 // (2 * weight_limit) - 1) // 2)


def pack(q: Tensor, scale: Tensor, bias: Tensor | None = None) -> Any:
    """fbgemm's packed copy of int8 weights ``q`` ``(out, in)``, per-row ``scale`` and ``bias``.

    The kernel adds ``bias`` ``(out,)`` itself: pass the same tensor to
    :func:`row_scaled_linear`.
    """
    with warnings.catch_warnings():
        # PyTorch warns that quantised tensor *creation* is deprecated; this one
        # only exists to hand the int8 weights to the packing op below.
        warnings.simplefilter("ignore")
        quantized = torch._make_per_channel_quantized_tensor(
            q, scale.double(), torch.zeros(q.shape[0], dtype=torch.long), 0
        )
        return torch.ops.quantized.linear_prepack(quantized, bias)


def row_scaled_linear(
    x: Tensor, packed: Any, bias: Tensor | None, levels: int, *, inplace: bool = False
) -> Tensor:
    """``x @ w.T + bias`` for ``x`` ``(..., in)`` with each row quantised to ``levels`` steps a side.

    ``packed`` is ``pack(q, scale, bias)`` with this same ``bias``.
    ``inplace=True`` divides ``x`` itself (for a caller that made ``x`` and no
    longer needs it).
    """
    # At batch 1 every small operation costs more in dispatch and starting
    # threads than in arithmetic (about 3 us each on our 2-core benchmark
    # machine), so a 2-d input is neither reshaped nor viewed back.
    rows = x if x.dim() == 2 else x.reshape(-1, x.shape[-1])
    if rows.shape[0] == 1:
        # One row (a decoding step at batch 1): its scale is a number the kernel takes
        # itself, and the kernel adds the bias, which saves four small operations
        # (measured: 73 -> 39 us for a 384 x 1152 layer with three of them, 2 threads).
        # The result equals the batched path's up to float rounding.
        peak = float(rows.abs().max()) or 1.0  # an all-zero row stays zero
        y: Tensor = torch.ops.quantized.linear_with_input_q_dq_qweight_dq_output_fp32(
            rows, peak / levels, levels + 1, packed
        )
    else:
        # abs().amax(): measured ~10x faster than vector_norm(ord=inf) on CPU.
        row_max = rows.abs().amax(dim=-1, keepdim=True).clamp_(min=1e-12)  # all-zero rows stay 0
        rows = rows.div_(row_max) if inplace else rows / row_max
        # rows now lie in [-1, 1]: uint8 with zero point levels + 1 and step 1/levels holds them
        y = torch.ops.quantized.linear_with_input_q_dq_qweight_dq_output_fp32(
            rows, 1 / levels, levels + 1, packed
        )
        # y = rows @ w.T + bias; scale the product back, not the bias
        y = y.mul_(row_max) if bias is None else torch.addcmul(bias, y.sub_(bias), row_max)
    return y if x.dim() == 2 else y.view(*x.shape[:-1], -1)
