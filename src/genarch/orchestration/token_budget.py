"""Token budgets: counting, fitting and trimming text with the model's own tokeniser.

A prompt fits a model when its *tokens* fit, and only the model's tokeniser
knows how many there are. :class:`TokenBudget` pairs a
:class:`~genarch.protocols.Tokenizer` with a limit; :func:`trim_to_tokens`
shortens a text to fit, cutting at a token boundary (never inside a
multi-byte character). Templates use these to drop examples or shorten a value
until a prompt fits (:meth:`~genarch.orchestration.templates.TextTemplate.render_within`,
:class:`~genarch.orchestration.templates.FewShotTemplate`), and
:class:`~genarch.orchestration.rag.RAG` to drop its lowest-ranked sources.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from genarch.errors import ConfigError, InvalidInputError
from genarch.protocols import Tokenizer
from genarch.validation import describe

__all__ = ["TokenBudget", "count_tokens", "longest_fitting_prefix", "trim_to_tokens"]


def count_tokens(tokenizer: Tokenizer, text: str) -> int:
    """The number of tokens ``tokenizer`` gives ``text``.

    Raises:
        InvalidInputError: ``tokenizer`` is not a Tokenizer or ``text`` not a str.
    """
    if not isinstance(tokenizer, Tokenizer):
        raise InvalidInputError(f"count_tokens expected a Tokenizer, got {describe(tokenizer)}")
    if not isinstance(text, str):
        raise InvalidInputError(f"count_tokens expected text as str, got {describe(text)}")
    return len(tokenizer.encode(text))


@dataclass(frozen=True)
class TokenBudget:
    """At most ``max_tokens`` tokens, counted by ``tokenizer`` (the model's own).

    Raises:
        ConfigError: ``max_tokens`` is below 1 or ``tokenizer`` is not a Tokenizer.
    """

    tokenizer: Tokenizer
    max_tokens: int

    def __post_init__(self) -> None:
        if not isinstance(self.tokenizer, Tokenizer):
            raise ConfigError(f"TokenBudget expected a Tokenizer, got {describe(self.tokenizer)}")
        if (
            isinstance(self.max_tokens, bool)
            or not isinstance(self.max_tokens, int)
            or self.max_tokens < 1
        ):
            raise ConfigError(
                f"TokenBudget.max_tokens must be an int >= 1, got {describe(self.max_tokens)}"
            )

    def count(self, text: str) -> int:
        """Tokens in ``text``."""
        return count_tokens(self.tokenizer, text)

    def fits(self, text: str) -> bool:
        """Whether ``text`` has at most ``max_tokens`` tokens."""
        return self.count(text) <= self.max_tokens


def longest_fitting_prefix(text: str, tokenizer: Tokenizer, fits: Callable[[str], bool]) -> str:
    """The longest prefix of ``text`` ending on a token boundary for which ``fits`` holds."""
    ids = tokenizer.encode(text)

    def prefix(n: int) -> str:
        piece = tokenizer.decode(ids[:n])
        # A cut inside a multi-byte character decodes to U+FFFD: drop the fragment.
        while piece.endswith("\ufffd") and not text.startswith(piece):
            piece = piece[:-1]
        return piece

    low, high = 0, len(ids)
    while low < high:  # binary search: fits(prefix(low)) holds throughout
        middle = (low + high + 1) // 2
        if fits(prefix(middle)):
            low = middle
        else:
            high = middle - 1
    return prefix(low)


def trim_to_tokens(
    text: str,
    tokenizer: Tokenizer,
    max_tokens: int,
    *,
    keep: Literal["start", "end"] = "start",
) -> str:
    """Shorten ``text`` to at most ``max_tokens`` tokens, cutting at a token boundary.

    Args:
        keep: keep the beginning (``"start"``) or the end (``"end"``) of the text.

    Raises:
        InvalidInputError: a bad argument.

    Examples:
        >>> from genarch.data.byte_tokenizer import ByteTokenizer
        >>> trim_to_tokens("héllo world", ByteTokenizer(), 3)
        'hé'
        >>> trim_to_tokens("hello world", ByteTokenizer(), 5, keep="end")
        'world'
    """
    if not isinstance(text, str):
        raise InvalidInputError(f"trim_to_tokens expected text as str, got {describe(text)}")
    if keep not in ("start", "end"):
        raise InvalidInputError(f"trim_to_tokens: keep must be 'start' or 'end', got {keep!r}")
    if isinstance(max_tokens, int) and not isinstance(max_tokens, bool) and max_tokens == 0:
        return ""
    try:
        budget = TokenBudget(tokenizer, max_tokens)
    except ConfigError as error:
        raise InvalidInputError(f"trim_to_tokens: {error}") from None
    if budget.fits(text):
        return text
    if keep == "start":
        return longest_fitting_prefix(text, tokenizer, budget.fits)
    # Keep the end: the shortest cut from the front whose remainder fits, checked
    # with the tokenizer itself (a suffix's tokens are not a suffix of the tokens).
    low, high = 0, len(text)
    while low < high:  # smallest start index whose suffix fits
        middle = (low + high) // 2
        if budget.fits(text[middle:]):
            high = middle
        else:
            low = middle + 1
    return text[low:]
