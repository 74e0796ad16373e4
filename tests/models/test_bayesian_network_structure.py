"""Structure learning: hill climbing (BIC / BDeu, tabu, lists, in-degree) and the Chow-Liu tree."""

from __future__ import annotations

import itertools
import math
from functools import cache

import numpy as np
import pytest

from genarch.errors import InvalidInputError
from genarch.models.bayes import BayesianNetwork, BayesianNetworkConfig, chow_liu, hill_climb
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
    truth = asia().config
    assert len(skeleton(learned) ^ skeleton(truth)) <= 1  # asia -> tub is weak: P(asia) = 0.01
    assert v_structures(learned) == v_structures(truth)


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
    first = hill_climb(rows, states=states, score="bdeu", estimator="mle")
    assert first == hill_climb(rows, states=states, score="bdeu", estimator="mle")
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
        (lambda rows: hill_climb([{"a": 1.5}]), "not a str state"),
        (lambda rows: chow_liu(rows, root="nope"), "unknown root"),
        (lambda rows: chow_liu([{"a": None}]), "no values"),
    ],
)
def test_bad_structure_learning_input_is_refused(call: object, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        call(list(asia_rows())[:200])  # type: ignore[operator]
