"""Markov equivalence: a DAG's CPDAG, and the structural Hamming distance between two of them.

Data cannot tell apart DAGs with the same skeleton and the same v-structures
(``a -> c <- b`` with ``a``, ``b`` not adjacent; Verma & Pearl 1990). The
*completed partially directed acyclic graph* (CPDAG, or essential graph) of a
DAG represents its whole equivalence class: an edge is directed when every DAG
of the class orients it the same way (it is *compelled*) and undirected
otherwise. :func:`to_cpdag` builds it the classic way: keep the skeleton,
orient the v-structures, then apply Meek's rules R1-R3 until nothing changes
(Meek 1995; R4 is needed only with background knowledge).

:func:`structural_hamming_distance` compares two CPDAGs pair by pair of nodes
(Tsamardinos, Brown & Aliferis 2006): a pair counts 1 when one graph has an
edge the other lacks, or both have one but oriented differently (one directed
and one undirected, or opposite directions). It is the measure bnlearn's
``shd`` and pcalg's ``shd`` report; comparing CPDAGs rather than DAGs makes it
0 for Markov-equivalent structures, which is all that learning from
observational data can recover.

A graph is given as a :class:`~genarch.models.bayes.BayesianNetwork`, its
:class:`~genarch.models.bayes.BayesianNetworkConfig` (what
:func:`~genarch.models.bayes.hill_climb` returns), or a mapping of every node
to its parents (``{"b": ["a"], "a": []}``, e.g. from another library's DAG).

Examples:
    >>> chain = {"a": [], "b": ["a"], "c": ["b"]}
    >>> collider = {"a": [], "b": ["a", "c"], "c": []}
    >>> sorted(to_cpdag(chain).undirected), sorted(to_cpdag(collider).directed)
    ([('a', 'b'), ('b', 'c')], [('a', 'b'), ('c', 'b')])
    >>> structural_hamming_distance(chain, {"a": ["b"], "b": ["c"], "c": []})  # equivalent
    0
    >>> structural_hamming_distance(chain, collider)  # same skeleton, both edges oriented
    2
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

from genarch.errors import InvalidInputError
from genarch.models.bayes._checks import checked_structure
from genarch.models.bayes.network import BayesianNetwork, BayesianNetworkConfig
from genarch.validation import describe

__all__ = ["CPDAG", "structural_hamming_distance", "to_cpdag"]

Graph = BayesianNetwork | BayesianNetworkConfig | Mapping[str, Sequence[str]]


@dataclass(frozen=True)
class CPDAG:
    """A completed partially directed acyclic graph.

    Attributes:
        nodes: the node names, in the order the graph listed them.
        directed: compelled edges ``(parent, child)``.
        undirected: reversible edges ``(a, b)``, each once with ``a < b``.
    """

    nodes: tuple[str, ...]
    directed: frozenset[tuple[str, str]]
    undirected: frozenset[tuple[str, str]]

    def edge(self, a: str, b: str) -> str | None:
        """How ``a`` and ``b`` are joined: ``"->"``, ``"<-"``, ``"--"`` or ``None``."""
        if (a, b) in self.directed:
            return "->"
        if (b, a) in self.directed:
            return "<-"
        if (min(a, b), max(a, b)) in self.undirected:
            return "--"
        return None


def _parents_of(graph: Graph, where: str) -> dict[str, tuple[str, ...]]:
    if isinstance(graph, BayesianNetwork):
        graph = graph.config
    if isinstance(graph, BayesianNetworkConfig):
        return {v.name: v.parents for v in graph.variables}
    if not isinstance(graph, Mapping):
        raise InvalidInputError(
            f"{where} expected a BayesianNetwork, a BayesianNetworkConfig or a mapping of node "
            f"to parents, got {describe(graph)}"
        )
    parents: dict[str, tuple[str, ...]] = {}
    for node, given in graph.items():
        if (
            not isinstance(node, str)
            or isinstance(given, str)
            or not isinstance(given, Sequence | frozenset | set)
            or not all(isinstance(p, str) for p in given)
        ):
            raise InvalidInputError(
                f"{where}: node {node!r} must map to a list of parent names, got {describe(given)}"
            )
        parents[node] = tuple(given)
    # the network's own structure checks: unknown parents, self-loops, cycles
    checked_structure(
        BayesianNetworkConfig.parse(
            {"variables": [{"name": n, "states": ["_"], "parents": p} for n, p in parents.items()]}
        )
    )
    return parents


def to_cpdag(graph: Graph) -> CPDAG:
    """The CPDAG of a DAG: v-structures oriented, then Meek's rules R1-R3 to a fixed point.

    Args:
        graph: a network, a config, or a mapping of every node to its parents.

    Raises:
        InvalidInputError: not a graph, a parent that is not a node, or a cycle
            (``ConfigError``, naming the node).
    """
    parents = _parents_of(graph, "to_cpdag")
    adjacent: dict[str, set[str]] = {n: set() for n in parents}
    for child, given in parents.items():
        for parent in given:
            adjacent[child].add(parent)
            adjacent[parent].add(child)
    directed: set[tuple[str, str]] = set()
    for child, given in parents.items():  # v-structures: a -> c <- b, a and b not adjacent
        for a, b in combinations(given, 2):
            if b not in adjacent[a]:
                directed |= {(a, child), (b, child)}
    undirected = {
        (min(p, c), max(p, c))
        for c, given in parents.items()
        for p in given
        if (p, c) not in directed
    }

    def is_undirected(a: str, b: str) -> bool:
        return (min(a, b), max(a, b)) in undirected

    def orient(a: str, b: str) -> None:
        undirected.discard((min(a, b), max(a, b)))
        directed.add((a, b))

    changed = True
    while changed:
        changed = False
        for a, b in sorted(undirected):
            for x, y in ((a, b), (b, a)):  # try to orient x -> y
                others = adjacent[y] - {x}
                # R1: z -> x, x -- y, z and y not adjacent
                rule1 = any((z, x) in directed and z not in adjacent[y] for z in adjacent[x])
                # R2: x -> z -> y
                rule2 = any((x, z) in directed and (z, y) in directed for z in others)
                # R3: x -- z1 -> y, x -- z2 -> y, z1 and z2 not adjacent
                into = [z for z in others if (z, y) in directed and is_undirected(x, z)]
                rule3 = any(z2 not in adjacent[z1] for z1, z2 in combinations(into, 2))
                if rule1 or rule2 or rule3:
                    orient(x, y)
                    changed = True
                    break
            if changed:
                break
    return CPDAG(tuple(parents), frozenset(directed), frozenset(undirected))


def structural_hamming_distance(learned: Graph | CPDAG, truth: Graph | CPDAG) -> int:
    """The number of node pairs whose edge differs between the two graphs' CPDAGs.

    A missing edge, an extra edge, or an edge oriented differently (reversed,
    or directed in one and undirected in the other) each count 1. DAGs are
    converted with :func:`to_cpdag` first, so Markov-equivalent DAGs are at
    distance 0.

    Raises:
        InvalidInputError: either is not a graph, or they have different node sets.
    """
    first = learned if isinstance(learned, CPDAG) else to_cpdag(learned)
    second = truth if isinstance(truth, CPDAG) else to_cpdag(truth)
    if set(first.nodes) != set(second.nodes):
        raise InvalidInputError(
            "structural_hamming_distance: the graphs must have the same nodes; only the first has "
            f"{sorted(set(first.nodes) - set(second.nodes))}, only the second "
            f"{sorted(set(second.nodes) - set(first.nodes))}"
        )
    pairs = {(min(a, b), max(a, b)) for a, b in first.directed | second.directed}
    pairs |= first.undirected | second.undirected
    return sum(1 for a, b in pairs if first.edge(a, b) != second.edge(a, b))
