"""Loss and perplexity of a language model on held-out tokens.

Perplexity is ``exp`` of the mean cross-entropy per predicted token (in nats):
the number of equally likely choices the model is, on average, as uncertain
as. A model that knows nothing scores the vocabulary size; lower is better.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from typing import Annotated, Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from pydantic import Field
from torch import Tensor

from genarch.errors import InvalidInputError
from genarch.schemas import Record
from genarch.validation import describe

__all__ = ["LossReport", "evaluate_loss", "token_log_probs"]


class LossReport(Record):
    """Cross-entropy of a model on a token dataset.

    Attributes:
        loss: mean cross-entropy per predicted token, in nats.
        perplexity: ``exp(loss)``.
        bits_per_token: ``loss / ln 2``.
        num_tokens: how many tokens were predicted.
    """

    loss: float
    perplexity: float
    bits_per_token: float
    num_tokens: Annotated[int, Field(ge=1)]


def _as_1d(block: Any, where: str) -> Tensor:
    if isinstance(block, np.ndarray):
        block = torch.from_numpy(block)
    elif isinstance(block, list | tuple):
        block = torch.tensor(block) if block else torch.zeros(0, dtype=torch.long)
    if not isinstance(block, Tensor) or block.ndim != 1 or block.is_floating_point():
        raise InvalidInputError(
            f"{where} must be a 1-D sequence of integer token ids, got {describe(block)}"
        )
    return block.long()


def _windows(tokens: Any, block_size: int) -> Iterator[Tensor]:
    """Cut the token data into windows of at most ``block_size + 1`` tokens overlapping by one,
    so every token but each block's first is predicted exactly once."""
    if isinstance(tokens, Tensor | np.ndarray) and getattr(tokens, "ndim", 0) == 1:
        blocks: Iterable[Any] = [tokens]
    elif isinstance(tokens, list) and tokens and isinstance(tokens[0], int):
        blocks = [tokens]
    elif isinstance(tokens, Tensor | np.ndarray):
        raise InvalidInputError(
            f"evaluate_loss expected a 1-D token array or an iterable of 1-D blocks, got shape {tuple(tokens.shape)}"
        )
    elif isinstance(tokens, Iterable) and not isinstance(tokens, str | bytes):
        blocks = tokens
    else:
        raise InvalidInputError(f"evaluate_loss expected token ids, got {describe(tokens)}")
    for index, block in enumerate(blocks):
        ids = _as_1d(block, f"token block {index}")
        for start in range(0, max(len(ids) - 1, 0), block_size):
            yield ids[start : start + block_size + 1]


def evaluate_loss(
    model: Callable[[Tensor], Tensor],
    tokens: Tensor | np.ndarray | Iterable[Any],
    *,
    block_size: int | None = None,
    batch_size: int = 8,
    max_batches: int | None = None,
) -> LossReport:
    """Mean next-token cross-entropy and perplexity of ``model`` on ``tokens``.

    Args:
        model: maps token ids ``(B, T)`` to logits ``(B, T, V)`` (a
            :class:`~genarch.models.GPT`, or any such module). Evaluated with
            dropout off and without gradients; its training flag is restored.
        tokens: a 1-D tensor, array or list of token ids (one long stream), or
            an iterable of such blocks (each evaluated separately: no
            prediction crosses a block boundary).
        block_size: the most tokens the model sees at once (default: the
            model's ``config.context_length``). Longer data is cut into
            windows; every token except each block's first is predicted once.
        batch_size: windows per forward pass.
        max_batches: stop after this many batches (a quick estimate).

    Raises:
        InvalidInputError: malformed tokens, or fewer than two tokens in all.

    Example:
        >>> import torch
        >>> from genarch.models import GPT, GPTConfig
        >>> _ = torch.manual_seed(0)
        >>> model = GPT(GPTConfig(vocab_size=64, context_length=16, n_layer=1, n_head=1, n_embd=16))
        >>> report = evaluate_loss(model, torch.randint(0, 64, (100,)))
        >>> report.num_tokens, round(report.perplexity)  # untrained: about the vocabulary size
        (99, 64)
    """
    if block_size is None:
        config = getattr(model, "config", None)
        block_size = getattr(config, "context_length", None)
        if block_size is None:
            raise InvalidInputError("give block_size: the model has no config.context_length")
    if not isinstance(block_size, int) or block_size < 1:
        raise InvalidInputError(f"block_size must be a positive int, got {block_size!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInputError(f"batch_size must be a positive int, got {batch_size!r}")
    parameter = next(iter(model.parameters()), None) if isinstance(model, torch.nn.Module) else None
    device = parameter.device if parameter is not None else torch.device("cpu")
    total, count, batches = 0.0, 0, 0
    pending: list[Tensor] = []

    def run(windows: list[Tensor]) -> None:
        nonlocal total, count
        width = max(len(w) for w in windows) - 1
        inputs = torch.zeros((len(windows), width), dtype=torch.long)
        targets = torch.full((len(windows), width), -100, dtype=torch.long)
        for row, window in enumerate(windows):
            inputs[row, : len(window) - 1] = window[:-1]
            targets[row, : len(window) - 1] = window[1:]
        logits = model(inputs.to(device)).float()
        total += F.cross_entropy(
            logits.reshape(-1, logits.size(-1)), targets.to(device).reshape(-1), reduction="sum"
        ).item()
        count += int((targets != -100).sum())

    was_training = model.training if isinstance(model, torch.nn.Module) else False
    if isinstance(model, torch.nn.Module):
        model.eval()
    try:
        with torch.no_grad():
            for window in _windows(tokens, block_size):
                pending.append(window)
                if len(pending) == batch_size:
                    run(pending)
                    pending, batches = [], batches + 1
                    if max_batches is not None and batches >= max_batches:
                        break
            if pending:
                run(pending)
    finally:
        if isinstance(model, torch.nn.Module):
            model.train(was_training)
    if count == 0:
        raise InvalidInputError("evaluate_loss needs at least two tokens in one block")
    loss = total / count
    return LossReport(
        loss=loss, perplexity=math.exp(loss), bits_per_token=loss / math.log(2), num_tokens=count
    )


def token_log_probs(
    model: torch.nn.Module, tokens: Any, *, stride: int | None = None, batch_size: int = 16
) -> Tensor:
    """``log p(tokens[i] | tokens[:i])`` for every ``i >= 1`` under ``model``: float64 ``(N - 1,)``.

    A sliding window: each window holds up to ``config.context_length`` tokens
    and moves by ``stride`` (default: a quarter of the context), and only the
    last ``stride`` tokens of each window are scored, so every token after the
    first window is predicted from at least ``context - stride`` tokens before
    it. (:func:`evaluate_loss` cuts the stream into windows that do not
    overlap, so a window's first tokens are predicted from little context; it
    is cheaper, and a little pessimistic.) Use it to mix a model's predictions
    with another model's token by token.

    Raises:
        InvalidInputError: not a 1-D stream of token ids, fewer than two tokens,
            or a ``stride`` outside ``[1, context]``.
    """
    stream = _as_1d(tokens, "tokens")
    if len(stream) < 2:
        raise InvalidInputError(f"token_log_probs needs at least two tokens, got {len(stream)}")
    context = getattr(getattr(model, "config", None), "context_length", None)
    if not isinstance(context, int):
        raise InvalidInputError("token_log_probs needs a model with config.context_length")
    stride = stride if stride is not None else max(1, context // 4)
    if isinstance(stride, bool) or not isinstance(stride, int) or not 1 <= stride <= context:
        raise InvalidInputError(f"stride must be an int in [1, {context}], got {stride!r}")
    device = next(iter(model.parameters())).device
    out = torch.empty(len(stream) - 1, dtype=torch.float64)
    # Window w predicts the targets [first, end): the first window all it can, then stride each.
    spans = [(1, min(context, len(stream) - 1) + 1)]
    while spans[-1][1] < len(stream):
        first = spans[-1][1]
        spans.append((first, min(first + stride, len(stream))))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for begin in range(0, len(spans), batch_size):
                batch = spans[begin : begin + batch_size]
                starts = [max(0, end - 1 - context) for _, end in batch]
                width = max(end - 1 - start for (_, end), start in zip(batch, starts, strict=True))
                inputs = torch.zeros((len(batch), width), dtype=torch.long)
                for row, ((_, end), start) in enumerate(zip(batch, starts, strict=True)):
                    inputs[row, : end - 1 - start] = stream[start : end - 1]
                logits = model(inputs.to(device)).float().log_softmax(dim=-1).double().cpu()
                for row, ((first, end), start) in enumerate(zip(batch, starts, strict=True)):
                    positions = torch.arange(first - 1 - start, end - 1 - start)
                    out[first - 1 : end - 1] = logits[row, positions, stream[first:end]]
    finally:
        model.train(was_training)
    return out
