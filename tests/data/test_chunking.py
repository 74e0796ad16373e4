"""Chunker: bounded, overlapping, boundary-preferring chunks with exact offsets."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from genarch import ConfigError, Document
from genarch.data import Chunker, count_word_pieces, python_docs
from genarch.testing import data_processor_checks, parametrize_with_checks
from genarch.testing.strategies import documents

DOC = Document(
    id="doc",
    text="First paragraph has one sentence.\n\nSecond paragraph. It has two sentences!\n\n"
    + "Third paragraph is much longer than the others and keeps going with many words " * 3,
)


class WhitespaceTokenizer:
    """Counts whitespace-separated words; enough to test tokenizer-driven budgets."""

    vocab_size = 1

    def encode(self, text: str) -> list[int]:
        return [0] * len(text.split())

    def decode(self, token_ids):
        raise NotImplementedError


@parametrize_with_checks(
    data_processor_checks(
        Chunker(max_tokens=12, overlap_tokens=3), [DOC, Document(id="e", text="")]
    )
)
def test_chunker_conforms(check):
    check()


def test_offsets_point_at_the_chunk_text_in_the_source():
    for document in python_docs()[:10]:
        for chunk in Chunker(max_tokens=64, overlap_tokens=8).chunk(document):
            assert document.text[chunk.start : chunk.end] == chunk.text
            assert chunk.document_id == document.id


def test_chunks_respect_the_token_budget():
    chunker = Chunker(max_tokens=64, overlap_tokens=8)
    for document in python_docs()[:20]:
        assert all(count_word_pieces(c.text) <= 64 for c in chunker.chunk(document))


def test_prefers_paragraph_then_sentence_boundaries():
    chunks = Chunker(max_tokens=12, overlap_tokens=0).chunk(DOC)
    assert chunks[0].text == "First paragraph has one sentence."
    assert chunks[1].text == "Second paragraph. It has two sentences!"
    assert all(not c.text[0].isspace() and not c.text[-1].isspace() for c in chunks)


def test_consecutive_chunks_overlap():
    chunks = Chunker(max_tokens=20, overlap_tokens=8, tokenizer=WhitespaceTokenizer()).chunk(DOC)
    assert len(chunks) > 2
    for before, after in itertools.pairwise(chunks):
        assert after.start <= before.end  # overlap (or adjacency at a paragraph break)
        assert after.start > before.start  # always advances


def test_a_word_longer_than_a_chunk_is_cut():
    document = Document(id="w", text="x" * 50)
    chunks = Chunker(max_tokens=2, overlap_tokens=0, tokenizer=CharTokenizer()).chunk(document)
    assert "".join(c.text for c in chunks) == document.text
    assert all(len(c.text) <= 2 for c in chunks)


class CharTokenizer:
    vocab_size = 1

    def encode(self, text: str) -> list[int]:
        return [0] * len(text)

    def decode(self, token_ids):
        raise NotImplementedError


def test_the_real_tokenizer_sets_the_budget():
    chunks = Chunker(max_tokens=5, overlap_tokens=0, tokenizer=WhitespaceTokenizer()).chunk(DOC)
    assert all(len(c.text.split()) <= 5 for c in chunks)


@given(documents(max_size=400), st.integers(2, 30), st.integers(0, 10))
def test_every_non_space_character_is_covered_in_order(document, max_tokens, overlap):
    overlap = min(overlap, max_tokens - 1)
    chunks = Chunker(max_tokens=max_tokens, overlap_tokens=overlap).chunk(document)
    covered = set()
    for chunk in chunks:
        assert document.text[chunk.start : chunk.end] == chunk.text
        covered.update(range(chunk.start, chunk.end))
    assert all(i in covered for i, ch in enumerate(document.text) if not ch.isspace())
    assert [c.start for c in chunks] == sorted(c.start for c in chunks)


def test_overlap_must_be_smaller_than_the_chunk():
    with pytest.raises(ConfigError, match="overlap_tokens"):
        Chunker(max_tokens=10, overlap_tokens=10)
