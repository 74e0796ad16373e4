"""The fast paths of exact inference and sampling give the answers of the slow ones.

Queries keep only the requisite CPTs, sum small problems in one einsum and
large ones variable by variable, and skip rescaling unless the result could
have left the floating-point range; forward sampling draws by thresholds or by
``searchsorted``. Each test pins one of those choices against an independent
answer (enumeration, a forward-backward pass, the CPT itself).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from genarch.errors import InvalidInputError
from genarch.models.bayes import BayesianNetwork, _factors
from models.bayes_testing import brute_posterior, random_network, random_queries

EMIT = np.array([[0.3, 0.7], [0.9, 0.1]])  # P(observation | hidden state)
MOVE = np.array([[0.8, 0.2], [0.4, 0.6]])  # P(next hidden state | hidden state)


def hidden_chain(length: int) -> BayesianNetwork:
    """A hidden Markov chain h0 -> h1 -> ... with one observation o_i per step."""
    variables = [{"name": "h0", "states": ["a", "b"]}]
    cpts: dict[str, object] = {"h0": [0.5, 0.5], "o0": EMIT}
    for i in range(1, length):
        variables.append({"name": f"h{i}", "states": ["a", "b"], "parents": [f"h{i - 1}"]})
        cpts[f"h{i}"] = MOVE
        cpts[f"o{i}"] = EMIT
    variables += [
        {"name": f"o{i}", "states": ["x", "y"], "parents": [f"h{i}"]} for i in range(length)
    ]
    return BayesianNetwork(variables=variables, cpts=cpts)


def backward(observed: list[int]) -> tuple[np.ndarray, float]:
    """P(h0 | every observation) and log P(observations), by a normalised backward pass."""
    message, log_scale = np.ones(2), 0.0
    for o in reversed(observed[1:]):
        message = MOVE @ (EMIT[:, o] * message)
        log_scale += math.log(message.sum())
        message /= message.sum()
    joint = 0.5 * EMIT[:, observed[0]] * message
    return joint / joint.sum(), math.log(joint.sum()) + log_scale


def test_queries_whose_evidence_underflows_a_float_are_rescaled_and_exact() -> None:
    length = 1200  # about 0.5 per observation: P(evidence) is about 1e-365
    net = hidden_chain(length)
    observed = np.random.default_rng(0).integers(0, 2, length).tolist()
    evidence = {f"o{i}": "xy"[o] for i, o in enumerate(observed)}
    expected, log_evidence = backward(observed)
    assert log_evidence < math.log(1e-308)  # an unscaled sum underflows to zero
    np.testing.assert_allclose(net.query(["h0"], evidence).probabilities, expected, atol=1e-12)
    assert float(net.log_prob([evidence])[0]) == pytest.approx(log_evidence, rel=1e-12)


def test_evidence_of_probability_zero_is_refused_where_it_is_cut_off_from_the_query() -> None:
    # a -> b and c -> d share nothing: P(a | d) never needs c and d, but d = "y" is impossible
    net = BayesianNetwork(
        variables=[
            {"name": "a", "states": ["x", "y"]},
            {"name": "b", "states": ["x", "y"], "parents": ["a"]},
            {"name": "c", "states": ["x", "y"]},
            {"name": "d", "states": ["x", "y"], "parents": ["c"]},
        ],
        cpts={"c": [1.0, 0.0], "d": [[1.0, 0.0], [0.5, 0.5]]},
    )
    with pytest.raises(InvalidInputError, match="probability zero"):
        net.query(["a"], {"d": "y"})
    np.testing.assert_allclose(net.query(["a"], {"d": "x", "b": "y"}).probabilities, [0.5, 0.5])


def test_a_class_given_more_features_than_one_einsum_takes_is_naive_bayes() -> None:
    features = 4 * _factors.MAX_OPERANDS + 5  # numpy refuses an einsum of more than 32 or 64
    rng = np.random.default_rng(4)
    prior = np.array([0.2, 0.3, 0.5])
    likelihoods = rng.dirichlet([1.0, 1.0], size=(features, 3))  # (feature, class, value)
    net = BayesianNetwork(
        variables=[
            {"name": "c", "states": ["a", "b", "c"]},
            *({"name": f"f{i}", "states": ["x", "y"], "parents": ["c"]} for i in range(features)),
        ],
        cpts={"c": prior, **{f"f{i}": likelihoods[i] for i in range(features)}},
    )
    observed = rng.integers(0, 2, features)
    evidence = {f"f{i}": "xy"[o] for i, o in enumerate(observed)}
    joint = prior * likelihoods[np.arange(features), :, observed].prod(axis=0)
    np.testing.assert_allclose(
        net.query(["c"], evidence).probabilities, joint / joint.sum(), atol=1e-12
    )
    assert float(net.log_prob([evidence])[0]) == pytest.approx(math.log(joint.sum()), rel=1e-12)


@pytest.mark.parametrize("final_states", [1, 10**9], ids=["variable-by-variable", "one-einsum"])
def test_one_einsum_and_variable_by_variable_elimination_equal_enumeration(
    final_states: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_factors, "FINAL_EINSUM_STATES", final_states)
    for seed in range(3):
        net = random_network(seed, 7, zeros=seed == 2)
        for query, evidence in random_queries(net, 12, seed):
            np.testing.assert_allclose(
                net.query(query, evidence).probabilities,
                brute_posterior(net, query, evidence),
                atol=1e-12,
            )


@pytest.mark.parametrize("states", [4, _factors.MANY_STATES + 4], ids=["thresholds", "search"])
def test_forward_draws_follow_the_cpt_and_never_an_impossible_state(states: int) -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(states)
    table = rng.dirichlet(np.ones(states), size=3)
    table[:, ::3] = 0.0  # every third state impossible, the first included
    table[1, -1] = 0.0  # and a row whose last state is impossible
    table /= table.sum(axis=1, keepdims=True)
    names = [f"s{k}" for k in range(states)]
    net = BayesianNetwork(
        variables=[
            {"name": "parent", "states": ["p0", "p1", "p2"]},
            {"name": "child", "states": names, "parents": ["parent"]},
        ],
        cpts={"parent": [0.2, 0.3, 0.5], "child": table},
    )
    columns = net.sample_columns(30_000, seed=3)
    for p, parent in enumerate(["p0", "p1", "p2"]):
        drawn = [c for q, c in zip(columns["parent"], columns["child"], strict=True) if q == parent]
        counts = np.array([drawn.count(name) for name in names], dtype=float)
        expected = table[p] * len(drawn)
        assert counts[expected == 0].sum() == 0
        keep = expected > 0
        assert stats.chisquare(counts[keep], expected[keep]).pvalue > 1e-4
