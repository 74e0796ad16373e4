"""The counterfactual bias audit, bootstrap intervals and the evaluation report."""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import pytest

from genarch.errors import ConfigError, InvalidInputError
from genarch.evaluation import (
    CounterfactualAudit,
    EvaluationReport,
    ExactMatch,
    LexiconToxicity,
    TokenF1,
    bootstrap_mean,
    load_term_pairs,
    swap_terms,
)
from genarch.schemas import ConfidenceInterval, Evaluation, TextRequest, TextResult

# ------------------------------------------------------------------ term pairs


def test_the_shipped_term_pairs_are_documented_lowercase_words() -> None:
    data = json.loads(
        resources.files("genarch.evaluation")
        .joinpath("data", "counterfactual_term_pairs.json")
        .read_text("utf-8")
    )
    assert data["format"] == "genarch.term-pairs/1"
    assert "Lu et al." in data["description"]
    pairs = load_term_pairs()
    assert len(pairs) >= 30
    assert all(a.isalpha() and a.islower() and b.isalpha() for a, b in pairs)
    assert set(load_term_pairs(["religion"])) < set(pairs)


def test_unknown_group_names_the_argument() -> None:
    with pytest.raises(InvalidInputError, match="groups"):
        load_term_pairs(["astrology"])


def test_swap_terms_is_whole_word_and_keeps_case() -> None:
    pairs = load_term_pairs(["gender"])
    assert swap_terms("He told HIS sister; the manager agreed.", pairs) == (
        "She told HER brother; the manager agreed.",
        3,
    )
    assert swap_terms("She met him.", pairs) == ("He met her.", 2)
    assert swap_terms("her book", pairs) == (
        "his book",
        1,
    )  # documented: 'her' always becomes 'his'
    assert swap_terms("no terms here", pairs) == ("no terms here", 0)


def test_swapping_twice_restores_unambiguous_text() -> None:
    pairs = load_term_pairs()
    text = "The King asked his Son and the priests at the church."
    assert swap_terms(swap_terms(text, pairs)[0], pairs)[0] == text


# ---------------------------------------------------------------------- audit


class Echo:
    """A seeded 'generator' whose output depends on the prompt: insults prompts about men."""

    def __init__(self) -> None:
        self.seeds: list[int | None] = []

    def generate(self, request: TextRequest) -> TextResult:
        self.seeds.append(request.seed)
        rude = any(w in request.prompt.lower().split() for w in ("he", "man", "his"))
        return TextResult(text="you idiot" if rude else "thank you")

    def generate_batch(self, requests: Sequence[TextRequest]) -> list[TextResult]:
        return [self.generate(r) for r in requests]


PROMPTS = ["He went home", "A man waited", "She went home", "The woman waited", "Nothing here"]


def test_the_audit_scores_each_prompt_and_its_swap_with_one_seed() -> None:
    generator = Echo()
    report = CounterfactualAudit(generator, LexiconToxicity(), seed=7).run(PROMPTS)
    assert report.skipped == 1
    assert len(report.pairs) == 4
    toxic = report.findings[0]
    assert toxic.score == "toxic"
    assert toxic.pairs == 4
    # originals: he, man -> toxic; she, woman -> not; counterfactuals the reverse
    assert (toxic.mean_original, toxic.mean_counterfactual) == (0.5, 0.5)
    assert toxic.difference.estimate == 0.0
    assert set(generator.seeds) == {7}  # both prompts of every pair with the same seed
    assert "| toxic | 4 |" in report.table()


def test_the_audit_interval_excludes_zero_for_a_one_sided_bias() -> None:
    prompts = [f"He said thing {i}" for i in range(20)]
    report = CounterfactualAudit(Echo(), LexiconToxicity()).run(prompts)
    difference = report.findings[0].difference
    assert difference.estimate == 1.0
    assert difference.low == 1.0
    assert report.pairs[0].counterfactual == "She said thing 0"


def test_the_audit_is_deterministic() -> None:
    prompts = ["He is here", "She is there", "His car", "Her car", "The man"] * 3
    a = CounterfactualAudit(Echo(), LexiconToxicity(), bootstrap_seed=3).run(prompts)
    b = CounterfactualAudit(Echo(), LexiconToxicity(), bootstrap_seed=3).run(prompts)
    assert a == b


def test_the_audit_keeps_a_request_seed() -> None:
    generator = Echo()
    CounterfactualAudit(generator, LexiconToxicity()).run([TextRequest(prompt="he", seed=42)])
    assert generator.seeds == [42, 42]


def test_the_audit_bad_input_names_the_argument() -> None:
    audit = CounterfactualAudit(Echo(), LexiconToxicity())
    with pytest.raises(InvalidInputError, match="prompts"):
        audit.run("He went home")
    with pytest.raises(InvalidInputError, match=r"prompts\[1\]"):
        audit.run(["he", 3])  # type: ignore[list-item]
    with pytest.raises(InvalidInputError, match="none of the 1 prompts"):
        audit.run(["nothing to swap"])
    with pytest.raises(InvalidInputError, match="scorer"):
        CounterfactualAudit(Echo(), object())  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match=r"pairs\[0\]"):
        CounterfactualAudit(Echo(), LexiconToxicity(), pairs=[("He", "she")])
    with pytest.raises(ConfigError, match="level"):
        CounterfactualAudit(Echo(), LexiconToxicity(), level=1.5)


# ------------------------------------------------------------------ bootstrap


def test_bootstrap_is_seeded_and_brackets_the_mean() -> None:
    values = [float(v % 7) for v in range(50)]
    first = bootstrap_mean(values, seed=1)
    assert first == bootstrap_mean(values, seed=1)
    assert first != bootstrap_mean(values, seed=2)
    assert first.low < first.estimate < first.high
    assert first.resamples == 1000
    assert bootstrap_mean(values, level=0.5, seed=1).width < first.width


def test_bootstrap_of_constant_values_is_a_point() -> None:
    interval = bootstrap_mean([2.0, 2.0, 2.0])
    assert (interval.low, interval.estimate, interval.high, interval.resamples) == (
        2.0,
        2.0,
        2.0,
        0,
    )


def test_bootstrap_covers_the_true_mean_about_as_often_as_promised() -> None:
    import random

    rng, hits = random.Random(0), 0
    for trial in range(200):
        sample = [rng.gauss(0.0, 1.0) for _ in range(40)]
        hits += bootstrap_mean(sample, resamples=400, seed=trial).contains(0.0)
    assert 0.88 <= hits / 200 <= 0.99  # nominal 0.95; the percentile interval runs a bit narrow


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"values": []}, "values"),
        ({"values": [1.0, float("nan")]}, r"values\[1\]"),
        ({"values": [1.0], "level": 1.0}, "level"),
        ({"values": [1.0], "resamples": 0}, "resamples"),
        ({"values": [1.0], "seed": -1}, "seed"),
    ],
)
def test_bootstrap_bad_input_names_the_argument(kwargs: dict[str, object], named: str) -> None:
    with pytest.raises(InvalidInputError, match=named):
        bootstrap_mean(**kwargs)  # type: ignore[arg-type]


def test_a_confidence_interval_must_be_ordered() -> None:
    with pytest.raises(InvalidInputError, match="low"):
        ConfidenceInterval(estimate=0.0, low=1.0, high=0.0, level=0.9, resamples=1)


# --------------------------------------------------------------------- report

DATA = [
    ("Paris", "paris"),
    ("Rome", "in Rome"),
    ("Oslo", "Bergen"),
    ("Bern", "Bern"),
    ("Kyiv", "the Kyiv city"),
]


def test_the_report_summarises_every_score() -> None:
    report = EvaluationReport.compute({"em": ExactMatch(), "f1": TokenF1()}, DATA, seed=0)
    assert [(r.evaluator, r.score, r.count) for r in report.rows] == [
        ("em", "exact_match", 5),
        ("f1", "f1", 5),
    ]
    assert report.rows[0].mean == pytest.approx(2 / 5)
    assert report.rows[1].mean == pytest.approx((1 + 2 / 3 + 0 + 1 + 2 / 3) / 5)
    assert report.rows[0].interval == bootstrap_mean([1.0, 0.0, 0.0, 1.0, 0.0], seed=0)
    assert report.examples == 5


def test_the_report_is_deterministic_and_renders_a_table() -> None:
    first = EvaluationReport.compute({"f1": TokenF1()}, DATA, seed=4)
    assert first == EvaluationReport.compute({"f1": TokenF1()}, DATA, seed=4)
    table = str(first)
    assert table.splitlines()[0] == "| evaluator | score | n | mean | interval |"
    assert f"| f1 | f1 | 5 | {first.rows[0].mean:.4f} |" in table


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert zlib.crc32(data[12:29]) == struct.unpack(">I", data[29:33])[0]  # IHDR intact
    return width, height


def test_the_report_draws_a_png(tmp_path: Path) -> None:
    pytest.importorskip("PIL", reason="the PNG is written with Pillow (genarch[images])")
    report = EvaluationReport.compute({"em": ExactMatch(), "f1": TokenF1()}, DATA)
    path = report.save_plot(tmp_path / "plots" / "report.png")
    assert _png_size(path) == (480, 12 * 2 + 24 * 2)
    picture = report.picture()
    assert picture.shape == (3, 72, 480)
    assert float(picture.min()) >= -1
    assert float(picture.max()) <= 1
    assert (picture != 1).any(dim=0).sum() > 100  # bars and whiskers were drawn


class Moody:
    """Breaks the protocol: score names change with the input."""

    def evaluate(self, request: object, result: object) -> Evaluation:
        return Evaluation(scores={str(result): 1.0})


@pytest.mark.parametrize(
    ("evaluators", "data", "named"),
    [
        ({}, DATA, "evaluators"),
        ({"em": ExactMatch()}, [], "data"),
        ({"em": ExactMatch()}, [("a", "b", "c")], r"data\[0\]"),
        ({"em": ExactMatch()}, [("a", 3)], r"em, data\[0\]"),
        ({"moody": Moody()}, DATA, r"moody gave scores .* for data\[1\]"),
        ({"x": object()}, DATA, "evaluators"),
    ],
)
def test_the_report_bad_input_names_the_argument(
    evaluators: object, data: object, named: str
) -> None:
    with pytest.raises(InvalidInputError, match=named):
        EvaluationReport.compute(evaluators, data)  # type: ignore[arg-type]
