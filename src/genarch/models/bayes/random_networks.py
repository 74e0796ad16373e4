"""Random networks: seeded random DAGs with Dirichlet CPTs, for tests and benchmarks at scale.

:func:`random_network` draws a random topological order, gives each variable a
random number of parents (at most ``max_parents``) among the variables before
it, a random number of states, and draws every CPT row from a symmetric
Dirichlet distribution — the usual recipe for synthetic benchmark networks
(e.g. Ide & Cozman 2002 sample richer DAG families; this is the simple
"random order, bounded in-degree" one). Variables are named ``x0``, ``x1``, …
and listed in that order, which is *not* a topological order, so code that
assumes one is caught. States are named ``s0``, ``s1``, ….

Examples:
    >>> net = random_network(20, max_parents=2, max_states=3, seed=0)
    >>> len(net.variables), net.variables[:3]
    (20, ('x0', 'x1', 'x2'))
    >>> random_network(20, max_parents=2, seed=0).cpts["x5"].tolist() == net.cpts["x5"].tolist()
    True
"""

from __future__ import annotations

import math

import numpy as np

from genarch.errors import InvalidInputError
from genarch.models.bayes.network import BayesianNetwork
from genarch.validation import describe

__all__ = ["random_network"]


def _count(value: object, name: str, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise InvalidInputError(
            f"random_network: {name} must be an int >= {least}, got {describe(value)}"
        )
    return value


def random_network(
    n_nodes: int,
    *,
    max_parents: int = 3,
    min_states: int = 2,
    max_states: int = 3,
    concentration: float = 1.0,
    seed: int | None = None,
) -> BayesianNetwork:
    """A random DAG of ``n_nodes`` discrete variables with Dirichlet CPTs.

    Args:
        n_nodes: the number of variables.
        max_parents: the most parents a variable gets (each variable draws
            uniformly between 0 and ``min(max_parents, variables before it)``).
        min_states: the fewest states a variable gets.
        max_states: the most states a variable gets (uniform in between).
        concentration: the symmetric Dirichlet parameter of every CPT row
            (1 is uniform over the simplex; small values give near-deterministic rows).
        seed: makes the network reproducible.

    Returns:
        a :class:`~genarch.models.bayes.BayesianNetwork` (estimator ``"bdeu"``).

    Raises:
        InvalidInputError: a count below its minimum or ``min_states > max_states``,
            or a concentration that is not a positive finite number.

    Example:
        >>> net = random_network(30, max_parents=3, seed=1)
        >>> max(len(net.parents(v)) for v in net.variables) <= 3
        True
    """
    n_nodes = _count(n_nodes, "n_nodes", 1)
    max_parents = _count(max_parents, "max_parents", 0)
    min_states = _count(min_states, "min_states", 1)
    max_states = _count(max_states, "max_states", min_states)
    if (
        isinstance(concentration, bool)
        or not isinstance(concentration, int | float)
        or not math.isfinite(concentration)
        or concentration <= 0
    ):
        raise InvalidInputError(
            f"random_network: concentration must be a positive finite number, got {describe(concentration)}"
        )
    rng = np.random.default_rng(seed)
    names = [f"x{i}" for i in range(n_nodes)]
    cards = rng.integers(min_states, max_states + 1, size=n_nodes)
    order = rng.permutation(n_nodes)  # order[i] may take parents among order[:i]
    variables: list[dict[str, object]] = [{} for _ in range(n_nodes)]
    cpts = {}
    for i, node in enumerate(order):
        count = int(rng.integers(0, min(i, max_parents) + 1))
        parents = sorted(int(p) for p in rng.choice(order[:i], size=count, replace=False))
        shape = [int(cards[p]) for p in parents] + [int(cards[node])]
        rows = rng.dirichlet(np.full(shape[-1], float(concentration)), size=math.prod(shape[:-1]))
        # Dirichlet draws can underflow to exact zeros at tiny concentrations; renormalise in float64
        rows = rows / rows.sum(axis=1, keepdims=True)
        variables[node] = {
            "name": names[node],
            "states": [f"s{k}" for k in range(shape[-1])],
            "parents": [names[p] for p in parents],
        }
        cpts[names[node]] = rows.reshape(shape)
    return BayesianNetwork(variables=variables, cpts=cpts)
