"""A convolutional variational autoencoder for small images, optionally class-conditional.

The encoder maps an image to a diagonal Gaussian ``q(z | x) = N(μ, s²)`` over a
``latent_dim``-dimensional latent; the decoder maps a latent back to the mean of
a Gaussian over pixels with a fixed standard deviation ``observation_std``.
Training maximises the evidence lower bound (ELBO) with a β weight on the KL
term (β = 1 is the plain VAE; β > 1 trades reconstruction for a smoother,
more disentangled latent space)::

    ELBO(x) = E_q[log p(x | z)] - β · KL(q(z | x) || N(0, I))

sampled with the reparameterisation trick ``z = μ + s·ε``. A class-conditional
VAE feeds a one-hot label to both encoder and decoder; the label is dropped
(all zeros) for a fraction of training samples so the model also works without one.

References:
    Kingma, Welling, "Auto-Encoding Variational Bayes", 2014.
    Higgins et al., "β-VAE: Learning Basic Visual Concepts with a Constrained
    Variational Framework", 2017.
    Sohn, Lee, Yan, "Learning Structured Output Representation using Deep
    Conditional Generative Models", 2015 (the conditional VAE).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, NamedTuple

import torch
from pydantic import Field
from torch import Tensor, nn

from genarch.configured import Configured
from genarch.errors import InvalidInputError
from genarch.models.image_common import (
    MAX_CLASSES,
    MAX_HIDDEN,
    MAX_IMAGE_WIDTH,
    ImageModelMixin,
    check_image_batch,
    check_labels,
    interpolate,
    request_generator,
    request_labels,
    result_labels,
)
from genarch.schemas import Config, ImageRequest, ImageResult
from genarch.validation import describe

__all__ = ["VAE", "ELBOTerms", "VAEConfig", "VAEObjective"]

FORMAT = "genarch.vae/1"  # the kind in config.json (kept: old saves load)


class VAEConfig(Config):
    """Settings of a :class:`VAE`.

    Attributes:
        image_size: height and width of the (square) images; divisible by 2.
        channels: image channels.
        latent_dim: size of the latent vector z.
        width: channels of the first conv layer (the second has twice as many).
        hidden: size of the fully connected layer between convs and latent.
        num_classes: classes for a conditional VAE (0: unconditional).
        beta: weight of the KL term in the ELBO.
        observation_std: standard deviation of the pixel likelihood (in [-1, 1] units);
            smaller values weigh reconstruction more.
        label_dropout: share of training samples seen without their label.
    """

    image_size: Annotated[int, Field(ge=2, le=64, multiple_of=2)] = 8
    channels: Annotated[int, Field(ge=1, le=4)] = 1
    latent_dim: Annotated[int, Field(ge=1, le=512)] = 8
    width: Annotated[int, Field(ge=1, le=MAX_IMAGE_WIDTH)] = 32
    hidden: Annotated[int, Field(ge=1, le=MAX_HIDDEN)] = 256
    num_classes: Annotated[int, Field(ge=0, le=MAX_CLASSES)] = 0
    beta: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 1.0
    observation_std: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 0.2
    label_dropout: Annotated[float, Field(ge=0, le=1)] = 0.1


class ELBOTerms(NamedTuple):
    """Per-image terms of the ELBO, each of shape (N,): ``elbo = reconstruction - beta * kl``."""

    elbo: Tensor
    reconstruction: Tensor
    kl: Tensor


class VAE(nn.Module, Configured[VAEConfig], ImageModelMixin):
    """Convolutional VAE: ``Generator[ImageRequest, ImageResult]`` with a latent space.

    Args:
        config: a :class:`VAEConfig` (or a mapping of its fields).
        **fields: the config's fields as keyword arguments, instead of ``config``.

    Raises:
        ConfigError: both a config and fields, or invalid fields.

    Examples:
        >>> vae = VAE(VAEConfig(latent_dim=4, width=4, hidden=16))
        >>> vae.generate(ImageRequest(num_samples=3, seed=0)).images.shape
        torch.Size([3, 1, 8, 8])
        >>> z = vae.encode(torch.zeros(2, 1, 8, 8))
        >>> tuple(z.shape), tuple(vae.interpolate(z[0], z[1], 5, spherical=True).shape)
        ((2, 4), (5, 4))
    """

    FORMAT = FORMAT

    def __init__(self, config: VAEConfig | Mapping[str, Any] | None = None, **fields: Any) -> None:
        nn.Module.__init__(self)
        Configured.__init__(self, config, **fields)
        c = self.config
        half = c.image_size // 2
        flat = 2 * c.width * half * half
        self.encoder = nn.Sequential(
            nn.Conv2d(c.channels, c.width, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(c.width, 2 * c.width, 3, stride=2, padding=1),  # (N, 2w, S/2, S/2)
            nn.SiLU(),
            nn.Flatten(),
        )
        self.encoder_head = nn.Sequential(
            nn.Linear(flat + c.num_classes, c.hidden),
            nn.SiLU(),
            nn.Linear(c.hidden, 2 * c.latent_dim),
        )
        self.decoder_head = nn.Sequential(
            nn.Linear(c.latent_dim + c.num_classes, c.hidden),
            nn.SiLU(),
            nn.Linear(c.hidden, flat),
            nn.SiLU(),
            nn.Unflatten(1, (2 * c.width, half, half)),
        )
        self.decoder = nn.Sequential(
            nn.Upsample(scale_factor=2.0, mode="nearest"),  # (N, 2w, S, S)
            nn.Conv2d(2 * c.width, c.width, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(c.width, c.channels, 3, padding=1),
            nn.Tanh(),
        )

    # ------------------------------------------------------------------ description

    @property
    def latent_shape(self) -> tuple[int, ...]:
        """``(latent_dim,)``."""
        return (self.config.latent_dim,)

    # ----------------------------------------------------------------------- layers

    def _one_hot(self, labels: Tensor | None, size: int) -> Tensor:
        """One-hot labels, all zeros for "no label"; (N, 0) for an unconditional VAE."""
        classes = self.config.num_classes
        if labels is None:
            return torch.zeros(size, classes)
        return nn.functional.one_hot(labels, classes).float()

    def posterior(self, images: Tensor, condition: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of ``q(z | x)``, each (N, latent_dim).

        ``condition`` is the one-hot label (N, num_classes), zeros for none.
        """
        features = torch.cat([self.encoder(images), condition], dim=1)
        mean, log_variance = self.encoder_head(features).chunk(2, dim=1)
        return mean, log_variance.clamp(-12.0, 8.0)

    def _decode(self, latents: Tensor, condition: Tensor) -> Tensor:
        inputs = torch.cat([latents, condition], dim=1)
        images: Tensor = self.decoder(self.decoder_head(inputs))  # (N, C, S, S) in [-1, 1]
        return images

    def elbo_terms(self, images: Tensor, condition: Tensor, noise: Tensor) -> ELBOTerms:
        """The ELBO of each image with one latent sample ``z = μ + s·noise``.

        Args:
            images: (N, C, H, W) in [-1, 1].
            condition: one-hot labels (N, num_classes), zeros for "no label".
            noise: standard normal (N, latent_dim).
        """
        mean, log_variance = self.posterior(images, condition)
        latents = mean + (0.5 * log_variance).exp() * noise  # the reparameterisation trick
        reconstruction = self._decode(latents, condition)
        std = self.config.observation_std
        pixels = images[0].numel()
        squared = ((images - reconstruction) ** 2).flatten(1).sum(dim=1)
        log_likelihood = -0.5 * squared / std**2 - pixels * math.log(std * math.sqrt(2 * math.pi))
        kl = 0.5 * (mean**2 + log_variance.exp() - 1 - log_variance).sum(dim=1)
        return ELBOTerms(log_likelihood - self.config.beta * kl, log_likelihood, kl)

    # ------------------------------------------------------------------ latent space

    def _checked_labels(self, labels: object, size: int, where: str) -> Tensor | None:
        return check_labels(labels, size, self.config.num_classes, where)

    @torch.no_grad()
    def encode(self, data: Tensor, labels: Tensor | None = None) -> Tensor:
        """The posterior mean of each image: deterministic latents (N, latent_dim).

        Raises:
            InvalidInputError: images of another shape, or bad labels.
        """
        data = check_image_batch(data, self.image_shape, "VAE.encode")
        labels = self._checked_labels(labels, data.shape[0], "VAE.encode")
        return self.posterior(data, self._one_hot(labels, data.shape[0]))[0]

    @torch.no_grad()
    def decode(self, latents: Tensor, labels: Tensor | None = None) -> Tensor:
        """Images (N, C, H, W) in [-1, 1] for latents (N, latent_dim).

        Raises:
            InvalidInputError: latents of another shape, or bad labels.
        """
        if (
            not isinstance(latents, Tensor)
            or latents.ndim != 2
            or latents.shape[1] != self.config.latent_dim
        ):
            got = tuple(latents.shape) if isinstance(latents, Tensor) else describe(latents)
            raise InvalidInputError(
                f"VAE.decode expected latents of shape (N, {self.config.latent_dim}), got {got}"
            )
        labels = self._checked_labels(labels, latents.shape[0], "VAE.decode")
        return self._decode(latents.float(), self._one_hot(labels, latents.shape[0]))

    def interpolate(
        self, start: Tensor, end: Tensor, steps: int, *, spherical: bool = False
    ) -> Tensor:
        """``steps`` latents from ``start`` to ``end`` inclusive (linear or spherical)."""
        return interpolate(start, end, steps, spherical=spherical)

    @torch.no_grad()
    def log_prob(self, samples: Tensor, labels: Tensor | None = None, *, seed: int = 0) -> Tensor:
        """The ELBO of each image (a lower bound of log p(x), in nats), float64 (N,).

        One latent sample per image, drawn from a generator seeded with ``seed``,
        so the same images always get the same bound.
        """
        samples = check_image_batch(samples, self.image_shape, "VAE.log_prob")
        labels = self._checked_labels(labels, samples.shape[0], "VAE.log_prob")
        noise = torch.randn(
            (samples.shape[0], self.config.latent_dim), generator=request_generator(seed)
        )
        condition = self._one_hot(labels, samples.shape[0])
        return self.elbo_terms(samples, condition, noise).elbo.double()

    # --------------------------------------------------------------------- generator

    def generate(self, request: ImageRequest) -> ImageResult:
        """Decode latents drawn from the prior N(0, I) with the request's seed.

        Every latent is drawn first, then decoded ``generation_batch_size`` at a
        time, so the images do not depend on the batch size.

        Raises:
            InvalidInputError: not an ImageRequest, more samples than
                ``max_request_samples``, or an unknown label.
        """
        request = self._checked_request(request, "VAE.generate")
        generator = request_generator(request.seed)
        labels = request_labels(request, self.config.num_classes, generator)
        latents = torch.randn((request.num_samples, self.config.latent_dim), generator=generator)
        condition = self._one_hot(labels, request.num_samples)
        images = torch.empty((request.num_samples, *self.image_shape))
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                for rows in self._batches(request.num_samples):
                    images[rows] = self._decode(latents[rows], condition[rows])
        finally:
            self.train(was_training)
        return ImageResult(images=images, labels=result_labels(labels, request.num_samples))

    # ---------------------------------------------------------------------- training

    def objective(self) -> VAEObjective:
        """The ELBO training objective of this model."""
        return VAEObjective(self)


class VAEObjective:
    """Maximise the ELBO: ``loss("vae", batch)`` is the negative ELBO per pixel.

    A batch is ``images`` or ``(images, labels)``; for a conditional VAE labels
    are dropped with probability ``label_dropout``. The latent noise comes from
    torch's global generator, which the genarch optimizer seeds per step.
    """

    def __init__(self, model: VAE) -> None:
        self.model = model

    def players(self) -> dict[str, nn.Module]:
        """One player: the VAE."""
        return {"vae": self.model}

    def loss(self, player: str, batch: Tensor | tuple[Tensor, Tensor]) -> Tensor:
        """Negative ELBO averaged over images and divided by the pixels per image.

        Raises:
            InvalidInputError: an unknown player or a batch of the wrong shape.
        """
        if player != "vae":
            raise InvalidInputError(f"VAEObjective has one player, 'vae'; got {player!r}")
        model, config = self.model, self.model.config
        images, labels = (
            batch if isinstance(batch, tuple | list) and len(batch) == 2 else (batch, None)
        )
        images = check_image_batch(images, model.image_shape, "VAEObjective.loss")
        if config.num_classes == 0:
            labels = None
        labels = check_labels(labels, images.shape[0], config.num_classes, "VAEObjective.loss")
        size = images.shape[0]
        condition = model._one_hot(labels, size)
        if labels is not None and config.label_dropout > 0:  # drop labels: "no label" is all zeros
            condition = condition * (torch.rand(size) >= config.label_dropout)[:, None]
        terms = model.elbo_terms(images, condition, torch.randn(size, config.latent_dim))
        return -terms.elbo.mean() / images[0].numel()
