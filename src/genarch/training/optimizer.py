"""The reference :class:`~genarch.protocols.Optimizer`: one step over any objective.

:class:`ObjectiveOptimizer` steps a :class:`~genarch.protocols.TrainingObjective`
— the *what* (players and their losses) — with ordinary torch optimizers — the
*how*. One player (a language model, a VAE, a diffusion denoiser, a model
beside a frozen copy that gets no update) or several in turn (a GAN's discriminator, then its
generator) use the same loop. One call of :meth:`ObjectiveOptimizer.step` is one
update of every player on the whole batch; gradient accumulation only splits
the batch into micro-batches to save memory, it does not change the result
(up to float rounding).

Randomness inside a step (dropout, noise, timesteps) is drawn from torch's
global generator, re-seeded from ``(seed, step)`` for the duration of the step
and restored afterwards. So a step's randomness depends only on the seed and
the step number: runs are reproducible, and resuming from a checkpoint is exact
without saving any RNG state beyond those two numbers.

Under ``torch.distributed`` (e.g. ``torchrun``) every process passes its own
equal share of the global batch; after the backward passes the gradients (and
the loss) are averaged across processes with one ``all_reduce`` per player,
which is what DDP does, without having to wrap modules the objective owns.
A player sharded with :func:`genarch.training.fsdp.shard` (FSDP2) gets its
gradients averaged by FSDP itself; only its loss is averaged here, and
:meth:`ObjectiveOptimizer.state_dict` gathers its full weights and moments.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Generic, Literal, TypeVar

import torch
import torch.distributed as dist
from pydantic import Field

from genarch.errors import ConfigError, IntegrityError, InvalidInputError
from genarch.protocols import TrainingObjective
from genarch.schemas import Config, StepReport
from genarch.training.fsdp import full_state, is_sharded, load_full_state
from genarch.training.objectives import MeasuredLoss
from genarch.training.schedules import Schedule, lr_factor
from genarch.validation import describe

__all__ = [
    "ObjectiveOptimizer",
    "OptimizerConfig",
    "OptimizerFactory",
    "adamw",
    "count_batch_items",
    "parameter_groups",
    "sgd",
    "split_batch",
]

Batch = TypeVar("Batch")

OptimizerFactory = Callable[[str, list[torch.nn.Parameter]], torch.optim.Optimizer]
"""Builds the torch optimizer of one player from its name and trainable parameters."""


def parameter_groups(
    parameters: Sequence[torch.nn.Parameter], weight_decay: float
) -> list[dict[str, Any]]:
    """Split parameters into a decayed and a non-decayed group.

    Matrices and embeddings (2 or more dimensions) are decayed; biases and
    normalisation gains (1-D) are not — decaying those only hurts (the nanoGPT
    and GPT-3 rule). Empty groups are left out.
    """
    decay = [p for p in parameters if p.ndim >= 2]
    no_decay = [p for p in parameters if p.ndim < 2]
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]


def _check_rate(learning_rate: float, weight_decay: float) -> None:
    if not (isinstance(learning_rate, int | float) and learning_rate > 0):
        raise ConfigError(f"learning_rate must be a positive number, got {learning_rate!r}")
    if not (isinstance(weight_decay, int | float) and weight_decay >= 0):
        raise ConfigError(f"weight_decay must be a number >= 0, got {weight_decay!r}")


def adamw(
    learning_rate: float = 1e-3,
    weight_decay: float = 0.0,
    *,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> OptimizerFactory:
    """A factory giving each player its own ``torch.optim.AdamW``.

    Weight decay applies to matrices and embeddings only (see
    :func:`parameter_groups`). CPU and CUDA parameters use the fused kernel.

    Raises:
        ConfigError: a non-positive learning rate or a negative weight decay.
    """
    _check_rate(learning_rate, weight_decay)

    def make(player: str, parameters: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
        fused = all(p.device.type in ("cpu", "cuda") for p in parameters)
        return torch.optim.AdamW(
            parameter_groups(parameters, weight_decay),
            lr=learning_rate,
            betas=betas,
            eps=eps,
            fused=fused,
        )

    return make


def sgd(
    learning_rate: float = 1e-2,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    *,
    nesterov: bool = False,
) -> OptimizerFactory:
    """A factory giving each player its own ``torch.optim.SGD`` with momentum.

    Raises:
        ConfigError: a non-positive learning rate, a negative weight decay or a
            momentum outside ``[0, 1)``.
    """
    _check_rate(learning_rate, weight_decay)
    if not 0 <= momentum < 1:
        raise ConfigError(f"momentum must be in [0, 1), got {momentum!r}")
    if nesterov and momentum == 0:
        raise ConfigError("nesterov momentum needs momentum > 0")

    def make(player: str, parameters: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
        return torch.optim.SGD(
            parameter_groups(parameters, weight_decay),
            lr=learning_rate,
            momentum=momentum,
            nesterov=nesterov,
        )

    return make


class OptimizerConfig(Config):
    """Which update rule to use, as a serialisable record.

    Attributes:
        name: ``"adamw"`` or ``"sgd"`` (with momentum).
        learning_rate: the base learning rate (the schedule multiplies it).
        weight_decay: decoupled (AdamW) or L2 (SGD) decay of matrices and embeddings.
        betas: AdamW's moment decay rates.
        eps: AdamW's denominator epsilon.
        momentum: SGD's momentum.
        nesterov: SGD's Nesterov momentum.
    """

    name: Literal["adamw", "sgd"] = "adamw"
    learning_rate: Annotated[float, Field(gt=0)] = 1e-3
    weight_decay: Annotated[float, Field(ge=0)] = 0.0
    betas: tuple[Annotated[float, Field(ge=0, lt=1)], Annotated[float, Field(ge=0, lt=1)]] = (
        0.9,
        0.999,
    )
    eps: Annotated[float, Field(gt=0)] = 1e-8
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.9
    nesterov: bool = False

    def factory(self) -> OptimizerFactory:
        """The :data:`OptimizerFactory` this config describes."""
        if self.name == "sgd":
            return sgd(self.learning_rate, self.momentum, self.weight_decay, nesterov=self.nesterov)
        return adamw(self.learning_rate, self.weight_decay, betas=self.betas, eps=self.eps)


def _step_seed(seed: int, step: int) -> int:
    # A splitmix-style mix so neighbouring steps get unrelated streams.
    z = (seed * 0x9E3779B97F4A7C15 + step * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z ^= z >> 31
    return z & 0x7FFFFFFFFFFFFFFF


def _leading_size(batch: object) -> int | None:
    """Size of the first dimension shared by every tensor in ``batch``, if any."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.ndim else None
    if isinstance(batch, Mapping):
        parts = list(batch.values())
    elif isinstance(batch, list | tuple):
        parts = list(batch)
    else:
        return None
    sizes = {_leading_size(part) for part in parts}
    return sizes.pop() if len(sizes) == 1 else None


def _take(batch: Any, start: int, stop: int) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch[start:stop]
    if isinstance(batch, Mapping):
        return {key: _take(value, start, stop) for key, value in batch.items()}
    return type(batch)(_take(part, start, stop) for part in batch)


def split_batch(batch: Batch, pieces: int) -> list[tuple[Batch, float]]:
    """Cut a batch into ``pieces`` micro-batches along the first dimension.

    A batch is a tensor, or a tuple/list/mapping of tensors (nested) that share
    their first dimension. Each micro-batch comes with its weight, its share of
    the batch, so that the weighted sum of per-micro-batch mean losses equals
    the mean loss over the whole batch.

    Raises:
        InvalidInputError: ``pieces > 1`` and the batch cannot be cut, or holds
            fewer rows than ``pieces``.

    Examples:
        >>> [(tuple(p.shape), w) for p, w in split_batch(torch.zeros(4, 3), 2)]
        [((2, 3), 0.5), ((2, 3), 0.5)]
    """
    if pieces == 1:
        return [(batch, 1.0)]
    size = _leading_size(batch)
    if size is None:
        raise InvalidInputError(
            "gradient accumulation cuts a batch along its first dimension, so the batch must be "
            f"a tensor or a tuple/list/dict of tensors of equal length; got {describe(batch)}"
        )
    if size < pieces:
        raise InvalidInputError(
            f"cannot cut a batch of {size} rows into {pieces} micro-batches; "
            "use a larger batch or fewer accumulation steps"
        )
    bounds = [size * i // pieces for i in range(pieces + 1)]
    return [(_take(batch, a, b), (b - a) / size) for a, b in itertools.pairwise(bounds)]


def count_batch_items(batch: object) -> int:
    """Rows in a batch (its shared first dimension), 0 if it has none."""
    return _leading_size(batch) or 0


def _distributed_world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class ObjectiveOptimizer(Generic[Batch]):
    """Updates each player of an objective in turn, once per batch.

    Args:
        objective: what to optimise.
        optimizer: builds a torch optimizer per player (default :func:`adamw`).
        seed: seeds the per-step randomness (see the module docstring).
        max_grad_norm: clip each player's gradient norm to this, if given.
        count_items: how many samples/tokens a batch holds, for throughput
            (default: the objective's ``count_items`` method if it has one,
            else the batch's first dimension).
        schedule: learning-rate schedule (default: constant).
        total_steps: the run's length, for schedules without ``total_steps``.
        accumulation_steps: micro-batches per step (gradient accumulation).
        autocast: run the losses under ``torch.autocast`` with this dtype
            (``torch.bfloat16``); parameters and optimizer state stay float32.

    Examples:
        >>> import torch
        >>> class Regression:
        ...     def __init__(self): self.model = torch.nn.Linear(1, 1)
        ...     def players(self): return {"model": self.model}
        ...     def loss(self, player, batch):
        ...         x, y = batch
        ...         return torch.nn.functional.mse_loss(self.model(x), y)
        >>> x = torch.linspace(-1, 1, 16).unsqueeze(1)
        >>> opt = ObjectiveOptimizer(Regression(), optimizer=adamw(0.1), seed=0)
        >>> first = opt.step((x, 3 * x)).losses["model"]
        >>> for _ in range(100): last = opt.step((x, 3 * x)).losses["model"]
        >>> last < first / 10
        True
    """

    def __init__(
        self,
        objective: TrainingObjective[Batch],
        *,
        optimizer: OptimizerFactory | None = None,
        seed: int = 0,
        max_grad_norm: float | None = None,
        count_items: Callable[[Batch], int] | None = None,
        schedule: Schedule | None = None,
        total_steps: int | None = None,
        accumulation_steps: int = 1,
        autocast: torch.dtype | None = None,
    ) -> None:
        if max_grad_norm is not None and not max_grad_norm > 0:
            raise ConfigError(f"max_grad_norm must be positive, got {max_grad_norm}")
        if not (isinstance(accumulation_steps, int) and accumulation_steps >= 1):
            raise ConfigError(f"accumulation_steps must be an int >= 1, got {accumulation_steps!r}")
        if autocast not in (None, torch.bfloat16, torch.float16):
            raise ConfigError(
                f"autocast must be None, torch.bfloat16 or torch.float16, got {autocast}"
            )
        if not hasattr(objective, "players") or not hasattr(objective, "loss"):
            raise ConfigError(
                f"expected a TrainingObjective (players() and loss()), got {describe(objective)}"
            )
        players = objective.players()
        if not players:
            raise ConfigError("the objective has no players to optimise")
        make = optimizer if optimizer is not None else adamw()
        self.objective = objective
        self.seed = seed
        self.max_grad_norm = max_grad_norm
        self.schedule = schedule if schedule is not None else Schedule()
        self.total_steps = total_steps
        self.accumulation_steps = accumulation_steps
        self.autocast = autocast
        own_count = getattr(objective, "count_items", None)
        self.count_items: Callable[[Batch], int] = (
            count_items if count_items is not None else own_count or count_batch_items
        )
        self._step = 0
        self._optimizers: dict[str, torch.optim.Optimizer] = {}
        devices: set[torch.device] = set()
        for name, module in players.items():
            trainable = [p for p in module.parameters() if p.requires_grad]
            if not trainable:
                raise ConfigError(f"player {name!r} has no trainable parameters")
            devices.update(p.device for p in trainable)
            self._optimizers[name] = make(name, trainable)
            for group in self._optimizers[name].param_groups:
                group.setdefault("initial_lr", group["lr"])
        self._device_type = "cuda" if any(d.type == "cuda" for d in devices) else "cpu"
        self._cuda_devices = sorted({d.index or 0 for d in devices if d.type == "cuda"})
        self._sharded = {name: is_sharded(module) for name, module in players.items()}
        if _distributed_world() > 1:  # start every process from rank 0's weights, as DDP does
            for name, module in players.items():
                if self._sharded[name]:
                    continue  # shard() broadcast rank 0's weights before sharding
                for tensor in [*module.parameters(), *module.buffers()]:
                    dist.broadcast(tensor.data, src=0)

    @property
    def step_count(self) -> int:
        """Steps taken so far."""
        return self._step

    def learning_rate_factor(self) -> float:
        """The schedule's multiplier for the next step."""
        return lr_factor(self.schedule, self._step, self.total_steps)

    def step(self, batch: Batch) -> StepReport:
        """Update every player once on ``batch``, in the objective's order.

        A non-finite loss (on any process) skips that player's update and marks
        the report ``skipped``; the step still counts.

        Raises:
            InvalidInputError: the objective rejected the batch, its loss is not
                a scalar tensor that requires grad, or the batch cannot be split
                for gradient accumulation.
        """
        players = self.objective.players()
        pieces = split_batch(batch, self.accumulation_steps)
        factor = self.learning_rate_factor()
        world = _distributed_world()
        losses: dict[str, float] = {}
        metrics: dict[str, float] = {"lr_factor": factor}
        skipped = False
        with torch.random.fork_rng(devices=self._cuda_devices):
            torch.manual_seed(_step_seed(self.seed, self._step))
            for name, module in players.items():
                module.train()
                optimizer = self._optimizers[name]
                optimizer.zero_grad(set_to_none=True)
                parameters = [p for g in optimizer.param_groups for p in g["params"]]
                total = torch.zeros((), dtype=torch.float32, device=parameters[0].device)
                for piece, weight in pieces:
                    with torch.autocast(
                        self._device_type, dtype=self.autocast, enabled=self.autocast is not None
                    ):
                        loss = self._loss(name, piece, weight, metrics)
                    _check_loss(name, loss)
                    (loss * weight).backward()  # type: ignore[no-untyped-call]
                    total += loss.detach().float() * weight
                if world > 1 and self._sharded[name]:  # FSDP averaged the gradients
                    dist.all_reduce(total)
                    total /= world
                elif world > 1:
                    total = _average_across_processes(parameters, total, world)
                value = float(total)
                losses[name] = value
                if not math.isfinite(value):
                    skipped = True
                    optimizer.zero_grad(set_to_none=True)
                    continue
                if self.max_grad_norm is not None:
                    norm = torch.nn.utils.clip_grad_norm_(parameters, self.max_grad_norm)
                    metrics[f"{name}/grad_norm"] = float(norm)
                for group in optimizer.param_groups:
                    group["lr"] = group["initial_lr"] * factor
                optimizer.step()
        self._step += 1
        items = int(self.count_items(batch)) * world
        return StepReport(
            step=self._step, losses=losses, metrics=metrics, num_items=items, skipped=skipped
        )

    def _loss(
        self, name: str, piece: Batch, weight: float, metrics: dict[str, float]
    ) -> torch.Tensor:
        """The player's loss on a micro-batch; an objective's own metrics go into ``metrics``."""
        measure = getattr(self.objective, "measured_loss", None)
        if not callable(measure):
            return self.objective.loss(name, piece)
        measured = measure(name, piece)
        if not isinstance(measured, MeasuredLoss):
            raise InvalidInputError(
                f"measured_loss of player {name!r} must return a MeasuredLoss, "
                f"got {describe(measured)}"
            )
        for key, value in measured.metrics.items():
            metrics[f"{name}/{key}"] = metrics.get(f"{name}/{key}", 0.0) + float(value) * weight
        return measured.loss

    def state_dict(self) -> dict[str, Any]:
        """Everything the next steps depend on: step, seed, player weights, optimizer moments.

        A sharded player's weights and moments are gathered in full (a collective
        call: every process must call this), its moments keyed by parameter name.
        """
        players, optimizers = {}, {}
        for name, module in self.objective.players().items():
            if self._sharded[name]:
                players[name], optimizers[name] = full_state(module, self._optimizers[name])
            else:
                players[name], optimizers[name] = (
                    module.state_dict(),
                    self._optimizers[name].state_dict(),
                )
        return {"step": self._step, "seed": self.seed, "players": players, "optimizers": optimizers}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue exactly where the optimizer that produced ``state`` stopped.

        Nothing is changed unless every player's weights fit.

        Raises:
            IntegrityError: the state belongs to an objective with other players
                or parameters of other names or shapes.
        """
        players = self.objective.players()
        if not isinstance(state, Mapping) or not isinstance(state.get("players"), Mapping):
            raise IntegrityError(f"expected an optimizer state dict, got {describe(state)}")
        if set(state["players"]) != set(players) or set(state.get("optimizers", {})) != set(
            players
        ):
            raise IntegrityError(
                f"this state is for players {sorted(state['players'])}, "
                f"but the objective has {sorted(players)}"
            )
        for name, module in players.items():
            _check_fits(name, module.state_dict(), state["players"][name])
        for name, module in players.items():
            try:
                if self._sharded[name]:
                    optimizer = self._optimizers[name]
                    weights, moments = state["players"][name], state["optimizers"][name]
                    load_full_state(module, optimizer, weights, moments)
                    continue
                module.load_state_dict(state["players"][name])
                self._optimizers[name].load_state_dict(state["optimizers"][name])
            except (ValueError, KeyError) as error:
                raise IntegrityError(
                    f"player {name!r}: the optimizer state does not fit: {error}"
                ) from None
        self._step = int(state["step"])
        self.seed = int(state["seed"])


def _check_loss(name: str, loss: object) -> None:
    if not isinstance(loss, torch.Tensor) or loss.ndim != 0 or not loss.requires_grad:
        shape = f" of shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor) else ""
        raise InvalidInputError(
            f"the loss of player {name!r} must be a scalar tensor that requires grad, "
            f"got {type(loss).__name__}{shape}"
        )


def _check_fits(name: str, current: Mapping[str, Any], incoming: Mapping[str, Any]) -> None:
    """Raise IntegrityError unless ``incoming`` has exactly the keys and shapes of ``current``."""
    if not isinstance(incoming, Mapping):
        raise IntegrityError(f"player {name!r}: expected a state dict, got {describe(incoming)}")
    missing = sorted(set(current) - set(incoming))
    unexpected = sorted(set(incoming) - set(current))
    if missing or unexpected:
        raise IntegrityError(
            f"player {name!r}: the weights are of another model "
            f"(missing {missing[:5]}, unexpected {unexpected[:5]})"
        )
    for key, tensor in current.items():
        other = incoming[key]
        if isinstance(tensor, torch.Tensor) and (
            not isinstance(other, torch.Tensor) or other.shape != tensor.shape
        ):
            found = tuple(other.shape) if isinstance(other, torch.Tensor) else describe(other)
            raise IntegrityError(
                f"player {name!r}: {key} has shape {tuple(tensor.shape)} here "
                f"but {found} in the state: the weights are of another model"
            )


def _average_across_processes(
    parameters: list[torch.nn.Parameter], loss: torch.Tensor, world: int
) -> torch.Tensor:
    """Average gradients and the loss over all processes with one all_reduce."""
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters]
    flat = torch.cat([g.reshape(-1).float() for g in grads] + [loss.reshape(1)])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for parameter, grad in zip(parameters, grads, strict=True):
        count = grad.numel()
        parameter.grad = flat[offset : offset + count].view_as(grad).to(grad.dtype)
        offset += count
    return flat[-1]
