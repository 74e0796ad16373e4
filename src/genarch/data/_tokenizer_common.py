"""What genarch's tokenisers share: input checks, error messages and the save layout.

Private: :class:`~genarch.data.tiktoken_tokenizer.TiktokenTokenizer`,
:class:`~genarch.data.byte_tokenizer.ByteTokenizer`, the
:class:`~genarch.data.tokenize_stage.Tokenize` stage and
:func:`~genarch.data.tokenizer_references.load_tokenizer` use it.

A saved tokeniser is a directory whose header file is ``tokenizer.json``
(format ``"genarch.tokenizer/1"``) with a ``"kind"`` field (``"tiktoken"`` or
``"bytes"``) saying which class reads it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

from genarch.errors import IntegrityError, InvalidInputError
from genarch.persistence import SavedComponent, open_saved
from genarch.protocols import PathLike
from genarch.validation import describe, require_text

__all__ = [
    "TOKENIZER_FILE",
    "TOKENIZER_FORMAT",
    "allowed_specials",
    "as_id_list",
    "bad_ids_error",
    "is_rust_panic",
    "not_text_error",
    "open_saved_tokenizer",
    "surrogates_error",
]

TOKENIZER_FILE = "tokenizer.json"
"""The header file of a saved tokeniser."""

TOKENIZER_FORMAT = "genarch.tokenizer/1"
"""The ``"format"`` of that header, for every kind of tokeniser."""


def allowed_specials(
    allowed_special: Iterable[str] | Literal["all"], specials: Mapping[str, int], where: str
) -> frozenset[str]:
    """The special tokens named by ``allowed_special`` (``"all"`` for every one).

    Raises:
        InvalidInputError: not a collection of strings, or a name that is not a special token.
    """
    if allowed_special == "all":
        return frozenset(specials)
    if isinstance(allowed_special, str) or not isinstance(allowed_special, Iterable):
        raise InvalidInputError(
            f"{where}: allowed_special must be a collection of special-token strings or 'all', "
            f"got {describe(allowed_special)}"
        )
    allowed = frozenset(allowed_special)
    unknown = allowed - set(specials)
    if unknown:
        raise InvalidInputError(
            f"{where}: allowed_special names {sorted(unknown)!r}, which are not special tokens "
            f"of this tokenizer (it has {sorted(specials)!r})"
        )
    return allowed


def not_text_error(text: object, where: str) -> InvalidInputError:
    """The error for encoding something that is not a ``str``."""
    hint = " (decode bytes first: data.decode('utf-8'))" if isinstance(text, bytes) else ""
    return InvalidInputError(f"{where} expected text of type str, got {describe(text)}{hint}")


def surrogates_error(where: str, text: str | None = None) -> InvalidInputError:
    """The error for text holding a lone surrogate (not valid Unicode), naming its
    position when ``text`` is given — the same error every text entry point
    raises (:func:`genarch.validation.require_text`)."""
    if text is not None:
        try:
            require_text(text, where)
        except InvalidInputError as error:
            return error
    return InvalidInputError(
        f"{where}: the text contains a lone surrogate (e.g. from decoding with "
        "errors='surrogateescape'), which is not valid Unicode and cannot round-trip; "
        "decode the source with errors='replace' instead"
    )


def is_rust_panic(error: BaseException) -> bool:
    """Whether ``error`` is a panic of a Rust extension (``pyo3_runtime.PanicException``).

    It derives from ``BaseException``, so ``except Exception`` misses it; the
    tokenisers turn it into :class:`~genarch.errors.InvalidInputError`.
    """
    return type(error).__name__ == "PanicException"


def bad_ids_error(
    token_ids: object, vocab_size: int, error: Exception | None = None
) -> InvalidInputError:
    """The error for decoding something that is not a sequence of ids in the vocabulary."""
    detail = f" ({error})" if error is not None else ""
    return InvalidInputError(
        f"decode expected a sequence of token ids in range({vocab_size}), got "
        f"{describe(token_ids)}{detail}"
    )


def as_id_list(token_ids: object, vocab_size: int) -> Sequence[int]:
    """Accept a list/tuple of ints, or an integer numpy array / torch tensor (via ``tolist``).

    A ``bool`` is not a token id (``True == 1`` in Python, but an id list
    holding one is a bug upstream), nor is a boolean array.

    Raises:
        InvalidInputError: not a sequence, or an item is a bool (its position is named).
    """
    values: Sequence[object]
    if isinstance(token_ids, list | tuple):
        values = token_ids
    else:
        tolist = getattr(token_ids, "tolist", None)
        listed = tolist() if callable(tolist) and getattr(token_ids, "ndim", None) == 1 else None
        if isinstance(listed, list):
            values = listed
        elif isinstance(token_ids, str | bytes) or not isinstance(token_ids, Iterable):
            raise bad_ids_error(token_ids, vocab_size)
        else:
            values = list(token_ids)
    # Fast checks in C: only a sequence holding something equal to 0 or 1 can hold a bool.
    if (True in values or False in values) and bool in map(type, values):
        for index, value in enumerate(values):
            if isinstance(value, bool):
                raise InvalidInputError(
                    f"decode expected token ids (int), but item {index} is a bool ({value}); "
                    "convert a mask to ids explicitly"
                )
    return values  # type: ignore[return-value]


def open_saved_tokenizer(directory: PathLike, kind: str | None, where: str) -> SavedComponent:
    """Open a saved tokeniser, checking its ``"kind"`` unless ``kind`` is None.

    Raises:
        NotFoundError: nothing is saved in ``directory``.
        IntegrityError: the header is corrupt, or the tokeniser is of another kind.
    """
    saved = open_saved(directory, TOKENIZER_FORMAT, header_file=TOKENIZER_FILE)
    found = saved.header.get("kind")
    if kind is not None and found != kind:
        raise IntegrityError(
            f"{where}: {str(saved.root)!r} holds a {found!r} tokenizer; "
            "use genarch.data.load_tokenizer to load any kind"
        )
    return saved
