"""Modules of the data layer that were renamed or split keep their names for one
release, each with a DeprecationWarning that says where the name lives now."""

from __future__ import annotations

import importlib
import warnings

import pytest

MOVED = [
    ("genarch.data.tokenizers", "ByteTokenizer", "genarch.data.byte_tokenizer"),
    ("genarch.data.tokenizers", "ByteTokenizerConfig", "genarch.data.byte_tokenizer"),
    ("genarch.data.tokenizers", "TiktokenTokenizer", "genarch.data.tiktoken_tokenizer"),
    ("genarch.data.tokenizers", "SavedTokenizerReference", "genarch.data.tiktoken_tokenizer"),
    ("genarch.data.tokenizers", "StandardEncodingReference", "genarch.data.tiktoken_tokenizer"),
    ("genarch.data.tokenizers", "TokenizerReference", "genarch.data.tokenizer_references"),
    ("genarch.data.tokenizers", "load_tokenizer", "genarch.data.tokenizer_references"),
    ("genarch.data.tokenizers", "CL100K_PATTERN", "genarch.data.tiktoken_files"),
    ("genarch.data.tokenizers", "load_standard_encoding", "genarch.data.tiktoken_files"),
    ("genarch.data.encodings", "build_encoding", "genarch.data.tiktoken_files"),
    ("genarch.data.encodings", "STANDARD_ENCODINGS", "genarch.data.tiktoken_files"),
    ("genarch.data.tokenize", "Tokenize", "genarch.data.tokenize_stage"),
    ("genarch.data.tokenize", "TokenizedDocument", "genarch.data.tokenize_stage"),
    ("genarch.data.tokens", "TokenDataset", "genarch.data.token_corpus"),
    ("genarch.data.tokens", "write_token_file", "genarch.data.token_corpus"),
    ("genarch.data.pii", "find_pii", "genarch.data.pii_detection"),
    ("genarch.data.pii", "PII_TYPES", "genarch.data.pii_detection"),
    ("genarch.data.pii", "PiiRedactor", "genarch.data.pii_redaction"),
    ("genarch.data.pii", "deanonymize", "genarch.data.pii_redaction"),
    ("genarch.data.digits", "two_moons", "genarch.data.point_clouds"),
    ("genarch.data.digits", "swiss_roll", "genarch.data.point_clouds"),
]


@pytest.mark.parametrize(("old", "name", "new"), MOVED)
def test_an_old_path_gives_the_same_object_and_says_where_it_moved(
    old: str, name: str, new: str
) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = getattr(importlib.import_module(old), name)
    assert value is getattr(importlib.import_module(new), name)
    [warning] = caught
    assert warning.category is DeprecationWarning
    assert f"import {name} from {new}" in str(warning.message)


def test_the_minhash_names_are_still_reachable_from_dedup() -> None:
    import genarch.data.dedup as dedup
    import genarch.data.minhash as minhash

    assert dedup.MinHasher is minhash.MinHasher  # type: ignore[attr-defined]
    assert dedup.lsh_parameters is minhash.lsh_parameters  # type: ignore[attr-defined]


def test_the_unused_tokenizer_union_is_gone() -> None:
    with pytest.raises(AttributeError):
        importlib.import_module("genarch.data.tokenizers").GenarchTokenizer  # noqa: B018
