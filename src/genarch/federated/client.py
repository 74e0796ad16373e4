"""What one simulated client does in a round: local training with genarch's Trainer.

A client receives the global weights, trains a copy of the model on its own
data for ``local_epochs`` with :class:`~genarch.training.Trainer` (a fresh
optimizer each round, the usual FedAvg client), and replies with its new
weights, how many examples it holds and its mean training loss. Under FedProx
the objective gains the proximal term ``mu / 2 * ||w - w_global||²`` (Li et
al., 2020, "Federated Optimization in Heterogeneous Networks"), which keeps a
client with skewed data from drifting far from the global model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import torch

from genarch.protocols import TrainingObjective
from genarch.training import IndexedData, OptimizerConfig, Trainer

if TYPE_CHECKING:
    from flwr.app import Context, Message
    from flwr.clientapp import ClientApp

__all__ = ["ClientTraining", "ProximalObjective", "build_client_app"]

ObjectiveFactory = Callable[[torch.nn.Module], TrainingObjective[Any]]


class ProximalObjective:
    """An objective plus FedProx's proximal term for every player.

    ``loss(player, batch) = objective.loss(player, batch) + mu / 2 * Σ ||p - p_anchor||²``
    over the player's trainable parameters, where the anchors are the global
    weights the round started from (copied when this object is made).

    Args:
        objective: the client's objective (its players are the model's modules).
        mu: weight of the proximal term (>= 0; 0 is the plain objective).
    """

    def __init__(self, objective: TrainingObjective[Any], mu: float) -> None:
        self.objective = objective
        self.mu = mu
        self._anchors = {
            name: [p.detach().clone() for p in module.parameters() if p.requires_grad]
            for name, module in objective.players().items()
        }
        counter = getattr(objective, "count_items", None)
        if callable(counter):
            self.count_items = counter

    def players(self) -> Mapping[str, torch.nn.Module]:
        """The wrapped objective's players."""
        return self.objective.players()

    def loss(self, player: str, batch: Any) -> torch.Tensor:
        """The wrapped loss plus the proximal term of ``player``."""
        loss = self.objective.loss(player, batch)
        parameters = [p for p in self.objective.players()[player].parameters() if p.requires_grad]
        drift = sum(
            (
                (p - anchor).square().sum()
                for p, anchor in zip(parameters, self._anchors[player], strict=True)
            ),
            torch.zeros((), device=loss.device),
        )
        return loss + 0.5 * self.mu * drift


@dataclass(frozen=True)
class ClientTraining:
    """Everything a client needs; shipped once to wherever clients run.

    Attributes:
        model_factory: builds the model (its weights are replaced by the global ones).
        objective: makes the training objective for a model.
        datasets: one training set per client, in any form the Trainer takes.
        local_epochs: passes over the client's data per round.
        batch_size: examples per local step (capped at the client's size).
        optimizer: the local update rule.
        max_grad_norm: gradient clipping in local steps (``None``: none).
        seed: base of every client's data order and in-step randomness.
        uniform_weights: report 1 example per client so the server averages
            uniformly (what central DP's sensitivity bound assumes).
    """

    model_factory: Callable[[], torch.nn.Module]
    objective: ObjectiveFactory
    datasets: Sequence[object]
    local_epochs: int
    batch_size: int
    optimizer: OptimizerConfig
    max_grad_norm: float | None
    seed: int
    uniform_weights: bool = False

    def train(
        self, partition: int, state: Mapping[str, torch.Tensor], server_round: int, mu: float
    ) -> tuple[dict[str, torch.Tensor], int, float]:
        """Train from ``state`` on client ``partition``'s data; new weights, examples, mean loss."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            model = self.model_factory()
        model.load_state_dict(state)
        model.train()
        data = self.datasets[partition]
        size = len(IndexedData(data))
        batch_size = min(self.batch_size, size)
        objective: TrainingObjective[Any] = self.objective(model)
        if mu > 0:
            objective = ProximalObjective(objective, mu)
        trainer = Trainer(
            objective,
            max_steps=max(1, math.ceil(self.local_epochs * size / batch_size)),
            batch_size=batch_size,
            optimizer=self.optimizer,
            max_grad_norm=self.max_grad_norm,
            seed=_client_seed(self.seed, server_round, partition),
            progress=False,
        )
        report = trainer.fit(data)
        loss = sum(report.train_loss) / len(report.train_loss)
        return {k: v.detach() for k, v in model.state_dict().items()}, size, loss


def _client_seed(seed: int, server_round: int, partition: int) -> int:
    return (seed * 1_000_003 + server_round * 10_007 + partition) % (2**31)


def build_client_app(training: ClientTraining, *, clip_updates: bool) -> ClientApp:
    """A Flower ``ClientApp`` whose ``train`` handler runs :meth:`ClientTraining.train`.

    Args:
        clip_updates: add Flower's ``fixedclipping_mod`` (client-side clipping of
            the update, for ``DifferentialPrivacyClientSideFixedClipping``).
    """
    from flwr.app import ArrayRecord, MetricRecord, RecordDict
    from flwr.app import Message as FlowerMessage
    from flwr.clientapp import ClientApp
    from flwr.clientapp.mod import fixedclipping_mod

    app = ClientApp()

    @app.train(mods=[fixedclipping_mod] if clip_updates else None)
    def train(message: Message, context: Context) -> Message:
        config = message.content.config_records["config"]
        state, size, loss = training.train(
            int(context.node_config["partition-id"]),
            message.content.array_records["arrays"].to_torch_state_dict(),
            int(cast(int, config["server-round"])),
            float(cast(float, config.get("proximal-mu", 0.0))),
        )
        metrics = MetricRecord(
            {
                "num-examples": 1 if training.uniform_weights else size,
                "examples": size,
                "train-loss": loss,
            }
        )
        return FlowerMessage(
            RecordDict({"arrays": ArrayRecord(state), "metrics": metrics}), reply_to=message
        )

    return app
