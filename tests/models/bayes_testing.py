"""Test networks (asia, sprinkler, random DAGs) and brute-force enumeration of their joints."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np

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
    """A random DAG with Dirichlet(1) CPTs; variables listed in a shuffled (non-topological) order."""
    rng = np.random.default_rng(seed)
    names = [f"x{i}" for i in range(num_nodes)]
    cards = rng.integers(2, max_states + 1, size=num_nodes)
    variables, cpts = [], {}
    for i, name in enumerate(names):
        earlier = rng.permutation(i)[: rng.integers(0, min(i, max_parents) + 1)]
        parents = [names[j] for j in earlier]
        shape = [int(cards[j]) for j in earlier] + [int(cards[i])]
        table = rng.dirichlet(np.ones(shape[-1]), size=shape[:-1]).reshape(shape)
        if zeros:  # knock out some entries, renormalise: impossible states and rows
            table = np.where(rng.random(shape) < 0.2, 0.0, table)
            table[table.sum(axis=-1) == 0, 0] = 1.0
            table = table / table.sum(axis=-1, keepdims=True)
        variables.append(
            {"name": name, "states": [f"s{k}" for k in range(cards[i])], "parents": parents}
        )
        cpts[name] = table
    order = rng.permutation(num_nodes)
    return BayesianNetwork(variables=[variables[i] for i in order], cpts=cpts)


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
