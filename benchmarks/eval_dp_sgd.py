"""Utility against privacy: digits test accuracy of DP-SGD runs at several ε.

The digits classifier (:class:`genarch.models.image_eval.DigitClassifier`, a
small CNN) is trained on scikit-learn's 8x8 digits (1,438 training images) with
:class:`genarch.privacy.dp_sgd.DPTrainer` for each target ε at δ = 1e-5 — the
noise multiplier is chosen by Opacus for the run's steps — and, as the ε = ∞
rows, once with per-example clipping but no noise and once with the ordinary
:class:`~genarch.training.Trainer`. Every run has the same steps, expected batch
size, learning rate and seed (the noise and the sampling are seeded too, for
reproducible figures; a private run leaves ``noise_seed`` unset); the held-out
accuracy is on the 359 test images.
The hyper-parameters are not tuned per ε (DP-SGD usually gains from a larger
batch and learning rate), so read the table as one setting, not a best case.

Usage: ``python benchmarks/eval_dp_sgd.py [--quick] [--steps N] [--seeds K]
[--epsilons 1,2,4,8] [--accountant prv|rdp]``. The last line printed is one
JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time
import warnings
from typing import Any

import torch
from _timing import version

from genarch.data.digits import DigitSplits, load_digits
from genarch.models.image_eval import ClassificationObjective, DigitClassifier, classifier_accuracy
from genarch.privacy.dp_sgd import DPConfig, DPTrainer
from genarch.training import Trainer

DELTA = 1e-5


def run(
    digits: DigitSplits,
    privacy: DPConfig | None,
    *,
    steps: int,
    batch_size: int,
    learning_rate: float,
    width: int,
    seed: int,
) -> dict[str, Any]:
    """Train one classifier (DP-SGD when ``privacy`` is given) and measure it."""
    torch.manual_seed(seed)
    model = DigitClassifier(width=width)
    objective = ClassificationObjective(model)
    options: dict[str, Any] = {
        "max_steps": steps,
        "batch_size": batch_size,
        "optimizer": {"learning_rate": learning_rate},
        "seed": seed,
        "progress": False,
    }
    started = time.perf_counter()
    if privacy is None:
        Trainer(objective, **options).fit(digits.train.as_batch())
        epsilon, sigma = math.inf, 0.0
    else:
        fixed = privacy.model_copy(update={"noise_seed": seed})  # reproducible figures
        report = DPTrainer(objective, privacy=fixed, **options).fit(digits.train.as_batch())
        epsilon, sigma = report.epsilon, report.noise_multiplier
    return {
        "epsilon": epsilon,
        "noise_multiplier": sigma,
        "accuracy": classifier_accuracy(model.eval(), digits.test),
        "seconds": time.perf_counter() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="150 steps, one seed")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=1e-2)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--epsilons", default="1,2,4,8")
    parser.add_argument("--accountant", choices=["prv", "rdp"], default="prv")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    steps, seeds = (150, 1) if args.quick else (args.steps, args.seeds)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning)  # Opacus's hook and RDP-order notes
    print(
        f"torch {torch.__version__}, opacus {version('opacus')}, python "
        f"{platform.python_version()}, threads {args.threads}; {steps} steps, expected batch "
        f"{args.batch_size}, learning rate {args.learning_rate}, width {args.width}, "
        f"{seeds} seed(s), delta {DELTA:g}, accountant {args.accountant}"
    )
    digits = load_digits(seed=0)
    settings: list[tuple[str, float, DPConfig | None]] = [
        (
            f"{float(e):g}",
            float(e),
            DPConfig(target_epsilon=float(e), delta=DELTA, accountant=args.accountant),
        )
        for e in args.epsilons.split(",")
    ]
    settings += [
        ("inf (clip only)", math.inf, DPConfig(noise_multiplier=0.0, delta=DELTA)),
        ("inf (no DP)", math.inf, None),
    ]
    rows = []
    print(f"\n{'target eps':>16} {'eps spent':>10} {'sigma':>7} {'accuracy':>18} {'s/run':>7}")
    for label, target, privacy in settings:
        results = [
            run(
                digits,
                privacy,
                steps=steps,
                batch_size=args.batch_size,
                learning_rate=args.learning_rate,
                width=args.width,
                seed=seed,
            )
            for seed in range(seeds)
        ]
        accuracies = [r["accuracy"] for r in results]
        row = {
            "setting": label,
            "target_epsilon": target,
            "epsilon": results[0]["epsilon"],
            "noise_multiplier": results[0]["noise_multiplier"],
            "accuracy_mean": statistics.mean(accuracies),
            "accuracy_min": min(accuracies),
            "accuracy_max": max(accuracies),
            "seconds_per_run": statistics.mean(r["seconds"] for r in results),
        }
        rows.append(row)
        spread = f"{row['accuracy_min']:.3f}-{row['accuracy_max']:.3f}" if seeds > 1 else ""
        print(
            f"{label:>16} {row['epsilon']:>10.3f} {row['noise_multiplier']:>7.3f} "
            f"{row['accuracy_mean']:>7.3f} {spread:>10} {row['seconds_per_run']:>7.1f}",
            flush=True,
        )
    figures = {
        "benchmark": "eval_dp_sgd",
        "steps": steps,
        "seeds": seeds,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "width": args.width,
        "delta": DELTA,
        "accountant": args.accountant,
        "train_examples": len(digits.train),
        "test_examples": len(digits.test),
        "chance_accuracy": 0.1,
        "rows": [
            {k: ("inf" if isinstance(v, float) and math.isinf(v) else v) for k, v in row.items()}
            for row in rows
        ],
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
