"""TextCleaner: normalisation without changing meaning."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from genarch import ConfigError, Document, InvalidInputError
from genarch.data import TextCleaner, clean_text, python_docs
from genarch.data.text import TextCleanerConfig
from genarch.testing import data_processor_checks, parametrize_with_checks
from genarch.testing.strategies import documents

DOCS = [
    Document(
        id="a",
        text="  Caf\u0065\u0301\u200b au lait\r\n\r\n\r\nfin\t\tici ",
        metadata={"lang": "fr"},
    ),
    Document(id="b", text="\x00control\x07 chars\x1b"),
    Document(id="c", text=""),
]


@parametrize_with_checks(
    [
        data_processor_checks(TextCleaner(), DOCS, invalid_items=["raw string"], label="nfc"),
        data_processor_checks(TextCleaner(unicode_form="NFKC"), DOCS, label="nfkc"),
        data_processor_checks(TextCleaner(keep_indentation=True), DOCS, label="indented"),
    ]
)
def test_text_cleaner_conforms(check):
    check()


def test_cleans_invisible_control_and_whitespace():
    cleaned = list(TextCleaner().process(DOCS))
    assert cleaned[0].text == "Café au lait\n\nfin ici"
    assert cleaned[0].metadata == {"lang": "fr"}
    assert cleaned[1].text == "control chars"


def test_nfkc_folds_compatibility_characters():
    assert clean_text("ﬁ ＡＢＣ", TextCleanerConfig(unicode_form="NFKC")) == "fi ABC"
    assert clean_text("ﬁ", TextCleanerConfig(unicode_form="NFC")) == "ﬁ"


def test_each_step_can_be_switched_off():
    raw = "a\u200b  b"
    assert clean_text(raw, TextCleanerConfig(remove_invisible=False)) == "a\u200b b"
    assert clean_text(raw, TextCleanerConfig(normalize_whitespace=False)) == "a  b"


def test_keep_indentation_tidies_each_line_after_its_indentation():
    raw = "\n \n  str.partition(sep)\n\n\n\n     Split  the string \t\n\tat sep.  \n   \n"
    kept = clean_text(raw, TextCleanerConfig(keep_indentation=True))
    assert kept == "  str.partition(sep)\n\n     Split the string\n\tat sep."
    assert clean_text(raw) == "str.partition(sep)\n\nSplit the string\nat sep."


@pytest.mark.parametrize("keep_indentation", [False, True])
@given(document=documents())
def test_cleaning_is_idempotent(keep_indentation, document):
    cleaner = TextCleaner(keep_indentation=keep_indentation)
    once = list(cleaner.process([document]))
    assert list(cleaner.process(once)) == once


@given(st.text())
def test_kept_indentation_is_the_only_difference(text):
    kept = clean_text(text, TextCleanerConfig(keep_indentation=True))
    assert "\r" not in kept
    assert not kept.startswith("\n")
    assert not kept.endswith((" ", "\n"))
    assert [line.lstrip() for line in kept.split("\n")] == clean_text(text).split("\n")


@given(st.text())
def test_cleaned_text_has_no_control_or_invisible_characters(text):
    cleaned = clean_text(text)
    assert not any(ch in cleaned for ch in "\u200b\ufeff\x00\r")
    assert cleaned == cleaned.strip()


def test_bad_config_and_input_are_refused():
    with pytest.raises(ConfigError, match="unicode_form"):
        TextCleaner(unicode_form="NFX")
    with pytest.raises(ConfigError):
        TextCleaner(TextCleanerConfig(), unicode_form="NFC")
    with pytest.raises(InvalidInputError, match="item 0 is str"):
        list(TextCleaner().process(["not a document"]))


def test_python_docs_corpus_is_real_and_stable():
    docs = python_docs()
    assert len(docs) > 50
    assert sum(len(d.text) for d in docs) > 400_000
    assert [d.id for d in docs] == sorted(d.id for d in docs)
