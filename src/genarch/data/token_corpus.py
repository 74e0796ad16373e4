"""Token corpora: packing into fixed-length blocks and a memory-mapped dataset.

A tokenised corpus is one long array of token ids (documents separated by an
end-of-text token). :func:`write_token_file` streams it to disk; a
:class:`TokenDataset` opens it with :class:`numpy.memmap`, so a corpus larger
than memory trains without being loaded: a batch reads only the blocks it uses.

On disk a token file is a directory (format ``"genarch.tokens/2"``) holding the
raw ids (``tokens.bin``), what they are (``tokens.json``: dtype, counts,
vocabulary size) and the SHA-256 of both (``SHA256SUMS``), written and replaced
as one unit through :mod:`genarch.persistence`: a crash at any moment leaves the
previous complete token file or the new one, never ids and a description that
disagree. The first layout — the ids in ``path`` and the description in
``path.json`` beside it (``"genarch.tokens/1"``) — still opens.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Annotated, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field

from genarch.errors import IntegrityError, InvalidInputError, NotFoundError
from genarch.persistence import open_saved, reading, save_component
from genarch.schemas import Record
from genarch.validation import describe, require_count, require_instance

__all__ = ["TokenDataset", "TokenFileInfo", "pack_blocks", "write_token_file"]

_FORMAT = "genarch.tokens/1"  # the first layout: raw ids in ``path``, this sidecar in ``path.json``
_DIRECTORY_FORMAT = "genarch.tokens/2"  # one directory: tokens.bin, tokens.json, SHA256SUMS
_HEADER_FILE = "tokens.json"
_DATA_FILE = "tokens.bin"
MAX_VOCAB_SIZE = 2**32
"""The largest vocabulary a token file holds: ids are stored as uint32 at most."""
_SCAN_CHUNK = 1 << 22  # ids checked at a time when a token file is opened


class TokenFileInfo(Record):
    """What a token file holds and how to read it (its ``tokens.json``)."""

    format: Literal["genarch.tokens/1", "genarch.tokens/2"] = "genarch.tokens/2"
    dtype: Literal["uint16", "uint32"]
    num_tokens: Annotated[int, Field(ge=0)]
    num_sequences: Annotated[int, Field(ge=0)]
    vocab_size: Annotated[int, Field(ge=1, le=MAX_VOCAB_SIZE)]


def _dtype_for(vocab_size: int) -> np.dtype[np.unsignedinteger]:
    return np.dtype(np.uint16) if vocab_size <= 2**16 else np.dtype(np.uint32)


def _checked_array(sequence: Sequence[int] | np.ndarray, vocab_size: int, index: int) -> np.ndarray:
    try:
        array = np.asarray(sequence)
    except (TypeError, ValueError) as error:  # ragged or foreign objects
        raise InvalidInputError(
            f"write_token_file: sequence {index} must be a 1-D sequence of integer token ids, "
            f"got {describe(sequence)} ({error})"
        ) from None
    if array.ndim != 1 or (
        array.size and (array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer))
    ):
        raise InvalidInputError(
            f"write_token_file: sequence {index} must be a 1-D sequence of integer token ids, "
            f"got {array.dtype} with shape {array.shape}"
        )
    if array.size and (array.min() < 0 or array.max() >= vocab_size):
        raise InvalidInputError(
            f"write_token_file: sequence {index} has token ids outside [0, {vocab_size}): "
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
    """Stream token sequences into the token file ``path`` (a directory), replacing it atomically.

    Ids are stored as uint16 when the vocabulary allows, else uint32. The ids
    are streamed to a staging area first; the directory holding them, their
    description and their SHA-256 replaces ``path`` in one step only when all
    of it is complete (see :mod:`genarch.persistence`), so a crash leaves the
    previous token file loadable. A token file of the first layout at ``path``
    (and its ``path.json``) is replaced too.

    Args:
        sequences: one token sequence per document, consumed lazily.
        vocab_size: every id must be below this; at most ``2**32`` (uint32).
        separator: an id written after each sequence (e.g. end-of-text).

    Raises:
        InvalidInputError: ``vocab_size`` or ``separator`` out of range, or a
            sequence is not 1-D integers or holds an id out of range (nothing
            is written then).
    """
    where = "write_token_file"
    vocab_size = require_count(vocab_size, where, "vocab_size", maximum=MAX_VOCAB_SIZE)
    if separator is not None:
        separator = require_count(separator, where, "separator", minimum=0, maximum=vocab_size - 1)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    dtype = _dtype_for(vocab_size)
    total = count = 0
    # Streamed into a directory named like a save's staging directory, so that
    # the next save of ``path`` cleans it up if this process dies mid-way.
    first_layout = target.is_file()
    staging = Path(
        tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}-", suffix=".tmp", dir=target.parent)
    )
    try:
        with open(staging / _DATA_FILE, "wb") as handle:
            for index, sequence in enumerate(sequences):
                array = _checked_array(sequence, vocab_size, index).astype(dtype, copy=False)
                if separator is not None:
                    array = np.append(array, np.array([separator], dtype=dtype))
                array.tofile(handle)
                total += array.size
                count += 1
        info = TokenFileInfo(
            dtype=dtype.name,
            num_tokens=total,
            num_sequences=count,
            vocab_size=vocab_size,
        )

        def move_tokens(directory: Path) -> None:
            os.replace(staging / _DATA_FILE, directory / _DATA_FILE)

        save_component(
            target,
            _DIRECTORY_FORMAT,
            header=info.model_dump(mode="json"),
            write_files=move_tokens,
            header_file=_HEADER_FILE,
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if first_layout:  # the replaced file of the first layout: its sidecar and any leftover
        Path(f"{target}.json").unlink(missing_ok=True)
        for leftover in target.parent.glob(f".{target.name}.trash-*"):
            if leftover.is_file():
                leftover.unlink(missing_ok=True)
    return info


def _info_from(document: object, file: Path) -> TokenFileInfo:
    """The parsed description of a token file; IntegrityError naming ``file`` and the field."""
    try:
        return TokenFileInfo.parse(document)  # type: ignore[arg-type]
    except (InvalidInputError, TypeError) as error:
        raise IntegrityError(f"{file} does not describe a token file: {error}") from None


def _checked_tokens(data: Path, info: TokenFileInfo, description: Path) -> np.ndarray:
    """Memory-map ``data`` as ``info`` describes it, checking its size and every id.

    Raises:
        IntegrityError: the size does not match, or an id is not below the
            described ``vocab_size`` (a truncated, foreign or tampered file).
    """
    dtype = np.dtype(info.dtype)
    size = data.stat().st_size
    if size != info.num_tokens * dtype.itemsize:
        raise IntegrityError(
            f"{data} holds {size} bytes, but {description} (fields num_tokens, dtype) "
            f"promises {info.num_tokens} {dtype.name} tokens: the file is truncated or foreign"
        )
    tokens: np.ndarray = (
        np.memmap(data, dtype=dtype, mode="r", shape=(info.num_tokens,))
        if info.num_tokens
        else np.zeros(0, dtype=dtype)
    )
    largest = max(
        (int(tokens[i : i + _SCAN_CHUNK].max()) for i in range(0, len(tokens), _SCAN_CHUNK)),
        default=-1,
    )
    if largest >= info.vocab_size:
        raise IntegrityError(
            f"{data} holds token id {largest}, but {description} field vocab_size is "
            f"{info.vocab_size}: ids must be below it"
        )
    return tokens


def _open_first_layout(target: Path, sidecar: Path) -> np.ndarray | TokenDataset:
    where = sidecar
    try:
        document = json.loads(sidecar.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:
        raise IntegrityError(f"{where} is not a readable token-file description: {error}") from None
    info = _info_from(document, where)
    if info.format != _FORMAT:
        raise IntegrityError(
            f"{where} field format is {info.format!r}, expected {_FORMAT!r} for a token file "
            "with its description beside it"
        )
    return TokenDataset._trusted(_checked_tokens(target, info, where), info.vocab_size)


def pack_blocks(
    sequences: Iterable[Sequence[int]], block_size: int, *, separator: int | None = None
) -> Iterator[list[int]]:
    """Concatenate token sequences and cut them into blocks of exactly ``block_size``.

    The incomplete final block is dropped (training needs equal lengths).

    Examples:
        >>> list(pack_blocks([[1, 2, 3], [4, 5], [6, 7, 8, 9]], 4, separator=0))
        [[1, 2, 3, 0], [4, 5, 0, 6], [7, 8, 9, 0]]
    """
    block_size = require_count(block_size, "pack_blocks", "block_size")
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
        vocab_size: the vocabulary size the ids come from; every id must be below it.

    Attributes:
        max_batch_tokens: the most tokens one batch may hold
            (``batch_size * (block_size + 1)``), so that a mistaken size fails
            with a clear error instead of allocating without bound. 2**27
            (1 GiB of int64) by default; set it on the class or an instance to
            allow more.

    Raises:
        InvalidInputError: ``tokens`` is not a 1-D integer array, ``vocab_size``
            is not an int in ``[1, 2**32]``, or an id is outside ``[0, vocab_size)``.

    Examples:
        >>> data = TokenDataset(np.arange(100) % 7, vocab_size=7)
        >>> batch = data.random_batch(4, 8, torch.Generator().manual_seed(0))
        >>> tuple(batch.shape), batch.dtype
        ((4, 9), torch.int64)
    """

    max_batch_tokens: ClassVar[int] = 2**27

    def __init__(self, tokens: np.ndarray, *, vocab_size: int) -> None:
        where = "TokenDataset"
        if (
            not isinstance(tokens, np.ndarray)
            or tokens.ndim != 1
            or tokens.dtype == np.bool_
            or not np.issubdtype(tokens.dtype, np.integer)
        ):
            shown = (
                f"{tokens.dtype} {tokens.shape}"
                if isinstance(tokens, np.ndarray)
                else describe(tokens)
            )
            raise InvalidInputError(f"{where}: tokens must be a 1-D integer array, got {shown}")
        vocab_size = require_count(vocab_size, where, "vocab_size", maximum=MAX_VOCAB_SIZE)
        if tokens.size and (int(tokens.min()) < 0 or int(tokens.max()) >= vocab_size):
            raise InvalidInputError(
                f"{where}: tokens hold ids outside [0, {vocab_size}) (vocab_size): "
                f"min {int(tokens.min())}, max {int(tokens.max())}"
            )
        self.tokens = tokens
        self.vocab_size = vocab_size

    @classmethod
    def _trusted(cls, tokens: np.ndarray, vocab_size: int) -> TokenDataset:
        """A dataset of tokens already checked (a slice of one, or a verified file)."""
        dataset = cls.__new__(cls)
        dataset.tokens, dataset.vocab_size = tokens, vocab_size
        return dataset

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> TokenDataset:
        """Memory-map a token file written by :func:`write_token_file`.

        Every file is checked against its SHA-256 (which reads it once), its
        size against its description, and every id against the described
        vocabulary size. A token file of the first layout (ids in ``path``,
        description in ``path.json``) opens too, without the hashes it never had.

        Raises:
            NotFoundError: nothing is saved at ``path``.
            IntegrityError: a file is damaged, truncated, foreign or inconsistent
                with its description (the file and field are named).
        """
        target = Path(path)
        sidecar = Path(f"{target}.json")
        if target.is_file():
            if not sidecar.is_file():
                raise NotFoundError(f"no token file at {target}: its {sidecar.name} is missing")
            return _open_first_layout(target, sidecar)  # type: ignore[return-value]
        if not target.exists() and sidecar.is_file():
            # A crash while a first-layout file was being replaced: its data lies aside.
            for aside in sorted(target.parent.glob(f".{target.name}.old-*"), reverse=True):
                if aside.is_file():
                    return _open_first_layout(aside, sidecar)  # type: ignore[return-value]
        try:
            saved = open_saved(target, _DIRECTORY_FORMAT, header_file=_HEADER_FILE)
        except NotFoundError:
            raise NotFoundError(f"no token file at {target}") from None
        description = saved.root / _HEADER_FILE
        info = _info_from(saved.header, description)
        with reading(saved.kind, saved.root):
            data = saved.path(_DATA_FILE)
        return cls._trusted(_checked_tokens(data, info, description), info.vocab_size)

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    def _check_block_size(self, block_size: object, where: str) -> int:
        block_size = require_count(block_size, where, "block_size")
        if len(self) < block_size + 1:
            raise InvalidInputError(
                f"{where}: the dataset has {len(self)} tokens, too few for blocks of "
                f"{block_size} (+1 target)"
            )
        return block_size

    def _check_batch(self, batch_size: object, block_size: int, where: str) -> int:
        most = max(1, self.max_batch_tokens // (block_size + 1))
        return require_count(batch_size, where, "batch_size", maximum=most)

    def random_batch(
        self, batch_size: int, block_size: int, generator: torch.Generator
    ) -> torch.Tensor:
        """``batch_size`` random windows of ``block_size + 1`` tokens, shape (B, T+1), int64.

        Inputs are ``batch[:, :-1]`` and next-token targets ``batch[:, 1:]``.

        Raises:
            InvalidInputError: a size that is not a positive int, blocks longer
                than the data, a batch over :attr:`max_batch_tokens`, or
                ``generator`` is not a ``torch.Generator``.
        """
        where = "TokenDataset.random_batch"
        block_size = self._check_block_size(block_size, where)
        batch_size = self._check_batch(batch_size, block_size, where)
        require_instance(generator, torch.Generator, where)
        starts = torch.randint(len(self) - block_size, (batch_size,), generator=generator).tolist()
        rows = [np.asarray(self.tokens[s : s + block_size + 1], dtype=np.int64) for s in starts]
        return torch.from_numpy(np.stack(rows))

    def blocks(self, block_size: int, batch_size: int = 1) -> Iterator[torch.Tensor]:
        """Consecutive non-overlapping windows of ``block_size + 1`` tokens, in batches.

        Every token (but the tail that does not fill a block) is covered once —
        the order an evaluation needs.

        Raises:
            InvalidInputError: as :meth:`random_batch`.
        """
        where = "TokenDataset.blocks"
        block_size = self._check_block_size(block_size, where)
        batch_size = self._check_batch(batch_size, block_size, where)
        return self._blocks(block_size, batch_size)

    def _blocks(self, block_size: int, batch_size: int) -> Iterator[torch.Tensor]:
        count = (len(self) - 1) // block_size
        for first in range(0, count, batch_size):
            rows = [
                np.asarray(self.tokens[i * block_size : (i + 1) * block_size + 1], dtype=np.int64)
                for i in range(first, min(first + batch_size, count))
            ]
            yield torch.from_numpy(np.stack(rows))

    def split(self, validation_fraction: float) -> tuple[TokenDataset, TokenDataset]:
        """The first part for training and the last ``validation_fraction`` for validation."""
        if (
            isinstance(validation_fraction, bool)
            or not isinstance(validation_fraction, int | float)
            or not 0.0 < validation_fraction < 1.0
        ):
            raise InvalidInputError(
                f"TokenDataset.split expected validation_fraction in (0, 1), "
                f"got {describe(validation_fraction)}"
            )
        cut = int(len(self) * (1 - validation_fraction))
        return (
            TokenDataset._trusted(self.tokens[:cut], self.vocab_size),
            TokenDataset._trusted(self.tokens[cut:], self.vocab_size),
        )
