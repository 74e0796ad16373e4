"""A DCGAN-style generative adversarial network for small images, optionally class-conditional.

Two players: the generator maps a latent ``z ~ N(0, I)`` (and a label) to an
image; the discriminator scores images as real or generated. Training
alternates their updates through the genarch optimizer — one step updates the
discriminator, then the generator against the just-updated discriminator:

* ``loss="non_saturating"`` (Goodfellow et al.): D minimises
  ``softplus(-D(x)) + softplus(D(G(z)))``, G minimises ``softplus(-D(G(z)))``;
* ``loss="hinge"`` (Lim & Ye; Miyato et al.): D minimises
  ``relu(1 - D(x)) + relu(1 + D(G(z)))``, G minimises ``-D(G(z))``.

Options: spectral normalisation of the discriminator's layers (Miyato et al.),
which bounds its Lipschitz constant and steadies training; an exponential
moving average of the generator's weights (Karras et al.), which ``generate``
uses and which gives smoother samples than the raw, oscillating generator;
class conditioning by a label embedding fed to the generator and a projection
term in the discriminator (Miyato & Koyama).

References:
    Goodfellow et al., "Generative Adversarial Nets", 2014.
    Radford, Metz, Chintala, "Unsupervised Representation Learning with Deep
    Convolutional GANs", 2016 (DCGAN).
    Miyato et al., "Spectral Normalization for GANs", 2018.
    Miyato, Koyama, "cGANs with Projection Discriminator", 2018.
    Karras et al., "Progressive Growing of GANs", 2018 (generator EMA).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from genarch.configured import Configured
from genarch.errors import InvalidInputError
from genarch.models.image_common import (
    MAX_CLASSES,
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

__all__ = ["GAN", "GANConfig", "GANObjective", "ImageDiscriminator", "ImageGenerator"]

FORMAT = "genarch.gan/1"  # the kind in config.json (kept: old saves load)


class GANConfig(Config):
    """Settings of a :class:`GAN`.

    Attributes:
        image_size: height and width of the (square) images; divisible by 2.
        channels: image channels.
        latent_dim: size of the latent vector z.
        width: channels of the networks' first level (the next has twice as many).
        num_classes: classes for a conditional GAN (0: unconditional).
        loss: ``"non_saturating"`` or ``"hinge"``.
        spectral_norm: spectrally normalise the discriminator's weights.
        ema_decay: decay of the generator weights' moving average (0: no EMA;
            ``generate`` then uses the raw generator).
    """

    image_size: Annotated[int, Field(ge=2, le=64, multiple_of=2)] = 8
    channels: Annotated[int, Field(ge=1, le=4)] = 1
    latent_dim: Annotated[int, Field(ge=1, le=512)] = 32
    width: Annotated[int, Field(ge=1, le=MAX_IMAGE_WIDTH)] = 32
    num_classes: Annotated[int, Field(ge=0, le=MAX_CLASSES)] = 0
    loss: Literal["non_saturating", "hinge"] = "hinge"
    spectral_norm: bool = True
    ema_decay: Annotated[float, Field(ge=0, lt=1)] = 0.99


class ImageGenerator(nn.Module):
    """z (and a label) -> image: linear to (2w, S/2, S/2), upsample, two convs, tanh."""

    def __init__(self, config: GANConfig) -> None:
        super().__init__()
        c = config
        half = c.image_size // 2
        self.label_embed = nn.Embedding(c.num_classes, c.latent_dim) if c.num_classes else None
        self.label_bias = nn.Embedding(c.num_classes, 2 * c.width) if c.num_classes else None
        self.project = nn.Sequential(
            nn.Linear(c.latent_dim, 2 * c.width * half * half),
            nn.LeakyReLU(0.2),
            nn.Unflatten(1, (2 * c.width, half, half)),
        )
        self.body = nn.Sequential(
            nn.Upsample(scale_factor=2.0, mode="nearest"),  # (N, 2w, S, S)
            nn.Conv2d(2 * c.width, c.width, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(c.width, c.width, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(c.width, c.channels, 3, padding=1),
            nn.Tanh(),
        )

    def forward(self, latents: Tensor, labels: Tensor | None = None) -> Tensor:
        if self.label_embed is None or self.label_bias is None or labels is None:
            plain: Tensor = self.body(self.project(latents))  # (N, C, S, S) in [-1, 1]
            return plain
        h = self.project(latents * (1 + self.label_embed(labels)))  # (N, 2w, S/2, S/2)
        shifted = h + self.label_bias(labels)[:, :, None, None]  # the label shifts every channel
        images: Tensor = self.body(shifted)
        return images


class ImageDiscriminator(nn.Module):
    """image (and a label) -> realness score (N,), with a projection term for the label."""

    def __init__(self, config: GANConfig) -> None:
        super().__init__()
        c = config
        half = c.image_size // 2
        features = 4 * c.width

        def norm(layer: nn.Module) -> nn.Module:
            return nn.utils.parametrizations.spectral_norm(layer) if c.spectral_norm else layer

        self.body = nn.Sequential(
            norm(nn.Conv2d(c.channels, c.width, 3, padding=1)),
            nn.LeakyReLU(0.2),
            norm(nn.Conv2d(c.width, 2 * c.width, 3, stride=2, padding=1)),  # (N, 2w, S/2, S/2)
            nn.LeakyReLU(0.2),
            nn.Flatten(),
            norm(nn.Linear(2 * c.width * half * half, features)),
            nn.LeakyReLU(0.2),
        )
        self.score = norm(nn.Linear(features, 1))
        self.label_embed = norm(nn.Embedding(c.num_classes, features)) if c.num_classes else None

    def forward(self, images: Tensor, labels: Tensor | None = None) -> Tensor:
        h = self.body(images)  # (N, 4w)
        score: Tensor = self.score(h).squeeze(1)
        if self.label_embed is not None and labels is not None:
            score = score + (self.label_embed(labels) * h).sum(dim=1)  # projection
        return score


class GAN(nn.Module, Configured[GANConfig], ImageModelMixin):
    """A GAN of small images: ``Generator[ImageRequest, ImageResult]``.

    ``generate`` decodes latents drawn with the request's seed through the
    EMA generator (or the raw one when ``ema_decay == 0``). ``decode`` and
    ``interpolate`` give access to the latent space; a GAN has no encoder.

    Args:
        config: a :class:`GANConfig` (or a mapping of its fields).
        **fields: the config's fields as keyword arguments, instead of ``config``.

    Raises:
        ConfigError: both a config and fields, or invalid fields.

    Examples:
        >>> gan = GAN(GANConfig(num_classes=10, width=4, latent_dim=8))
        >>> result = gan.generate(ImageRequest(num_samples=2, label=5, seed=1))
        >>> tuple(result.images.shape), result.labels
        ((2, 1, 8, 8), (5, 5))
    """

    FORMAT = FORMAT

    def __init__(self, config: GANConfig | Mapping[str, Any] | None = None, **fields: Any) -> None:
        nn.Module.__init__(self)
        Configured.__init__(self, config, **fields)
        self.generator = ImageGenerator(self.config)
        self.discriminator = ImageDiscriminator(self.config)
        self.ema_generator: ImageGenerator | None = None
        if self.config.ema_decay > 0:
            self.ema_generator = copy.deepcopy(self.generator).requires_grad_(False)

    @property
    def latent_shape(self) -> tuple[int, ...]:
        """``(latent_dim,)``."""
        return (self.config.latent_dim,)

    def sampling_generator(self) -> ImageGenerator:
        """The network ``generate`` uses: the EMA copy if there is one."""
        return self.ema_generator if self.ema_generator is not None else self.generator

    @torch.no_grad()
    def update_ema(self) -> None:
        """Move the EMA weights towards the generator's: ``ema = d·ema + (1-d)·g``."""
        if self.ema_generator is None:
            return
        decay = self.config.ema_decay
        for averaged, current in zip(
            self.ema_generator.parameters(), self.generator.parameters(), strict=True
        ):
            averaged.lerp_(current, 1 - decay)

    @torch.no_grad()
    def decode(self, latents: Tensor, labels: Tensor | None = None) -> Tensor:
        """Images (N, C, H, W) in [-1, 1] for latents (N, latent_dim), by the sampling generator.

        Raises:
            InvalidInputError: latents of another shape, or bad labels.
        """
        dim = self.config.latent_dim
        if not isinstance(latents, Tensor) or latents.ndim != 2 or latents.shape[1] != dim:
            got = tuple(latents.shape) if isinstance(latents, Tensor) else describe(latents)
            raise InvalidInputError(f"GAN.decode expected latents of shape (N, {dim}), got {got}")
        labels = check_labels(labels, latents.shape[0], self.config.num_classes, "GAN.decode")
        network = self.sampling_generator()
        was_training = network.training
        network.eval()
        try:
            images: Tensor = network(latents.float(), labels)
            return images
        finally:
            network.train(was_training)

    def interpolate(
        self, start: Tensor, end: Tensor, steps: int, *, spherical: bool = False
    ) -> Tensor:
        """``steps`` latents from ``start`` to ``end`` inclusive (linear or spherical)."""
        return interpolate(start, end, steps, spherical=spherical)

    def generate(self, request: ImageRequest) -> ImageResult:
        """Decode latents drawn from N(0, I) with the request's seed.

        Every latent is drawn first, then decoded ``generation_batch_size`` at a
        time, so the images do not depend on the batch size.

        Raises:
            InvalidInputError: not an ImageRequest, more samples than
                ``max_request_samples``, or an unknown label.
        """
        request = self._checked_request(request, "GAN.generate")
        generator = request_generator(request.seed)
        labels = request_labels(request, self.config.num_classes, generator)
        latents = torch.randn((request.num_samples, self.config.latent_dim), generator=generator)
        images = torch.empty((request.num_samples, *self.image_shape))
        for rows in self._batches(request.num_samples):
            images[rows] = self.decode(latents[rows], None if labels is None else labels[rows])
        return ImageResult(images=images, labels=result_labels(labels, request.num_samples))

    def objective(self) -> GANObjective:
        """The two-player training objective of this GAN."""
        return GANObjective(self)


class GANObjective:
    """The two-player adversarial objective: ``players()`` is discriminator, then generator.

    A batch is ``images`` or ``(images, labels)``; generated images of a
    conditional GAN get the batch's labels, so the discriminator judges
    image-label pairs. Latents come from torch's global generator, which the
    genarch optimizer seeds per step.

    The EMA of the generator is updated at the start of each discriminator
    turn when the generator has been updated since the last one (so once per
    optimizer step, lagging one step); call :meth:`finish` after the last step.
    """

    def __init__(self, model: GAN) -> None:
        self.model = model
        self._generator_moved = False

    def players(self) -> dict[str, nn.Module]:
        """``{"discriminator": ..., "generator": ...}`` in update order."""
        return {"discriminator": self.model.discriminator, "generator": self.model.generator}

    def finish(self) -> None:
        """Fold the last generator update into the EMA."""
        if self._generator_moved:
            self.model.update_ema()
            self._generator_moved = False

    def loss(self, player: str, batch: Tensor | tuple[Tensor, Tensor]) -> Tensor:
        """The discriminator's or the generator's loss on ``batch``.

        Raises:
            InvalidInputError: an unknown player or a batch of the wrong shape.
        """
        model, config = self.model, self.model.config
        images, labels = (
            batch if isinstance(batch, tuple | list) and len(batch) == 2 else (batch, None)
        )
        images = check_image_batch(images, model.image_shape, "GANObjective.loss")
        if config.num_classes == 0:
            labels = None
        labels = check_labels(labels, images.shape[0], config.num_classes, "GANObjective.loss")
        latents = torch.randn(images.shape[0], config.latent_dim)
        hinge = config.loss == "hinge"
        if player == "discriminator":
            if torch.is_grad_enabled():
                self.finish()
            fake = model.generator(latents, labels).detach()
            real_score = model.discriminator(images, labels)
            fake_score = model.discriminator(fake, labels)
            if hinge:
                return (
                    nn.functional.relu(1 - real_score).mean()
                    + nn.functional.relu(1 + fake_score).mean()
                )
            return (
                nn.functional.softplus(-real_score).mean()
                + nn.functional.softplus(fake_score).mean()
            )
        if player == "generator":
            if torch.is_grad_enabled():
                self._generator_moved = True
            fake_score = model.discriminator(model.generator(latents, labels), labels)
            return -fake_score.mean() if hinge else nn.functional.softplus(-fake_score).mean()
        raise InvalidInputError(
            f"GANObjective has players 'discriminator' and 'generator'; got {player!r}"
        )
