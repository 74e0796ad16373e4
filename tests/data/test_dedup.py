"""Specification of exact and near-duplicate removal (genarch.data.dedup, genarch.data.minhash)."""

from __future__ import annotations

import random
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from genarch import Document, Pipeline
from genarch.data.dedup import (
    DuplicateReport,
    ExactDeduplicator,
    ExactDeduplicatorConfig,
    NearDeduplicator,
    NearDeduplicatorConfig,
    normalize_for_matching,
)
from genarch.data.minhash import MinHasher, lsh_parameters
from genarch.errors import ConfigError, GenarchError, InvalidInputError
from genarch.testing import check_data_processor, edit_words

# ------------------------------------------------------------------ corpus helpers


def vocabulary() -> list[str]:
    from pydoc_data.topics import topics

    words = sorted({w for text in topics.values() for w in re.findall(r"[A-Za-z]{3,}", text)})
    return words


def generated_text(rng: random.Random, words: list[str], length: int) -> str:
    return " ".join(rng.choice(words) for _ in range(length))


def shingle_set(text: str, n: int, unit: str) -> set[object]:
    """Reference shingles, computed independently of MinHasher (plain Python)."""
    normal = normalize_for_matching(text, ignore_punctuation=True)
    if unit == "word":
        tokens: list[str] = normal.split(" ") if normal else []
        return {tuple(tokens[i : i + n]) for i in range(max(1, len(tokens) - n + 1))}
    return {normal[i : i + n] for i in range(max(1, len(normal) - n + 1))}


def jaccard(a: set[object], b: set[object]) -> float:
    return len(a & b) / len(a | b)


def planted_corpus(seed: int) -> tuple[list[Document], dict[str, str]]:
    """600 distinct generated documents, then 300 edited copies (copy id -> source id)."""
    rng = random.Random(seed)
    words = vocabulary()
    base = [
        Document(id=f"doc{i}", text=generated_text(rng, words, rng.randint(60, 150)))
        for i in range(600)
    ]
    rates = [0.0, 0.01, 0.02, 0.03, 0.15, 0.3]  # near-duplicates, then related but distinct
    copies, source = [], {}
    for j, original in enumerate(rng.sample(base, 300)):
        copy = Document(
            id=f"copy{j}", text=edit_words(original.text, rng.choice(rates), rng, words)
        )
        copies.append(copy)
        source[copy.id] = original.id
    return base + copies, source


def precision_recall(
    report: DuplicateReport,
    documents: list[Document],
    source: dict[str, str],
    threshold: float,
    n: int,
    unit: str,
) -> tuple[float, float]:
    shingles = {d.id: shingle_set(d.text, n, unit) for d in documents}
    truth = {c for c, s in source.items() if jaccard(shingles[c], shingles[s]) >= threshold}
    predicted = {m.duplicate_id: m.kept_id for m in report.matches}
    correct = sum(jaccard(shingles[d], shingles[k]) >= threshold for d, k in predicted.items())
    return correct / max(1, len(predicted)), len(truth & set(predicted)) / len(truth)


def docs(*texts: str) -> list[Document]:
    return [Document(id=f"d{i}", text=t) for i, t in enumerate(texts)]


# --------------------------------------------------------------------- conformance

EXAMPLES = docs(
    "The quick brown fox jumps over the lazy dog by the river bank today.",
    "the quick  brown fox jumps over the lazy dog by the river bank today",
    "The quick brown fox jumped over the lazy dog by the river bank today.",
    "Something else entirely: tokenisers split text into pieces.",
    "",
    "",
)


@pytest.mark.parametrize(
    "processor",
    [ExactDeduplicator(), NearDeduplicator(threshold=0.7), NearDeduplicator(shingle="word")],
    ids=["exact", "near-char", "near-word"],
)
def test_deduplicators_pass_the_conformance_kit(processor: object) -> None:
    check_data_processor(processor, EXAMPLES)  # type: ignore[arg-type]


# ------------------------------------------------------------------------- exact


def test_exact_keeps_the_first_of_texts_equal_after_normalisation() -> None:
    kept = ExactDeduplicator().process(docs("Hello  World", "hello world", "hello world!"))
    assert [d.id for d in kept] == ["d0", "d2"]


def test_exact_can_ignore_punctuation_and_case_separately() -> None:
    texts = docs("Hello, world", "Hello world!", "HELLO WORLD")
    strict = ExactDeduplicator(ignore_case=False, ignore_punctuation=True)
    assert [d.id for d in strict.process(texts)] == ["d0", "d2"]


def test_exact_report_names_which_kept_document_each_drop_duplicates() -> None:
    report = ExactDeduplicator().find_duplicates(docs("a b", "c", "A  B", "c", "a b"))
    assert (report.documents, report.kept, report.dropped) == (5, 2, 3)
    assert [(c.kept_id, c.duplicate_ids) for c in report.clusters()] == [
        ("d0", ("d2", "d4")),
        ("d1", ("d3",)),
    ]
    assert [m.position for m in report.matches] == [2, 3, 4]


@given(st.lists(st.sampled_from(["a b", "A  b", "a, b", "c", "", "C "]), max_size=15))
def test_exact_output_has_each_normal_form_once_in_first_seen_order(texts: list[str]) -> None:
    kept = [d.text for d in ExactDeduplicator().process(docs(*texts))]
    forms = [normalize_for_matching(t) for t in texts]
    assert [normalize_for_matching(t) for t in kept] == list(dict.fromkeys(forms))


# -------------------------------------------------------------------------- near


@pytest.mark.parametrize(("unit", "n"), [("char", 5), ("word", 3)])
def test_near_duplicates_are_found_with_high_precision_and_recall(unit: str, n: int) -> None:
    documents, source = planted_corpus(seed=7)
    threshold = 0.8
    dedup = NearDeduplicator(threshold=threshold, shingle=unit, shingle_size=n, seed=3)  # type: ignore[arg-type]
    report = dedup.find_duplicates(documents)
    precision, recall = precision_recall(report, documents, source, threshold, n, unit)
    assert precision >= 0.95, f"precision {precision:.3f}"
    assert recall >= 0.95, f"recall {recall:.3f}"


def test_near_report_agrees_with_process_and_counts_exact_copies_separately() -> None:
    documents, _ = planted_corpus(seed=1)
    dedup = NearDeduplicator()
    report = dedup.find_duplicates(documents)
    dropped = {m.duplicate_id for m in report.matches}
    assert [d.id for d in dedup.process(documents)] == [
        d.id for d in documents if d.id not in dropped
    ]
    assert report.count("exact") > 0
    assert report.count("near") > 0
    assert all(m.similarity >= 0.8 for m in report.matches)


def test_pipeline_trace_carries_duplicate_counters() -> None:
    texts = docs(
        "one two three four five six seven eight nine ten eleven twelve",
        "one two three four five six seven eight nine ten eleven twelve",
        "one two three four five six seven eight nine ten eleven twelv",
        "something unrelated about compilers and grammars",
    )
    run = Pipeline([("dedup", NearDeduplicator())]).run(texts)
    assert [d.id for d in run] == ["d0", "d3"]
    assert run.trace.stage("dedup").counters == {"duplicates:exact": 1, "duplicates:near": 1}


def test_dissimilar_documents_are_all_kept() -> None:
    rng = random.Random(0)
    words = vocabulary()
    texts = [Document(id=str(i), text=generated_text(rng, words, 40)) for i in range(300)]
    assert len(list(NearDeduplicator(threshold=0.5).process(texts))) == 300


@given(st.lists(st.text(alphabet="abc ", max_size=30), max_size=12))
def test_output_is_a_subsequence_that_deduplicates_to_itself(texts: list[str]) -> None:
    documents = docs(*texts)
    dedup = NearDeduplicator(threshold=0.6, shingle_size=2, batch_size=3)
    kept = list(dedup.process(documents))
    ids = [d.id for d in documents]
    assert [d.id for d in kept] == [i for i in ids if i in {d.id for d in kept}]
    assert list(dedup.process(kept)) == kept


def test_batch_size_does_not_change_results() -> None:
    documents, _ = planted_corpus(seed=2)
    reports = [NearDeduplicator(batch_size=b).find_duplicates(documents) for b in (1, 7, 500)]
    assert reports[0] == reports[1] == reports[2]


def test_empty_documents_are_kept_once_and_never_near_match() -> None:
    report = NearDeduplicator().find_duplicates(docs("", "   ", "a", "", "b"))
    assert [(m.duplicate_id, m.kept_id, m.kind) for m in report.matches] == [
        ("d1", "d0", "exact"),
        ("d3", "d0", "exact"),
    ]


def test_an_enormous_line_is_handled_and_matched_against_its_edited_copy() -> None:
    rng = random.Random(5)
    words = vocabulary()
    big = generated_text(rng, words, 150_000)  # about 1.5 MB on one line
    copy = big.replace(" ", "  ", 100) + " tail"
    report = NearDeduplicator().find_duplicates(docs(big, copy, "short text"))
    assert [(m.duplicate_id, m.kind) for m in report.matches] == [("d1", "near")]


# ---------------------------------------------------------------------- MinHash


def test_signatures_are_seeded_and_deterministic() -> None:
    texts = ["alpha beta gamma delta", "a completely different text"]
    same = MinHasher(seed=4).signatures(texts), MinHasher(seed=4).signatures(texts)
    other = MinHasher(seed=5).signatures(texts)
    assert same[0].dtype == np.uint32
    assert same[0].shape == (2, 128)
    assert np.array_equal(same[0], same[1])
    assert not np.array_equal(same[0], other)


def test_batched_signatures_equal_single_ones() -> None:
    texts = ["alpha beta gamma", "", "x", "delta epsilon " * 3000]
    hasher = MinHasher(num_perm=32, shingle="word", shingle_size=2)
    batched = hasher.signatures(texts)
    for row, text in enumerate(texts):
        assert np.array_equal(batched[row], hasher.signature(text))


@pytest.mark.parametrize("unit", ["char", "word"])
def test_long_texts_are_segmented_without_losing_or_adding_shingles(unit: str) -> None:
    rng = random.Random(1)
    text = " ".join(
        "".join(rng.choice("abcdefgh") for _ in range(rng.randint(1, 9))) for _ in range(20_000)
    )
    hasher = MinHasher(shingle=unit, shingle_size=4)  # type: ignore[arg-type]
    segmented = set(hasher.shingle_keys(text).tolist())
    whole = set(hasher._many_keys([text])[0].tolist())
    assert segmented == whole


def test_signature_similarity_estimates_jaccard() -> None:
    rng = random.Random(3)
    words = vocabulary()
    hasher = MinHasher(num_perm=256, shingle="word", shingle_size=2, seed=9)
    for rate in (0.05, 0.2, 0.5):
        a = generated_text(rng, words, 200)
        b = edit_words(a, rate, rng, words)
        exact = jaccard(shingle_set(a, 2, "word"), shingle_set(b, 2, "word"))
        sig_a, sig_b = hasher.signatures([a, b])
        error = abs(MinHasher.similarity(sig_a, sig_b) - exact)
        assert error < 4 * np.sqrt(exact * (1 - exact) / 256) + 0.01


def test_signatures_refuse_non_strings() -> None:
    with pytest.raises(InvalidInputError, match="item 1 is int"):
        MinHasher().signatures(["ok", 3])  # type: ignore[list-item]
    with pytest.raises(InvalidInputError):
        MinHasher().signatures("a single string")


# -------------------------------------------------------------- LSH parameters


@pytest.mark.parametrize("threshold", [0.5, 0.7, 0.8, 0.9])
def test_derived_bands_separate_similar_from_dissimilar(threshold: float) -> None:
    params = lsh_parameters(threshold, 128, 0.9)
    assert params.bands * params.rows <= 128
    assert params.candidate_probability(min(1.0, threshold + 0.1)) > 0.95
    assert params.candidate_probability(threshold - 0.3) < 0.1


def test_explicit_bands_and_rows_override_the_derived_ones() -> None:
    assert NearDeduplicator(bands=16, rows=8).lsh.model_dump() == {"bands": 16, "rows": 8}


# ---------------------------------------------------------------------- configs


@pytest.mark.parametrize(
    "fields",
    [
        {"bands": 4},
        {"bands": 20, "rows": 10},
        {"threshold": 0.0},
        {"num_perm": 2},
        {"shingle": "line"},
        {"shingle_size": 0},
        {"thresold": 0.8},
        {"seed": -1},
    ],
)
def test_bad_near_configs_raise_config_error(fields: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        NearDeduplicator(**fields)
    with pytest.raises(ConfigError):
        NearDeduplicator.from_config(fields)


def test_configs_round_trip_through_json() -> None:
    near = NearDeduplicator(threshold=0.6, shingle="word", shingle_size=3, seed=11)
    assert NearDeduplicator.from_config(near.config.model_dump(mode="json")).config == near.config
    exact = ExactDeduplicator(ignore_punctuation=True)
    assert ExactDeduplicator.from_config(exact.config.model_dump()).config == exact.config
    assert isinstance(near.config, NearDeduplicatorConfig)
    assert isinstance(exact.config, ExactDeduplicatorConfig)


def test_config_object_and_keyword_fields_are_exclusive() -> None:
    with pytest.raises(ConfigError):
        NearDeduplicator(NearDeduplicatorConfig(), threshold=0.5)


# -------------------------------------------------------------------- bad input


@pytest.mark.parametrize("dedup", [ExactDeduplicator(), NearDeduplicator()])
def test_wrong_inputs_raise_clear_errors(dedup: ExactDeduplicator | NearDeduplicator) -> None:
    with pytest.raises(InvalidInputError, match="iterable"):
        dedup.process(42)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="single str"):
        dedup.find_duplicates("text")  # type: ignore[arg-type]
    with pytest.raises(GenarchError, match="item 1 is str"):
        list(dedup.process([Document(id="a", text="x"), "not a document"]))  # type: ignore[list-item]


def test_edit_words_refuses_a_bad_rate_or_no_vocabulary() -> None:
    with pytest.raises(InvalidInputError, match=r"rate must be in \[0, 1\]"):
        edit_words("a b", 1.5, random.Random(0), ["x"])
    with pytest.raises(InvalidInputError, match="non-empty vocabulary"):
        edit_words("a b", 0.5, random.Random(0), [])
    assert edit_words("a b", 0.0, random.Random(0), []) == "a b"
