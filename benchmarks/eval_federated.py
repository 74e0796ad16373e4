"""Accuracy against rounds: centralised training vs federated FedAvg and FedProx.

Usage::

    python benchmarks/eval_federated.py [--quick] [--rounds 20] [--clients 10] [--alpha 0.5]

Two tasks, each trained the same number of passes over the same data:

* **digits** — the small CNN of ``genarch.models.image_eval`` on scikit-learn's
  8x8 digits; clients get a Dirichlet(``alpha``) label-skewed split. Columns:
  centralised (one ``Trainer`` on all the training images, evaluated after
  every ``local_epochs`` epochs), FedAvg and FedProx on the skewed split,
  FedAvg on an IID split, FedAvg with central DP (client-side clipping).
  Figure: held-out accuracy.
* **tiny LM** — a small ``genarch.models.GPT`` on the Python docs (bytes as
  tokens), each client holding a contiguous run of topics. Figure: held-out
  next-token loss (nats per byte; a uniform guess is ln 256 = 5.55).

Clients run in this process, one after another. Prints a table per task; the
last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import platform
import time
from collections.abc import Callable
from typing import Any

import torch
from _timing import version

from genarch.data import python_docs
from genarch.data.digits import load_digits
from genarch.federated import (
    ClassificationMetrics,
    LanguageModelMetrics,
    dirichlet_label_split,
    federated_train,
    iid_split,
)
from genarch.models import GPT, GPTConfig
from genarch.models.image_eval import ClassificationObjective, DigitClassifier
from genarch.training import LanguageModeling, Trainer, token_blocks


def centralised(
    model_factory: Callable[[], torch.nn.Module],
    objective: Callable[[torch.nn.Module], Any],
    data: Any,
    size: int,
    evaluate: Callable[[torch.nn.Module], dict[str, float]],
    *,
    rounds: int,
    local_epochs: int,
    batch_size: int,
    learning_rate: float,
) -> tuple[list[dict[str, float]], float]:
    """Train on all the data at once; evaluate after each round's worth of epochs."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = model_factory()
    per_round = max(1, math.ceil(local_epochs * size / batch_size))
    trainer = Trainer(
        objective(model),
        max_steps=rounds * per_round,
        batch_size=batch_size,
        optimizer={"learning_rate": learning_rate},
        max_grad_norm=None,
        progress=False,
    )
    started = time.perf_counter()
    figures = [_evaluate(model, evaluate)]
    for r in range(1, rounds + 1):
        trainer.fit(data, until_step=r * per_round)
        figures.append(_evaluate(model, evaluate))
    return figures, time.perf_counter() - started


def _evaluate(
    model: torch.nn.Module, evaluate: Callable[[torch.nn.Module], dict[str, float]]
) -> dict[str, float]:
    model.eval()
    with torch.no_grad():
        figures = evaluate(model)
    model.train()
    return figures


def federated(name: str, runs: dict[str, Any], **kwargs: Any) -> None:
    started = time.perf_counter()
    result = federated_train(**kwargs)
    runs[name] = {
        "figures": [r.metrics for r in result.rounds],
        "train_loss": [r.train_loss for r in result.rounds],
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(f"  {name}: {runs[name]['seconds']} s", flush=True)


def table(title: str, metric: str, runs: dict[str, Any], rounds: int) -> dict[str, list[float]]:
    columns = {name: [f[metric] for f in run["figures"]] for name, run in runs.items()}
    print(f"\n{title} ({metric}) against rounds")
    print("round  " + "  ".join(f"{name:>14}" for name in columns))
    for r in range(rounds + 1):
        print(f"{r:>5}  " + "  ".join(f"{values[r]:>14.3f}" for values in columns.values()))
    return {name: [round(v, 4) for v in values] for name, values in columns.items()}


def digits_task(args: argparse.Namespace) -> dict[str, Any]:
    digits = load_digits(seed=0)
    train = digits.train
    held_out = ClassificationMetrics(digits.test.inputs, digits.test.labels)
    skewed = dirichlet_label_split(train.labels, args.clients, alpha=args.alpha, seed=args.seed)
    iid = iid_split(len(train), args.clients, seed=args.seed)
    model = functools.partial(DigitClassifier, width=16)
    common = {
        "model_factory": model,
        "objective": ClassificationObjective,
        "evaluate": held_out,
        "rounds": args.rounds,
        "local_epochs": args.local_epochs,
        "batch_size": 32,
        "optimizer": {"learning_rate": 0.01},
        "seed": args.seed,
    }

    def clients(parts: list[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(train.inputs[p], train.labels[p]) for p in parts]

    runs: dict[str, Any] = {}
    print(f"digits: {len(train)} training images over {args.clients} clients (alpha {args.alpha})")
    figures, seconds = centralised(
        model, ClassificationObjective, train.as_batch(), len(train), held_out,
        rounds=args.rounds, local_epochs=args.local_epochs, batch_size=32, learning_rate=0.01,
    )  # fmt: skip
    runs["centralised"] = {"figures": figures, "seconds": round(seconds, 1)}
    print(f"  centralised: {runs['centralised']['seconds']} s", flush=True)
    federated("fedavg", runs, client_datasets=clients(skewed), **common)
    federated("fedprox", runs, client_datasets=clients(skewed), strategy="fedprox",
              proximal_mu=args.mu, **common)  # fmt: skip
    federated("fedavg_iid", runs, client_datasets=clients(iid), **common)
    federated("fedavg_dp", runs, client_datasets=clients(skewed), dp_noise_multiplier=args.dp_noise,
              dp_clipping_norm=args.dp_clip, **common)  # fmt: skip
    accuracy = table("digits, held-out accuracy", "accuracy", runs, args.rounds)
    return {
        "accuracy": accuracy,
        "seconds": {k: v["seconds"] for k, v in runs.items()},
        "client_sizes": [len(p) for p in skewed],
        "test_images": len(digits.test),
    }


def language_task(args: argparse.Namespace) -> dict[str, Any]:
    documents = python_docs()

    def blocks(docs: list[Any]) -> torch.Tensor:
        return token_blocks(torch.tensor(list("".join(d.text for d in docs).encode())), 64)

    held_out = LanguageModelMetrics(blocks(documents[::10])[: 64 if args.quick else 256])
    training = [d for i, d in enumerate(documents) if i % 10]
    per_client = 64 if args.quick else 600
    share = len(training) // args.lm_clients
    client_data = [
        blocks(training[i * share : (i + 1) * share])[:per_client] for i in range(args.lm_clients)
    ]
    config = GPTConfig(
        vocab_size=256, context_length=64, n_layer=2, n_head=4, n_embd=64, dropout=0.0
    )
    model = functools.partial(GPT, config)
    common = {
        "model_factory": model,
        "objective": LanguageModeling,
        "evaluate": held_out,
        "rounds": args.rounds,
        "local_epochs": 1,
        "batch_size": 16,
        "optimizer": {"learning_rate": 3e-3},
        "seed": args.seed,
        "client_datasets": client_data,
    }
    runs: dict[str, Any] = {}
    print(f"\ntiny LM: {args.lm_clients} clients x {per_client} blocks of 64 bytes, by topic")
    everything = torch.cat(client_data)
    figures, seconds = centralised(
        model, LanguageModeling, everything, len(everything), held_out,
        rounds=args.rounds, local_epochs=1, batch_size=16, learning_rate=3e-3,
    )  # fmt: skip
    runs["centralised"] = {"figures": figures, "seconds": round(seconds, 1)}
    print(f"  centralised: {runs['centralised']['seconds']} s", flush=True)
    federated("fedavg", runs, **common)
    federated("fedprox", runs, strategy="fedprox", proximal_mu=args.mu, **common)
    loss = table("tiny LM, held-out loss", "loss", runs, args.rounds)
    return {"loss": loss, "seconds": {k: v["seconds"] for k, v in runs.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="3 rounds, small LM data: a smoke test"
    )
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--lm-clients", type=int, default=4)
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--local-epochs", type=int, default=1)
    parser.add_argument("--mu", type=float, default=0.01)
    parser.add_argument("--dp-noise", type=float, default=0.1)
    parser.add_argument("--dp-clip", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.quick:
        args.rounds = min(args.rounds, 3)
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, flwr {version('flwr')}, python {platform.python_version()}, "
        f"threads {args.threads}, rounds {args.rounds}"
    )
    started = time.perf_counter()
    figures = {
        "benchmark": "eval_federated",
        "quick": args.quick,
        "rounds": args.rounds,
        "clients": args.clients,
        "alpha": args.alpha,
        "local_epochs": args.local_epochs,
        "proximal_mu": args.mu,
        "dp": {"noise_multiplier": args.dp_noise, "clipping_norm": args.dp_clip},
        "threads": args.threads,
        "flwr": version("flwr"),
        "torch": torch.__version__,
        "digits": digits_task(args),
        "tiny_lm": language_task(args),
    }
    figures["wall_seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
