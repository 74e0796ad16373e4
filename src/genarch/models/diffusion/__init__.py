"""Denoising diffusion: a small U-Net, noise schedules, and DDPM / DDIM samplers.

Three separate, swappable parts, as in diffusers, each in a module of its own
(:mod:`~genarch.models.diffusion.unet`, :mod:`~genarch.models.diffusion.sampling`),
and the model that assembles them (:mod:`~genarch.models.diffusion.model`):

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

from genarch.models.diffusion.model import (
    Diffusion,
    DiffusionConfig,
    DiffusionObjective,
    DiffusionRequest,
    quickstart_images,
)
from genarch.models.diffusion.sampling import (
    DDIMSampler,
    DDPMSampler,
    Denoiser,
    NoiseSchedule,
    Sampler,
    guided_noise,
    sample,
)
from genarch.models.diffusion.unet import UNetDenoiser

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
