"""Honest measurements of generated digits: recognisability, realism, diversity.

A small CNN (:class:`DigitClassifier`) trained on real training digits is the
measuring instrument. With it, :class:`DigitsEvaluator` reports for a set of
generated images:

* **class accuracy** — for class-conditional samples, the share the classifier
  assigns to the requested digit;
* **digits FID** — the Fréchet distance between Gaussians fitted to the
  classifier's penultimate-layer features of held-out real digits and of the
  generated images (the FID recipe of Heusel et al., 2017, with a digits
  classifier in place of Inception);
* **diversity** — mean pairwise feature distance of the generated images
  divided by that of the real held-out digits (1 ≈ as varied as real data; near
  0 = mode collapse), and **label coverage** — entropy of the predicted classes
  divided by log 10 (1 = every digit equally often).

A number only means something next to references, so :meth:`DigitsEvaluator.baselines`
scores Gaussian noise (how bad it gets) and real *training* digits (how good it
gets with the same number of images — FID is biased upwards for small sets).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from genarch.data.digits import LabelledData
from genarch.errors import InvalidInputError
from genarch.models.image_common import check_image_batch, check_labels
from genarch.models.image_training import train_objective
from genarch.schemas import Evaluation, ImageRequest, ImageResult, Record
from genarch.validation import describe

__all__ = [
    "ClassificationObjective",
    "DigitClassifier",
    "DigitScores",
    "DigitsEvaluator",
    "classifier_accuracy",
    "frechet_distance",
    "train_digit_classifier",
]


class DigitClassifier(nn.Module):
    """A small CNN for 8x8 digits; 16x16 inputs are average-pooled to 8x8 first.

    ``features`` gives the 128-d penultimate layer used for digits FID.

    Args:
        num_classes: classes to tell apart.
        width: channels of the first conv layer.
    """

    def __init__(self, num_classes: int = 10, width: int = 32) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.body = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),  # (N, 2w, 4, 4)
            nn.ReLU(),
            nn.Flatten(),
            nn.Dropout(0.2),
            nn.Linear(2 * width * 16, 128),
            nn.ReLU(),
        )
        self.head = nn.Linear(128, num_classes)

    def features(self, images: Tensor) -> Tensor:
        """Penultimate-layer features (N, 128) of images (N, 1, S, S) in [-1, 1]."""
        if images.shape[-1] != 8:
            images = nn.functional.adaptive_avg_pool2d(images, 8)
        features: Tensor = self.body(images)
        return features

    def forward(self, images: Tensor) -> Tensor:
        logits: Tensor = self.head(self.features(images))  # (N, classes)
        return logits

    @torch.no_grad()
    def predict(self, images: Tensor) -> Tensor:
        """The most likely class of each image (N,), in eval mode."""
        was_training = self.training
        self.eval()
        try:
            predicted: Tensor = self(images).argmax(dim=1)
            return predicted
        finally:
            self.train(was_training)


class ClassificationObjective:
    """Cross-entropy for a classifier; a batch is ``(inputs, labels)``.

    Training images are shifted by up to one pixel at random (the digits are
    small and not all centred), drawn from torch's global generator.
    """

    def __init__(self, classifier: nn.Module, *, shift: int = 1) -> None:
        self.classifier = classifier
        self.shift = shift

    def players(self) -> dict[str, nn.Module]:
        """One player: the classifier."""
        return {"classifier": self.classifier}

    def loss(self, player: str, batch: tuple[Tensor, Tensor]) -> Tensor:
        """Mean cross-entropy on the (augmented) batch."""
        if player != "classifier" or not (isinstance(batch, tuple | list) and len(batch) == 2):
            raise InvalidInputError(
                f"ClassificationObjective expected player 'classifier' and an (inputs, labels) "
                f"batch, got {player!r} and {describe(batch)}"
            )
        inputs, labels = batch
        if self.shift and torch.is_grad_enabled():
            dx, dy = (int(v) for v in torch.randint(-self.shift, self.shift + 1, (2,)))
            inputs = torch.roll(inputs, shifts=(dy, dx), dims=(2, 3))
        return nn.functional.cross_entropy(self.classifier(inputs), labels)


def train_digit_classifier(
    train: LabelledData, *, steps: int = 800, batch_size: int = 128, seed: int = 0
) -> DigitClassifier:
    """Train a :class:`DigitClassifier` on real training digits (a few seconds on a CPU).

    Examples:
        >>> from genarch.data.digits import load_digits
        >>> digits = load_digits()
        >>> classifier = train_digit_classifier(digits.train, steps=20)
        >>> 0.3 < classifier_accuracy(classifier, digits.test) <= 1.0
        True
    """
    torch.manual_seed(seed)
    classifier = DigitClassifier(num_classes=int(train.labels.max()) + 1)
    train_objective(
        ClassificationObjective(classifier),
        train.as_batch(),
        steps=steps,
        batch_size=batch_size,
        learning_rate=2e-3,
        seed=seed,
    )
    return classifier.eval()


def classifier_accuracy(classifier: DigitClassifier, data: LabelledData) -> float:
    """Share of ``data`` the classifier labels correctly."""
    return float((classifier.predict(data.inputs) == data.labels).double().mean())


def frechet_distance(a: Tensor, b: Tensor) -> float:
    """Fréchet distance between Gaussians fitted to feature sets ``a`` (N, D) and ``b`` (M, D):
    ``|μa - μb|² + tr(Σa + Σb - 2 (Σa^½ Σb Σa^½)^½)``, in float64.

    Raises:
        InvalidInputError: not 2-D tensors of the same width with at least two rows each.

    Examples:
        >>> x = torch.randn(500, 3, generator=torch.Generator().manual_seed(0))
        >>> frechet_distance(x, x) < 1e-6, round(frechet_distance(x, x + 2.0), 3)
        (True, 12.0)
    """
    if not (isinstance(a, Tensor) and isinstance(b, Tensor) and a.ndim == b.ndim == 2):
        raise InvalidInputError(
            f"frechet_distance expected two (N, D) tensors, got {describe(a)}, {describe(b)}"
        )
    if a.shape[1] != b.shape[1] or a.shape[0] < 2 or b.shape[0] < 2:
        raise InvalidInputError(
            f"frechet_distance expected feature sets of equal width with >= 2 rows, "
            f"got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    a, b = a.double(), b.double()
    mean_a, mean_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)
    values, vectors = torch.linalg.eigh(cov_a)
    root_a = vectors @ torch.diag(values.clamp_min(0).sqrt()) @ vectors.T
    middle = root_a @ cov_b @ root_a  # symmetric PSD: its trace-sqrt is the sum of sqrt-eigenvalues
    trace_root = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp_min(0).sqrt().sum()
    distance = (mean_a - mean_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * trace_root
    return max(float(distance), 0.0)


class DigitScores(Record):
    """What :class:`DigitsEvaluator` measured for one set of images.

    Attributes:
        fid: digits FID against held-out real digits (lower is better).
        class_accuracy: share recognised as the requested digit (``None``
            without requested labels).
        diversity: mean pairwise feature distance relative to real digits.
        label_coverage: entropy of the predicted digits / log(classes).
        num_images: images scored.
    """

    fid: float
    class_accuracy: float | None = None
    diversity: float
    label_coverage: float
    num_images: int


class DigitsEvaluator:
    """Scores generated digits against held-out real ones (also an ``Evaluator``).

    Args:
        classifier: a trained :class:`DigitClassifier`.
        reference: held-out real images (N, 1, S, S) in [-1, 1].
    """

    def __init__(self, classifier: DigitClassifier, reference: Tensor) -> None:
        if not isinstance(reference, Tensor) or reference.ndim != 4 or reference.shape[0] < 2:
            raise InvalidInputError(
                f"DigitsEvaluator expected reference images (N>=2, 1, S, S), got {describe(reference)}"
            )
        self.classifier = classifier.eval()
        self.image_shape = tuple(reference.shape[1:])
        self._reference = self._features(reference)
        self._reference_spread = _mean_pairwise_distance(self._reference)

    @torch.no_grad()
    def _features(self, images: Tensor) -> Tensor:
        return self.classifier.features(images)

    def score(self, images: Tensor, requested_labels: Tensor | None = None) -> DigitScores:
        """Measure a set of generated images (at least two).

        Raises:
            InvalidInputError: images of another shape, or labels that do not fit.
        """
        images = check_image_batch(images, self.image_shape, "DigitsEvaluator.score")  # type: ignore[arg-type]
        classes = self.classifier.num_classes
        labels = check_labels(requested_labels, images.shape[0], classes, "DigitsEvaluator.score")
        features = self._features(images.clamp(-1, 1))
        predicted = self.classifier.head(features).argmax(dim=1)
        counts = torch.bincount(predicted, minlength=classes).double()
        shares = counts[counts > 0] / counts.sum()
        return DigitScores(
            fid=frechet_distance(self._reference, features) if images.shape[0] >= 2 else math.nan,
            class_accuracy=float((predicted == labels).double().mean())
            if labels is not None
            else None,
            diversity=_mean_pairwise_distance(features) / self._reference_spread,
            label_coverage=float(-(shares * shares.log()).sum() / math.log(classes)),
            num_images=int(images.shape[0]),
        )

    def evaluate(self, request: ImageRequest, result: ImageResult) -> Evaluation:
        """Score one generated result for its request (the ``Evaluator`` protocol)."""
        labels = None
        if isinstance(request, ImageRequest) and request.label is not None:
            labels = torch.full((result.images.shape[0],), request.label, dtype=torch.long)
        scores = self.score(result.images, labels)
        values = {k: v for k, v in scores.model_dump().items() if isinstance(v, int | float)}
        return Evaluation(scores={k: float(v) for k, v in values.items()})

    def baselines(
        self, training_images: Tensor, count: int, *, seed: int = 0
    ) -> Mapping[str, DigitScores]:
        """Scores of ``count`` Gaussian-noise images and ``count`` real training digits."""
        generator = torch.Generator().manual_seed(seed)
        noise = torch.randn((count, *self.image_shape), generator=generator).clamp(-1, 1)
        pick = torch.randperm(training_images.shape[0], generator=generator)[:count]
        return {
            "gaussian_noise": self.score(noise),
            "real_training_digits": self.score(training_images[pick]),
        }


def _mean_pairwise_distance(features: Tensor) -> float:
    """Mean Euclidean distance between distinct rows (at most 1,000 rows, evenly picked)."""
    if features.shape[0] > 1000:
        features = features[torch.linspace(0, features.shape[0] - 1, 1000).long()]
    distances = torch.cdist(features.double(), features.double())
    n = features.shape[0]
    return float(distances.sum() / max(n * (n - 1), 1))
