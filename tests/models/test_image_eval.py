"""Digit evaluation (classifier, digits FID, accuracy, diversity) and PNG pictures."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from genarch.errors import InvalidInputError
from genarch.protocols import Evaluator
from genarch.schemas import Evaluation, ImageRequest, ImageResult

pytest.importorskip("sklearn")

from genarch.data.digits import DigitSplits, load_digits
from genarch.models.image_eval import (
    DigitClassifier,
    DigitsEvaluator,
    classifier_accuracy,
    frechet_distance,
    train_digit_classifier,
)


@pytest.fixture(scope="module")
def digits() -> DigitSplits:
    return load_digits()


@pytest.fixture(scope="module")
def classifier(digits: DigitSplits) -> DigitClassifier:
    with torch.random.fork_rng(devices=[]):
        torch.set_num_threads(1)
        return train_digit_classifier(digits.train, steps=100, batch_size=128)


@pytest.fixture(scope="module")
def evaluator(classifier: DigitClassifier, digits: DigitSplits) -> DigitsEvaluator:
    return DigitsEvaluator(classifier, digits.test.inputs)


# --------------------------------------------------------------------- Fréchet distance


@given(seed=st.integers(0, 10_000), shift=st.floats(-3, 3))
def test_frechet_distance_of_a_shifted_set_is_the_squared_shift(seed: int, shift: float) -> None:
    x = torch.randn(200, 4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(x, x + shift) == pytest.approx(4 * shift**2, abs=1e-6)


@given(seed=st.integers(0, 10_000))
def test_frechet_distance_is_symmetric_and_non_negative(seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    a, b = torch.randn(50, 3, generator=generator), 2 * torch.randn(60, 3, generator=generator)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-6)
    assert frechet_distance(a, b) >= 0


def test_frechet_distance_refuses_mismatched_features() -> None:
    with pytest.raises(InvalidInputError, match="equal width"):
        frechet_distance(torch.zeros(5, 3), torch.zeros(5, 4))


# --------------------------------------------------------------------------- the scores


def test_the_classifier_learns_the_digits(classifier: DigitClassifier, digits: DigitSplits) -> None:
    assert (
        classifier_accuracy(classifier, digits.test) > 0.8
    )  # 100 steps; the full recipe gets >= 0.95


def test_real_digits_score_far_better_than_noise(
    evaluator: DigitsEvaluator, digits: DigitSplits
) -> None:
    baselines = evaluator.baselines(digits.train.inputs, 300)
    noise, real = baselines["gaussian_noise"], baselines["real_training_digits"]
    assert real.fid * 5 < noise.fid
    assert real.label_coverage > 0.9
    assert 0.8 < real.diversity < 1.2


def test_class_accuracy_counts_samples_recognised_as_the_requested_digit(
    evaluator: DigitsEvaluator, classifier: DigitClassifier, digits: DigitSplits
) -> None:
    scores = evaluator.score(digits.test.inputs, digits.test.labels)
    assert scores.class_accuracy == pytest.approx(classifier_accuracy(classifier, digits.test))
    wrong = evaluator.score(digits.test.inputs, (digits.test.labels + 1) % 10)
    assert wrong.class_accuracy is not None
    assert wrong.class_accuracy < 0.2


def test_one_repeated_image_has_no_diversity(
    evaluator: DigitsEvaluator, digits: DigitSplits
) -> None:
    scores = evaluator.score(digits.test.inputs[:1].repeat(20, 1, 1, 1))
    assert scores.diversity == pytest.approx(0.0, abs=1e-6)
    assert scores.label_coverage == pytest.approx(0.0, abs=1e-9)


def test_the_evaluator_scores_a_generated_result_for_its_request(
    evaluator: DigitsEvaluator, digits: DigitSplits
) -> None:
    assert isinstance(evaluator, Evaluator)
    sevens = digits.test.of_class(7)
    evaluation = evaluator.evaluate(ImageRequest(num_samples=len(sevens), label=7),
                                    ImageResult(images=sevens, labels=(7,) * len(sevens)))  # fmt: skip
    assert isinstance(evaluation, Evaluation)
    assert evaluation.scores["class_accuracy"] > 0.8
    assert "fid" in evaluation.scores


def test_images_of_the_wrong_shape_are_refused(evaluator: DigitsEvaluator) -> None:
    with pytest.raises(InvalidInputError, match=r"\(N, 1, 8, 8\)"):
        evaluator.score(torch.zeros(4, 3, 8, 8))


# ------------------------------------------------------------------------------ pictures


def test_a_grid_png_has_the_expected_size_and_pixels(tmp_path) -> None:
    pytest.importorskip("PIL")
    from PIL import Image

    from genarch.models.pictures import save_grid, save_strip

    images = -torch.ones(5, 1, 8, 8)
    images[0] = 1.0  # the first image white, the others black
    path = save_grid(images, tmp_path / "grid.png", columns=3, scale=2, padding=1)
    with Image.open(path) as picture:
        assert picture.size == (2 * (3 * 9 + 1), 2 * (2 * 9 + 1))
        assert picture.getpixel((2, 2)) == 255
        assert picture.getpixel((2 + 18, 2)) == 0
    with Image.open(save_strip(images, tmp_path / "strip.png", scale=1)) as strip:
        assert strip.size == (5 * 9 + 1, 10)


def test_pictures_refuse_tensors_that_are_not_image_batches(tmp_path) -> None:
    pytest.importorskip("PIL")
    from genarch.models.pictures import save_grid

    with pytest.raises(InvalidInputError, match="N, 1 or 3, H, W"):
        save_grid(torch.zeros(8, 8), tmp_path / "x.png")
