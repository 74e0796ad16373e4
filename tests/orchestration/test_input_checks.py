"""Orchestration entry points: bad arguments are clear errors, sentence splitting is linear."""

from __future__ import annotations

import pytest

from genarch.errors import InvalidInputError
from genarch.orchestration.extractive import sentence_spans
from genarch.orchestration.grounded_prompt import build_prompt
from genarch.testing import time_growth


@pytest.mark.parametrize(
    ("question", "sources", "named"),
    [
        ("q", None, "sources"),
        (None, [], "question"),
        ("q", ["not a source"], "item 0"),
        ("q", "text", "sources"),
    ],
)
def test_build_prompt_refuses_bad_arguments_naming_them(
    question: object, sources: object, named: str
) -> None:
    with pytest.raises(InvalidInputError, match=named):
        build_prompt(question, sources)  # type: ignore[arg-type]


def test_sentence_spans_of_many_short_sentences_is_linear() -> None:
    small, large = "x. " * 8_000, "x. " * 32_000
    ratio = time_growth(lambda: sentence_spans(small), lambda: sentence_spans(large))
    assert ratio < 8, f"4x the text took {ratio:.1f}x the time"


def test_abbreviations_still_do_not_end_sentences() -> None:
    text = "See e.g. this. And i.e. that, etc. too. Then Dr. Who came."
    assert [text[s:e] for s, e in sentence_spans(text)] == [
        "See e.g. this.",
        "And i.e. that, etc. too.",
        "Then Dr. Who came.",
    ]
