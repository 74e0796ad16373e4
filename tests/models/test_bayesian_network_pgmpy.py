"""BayesianNetwork against pgmpy, the reference Python library: inference, BIF, CPDAG, structure."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pytest

from genarch.models.bayes import (
    BayesianNetwork,
    format_bif,
    hill_climb,
    random_network,
    read_bif,
    structural_hamming_distance,
    to_cpdag,
)
from models.bayes_testing import asia, pgmpy_posterior, random_queries, to_pgmpy

pytest.importorskip("pgmpy", reason="pgmpy (the dev extra) is the reference implementation")
with warnings.catch_warnings():  # pgmpy 1.1 warns about its own deprecated modules on import
    warnings.simplefilter("ignore", FutureWarning)
    from pgmpy.inference import VariableElimination

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning")
logging.getLogger("pgmpy").setLevel(logging.ERROR)


def assert_same_answer(
    net: BayesianNetwork, engine: object, query: list[str], evidence: dict[str, str]
) -> None:
    theirs, states = pgmpy_posterior(engine, query, evidence)
    order = [[states[v].index(s) for s in net.states(v)] for v in query]  # pgmpy's order -> ours
    np.testing.assert_allclose(
        net.query(query, evidence).probabilities, theirs[np.ix_(*order)], atol=1e-9, rtol=0
    )


# ------------------------------------------------------------------ variable elimination


def test_variable_elimination_equals_pgmpy_on_asia_for_every_single_evidence() -> None:
    net = asia()
    model = VariableElimination(to_pgmpy(net))
    names = list(net.variables)
    for target in names:
        assert_same_answer(net, model, [target], {})
        for observed in (n for n in names if n != target):
            for state in net.states(observed):  # every single state of asia is possible
                assert_same_answer(net, model, [target], {observed: state})


@pytest.mark.parametrize(("seed", "size"), [(0, 20), (1, 35), (2, 50)])
def test_variable_elimination_equals_pgmpy_on_random_networks(seed: int, size: int) -> None:
    net = random_network(size, max_parents=3, seed=seed)
    model = VariableElimination(to_pgmpy(net))
    for query, evidence in random_queries(net, 15, seed):
        assert_same_answer(net, model, query, evidence)


def test_joint_queries_with_evidence_equal_pgmpy_on_asia() -> None:
    net = asia()
    model = VariableElimination(to_pgmpy(net))
    for query, evidence in random_queries(net, 25, 7):
        assert_same_answer(net, model, query, evidence)


# ------------------------------------------------------------------ BIF both ways


def assert_equal_models(ours: BayesianNetwork, model: object) -> None:
    """pgmpy's model has our variables, states, parents and tables."""
    assert set(model.nodes()) == set(ours.variables)  # type: ignore[attr-defined]
    for name in ours.variables:
        cpd = model.get_cpds(name)  # type: ignore[attr-defined]
        assert tuple(cpd.variables[1:]) == ours.parents(name)
        assert tuple(cpd.state_names[name]) == ours.states(name)
        for parent in ours.parents(name):
            assert tuple(cpd.state_names[parent]) == ours.states(parent)
        table = ours.cpt(name)  # (*parents, own) vs pgmpy's (own, *parents)
        np.testing.assert_allclose(
            np.moveaxis(table, -1, 0),
            cpd.get_values().reshape((table.shape[-1], *table.shape[:-1])),
            atol=1e-15,
            rtol=0,
        )


def test_bif_written_by_genarch_is_read_by_pgmpy_into_an_equal_model() -> None:
    from pgmpy.readwrite import BIFReader

    # one network (pgmpy's parser takes seconds): 2 and 3 states, up to 3 parents
    net = random_network(12, max_parents=3, max_states=3, seed=4)
    assert max(len(net.parents(v)) for v in net.variables) == 3
    model = BIFReader(string=format_bif(net, name="net")).get_model()
    assert_equal_models(net, model)
    model = VariableElimination(model)
    assert_same_answer(
        net, model, [net.variables[0]], {net.variables[-1]: net.states(net.variables[-1])[0]}
    )


@pytest.mark.parametrize("make", [asia, lambda: random_network(15, seed=5)], ids=["asia", "random"])
def test_bif_written_by_pgmpy_is_read_by_genarch(make: object, tmp_path: Path) -> None:
    from pgmpy.readwrite import BIFWriter

    net = make()  # type: ignore[operator]
    BIFWriter(to_pgmpy(net)).write_bif(str(tmp_path / "net.bif"))
    back = read_bif(tmp_path / "net.bif")
    assert set(back.variables) == set(net.variables)
    for name in net.variables:
        assert back.parents(name) == net.parents(name)
        assert back.states(name) == net.states(name)
        np.testing.assert_allclose(back.cpt(name), net.cpt(name), atol=1e-12, rtol=0)


# ------------------------------------------------------------------ CPDAG and structure learning


@pytest.mark.parametrize("seed", range(10))
def test_the_cpdag_equals_pgmpys(seed: int) -> None:
    from pgmpy.base import DAG

    net = random_network(25, max_parents=3, seed=seed)
    dag = DAG([(p, v) for v in net.variables for p in net.parents(v)])
    dag.add_nodes_from(net.variables)
    theirs = dag.to_pdag()
    ours = to_cpdag(net)
    assert ours.directed == set(theirs.directed_edges)
    assert ours.undirected == {(min(a, b), max(a, b)) for a, b in theirs.undirected_edges}


def test_hill_climbing_is_no_worse_than_pgmpys_with_the_same_score() -> None:
    pandas = pytest.importorskip("pandas")
    from pgmpy.estimators import HillClimbSearch

    # 12 nodes and 1,000 rows keep pgmpy's search to a few seconds; the benchmark runs 30 x 10,000
    truth = random_network(12, max_parents=2, seed=0)
    rows = truth.sample(1000, seed=1)
    ours = hill_climb(rows, states={n: truth.states(n) for n in truth.variables}, score="bic")
    dag = HillClimbSearch(pandas.DataFrame(rows)).estimate(
        scoring_method="bic-d", show_progress=False
    )
    theirs = {n: list(dag.predecessors(n)) if n in dag.nodes else [] for n in truth.variables}
    assert structural_hamming_distance(ours, truth) <= structural_hamming_distance(theirs, truth)
