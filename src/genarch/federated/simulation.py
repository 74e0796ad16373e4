"""Federated training of any genarch torch model with Flower's strategies.

:func:`federated_train` runs the server side of Flower's message API —
``flwr.serverapp.strategy.FedAvg`` or ``FedProx``, optionally wrapped in
``DifferentialPrivacyClientSideFixedClipping`` — against simulated clients,
one per training set, whose ``ClientApp`` trains a copy of the model locally
with :class:`~genarch.training.Trainer`. Each round::

    sample clients (all, or fraction_train of them)
    each sampled client: global weights -> local_epochs of training -> new weights
    server: weighted average of the new weights (FedAvg / FedProx), + DP noise if asked
    server: evaluate(global model) -> this round's metrics

Where clients run is the ``backend``: ``"in-process"`` (one after another in
this process; deterministic) or ``"ray"`` (one Ray task per client and round on
the Ray the caller started). Not Flower's own simulation engine
(``flwr.simulation.run_simulation``): it reuses a running Ray but calls
``ray.shutdown()`` when it ends (``RayBackend.terminate``, Flower 1.42), which
would stop the caller's Ray; genarch delivers the strategy's messages to the
``ClientApp`` through its own small Flower ``Grid`` instead.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Self, cast

import numpy as np
import torch
from pydantic import Field, model_validator

from genarch.errors import InvalidInputError, missing_dependency
from genarch.federated._grid import flower_identity, make_grid
from genarch.federated.client import ClientTraining, ObjectiveFactory, build_client_app
from genarch.schemas import Config, Record
from genarch.training import IndexedData, OptimizerConfig
from genarch.validation import describe

__all__ = ["FederatedConfig", "FederatedResult", "RoundRecord", "federated_train"]

logger = logging.getLogger(__name__)

Evaluate = Callable[[torch.nn.Module], Mapping[str, float]]


class FederatedConfig(Config):
    """Every setting of a federated run.

    Attributes:
        strategy: ``"fedavg"`` (McMahan et al., 2017) or ``"fedprox"`` (Li et
            al., 2020: FedAvg plus a proximal term on the clients).
        rounds: server rounds (each: local training on the sampled clients, then averaging).
        local_epochs: passes over its own data each sampled client makes per round.
        batch_size: examples per local step (capped at a client's size).
        optimizer: the clients' local update rule (a fresh optimizer each round).
        max_grad_norm: clip gradients in local steps (``None``: no clipping).
        proximal_mu: FedProx's ``mu`` (>= 0); must stay 0 under ``"fedavg"``.
        fraction_train: share of clients sampled each round (at least one).
        dp_noise_multiplier: with ``dp_clipping_norm``, central DP through Flower:
            clients clip their update to ``dp_clipping_norm`` (``fixedclipping_mod``),
            the server adds Gaussian noise of std ``noise_multiplier * clipping_norm /
            sampled clients`` to the average, which is then unweighted
            (``DifferentialPrivacyClientSideFixedClipping``).
        dp_clipping_norm: the L2 bound of one client's update (> 0).
        backend: where clients run: ``"in-process"`` or ``"ray"`` (the caller's Ray).
        seed: the initial model, the client sampling, the clients' data order
            and in-step randomness, and the DP noise.
        flower_log_level: level of Flower's own ``"flwr"`` logger during the run
            (Flower logs every round at INFO).
    """

    strategy: Literal["fedavg", "fedprox"] = "fedavg"
    rounds: Annotated[int, Field(ge=1)] = 10
    local_epochs: Annotated[int, Field(ge=1)] = 1
    batch_size: Annotated[int, Field(ge=1)] = 32
    optimizer: OptimizerConfig = OptimizerConfig()
    max_grad_norm: Annotated[float, Field(gt=0)] | None = None
    proximal_mu: Annotated[float, Field(ge=0)] = 0.0
    fraction_train: Annotated[float, Field(gt=0, le=1)] = 1.0
    dp_noise_multiplier: Annotated[float, Field(ge=0)] | None = None
    dp_clipping_norm: Annotated[float, Field(gt=0)] | None = None
    backend: Literal["in-process", "ray"] = "in-process"
    seed: int = 0
    flower_log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "ERROR"

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.strategy == "fedavg" and self.proximal_mu != 0:
            raise ValueError(
                f"proximal_mu={self.proximal_mu} is FedProx's; use strategy='fedprox' or proximal_mu=0"
            )
        if (self.dp_noise_multiplier is None) != (self.dp_clipping_norm is None):
            raise ValueError("set both dp_noise_multiplier and dp_clipping_norm, or neither")
        return self

    @property
    def differential_privacy(self) -> bool:
        """Whether updates are clipped and noised (both DP fields set)."""
        return self.dp_clipping_norm is not None


class RoundRecord(Record):
    """What one round produced (round 0: the initial model, before any training).

    Attributes:
        round: 0 for the initial model, then 1..rounds.
        clients: clients whose update was averaged this round (0 in round 0).
        train_loss: mean local training loss of those clients, weighted like the
            average (``None`` in round 0).
        metrics: the ``evaluate`` callback's figures for the global model after
            the round (empty without one).
        seconds: wall time since the run started.
    """

    round: int
    clients: int
    train_loss: float | None
    metrics: dict[str, float]
    seconds: float


@dataclass(frozen=True)
class FederatedResult:
    """The outcome of :func:`federated_train`.

    Attributes:
        model: a model from ``model_factory`` holding the final global weights.
        rounds: one record per round, round 0 (the initial model) first.
        config: the settings of the run.
    """

    model: torch.nn.Module
    rounds: tuple[RoundRecord, ...]
    config: FederatedConfig

    def metric(self, name: str) -> list[tuple[int, float]]:
        """``(round, value)`` of one evaluation metric over the run.

        Raises:
            InvalidInputError: no round has that metric.
        """
        found = [(r.round, r.metrics[name]) for r in self.rounds if name in r.metrics]
        if not found:
            known = sorted({k for r in self.rounds for k in r.metrics})
            raise InvalidInputError(f"no round has metric {name!r}; metrics: {known}")
        return found


def federated_train(
    model_factory: Callable[[], torch.nn.Module],
    client_datasets: Sequence[object],
    *,
    objective: ObjectiveFactory,
    evaluate: Evaluate | None = None,
    config: FederatedConfig | None = None,
    **fields: Any,
) -> FederatedResult:
    """Train a model across simulated clients with Flower's FedAvg or FedProx.

    Args:
        model_factory: builds the model, e.g. ``lambda: GPT(config)``; called
            (under ``seed``) for the initial global model, and by clients for
            their local copy. For ``backend="ray"`` it must be picklable.
        client_datasets: one training set per client, each in a form
            :class:`~genarch.training.Trainer` takes (an ``(N, ...)`` tensor, a
            tuple of tensors, ...); see :func:`~genarch.federated.dirichlet_label_split`.
        objective: makes the training objective for a model, e.g.
            :class:`~genarch.training.LanguageModeling` or
            :class:`~genarch.models.image_eval.ClassificationObjective`.
        evaluate: called with the global model (in eval mode, without
            gradients) before training and after every round; returns named figures.
        config: a :class:`FederatedConfig`; keyword arguments are shorthand for its fields.

    Returns:
        The final global model and a :class:`RoundRecord` per round.

    Raises:
        ConfigError: a setting is out of range or inconsistent (``rounds < 1``,
            ``proximal_mu < 0``, ``backend="ray"`` without a running Ray, ...).
        InvalidInputError: no clients, a client without data, or a
            ``model_factory`` / ``objective`` / ``evaluate`` that is not callable.
        MissingDependencyError: Flower is not installed (``pip install 'genarch[federated]'``).

    Example:
        A runnable walk-through is the tutorial *Federated learning with Flower*
        (docs/tutorials/federated-learning.md), run by the docs tests.
    """
    cfg = FederatedConfig.resolve(config, fields)
    for name, value in (("model_factory", model_factory), ("objective", objective)):
        if not callable(value):
            raise InvalidInputError(
                f"federated_train expected {name} as a callable, got {describe(value)}"
            )
    if evaluate is not None and not callable(evaluate):
        raise InvalidInputError(
            f"federated_train expected evaluate as a callable or None, got {describe(evaluate)}"
        )
    if isinstance(client_datasets, str | bytes) or not isinstance(client_datasets, Sequence):
        raise InvalidInputError(
            f"federated_train expected client_datasets as a sequence of training sets, got {describe(client_datasets)}"
        )
    if len(client_datasets) == 0:
        raise InvalidInputError("federated_train expected at least one client dataset, got none")
    for index, data in enumerate(client_datasets):
        if len(IndexedData(data)) == 0:
            raise InvalidInputError(f"federated_train: client {index}'s dataset holds no examples")
    try:
        from flwr.app import ArrayRecord, MetricRecord
    except ImportError:
        raise missing_dependency("flwr", "federated", "federated_train") from None

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        global_model = model_factory()
    if not isinstance(global_model, torch.nn.Module):
        raise InvalidInputError(
            f"model_factory must return a torch.nn.Module, got {describe(global_model)}"
        )
    training = ClientTraining(
        model_factory=model_factory,
        objective=objective,
        datasets=list(client_datasets),
        local_epochs=cfg.local_epochs,
        batch_size=cfg.batch_size,
        optimizer=cfg.optimizer,
        max_grad_norm=cfg.max_grad_norm,
        seed=cfg.seed,
        uniform_weights=cfg.differential_privacy,
    )
    num_clients = len(client_datasets)
    sampled = max(1, int(num_clients * cfg.fraction_train))
    started = time.perf_counter()
    records: list[RoundRecord] = []

    def evaluate_global(server_round: int, arrays: Any) -> Any:
        global_model.load_state_dict(arrays.to_torch_state_dict())
        figures: dict[str, float] = {}
        if evaluate is not None:
            was_training = global_model.training
            global_model.eval()
            try:
                with torch.no_grad():
                    figures = {str(k): float(v) for k, v in evaluate(global_model).items()}
            finally:
                global_model.train(was_training)
        records.append(
            RoundRecord(
                round=server_round,
                clients=0,
                train_loss=None,
                metrics=figures,
                seconds=time.perf_counter() - started,
            )
        )
        values: dict[str, int | float | list[int] | list[float]] = dict(figures)
        return MetricRecord(values) if values else None

    app = build_client_app(training, clip_updates=cfg.differential_privacy)
    run_id = random.Random(cfg.seed).getrandbits(63)
    with _quiet_flower(cfg.flower_log_level), _seeded_globals(cfg.seed), flower_identity(run_id):
        strategy = _strategy(cfg, sampled)
        grid = make_grid(app, num_clients, run_id, cfg.backend)
        result = strategy.start(
            grid=grid,
            initial_arrays=ArrayRecord(global_model.state_dict()),
            num_rounds=cfg.rounds,
            evaluate_fn=evaluate_global,
        )
    global_model.load_state_dict(result.arrays.to_torch_state_dict())
    by_round = {r.round: r for r in records}
    rounds = [by_round[0]]
    for server_round in range(1, cfg.rounds + 1):
        train = result.train_metrics_clientapp.get(server_round)
        rounds.append(
            by_round[server_round].model_copy(
                update={
                    "clients": sampled if train is not None else 0,
                    "train_loss": None
                    if train is None
                    else float(cast(float, train["train-loss"])),
                }
            )
        )
    return FederatedResult(model=global_model, rounds=tuple(rounds), config=cfg)


def _strategy(cfg: FederatedConfig, sampled: int) -> Any:
    from flwr.serverapp.strategy import (
        DifferentialPrivacyClientSideFixedClipping,
        FedAvg,
        FedProx,
    )

    common: dict[str, Any] = {
        "fraction_train": cfg.fraction_train,
        "fraction_evaluate": 0.0,  # the server evaluates the global model (evaluate=)
        "min_train_nodes": sampled,
        "min_available_nodes": sampled,
    }
    strategy = (
        FedProx(proximal_mu=cfg.proximal_mu, **common)
        if cfg.strategy == "fedprox"
        else FedAvg(**common)
    )
    if cfg.dp_noise_multiplier is not None and cfg.dp_clipping_norm is not None:
        return DifferentialPrivacyClientSideFixedClipping(
            strategy,
            noise_multiplier=cfg.dp_noise_multiplier,
            clipping_norm=cfg.dp_clipping_norm,
            num_sampled_clients=sampled,
        )
    return strategy


@contextmanager
def _quiet_flower(level: str) -> Iterator[None]:
    """Flower logs each round at INFO on its own console handler: hold it at ``level``."""
    flower = logging.getLogger("flwr")
    saved = flower.level
    flower.setLevel(level)
    try:
        yield
    finally:
        flower.setLevel(saved)


@contextmanager
def _seeded_globals(seed: int) -> Iterator[None]:
    """Seed the global RNGs Flower draws from, and restore them afterwards.

    Flower samples clients with ``random.sample`` and draws DP noise from
    ``np.random.normal``; seeding both makes a run reproducible without
    changing the caller's random streams.
    """
    python_state, numpy_state = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
