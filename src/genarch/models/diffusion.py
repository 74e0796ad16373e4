"""Denoising diffusion: a small U-Net, noise schedules, and DDPM / DDIM samplers.

Three separate, swappable parts, as in diffusers:

* the **denoiser** (:class:`UNetDenoiser`) predicts the noise ε in a noisy
  image ``x_t`` given the timestep ``t`` and, optionally, a class label;
* the **noise schedule** (:class:`NoiseSchedule`) says how much noise each
  timestep holds: ``x_t = sqrt(ᾱ_t)·x_0 + sqrt(1 - ᾱ_t)·ε``;
* the **sampler** (:class:`DDPMSampler`, :class:`DDIMSampler`) turns noise
  predictions into one reverse step. A sampler is a frozen record: it keeps no
  state between calls — the current sample and the random generator are passed
  in explicitly, so two sampling runs can be interleaved freely.

The whole sampling loop (:func:`sample`)::

    x = noise
    for t, t_prev in sampler.timesteps(schedule.num_timesteps):
        eps = guided_noise(denoiser, x, t, labels, guidance_scale)
        x = sampler.step(x, eps, t, t_prev, alphas_cumprod, generator)

Class-conditional models are trained with the label dropped (replaced by a
"null" class) a fraction of the time, so one network predicts both
conditional and unconditional noise; classifier-free guidance mixes the two,
``ε = ε_uncond + w·(ε_cond - ε_uncond)``, trading diversity for fidelity as
``w`` grows past 1.

References:
    Ho, Jain, Abbeel, "Denoising Diffusion Probabilistic Models", 2020.
    Song, Meng, Ermon, "Denoising Diffusion Implicit Models", 2021.
    Nichol, Dhariwal, "Improved Denoising Diffusion Probabilistic Models", 2021 (cosine schedule).
    Ho, Salimans, "Classifier-Free Diffusion Guidance", 2022.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol, cast

import torch
from pydantic import Field
from torch import Tensor, nn

from genarch.errors import InvalidInputError
from genarch.models.image_common import (
    ImageModelMixin,
    ResBlock,
    check_image_batch,
    check_image_request,
    check_labels,
    request_generator,
    request_labels,
    result_labels,
    sinusoidal_embedding,
)
from genarch.schemas import Config, ImageRequest, ImageResult
from genarch.validation import describe

__all__ = [
    "DDIMSampler",
    "DDPMSampler",
    "Denoiser",
    "Diffusion",
    "DiffusionConfig",
    "DiffusionObjective",
    "DiffusionRequest",
    "NoiseSchedule",
    "Sampler",
    "UNetDenoiser",
    "guided_noise",
    "quickstart_images",
    "sample",
]

logger = logging.getLogger(__name__)

FORMAT = "genarch.diffusion/1"


# ------------------------------------------------------------------ noise schedules


class NoiseSchedule(Config):
    """How much noise each of ``num_timesteps`` forward steps adds.

    Attributes:
        kind: ``"linear"`` betas from ``beta_start`` to ``beta_end`` (Ho et al.)
            or ``"cosine"`` ᾱ (Nichol & Dhariwal), which destroys small images
            less abruptly.
        num_timesteps: T, the length of the forward process.
        beta_start, beta_end: the linear schedule's first and last beta.

    Examples:
        >>> abar = NoiseSchedule(kind="linear", num_timesteps=1000).alphas_cumprod()
        >>> abar.shape, bool((abar[1:] < abar[:-1]).all()), round(float(abar[-1]), 5)
        (torch.Size([1000]), True, 4e-05)
    """

    kind: Literal["linear", "cosine"] = "cosine"
    num_timesteps: Annotated[int, Field(ge=2, le=10_000)] = 1000
    beta_start: Annotated[float, Field(gt=0, lt=1)] = 1e-4
    beta_end: Annotated[float, Field(gt=0, lt=1)] = 0.02

    def alphas_cumprod(self) -> Tensor:
        """ᾱ_t for t = 0..T-1 as float64: the share of signal variance left at step t."""
        steps = self.num_timesteps
        if self.kind == "linear":
            betas = torch.linspace(self.beta_start, self.beta_end, steps, dtype=torch.float64)
            return torch.cumprod(1.0 - betas, dim=0)
        s = 0.008  # offset so that beta_0 is not vanishingly small
        grid = torch.linspace(0, steps, steps + 1, dtype=torch.float64) / steps
        f = torch.cos((grid + s) / (1 + s) * math.pi / 2) ** 2
        betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
        return torch.cumprod(1.0 - betas, dim=0)


# ------------------------------------------------------------------------- samplers


def _strided_timesteps(num_timesteps: int, steps: int | None, where: str) -> list[tuple[int, int]]:
    """Pairs ``(t, t_prev)`` from T-1 down to 0, ``steps`` of them evenly spaced; the
    last pair has ``t_prev = -1`` (clean data, ᾱ = 1)."""
    count = num_timesteps if steps is None else steps
    if count > num_timesteps:
        raise InvalidInputError(
            f"{where}: steps ({count}) cannot exceed the schedule's num_timesteps ({num_timesteps})"
        )
    points = torch.linspace(num_timesteps - 1, 0, count, dtype=torch.float64).round().long()
    times = points.tolist()
    return list(zip(times, [*times[1:], -1], strict=True))


def _alpha_pair(alphas_cumprod: Tensor, t: int, t_prev: int) -> tuple[float, float]:
    return float(alphas_cumprod[t]), float(alphas_cumprod[t_prev]) if t_prev >= 0 else 1.0


def _predicted_clean(x: Tensor, eps: Tensor, abar: float, clip: bool) -> tuple[Tensor, Tensor]:
    """x̂_0 from x_t and ε̂ (clipped to the data range if asked), and the ε consistent with it."""
    x0 = (x - math.sqrt(1 - abar) * eps) / math.sqrt(abar)
    if clip:
        x0 = x0.clamp(-1.0, 1.0)
        eps = (x - math.sqrt(abar) * x0) / math.sqrt(1 - abar)
    return x0, eps


class DDPMSampler(Config):
    """Ancestral sampling (Ho et al.): each step draws ``x_{t_prev}`` from the
    Gaussian posterior ``q(x_{t_prev} | x_t, x̂_0)``.

    Attributes:
        steps: reverse steps (``None``: all T; fewer skips timesteps evenly,
            using the posterior between the visited timesteps).
        variance: ``"posterior"`` (β̃, the lower bound) or ``"beta"`` (β, the upper one).
        clip_denoised: clamp x̂_0 to ``[-1, 1]`` before each step.
    """

    kind: Literal["ddpm"] = "ddpm"
    steps: Annotated[int, Field(ge=1)] | None = None
    variance: Literal["posterior", "beta"] = "posterior"
    clip_denoised: bool = True

    def timesteps(self, num_timesteps: int) -> list[tuple[int, int]]:
        """The ``(t, t_prev)`` pairs to visit, noisiest first."""
        return _strided_timesteps(num_timesteps, self.steps, "DDPMSampler")

    def step(
        self,
        x: Tensor,
        noise_prediction: Tensor,
        t: int,
        t_prev: int,
        alphas_cumprod: Tensor,
        generator: torch.Generator,
    ) -> Tensor:
        """One reverse step from ``x`` at ``t`` to a sample at ``t_prev``."""
        abar, abar_prev = _alpha_pair(alphas_cumprod, t, t_prev)
        x0, _ = _predicted_clean(x, noise_prediction, abar, self.clip_denoised)
        alpha = abar / abar_prev  # the step's own (1 - beta)
        beta = 1 - alpha
        mean = (math.sqrt(abar_prev) * beta / (1 - abar)) * x0 + (
            math.sqrt(alpha) * (1 - abar_prev) / (1 - abar)
        ) * x
        if t_prev < 0:
            return mean
        variance = beta * (1 - abar_prev) / (1 - abar) if self.variance == "posterior" else beta
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        return mean + math.sqrt(variance) * noise


class DDIMSampler(Config):
    """Implicit sampling (Song et al.): deterministic for ``eta = 0``, so far
    fewer steps than T give good samples and the same noise gives the same image.

    Attributes:
        steps: reverse steps, evenly spaced over the T timesteps.
        eta: 0 is deterministic DDIM; 1 adds DDPM-like noise.
        clip_denoised: clamp x̂_0 to ``[-1, 1]`` before each step.
    """

    kind: Literal["ddim"] = "ddim"
    steps: Annotated[int, Field(ge=1)] = 50
    eta: Annotated[float, Field(ge=0)] = 0.0
    clip_denoised: bool = True

    def timesteps(self, num_timesteps: int) -> list[tuple[int, int]]:
        """The ``(t, t_prev)`` pairs to visit, noisiest first."""
        return _strided_timesteps(num_timesteps, self.steps, "DDIMSampler")

    def step(
        self,
        x: Tensor,
        noise_prediction: Tensor,
        t: int,
        t_prev: int,
        alphas_cumprod: Tensor,
        generator: torch.Generator,
    ) -> Tensor:
        """One reverse step from ``x`` at ``t`` to ``t_prev`` (Song et al., eq. 12)."""
        abar, abar_prev = _alpha_pair(alphas_cumprod, t, t_prev)
        x0, eps = _predicted_clean(x, noise_prediction, abar, self.clip_denoised)
        sigma = self.eta * math.sqrt((1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev))
        direction = math.sqrt(max(1 - abar_prev - sigma**2, 0.0)) * eps
        x_prev = math.sqrt(abar_prev) * x0 + direction
        if sigma > 0 and t_prev >= 0:
            x_prev = x_prev + sigma * torch.randn(x.shape, generator=generator, dtype=x.dtype)
        return x_prev


Sampler = Annotated[DDPMSampler | DDIMSampler, Field(discriminator="kind")]
"""Either sampler; the ``kind`` field tells which (so configs round-trip through JSON)."""


# ---------------------------------------------------------------------- the loop


class Denoiser(Protocol):
    """What the samplers and :class:`DiffusionObjective` need from a noise predictor.

    ``denoiser(x, t, labels)`` maps noisy data ``x`` of shape ``(N, *data_shape)``,
    timesteps ``t`` (N,) and labels (N,) — where ``num_classes`` is the "no label"
    class — to predicted noise of ``x``'s shape.
    """

    @property
    def num_classes(self) -> int: ...

    @property
    def data_shape(self) -> tuple[int, ...]: ...

    def __call__(self, x: Tensor, t: Tensor, labels: Tensor | None) -> Tensor: ...


def guided_noise(
    denoiser: Denoiser, x: Tensor, t: int, labels: Tensor | None, guidance_scale: float
) -> Tensor:
    """The noise prediction at timestep ``t``, with classifier-free guidance.

    With labels and ``guidance_scale != 1`` the conditional and unconditional
    predictions come from one batched call and are mixed as
    ``ε_u + w·(ε_c - ε_u)``; ``w = 1`` is plain conditional, ``w = 0`` unconditional.
    """
    times = torch.full((x.shape[0],), t, dtype=torch.long)
    if labels is None or guidance_scale == 1.0:
        return denoiser(x, times, labels)
    null = torch.full_like(labels, denoiser.num_classes)
    both = denoiser(torch.cat([x, x]), torch.cat([times, times]), torch.cat([labels, null]))
    conditional, unconditional = both.chunk(2)
    return unconditional + guidance_scale * (conditional - unconditional)


@torch.no_grad()
def sample(
    denoiser: Denoiser,
    sampler: DDPMSampler | DDIMSampler,
    schedule: NoiseSchedule,
    noise: Tensor,
    *,
    generator: torch.Generator,
    labels: Tensor | None = None,
    guidance_scale: float = 1.0,
) -> Tensor:
    """Run the reverse process from ``noise`` to data.

    Everything that varies is an argument: the same inputs (and generator
    state) give the same output, whatever ran before.

    Examples:
        >>> class Exact:  # the ideal denoiser for data that is always 0.5
        ...     num_classes, data_shape = 0, (1,)
        ...     def __call__(self, x, t, labels):
        ...         abar = NoiseSchedule().alphas_cumprod()[t].float()[:, None]
        ...         return (x - abar.sqrt() * 0.5) / (1 - abar).sqrt()
        >>> out = sample(Exact(), DDIMSampler(steps=10), NoiseSchedule(), torch.randn(3, 1),
        ...              generator=torch.Generator().manual_seed(0))
        >>> [round(v, 4) for v in out.flatten().tolist()]
        [0.5, 0.5, 0.5]
    """
    alphas_cumprod = schedule.alphas_cumprod()
    x = noise
    for t, t_prev in sampler.timesteps(schedule.num_timesteps):
        eps = guided_noise(denoiser, x, t, labels, guidance_scale)
        x = sampler.step(x, eps, t, t_prev, alphas_cumprod, generator)
    return x


# ---------------------------------------------------------------------- the denoiser


class UNetDenoiser(nn.Module):
    """A two-level U-Net for small images with timestep and class embeddings.

    ``(N, C, S, S)`` → ResBlock at S → downsample to S/2 → two ResBlocks →
    upsample to S, concatenate the skip → ResBlock → ``(N, C, S, S)``.

    Args:
        channels: image channels.
        image_size: S (even).
        width: channels of the first level (the second has twice as many).
        num_classes: classes (0: unconditional); the embedding has one more
            row, the "null" class used for classifier-free guidance.
    """

    def __init__(self, channels: int, image_size: int, width: int, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.data_shape = (channels, image_size, image_size)
        self.width = width
        embed = 4 * width
        self.time_mlp = nn.Sequential(nn.Linear(width, embed), nn.SiLU(), nn.Linear(embed, embed))
        self.class_embed = nn.Embedding(num_classes + 1, embed) if num_classes else None
        self.stem = nn.Conv2d(channels, width, 3, padding=1)
        self.down = ResBlock(width, width, embed)
        self.downsample = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1)
        self.middle1 = ResBlock(2 * width, 2 * width, embed)
        self.middle2 = ResBlock(2 * width, 2 * width, embed)
        self.upsample = nn.Conv2d(2 * width, width, 3, padding=1)
        self.up = ResBlock(2 * width, width, embed)
        self.head = nn.Sequential(
            nn.GroupNorm(8, width), nn.SiLU(), nn.Conv2d(width, channels, 3, padding=1)
        )

    def forward(self, x: Tensor, t: Tensor, labels: Tensor | None = None) -> Tensor:
        e = self.time_mlp(sinusoidal_embedding(t, self.width))  # (N, 4w)
        if self.class_embed is not None:
            if labels is None:  # no label: the null class
                labels = torch.full((x.shape[0],), self.num_classes, dtype=torch.long)
            e = e + self.class_embed(labels)
        e = nn.functional.silu(e)
        skip = self.down(self.stem(x), e)  # (N, w, S, S)
        h = self.downsample(skip)  # (N, 2w, S/2, S/2)
        h = self.middle2(self.middle1(h, e), e)
        h = self.upsample(
            nn.functional.interpolate(h, scale_factor=2.0, mode="nearest")
        )  # (N, w, S, S)
        h = self.up(torch.cat([h, skip], dim=1), e)
        out: Tensor = self.head(h)  # (N, C, S, S)
        return out


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
    num_classes: Annotated[int, Field(ge=0)] = 0
    width: Annotated[int, Field(ge=8, multiple_of=8)] = 32
    schedule: NoiseSchedule = NoiseSchedule()
    label_dropout: Annotated[float, Field(ge=0, le=1)] = 0.1
    sampler: Sampler = DDIMSampler()
    guidance_scale: Annotated[float, Field(ge=0)] = 2.0


class DiffusionRequest(ImageRequest):
    """An :class:`~genarch.schemas.ImageRequest` that may also choose the sampler and guidance.

    Attributes:
        sampler: overrides the model's configured sampler for this request.
        guidance_scale: overrides the model's guidance weight for this request.
    """

    sampler: Sampler | None = None
    guidance_scale: Annotated[float, Field(ge=0)] | None = None


class Diffusion(ImageModelMixin, nn.Module):
    """A diffusion model of small images: ``Generator[ImageRequest, ImageResult]``.

    ``generate`` draws the starting noise (and any noise the sampler adds) from
    a generator seeded by the request, then runs :func:`sample`.

    Examples:
        >>> model = Diffusion(DiffusionConfig(num_classes=10, width=8,
        ...     schedule=NoiseSchedule(num_timesteps=20), sampler=DDIMSampler(steps=5)))
        >>> result = model.generate(ImageRequest(num_samples=2, label=7, seed=0))
        >>> tuple(result.images.shape), result.labels
        ((2, 1, 8, 8), (7, 7))
    """

    FORMAT = FORMAT
    CONFIG_TYPE = DiffusionConfig
    _config: DiffusionConfig

    def __init__(self, config: DiffusionConfig | None = None, **fields: Any) -> None:
        super().__init__()
        self._config = config if config is not None else DiffusionConfig(**fields)
        c = self._config
        self.denoiser = UNetDenoiser(c.channels, c.image_size, c.width, c.num_classes)

    @property
    def config(self) -> DiffusionConfig:
        """The frozen configuration."""
        return self._config

    def objective(self) -> DiffusionObjective:
        """The training objective of this model's denoiser."""
        return DiffusionObjective(
            self.denoiser, self._config.schedule, label_dropout=self._config.label_dropout
        )

    def generate(self, request: ImageRequest) -> ImageResult:
        """Sample ``request.num_samples`` images (of ``request.label`` if given).

        Raises:
            InvalidInputError: not an ImageRequest, an unknown label, or a
                sampler with more steps than the schedule has timesteps.
        """
        request = check_image_request(request, self._config.num_classes, "Diffusion.generate")
        sampler: DDPMSampler | DDIMSampler = self._config.sampler
        guidance = self._config.guidance_scale
        if isinstance(request, DiffusionRequest):
            sampler = request.sampler or sampler
            guidance = request.guidance_scale if request.guidance_scale is not None else guidance
        sampler.timesteps(self._config.schedule.num_timesteps)  # validate before any work
        generator = request_generator(request.seed)
        labels = request_labels(request, self._config.num_classes, generator)
        noise = torch.randn((request.num_samples, *self.image_shape), generator=generator)
        was_training = self.training
        self.eval()
        try:
            images = sample(
                cast(Denoiser, self.denoiser),
                sampler,
                self._config.schedule,
                noise,
                generator=generator,
                labels=labels,
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
    from genarch.models.image_common import train_objective
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
