"""The output layer and the cross-entropy together, a chunk of rows at a time.

A language model's last step — logits ``h Wᵀ`` over the whole vocabulary, then
cross-entropy against the next tokens — is the largest tensor of a training
step: at batch 8, context 256 and a vocabulary of 8,192 the logits alone are
67 MB, and autograd keeps three such tensors alive (logits, log-probabilities,
their gradient). :func:`linear_cross_entropy` never holds more than one chunk
of rows, in one buffer that every chunk reuses: it computes the chunk's logits
into it, turns them in place into log-probabilities (one fused ``log_softmax``
pass, which gives the loss) and then into the gradient ``softmax - one_hot``
that the backward pass would compute (one ``exp`` pass), and turns that into
the gradients of the hidden states and of the output matrix with two matrix
products; the per-row scale of the mean is applied to the narrow ``(rows, C)``
side of those products rather than to the ``(rows, V)`` gradient. The backward
pass then only scales the results by the incoming gradient. The matrix products
are the same three the plain computation does, so the arithmetic is unchanged;
what goes is the memory traffic of the large tensors (and, on CPU, the page
faults of allocating them afresh every step).
The same idea is known as "fused linear cross-entropy" (Liger Kernel) or
chunked cross-entropy (torchtune).

The result equals ``F.cross_entropy(hidden @ weight.T, targets)`` — mean over
the targets that are not ``ignore_index``, with the same label smoothing — and
so do its gradients, up to floating-point rounding.

Examples:
    >>> import torch
    >>> import torch.nn.functional as F
    >>> g = torch.Generator().manual_seed(0)
    >>> hidden = torch.randn(10, 8, generator=g, requires_grad=True)
    >>> weight = torch.randn(50, 8, generator=g, requires_grad=True)
    >>> targets = torch.randint(0, 50, (10,), generator=g)
    >>> fused = linear_cross_entropy(hidden, weight, targets, chunk_rows=3)
    >>> plain = F.cross_entropy(hidden @ weight.T, targets)
    >>> torch.allclose(fused, plain)
    True
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from genarch.errors import InvalidInputError

__all__ = ["linear_cross_entropy"]

#: Elements of logits one chunk may hold: 2**23 floats are 32 MB (1,024 rows at a
#: vocabulary of 8,192, half the logits of a batch of 8 x 256 tokens). Thinner
#: chunks make the three matrix products per chunk too thin to keep two threads
#: busy: forward and backward of that output layer (2,048 rows, width 384) took
#: 0.83 s of CPU time in 256-row chunks, 0.66 s in 512-row and 0.59 s in
#: 1,024-row chunks, and 0.58 s unchunked (2 threads, best of 10 on a loaded
#: shared machine).
CHUNK_ELEMENTS = 2**23


def linear_cross_entropy(
    hidden: Tensor,
    weight: Tensor,
    targets: Tensor,
    *,
    label_smoothing: float = 0.0,
    ignore_index: int = -100,
    chunk_rows: int | None = None,
) -> Tensor:
    """Mean cross-entropy of the logits ``hidden @ weight.T`` against ``targets``, chunked.

    Args:
        hidden: ``(N, C)`` floating-point hidden states (any leading shape is
            flattened into ``N``).
        weight: ``(V, C)`` output matrix of the same dtype and device.
        targets: ``N`` target ids in ``range(V)``, or ``ignore_index``.
        label_smoothing: in ``[0, 1)``, as in :func:`torch.nn.functional.cross_entropy`.
        ignore_index: the target id that contributes nothing (padding).
        chunk_rows: rows per chunk; default: the fewest chunks of equal size
            whose logits hold at most :data:`CHUNK_ELEMENTS` numbers (32 MB in
            float32).

    Returns:
        The scalar mean loss over the non-ignored targets (NaN if there are none,
        as with :func:`torch.nn.functional.cross_entropy`). It supports one
        backward pass (not double differentiation).

    Raises:
        InvalidInputError: mismatched shapes, dtypes or devices, or targets
            outside the vocabulary.
    """
    width = weight.shape[-1] if weight.ndim == 2 else None
    if not hidden.is_floating_point() or hidden.shape[-1:] != (width,):
        raise InvalidInputError(
            f"hidden (..., C) and weight (V, C) must share C, got {tuple(hidden.shape)} "
            f"and {tuple(weight.shape)}"
        )
    if hidden.dtype != weight.dtype or hidden.device != weight.device:
        raise InvalidInputError(
            f"hidden and weight must share dtype and device, got {hidden.dtype} on "
            f"{hidden.device} and {weight.dtype} on {weight.device}"
        )
    hidden = hidden.reshape(-1, hidden.shape[-1])
    targets = targets.reshape(-1)
    if targets.shape[0] != hidden.shape[0] or targets.is_floating_point():
        raise InvalidInputError(
            f"targets must be {hidden.shape[0]} integer ids, one per row of hidden, "
            f"got {targets.dtype} of shape {tuple(targets.shape)}"
        )
    vocab = weight.shape[0]
    kept = targets[targets != ignore_index]
    if kept.numel() and (int(kept.min()) < 0 or int(kept.max()) >= vocab):
        raise InvalidInputError(
            f"targets must be ids in range({vocab}) or {ignore_index}, "
            f"got min {int(kept.min())}, max {int(kept.max())}"
        )
    if not 0.0 <= label_smoothing < 1.0:
        raise InvalidInputError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    if chunk_rows is None:  # equal chunks, so that the last one is not a thin remainder
        chunks = max(1, -(-hidden.shape[0] // max(1, CHUNK_ELEMENTS // vocab)))
        rows = max(1, -(-hidden.shape[0] // chunks))
    else:
        rows = chunk_rows
    if rows < 1:
        raise InvalidInputError(f"chunk_rows must be at least 1, got {chunk_rows}")
    loss: Tensor = _LinearCrossEntropy.apply(  # type: ignore[no-untyped-call]
        hidden, weight, targets, label_smoothing, ignore_index, rows
    )
    return loss


class _LinearCrossEntropy(torch.autograd.Function):
    """Forward computes the loss and, if needed, both gradients; backward scales them."""

    @staticmethod
    def forward(
        ctx: Any,
        hidden: Tensor,
        weight: Tensor,
        targets: Tensor,
        label_smoothing: float,
        ignore_index: int,
        chunk_rows: int,
    ) -> Tensor:
        want_hidden, want_weight = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        rows, vocab = hidden.shape[0], weight.shape[0]
        keep = targets != ignore_index
        count = keep.sum()
        ids = targets.masked_fill(~keep, 0)  # ignored rows read any id; their weight is 0
        row_weight = keep.to(hidden.dtype) / count  # each kept row's share of the mean
        total = hidden.new_zeros(())
        grad_hidden = torch.empty_like(hidden) if want_hidden else None
        grad_weight = torch.empty_like(weight) if want_weight else None  # the first chunk fills it
        # One (R, V) buffer serves every chunk: it holds the logits, then (in place) the
        # log-probabilities, then the gradient. Only it is as large as the vocabulary, and each
        # pass over it (log_softmax, exp) is one fused kernel.
        buffer = hidden.new_empty(min(chunk_rows, rows), vocab)
        for start in range(0, rows, chunk_rows):
            h = hidden[start : start + chunk_rows]
            count_here = h.shape[0]
            chosen, share = (
                ids[start : start + chunk_rows, None],
                row_weight[start : start + chunk_rows],
            )
            logits = torch.mm(h, weight.t(), out=buffer[:count_here])
            # In place: each row's max and sum are read before any of it is written.
            log_p = torch.log_softmax(logits, dim=1, out=logits)
            losses = -log_p.gather(1, chosen)[:, 0]
            if label_smoothing:  # (1 - e) * nll + e * mean over the vocabulary of -log p
                losses = (1 - label_smoothing) * losses - label_smoothing * log_p.mean(1)
            total += losses @ share
            if grad_hidden is None and grad_weight is None:
                continue
            # d loss / d logits = (softmax - (1 - e) * one_hot - e / V) * share. The row
            # scale ``share`` is applied to the (R, C) side of each product, not to the (R, V)
            # gradient: the same products, one pass over the large tensor fewer.
            grad = log_p.exp_()
            grad.scatter_add_(1, chosen, grad.new_full(chosen.shape, label_smoothing - 1))
            if label_smoothing:
                grad.sub_(label_smoothing / vocab)
            if grad_hidden is not None:
                part = torch.mm(grad, weight, out=grad_hidden[start : start + chunk_rows])
                part.mul_(share[:, None])
            if grad_weight is not None:
                grad_weight.addmm_(grad.t(), h * share[:, None], beta=1 if start else 0)
        ctx.save_for_backward(grad_hidden, grad_weight)
        return total

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        grad_hidden, grad_weight = ctx.saved_tensors
        return (
            None if grad_hidden is None else grad_hidden * grad_output,
            None if grad_weight is None else grad_weight * grad_output,
            None,
            None,
            None,
            None,
        )
