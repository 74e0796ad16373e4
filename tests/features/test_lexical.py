"""Hashing and TF-IDF vectors: documented tokenisation, weights and persistence."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from genarch._io import write_manifest
from genarch.errors import ConfigError, IntegrityError, InvalidInputError, NotFoundError
from genarch.features import (
    HashingVectorizer,
    TfidfVectorizer,
    lexical_tokens,
    stable_hash,
)
from genarch.protocols import FeatureExtractor, Fittable
from genarch.testing import check_feature_extractor

CORPUS = [
    "Lists are mutable sequences.",
    "Tuples are immutable sequences.",
    "The open() function returns a file object.",
    "Use a with statement to close the file.",
    "",
]

texts = st.lists(st.text(max_size=40), max_size=6)


def test_tokens_are_casefolded_word_runs_after_nfkc() -> None:
    assert lexical_tokens("Ｆｕｌｌ-width ﬁle __init__, naïve!") == [
        "full",
        "width",
        "file",
        "__init__",
        "naïve",
    ]


def test_tokens_keep_case_when_asked_and_add_ngrams() -> None:
    assert lexical_tokens("Open File", lowercase=False) == ["Open", "File"]
    assert lexical_tokens("a b c", ngram_range=(2, 3)) == ["a b", "b c", "a b c"]


def test_stable_hash_is_crc32_of_utf8() -> None:
    import zlib

    assert stable_hash("naïve") == zlib.crc32("naïve".encode())


# ------------------------------------------------------------------ hashing


def test_hashing_vectorizer_passes_the_conformance_kit() -> None:
    vectorizer = HashingVectorizer(dim=256)
    assert isinstance(vectorizer, FeatureExtractor)
    assert isinstance(vectorizer, Fittable)
    check_feature_extractor(vectorizer, CORPUS)


def test_hashing_puts_each_term_in_its_hashed_column_with_its_sign() -> None:
    vectorizer = HashingVectorizer(dim=64, normalize=False)
    row = vectorizer.extract(["spam spam eggs"])[0]
    expected = torch.zeros(64)
    for term, count in (("spam", 2), ("eggs", 1)):
        code = stable_hash(term)
        expected[code % 64] += (-1 if code >> 31 else 1) * count
    assert torch.equal(row, expected)


def test_hashing_unsigned_sublinear_weights() -> None:
    vectorizer = HashingVectorizer(
        dim=1 << 20, normalize=False, signed=False, weighting="sublinear"
    )
    row = vectorizer.extract(["spam spam spam"])[0]
    assert row[stable_hash("spam") % (1 << 20)].item() == pytest.approx(1 + math.log(3))


@given(texts)
def test_hashing_rows_are_unit_length_or_zero(batch: list[str]) -> None:
    norms = HashingVectorizer(dim=128).extract(batch).norm(dim=1)
    assert all(abs(n - 1) < 1e-5 or n == 0 for n in norms.tolist())


def test_hashing_similar_texts_score_higher() -> None:
    features = HashingVectorizer().extract(["read a text file", "read the file", "sort a list"])
    assert features[0] @ features[1] > features[0] @ features[2]


def test_hashing_rejects_bad_input_and_config() -> None:
    vectorizer = HashingVectorizer()
    with pytest.raises(InvalidInputError, match="wrap one text in a list"):
        vectorizer.extract("just a string")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="item 1 is int"):
        vectorizer.extract(["ok", 3])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match="ngram_range"):
        HashingVectorizer(ngram_range=(2, 1))
    with pytest.raises(ConfigError):
        HashingVectorizer(dim=0)


# ------------------------------------------------------------------ TF-IDF


def fitted() -> TfidfVectorizer:
    return TfidfVectorizer().fit(CORPUS)


def test_tfidf_passes_the_conformance_kit() -> None:
    check_feature_extractor(fitted(), [*CORPUS, "unseen words only", "sequences of files"])


def test_tfidf_vocabulary_is_sorted_and_idf_is_smoothed() -> None:
    tfidf = TfidfVectorizer(weighting="count", normalize=False).fit(["a b", "a c", "a"])
    assert tfidf.vocabulary == ["a", "b", "c"]
    n = 3
    expected = [math.log((1 + n) / (1 + df)) + 1 for df in (3, 1, 1)]
    assert tfidf.idf.tolist() == pytest.approx(expected)
    row = tfidf.extract(["b b a z"])[0]  # z is unknown: ignored
    assert row.tolist() == pytest.approx([expected[0], 2 * expected[1], 0.0])


def test_tfidf_prefers_the_document_sharing_rare_terms() -> None:
    tfidf = fitted()
    scores = tfidf.extract(["how do I close a file"]) @ tfidf.extract(CORPUS).T
    assert int(scores.argmax()) == 3


def test_tfidf_vocabulary_limits() -> None:
    docs = ["a b c", "a b", "a"]
    assert TfidfVectorizer(min_df=2).fit(docs).vocabulary == ["a", "b"]
    assert TfidfVectorizer(max_df=0.5).fit(docs).vocabulary == ["c"]
    assert TfidfVectorizer(max_features=1).fit(docs).vocabulary == ["a"]
    with pytest.raises(InvalidInputError, match="no terms"):
        TfidfVectorizer(min_df=5).fit(docs)


def test_tfidf_fit_is_deterministic_and_returns_self() -> None:
    tfidf = TfidfVectorizer()
    assert tfidf.fit(CORPUS) is tfidf
    again = TfidfVectorizer().fit(list(reversed(CORPUS)))
    assert again.vocabulary == tfidf.vocabulary
    assert torch.equal(again.idf, tfidf.idf)


def test_tfidf_must_be_fitted_first() -> None:
    tfidf = TfidfVectorizer()
    for action in (lambda: tfidf.extract(["x"]), lambda: tfidf.dim, lambda: tfidf.save("x")):
        with pytest.raises(InvalidInputError, match=r"call fit\(texts\) first"):
            action()
    with pytest.raises(InvalidInputError, match="at least one text"):
        tfidf.fit([])


def test_tfidf_save_load_roundtrip(tmp_path) -> None:
    tfidf = TfidfVectorizer(ngram_range=(1, 2)).fit(CORPUS)
    tfidf.save(tmp_path / "tfidf")
    loaded = TfidfVectorizer.load(tmp_path / "tfidf")
    assert loaded.config == tfidf.config
    assert torch.equal(loaded.extract(CORPUS), tfidf.extract(CORPUS))


def test_tfidf_load_refuses_missing_and_corrupt_files(tmp_path) -> None:
    with pytest.raises(NotFoundError):
        TfidfVectorizer.load(tmp_path)
    (tmp_path / "tfidf.json").write_text("{not json")
    with pytest.raises(IntegrityError):
        TfidfVectorizer.load(tmp_path)
    (tmp_path / "tfidf.json").write_text('{"format": "something.else"}')
    with pytest.raises(IntegrityError, match="not a 'genarch.TfidfVectorizer'"):
        TfidfVectorizer.load(tmp_path)
    fitted().save(tmp_path / "ok")
    path = tmp_path / "ok" / "tfidf.json"
    path.write_text(path.read_text().replace('"idf": [', '"idf": [1.0, '))
    with pytest.raises(IntegrityError, match="tfidf.json does not match its SHA-256"):
        TfidfVectorizer.load(tmp_path / "ok")
    write_manifest(tmp_path / "ok")  # a consistent edit: the deeper check still refuses it
    with pytest.raises(IntegrityError, match="do not match"):
        TfidfVectorizer.load(tmp_path / "ok")


def test_tfidf_loads_after_a_save_interrupted_between_its_renames(
    tmp_path: Path, interrupt_between_renames: Callable[[Path], None]
) -> None:
    tfidf = fitted()
    tfidf.save(tmp_path / "tfidf")
    interrupt_between_renames(tmp_path / "tfidf")
    loaded = TfidfVectorizer.load(tmp_path / "tfidf")
    assert torch.equal(loaded.extract(CORPUS), tfidf.extract(CORPUS))


def test_tfidf_loads_a_save_of_the_previous_release(tmp_path: Path) -> None:
    # what TfidfVectorizer.save wrote before genarch.persistence: one unindented JSON line
    document = {
        "format": "genarch.TfidfVectorizer",
        "config": TfidfVectorizer().config.model_dump(mode="json"),
        "vocabulary": ["file", "open"],
        "idf": [1.5, 2.0],
    }
    (tmp_path / "tfidf.json").write_text(json.dumps(document) + "\n", encoding="utf-8")
    loaded = TfidfVectorizer.load(tmp_path)
    assert loaded.vocabulary == ["file", "open"]
    assert loaded.idf.tolist() == [1.5, 2.0]


def test_tfidf_save_keeps_the_file_name_and_format(tmp_path: Path) -> None:
    fitted().save(tmp_path)
    document = json.loads((tmp_path / "tfidf.json").read_text(encoding="utf-8"))
    assert document["format"] == "genarch.TfidfVectorizer"
    assert set(document) == {"format", "config", "vocabulary", "idf"}
