"""Discrete Bayesian networks: genarch's BayesianNetwork against pgmpy, side by side in one process.

Three workloads, each run by both libraries on the same network and data:

* **exact inference** — queries per second of variable elimination on the
  *asia* network (Lauritzen & Spiegelhalter 1988) and on a seeded 50-node
  random network: a fixed list of queries (one or two query variables, zero to
  four evidence variables with states taken from a forward sample, so every
  evidence has positive probability). genarch: ``BayesianNetwork.query``;
  pgmpy: ``VariableElimination(model).query`` (built once). The answers are
  compared (largest absolute difference).
* **structure learning** — seconds and structural Hamming distance (between
  CPDAGs, :func:`genarch.models.bayes.structural_hamming_distance`) to the true
  graph, learning from 10,000 rows of a seeded 30-node random network with BIC.
  genarch: ``hill_climb(rows, score="bic")`` from rows of state names;
  pgmpy: ``HillClimbSearch(frame).estimate(scoring_method="bic-d")`` from a
  pandas DataFrame of the same rows (default settings of both otherwise).
* **sampling** — rows per second of forward sampling from the 50-node network,
  state names out. genarch: ``BayesianNetwork.sample`` (a list of row dicts —
  building the dicts is most of its time) and ``BayesianNetwork.sample_columns``
  (one list per column, the like-for-like peer of a data frame); pgmpy:
  ``BayesianModelSampling(model).forward_sample`` (a pandas DataFrame).

Like for like: both libraries answer the same queries (the same query
variables, the same evidence) with the same output — the normalised joint
posterior table, an exact answer from variable elimination in each — and
sample the same number of rows of state names from the same network. Only the
library calls are timed: turning pgmpy's factors into our axis and state order
(to compare the answers) happens outside the timing. Neither keeps anything
from one query for the next: each prepares per network once (pgmpy's
``VariableElimination`` is built once; genarch keeps each variable's ancestors
and whether its CPT has zeros after first use), and every query prunes, orders
and eliminates afresh. pgmpy runs with its defaults
(``VariableElimination.query`` prunes the network and contracts with
opt_einsum's greedy path).

pgmpy gets the networks through BIF (``format_bif`` -> ``BIFReader``), the
exchange path the tests check. Timings alternate between the peers (after a
warm-up) and report the median of the repeats; ratios are pgmpy time / genarch
time (above 1: genarch is faster).

Run: ``python benchmarks/bench_bayesnet.py [--quick]``. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import genarch
from genarch.models.bayes import (
    BayesianNetwork,
    format_bif,
    hill_climb,
    parse_bif,
    random_network,
    structural_hamming_distance,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
# asia's published CPTs are test data (tests/models/bayes_testing.py)
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from _timing import alternate, version  # noqa: I001
from models.bayes_testing import ASIA_BIF, random_queries

logger = logging.getLogger("bench_bayesnet")


def pgmpy_model(net: BayesianNetwork) -> Any:
    from pgmpy.readwrite import BIFReader

    return BIFReader(string=format_bif(net)).get_model()


def inference(net: BayesianNetwork, count: int, repeats: int) -> dict[str, Any]:
    from pgmpy.inference import VariableElimination

    asked = random_queries(net, count, seed=1)
    engine = VariableElimination(pgmpy_model(net))

    def ours() -> list[Any]:
        return [net.query(q, e) for q, e in asked]

    def theirs() -> list[Any]:
        return [
            engine.query(q, evidence=e or None, joint=True, show_progress=False) for q, e in asked
        ]

    def table(factor: Any, q: list[str]) -> np.ndarray:
        """pgmpy's answer with our axis and state order (outside the timing)."""
        values = np.transpose(factor.values, [factor.variables.index(v) for v in q])
        order = [[list(factor.state_names[v]).index(s) for s in net.states(v)] for v in q]
        return np.asarray(values[np.ix_(*order)])

    error = max(
        float(np.abs(a.probabilities - table(b, q)).max())
        for a, b, (q, _) in zip(ours(), theirs(), asked, strict=True)
    )
    times = alternate({"genarch": ours, "pgmpy": theirs}, repeats)
    result: dict[str, Any] = {"queries": count, "max_abs_difference": error}
    for name, values in times.items():
        result[f"{name}_queries_per_s"] = round(count / statistics.median(values), 1)
    result["ratio_vs_pgmpy"] = round(
        statistics.median(times["pgmpy"]) / statistics.median(times["genarch"]), 2
    )
    return result


def structure(nodes: int, rows: int) -> dict[str, Any]:
    import pandas as pd
    from pgmpy.estimators import HillClimbSearch

    truth = random_network(nodes, max_parents=2, seed=2)
    data = truth.sample(rows, seed=3)
    frame = pd.DataFrame(data)
    result: dict[str, Any] = {"nodes": nodes, "rows": rows, "true_edges": _edges(truth)}
    runs: dict[str, Callable[[], dict[str, list[str]]]] = {
        "genarch": lambda: {
            v.name: list(v.parents) for v in hill_climb(data, score="bic").variables
        },
        "pgmpy": lambda: _parents(
            HillClimbSearch(frame).estimate(scoring_method="bic-d", show_progress=False),
            truth.variables,
        ),
    }
    for name, run in runs.items():  # one run each: the search is deterministic and slow
        start = time.perf_counter()
        learned = run()
        result[f"{name}_seconds"] = round(time.perf_counter() - start, 3)
        result[f"{name}_shd"] = structural_hamming_distance(learned, truth)
    result["speed_ratio_vs_pgmpy"] = round(result["pgmpy_seconds"] / result["genarch_seconds"], 2)
    return result


def _edges(net: BayesianNetwork) -> int:
    return sum(len(net.parents(v)) for v in net.variables)


def _parents(dag: Any, names: tuple[str, ...]) -> dict[str, list[str]]:
    return {n: sorted(dag.predecessors(n)) if n in dag.nodes else [] for n in names}


def sampling(net: BayesianNetwork, rows: int, repeats: int) -> dict[str, Any]:
    from pgmpy.sampling import BayesianModelSampling

    sampler = BayesianModelSampling(pgmpy_model(net))
    times = alternate(
        {
            "genarch": lambda: net.sample(rows, seed=0),
            "genarch_columns": lambda: net.sample_columns(rows, seed=0),
            "pgmpy": lambda: sampler.forward_sample(size=rows, seed=0, show_progress=False),
        },
        repeats,
    )
    result: dict[str, Any] = {"rows": rows}
    for name, values in times.items():
        result[f"{name}_rows_per_s"] = round(rows / statistics.median(values))
    pgmpy = statistics.median(times["pgmpy"])
    result["ratio_vs_pgmpy"] = round(pgmpy / statistics.median(times["genarch"]), 2)
    result["columns_ratio_vs_pgmpy"] = round(pgmpy / statistics.median(times["genarch_columns"]), 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fewer queries and rows, one repeat, 2,000 rows to learn",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    warnings.simplefilter("ignore")  # pgmpy's deprecation and progress chatter
    logging.getLogger("pgmpy").setLevel(logging.ERROR)
    count, repeats, learn_rows, sample_rows = (
        (30, 1, 2_000, 20_000) if args.quick else (200, 5, 10_000, 100_000)
    )
    logger.info(
        "genarch %s, pgmpy %s, numpy %s, Python %s on %s",
        genarch.__version__,
        version("pgmpy"),
        np.__version__,
        platform.python_version(),
        platform.processor() or platform.machine(),
    )
    asia = parse_bif(ASIA_BIF)
    big = random_network(50, max_parents=3, seed=0)
    results: dict[str, Any] = {"quick": args.quick, "pgmpy": version("pgmpy")}
    results["inference_asia"] = inference(asia, count, repeats)
    logger.info("exact inference, asia: %s", results["inference_asia"])
    results["inference_random50"] = inference(big, count, repeats)
    logger.info("exact inference, 50 nodes: %s", results["inference_random50"])
    results["sampling_random50"] = sampling(big, sample_rows, repeats)
    logger.info("forward sampling, 50 nodes: %s", results["sampling_random50"])
    results["structure_random30"] = structure(30, learn_rows)
    logger.info("structure learning, 30 nodes: %s", results["structure_random30"])
    print(json.dumps(results))


if __name__ == "__main__":
    main()
