"""Federated runs at reduced size: they learn, repeat exactly, and wire FedProx and DP through Flower."""

from __future__ import annotations

import functools
import random

import numpy as np
import pytest
import torch

pytest.importorskip(
    "flwr", reason="the federated extra is not installed: pip install 'genarch[federated]'"
)
pytest.importorskip(
    "sklearn", reason="the digits need scikit-learn: pip install 'genarch[datasets]'"
)

from genarch.data import python_docs
from genarch.data.digits import load_digits
from genarch.federated import (
    ClassificationMetrics,
    LanguageModelMetrics,
    dirichlet_label_split,
    federated_train,
)
from genarch.federated.client import ProximalObjective
from genarch.models import GPT, GPTConfig
from genarch.models.image_eval import ClassificationObjective, DigitClassifier
from genarch.training import LanguageModeling, token_blocks

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL_CNN = functools.partial(DigitClassifier, width=8)


@pytest.fixture(scope="module")
def digits():
    return load_digits(seed=0)


@pytest.fixture(scope="module")
def skewed_clients(digits):
    parts = dirichlet_label_split(digits.train.labels, 4, alpha=0.5, seed=0)
    return [(digits.train.inputs[p], digits.train.labels[p]) for p in parts]


@pytest.fixture(scope="module")
def small_clients(skewed_clients):
    return [(x[:48], y[:48]) for x, y in skewed_clients[:2]]


def flat(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def test_fedavg_on_label_skewed_digits_learns_well_above_chance(digits, skewed_clients) -> None:
    result = federated_train(
        SMALL_CNN,
        skewed_clients,
        objective=ClassificationObjective,
        evaluate=ClassificationMetrics(digits.test.inputs, digits.test.labels),
        rounds=5,
        batch_size=32,
        optimizer={"learning_rate": 1e-2},
    )
    accuracy = result.metric("accuracy")
    assert [r for r, _ in accuracy] == [0, 1, 2, 3, 4, 5]
    assert accuracy[0][1] < 0.2  # the untrained model guesses (10 classes)
    assert accuracy[-1][1] > 0.5
    assert all(r.clients == 4 and r.train_loss is not None for r in result.rounds[1:])
    # the returned model is the global one
    final = ClassificationMetrics(digits.test.inputs, digits.test.labels)(result.model.eval())
    assert final["accuracy"] == pytest.approx(accuracy[-1][1])


def test_a_run_repeats_exactly_with_its_seed(small_clients) -> None:
    # Everything random: client sampling, local data order, DP noise.
    def run(seed: int) -> torch.Tensor:
        options = {
            "rounds": 2,
            "batch_size": 16,
            "seed": seed,
            "fraction_train": 0.5,
            "dp_noise_multiplier": 1.0,
            "dp_clipping_norm": 0.5,
        }
        return flat(
            federated_train(
                SMALL_CNN, small_clients, objective=ClassificationObjective, **options
            ).model
        )

    first = run(0)
    assert torch.equal(first, run(0))
    assert not torch.equal(first, run(1))


def test_fedprox_mu_reaches_the_clients_and_holds_them_near_the_global_model(small_clients) -> None:
    def drift(**options: object) -> float:
        result = federated_train(
            SMALL_CNN, small_clients, objective=ClassificationObjective, rounds=1, batch_size=16,
            optimizer={"learning_rate": 1e-2}, **options,
        )  # fmt: skip
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            start = flat(SMALL_CNN())
        return float((flat(result.model) - start).norm())

    assert drift(strategy="fedprox", proximal_mu=100.0) < 0.5 * drift(strategy="fedavg")


def test_proximal_term_is_half_mu_times_squared_distance_to_the_start() -> None:
    model = torch.nn.Linear(3, 2)
    inner = ClassificationObjective(model, shift=0)
    batch = (torch.randn(5, 3), torch.tensor([0, 1, 0, 1, 1]))
    proximal = ProximalObjective(inner, mu=0.4)
    assert torch.allclose(proximal.loss("classifier", batch), inner.loss("classifier", batch))
    with torch.no_grad():
        model.weight += 0.5  # 6 entries moved by 0.5: squared distance 1.5
    expected = inner.loss("classifier", batch) + 0.5 * 0.4 * 1.5
    assert torch.allclose(proximal.loss("classifier", batch), expected)


def test_client_side_clipping_bounds_each_rounds_update(small_clients) -> None:
    def update_norm(**options: object) -> float:
        result = federated_train(
            SMALL_CNN, small_clients, objective=ClassificationObjective, rounds=1, batch_size=16,
            optimizer={"learning_rate": 1e-2}, **options,
        )  # fmt: skip
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            start = flat(SMALL_CNN())
        return float((flat(result.model) - start).norm())

    assert update_norm() > 0.5
    # noise 0: the average of updates clipped to norm 0.05 has norm <= 0.05
    assert update_norm(dp_noise_multiplier=0.0, dp_clipping_norm=0.05) <= 0.05 + 1e-6
    noisy = update_norm(dp_noise_multiplier=1.0, dp_clipping_norm=0.05)
    assert noisy > 0.05  # Gaussian noise of std 0.025 on each of 35k weights


def test_a_tiny_gpt_learns_python_docs_split_by_topic() -> None:
    documents = python_docs()

    def blocks(docs: list) -> torch.Tensor:  # bytes as tokens: no tokenizer to train
        return token_blocks(torch.tensor(list("".join(d.text for d in docs).encode())), 32)

    held_out = blocks(documents[::10])[:64]
    training = [d for i, d in enumerate(documents) if i % 10]
    third = len(training) // 3  # contiguous runs of topics: each client reads about other things
    clients = [blocks(training[i * third : (i + 1) * third])[:96] for i in range(3)]
    config = GPTConfig(
        vocab_size=256, context_length=32, n_layer=1, n_head=2, n_embd=32, dropout=0.0
    )
    result = federated_train(
        functools.partial(GPT, config),
        clients,
        objective=LanguageModeling,
        evaluate=LanguageModelMetrics(held_out),
        rounds=3,
        batch_size=16,
        optimizer={"learning_rate": 1e-2},
    )
    losses = [loss for _, loss in result.metric("loss")]
    assert losses[0] > 5.0  # about ln 256: no better than a uniform guess over bytes
    assert losses[-1] < 4.0


def test_runs_are_quiet(small_clients, capfd: pytest.CaptureFixture[str]) -> None:
    federated_train(
        SMALL_CNN, small_clients, objective=ClassificationObjective, rounds=1, batch_size=16
    )
    out, err = capfd.readouterr()
    assert out == ""
    assert err == ""


def test_ray_backend_uses_the_running_ray_leaves_it_running_and_agrees(
    small_clients, local_ray
) -> None:
    options = {"rounds": 2, "batch_size": 16, "optimizer": {"learning_rate": 1e-2}}
    here = federated_train(SMALL_CNN, small_clients, objective=ClassificationObjective, **options)
    on_ray = federated_train(
        SMALL_CNN, small_clients, objective=ClassificationObjective, backend="ray", **options
    )
    assert local_ray.is_initialized()  # not shut down, unlike flwr.simulation.run_simulation
    # Ray workers run torch with another thread count: equal up to float rounding.
    assert torch.allclose(flat(on_ray.model), flat(here.model), atol=1e-4)
    assert [r.train_loss for r in on_ray.rounds[1:]] == pytest.approx(
        [r.train_loss for r in here.rounds[1:]], abs=1e-4
    )


def test_ray_backend_without_a_running_ray_says_how_to_start_one(
    small_clients, monkeypatch: pytest.MonkeyPatch
) -> None:
    ray = pytest.importorskip("ray")
    from genarch.errors import ConfigError

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    with pytest.raises(ConfigError, match=r"call ray.init\(\)"):
        federated_train(
            SMALL_CNN, small_clients, objective=ClassificationObjective, backend="ray", rounds=1
        )


def test_a_run_leaves_the_callers_random_streams_alone(small_clients) -> None:
    random.seed(5)
    np.random.seed(5)
    torch.manual_seed(5)
    federated_train(
        SMALL_CNN, small_clients, objective=ClassificationObjective, rounds=1, batch_size=16
    )
    drawn = (random.random(), float(np.random.random()), float(torch.rand(())))
    random.seed(5)
    np.random.seed(5)
    torch.manual_seed(5)
    assert drawn == (random.random(), float(np.random.random()), float(torch.rand(())))
