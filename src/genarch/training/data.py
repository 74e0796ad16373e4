"""Deterministic, shardable batches for the trainer.

The batch a step trains on is a pure function of ``(seed, step)``: each epoch
is a permutation drawn from a generator seeded with ``(seed, epoch)``, cut into
full batches (the last partial batch of an epoch is dropped). Nothing is
iterated ahead, so resuming at step ``k`` just computes batch ``k`` — the data
position of a checkpoint is its step — and under ``torch.distributed`` every
process computes the same global batch and takes its own contiguous share
(the distributed sampler).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch.utils.data import default_collate

from genarch.errors import ConfigError, InvalidInputError
from genarch.validation import describe

__all__ = ["IndexedData", "token_blocks"]


def token_blocks(tokens: torch.Tensor | Sequence[int], block_size: int) -> torch.Tensor:
    """Cut a token stream into rows of ``block_size + 1`` tokens for language modelling.

    Consecutive rows overlap by one token, so every token is predicted once.

    Raises:
        InvalidInputError: the stream is shorter than one block.

    Examples:
        >>> token_blocks(list(range(7)), 3)
        tensor([[0, 1, 2, 3],
                [3, 4, 5, 6]])
    """
    if not (isinstance(block_size, int) and block_size >= 1):
        raise ConfigError(f"block_size must be an int >= 1, got {block_size!r}")
    stream = torch.as_tensor(tokens, dtype=torch.long).reshape(-1)
    rows = (stream.numel() - 1) // block_size
    if rows < 1:
        raise InvalidInputError(
            f"need at least {block_size + 1} tokens for one block, got {stream.numel()}"
        )
    return stream[: rows * block_size + 1].unfold(0, block_size + 1, block_size).clone()


class IndexedData:
    """A dataset the trainer can index: a tensor, a tuple/dict of tensors, or a sequence.

    Args:
        data: ``(N, ...)`` tensor; a tuple or dict of tensors sharing ``N``
            (columns); or any other sequence of examples (a list of rows),
            combined by ``collate``.
        collate: combines a list of examples into a batch (default:
            ``torch.utils.data.default_collate``); only used for sequences.
    """

    def __init__(self, data: object, collate: Callable[[list[Any]], Any] | None = None) -> None:
        self.data = data
        self.collate = collate or default_collate
        if isinstance(data, torch.Tensor):
            self._size = int(data.shape[0]) if data.ndim else -1
        elif isinstance(data, Mapping) or (
            isinstance(data, tuple) and data and all(isinstance(p, torch.Tensor) for p in data)
        ):
            parts = list(data.values()) if isinstance(data, Mapping) else list(data)
            sizes = {
                int(p.shape[0]) if isinstance(p, torch.Tensor) and p.ndim else -1 for p in parts
            }
            self._size = sizes.pop() if len(sizes) == 1 else -1
        elif isinstance(data, Sequence) and not isinstance(data, str | bytes):
            self._size = len(data)
        else:
            self._size = -1
        if self._size < 0:
            raise InvalidInputError(
                "expected training data as an (N, ...) tensor, a tuple/dict of tensors with the "
                f"same first dimension, or a sequence of examples; got {describe(data)}"
            )

    def __len__(self) -> int:
        return self._size

    def take(self, indices: torch.Tensor) -> Any:
        """The batch made of the examples at ``indices``."""
        data = self.data
        if isinstance(data, torch.Tensor):
            return data[indices]
        if isinstance(data, Mapping):
            return {key: value[indices] for key, value in data.items()}
        if isinstance(data, tuple) and isinstance(data[0], torch.Tensor):
            return tuple(part[indices] for part in data)
        return self.collate([data[i] for i in indices.tolist()])  # type: ignore[index]

    def batches_per_epoch(self, batch_size: int) -> int:
        """Full batches in one pass over the data."""
        return len(self) // batch_size

    def train_indices(
        self, step: int, batch_size: int, seed: int, *, shuffle: bool = True
    ) -> tuple[torch.Tensor, int, int]:
        """The example indices of the global batch for ``step``, with (epoch, batch in epoch)."""
        per_epoch = self.batches_per_epoch(batch_size)
        epoch, position = divmod(step, per_epoch)
        if shuffle:
            generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
            order = torch.randperm(len(self), generator=generator)
        else:
            order = torch.arange(len(self))
        return order[position * batch_size : (position + 1) * batch_size], epoch, position


def shard(indices: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """This process's contiguous share of a global batch's indices."""
    size = indices.numel()
    return indices[size * rank // world : size * (rank + 1) // world]


def to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor of a (nested) batch to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {key: to_device(value, device) for key, value in batch.items()}
    if isinstance(batch, tuple | list):
        return type(batch)(to_device(part, device) for part in batch)
    return batch
