"""The diffusion model of small images: :class:`Diffusion`, its config and its objective.

:class:`Diffusion` puts a :class:`~genarch.models.diffusion.unet.UNetDenoiser`,
a :class:`~genarch.models.diffusion.sampling.NoiseSchedule` and a sampler
behind genarch's :class:`~genarch.protocols.Generator` protocol;
:class:`DiffusionObjective` trains any denoiser by ε-prediction; and
:func:`quickstart_images` trains a digits model and draws a picture grid.

Class-conditional models are trained with the label dropped (replaced by a
"null" class) a fraction of the time, so one network predicts both
conditional and unconditional noise, which classifier-free guidance mixes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, cast

import torch
from pydantic import Field
from torch import Tensor, nn

from genarch.configured import Configured
from genarch.errors import InvalidInputError
from genarch.models.diffusion.sampling import (
    DDIMSampler,
    DDPMSampler,
    Denoiser,
    NoiseSchedule,
    Sampler,
    sample,
)
from genarch.models.diffusion.unet import UNetDenoiser
from genarch.models.image_common import (
    MAX_CLASSES,
    MAX_IMAGE_WIDTH,
    ImageModelMixin,
    check_image_batch,
    check_labels,
    request_generator,
    request_labels,
    result_labels,
)
from genarch.schemas import Config, ImageRequest, ImageResult
from genarch.validation import describe

__all__ = [
    "Diffusion",
    "DiffusionConfig",
    "DiffusionObjective",
    "DiffusionRequest",
    "quickstart_images",
]

logger = logging.getLogger(__name__)

FORMAT = "genarch.diffusion/1"  # the kind in config.json (kept: old saves load)
MAX_GUIDANCE = 100.0  # classifier-free guidance beyond this only saturates the images


# ---------------------------------------------------------------------- the objective


class DiffusionObjective:
    """ε-prediction training (Ho et al., "simple" loss) for any :class:`Denoiser`.

    ``loss("denoiser", batch)`` draws timesteps uniformly and Gaussian noise,
    noises the batch to ``x_t`` and returns the mean squared error between the
    true and the predicted noise. Labels are replaced by the null class with
    probability ``label_dropout``, which teaches the unconditional prediction
    classifier-free guidance needs. Randomness comes from torch's global
    generator, which the genarch optimizer seeds per step.

    Args:
        denoiser: the noise predictor (an ``nn.Module``).
        schedule: the forward process.
        label_dropout: probability of training a sample without its label.

    A batch is ``images`` or ``(images, labels)``.
    """

    def __init__(
        self, denoiser: nn.Module, schedule: NoiseSchedule, *, label_dropout: float = 0.1
    ) -> None:
        if not 0 <= label_dropout <= 1:
            raise InvalidInputError(f"label_dropout must be in [0, 1], got {label_dropout!r}")
        num_classes = getattr(denoiser, "num_classes", None)
        data_shape = getattr(denoiser, "data_shape", None)
        if not isinstance(num_classes, int) or not isinstance(data_shape, tuple):
            raise InvalidInputError(
                "DiffusionObjective needs a denoiser with int num_classes and tuple data_shape "
                f"attributes (see Denoiser), got {describe(denoiser)}"
            )
        self.denoiser = denoiser
        self.num_classes, self.data_shape = num_classes, data_shape
        self.schedule = schedule
        self.label_dropout = label_dropout
        self._alphas_cumprod = schedule.alphas_cumprod().float()

    def players(self) -> dict[str, nn.Module]:
        """One player: the denoiser."""
        return {"denoiser": self.denoiser}

    def loss(self, player: str, batch: Tensor | tuple[Tensor, Tensor]) -> Tensor:
        """Mean squared error of the noise prediction on ``batch``.

        Raises:
            InvalidInputError: an unknown player, or a batch of the wrong shape or labels.
        """
        if player != "denoiser":
            raise InvalidInputError(
                f"DiffusionObjective has one player, 'denoiser'; got {player!r}"
            )
        num_classes = self.num_classes
        x, labels = _unpack(batch, self.data_shape, num_classes, "DiffusionObjective")
        n = x.shape[0]
        t = torch.randint(self.schedule.num_timesteps, (n,))
        noise = torch.randn_like(x)
        abar = self._alphas_cumprod[t].reshape(n, *([1] * (x.ndim - 1)))
        noisy = abar.sqrt() * x + (1 - abar).sqrt() * noise
        if num_classes:
            null = torch.full((n,), num_classes, dtype=torch.long)
            labels = null if labels is None else labels
            labels = torch.where(torch.rand(n) < self.label_dropout, null, labels)
        return nn.functional.mse_loss(self.denoiser(noisy, t, labels), noise)


def _unpack(
    batch: object, shape: tuple[int, ...], num_classes: int, where: str
) -> tuple[Tensor, Tensor | None]:
    """``images`` or ``(images, labels)`` -> checked tensors."""
    x, labels = batch if isinstance(batch, tuple | list) and len(batch) == 2 else (batch, None)
    if not isinstance(x, Tensor) or tuple(x.shape[1:]) != shape or x.shape[0] == 0:
        got = tuple(x.shape) if isinstance(x, Tensor) else describe(x)
        raise InvalidInputError(
            f"{where} expected data of shape (N, {', '.join(map(str, shape))}), got {got}"
        )
    if num_classes == 0 and labels is not None:
        labels = None  # an unconditional model ignores labels that come with the data
    return x, check_labels(labels, x.shape[0], num_classes, where)


# --------------------------------------------------------------------------- the model


class DiffusionConfig(Config):
    """Settings of a :class:`Diffusion` model.

    Attributes:
        image_size: height and width of the (square) images.
        channels: image channels.
        num_classes: classes for class-conditional generation (0: unconditional).
        width: channels of the U-Net's first level.
        schedule: the forward process.
        label_dropout: training without labels this often (for guidance).
        sampler: the sampler ``generate`` uses unless a request names another.
        guidance_scale: classifier-free guidance weight for labelled requests
            (1: none).
    """

    image_size: Annotated[int, Field(ge=2, le=64, multiple_of=2)] = 8
    channels: Annotated[int, Field(ge=1, le=4)] = 1
    num_classes: Annotated[int, Field(ge=0, le=MAX_CLASSES)] = 0
    width: Annotated[int, Field(ge=8, le=MAX_IMAGE_WIDTH, multiple_of=8)] = 32
    schedule: NoiseSchedule = NoiseSchedule()
    label_dropout: Annotated[float, Field(ge=0, le=1)] = 0.1
    sampler: Sampler = DDIMSampler()
    guidance_scale: Annotated[float, Field(ge=0, le=MAX_GUIDANCE)] = 2.0


class DiffusionRequest(ImageRequest):
    """An :class:`~genarch.schemas.ImageRequest` that may also choose the sampler and guidance.

    Attributes:
        sampler: overrides the model's configured sampler for this request.
        guidance_scale: overrides the model's guidance weight for this request.
    """

    sampler: Sampler | None = None
    guidance_scale: Annotated[float, Field(ge=0, le=MAX_GUIDANCE)] | None = None


class Diffusion(nn.Module, Configured[DiffusionConfig], ImageModelMixin):
    """A diffusion model of small images: ``Generator[ImageRequest, ImageResult]``.

    ``generate`` draws the starting noise (and any noise the sampler adds) from
    a generator seeded by the request, then runs :func:`sample`.

    Args:
        config: a :class:`DiffusionConfig` (or a mapping of its fields).
        **fields: the config's fields as keyword arguments, instead of ``config``.

    Raises:
        ConfigError: both a config and fields, or invalid fields.

    Examples:
        >>> model = Diffusion(DiffusionConfig(num_classes=10, width=8,
        ...     schedule=NoiseSchedule(num_timesteps=20), sampler=DDIMSampler(steps=5)))
        >>> result = model.generate(ImageRequest(num_samples=2, label=7, seed=0))
        >>> tuple(result.images.shape), result.labels
        ((2, 1, 8, 8), (7, 7))
    """

    FORMAT = FORMAT

    def __init__(
        self, config: DiffusionConfig | Mapping[str, Any] | None = None, **fields: Any
    ) -> None:
        nn.Module.__init__(self)
        Configured.__init__(self, config, **fields)
        c = self.config
        self.denoiser = UNetDenoiser(c.channels, c.image_size, c.width, c.num_classes)

    def objective(self) -> DiffusionObjective:
        """The training objective of this model's denoiser."""
        return DiffusionObjective(
            self.denoiser, self.config.schedule, label_dropout=self.config.label_dropout
        )

    def generate(self, request: ImageRequest) -> ImageResult:
        """Sample ``request.num_samples`` images (of ``request.label`` if given).

        Raises:
            InvalidInputError: not an ImageRequest, an unknown label, or a
                sampler with more steps than the schedule has timesteps.
        """
        request = self._checked_request(request, "Diffusion.generate")
        sampler: DDPMSampler | DDIMSampler = self.config.sampler
        guidance = self.config.guidance_scale
        if isinstance(request, DiffusionRequest):
            sampler = request.sampler or sampler
            guidance = request.guidance_scale if request.guidance_scale is not None else guidance
        sampler.timesteps(self.config.schedule.num_timesteps)  # validate before any work
        generator = request_generator(request.seed)
        labels = request_labels(request, self.config.num_classes, generator)
        noise = torch.randn((request.num_samples, *self.image_shape), generator=generator)
        images = torch.empty_like(noise)
        was_training = self.training
        self.eval()
        try:
            for rows in self._batches(request.num_samples):  # bounded working memory
                images[rows] = sample(
                    cast(Denoiser, self.denoiser),
                    sampler,
                    self.config.schedule,
                    noise[rows],
                    generator=generator,
                    labels=None if labels is None else labels[rows],
                    guidance_scale=guidance if labels is not None else 1.0,
                )
        finally:
            self.train(was_training)
        return ImageResult(
            images=images.clamp(-1, 1), labels=result_labels(labels, request.num_samples)
        )

    def noise_loss(self, images: Tensor, labels: Tensor | None = None) -> float:
        """The ε-prediction loss on ``images`` with fixed randomness (for validation)."""
        images = check_image_batch(images, self.image_shape, "Diffusion.noise_loss")
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return float(
                self.objective().loss(
                    "denoiser", (images, labels) if labels is not None else images
                )
            )


# --------------------------------------------------------------------------- quickstart


def quickstart_images(
    out_dir: str | os.PathLike[str],
    *,
    seconds: float = 90.0,
    seed: int = 0,
    max_steps: int = 3000,
    sample_steps: int = 50,
    threads: int | None = 1,
) -> Path:
    """Train a small class-conditional diffusion model on the digits and write a PNG grid.

    Row ``d`` of ``digits.png`` shows eight samples of digit ``d`` (DDIM,
    guidance 2); the trained model is saved beside it in ``model/``.
    Needs the ``datasets`` and ``images`` extras.

    Args:
        out_dir: where to write ``digits.png`` and ``model/``.
        seconds: training time budget (the run also stops after ``max_steps``).
        seed: seeds the training run and the samples.
        max_steps: the most training steps.
        sample_steps: DDIM steps for the pictures.
        threads: torch threads for the run (``None``: leave as is). One thread is
            the default because on a small, busy CPU two threads spin-wait on each
            other and run several times slower.

    Returns:
        The path of the PNG grid.

    Raises:
        MissingDependencyError: scikit-learn or Pillow is not installed.
    """
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _quickstart(Path(out_dir), seconds, seed, max_steps, sample_steps)
    finally:
        torch.set_num_threads(previous_threads)


def _quickstart(out: Path, seconds: float, seed: int, max_steps: int, sample_steps: int) -> Path:
    from genarch.data.digits import load_digits
    from genarch.models.image_training import train_objective
    from genarch.models.pictures import save_grid

    digits = load_digits(seed=seed)
    torch.manual_seed(seed)
    model = Diffusion(num_classes=10, width=24, sampler=DDIMSampler(steps=sample_steps))
    report = train_objective(
        model.objective(),
        digits.train.as_batch(),
        steps=max_steps,
        batch_size=96,
        learning_rate=2e-3,
        seconds=seconds,
        seed=seed,
    )
    logger.info(
        "trained %d steps in %.0f s, last loss %.4f",
        report.steps,
        report.wall_seconds,
        report.train_loss[-1],
    )
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "model")
    rows = [
        model.generate(ImageRequest(num_samples=8, label=d, seed=seed + d)).images
        for d in range(10)
    ]
    return save_grid(torch.cat(rows), out / "digits.png", columns=8)
