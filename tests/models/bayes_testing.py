"""Test networks (asia, sprinkler, random DAGs) and brute-force enumeration of their joints."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np

from genarch.models import bayes
from genarch.models.bayes import BayesianNetwork, parse_bif

# Lauritzen & Spiegelhalter (1988), "Local computations with probabilities on graphical
# structures", the chest-clinic ("asia") network with its published CPTs, written the way
# bnlearn's repository writes it (rows by parent states).
ASIA_BIF = """
network asia {
}
variable asia {
  type discrete [ 2 ] { yes, no };
}
variable tub {
  type discrete [ 2 ] { yes, no };
}
variable smoke {
  type discrete [ 2 ] { yes, no };
}
variable lung {
  type discrete [ 2 ] { yes, no };
}
variable bronc {
  type discrete [ 2 ] { yes, no };
}
variable either {
  type discrete [ 2 ] { yes, no };
}
variable xray {
  type discrete [ 2 ] { yes, no };
}
variable dysp {
  type discrete [ 2 ] { yes, no };
}
probability ( asia ) {
  table 0.01, 0.99;
}
probability ( tub | asia ) {
  (yes) 0.05, 0.95;
  (no) 0.01, 0.99;
}
probability ( smoke ) {
  table 0.5, 0.5;
}
probability ( lung | smoke ) {
  (yes) 0.1, 0.9;
  (no) 0.01, 0.99;
}
probability ( bronc | smoke ) {
  (yes) 0.6, 0.4;
  (no) 0.3, 0.7;
}
probability ( either | lung, tub ) {
  (yes, yes) 1.0, 0.0;
  (no, yes) 1.0, 0.0;
  (yes, no) 1.0, 0.0;
  (no, no) 0.0, 1.0;
}
probability ( xray | either ) {
  (yes) 0.98, 0.02;
  (no) 0.05, 0.95;
}
probability ( dysp | bronc, either ) {
  (yes, yes) 0.9, 0.1;
  (no, yes) 0.7, 0.3;
  (yes, no) 0.8, 0.2;
  (no, no) 0.1, 0.9;
}
"""

# The sprinkler network (Russell & Norvig; Murphy's BNT tutorial), written with pgmpy's
# `table` layout for variables with parents: own states slowest, parent configurations fastest.
SPRINKLER_BIF = """
// comments are allowed
network sprinkler {
  property source = "Russell & Norvig" ;
}
variable cloudy { type discrete [ 2 ] { T, F }; property weight = None ; }
variable sprinkler { type discrete [ 2 ] { T, F }; }
variable rain { type discrete [ 2 ] { T, F }; }
variable wet { type discrete [ 2 ] { T, F }; }
probability ( cloudy ) { table 0.5, 0.5 ; }
/* P(sprinkler=T | cloudy=T) = 0.1, P(sprinkler=T | cloudy=F) = 0.5 */
probability ( sprinkler | cloudy ) { table 0.1, 0.5, 0.9, 0.5 ; }
probability ( rain | cloudy ) { table 0.8, 0.2, 0.2, 0.8 ; }
probability ( wet | sprinkler, rain ) {
  table 0.99, 0.9, 0.9, 0.0,
        0.01, 0.1, 0.1, 1.0 ;
}
"""


def asia() -> BayesianNetwork:
    return parse_bif(ASIA_BIF)


def sprinkler() -> BayesianNetwork:
    return BayesianNetwork(
        variables=[
            {"name": "cloudy", "states": ["T", "F"]},
            {"name": "sprinkler", "states": ["T", "F"], "parents": ["cloudy"]},
            {"name": "rain", "states": ["T", "F"], "parents": ["cloudy"]},
            {"name": "wet", "states": ["T", "F"], "parents": ["sprinkler", "rain"]},
        ],
        cpts={
            "cloudy": [0.5, 0.5],
            "sprinkler": [[0.1, 0.9], [0.5, 0.5]],
            "rain": [[0.8, 0.2], [0.2, 0.8]],
            "wet": [[[0.99, 0.01], [0.9, 0.1]], [[0.9, 0.1], [0.0, 1.0]]],
        },
    )


def random_network(
    seed: int, num_nodes: int, *, max_parents: int = 3, max_states: int = 3, zeros: bool = False
) -> BayesianNetwork:
    """:func:`genarch.models.bayes.random_network`, optionally with some CPT entries set to zero.

    With ``zeros``, about a fifth of the entries are knocked out and the rows
    renormalised, so some states and rows become impossible (evidence of
    probability zero, ``-inf`` log-probabilities).
    """
    net = bayes.random_network(num_nodes, max_parents=max_parents, max_states=max_states, seed=seed)
    if not zeros:
        return net
    rng = np.random.default_rng([seed, 1])
    cpts = {}
    for name, table in net.cpts.items():
        table = np.where(rng.random(table.shape) < 0.2, 0.0, table)
        table[table.sum(axis=-1) == 0, 0] = 1.0
        cpts[name] = table / table.sum(axis=-1, keepdims=True)
    return BayesianNetwork(net.config, cpts=cpts)


def brute_joint(net: BayesianNetwork) -> np.ndarray:
    """The full joint, one axis per variable in ``net.variables`` order, by enumeration."""
    names = list(net.variables)
    shape = [len(net.states(n)) for n in names]
    joint = np.zeros(shape)
    cpts = net.cpts
    for states in itertools.product(*(range(k) for k in shape)):
        p = 1.0
        for v, name in enumerate(names):
            index = (*(states[names.index(u)] for u in net.parents(name)), states[v])
            p *= cpts[name][index]
        joint[states] = p
    return joint


def brute_posterior(
    net: BayesianNetwork, query: Sequence[str], evidence: Mapping[str, str]
) -> np.ndarray:
    """``P(query | evidence)`` from the enumerated joint, axes in ``query`` order."""
    names = list(net.variables)
    joint = brute_joint(net)
    index = tuple(net.states(n).index(evidence[n]) if n in evidence else slice(None) for n in names)
    reduced = joint[index]
    left = [n for n in names if n not in evidence]
    summed = reduced.sum(axis=tuple(i for i, n in enumerate(left) if n not in query))
    kept = [n for n in left if n in query]
    table = np.transpose(summed, [kept.index(q) for q in query])
    return table / table.sum()


def random_queries(
    net: BayesianNetwork, count: int, seed: int
) -> list[tuple[list[str], dict[str, str]]]:
    """Seeded queries: 1-2 targets, 0-4 evidence variables with states from a forward sample.

    Taking the evidence from a sampled row makes every evidence possible.
    """
    rng = np.random.default_rng(seed)
    names = list(net.variables)
    found = []
    for row in net.sample(count, seed=seed):
        chosen = [names[i] for i in rng.permutation(len(names))[: 2 + int(rng.integers(0, 4))]]
        targets = chosen[: 1 + int(rng.integers(0, 2))]
        found.append((targets, {n: row[n] for n in chosen[len(targets) :]}))
    return found


def to_pgmpy(net: BayesianNetwork) -> object:
    """The same network as a pgmpy ``DiscreteBayesianNetwork`` (pgmpy must be installed)."""
    from pgmpy.factors.discrete import TabularCPD
    from pgmpy.models import DiscreteBayesianNetwork

    model = DiscreteBayesianNetwork()
    model.add_nodes_from(net.variables)
    model.add_edges_from((p, v) for v in net.variables for p in net.parents(v))
    for name in net.variables:
        parents = list(net.parents(name))
        table = net.cpt(name)  # (*parent cards, own card) -> pgmpy's (own card, parent configs)
        model.add_cpds(
            TabularCPD(
                name,
                table.shape[-1],
                np.moveaxis(table, -1, 0).reshape(table.shape[-1], -1),
                evidence=parents or None,
                evidence_card=[len(net.states(p)) for p in parents] or None,
                state_names={n: list(net.states(n)) for n in (name, *parents)},
            )
        )
    model.check_model()
    return model


def pgmpy_posterior(
    engine: object, query: Sequence[str], evidence: Mapping[str, str]
) -> tuple[np.ndarray, dict[str, list[str]]]:
    """A pgmpy ``VariableElimination(model)``'s answer, axes in ``query`` order, with its state names."""
    factor = engine.query(  # type: ignore[attr-defined]
        list(query), evidence=dict(evidence) or None, joint=True, show_progress=False
    )
    table = np.transpose(factor.values, [factor.variables.index(q) for q in query])
    return table, {q: list(factor.state_names[q]) for q in query}
