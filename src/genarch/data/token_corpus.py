"""Token corpora: packing into fixed-length blocks and a memory-mapped dataset.

A tokenised corpus is one long array of token ids (documents separated by an
end-of-text token). :func:`write_token_file` streams it to disk; a
:class:`TokenDataset` opens it with :class:`numpy.memmap`, so a corpus larger
than memory trains without being loaded: a batch reads only the blocks it uses.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from genarch.errors import IntegrityError, InvalidInputError, NotFoundError
from genarch.schemas import Record

__all__ = ["TokenDataset", "TokenFileInfo", "pack_blocks", "write_token_file"]

_FORMAT = "genarch.tokens/1"


class TokenFileInfo(Record):
    """The JSON sidecar of a token file: what it holds and how to read it."""

    format: str = _FORMAT
    dtype: str
    num_tokens: int
    num_sequences: int
    vocab_size: int


def _dtype_for(vocab_size: int) -> np.dtype[np.unsignedinteger]:
    return np.dtype(np.uint16) if vocab_size <= 2**16 else np.dtype(np.uint32)


def _checked_array(sequence: Sequence[int] | np.ndarray, vocab_size: int, index: int) -> np.ndarray:
    array = np.asarray(sequence)
    if array.ndim != 1 or (array.size and not np.issubdtype(array.dtype, np.integer)):
        raise InvalidInputError(
            f"sequence {index} must be a 1-D sequence of integer token ids, got {array.dtype} "
            f"with shape {array.shape}"
        )
    if array.size and (array.min() < 0 or array.max() >= vocab_size):
        raise InvalidInputError(
            f"sequence {index} has token ids outside [0, {vocab_size}): "
            f"min {array.min()}, max {array.max()}"
        )
    return array


def write_token_file(
    path: str | os.PathLike[str],
    sequences: Iterable[Sequence[int] | np.ndarray],
    *,
    vocab_size: int,
    separator: int | None = None,
) -> TokenFileInfo:
    """Stream token sequences into ``path`` (raw ids) and ``path.json`` (the sidecar).

    Ids are stored as uint16 when the vocabulary allows, else uint32. Both files
    are written to temporary names and moved into place only when complete.

    Args:
        sequences: one token sequence per document, consumed lazily.
        vocab_size: every id must be below this.
        separator: an id written after each sequence (e.g. end-of-text).

    Raises:
        InvalidInputError: a sequence is not 1-D integers or holds an id out of range.
    """
    if vocab_size < 1:
        raise InvalidInputError(f"vocab_size must be positive, got {vocab_size}")
    if separator is not None and not 0 <= separator < vocab_size:
        raise InvalidInputError(f"separator {separator} is outside [0, {vocab_size})")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    dtype = _dtype_for(vocab_size)
    total = count = 0
    fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            for index, sequence in enumerate(sequences):
                array = _checked_array(sequence, vocab_size, index).astype(dtype, copy=False)
                if separator is not None:
                    array = np.append(array, np.array([separator], dtype=dtype))
                array.tofile(handle)
                total += array.size
                count += 1
            handle.flush()
            os.fsync(handle.fileno())
        info = TokenFileInfo(
            dtype=dtype.name, num_tokens=total, num_sequences=count, vocab_size=vocab_size
        )
        sidecar = Path(f"{temporary}.json")
        sidecar.write_text(info.model_dump_json(indent=2))
        os.replace(temporary, target)
        os.replace(sidecar, Path(f"{target}.json"))
    except BaseException:
        for leftover in (temporary, f"{temporary}.json"):
            if os.path.exists(leftover):
                os.unlink(leftover)
        raise
    return info


def pack_blocks(
    sequences: Iterable[Sequence[int]], block_size: int, *, separator: int | None = None
) -> Iterator[list[int]]:
    """Concatenate token sequences and cut them into blocks of exactly ``block_size``.

    The incomplete final block is dropped (training needs equal lengths).

    Examples:
        >>> list(pack_blocks([[1, 2, 3], [4, 5], [6, 7, 8, 9]], 4, separator=0))
        [[1, 2, 3, 0], [4, 5, 0, 6], [7, 8, 9, 0]]
    """
    if block_size < 1:
        raise InvalidInputError(f"block_size must be positive, got {block_size}")
    buffer: list[int] = []
    for sequence in sequences:
        buffer.extend(int(t) for t in sequence)
        if separator is not None:
            buffer.append(separator)
        while len(buffer) >= block_size:
            yield buffer[:block_size]
            buffer = buffer[block_size:]


class TokenDataset:
    """A flat array of token ids, in memory or memory-mapped from a token file.

    Args:
        tokens: a 1-D integer array (see :meth:`open` for files).
        vocab_size: the vocabulary size the ids come from.

    Examples:
        >>> data = TokenDataset(np.arange(100) % 7, vocab_size=7)
        >>> batch = data.random_batch(4, 8, torch.Generator().manual_seed(0))
        >>> tuple(batch.shape), batch.dtype
        ((4, 9), torch.int64)
    """

    def __init__(self, tokens: np.ndarray, *, vocab_size: int) -> None:
        if tokens.ndim != 1 or not np.issubdtype(tokens.dtype, np.integer):
            raise InvalidInputError(
                f"tokens must be a 1-D integer array, got {tokens.dtype} {tokens.shape}"
            )
        self.tokens = tokens
        self.vocab_size = vocab_size

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> TokenDataset:
        """Memory-map a file written by :func:`write_token_file`.

        Raises:
            NotFoundError: the file or its sidecar is missing.
            IntegrityError: the file's size does not match its sidecar.
        """
        target, sidecar = Path(path), Path(f"{path}.json")
        if not target.is_file() or not sidecar.is_file():
            raise NotFoundError(f"no token file at {target} (with its {sidecar.name} sidecar)")
        info = TokenFileInfo.parse(sidecar.read_text())
        if info.format != _FORMAT:
            raise IntegrityError(f"{sidecar} has format {info.format!r}, expected {_FORMAT!r}")
        dtype = np.dtype(info.dtype)
        if target.stat().st_size != info.num_tokens * dtype.itemsize:
            raise IntegrityError(
                f"{target} holds {target.stat().st_size} bytes, but its sidecar promises "
                f"{info.num_tokens} {dtype.name} tokens: the file is truncated or foreign"
            )
        tokens: np.ndarray = np.memmap(target, dtype=dtype, mode="r", shape=(info.num_tokens,))
        return cls(tokens, vocab_size=info.vocab_size)

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    def _check_block_size(self, block_size: int) -> None:
        if block_size < 1:
            raise InvalidInputError(f"block_size must be positive, got {block_size}")
        if len(self) < block_size + 1:
            raise InvalidInputError(
                f"the dataset has {len(self)} tokens, too few for blocks of {block_size} (+1 target)"
            )

    def random_batch(
        self, batch_size: int, block_size: int, generator: torch.Generator
    ) -> torch.Tensor:
        """``batch_size`` random windows of ``block_size + 1`` tokens, shape (B, T+1), int64.

        Inputs are ``batch[:, :-1]`` and next-token targets ``batch[:, 1:]``.
        """
        self._check_block_size(block_size)
        if batch_size < 1:
            raise InvalidInputError(f"batch_size must be positive, got {batch_size}")
        starts = torch.randint(len(self) - block_size, (batch_size,), generator=generator).tolist()
        rows = [np.asarray(self.tokens[s : s + block_size + 1], dtype=np.int64) for s in starts]
        return torch.from_numpy(np.stack(rows))

    def blocks(self, block_size: int, batch_size: int = 1) -> Iterator[torch.Tensor]:
        """Consecutive non-overlapping windows of ``block_size + 1`` tokens, in batches.

        Every token (but the tail that does not fill a block) is covered once —
        the order an evaluation needs.
        """
        self._check_block_size(block_size)
        count = (len(self) - 1) // block_size
        for first in range(0, count, batch_size):
            rows = [
                np.asarray(self.tokens[i * block_size : (i + 1) * block_size + 1], dtype=np.int64)
                for i in range(first, min(first + batch_size, count))
            ]
            yield torch.from_numpy(np.stack(rows))

    def split(self, validation_fraction: float) -> tuple[TokenDataset, TokenDataset]:
        """The first part for training and the last ``validation_fraction`` for validation."""
        if not 0.0 < validation_fraction < 1.0:
            raise InvalidInputError(
                f"validation_fraction must be in (0, 1), got {validation_fraction}"
            )
        cut = int(len(self) * (1 - validation_fraction))
        return (
            TokenDataset(self.tokens[:cut], vocab_size=self.vocab_size),
            TokenDataset(self.tokens[cut:], vocab_size=self.vocab_size),
        )
