"""Structure learning: hill climbing (BIC / BDeu, tabu, lists, in-degree) and the Chow-Liu tree."""

from __future__ import annotations

import itertools
import math
from functools import cache

import numpy as np
import pytest

from genarch.errors import InvalidInputError
from genarch.models.bayes import (
    BayesianNetwork,
    BayesianNetworkConfig,
    chow_liu,
    hill_climb,
    structural_hamming_distance,
    to_cpdag,
)
from genarch.models.bayes.structure import FamilyScore
from models.bayes_testing import asia, random_network, sprinkler


@cache
def asia_rows() -> tuple[dict[str, str], ...]:
    return tuple(asia().sample(10_000, seed=0))


def asia_states() -> dict[str, tuple[str, ...]]:
    net = asia()
    return {n: net.states(n) for n in net.variables}


def edges(config: BayesianNetworkConfig) -> set[tuple[str, str]]:
    return {(p, v.name) for v in config.variables for p in v.parents}


def skeleton(config: BayesianNetworkConfig) -> set[frozenset[str]]:
    return {frozenset(e) for e in edges(config)}


def v_structures(config: BayesianNetworkConfig) -> set[tuple[frozenset[str], str]]:
    links = skeleton(config)
    return {
        (frozenset((a, b)), v.name)
        for v in config.variables
        for a, b in itertools.combinations(v.parents, 2)
        if frozenset((a, b)) not in links
    }


def test_hill_climbing_with_bic_recovers_asia_up_to_markov_equivalence_within_one_edge() -> None:
    learned = hill_climb(list(asia_rows()), states=asia_states(), score="bic")
    assert structural_hamming_distance(learned, asia()) <= 1  # asia -> tub is weak: P(asia) = 0.01


def test_random_restarts_escape_the_trap_of_asias_deterministic_node() -> None:
    # `either` is a deterministic OR of tub and lung; on this sample the climb from the empty
    # graph settles on dysp <- tub, lung, bronc (CPDAG SHD 5); perturbed restarts get out.
    rows = asia().sample(10_000, seed=4)
    states = asia_states()
    names = list(states)
    codes = np.array([[states[n].index(r[n]) for n in names] for r in rows])
    family = FamilyScore(codes, [2] * len(names), "bic")

    def total(config: BayesianNetworkConfig) -> float:
        return sum(
            family(names.index(v.name), [names.index(p) for p in v.parents])
            for v in config.variables
        )

    plain = hill_climb(rows, states=states, score="bic")
    restarted = hill_climb(rows, states=states, score="bic", restarts=10, perturb=5, seed=0)
    assert structural_hamming_distance(plain, asia()) > 1
    assert structural_hamming_distance(restarted, asia()) <= 1
    assert total(restarted) > total(plain) + 1.0


# ------------------------------------------------------------------ CPDAG and SHD


def test_the_cpdag_of_asia_keeps_its_v_structures_and_what_meek_rule_1_compels() -> None:
    graph = to_cpdag(asia())
    assert graph.directed == {
        ("tub", "either"),
        ("lung", "either"),
        ("bronc", "dysp"),
        ("either", "dysp"),
        ("either", "xray"),  # R1: lung -> either -- xray, lung and xray not adjacent
    }
    assert graph.undirected == {("asia", "tub"), ("lung", "smoke"), ("bronc", "smoke")}
    assert graph.edge("either", "lung") == "<-"
    assert graph.edge("smoke", "lung") == "--"
    assert graph.edge("asia", "xray") is None


def test_meek_rules_two_and_three_orient_what_acyclicity_and_v_structures_compel() -> None:
    # R2: a -> b -> c with a -- c must be a -> c (else a cycle); here a -> b is compelled by
    # the v-structure a -> b <- d, and b -> c by R1 (d -> b -- c, d and c not adjacent).
    rule2 = to_cpdag({"a": [], "d": [], "b": ["a", "d"], "c": ["b", "a"]})
    assert rule2.edge("a", "c") == "->"
    # R3: the textbook kite a -- c1 -> b, a -- c2 -> b, a -- b, c1 and c2 not adjacent
    kite = to_cpdag({"a": [], "c1": ["a"], "c2": ["a"], "b": ["c1", "c2", "a"]})
    assert kite.edge("c1", "b") == "->"
    assert kite.edge("c2", "b") == "->"
    assert kite.edge("a", "b") == "->"
    assert kite.edge("a", "c1") == "--"


def test_markov_equivalent_dags_are_at_distance_zero_and_differences_count_per_pair() -> None:
    chain = {"a": [], "b": ["a"], "c": ["b"]}
    assert structural_hamming_distance(chain, {"a": ["b"], "b": [], "c": ["b"]}) == 0
    assert structural_hamming_distance(chain, {"a": [], "b": ["a", "c"], "c": []}) == 2
    assert structural_hamming_distance(chain, {"a": [], "b": ["a"], "c": []}) == 1  # missing
    assert structural_hamming_distance(chain, {"a": [], "b": ["a"], "c": ["b", "a"]}) == 1  # extra
    net = asia()
    assert structural_hamming_distance(net, net.config) == 0
    assert structural_hamming_distance(to_cpdag(net), net) == 0


@pytest.mark.parametrize(
    ("first", "second", "message"),
    [
        ({"a": ["b"], "b": ["a"]}, {"a": [], "b": []}, "cycle"),
        ({"a": ["z"]}, {"a": []}, "unknown parent 'z'"),
        ({"a": []}, {"b": []}, "same nodes"),
        ({"a": "b"}, {"a": []}, "list of parent names"),
        ([("a", "b")], {"a": []}, "mapping of node"),
    ],
)
def test_bad_graphs_are_refused_naming_the_problem(
    first: object, second: object, message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        structural_hamming_distance(first, second)  # type: ignore[arg-type]


@pytest.mark.parametrize("score", ["bic", "bdeu"])
def test_the_result_is_a_local_optimum_of_the_score(score: str) -> None:
    states = asia_states()
    learned = hill_climb(list(asia_rows()), states=states, score=score, max_non_improving=0)
    names = list(states)
    net = BayesianNetwork(learned)
    codes = np.array([[states[n].index(r[n]) for n in names] for r in asia_rows()])
    family = FamilyScore(codes, [len(states[n]) for n in names], score)  # type: ignore[arg-type]
    parents = [{names.index(p) for p in net.parents(n)} for n in names]
    for v, u in itertools.permutations(range(len(names)), 2):
        changed = parents[v] ^ {u}
        if u not in parents[v] and _creates_cycle(net, names[u], names[v]):
            continue
        assert family(v, changed) <= family(v, parents[v]) + 1e-9, (names[u], names[v])


def _creates_cycle(net: BayesianNetwork, parent: str, child: str) -> bool:
    """Whether ``child`` is an ancestor of ``parent`` (or the same)."""
    stack, seen = [parent], set()
    while stack:
        node = stack.pop()
        if node == child:
            return True
        seen.add(node)
        stack.extend(p for p in net.parents(node) if p not in seen)
    return False


def test_tabu_moves_escape_the_local_optimum_plain_hill_climbing_stops_in() -> None:
    truth = sprinkler()
    rows = truth.sample(5000, seed=1)[1:]
    names = list(truth.variables)
    codes = np.array([[truth.states(n).index(r[n]) for n in names] for r in rows])
    family = FamilyScore(codes, [2] * 4, "bic")

    def total(config: BayesianNetworkConfig) -> float:
        return sum(
            family(names.index(v.name), [names.index(p) for p in v.parents])
            for v in config.variables
        )

    plain = hill_climb(rows, score="bic", max_non_improving=0)
    tabu = hill_climb(rows, score="bic", max_non_improving=10)
    assert total(tabu) > total(plain) + 1.0
    assert total(tabu) == pytest.approx(total(truth.config), abs=1e-6)
    assert skeleton(tabu) == skeleton(truth.config)
    assert v_structures(tabu) == v_structures(truth.config)


def test_bic_and_bdeu_family_scores_match_their_formulas() -> None:
    codes = np.array([[0, 0], [0, 0], [0, 1], [1, 1], [1, 1], [1, 0], [1, 1]])
    family = FamilyScore(codes, [2, 2], "bic")
    counts = {(0, 0): 2, (0, 1): 1, (1, 0): 1, (1, 1): 3}  # (parent, child)
    loglik = sum(c * math.log(c / (3 if p == 0 else 4)) for (p, _), c in counts.items())
    assert family(1, [0]) == pytest.approx(loglik - 0.5 * math.log(7) * 2 * 1, abs=1e-12)
    bdeu = FamilyScore(codes, [2, 2], "bdeu", equivalent_sample_size=2.0)
    a_j, a_jk = 1.0, 0.5
    expected = sum(math.lgamma(a_j) - math.lgamma(a_j + total) for total in (3, 4)) + sum(
        math.lgamma(a_jk + c) - math.lgamma(a_jk) for c in counts.values()
    )
    assert bdeu(1, [0]) == pytest.approx(expected, abs=1e-12)


def test_black_list_white_list_and_max_indegree_are_obeyed() -> None:
    rows = list(asia_rows())
    learned = hill_climb(
        rows,
        states=asia_states(),
        black_list=[("lung", "either"), ("either", "lung")],
        white_list=[("asia", "tub")],
        max_indegree=1,
    )
    found = edges(learned)
    assert ("asia", "tub") in found
    assert not {("lung", "either"), ("either", "lung")} & found
    assert all(len(v.parents) <= 1 for v in learned.variables)


def test_hill_climbing_is_deterministic_and_returns_a_valid_config() -> None:
    truth = random_network(11, 12, max_parents=2)
    rows = truth.sample(3000, seed=2)
    states = {n: truth.states(n) for n in truth.variables}
    seeded = {"restarts": 1, "perturb": 3, "seed": 3}
    first = hill_climb(rows, states=states, score="bdeu", estimator="mle", **seeded)
    assert first == hill_climb(rows, states=states, score="bdeu", estimator="mle", **seeded)
    assert first.estimator == "mle"
    BayesianNetwork(first).fit(rows)  # a valid, acyclic structure


def test_chow_liu_recovers_a_chain_and_points_away_from_the_root() -> None:
    chain = BayesianNetwork(
        variables=[
            {"name": "a", "states": ["0", "1"]},
            {"name": "b", "states": ["0", "1"], "parents": ["a"]},
            {"name": "c", "states": ["0", "1"], "parents": ["b"]},
            {"name": "d", "states": ["0", "1"], "parents": ["c"]},
        ],
        cpts={
            "a": [0.5, 0.5],
            "b": [[0.9, 0.1], [0.2, 0.8]],
            "c": [[0.85, 0.15], [0.1, 0.9]],
            "d": [[0.9, 0.1], [0.25, 0.75]],
        },
    )
    tree = chow_liu(chain.sample(5000, seed=0), root="c")
    assert skeleton(tree) == skeleton(chain.config)
    assert edges(tree) == {("c", "b"), ("b", "a"), ("c", "d")}


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda rows: hill_climb([]), "no columns"),
        (lambda rows: hill_climb(rows, white_list=[("asia", "nope")]), "white_list"),
        (
            lambda rows: hill_climb(rows, white_list=[("asia", "tub"), ("tub", "asia")]),
            "cycle",
        ),
        (lambda rows: hill_climb(rows, max_indegree=-1), "max_indegree"),
        (lambda rows: hill_climb(rows, restarts=-1), "restarts must be an int >= 0"),
        (lambda rows: hill_climb([{"a": 1.5}]), "not a str state"),
        (lambda rows: chow_liu(rows, root="nope"), "unknown root"),
        (lambda rows: chow_liu([{"a": None}]), "no values"),
        (
            lambda rows: hill_climb([{"a": "x", "b": "p"}, {"a": "x", "b": "q"}]),
            "'a' has one value",
        ),
        (lambda rows: hill_climb([{"a": "x"}, {"a": float("nan")}]), "not a str state: float: nan"),
    ],
)
def test_bad_structure_learning_input_is_refused(call: object, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        call(list(asia_rows())[:200])  # type: ignore[operator]


def test_a_single_valued_column_is_learned_when_its_states_are_given() -> None:
    rows = [{"a": "x", "b": b} for b in "pq" * 10]
    learned = hill_climb(rows, states={"a": ["x", "y"], "b": ["p", "q"]})
    assert [v.parents for v in learned.variables] == [(), ()]
