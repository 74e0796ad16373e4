"""Heuristic quality filters of the kind used to build LM pre-training corpora.

The rules follow the spirit of the Gopher / C4 / RefinedWeb filters: text too
short or too long, text that is mostly not words, boilerplate that repeats the
same line, and degenerate text dominated by one repeated n-gram. Each dropped
document is counted under the *first* rule it broke, so the pipeline trace
says why data disappeared, and :meth:`QualityFilter.explain` shows every
measure for one document.

Tables are content. Reference pages are often mostly tables (an operator
precedence table, a list of sequence operations), and a table's *structure*
repeats by design: every row is framed by the same ruled line
(``+----+----+``, ``|====|====|``, ``| --- | :-: |``, ``==== ====``) and
every cell by the same ``|``. So the measures look at the *text* of a page:
ruled lines are not lines (they can repeat any number of times) and cell
borders are not words (they form no n-grams). The rows themselves are
measured like any other line, so a "table" whose rows repeat, or whose cells
repeat one phrase, is still dropped as boilerplate.
"""

from __future__ import annotations

import collections
import re
from collections.abc import Iterable, Iterator
from typing import Annotated

from pydantic import Field

from genarch.configured import Configured
from genarch.schemas import Config, Document, Record
from genarch.validation import checked_items

__all__ = [
    "QualityFilter",
    "QualityFilterConfig",
    "QualityMeasures",
    "QualityVerdict",
    "measure_quality",
]

_WORD = re.compile(r"\S+")
_ALPHA = re.compile(r"[^\W\d_]")  # any letter, in any script
# A ruled line of a table: only rule characters and spaces, with a run of 3+
# dashes, equals signs or box-drawing lines (reStructuredText grid and simple
# tables, Markdown's header rule, box-drawing frames). Linear: one character class.
_RULE_CHARS = "-=+|:_~\u2500-\u257f"
_RULED_LINE = re.compile(f"[{_RULE_CHARS} \t]*")
_RULE_RUN = re.compile("[-=_~\u2500-\u257f]{3}")
_CELL_BORDER = re.compile(f"[{_RULE_CHARS}]+")  # a word made only of rule characters


def _is_rule(line: str) -> bool:
    return _RULED_LINE.fullmatch(line) is not None and _RULE_RUN.search(line) is not None


def _content(text: str) -> tuple[list[str], list[str]]:
    """The words and the non-empty lines of ``text``, without tables' rules and cell borders."""
    lines: list[str] = []
    words: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or _is_rule(line):
            continue
        lines.append(line)
        words.extend(w for w in _WORD.findall(line) if _CELL_BORDER.fullmatch(w) is None)
    return words, lines


Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


class QualityFilterConfig(Config):
    """Thresholds of :class:`QualityFilter`; ``None`` switches a rule off.

    Attributes:
        min_words: fewer whitespace-separated words than this is too short
            (tables' ruled lines and cell borders are not words).
        max_words: more words than this is too long.
        min_alpha_word_fraction: at least this fraction of words must contain a letter.
        max_duplicate_line_fraction: at most this fraction of non-empty lines may
            repeat an earlier line.
        max_top_2gram_fraction: the most frequent word 2-gram may cover at most
            this fraction of the characters in words (likewise 3- and 4-grams).
        max_line_characters: no single line may be longer than this.
    """

    min_words: Annotated[int, Field(ge=0)] | None = 5
    max_words: Annotated[int, Field(ge=1)] | None = 200_000
    min_alpha_word_fraction: Fraction | None = 0.5
    max_duplicate_line_fraction: Fraction | None = 0.3
    max_top_2gram_fraction: Fraction | None = 0.20
    max_top_3gram_fraction: Fraction | None = 0.18
    max_top_4gram_fraction: Fraction | None = 0.16
    max_line_characters: Annotated[int, Field(ge=1)] | None = 20_000


class QualityMeasures(Record):
    """The measures the rules are judged on, for one text."""

    words: int
    alpha_word_fraction: float
    duplicate_line_fraction: float
    top_ngram_fraction: dict[int, float]
    longest_line: int


class QualityVerdict(Record):
    """Whether a document is kept, and every rule it broke (in rule order)."""

    document_id: str
    kept: bool
    reasons: tuple[str, ...]
    measures: QualityMeasures


def _top_ngram_fraction(words: list[str], n: int) -> float:
    if len(words) < n:
        return 0.0
    counts = collections.Counter(zip(*(words[i:] for i in range(n)), strict=False))
    gram, count = counts.most_common(1)[0]
    if count < 2:
        return 0.0
    covered = count * sum(len(w) for w in gram)
    return min(1.0, covered / max(1, sum(len(w) for w in words)))


def measure_quality(text: str) -> QualityMeasures:
    """Compute the quality measures of one text.

    Words and lines are those of the text's content: the ruled lines and cell
    borders of tables are left out (see the module docstring).

    Examples:
        >>> m = measure_quality("spam spam spam spam spam spam\\nspam spam spam spam spam spam")
        >>> m.duplicate_line_fraction, m.top_ngram_fraction[2] > 0.9
        (0.5, True)
    """
    words, lines = _content(text)
    seen: set[str] = set()
    duplicates = 0
    for line in lines:
        if line in seen:
            duplicates += 1
        seen.add(line)
    return QualityMeasures(
        words=len(words),
        alpha_word_fraction=sum(1 for w in words if _ALPHA.search(w)) / len(words)
        if words
        else 0.0,
        duplicate_line_fraction=duplicates / len(lines) if lines else 0.0,
        top_ngram_fraction={n: _top_ngram_fraction(words, n) for n in (2, 3, 4)},
        longest_line=max((len(line) for line in text.split("\n")), default=0),
    )


class QualityFilter(Configured[QualityFilterConfig]):
    """Drops documents that break a quality rule; reports each drop's reason.

    Counters (in the pipeline trace): ``dropped:too_short``, ``dropped:too_long``,
    ``dropped:few_words_with_letters``, ``dropped:repeated_lines``,
    ``dropped:repeated_2grams`` (3, 4), ``dropped:line_too_long``.

    Examples:
        >>> quality = QualityFilter()
        >>> docs = [Document(id="ok", text="A sentence with enough real words in it."),
        ...         Document(id="spam", text="buy now " * 50)]
        >>> [d.id for d in quality.process(docs)]
        ['ok']
        >>> quality.explain(docs[1]).reasons
        ('repeated_2grams', 'repeated_3grams', 'repeated_4grams')
    """

    def explain(self, document: Document) -> QualityVerdict:
        """Every measure of ``document`` and every rule it breaks."""
        c, m = self.config, measure_quality(document.text)
        broken = [
            ("too_short", c.min_words is not None and m.words < c.min_words),
            ("too_long", c.max_words is not None and m.words > c.max_words),
            (
                "few_words_with_letters",
                c.min_alpha_word_fraction is not None
                and m.alpha_word_fraction < c.min_alpha_word_fraction,
            ),
            (
                "repeated_lines",
                c.max_duplicate_line_fraction is not None
                and m.duplicate_line_fraction > c.max_duplicate_line_fraction,
            ),
            *(
                (f"repeated_{n}grams", limit is not None and m.top_ngram_fraction[n] > limit)
                for n, limit in (
                    (2, c.max_top_2gram_fraction),
                    (3, c.max_top_3gram_fraction),
                    (4, c.max_top_4gram_fraction),
                )
            ),
            (
                "line_too_long",
                c.max_line_characters is not None and m.longest_line > c.max_line_characters,
            ),
        ]
        reasons = tuple(name for name, failed in broken if failed)
        return QualityVerdict(
            document_id=document.id, kept=not reasons, reasons=reasons, measures=m
        )

    def process_counting(
        self, items: Iterable[Document], counts: collections.Counter[str]
    ) -> Iterator[Document]:
        """Yield the documents that pass; count each dropped one under its first reason."""
        for document in checked_items(items, Document, where="QualityFilter.process"):
            verdict = self.explain(document)
            if verdict.kept:
                yield document
            else:
                counts[f"dropped:{verdict.reasons[0]}"] += 1

    def process(self, items: Iterable[Document]) -> Iterator[Document]:
        """Yield the documents that pass every rule.

        Raises:
            InvalidInputError: an item is not a Document.
        """
        return self.process_counting(items, collections.Counter())
