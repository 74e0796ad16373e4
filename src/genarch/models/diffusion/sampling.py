"""Noise schedules, the DDPM and DDIM samplers, and the sampling loop.

* the **noise schedule** (:class:`NoiseSchedule`) says how much noise each
  timestep holds: ``x_t = sqrt(ᾱ_t)·x_0 + sqrt(1 - ᾱ_t)·ε``;
* the **sampler** (:class:`DDPMSampler`, :class:`DDIMSampler`) turns a noise
  prediction into one reverse step. A sampler is a frozen record: it keeps no
  state between calls — the current sample and the random generator are passed
  in explicitly, so two sampling runs can be interleaved freely;
* the **loop** (:func:`sample`) runs any :class:`Denoiser` through a sampler,
  with classifier-free guidance (:func:`guided_noise`).

References:
    Ho, Jain, Abbeel, "Denoising Diffusion Probabilistic Models", 2020.
    Song, Meng, Ermon, "Denoising Diffusion Implicit Models", 2021.
    Nichol, Dhariwal, "Improved Denoising Diffusion Probabilistic Models", 2021 (cosine schedule).
    Ho, Salimans, "Classifier-Free Diffusion Guidance", 2022.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, Protocol

import torch
from pydantic import Field
from torch import Tensor

from genarch.errors import InvalidInputError
from genarch.schemas import Config

__all__ = [
    "DDIMSampler",
    "DDPMSampler",
    "Denoiser",
    "NoiseSchedule",
    "Sampler",
    "guided_noise",
    "sample",
]


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
    steps: Annotated[int, Field(ge=1, le=10_000)] | None = None
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
    steps: Annotated[int, Field(ge=1, le=10_000)] = 50
    eta: Annotated[float, Field(ge=0, le=10.0)] = 0.0
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
