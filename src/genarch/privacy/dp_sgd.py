"""DP-SGD for the :class:`~genarch.training.Trainer`, through Opacus.

Differentially private SGD (Abadi et al., "Deep Learning with Differential
Privacy", CCS 2016) changes three things in an ordinary run, and
:class:`DPTrainer` makes each of them with Opacus's own parts
(``pip install "genarch[privacy]"``):

1. **Batches** are Poisson samples: each training example joins a step's batch
   on its own with probability ``q = batch_size / N`` (Opacus's
   ``UniformWithReplacementSampler``), so batch sizes vary around ``batch_size``.
2. **Gradients** are computed per example (Opacus's ``GradSampleHooks``, attached
   to the model itself, so the model is never wrapped), each clipped to L2 norm
   ``max_grad_norm``, summed, and Gaussian noise of standard deviation
   ``noise_multiplier * max_grad_norm`` is added before the optimizer's update
   (Opacus's ``DPOptimizer`` around the update rule of the trainer's config).
3. **Accounting**: after ``T`` steps the run is ``(ε, δ)``-DP for the ε that
   Opacus's accountant (PRV by default, or RDP) gives for ``T`` steps of the
   sampled Gaussian mechanism with noise ``noise_multiplier`` and rate ``q``.
   ε is logged every epoch (``privacy/epsilon`` in ``metrics.jsonl`` and in the
   step reports) and returned in :class:`DPTrainingReport`.

What the guarantee covers: the model's weights (every update and so every
checkpoint). What it does not: the logged training losses and metrics (computed
on private batches without noise), the evaluation data, the choice of
hyper-parameters tried on the same data, and data-dependent decisions outside
the update (a step skipped for a non-finite loss). A step whose Poisson sample
is empty (probability ``(1 - q) ** N``) is skipped like a non-finite loss: no
update, still accounted, counted towards ``max_non_finite``. The noise and the
sampling come from torch's pseudo-random generator, seeded per step from a
secret drawn with :mod:`secrets` (or from ``noise_seed``, for reproducible
experiments: a known seed lets anyone subtract the noise, so then there is no
privacy); this is Opacus without its ``secure_mode``.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any, Literal, Self

import torch
import torch.distributed as dist
from pydantic import Field, model_validator

from genarch._io import atomic_write_text
from genarch.errors import ConfigError, InvalidInputError, missing_dependency
from genarch.protocols import TrainingObjective
from genarch.schemas import Config, Record, StepReport, TrainingReport
from genarch.training.checkpoint import CheckpointManager
from genarch.training.data import IndexedData
from genarch.training.trainer import (
    CheckpointCallback,
    EvalCallback,
    StepCallback,
    Trainer,
    TrainerConfig,
)
from genarch.validation import describe

__all__ = ["DPConfig", "DPTrainer", "DPTrainingReport", "unsupported_layers"]

logger = logging.getLogger(__name__)

PRIVACY_FILE = "privacy.json"
"""Written into ``checkpoint_dir``: the settings ε was accounted with, checked on resume."""

_Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class DPConfig(Config):
    """How private a DP-SGD run is: noise, clipping bound, δ and the accountant.

    Give exactly one of ``noise_multiplier`` and ``target_epsilon``.

    Attributes:
        noise_multiplier: the noise's standard deviation in units of
            ``max_grad_norm`` (0 clips without noise: ε is infinite).
        target_epsilon: instead of a noise multiplier, the ε at ``delta`` the
            whole run (``max_steps`` steps) may spend; the noise multiplier is
            then chosen by Opacus's ``get_noise_multiplier`` when ``fit`` sees the data.
        max_grad_norm: every example's gradient is clipped to this L2 norm.
        delta: the δ of (ε, δ)-DP, in (0, 1) and below ``1 / N`` for ``N``
            training examples (well below is usual: ``1e-5`` for tens of thousands).
        accountant: Opacus's ``"prv"`` (privacy random variables, tighter, its
            default) or ``"rdp"`` (Rényi DP, faster).
        noise_seed: seeds the sampling and the noise for reproducible
            experiments; ``None`` (the default, and the only private choice)
            draws a secret seed per run.
    """

    noise_multiplier: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    target_epsilon: _Positive | None = None
    max_grad_norm: _Positive = 1.0
    delta: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)] = 1e-5
    accountant: Literal["prv", "rdp"] = "prv"
    noise_seed: int | None = None

    @model_validator(mode="after")
    def _one_noise_setting(self) -> Self:
        if (self.noise_multiplier is None) == (self.target_epsilon is None):
            raise ConfigError(
                "DPConfig needs exactly one of noise_multiplier and target_epsilon, got "
                f"noise_multiplier={self.noise_multiplier!r}, target_epsilon={self.target_epsilon!r}"
            )
        return self


class DPTrainingReport(Record):
    """The outcome of a DP-SGD run: the training report and the privacy spent.

    Attributes:
        training: the :class:`~genarch.schemas.TrainingReport` of the run.
        epsilon: ε at ``delta`` after all ``steps`` so far (``inf`` without noise).
        delta: the δ of the guarantee.
        epsilon_by_epoch: ``(step, ε)`` at the end of every epoch (``N // batch_size``
            steps) and at the last step.
        noise_multiplier: the noise used (given, or chosen for ``target_epsilon``).
        sample_rate: the Poisson sampling rate ``batch_size / N``.
        max_grad_norm: the per-example clipping bound.
        accountant: ``"prv"`` or ``"rdp"``.
        steps: steps taken, each one accounted.
    """

    training: TrainingReport
    epsilon: float
    delta: float
    epsilon_by_epoch: tuple[tuple[int, float], ...]
    noise_multiplier: float
    sample_rate: float
    max_grad_norm: float
    accountant: str
    steps: int


def _import_opacus() -> ModuleType:
    try:
        import opacus  # type: ignore[import-untyped]
    except ImportError:
        raise missing_dependency("opacus", "privacy", "DP-SGD training (DPTrainer)") from None
    return opacus  # type: ignore[no-any-return]


def unsupported_layers(model: torch.nn.Module) -> list[str]:
    """The layers of ``model`` that DP-SGD through Opacus cannot train, with the reason.

    A layer is refused when Opacus's ``ModuleValidator`` refuses it (BatchNorm
    mixes the examples of a batch; LSTM, GRU and MultiheadAttention need
    Opacus's DP versions) or when it learns parameters and also keeps buffers,
    whose contents would leave the training data unprotected.

    Returns:
        One ``"name (Type): reason"`` line per refused layer; empty when all can be trained.

    Raises:
        MissingDependencyError: Opacus is not installed.
        InvalidInputError: ``model`` is not a ``torch.nn.Module``.
    """
    _import_opacus()
    from opacus.validators import ModuleValidator  # type: ignore[import-untyped]

    if not isinstance(model, torch.nn.Module):
        raise InvalidInputError(f"expected a torch.nn.Module, got {describe(model)}")
    problems = []
    for name, layer in model.named_modules():
        label = f"{name or '(the model itself)'} ({type(layer).__name__})"
        validator = ModuleValidator.VALIDATORS.get(type(layer))
        errors = validator(layer) if validator is not None else []
        if errors:
            reason = str(errors[0]).split(". ")[0].rstrip(".")
            problems.append(f"{label}: {reason}")
        elif any(p.requires_grad for p in layer.parameters(recurse=False)) and any(
            True for _ in layer.buffers(recurse=False)
        ):
            problems.append(f"{label}: it learns parameters and also keeps buffers")
    return problems


def _mix(secret: int, step: int, stream: int) -> int:
    """A per-step seed: splitmix64 of (secret, step, stream), so neighbouring steps and
    the two streams (sampling, noise) get unrelated seeds."""
    z = (secret + step * 0x9E3779B97F4A7C15 + stream * 0xD1B54A32D192ED03) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return (z ^ (z >> 31)) & 0x7FFFFFFFFFFFFFFF


class DPTrainer:
    """Trains the one player of an objective with DP-SGD and accounts ε as it goes.

    A :class:`~genarch.training.Trainer` run — same config, same loop, same
    checkpoints (of the plain model: they load into the model without Opacus)
    — whose batches, gradients and updates follow DP-SGD (see the module
    docstring). The trainer's own ``max_grad_norm`` (clipping the whole batch's
    gradient) gives way to the per-example bound ``privacy.max_grad_norm``.

    Args:
        objective: one player whose loss is the *mean* over the batch's examples,
            each example's term depending on that example only.
        config: a :class:`~genarch.training.TrainerConfig`; keyword arguments
            are shorthand for its fields. ``batch_size`` is the expected batch
            size of the Poisson sampling; ``accumulation_steps`` must be 1.
        privacy: a :class:`DPConfig` (or its fields as a mapping).
        count_items: as for the :class:`~genarch.training.Trainer`.

    Raises:
        MissingDependencyError: Opacus is not installed (``pip install "genarch[privacy]"``).
        ConfigError: a bad privacy or trainer setting, more than one player, or
            gradient accumulation.
        InvalidInputError: the model has layers DP-SGD cannot train (named, see
            :func:`unsupported_layers`).
    """

    def __init__(
        self,
        objective: TrainingObjective[Any],
        config: TrainerConfig | None = None,
        *,
        privacy: DPConfig | Mapping[str, Any],
        count_items: Callable[[Any], int] | None = None,
        **fields: Any,
    ) -> None:
        _import_opacus()
        if not isinstance(privacy, DPConfig | Mapping):
            raise ConfigError(f"privacy must be a DPConfig or a mapping, got {describe(privacy)}")
        self._privacy = DPConfig.coerce(privacy)
        requested = TrainerConfig.resolve(config, fields)
        if requested.accumulation_steps != 1:
            raise ConfigError(
                f"DP-SGD clips each example's gradient within one batch, so accumulation_steps "
                f"must be 1, got {requested.accumulation_steps}; lower batch_size instead"
            )
        if not (hasattr(objective, "players") and hasattr(objective, "loss")):
            raise ConfigError(
                f"expected a TrainingObjective (players() and loss()), got {describe(objective)}"
            )
        players = objective.players()
        if len(players) != 1:
            raise ConfigError(
                f"DPTrainer trains an objective with one player, got players {sorted(players)}"
            )
        (self._model,) = players.values()
        refused = unsupported_layers(self._model)
        if refused:
            raise InvalidInputError(
                "DP-SGD cannot train this model; refused layers: "
                + "; ".join(refused)
                + ". Replace them (e.g. GroupNorm or LayerNorm for BatchNorm; "
                "opacus.validators.ModuleValidator.fix(model) does that)"
            )
        self._requested = requested
        self._secret = (
            self._privacy.noise_seed
            if self._privacy.noise_seed is not None
            else secrets.randbits(63)
        )
        device = next(self._model.parameters()).device
        self._noise_generator = torch.Generator(device=device)
        self._sampling_generator = torch.Generator()
        self._optimizers: list[Any] = []
        self._noise_multiplier: float | None = self._privacy.noise_multiplier
        self._examples: int | None = None
        self._epsilons: dict[int, float] = {}
        self._trainer = Trainer(
            objective,
            requested.model_copy(update={"max_grad_norm": None}),
            count_items=count_items,
            optimizer_factory=self._private_optimizer,
            batch_indices=self._poisson_batch,
            step_metrics=self._epsilon_metrics,
        )

    # ------------------------------------------------------------------ properties

    @property
    def config(self) -> TrainerConfig:
        """The trainer config as given (the inner trainer runs it without whole-batch clipping)."""
        return self._requested

    @property
    def privacy(self) -> DPConfig:
        """The privacy settings."""
        return self._privacy

    @property
    def trainer(self) -> Trainer:
        """The :class:`~genarch.training.Trainer` running the steps (for ``evaluate`` and
        checkpoints; training through it directly bypasses DP-SGD)."""
        return self._trainer

    @property
    def step_count(self) -> int:
        """Steps taken so far (each one accounted)."""
        return self._trainer.step_count

    @property
    def noise_multiplier(self) -> float | None:
        """The noise multiplier (``None`` until ``fit`` has chosen it for ``target_epsilon``)."""
        return self._noise_multiplier

    @property
    def sample_rate(self) -> float | None:
        """``batch_size / N`` (``None`` until ``fit`` has seen the data)."""
        return None if self._examples is None else self._requested.batch_size / self._examples

    # ------------------------------------------------------------------ accounting

    def epsilon(self, steps: int | None = None) -> float:
        """ε at ``delta`` after ``steps`` steps (default: the steps taken so far).

        Opacus's accountant for ``steps`` steps of the sampled Gaussian
        mechanism at this run's noise multiplier and sample rate (its history
        holds exactly what ``steps`` calls of ``accountant.step`` leave there).

        Raises:
            ConfigError: ``fit`` has not yet seen the data (the sample rate is unknown).
            InvalidInputError: ``steps`` is negative.
        """
        steps = self.step_count if steps is None else steps
        if not isinstance(steps, int) or steps < 0:
            raise InvalidInputError(f"steps must be an int >= 0, got {steps!r}")
        rate, sigma = self.sample_rate, self._noise_multiplier
        if rate is None or sigma is None:
            raise ConfigError("epsilon is known once fit has seen the training data")
        if steps == 0:
            return 0.0
        if sigma == 0:
            return math.inf
        if steps not in self._epsilons:
            from opacus.accountants import create_accountant  # type: ignore[import-untyped]

            accountant = create_accountant(self._privacy.accountant)
            accountant.history = [(sigma, rate, steps)]
            self._epsilons[steps] = float(accountant.get_epsilon(delta=self._privacy.delta))
        return self._epsilons[steps]

    # ----------------------------------------------------------------------- the run

    def evaluate(self, data: object, *, collate: Callable[[list[Any]], Any] | None = None) -> float:
        """Mean loss over ``data`` (see :meth:`Trainer.evaluate <genarch.training.Trainer.evaluate>`)."""
        return self._trainer.evaluate(data, collate=collate)

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
    ) -> DPTrainingReport:
        """Train with DP-SGD to ``max_steps`` (or ``until_step``); the arguments are the
        :meth:`Trainer.fit <genarch.training.Trainer.fit>` ones.

        Every fit of one ``DPTrainer`` must use training data of the same size
        (the sample rate of the accounting); resuming from ``checkpoint_dir``
        needs the privacy settings the checkpoints were made with.

        Raises:
            InvalidInputError: the data is unusable, smaller than one batch, of
                another size than before, or ``delta >= 1 / N``.
            ConfigError: under torch.distributed with several processes, or
                resuming checkpoints made with other privacy settings.
            TrainingError: too many non-finite losses.
        """
        from opacus.grad_sample import GradSampleHooks  # type: ignore[import-untyped]

        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            raise ConfigError("DPTrainer runs in one process; distributed DP-SGD is not supported")
        examples = len(IndexedData(train_data, collate))
        batch_size, delta = self._requested.batch_size, self._privacy.delta
        if examples < batch_size:
            raise InvalidInputError(
                f"the training data has {examples} examples, fewer than batch_size {batch_size}"
            )
        if self._examples is not None and examples != self._examples:
            raise InvalidInputError(
                f"this DP run samples from {self._examples} examples (its sample rate), "
                f"got training data of {examples}; start a new DPTrainer for other data"
            )
        if delta >= 1 / examples:
            raise InvalidInputError(
                f"delta ({delta:g}) must be below 1/N = 1/{examples} for N training examples "
                "(a larger delta allows releasing a record in the clear)"
            )
        self._examples = examples
        rate = batch_size / examples
        if self._noise_multiplier is None:
            from opacus.accountants.utils import get_noise_multiplier  # type: ignore[import-untyped]

            assert self._privacy.target_epsilon is not None  # the config guarantees one of two
            self._noise_multiplier = float(
                get_noise_multiplier(
                    target_epsilon=self._privacy.target_epsilon,
                    target_delta=delta,
                    sample_rate=rate,
                    steps=self._requested.max_steps,
                    accountant=self._privacy.accountant,
                )
            )
            logger.info(
                "noise multiplier %.4f gives epsilon <= %g at delta %g after %d steps",
                self._noise_multiplier,
                self._privacy.target_epsilon,
                delta,
                self._requested.max_steps,
            )
        for optimizer in self._optimizers:
            optimizer.noise_multiplier = self._noise_multiplier
        self._record_settings(resume)
        hooks = GradSampleHooks(self._model, batch_first=True, loss_reduction="mean", strict=True)
        try:
            training = self._trainer.fit(
                train_data,
                eval_data,
                until_step=until_step,
                resume=resume,
                collate=collate,
                on_step_end=on_step_end,
                on_eval_end=on_eval_end,
                on_checkpoint=on_checkpoint,
            )
        finally:  # the model leaves as it came: no hooks, no per-example gradients
            hooks.cleanup()
            for parameter in self._model.parameters():
                if hasattr(parameter, "summed_grad"):
                    del parameter.summed_grad
        per_epoch = examples // batch_size
        marks = sorted({*range(per_epoch, training.steps + 1, per_epoch), training.steps} - {0})
        return DPTrainingReport(
            training=training,
            epsilon=self.epsilon(training.steps),
            delta=delta,
            epsilon_by_epoch=tuple((step, self.epsilon(step)) for step in marks),
            noise_multiplier=self._noise_multiplier,
            sample_rate=rate,
            max_grad_norm=self._privacy.max_grad_norm,
            accountant=self._privacy.accountant,
            steps=training.steps,
        )

    # ------------------------------------------------- the three parts the Trainer calls

    def _private_optimizer(
        self, player: str, parameters: list[torch.nn.Parameter]
    ) -> torch.optim.Optimizer:
        """The config's update rule inside Opacus's DPOptimizer (clip, sum, noise, scale)."""
        from opacus.optimizers import DPOptimizer  # type: ignore[import-untyped]

        base = self._requested.optimizer.factory()(player, parameters)
        optimizer = DPOptimizer(
            base,
            noise_multiplier=self._noise_multiplier or 0.0,  # set by fit before the first step
            max_grad_norm=self._privacy.max_grad_norm,
            expected_batch_size=self._requested.batch_size,
            loss_reduction="mean",
            generator=self._noise_generator,
        )
        self._optimizers.append(optimizer)
        return optimizer  # type: ignore[no-any-return]

    def _poisson_batch(self, step: int, examples: int) -> torch.Tensor:
        """Step ``step``'s Poisson sample; it also seeds the noise of this step's update."""
        from opacus.utils.uniform_sampler import (  # type: ignore[import-untyped]
            UniformWithReplacementSampler,
        )

        # Both streams are a function of (secret, step) only, so a resumed run
        # draws exactly what the uninterrupted run would have drawn.
        self._sampling_generator.manual_seed(_mix(self._secret, step, 0))
        self._noise_generator.manual_seed(_mix(self._secret, step, 1))
        sampler = UniformWithReplacementSampler(
            num_samples=examples,
            sample_rate=self._requested.batch_size / examples,
            generator=self._sampling_generator,
            steps=1,
        )
        return torch.tensor(next(iter(sampler)), dtype=torch.long)

    def _epsilon_metrics(self, report: StepReport) -> Mapping[str, float]:
        """``privacy/epsilon`` at the end of every epoch and of the run."""
        assert self._examples is not None  # fit sets it before the first step
        per_epoch = self._examples // self._requested.batch_size
        if report.step % per_epoch and report.step != self._requested.max_steps:
            return {}
        epsilon = self.epsilon(report.step)
        logger.info("step %d: epsilon %.4g at delta %g", report.step, epsilon, self._privacy.delta)
        return {"privacy/epsilon": epsilon}

    def _record_settings(self, resume: bool) -> None:
        """Keep the accounted settings beside the checkpoints; refuse to resume with others."""
        directory = self._requested.checkpoint_dir
        if directory is None:
            return
        settings = {
            "noise_multiplier": self._noise_multiplier,
            "sample_rate": self.sample_rate,
            "max_grad_norm": self._privacy.max_grad_norm,
            "delta": self._privacy.delta,
            "accountant": self._privacy.accountant,
        }
        path = Path(directory) / PRIVACY_FILE
        resuming = resume and CheckpointManager(directory).latest() is not None
        if resuming and path.is_file():
            saved = json.loads(path.read_text(encoding="utf-8"))
            changed = sorted(key for key, value in settings.items() if saved.get(key) != value)
            if changed:
                raise ConfigError(
                    f"the checkpoints in {directory} were trained with other privacy settings "
                    f"({', '.join(f'{k}: {saved.get(k)!r} then, {settings[k]!r} now' for k in changed)}); "
                    "resuming would misreport epsilon. Use the same settings, or resume=False "
                    "with a new checkpoint_dir"
                )
        Path(directory).mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(settings, indent=2) + "\n")
