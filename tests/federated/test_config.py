"""Bad input to federated_train is refused before anything runs (no Flower needed)."""

from __future__ import annotations

import sys

import pytest
import torch

from genarch.errors import ConfigError, InvalidInputError, MissingDependencyError
from genarch.federated import FederatedConfig, federated_train
from genarch.training import LanguageModeling

CLIENTS = [torch.zeros(4, 3, dtype=torch.long), torch.ones(4, 3, dtype=torch.long)]


def model() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Embedding(2, 4), torch.nn.Linear(4, 2))


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"rounds": 0}, "rounds"),
        ({"strategy": "fedprox", "proximal_mu": -0.1}, "proximal_mu"),
        ({"proximal_mu": 0.5}, "use strategy='fedprox'"),
        ({"local_epochs": 0}, "local_epochs"),
        ({"fraction_train": 0.0}, "fraction_train"),
        ({"dp_noise_multiplier": 1.0}, "dp_noise_multiplier and dp_clipping_norm"),
        ({"dp_noise_multiplier": 1.0, "dp_clipping_norm": 0.0}, "dp_clipping_norm"),
        ({"strategy": "fedsgd"}, "strategy"),
        ({"backend": "flower"}, "backend"),
        ({"round": 3}, "round"),  # a typo is an error, not a default
    ],
)
def test_bad_settings_raise_config_error(fields, match) -> None:
    with pytest.raises(ConfigError, match=match):
        federated_train(model, CLIENTS, objective=LanguageModeling, **fields)


def test_config_errors_are_invalid_input_errors() -> None:
    with pytest.raises(InvalidInputError):
        FederatedConfig(rounds=0)


def test_no_clients_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="at least one client dataset, got none"):
        federated_train(model, [], objective=LanguageModeling)


def test_a_client_without_data_is_refused() -> None:
    empty = torch.zeros(0, 3, dtype=torch.long)
    with pytest.raises(InvalidInputError, match="client 1's dataset holds no examples"):
        federated_train(model, [CLIENTS[0], empty], objective=LanguageModeling)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"client_datasets": "abc"}, "client_datasets as a sequence"),
        ({"model_factory": torch.nn.Linear(2, 2).weight}, "model_factory as a callable"),
        ({"objective": "lm"}, "objective as a callable"),
        ({"evaluate": 3}, "evaluate as a callable"),
    ],
)
def test_arguments_of_the_wrong_kind_are_refused(kwargs, match) -> None:
    arguments = {"model_factory": model, "client_datasets": CLIENTS, "objective": LanguageModeling}
    arguments.update(kwargs)
    factory, datasets = arguments.pop("model_factory"), arguments.pop("client_datasets")
    with pytest.raises(InvalidInputError, match=match):
        federated_train(factory, datasets, **arguments)


def test_missing_flower_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "flwr.app", None)  # import flwr.app now fails
    with pytest.raises(MissingDependencyError, match=r"pip install 'genarch\[federated\]'"):
        federated_train(model, CLIENTS, objective=LanguageModeling, rounds=1)
