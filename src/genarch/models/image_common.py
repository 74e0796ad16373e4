"""Pieces the image generators (VAE, GAN, diffusion) share.

* request checking: :func:`check_image_request` turns a wrong request type or
  an unknown label into :class:`~genarch.errors.InvalidInputError` before any
  work is done;
* seeded noise: :func:`request_generator` gives each request its own
  ``torch.Generator``, so results never depend on global RNG state;
* labels for a request: :func:`request_labels` (the requested class, or classes
  drawn from the request's generator);
* latent paths: :func:`interpolate` (linear or spherical);
* persistence: :func:`save_module` / :func:`load_module` (JSON config +
  safetensors, written atomically);
* a tiny training loop over the :class:`~genarch.training.Trainer`'s
  ``step`` with a time budget: :func:`train_objective`;
* a residual conv block with an embedding input: :class:`ResBlock`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar, cast

import torch
from pydantic import BaseModel
from torch import Tensor, nn

from genarch._io import atomic_directory, readable_directory
from genarch.errors import ConfigError, IntegrityError, InvalidInputError, NotFoundError
from genarch.schemas import Config, ImageRequest, ImageResult, TrainingReport
from genarch.validation import describe

__all__ = [
    "ImageModelMixin",
    "ResBlock",
    "check_image_batch",
    "check_image_request",
    "check_labels",
    "interpolate",
    "label_conditions",
    "load_module",
    "load_weights",
    "request_generator",
    "request_labels",
    "result_labels",
    "save_module",
    "sinusoidal_embedding",
    "train_objective",
]

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"

C = TypeVar("C", bound=Config)


# ----------------------------------------------------------------- requests and noise


def check_image_request(request: object, num_classes: int, where: str) -> ImageRequest:
    """Return ``request`` if this model can serve it.

    Args:
        request: what arrived.
        num_classes: classes the model was trained on (0: unconditional).
        where: the caller's name for the message.

    Raises:
        InvalidInputError: not an :class:`~genarch.schemas.ImageRequest`, a label
            for an unconditional model, or a label outside ``range(num_classes)``.

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


def label_conditions(num_classes: int, where: str) -> dict[str, list[str]]:
    """The ``conditions`` of a class-conditional model: ``{"label": ["0", ..]}``.

    An unconditional model has no conditions: this raises ``AttributeError``, so
    ``hasattr(model, "conditions")`` is false and the model is not a
    :class:`~genarch.protocols.ConditionalGenerator`.
    """
    if not num_classes:
        raise AttributeError(f"{where}: an unconditional model (num_classes=0) has no conditions")
    return {"label": [str(i) for i in range(num_classes)]}


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


# ------------------------------------------------------------------- persistence


def save_module(
    directory: str | os.PathLike[str], kind: str, config: Config, module: nn.Module
) -> None:
    """Write ``config.json`` (kind + config) and ``model.safetensors`` atomically."""
    from safetensors.torch import save_file

    state = {name: t.detach().cpu().contiguous() for name, t in module.state_dict().items()}
    document = {"format": kind, "config": config.model_dump(mode="json")}
    with atomic_directory(directory) as staging:
        (staging / CONFIG_FILE).write_text(json.dumps(document, indent=2) + "\n")
        save_file(state, str(staging / WEIGHTS_FILE))


def load_module(
    directory: str | os.PathLike[str], kind: str, config_type: type[C]
) -> tuple[C, dict[str, Tensor]]:
    """Read what :func:`save_module` wrote: the config and the weights.

    Raises:
        NotFoundError: nothing saved in ``directory``.
        IntegrityError: the files are corrupt or were saved by another kind of model.
    """
    from safetensors.torch import load_file

    found = readable_directory(directory)  # also a complete copy a crashed save left aside
    root = found if found is not None else Path(directory)
    if not (root / CONFIG_FILE).is_file() or not (root / WEIGHTS_FILE).is_file():
        raise NotFoundError(
            f"no saved {kind} in {directory} (expected {CONFIG_FILE}, {WEIGHTS_FILE})"
        )
    try:
        document = json.loads((root / CONFIG_FILE).read_text())
        if not isinstance(document, dict) or document.get("format") != kind:
            found = document.get("format") if isinstance(document, dict) else None
            raise IntegrityError(f"{root} holds a {found!r}, not a {kind!r}")
        config = config_type.parse(document["config"])
        state = load_file(str(root / WEIGHTS_FILE))
    except IntegrityError:
        raise
    except Exception as error:
        raise IntegrityError(f"cannot read the {kind} in {root}: {error}") from error
    return config, state


def load_weights(module: nn.Module, state: Mapping[str, Tensor], where: str) -> None:
    """Copy ``state`` into ``module``, raising :class:`IntegrityError` on any mismatch."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise IntegrityError(
            f"{where}: the weights are of another model (missing {missing[:4]}, "
            f"unexpected {unexpected[:4]})"
        )
    for name, tensor in expected.items():
        if state[name].shape != tensor.shape:
            raise IntegrityError(
                f"{where}: {name} has shape {tuple(state[name].shape)}, "
                f"the config expects {tuple(tensor.shape)}"
            )
    module.load_state_dict(dict(state))


class ImageModelMixin:
    """``generate_batch``, ``save`` and ``load`` shared by :class:`~genarch.models.vae.VAE`,
    :class:`~genarch.models.gan.GAN` and :class:`~genarch.models.diffusion.Diffusion`.

    A model sets ``FORMAT`` (the kind written into ``config.json``) and
    ``CONFIG_TYPE``, keeps its config in ``_config`` (with ``num_classes``) and
    defines ``generate``.
    """

    FORMAT: ClassVar[str]
    CONFIG_TYPE: ClassVar[type[Config]]
    _config: Any

    def generate(self, request: ImageRequest) -> ImageResult:  # pragma: no cover - overridden
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: BaseModel | Mapping[str, Any]) -> Self:
        """A fresh, untrained model for ``config`` (a config object or a mapping).

        Raises:
            ConfigError: unknown or out-of-range fields.
        """
        return cls(cls.CONFIG_TYPE.coerce(config))  # type: ignore[call-arg]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of the images."""
        return (self._config.channels, self._config.image_size, self._config.image_size)

    @property
    def conditions(self) -> dict[str, list[str]]:
        """``{"label": ["0", ...]}`` for a class-conditional model.

        An unconditional model has no conditions (``AttributeError``), so it is
        not a :class:`~genarch.protocols.ConditionalGenerator`.
        """
        return label_conditions(self._config.num_classes, f"{type(self).__name__}.conditions")

    def generate_batch(self, requests: Sequence[ImageRequest]) -> list[ImageResult]:
        """``[generate(r) for r in requests]``, every request checked before any work."""
        where = f"{type(self).__name__}.generate_batch"
        for request in requests:
            check_image_request(request, self._config.num_classes, where)
        return [self.generate(request) for request in requests]

    def save(self, directory: str | os.PathLike[str]) -> None:
        """Write ``config.json`` and ``model.safetensors`` (every weight) atomically."""
        save_module(directory, self.FORMAT, self._config, cast(nn.Module, self))

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> Self:
        """Load a model written by :meth:`save`.

        Raises:
            NotFoundError: nothing saved in ``directory``.
            IntegrityError: corrupt files or another kind of model.
        """
        config, state = load_module(directory, cls.FORMAT, cls.CONFIG_TYPE)
        model = cls(config)  # type: ignore[call-arg]
        load_weights(cast(nn.Module, model), state, str(directory))
        return model


# ----------------------------------------------------------------------- training


def train_objective(
    objective: Any,
    data: tuple[Tensor, ...] | Tensor,
    *,
    steps: int,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    seconds: float | None = None,
    seed: int = 0,
    max_grad_norm: float | None = 1.0,
    log_every: int = 0,
) -> TrainingReport:
    """Train an objective with the genarch :class:`~genarch.training.Trainer` for
    ``steps`` steps or ``seconds`` of wall time, whichever ends first.

    The batch of step ``k`` is a pure function of ``(seed, k)`` (the trainer's
    data order), and each step's randomness is seeded from ``(seed, k)`` by the
    trainer, so a run is reproducible when it is bounded by ``steps``.

    Raises:
        ConfigError: non-positive steps, batch size or time budget.
    """
    from genarch.training import Trainer
    from genarch.training.data import IndexedData

    if steps < 1 or batch_size < 1 or (seconds is not None and seconds <= 0):
        raise ConfigError(
            f"need steps >= 1, batch_size >= 1 and a positive time budget, "
            f"got steps={steps}, batch_size={batch_size}, seconds={seconds}"
        )
    source = IndexedData(data)
    batch_size = min(batch_size, len(source))
    trainer = Trainer(
        objective,
        max_steps=steps,
        batch_size=batch_size,
        optimizer={"learning_rate": learning_rate, "betas": betas},
        max_grad_norm=max_grad_norm,
        seed=seed,
        progress=False,
    )
    started = time.perf_counter()
    losses: list[float] = []
    first_player = next(iter(objective.players()))
    while trainer.step_count < steps:
        indices, _, _ = source.train_indices(trainer.step_count, batch_size, seed)
        report = trainer.step(source.take(indices))
        losses.append(report.losses[first_player])
        if log_every and report.step % log_every == 0:
            logger.info("step %d: %s", report.step, report.losses)
        if seconds is not None and time.perf_counter() - started > seconds:
            break
    wall = time.perf_counter() - started
    return TrainingReport(
        steps=trainer.step_count,
        train_loss=tuple(losses),
        items_per_second=trainer.step_count * batch_size / wall if wall > 0 else 0.0,
        wall_seconds=wall,
        stopped_because="finished" if trainer.step_count >= steps else "time_budget",
    )


# ------------------------------------------------------------------- building block


def sinusoidal_embedding(values: Tensor, dim: int) -> Tensor:
    """Transformer-style sinusoidal features of ``values`` (N,) -> (N, dim)."""
    half = dim // 2
    frequencies = torch.exp(-math.log(10_000.0) * torch.arange(half, dtype=torch.float32) / half)
    angles = values.float()[:, None] * frequencies[None, :]  # (N, half)
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, with an embedding added in between, plus a skip.

    The embedding (a timestep and/or class vector) shifts every channel, which
    is how a denoiser learns what noise level and class it is looking at.

    Args:
        in_channels: channels in.
        out_channels: channels out.
        embed_dim: size of the embedding input (0: no embedding).
    """

    def __init__(self, in_channels: int, out_channels: int, embed_dim: int = 0) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(min(8, in_channels), in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.embed = nn.Linear(embed_dim, out_channels) if embed_dim else None
        self.norm2 = nn.GroupNorm(min(8, out_channels), out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = (
            nn.Conv2d(in_channels, out_channels, 1)
            if in_channels != out_channels
            else nn.Identity()
        )

    def forward(self, x: Tensor, embedding: Tensor | None = None) -> Tensor:
        h = self.conv1(nn.functional.silu(self.norm1(x)))  # (N, out, H, W)
        if self.embed is not None and embedding is not None:
            h = h + self.embed(embedding)[:, :, None, None]
        h = self.conv2(nn.functional.silu(self.norm2(h)))
        out: Tensor = h + self.skip(x)
        return out
