"""The trainer: a short, linear training recipe over any objective.

:class:`Trainer` is an :class:`~genarch.protocols.Optimizer` — ``step(batch)``
updates every player of a :class:`~genarch.protocols.TrainingObjective` once —
plus :meth:`Trainer.fit`, the loop most runs need, readable top to bottom::

    resume from the latest checkpoint, if any
    while step < max_steps:
        batch = the global batch for this step (a pure function of seed and step),
                this process's share of it under torch.distributed
        report = step(batch)          # skip + count a non-finite loss
        log (JSONL, progress bar), step callbacks
        every eval_every steps: validation loss, best step, early stopping
        every checkpoint_every steps (and at a new best): atomic checkpoint
    final checkpoint, TrainingReport

Everything configurable lives in a frozen :class:`TrainerConfig`; callbacks are
plain typed callables passed to ``fit`` (no hook base class to inherit). Three
keyword arguments of the constructor let a training *mode* change how batches
are drawn, how each player's optimizer is built and what each step reports
(DP-SGD, ``genarch.privacy.dp_sgd.DPTrainer``, uses all three).

Why one module past the ~500-line guide: it is one recipe, the config, the
step and the loop it drives, and a reader follows the loop above from start to
end without switching files; the pieces that stand alone (checkpoints,
schedules, the optimizer engine, data order) already live in their own modules.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Annotated, Any, Literal, TypeVar, cast

import numpy as np
import torch
import torch.distributed as dist
from pydantic import Field

from genarch.errors import ConfigError, IntegrityError, InvalidInputError, TrainingError
from genarch.progress import Progress
from genarch.protocols import TrainingObjective
from genarch.schemas import Config, Record, StepReport, TrainingReport
from genarch.training.checkpoint import CheckpointManager, load_checkpoint
from genarch.training.data import IndexedData, shard, to_device
from genarch.training.optimizer import ObjectiveOptimizer, OptimizerConfig, OptimizerFactory
from genarch.training.schedules import Schedule

__all__ = ["EvalReport", "Trainer", "TrainerConfig"]

logger = logging.getLogger(__name__)

Batch = TypeVar("Batch")


class TrainerConfig(Config):
    """Every setting of a training run.

    Attributes:
        max_steps: optimizer steps in the run (the schedule's horizon).
        batch_size: examples per step, over all processes and micro-batches.
        accumulation_steps: micro-batches per step (same result, less memory).
        optimizer: the update rule and its learning rate / weight decay.
        schedule: warm-up and decay of the learning rate.
        max_grad_norm: clip each player's gradient norm (``None``: no clipping).
        autocast: ``"bfloat16"`` runs forward passes in bf16 autocast
            (worth it on GPUs and CPUs with fast bf16 matmuls; parameters stay fp32).
        seed: seeds the data order and all randomness inside steps.
        shuffle: reshuffle the training data every epoch.
        eval_every: steps between validation passes (``None``: only at the end
            when validation data is given).
        eval_batch_size: examples per validation batch (default ``batch_size``).
        eval_player: whose loss is the validation metric (default: the first player).
        patience: stop after this many validations without improvement
            (``None``: never stop early).
        min_delta: an improvement must lower the metric by more than this.
        checkpoint_dir: where checkpoints and ``metrics.jsonl`` go (``None``: nowhere).
        checkpoint_every: steps between checkpoints (``None``: only at the end and at a new best).
        keep_last: checkpoints kept besides the best one.
        max_non_finite: steps with a non-finite loss tolerated before
            :class:`~genarch.errors.TrainingError` stops the run.
        progress: show progress on stderr (on rank 0): a tqdm bar on a terminal,
            a plain line every 10 seconds in a log (:class:`~genarch.progress.Progress`).
    """

    max_steps: Annotated[int, Field(ge=1)] = 1000
    batch_size: Annotated[int, Field(ge=1)] = 8
    accumulation_steps: Annotated[int, Field(ge=1)] = 1
    optimizer: OptimizerConfig = OptimizerConfig()
    schedule: Schedule = Schedule()
    max_grad_norm: Annotated[float, Field(gt=0)] | None = 1.0
    autocast: Literal["bfloat16"] | None = None
    seed: int = 0
    shuffle: bool = True
    eval_every: Annotated[int, Field(ge=1)] | None = None
    eval_batch_size: Annotated[int, Field(ge=1)] | None = None
    eval_player: str | None = None
    patience: Annotated[int, Field(ge=1)] | None = None
    min_delta: Annotated[float, Field(ge=0)] = 0.0
    checkpoint_dir: str | None = None
    checkpoint_every: Annotated[int, Field(ge=1)] | None = None
    keep_last: Annotated[int, Field(ge=1)] = 2
    max_non_finite: Annotated[int, Field(ge=0)] = 10
    progress: bool = True


class EvalReport(Record):
    """One validation pass: its loss and where the run stands."""

    step: int
    loss: float
    best_step: int
    best_loss: float
    improved: bool


StepCallback = Callable[[StepReport], None]
EvalCallback = Callable[[EvalReport], None]
CheckpointCallback = Callable[[Path], None]
BatchIndices = Callable[[int, int], torch.Tensor]
"""``(step, number of examples) -> indices`` of the examples in that step's global batch."""
StepMetrics = Callable[[StepReport], Mapping[str, float]]
"""More figures for a step's report, given the report the optimizer made."""


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _rng_states() -> dict[str, Any]:
    numpy_state = cast(tuple[Any, ...], np.random.get_state(legacy=True))
    return {
        "python": random.getstate(),
        "numpy": [numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:]],
        "torch": torch.get_rng_state().tolist(),
    }


def _restore_rng_states(states: Mapping[str, Any]) -> None:
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, *rest = states["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(torch.tensor(states["torch"], dtype=torch.uint8))


class Trainer:
    """Trains the players of an objective: ``step`` for one update, ``fit`` for a run.

    Args:
        objective: what to optimise (e.g. :class:`~genarch.training.LanguageModeling`).
        config: a :class:`TrainerConfig`; keyword arguments are shorthand for its fields.
        count_items: samples or tokens in a batch, for throughput (default: the
            objective's ``count_items`` if it has one, else the batch's first dimension).
        optimizer_factory: builds each player's torch optimizer in place of
            ``config.optimizer.factory()`` (e.g. to wrap it).
        batch_indices: picks each step's global batch in place of the seeded,
            shuffled epochs (e.g. Poisson sampling).
        step_metrics: its figures join each step's ``metrics`` (so the log and
            the step callbacks see them).

    Example:
        >>> import torch
        >>> from genarch.training import LanguageModeling, token_blocks
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <torch._C.Generator object at ...>
        >>> model = torch.nn.Sequential(torch.nn.Embedding(16, 32), torch.nn.Linear(32, 16))
        >>> data = token_blocks(torch.arange(400) % 16, block_size=8)
        >>> trainer = Trainer(LanguageModeling(model), max_steps=40, batch_size=8,
        ...                   optimizer={"learning_rate": 0.05}, progress=False)
        >>> report = trainer.fit(data, eval_data=data[:8])
        >>> last_step, last_loss = report.eval_loss[-1]
        >>> last_step, last_loss < report.train_loss[0] / 5
        (40, True)
    """

    def __init__(
        self,
        objective: TrainingObjective[Any],
        config: TrainerConfig | None = None,
        *,
        count_items: Callable[[Any], int] | None = None,
        optimizer_factory: OptimizerFactory | None = None,
        batch_indices: BatchIndices | None = None,
        step_metrics: StepMetrics | None = None,
        **fields: Any,
    ) -> None:
        self._config = TrainerConfig.resolve(config, fields)
        if not isinstance(self._config, TrainerConfig):
            raise ConfigError(f"config must be a TrainerConfig, got {type(config).__name__}")
        cfg = self._config
        if cfg.accumulation_steps > cfg.batch_size:
            raise ConfigError(
                f"accumulation_steps ({cfg.accumulation_steps}) cannot exceed batch_size "
                f"({cfg.batch_size}): each micro-batch needs at least one example"
            )
        self.objective = objective
        self._engine: ObjectiveOptimizer[Any] = ObjectiveOptimizer(
            objective,
            optimizer=optimizer_factory or cfg.optimizer.factory(),
            seed=cfg.seed,
            max_grad_norm=cfg.max_grad_norm,
            count_items=count_items,
            schedule=cfg.schedule,
            total_steps=cfg.max_steps,
            accumulation_steps=cfg.accumulation_steps,
            autocast=torch.bfloat16 if cfg.autocast == "bfloat16" else None,
        )
        players = objective.players()
        self._eval_player = cfg.eval_player or next(iter(players))
        if self._eval_player not in players:
            raise ConfigError(
                f"eval_player {cfg.eval_player!r} is not a player; players: {sorted(players)}"
            )
        self._device = next(next(iter(players.values())).parameters()).device
        self._batch_indices = batch_indices
        self._step_metrics = step_metrics
        self._skipped = 0
        self._train_loss: list[float] = []
        self._eval_loss: list[tuple[int, float]] = []
        self._best: tuple[int, float] | None = None
        self._evals_without_improvement = 0
        self._items = 0

    @property
    def config(self) -> TrainerConfig:
        """The frozen configuration."""
        return self._config

    @property
    def step_count(self) -> int:
        """Steps taken so far."""
        return self._engine.step_count

    # ------------------------------------------------------------- Optimizer protocol

    def step(self, batch: Any) -> StepReport:
        """One update of every player on ``batch`` (this process's share of it).

        Raises:
            InvalidInputError: the objective cannot use the batch (nothing changes).
            TrainingError: more than ``max_non_finite`` steps had a non-finite loss.
        """
        report = self._engine.step(batch)
        if self._step_metrics is not None:
            extra = {key: float(value) for key, value in self._step_metrics(report).items()}
            report = report.model_copy(update={"metrics": {**report.metrics, **extra}})
        self._train_loss.append(report.losses[self._eval_player])
        self._items += report.num_items
        if report.skipped:
            self._skipped += 1
            logger.warning(
                "step %d: non-finite loss %s, update skipped (%d so far)",
                report.step,
                report.losses,
                self._skipped,
            )
            if self._skipped > self._config.max_non_finite:
                raise TrainingError(
                    f"{self._skipped} steps had a non-finite loss (allowed: "
                    f"{self._config.max_non_finite}); last losses {report.losses}. Lower the "
                    "learning rate, clip gradients (max_grad_norm) or check the data"
                )
        return report

    def state_dict(self) -> dict[str, Any]:
        """Weights, optimizer moments, step and the run's history so far."""
        return {
            "optimizer": self._engine.state_dict(),
            "trainer": {
                "skipped": self._skipped,
                "train_loss": list(self._train_loss),
                "eval_loss": [list(pair) for pair in self._eval_loss],
                "best": list(self._best) if self._best is not None else None,
                "evals_without_improvement": self._evals_without_improvement,
                "items": self._items,
            },
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue exactly where the trainer that produced ``state`` stopped.

        Raises:
            IntegrityError: the state is of another model or not a trainer state.
        """
        if not isinstance(state, Mapping) or not {"optimizer", "trainer"} <= set(state):
            raise IntegrityError("expected a Trainer state with 'optimizer' and 'trainer' entries")
        run = state["trainer"]
        try:  # read everything before changing anything
            skipped = int(run["skipped"])
            train_loss = [float(x) for x in run["train_loss"]]
            eval_loss = [(int(s), float(v)) for s, v in run["eval_loss"]]
            best = (int(run["best"][0]), float(run["best"][1])) if run["best"] else None
            evals_without_improvement = int(run["evals_without_improvement"])
            items = int(run["items"])
        except (KeyError, TypeError, ValueError, IndexError) as error:
            raise IntegrityError(f"the trainer state is malformed: {error!r}") from None
        self._engine.load_state_dict(state["optimizer"])
        self._skipped, self._train_loss, self._eval_loss = skipped, train_loss, eval_loss
        self._best, self._evals_without_improvement = best, evals_without_improvement
        self._items = items

    # ------------------------------------------------------------------ checkpoints

    def save_checkpoint(self, manager: CheckpointManager, *, metric: float | None = None) -> Path:
        """Write a checkpoint of the whole run (state, config, RNG states, data position)."""
        return manager.save(self.step_count, self._checkpoint_state(), metric=metric)

    def _checkpoint_state(self) -> dict[str, Any]:
        return {
            **self.state_dict(),
            "config": self._config.model_dump(mode="json"),
            "rng": _rng_states(),
            "data": {"step": self.step_count, "seed": self._config.seed},
        }

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore a checkpoint written by :meth:`save_checkpoint`, RNG states included.

        Raises:
            NotFoundError: no checkpoint at ``path``.
            IntegrityError: it is corrupt or of another model.
        """
        state = load_checkpoint(path)
        saved = state.get("config", {})
        changed = sorted(
            k for k, v in self._config.model_dump(mode="json").items() if saved.get(k) != v
        )
        if changed:
            logger.warning("resuming %s with changed settings: %s", path, ", ".join(changed))
        self.load_state_dict(state)
        _restore_rng_states(state["rng"])
        logger.info("resumed from %s at step %d", path, self.step_count)

    # ----------------------------------------------------------------------- the loop

    def evaluate(self, data: object, *, collate: Callable[[list[Any]], Any] | None = None) -> float:
        """Mean loss of the evaluation player over ``data`` (no updates, no dropout).

        Under torch.distributed each process evaluates its share and the
        results are combined, so every process gets the same number.

        Raises:
            InvalidInputError: the data is empty or the objective cannot use it.
        """
        source = IndexedData(data, collate)
        if len(source) == 0:
            raise InvalidInputError("the evaluation data holds no examples")
        rank, world = _world()
        size = self._config.eval_batch_size or self._config.batch_size
        players = self.objective.players()
        modes = {name: module.training for name, module in players.items()}
        total, rows_seen = 0.0, 0
        autocast = self._config.autocast == "bfloat16"
        try:
            for module in players.values():
                module.eval()
            with torch.no_grad(), torch.random.fork_rng(devices=[]):
                torch.manual_seed(self._config.seed)
                for start in range(0, len(source), size):
                    indices = shard(
                        torch.arange(start, min(start + size, len(source))), rank, world
                    )
                    if indices.numel() == 0:
                        continue
                    batch = to_device(source.take(indices), self._device)
                    with torch.autocast(self._device.type, dtype=torch.bfloat16, enabled=autocast):
                        loss = self.objective.loss(self._eval_player, batch)
                    total += float(loss) * indices.numel()
                    rows_seen += indices.numel()
        finally:
            for name, module in players.items():
                module.train(modes[name])
        if world > 1:  # on the model's device: NCCL reduces only GPU tensors
            sums = torch.tensor([total, rows_seen], dtype=torch.float64, device=self._device)
            dist.all_reduce(sums)
            total, rows_seen = sums.tolist()
        return total / rows_seen

    def fit(
        self,
        train_data: object,
        eval_data: object | None = None,
        *,
        until_step: int | None = None,
        resume: bool = True,
        collate: Callable[[list[Any]], Any] | None = None,
        on_step_end: Sequence[StepCallback] = (),
        on_eval_end: Sequence[EvalCallback] = (),
        on_checkpoint: Sequence[CheckpointCallback] = (),
    ) -> TrainingReport:
        """Train to ``max_steps`` (or ``until_step``), evaluating and checkpointing on the way.

        Args:
            train_data: an ``(N, ...)`` tensor, a tuple/dict of tensors, or a
                sequence of examples (combined by ``collate``).
            eval_data: validation data of the same kind, or ``None``.
            until_step: stop after this step without changing the schedule
                (to split a run across jobs; a later ``fit`` resumes).
            resume: continue from the latest checkpoint in ``checkpoint_dir``.
            collate: combines a list of examples into a batch.
            on_step_end: called with each step's report.
            on_eval_end: called with each validation's report.
            on_checkpoint: called with each checkpoint's directory (rank 0 only).

        Returns:
            The run's :class:`~genarch.schemas.TrainingReport` (from step 0,
            also after a resume).

        Raises:
            InvalidInputError: the data is unusable or smaller than one batch.
            TrainingError: too many non-finite losses.
        """
        cfg = self._config
        rank, world = _world()
        data = IndexedData(train_data, collate)
        if cfg.batch_size % world:
            raise ConfigError(f"batch_size ({cfg.batch_size}) must divide among {world} processes")
        if data.batches_per_epoch(cfg.batch_size) < 1:
            raise InvalidInputError(
                f"the training data has {len(data)} examples, fewer than one batch of {cfg.batch_size}"
            )
        if until_step is not None and until_step < 1:
            raise InvalidInputError(f"until_step must be >= 1, got {until_step}")
        stop_at = min(until_step or cfg.max_steps, cfg.max_steps)
        manager = None
        if cfg.checkpoint_dir is not None:
            manager = CheckpointManager(cfg.checkpoint_dir, keep_last=cfg.keep_last)
            latest = manager.latest()
            if resume and latest is not None:
                self.load_checkpoint(latest)
        log = None
        if rank == 0 and cfg.checkpoint_dir is not None:
            Path(cfg.checkpoint_dir).mkdir(parents=True, exist_ok=True)
            log = open(Path(cfg.checkpoint_dir) / "metrics.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        bar = Progress(
            total=cfg.max_steps,
            initial=self.step_count,
            enabled=rank == 0 and cfg.progress,
            unit="step",
        )
        started = time.perf_counter()
        train_seconds, items_now = 0.0, 0
        saved_at = self.step_count  # a resumed checkpoint need not be written again
        try:
            while self.step_count < stop_at and not self._patience_exhausted():
                if self._batch_indices is not None:
                    indices = self._batch_indices(self.step_count, len(data))
                else:
                    indices, _, _ = data.train_indices(
                        self.step_count, cfg.batch_size, cfg.seed, shuffle=cfg.shuffle
                    )
                batch = to_device(data.take(shard(indices, rank, world)), self._device)
                tick = time.perf_counter()
                report = self.step(batch)
                train_seconds += time.perf_counter() - tick
                items_now += report.num_items
                rate = items_now / train_seconds if train_seconds > 0 else 0.0
                bar.update(1, loss=f"{report.losses[self._eval_player]:.4f}", items_s=f"{rate:.0f}")
                _write(log, {"step": report.step, "losses": report.losses, **report.metrics,
                             "items_per_second": rate, "skipped": report.skipped})  # fmt: skip
                for callback in on_step_end:
                    callback(report)

                due = cfg.eval_every is not None and self.step_count % cfg.eval_every == 0
                final = self.step_count == cfg.max_steps
                evaluation = None
                if eval_data is not None and (due or final):
                    evaluation = self._validate(eval_data, collate)
                    _write(log, {"step": self.step_count, "eval_loss": evaluation.loss})
                    for eval_callback in on_eval_end:
                        eval_callback(evaluation)
                if manager is not None and (
                    (evaluation is not None and evaluation.improved)
                    or (cfg.checkpoint_every and self.step_count % cfg.checkpoint_every == 0)
                ):
                    self._checkpoint(manager, rank, world, on_checkpoint)
                    saved_at = self.step_count
            if self._patience_exhausted():
                logger.info("early stopping at step %d (best: %s)", self.step_count, self._best)
            if manager is not None and saved_at != self.step_count:
                self._checkpoint(manager, rank, world, on_checkpoint)
        finally:
            bar.close()
            if log is not None:
                log.close()
        return TrainingReport(
            steps=self.step_count,
            train_loss=tuple(self._train_loss),
            eval_loss=tuple(self._eval_loss),
            best_step=self._best[0] if self._best else None,
            best_metric=self._best[1] if self._best else None,
            items_per_second=items_now / train_seconds if train_seconds > 0 else 0.0,
            wall_seconds=time.perf_counter() - started,
            skipped_steps=self._skipped,
            stopped_because=(
                "early_stopping"
                if self._patience_exhausted()
                else "until_step"
                if self.step_count < cfg.max_steps
                else "finished"
            ),
        )

    # --------------------------------------------------------------------- helpers

    def _patience_exhausted(self) -> bool:
        patience = self._config.patience
        return patience is not None and self._evals_without_improvement >= patience

    def _evaluated_now(self) -> bool:
        return bool(self._eval_loss) and self._eval_loss[-1][0] == self.step_count

    def _validate(
        self, eval_data: object, collate: Callable[[list[Any]], Any] | None
    ) -> EvalReport:
        loss = self.evaluate(eval_data, collate=collate)
        self._eval_loss.append((self.step_count, loss))
        improved = math.isfinite(loss) and (
            self._best is None or loss < self._best[1] - self._config.min_delta
        )
        if improved:
            self._best = (self.step_count, loss)
            self._evals_without_improvement = 0
        else:
            self._evals_without_improvement += 1
        best = self._best or (self.step_count, loss)
        return EvalReport(
            step=self.step_count, loss=loss, best_step=best[0], best_loss=best[1], improved=improved
        )

    def _checkpoint(
        self,
        manager: CheckpointManager,
        rank: int,
        world: int,
        callbacks: Sequence[CheckpointCallback],
    ) -> None:
        # every process gathers the state (sharded weights need all of them), rank 0 writes it
        state = self._checkpoint_state()
        if rank == 0:
            metric = self._eval_loss[-1][1] if self._evaluated_now() else None
            path = manager.save(self.step_count, state, metric=metric)
            for callback in callbacks:
                callback(path)
        if world > 1:
            dist.barrier()


def _write(log: IO[str] | None, record: Mapping[str, Any]) -> None:
    if log is not None:
        log.write(json.dumps(record) + "\n")
        log.flush()
