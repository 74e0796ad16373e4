"""Federated learning with Flower (``pip install "genarch[federated]"``).

Train any genarch torch model across simulated clients that keep their data:

* :func:`federated_train` — FedAvg or FedProx (Flower's strategies), optional
  central DP through Flower's client-side fixed clipping, clients trained
  locally with :class:`~genarch.training.Trainer`, in this process or as tasks
  on the caller's Ray; returns the global model and one :class:`RoundRecord` a round.
* :func:`dirichlet_label_split` / :func:`iid_split` — seeded non-IID and IID
  partitions of a data set across clients.
* :class:`ClassificationMetrics` / :class:`LanguageModelMetrics` — held-out
  figures of the global model after each round.
* :class:`ProximalObjective` — FedProx's proximal term around any training objective.

Flower is imported only when a run starts; without it, :func:`federated_train`
raises :class:`~genarch.errors.MissingDependencyError` with the install hint.
"""

from genarch.federated.client import ProximalObjective
from genarch.federated.evaluation import ClassificationMetrics, LanguageModelMetrics
from genarch.federated.simulation import (
    FederatedConfig,
    FederatedResult,
    RoundRecord,
    federated_train,
)
from genarch.federated.splits import dirichlet_label_split, iid_split

__all__ = [
    "ClassificationMetrics",
    "FederatedConfig",
    "FederatedResult",
    "LanguageModelMetrics",
    "ProximalObjective",
    "RoundRecord",
    "dirichlet_label_split",
    "federated_train",
    "iid_split",
]
