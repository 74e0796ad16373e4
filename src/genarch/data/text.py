"""Text cleaning and normalisation for documents.

:class:`TextCleaner` is the first stage of most text pipelines: it makes text
comparable (for deduplication), safe to tokenise (no control or invisible
characters) and tidy (whitespace), without changing its meaning.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from typing import Literal

from genarch.configured import Configured
from genarch.errors import InvalidInputError
from genarch.schemas import Config, Document
from genarch.validation import checked_items, describe, require_text

__all__ = ["TextCleaner", "TextCleanerConfig", "clean_text"]

# Invisible characters that split words without showing: zero-width space,
# (non-)joiners, word joiner, byte-order mark, soft hyphen.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"))
_HORIZONTAL_SPACE = re.compile(r"[^\S\n]+")  # whitespace other than newline
_MANY_NEWLINES = re.compile(r"\n{3,}")
_SPACE_AROUND_NEWLINE = re.compile(r" *\n *")


class TextCleanerConfig(Config):
    """Settings of :class:`TextCleaner`.

    Attributes:
        unicode_form: Unicode normalisation. ``"NFC"`` composes characters
            without changing them; ``"NFKC"`` also folds compatibility forms
            (ligatures, full-width letters) — better for matching, lossy for display.
        remove_invisible: drop zero-width characters, BOMs and soft hyphens.
        remove_control: drop control characters other than newline and tab.
        normalize_whitespace: turn runs of spaces/tabs into one space, strip
            line ends, keep at most one blank line between paragraphs, strip the text.
        keep_indentation: with ``normalize_whitespace``, leave each line's
            leading spaces and tabs as they are (runs inside the line are still
            collapsed). Indentation is structure in documentation, code and
            grammar rules: a signature and the paragraph indented under it, a code
            example. Retrieval that scopes sentences by indentation (the RAG
            quickstart) needs it kept.
    """

    unicode_form: Literal["NFC", "NFKC", "NFD", "NFKD"] | None = "NFC"
    remove_invisible: bool = True
    remove_control: bool = True
    normalize_whitespace: bool = True
    keep_indentation: bool = False


def clean_text(text: str, config: TextCleanerConfig | None = None) -> str:
    """Clean one string as :class:`TextCleaner` would.

    Raises:
        InvalidInputError: ``text`` is not a str (bytes included), holds a lone
            surrogate (its position is named), or ``config`` is not a
            :class:`TextCleanerConfig`.

    Examples:
        >>> clean_text("caf\\u0065\\u0301  au\\u200blait\\r\\n\\n\\n\\nfin ")
        'café aulait\\n\\nfin'
    """
    text = require_text(text, "clean_text")
    if config is None:
        config = TextCleanerConfig()
    elif not isinstance(config, TextCleanerConfig):
        raise InvalidInputError(
            f"clean_text expected config as a TextCleanerConfig, got {describe(config)}"
        )
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if config.remove_invisible:
        text = text.translate(_INVISIBLE)
    if config.remove_control:
        text = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) != "Cc")
    if config.unicode_form is not None:
        text = unicodedata.normalize(config.unicode_form, text)
    if config.normalize_whitespace and config.keep_indentation:
        text = "\n".join(_tidy_line(line) for line in text.split("\n"))
        text = _MANY_NEWLINES.sub("\n\n", text).strip("\n")
    elif config.normalize_whitespace:
        text = _HORIZONTAL_SPACE.sub(" ", text)
        text = _SPACE_AROUND_NEWLINE.sub("\n", text)
        text = _MANY_NEWLINES.sub("\n\n", text).strip()
    return text


def _tidy_line(line: str) -> str:
    """One line with its indentation kept: inner runs of space as one, no trailing space,
    and nothing at all where the line is blank."""
    rest = line.lstrip()
    indentation = line[: len(line) - len(rest)]
    rest = _HORIZONTAL_SPACE.sub(" ", rest).rstrip()
    return f"{indentation}{rest}" if rest else ""


class TextCleaner(Configured[TextCleanerConfig]):
    """Normalises the text of each :class:`~genarch.schemas.Document`, one to one.

    Args:
        config: a :class:`TextCleanerConfig`; keyword arguments are shorthand
            for its fields.

    Examples:
        >>> from genarch import Document
        >>> cleaner = TextCleaner(unicode_form="NFKC")
        >>> [d.text for d in cleaner.process([Document(id="x", text="ﬁne\\u00a0print")])]
        ['fine print']
    """

    def process(self, items: Iterable[Document]) -> Iterator[Document]:
        """Yield each document with cleaned text (same id and metadata).

        Raises:
            InvalidInputError: an item is not a Document, or its text holds a
                lone surrogate (the document id and position are named).
        """
        for document in checked_items(items, Document, where="TextCleaner.process"):
            require_text(document.text, f"TextCleaner.process (document {document.id!r})")
            yield document.model_copy(update={"text": clean_text(document.text, self.config)})
