"""Drift monitoring: Python-docs topics the model was not fitted on pass, recipes are flagged."""

from __future__ import annotations

import math
import random

import pytest
import torch

from genarch.data import ByteTokenizer, python_docs
from genarch.errors import ConfigError, InvalidInputError
from genarch.features import HashingVectorizer
from genarch.feedback import DriftMonitor


def paragraphs(documents) -> list[str]:
    return [p.strip() for d in documents for p in d.text.split("\n\n") if len(p.strip()) > 80]


DOCS = python_docs()
TRAIN = paragraphs(d for i, d in enumerate(DOCS) if i % 5)  # four topics in five
HELD_OUT_TOPICS = paragraphs(DOCS[::5])  # the same family of text, other topics


def recipes(count: int, seed: int) -> list[str]:
    """Another topic family: cooking instructions."""
    rng = random.Random(seed)
    dishes = ("the soup", "the bread", "the sauce", "a cake", "the rice", "the stew")
    steps = ("simmer", "bake", "stir", "season", "chill", "whisk", "knead", "roast")
    things = ("garlic", "butter", "fresh basil", "two eggs", "olive oil", "lemon zest")
    return [
        " ".join(
            f"{rng.choice(steps).capitalize()} {rng.choice(dishes)} with {rng.choice(things)} "
            f"for {rng.randint(2, 40)} minutes, then add {rng.choice(things)}."
            for _ in range(rng.randint(2, 4))
        )
        for _ in range(count)
    ]


@pytest.fixture(scope="module")
def monitor() -> DriftMonitor:
    return DriftMonitor(ByteTokenizer(), HashingVectorizer(dim=4096)).fit(TRAIN)


@pytest.mark.parametrize("seed", range(3))
def test_unseen_topics_of_the_same_family_are_not_drift(monitor, seed):
    report = monitor.check(random.Random(seed).sample(HELD_OUT_TOPICS, 60))
    assert not report.drifted, report.reasons
    assert report.token_psi < 0.2  # measured: 0.10 to 0.14
    assert report.embedding_shift is not None
    assert report.embedding_shift_noise_floor is not None
    assert report.embedding_shift < 2 * report.embedding_shift_noise_floor  # measured 0.17 / 0.13


def test_another_topic_family_is_drift_by_both_statistics(monitor):
    report = monitor.check(recipes(60, seed=0))
    assert report.drifted
    assert report.token_psi > 0.5  # measured: 0.93
    assert report.embedding_shift is not None
    assert report.embedding_shift > 0.8  # measured: 0.95
    assert len(report.reasons) == 2
    assert "token PSI" in report.reasons[0]
    assert "embedding-mean shift" in report.reasons[1]


def test_the_training_texts_themselves_show_no_drift(monitor):
    report = monitor.check(TRAIN)
    assert report.token_psi == pytest.approx(0.0, abs=1e-12)
    assert report.embedding_shift == pytest.approx(0.0, abs=1e-9)
    assert not report.drifted


def test_psi_is_the_formula_over_half_smoothed_bins():
    monitor = DriftMonitor(ByteTokenizer(), bins=2).fit(["aab"])  # bins: a, b, other
    report = monitor.check(["abcc"])
    train, recent = [2, 1, 0], [1, 1, 2]
    t = [(c + 0.5) / (3 + 1.5) for c in train]
    r = [(c + 0.5) / (4 + 1.5) for c in recent]
    expected = sum((ri - ti) * math.log(ri / ti) for ti, ri in zip(t, r, strict=True))
    assert report.token_psi == pytest.approx(expected, abs=1e-12)
    assert sum(s.contribution for s in report.largest_token_shifts) == pytest.approx(expected)
    assert {s.token for s in report.largest_token_shifts} == {"a", "b", None}
    assert report.token_psi_noise_floor == pytest.approx(2 * (1 / 4 + 1 / 3))


def test_the_report_lists_the_bins_that_moved_most(monitor):
    report = monitor.check(recipes(60, seed=1))
    contributions = [s.contribution for s in report.largest_token_shifts]
    assert contributions == sorted(contributions, reverse=True)
    assert len(contributions) == monitor.config.top_shifts


def test_thresholds_are_the_configs():
    lenient = DriftMonitor(ByteTokenizer(), HashingVectorizer(dim=4096), psi_threshold=5.0)
    report = lenient.fit(TRAIN).check(recipes(60, seed=0))
    assert report.drifted
    assert len(report.reasons) == 1
    assert report.reasons[0].startswith("embedding-mean shift")


def test_without_an_extractor_only_the_token_histogram_is_compared():
    report = DriftMonitor(ByteTokenizer()).fit(TRAIN).check(recipes(20, seed=0))
    assert report.drifted
    assert (report.embedding_shift, report.embedding_shift_noise_floor) == (None, None)


@pytest.mark.parametrize(
    ("texts", "named"),
    [([], "texts is empty"), ("a text", "sequence of strings"), (["ok", 3], r"texts\[1\]")],
)
def test_bad_texts_are_refused_naming_them(monitor, texts, named):
    with pytest.raises(InvalidInputError, match=named):
        monitor.check(texts)
    with pytest.raises(InvalidInputError, match=named):
        DriftMonitor(ByteTokenizer()).fit(texts)


def test_check_before_fit_is_a_config_error():
    with pytest.raises(ConfigError, match="before fit"):
        DriftMonitor(ByteTokenizer()).check(["text"])


def test_an_extractor_of_the_wrong_shape_is_refused():
    class Broken:
        dim = 2

        def extract(self, items):
            return torch.zeros(1, 2)

    with pytest.raises(InvalidInputError, match=r"\(2, dim\) tensor"):
        DriftMonitor(ByteTokenizer(), Broken()).fit(["a", "b"])


def test_features_that_do_not_vary_cannot_scale_a_shift():
    with pytest.raises(InvalidInputError, match="do not vary"):
        DriftMonitor(ByteTokenizer(), HashingVectorizer(dim=16)).fit(["same text"] * 3)
