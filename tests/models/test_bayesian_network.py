"""BayesianNetwork: construction checks, exact inference against enumeration, sampling, Generator."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genarch.errors import ConfigError, InvalidInputError
from genarch.models import bayes
from genarch.models.bayes import BayesianNetwork
from genarch.protocols import Fittable, Generator, ScoringGenerator, is_conditional
from genarch.schemas import TabularRequest, TabularResult
from genarch.testing import check_generator
from models.bayes_testing import (
    asia,
    brute_joint,
    brute_posterior,
    random_network,
    sprinkler,
)

TWO = {"name": "a", "states": ["x", "y"]}

# ------------------------------------------------------------------ construction


def test_a_cycle_is_refused_naming_a_node_on_it() -> None:
    with pytest.raises(ConfigError, match="cycle through variable '(a|b)'"):
        BayesianNetwork(
            variables=[
                {"name": "a", "states": ["x"], "parents": ["b"]},
                {"name": "b", "states": ["x"], "parents": ["a"]},
            ]
        )


def test_a_cpt_row_that_does_not_sum_to_one_is_refused_naming_the_node() -> None:
    with pytest.raises(InvalidInputError, match=r"CPT of 'a'.*sums to 0\.9"):
        BayesianNetwork(variables=[TWO], cpts={"a": [0.5, 0.4]})


def test_a_row_within_1e_9_of_one_is_accepted() -> None:
    net = BayesianNetwork(variables=[TWO], cpts={"a": [0.5, 0.5 + 5e-10]})
    assert net.cpt("a").shape == (2,)


@pytest.mark.parametrize(
    ("variables", "cpts", "message"),
    [
        ([TWO, {"name": "a", "states": ["z"]}], None, "'a' is declared twice"),
        ([{"name": "a", "states": ["x", "x"]}], None, "'a' repeats a state"),
        ([{"name": "a", "states": ["x"], "parents": ["nope"]}], None, "unknown parent 'nope'"),
        ([{"name": "a", "states": ["x"], "parents": ["a"]}], None, "itself"),
        ([TWO], {"a": [[0.5, 0.5]]}, r"CPT of 'a' must have shape \(2,\)"),
        ([TWO], {"a": [1.5, -0.5]}, "CPT of 'a' has a negative"),
        ([TWO], {"a": [float("nan"), 1.0]}, "CPT of 'a' has a negative or non-finite"),
        ([TWO], {"b": [0.5, 0.5]}, r"unknown variables \['b'\]"),
        ([], None, "variables"),
    ],
)
def test_bad_structures_and_tables_are_refused(
    variables: list[dict[str, object]], cpts: dict[str, object] | None, message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        BayesianNetwork(variables=variables, cpts=cpts)


def test_omitted_cpts_are_uniform_and_config_lists_the_structure() -> None:
    net = BayesianNetwork(
        variables=[TWO, {"name": "b", "states": ["p", "q", "r"], "parents": ["a"]}]
    )
    np.testing.assert_allclose(net.cpt("b"), np.full((2, 3), 1 / 3))
    assert net.parents("b") == ("a",)
    assert net.states("b") == ("p", "q", "r")
    assert BayesianNetwork.from_config(net.config.model_dump(mode="json")).config == net.config


# ------------------------------------------------------------------ inference


def test_sprinkler_posteriors_match_the_textbook() -> None:
    net = sprinkler()
    assert net.marginal("wet")["T"] == pytest.approx(0.6471, abs=5e-5)
    assert net.marginal("sprinkler", {"wet": "T"})["T"] == pytest.approx(0.4298, abs=5e-5)
    assert net.marginal("rain", {"wet": "T"})["T"] == pytest.approx(0.7079, abs=5e-5)


def test_asia_marginals_match_the_published_values() -> None:
    net = asia()
    assert net.marginal("tub")["yes"] == pytest.approx(0.0104, abs=1e-15)
    assert net.marginal("lung")["yes"] == pytest.approx(0.055, abs=1e-15)
    assert net.marginal("bronc")["yes"] == pytest.approx(0.45, abs=1e-15)


@pytest.mark.parametrize("make", [asia, sprinkler], ids=["asia", "sprinkler"])
def test_every_single_and_pair_posterior_equals_enumeration(make: object) -> None:
    net = make()  # type: ignore[operator]
    names = list(net.variables)
    for target, observed in itertools.permutations(names, 2):
        for state in net.states(observed):
            evidence = {observed: state}
            expected = brute_posterior(net, [target], evidence)
            np.testing.assert_allclose(
                net.query([target], evidence).probabilities, expected, atol=1e-12
            )
    for pair in itertools.combinations(names, 2):
        np.testing.assert_allclose(
            net.query(list(pair)).probabilities, brute_posterior(net, pair, {}), atol=1e-12
        )


networks = st.builds(
    random_network,
    seed=st.integers(0, 2**32 - 1),
    num_nodes=st.integers(2, 6),
    zeros=st.booleans(),
)


def _possible_evidence(net: BayesianNetwork, data: st.DataObject) -> dict[str, str]:
    """Evidence of positive probability on a random subset of the variables."""
    joint = brute_joint(net)
    flat = int(data.draw(st.sampled_from(np.flatnonzero(joint.ravel() > 0).tolist())))
    states = np.unravel_index(flat, joint.shape)
    names = list(net.variables)
    chosen = data.draw(st.lists(st.sampled_from(names), unique=True, max_size=len(names) - 1))
    return {n: net.states(n)[states[names.index(n)]] for n in chosen}


@settings(max_examples=40, deadline=None)
@given(net=networks, data=st.data())
def test_joint_queries_on_random_networks_equal_enumeration(
    net: BayesianNetwork, data: st.DataObject
) -> None:
    evidence = _possible_evidence(net, data)
    free = [n for n in net.variables if n not in evidence]
    query = data.draw(st.lists(st.sampled_from(free), unique=True, min_size=1, max_size=3))
    result = net.query(query, evidence)
    assert result.variables == tuple(query)
    np.testing.assert_allclose(
        result.probabilities, brute_posterior(net, query, evidence), atol=1e-12, rtol=0
    )


@settings(max_examples=40, deadline=None)
@given(net=networks, data=st.data())
def test_map_assignment_on_random_networks_is_a_most_probable_one(
    net: BayesianNetwork, data: st.DataObject
) -> None:
    evidence = _possible_evidence(net, data)
    free = [n for n in net.variables if n not in evidence]
    posterior = brute_posterior(net, free, evidence)
    best = net.map_assignment(evidence)
    assert set(best.assignment) == set(free)
    index = tuple(net.states(n).index(best.assignment[n]) for n in free)
    assert posterior[index] == pytest.approx(posterior.max(), abs=1e-10)
    assert best.probability == pytest.approx(posterior.max(), abs=1e-10)


@settings(max_examples=30, deadline=None)
@given(net=networks, data=st.data())
def test_log_prob_of_complete_and_partial_rows_equals_enumeration(
    net: BayesianNetwork, data: st.DataObject
) -> None:
    joint = brute_joint(net)
    names = list(net.variables)
    complete = {n: net.states(n)[data.draw(st.integers(0, len(net.states(n)) - 1))] for n in names}
    partial = _possible_evidence(net, data)
    scores = net.log_prob([complete, partial]).numpy()
    index = tuple(net.states(n).index(complete[n]) for n in names)
    with np.errstate(divide="ignore"):
        assert scores[0] == pytest.approx(
            math.log(joint[index]) if joint[index] > 0 else -math.inf, abs=1e-10
        )
    marginal = joint[
        tuple(net.states(n).index(partial[n]) if n in partial else slice(None) for n in names)
    ]
    assert scores[1] == pytest.approx(math.log(marginal.sum()), abs=1e-10)


def test_log_prob_is_float64_minus_infinity_for_impossible_rows_and_empty_for_no_rows() -> None:
    net = asia()
    row = dict.fromkeys(net.variables, "no") | {"lung": "yes"}  # lung without either: impossible
    scores = net.log_prob([row, {"either": "yes", "lung": "no", "tub": "no"}])
    assert str(scores.dtype) == "torch.float64"
    assert scores.tolist() == [-math.inf, -math.inf]
    assert net.log_prob([]).shape == (0,)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda n: n.query(["nope"]), "unknown variable 'nope'"),
        (lambda n: n.query(["lung"], {"smoke": "maybe"}), "'smoke' has no state 'maybe'"),
        (lambda n: n.query(["lung"], {"lung": "yes"}), "not in the evidence"),
        (lambda n: n.query("lung"), "non-empty list"),
        (lambda n: n.query(["lung"], {"tub": "yes", "either": "no"}), "probability zero"),
        (lambda n: n.map_assignment({"tub": "yes", "either": "no"}), "probability zero"),
        (lambda n: n.sample(3, {"tub": "yes", "either": "no"}), "probability zero"),
        (lambda n: n.sample(-1), "num_rows"),
        (
            lambda n: n.log_prob([{"smoke": "maybe"}]),
            "column 'smoke' has the unknown state 'maybe'",
        ),
        (lambda n: n.log_prob([{"smoke": float("nan")}]), "column 'smoke' has the unknown value"),
    ],
)
def test_bad_queries_raise_invalid_input_naming_the_problem(call: object, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        call(asia())  # type: ignore[operator]


def test_asia_map_assignment_given_a_positive_xray() -> None:
    best = asia().map_assignment({"xray": "yes", "dysp": "yes"})
    assert best.assignment["either"] == "yes"
    assert best.assignment["smoke"] == "yes"


# ------------------------------------------------------------------ sampling


def _frequencies(rows: list[dict[str, str]], net: BayesianNetwork, names: list[str]) -> np.ndarray:
    counts = np.zeros([len(net.states(n)) for n in names])
    for row in rows:
        counts[tuple(net.states(n).index(row[n]) for n in names)] += 1
    return counts


def test_forward_samples_match_the_joint_by_chi_square() -> None:
    stats = pytest.importorskip("scipy.stats")
    net = sprinkler()
    names = list(net.variables)
    counts = _frequencies(net.sample(20_000, seed=0), net, names).ravel()
    expected = brute_joint(net).ravel() * 20_000
    keep = expected > 0
    assert counts[~keep].sum() == 0
    assert stats.chisquare(counts[keep], expected[keep]).pvalue > 1e-3


def test_samples_under_evidence_match_the_exact_posterior_by_chi_square() -> None:
    stats = pytest.importorskip("scipy.stats")
    net = asia()
    evidence = {"xray": "yes", "smoke": "no"}
    rows = net.sample(20_000, evidence, seed=1)
    assert all(row["xray"] == "yes" and row["smoke"] == "no" for row in rows)
    names = ["tub", "lung", "bronc", "dysp"]
    counts = _frequencies(rows, net, names).ravel()
    expected = brute_posterior(net, names, evidence).ravel() * 20_000
    keep = expected > 0
    assert counts[~keep].sum() == 0
    assert stats.chisquare(counts[keep], expected[keep]).pvalue > 1e-3


def test_sampling_is_seeded_and_vectorised_over_many_rows() -> None:
    net = random_network(3, 40, max_parents=3)
    first, second = net.sample(5000, seed=7), net.sample(5000, seed=7)
    assert len(first) == 5000
    assert first == second
    assert net.sample(5000, seed=8) != first


def test_sample_columns_are_the_sampled_rows_column_by_column() -> None:
    net = asia()
    for evidence in (None, {"xray": "yes"}):
        rows = net.sample(300, evidence, seed=5)
        columns = net.sample_columns(300, evidence, seed=5)
        assert list(columns) == list(net.variables)
        assert columns == {n: [r[n] for r in rows] for n in net.variables}
    assert net.sample_columns(0) == {n: [] for n in net.variables}
    with pytest.raises(InvalidInputError, match="num_rows"):
        net.sample_columns(-2)


def test_forward_samples_of_a_random_network_match_its_marginals_by_chi_square() -> None:
    stats = pytest.importorskip("scipy.stats")
    net = random_network(21, 25, max_parents=3)
    columns = net.sample_columns(20_000, seed=2)
    worst = 1.0
    for name in net.variables:
        states = net.states(name)
        counts = np.array([columns[name].count(s) for s in states], dtype=float)
        expected = np.array([net.marginal(name)[s] for s in states]) * 20_000
        worst = min(worst, float(stats.chisquare(counts, expected).pvalue))
    assert worst > 1e-6  # 25 dependent tests at a fixed seed (worst here ~5e-5): a wide margin


# ------------------------------------------------------------------ random networks


def test_random_networks_are_seeded_dags_within_the_bounds() -> None:
    net = bayes.random_network(40, max_parents=2, min_states=2, max_states=4, seed=9)
    assert net.variables == tuple(f"x{i}" for i in range(40))
    assert all(len(net.parents(v)) <= 2 for v in net.variables)
    assert {len(net.states(v)) for v in net.variables} <= {2, 3, 4}
    assert sum(len(net.parents(v)) for v in net.variables) > 20  # not an empty graph
    again = bayes.random_network(40, max_parents=2, min_states=2, max_states=4, seed=9)
    assert again.config == net.config
    for name, table in net.cpts.items():
        np.testing.assert_array_equal(again.cpt(name), table)
    assert bayes.random_network(40, max_parents=2, seed=10).config != net.config
    order = [v.name for v in net.config.variables]  # listed by name, not topologically
    assert any(order.index(p) > order.index(v) for v in order for p in net.parents(v))


def test_a_small_concentration_gives_near_deterministic_tables() -> None:
    sharp = bayes.random_network(30, concentration=0.05, seed=1)
    flat = bayes.random_network(30, concentration=50.0, seed=1)
    assert np.mean([t.max(axis=-1).mean() for t in sharp.cpts.values()]) > 0.85
    assert np.mean([t.max(axis=-1).mean() for t in flat.cpts.values()]) < 0.7


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"n_nodes": 0}, "n_nodes must be an int >= 1"),
        ({"n_nodes": 5, "max_parents": -1}, "max_parents must be an int >= 0"),
        ({"n_nodes": 5, "min_states": 3, "max_states": 2}, "max_states must be an int >= 3"),
        ({"n_nodes": 5, "concentration": 0.0}, "concentration must be a positive finite"),
        ({"n_nodes": 5, "concentration": float("nan")}, "concentration must be a positive finite"),
        ({"n_nodes": True}, "n_nodes must be an int"),
    ],
)
def test_bad_random_network_arguments_are_refused(
    arguments: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        bayes.random_network(**arguments)  # type: ignore[arg-type]


# ------------------------------------------------------------------ likelihood weighting


@pytest.mark.parametrize(
    ("query", "evidence"),
    [
        (["lung"], {"xray": "yes", "dysp": "yes"}),
        (["tub", "bronc"], {"xray": "yes"}),
        (["either"], {"asia": "yes", "smoke": "no"}),
        (["dysp"], {}),
    ],
)
def test_likelihood_weighting_on_asia_is_close_to_variable_elimination(
    query: list[str], evidence: dict[str, str]
) -> None:
    net = asia()
    estimate = net.likelihood_weighting(query, evidence, num_samples=100_000, seed=0)
    exact = net.query(query, evidence)
    assert estimate.variables == exact.variables
    assert estimate.states == exact.states
    np.testing.assert_allclose(estimate.probabilities, exact.probabilities, atol=0.03)
    assert estimate.probabilities.sum() == pytest.approx(1.0, abs=1e-12)
    assert estimate.effective_sample_size is not None
    assert 1.0 <= estimate.effective_sample_size <= 100_000
    assert exact.effective_sample_size is None


def test_likelihood_weighting_on_a_random_network_is_close_to_variable_elimination() -> None:
    net = random_network(8, 40, max_parents=3)
    evidence = net.sample(1, seed=3)[0]
    names = list(net.variables)
    given = {n: evidence[n] for n in names[::7]}  # 6 evidence variables from a real row
    for target in [n for n in names[1::6] if n not in given]:
        estimate = net.likelihood_weighting([target], given, num_samples=60_000, seed=1)
        np.testing.assert_allclose(
            estimate.probabilities, net.query([target], given).probabilities, atol=0.05
        )


def test_likelihood_weighting_is_seeded_and_weights_survive_long_evidence_lists() -> None:
    net = random_network(4, 60, max_parents=2)
    row = net.sample(1, seed=0)[0]
    evidence = {n: row[n] for n in list(net.variables)[1:]}  # 59 observed: weights ~ 1e-40
    first = net.likelihood_weighting(["x0"], evidence, num_samples=5000, seed=5)
    second = net.likelihood_weighting(["x0"], evidence, num_samples=5000, seed=5)
    np.testing.assert_array_equal(first.probabilities, second.probabilities)
    assert np.isfinite(first.probabilities).all()
    np.testing.assert_allclose(
        first.probabilities, net.query(["x0"], evidence).probabilities, atol=0.03
    )


def test_likelihood_weighting_chunks_agree_with_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    from genarch.models.bayes import inference

    net = asia()
    whole = net.likelihood_weighting(["lung"], {"xray": "yes"}, num_samples=5000, seed=2)
    monkeypatch.setattr(inference, "CHUNK_ROWS", 777)  # several chunks, rescaled to one peak
    chunked = net.likelihood_weighting(["lung"], {"xray": "yes"}, num_samples=5000, seed=2)
    np.testing.assert_allclose(chunked.probabilities, whole.probabilities, atol=0.05)
    assert chunked.effective_sample_size == pytest.approx(whole.effective_sample_size, rel=0.2)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda n: n.likelihood_weighting(["nope"]), "likelihood_weighting: unknown variable"),
        (lambda n: n.likelihood_weighting(["lung"], {"smoke": "maybe"}), "no state 'maybe'"),
        (lambda n: n.likelihood_weighting(["lung"], {"lung": "no"}), "not in the evidence"),
        (lambda n: n.likelihood_weighting(["lung"], num_samples=0), "num_samples must be"),
        (
            lambda n: n.likelihood_weighting(["lung"], {"tub": "yes", "either": "no"}),
            "none of the 10000 samples is consistent with the evidence",
        ),
    ],
)
def test_bad_likelihood_weighting_calls_are_refused(call: object, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        call(asia())  # type: ignore[operator]


# ------------------------------------------------------------------ the Generator


def test_it_is_a_conditional_scoring_fittable_tabular_generator() -> None:
    net = asia()
    assert isinstance(net, Generator)
    assert isinstance(net, ScoringGenerator)
    assert isinstance(net, Fittable)
    assert is_conditional(net)
    assert net.conditions["smoke"] == ["yes", "no"]
    result = net.generate(TabularRequest(num_rows=3, evidence={"asia": "yes"}, seed=0))
    assert isinstance(result, TabularResult)
    assert [r["asia"] for r in result.rows] == ["yes"] * 3
    assert list(result.rows[0]) == list(net.variables)


def test_it_passes_the_generator_conformance_kit() -> None:
    check_generator(
        asia(),
        [
            TabularRequest(num_rows=4, seed=0),
            TabularRequest(num_rows=2, evidence={"dysp": "yes", "xray": "no"}, seed=1),
        ],
        invalid_requests=[
            TabularRequest(evidence={"nope": "yes"}),
            TabularRequest(evidence={"smoke": "maybe"}),
            TabularRequest(evidence={"tub": "yes", "either": "no"}),
        ],
    )
