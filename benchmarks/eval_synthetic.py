"""Synthetic-data quality and disclosure, and PrivBayes utility against ε.

Usage::

    python benchmarks/eval_synthetic.py [--quick] [--seeds N]

Tables (all offline): scikit-learn's bundled *breast cancer* (569 rows, 30
numeric features, the diagnosis) and *wine* (178 rows, 13 numeric features,
3 cultivars), and a generated mixed table (integers, floats, text, bools with
known dependencies; 10,000 rows, 4,000 with ``--quick``). Each is split at
random in half: the synthesizer is fitted on one half (``real_train``), the
other is the holdout; the synthetic table has as many rows as ``real_train``.

Part 1 — :class:`~genarch.privacy.TabularSynthesizer` with hill climbing (BIC)
and with the Chow-Liu tree: TRTR and TSTR accuracy (random forest, 100 trees),
their ratio (goal ≥ 0.9), the distance membership-inference AUC (goal ≤ 0.6)
and the mean total-variation distance per column; means over ``--seeds``
random splits (min-max in brackets).

Part 2 — PrivBayes (``structure="privbayes"``, degree 2) at ε ∈ {0.1, 0.5, 1,
5, ∞}: TSTR and mean TVD. ε-DP needs public bounds for numeric columns. For the
generated table they are known by construction. For the scikit-learn tables
this script uses each feature's minimum and maximum over the *whole* data set,
widened by 5% — a stand-in for bounds a data owner would publish, and not
itself differentially private; the table says so.

The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.datasets import load_breast_cancer, load_wine

import genarch
from genarch.privacy import SyntheticDataReport, TabularSynthesizer, evaluate_synthetic

EPSILONS: tuple[float | None, ...] = (0.1, 0.5, 1.0, 5.0, None)

Table = dict[str, Any]


def sklearn_table(
    loader: Callable[[], Any], target: str
) -> tuple[Table, dict[str, tuple[float, float]]]:
    data = loader()
    columns: Table = {f"f{i}": data.data[:, i] for i in range(data.data.shape[1])}
    columns[target] = data.target
    bounds = {}
    for name, values in columns.items():
        if name != target:
            low, high = float(values.min()), float(values.max())
            margin = 0.05 * (high - low)
            bounds[name] = (low - margin, high + margin)
    return columns, bounds


def generated_table(num_rows: int, seed: int = 0) -> Table:
    """age -> income, age -> smoker -> sick, (smoker, sick) -> visits; region independent."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 90, num_rows)
    income = np.clip(np.exp(rng.normal(9.0 + 0.02 * age, 0.3)), 0, 199_999)
    smoker = np.where(rng.random(num_rows) < np.where(age < 40, 0.6, 0.15), "yes", "no")
    sick = rng.random(num_rows) < np.where(smoker == "yes", 0.7, 0.1) + 0.002 * (age - 18)
    visits = rng.poisson(np.where(sick, 4.0, 1.0) + (smoker == "yes"))
    region = rng.choice(np.array(["north", "south", "east", "west"]), num_rows)
    return {
        "age": age,
        "income": income,
        "smoker": smoker,
        "sick": sick,
        "visits": np.minimum(visits, 15),
        "region": region,
    }


GENERATED_DOMAIN: dict[str, Any] = {
    "bounds": {"age": (18.0, 90.0), "income": (0.0, 200_000.0), "visits": (0.0, 15.0)},
    "categories": {
        "smoker": ("no", "yes"),
        "sick": (False, True),
        "region": ("east", "north", "south", "west"),
    },
}


def split(table: Table, seed: int) -> tuple[Table, Table]:
    rows = len(next(iter(table.values())))
    order = np.random.default_rng(seed).permutation(rows)
    half = rows // 2
    return (
        {k: v[order[:half]] for k, v in table.items()},
        {k: v[order[half:]] for k, v in table.items()},
    )


def run(
    synthesizer: TabularSynthesizer, train: Table, holdout: Table, target: str, seed: int
) -> tuple[SyntheticDataReport, float]:
    start = time.perf_counter()
    synthesizer.fit(train)
    fit_seconds = time.perf_counter() - start
    synthetic = synthesizer.sample(len(train[target]), seed=seed)
    return evaluate_synthetic(train, holdout, synthetic, target=target, seed=seed), fit_seconds


def spread(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "min": min(values), "max": max(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one split, a smaller generated table")
    parser.add_argument(
        "--seeds", type=int, default=None, help="random splits (default 3, 1 quick)"
    )
    args = parser.parse_args()
    seeds = args.seeds or (1 if args.quick else 3)
    print(
        f"genarch {genarch.__version__}, numpy {np.__version__}, python {platform.python_version()}, "
        f"{platform.machine()}; quick: {args.quick}, seeds: {seeds}"
    )
    cancer, cancer_bounds = sklearn_table(load_breast_cancer, "diagnosis")
    wine, wine_bounds = sklearn_table(load_wine, "cultivar")
    tables: dict[str, tuple[Table, str, dict[str, Any]]] = {
        "breast_cancer": (
            cancer, "diagnosis", {"bounds": cancer_bounds, "categories": {"diagnosis": (0, 1)}}
        ),
        "wine": (wine, "cultivar", {"bounds": wine_bounds, "categories": {"cultivar": (0, 1, 2)}}),
        "generated": (generated_table(4_000 if args.quick else 10_000), "sick", GENERATED_DOMAIN),
    }  # fmt: skip
    figures: dict[str, Any] = {"quick": args.quick, "seeds": seeds}

    print("\nPart 1: non-private synthesizers (bins=5, at most 2 parents)")
    print(
        f"{'table':14} {'structure':10} {'TRTR':>6} {'TSTR':>6} {'ratio':>6} {'MIA AUC':>8} {'mean TVD':>9} {'fit s':>6}"
    )
    part1: dict[str, Any] = {}
    for name, (table, target, _) in tables.items():
        categorical = (target,) if name != "generated" else ()
        for structure in ("hill_climb", "chow_liu"):
            results = []
            for seed in range(seeds):
                train, holdout = split(table, seed)
                synthesizer = TabularSynthesizer(
                    structure=structure, bins=5, categorical=categorical
                )
                results.append(run(synthesizer, train, holdout, target, seed))
            reports = [r for r, _ in results]
            entry = {
                "trtr": spread([r.trtr_accuracy or 0.0 for r in reports]),
                "tstr": spread([r.tstr_accuracy or 0.0 for r in reports]),
                "tstr_ratio": spread([r.tstr_ratio or 0.0 for r in reports]),
                "membership_auc": spread([r.membership_auc for r in reports]),
                "mean_tvd": spread([r.mean_tvd for r in reports]),
                "fit_seconds": spread([s for _, s in results]),
            }
            part1[f"{name}/{structure}"] = entry
            print(
                f"{name:14} {structure:10} {entry['trtr']['mean']:6.3f} {entry['tstr']['mean']:6.3f} "
                f"{entry['tstr_ratio']['mean']:6.3f} {entry['membership_auc']['mean']:8.3f} "
                f"{entry['mean_tvd']['mean']:9.3f} {entry['fit_seconds']['mean']:6.2f}"
                f"   ratio [{entry['tstr_ratio']['min']:.3f}, {entry['tstr_ratio']['max']:.3f}]"
                f" AUC [{entry['membership_auc']['min']:.3f}, {entry['membership_auc']['max']:.3f}]"
            )
    figures["synthesizers"] = part1

    print("\nPart 2: PrivBayes utility against epsilon (degree 2, bins=5; TSTR / mean TVD)")
    print("  (sklearn tables: bounds from the whole data set +5%, a stand-in for public bounds)")
    header = " ".join(f"{'inf' if e is None else e:>13}" for e in EPSILONS)
    print(f"{'table':14} {'TRTR':>6} {header}")
    part2: dict[str, Any] = {}
    for name, (table, target, domain) in tables.items():
        row: dict[str, Any] = {}
        trtr = []
        for epsilon in EPSILONS:
            tstr, tvd = [], []
            for seed in range(seeds):
                train, holdout = split(table, seed)
                synthesizer = TabularSynthesizer(
                    structure="privbayes", epsilon=epsilon, max_parents=2, bins=5, seed=seed,
                    **domain,
                )  # fmt: skip
                report, _ = run(synthesizer, train, holdout, target, seed)
                tstr.append(report.tstr_accuracy or 0.0)
                tvd.append(report.mean_tvd)
                trtr.append(report.trtr_accuracy or 0.0)
            row["inf" if epsilon is None else str(epsilon)] = {
                "tstr": spread(tstr),
                "mean_tvd": spread(tvd),
            }
        part2[name] = {"trtr": statistics.fmean(trtr), "by_epsilon": row}
        cells = " ".join(
            f"{v['tstr']['mean']:6.3f}/{v['mean_tvd']['mean']:.3f}" for v in row.values()
        )
        print(f"{name:14} {statistics.fmean(trtr):6.3f} {cells}")
    figures["privbayes"] = part2
    print()
    print(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    main()
