"""Pieces the image generators (VAE, GAN, diffusion) share.

* request checking: :func:`check_image_request` turns a wrong request type or
  an unknown label into :class:`~genarch.errors.InvalidInputError` before any
  work is done (:func:`check_image_batch` and :func:`check_labels` do the same
  for tensors);
* seeded noise: :func:`request_generator` gives each request its own
  ``torch.Generator``, so results never depend on global RNG state;
* labels for a request: :func:`request_labels` (the requested class, or classes
  drawn from the request's generator);
* latent paths: :func:`interpolate` (linear or spherical);
* :class:`ImageModelMixin`: what the three models share as methods —
  ``image_shape``, ``conditions`` (always present: ``{}`` for an
  unconditional model), ``generate_batch``, and ``save``/``load`` through
  :mod:`genarch.persistence`.

The training loop the image models' examples use is
:func:`genarch.models.image_training.train_objective`; the U-Net's residual
block is in :mod:`genarch.models.diffusion.unet`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Self, cast

import torch
from torch import Tensor, nn

from genarch._deprecated import renamed_names
from genarch.errors import InvalidInputError
from genarch.models._weights import check_saved_shapes, module_shapes, saved_shapes
from genarch.persistence import WEIGHTS_FILE, load_state, open_saved, save_component
from genarch.protocols import PathLike
from genarch.schemas import ImageRequest, ImageResult
from genarch.validation import describe, ensure_iterable

if TYPE_CHECKING:
    from genarch.configured import Configured

__all__ = [
    "MAX_CLASSES",
    "MAX_HIDDEN",
    "MAX_IMAGE_WIDTH",
    "ImageModelMixin",
    "check_image_batch",
    "check_image_request",
    "check_labels",
    "interpolate",
    "request_generator",
    "request_labels",
    "result_labels",
]


# Bounds of the image models' config sizes: far above what a model of at most
# 64x64 images needs, far below what would allocate without bound.
MAX_IMAGE_WIDTH = 1024  #: channels of a network's first level (``width``)
MAX_HIDDEN = 2**16  #: a fully connected layer's width (``hidden``)
MAX_CLASSES = 100_000  #: classes of a conditional model (``num_classes``)


# ----------------------------------------------------------------- requests and noise


def check_image_request(
    request: object, num_classes: int, where: str, *, max_samples: int | None = None
) -> ImageRequest:
    """Return ``request`` if this model can serve it.

    Args:
        request: what arrived.
        num_classes: classes the model was trained on (0: unconditional).
        where: the caller's name for the message.
        max_samples: the most images the model serves per request (None: no
            cap beyond :data:`~genarch.schemas.MAX_IMAGE_SAMPLES`).

    Raises:
        InvalidInputError: not an :class:`~genarch.schemas.ImageRequest`, more
            samples than ``max_samples``, a label for an unconditional model, or
            a label outside ``range(num_classes)``.

    Examples:
        >>> check_image_request(ImageRequest(label=3), 10, "VAE.generate").label
        3
        >>> check_image_request(ImageRequest(label=12), 10, "VAE.generate")
        Traceback (most recent call last):
        ...
        genarch.errors.InvalidInputError: VAE.generate: unknown label 12; this model knows labels 0..9
    """
    if not isinstance(request, ImageRequest):
        raise InvalidInputError(f"{where} expected an ImageRequest, got {describe(request)}")
    # Requests built with model_construct skip pydantic: check the bounds again.
    request = type(request).parse(request.model_dump())
    if max_samples is not None and request.num_samples > max_samples:
        raise InvalidInputError(
            f"{where}: num_samples is {request.num_samples}, more than this model's "
            f"max_request_samples ({max_samples}); ask in several requests, or raise "
            "max_request_samples on the model"
        )
    if request.label is not None:
        if num_classes == 0:
            raise InvalidInputError(
                f"{where}: this model is unconditional, so a request cannot set label "
                f"(got label={request.label}); train it with num_classes > 0 for class control"
            )
        if request.label >= num_classes:
            raise InvalidInputError(
                f"{where}: unknown label {request.label}; "
                f"this model knows labels 0..{num_classes - 1}"
            )
    return request


def check_image_batch(
    images: object, shape: tuple[int, int, int], where: str, *, name: str = "images"
) -> Tensor:
    """Return ``images`` if it is a float tensor of shape ``(N, *shape)`` with N >= 1.

    Raises:
        InvalidInputError: another type, rank, image shape, or non-finite values.
    """
    if not isinstance(images, Tensor):
        raise InvalidInputError(
            f"{where} expected {name} as a tensor of shape (N, {', '.join(map(str, shape))}), "
            f"got {describe(images)}"
        )
    if images.ndim != 4 or tuple(images.shape[1:]) != shape or images.shape[0] == 0:
        raise InvalidInputError(
            f"{where} expected {name} of shape (N, {', '.join(map(str, shape))}) with N >= 1, "
            f"got {tuple(images.shape)}"
        )
    if not images.is_floating_point() or not bool(torch.isfinite(images).all()):
        raise InvalidInputError(f"{where} expected finite float {name}, got dtype {images.dtype}")
    return images


def check_labels(labels: object, size: int, num_classes: int, where: str) -> Tensor | None:
    """Return ``labels`` as a long tensor of shape ``(size,)`` in ``range(num_classes)``.

    ``None`` passes through (no labels). Raises :class:`InvalidInputError` otherwise.
    """
    if labels is None:
        return None
    if num_classes == 0:
        raise InvalidInputError(f"{where}: the model is unconditional, so labels must be None")
    if not isinstance(labels, Tensor) or labels.dtype not in (torch.int32, torch.int64):
        raise InvalidInputError(
            f"{where} expected labels as an integer tensor, got {describe(labels)}"
        )
    if tuple(labels.shape) != (size,):
        raise InvalidInputError(
            f"{where} expected labels of shape ({size},), got {tuple(labels.shape)}"
        )
    if size and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise InvalidInputError(
            f"{where}: labels must be in 0..{num_classes - 1}, "
            f"got {int(labels.min())}..{int(labels.max())}"
        )
    return labels.long()


def request_generator(seed: int | None) -> torch.Generator:
    """A CPU ``torch.Generator`` for one request: seeded, or fresh from OS entropy.

    Examples:
        >>> a = torch.randn(2, generator=request_generator(7))
        >>> torch.equal(a, torch.randn(2, generator=request_generator(7)))
        True
    """
    generator = torch.Generator()
    if seed is None:
        generator.manual_seed(int.from_bytes(os.urandom(8), "little") & 0x7FFF_FFFF_FFFF_FFFF)
    else:
        generator.manual_seed(seed & 0xFFFF_FFFF_FFFF_FFFF)
    return generator


def request_labels(
    request: ImageRequest, num_classes: int, generator: torch.Generator
) -> Tensor | None:
    """The class of every sample of a request: ``None`` for an unconditional model,
    the requested label repeated, or labels drawn uniformly from ``generator``."""
    if num_classes == 0:
        return None
    if request.label is not None:
        return torch.full((request.num_samples,), request.label, dtype=torch.long)
    return torch.randint(num_classes, (request.num_samples,), generator=generator)


def result_labels(labels: Tensor | None, count: int) -> tuple[int | None, ...]:
    """Labels as stored in an :class:`~genarch.schemas.ImageResult`."""
    if labels is None:
        return (None,) * count
    return tuple(int(v) for v in labels.tolist())


# ----------------------------------------------------------------------- latents


def interpolate(start: Tensor, end: Tensor, steps: int, *, spherical: bool = False) -> Tensor:
    """``steps`` points from ``start`` to ``end`` inclusive, stacked on a new first axis.

    Linear interpolation walks the straight line; spherical interpolation
    (slerp, Shoemake 1985) follows the great circle, which keeps the norm of
    Gaussian latents typical along the way — points in the middle of a straight
    line are unusually short and decode to blurry images.

    Raises:
        InvalidInputError: tensors of different shapes, or ``steps < 2``.

    Examples:
        >>> interpolate(torch.tensor([0.0, 0.0]), torch.tensor([2.0, 4.0]), 3)
        tensor([[0., 0.],
                [1., 2.],
                [2., 4.]])
        >>> path = interpolate(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]), 3, spherical=True)
        >>> [round(float(v), 4) for v in path.norm(dim=1)]
        [1.0, 1.0, 1.0]
    """
    if not isinstance(start, Tensor) or not isinstance(end, Tensor):
        raise InvalidInputError(
            f"interpolate expected two tensors, got {describe(start)} and {describe(end)}"
        )
    if start.shape != end.shape:
        raise InvalidInputError(
            f"interpolate expected start and end of the same shape, "
            f"got {tuple(start.shape)} and {tuple(end.shape)}"
        )
    if not isinstance(steps, int) or steps < 2:
        raise InvalidInputError(f"interpolate expected steps >= 2, got {steps!r}")
    weights = torch.linspace(0.0, 1.0, steps, dtype=torch.float64)
    a, b = start.double().reshape(-1), end.double().reshape(-1)
    if spherical:
        cosine = torch.dot(a, b) / (a.norm() * b.norm()).clamp_min(1e-12)
        angle = torch.arccos(cosine.clamp(-1.0, 1.0))
        if float(angle) > 1e-6:  # nearly parallel: slerp degenerates to lerp
            sine = torch.sin(angle)
            wa = torch.sin((1 - weights) * angle) / sine
            wb = torch.sin(weights * angle) / sine
            path = wa[:, None] * a + wb[:, None] * b
            path[0], path[-1] = a, b  # exact endpoints despite rounding
            return path.reshape(steps, *start.shape).to(start.dtype)
    path = (1 - weights)[:, None] * a + weights[:, None] * b
    return path.reshape(steps, *start.shape).to(start.dtype)


# ----------------------------------------------------------------- the shared methods


class _ImageConfig(Protocol):
    """The fields :class:`ImageModelMixin` reads from a model's config."""

    @property
    def channels(self) -> int: ...

    @property
    def image_size(self) -> int: ...

    @property
    def num_classes(self) -> int: ...


class _ImageModel(Protocol):
    """What :class:`ImageModelMixin` needs from the class it is mixed into."""

    @property
    def config(self) -> _ImageConfig: ...

    def generate(self, request: ImageRequest) -> ImageResult: ...


class ImageModelMixin:
    """``image_shape``, ``conditions``, ``generate_batch``, ``save`` and ``load``, shared by
    :class:`~genarch.models.vae.VAE`, :class:`~genarch.models.gan.GAN` and
    :class:`~genarch.models.diffusion.Diffusion`.

    Mixed into ``nn.Module`` and :class:`~genarch.configured.Configured`
    subclasses (which give ``config``, ``config_type`` and ``from_config``)
    whose config has ``channels``, ``image_size`` and ``num_classes``, and
    which define ``generate``. A model sets ``FORMAT``, the kind its saves
    carry in ``config.json``.
    """

    FORMAT: ClassVar[str]

    max_request_samples: int = 4096
    """The most images one request may ask for (at most
    :data:`~genarch.schemas.MAX_IMAGE_SAMPLES`). Set it on a model (or its
    class) to serve more or fewer."""

    generation_batch_size: int = 256
    """Images generated at a time: a large request is generated in batches of
    this many, so the working memory stays that of one batch (the result holds
    every image). A seeded request of a stochastic sampler (DDPM, DDIM with
    ``eta > 0``) depends on it."""

    def _checked_request(self, request: object, where: str) -> ImageRequest:
        """The request, if this model can serve it (see :func:`check_image_request`)."""
        classes = cast("_ImageModel", self).config.num_classes
        return check_image_request(request, classes, where, max_samples=self.max_request_samples)

    def _batches(self, total: int) -> list[slice]:
        """Slices of ``range(total)``, each at most :attr:`generation_batch_size` long."""
        size = max(1, int(self.generation_batch_size))
        return [slice(start, min(start + size, total)) for start in range(0, total, size)]

    @property
    def image_shape(self: _ImageModel) -> tuple[int, int, int]:
        """``(C, H, W)`` of the images."""
        config = self.config
        return (config.channels, config.image_size, config.image_size)

    @property
    def conditions(self: _ImageModel) -> dict[str, list[str]]:
        """What a request may be conditioned on: ``{"label": ["0", ...]}`` for a
        class-conditional model, ``{}`` for an unconditional one (``num_classes=0``).

        Always present, so :func:`~genarch.protocols.is_conditional` (not
        ``isinstance``) tells the two apart on every Python version.

        Examples:
            >>> from genarch.models import VAE
            >>> VAE(num_classes=3, width=4, hidden=8).conditions
            {'label': ['0', '1', '2']}
            >>> VAE(width=4, hidden=8).conditions
            {}
        """
        classes = self.config.num_classes
        return {"label": [str(i) for i in range(classes)]} if classes else {}

    def generate_batch(self: _ImageModel, requests: Sequence[ImageRequest]) -> list[ImageResult]:
        """``[generate(r) for r in requests]``, every request checked before any work."""
        where = f"{type(self).__name__}.generate_batch"
        for request in ensure_iterable(requests, where):
            cast("ImageModelMixin", self)._checked_request(request, where)
        return [self.generate(request) for request in requests]

    def save(self, directory: PathLike) -> None:
        """Write ``config.json`` and ``model.safetensors`` (every weight) atomically."""
        model = cast("_SavableImageModel", self)
        save_component(directory, self.FORMAT, config=model.config, tensors=model.state_dict())

    @classmethod
    def load(cls, directory: PathLike) -> Self:
        """Load a model written by :meth:`save` (also after a save interrupted by a crash).

        Raises:
            NotFoundError: nothing saved in ``directory``.
            IntegrityError: corrupt files or another kind of model.
        """
        saved = open_saved(directory, cls.FORMAT)
        model_type = cast("type[_SavableImageModel]", cls)
        config = saved.config(model_type.config_type)
        where = f"the saved {cls.FORMAT} in {str(saved.root)!r}"
        # Shapes first (the file's header against a model on the meta device), so a
        # config that does not fit its weights fails before anything is allocated.
        check_saved_shapes(
            saved_shapes(saved.path(WEIGHTS_FILE)), module_shapes(lambda: model_type(config)), where
        )
        model = model_type(config)
        load_state(model, saved.tensors(), where)
        return cast(Self, model)


if TYPE_CHECKING:

    class _SavableImageModel(nn.Module, Configured[Any]):
        """The classes :class:`ImageModelMixin` is mixed into, as the type checker sees them."""


# ---------------------------------------------------------------- moved elsewhere

__getattr__ = renamed_names(
    __name__,
    {
        "train_objective": ("genarch.models.image_training", "train_objective"),
        "ResBlock": ("genarch.models.diffusion.unet", "ResBlock"),
        "sinusoidal_embedding": ("genarch.models.diffusion.unet", "sinusoidal_embedding"),
        "load_weights": ("genarch.persistence", "load_state"),
    },
)
