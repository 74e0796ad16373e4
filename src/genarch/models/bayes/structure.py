"""Structure learning: hill climbing on a decomposable score, and the Chow-Liu tree.

Both take data as :meth:`BayesianNetwork.fit <genarch.models.bayes.BayesianNetwork.fit>`
does (rows or columns of state names) and return a
:class:`~genarch.models.bayes.BayesianNetworkConfig` — the structure; fit it
to learn the tables. Rows with a missing value are dropped (every family is
scored on the same rows, so scores stay comparable). States are read from the
data (sorted) unless ``states`` gives them; a column with a single value is
then refused (it could only ever be a parentless constant).

* :func:`hill_climb` — greedy search over DAGs with the three classic moves
  (add, remove, reverse an edge), a tabu list of recently undone moves, a
  maximum in-degree and white- and black-lists of edges (Heckerman, Geiger &
  Chickering 1995). At a local optimum it may take a few non-improving moves
  that are not tabu, and returns the best structure seen (as bnlearn's ``tabu``). The score is BIC
  or BDeu, both *decomposable*: a move changes one or two families, and only
  those are rescored (family scores are cached by parent set).
* :func:`chow_liu` — the maximum-weight spanning tree of pairwise mutual
  information (Chow & Liu 1968), directed away from a root; the best tree,
  and a fast starting point for :func:`hill_climb`.

Examples:
    >>> rows = [{"a": a, "b": a, "c": c} for a in "xy" for c in "pq"] * 20
    >>> config = hill_climb(rows)
    >>> sorted((v.name, v.parents) for v in config.variables)
    [('a', ()), ('b', ('a',)), ('c', ())]
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from genarch.errors import InvalidInputError
from genarch.models.bayes.learning import encode_rows, family_counts
from genarch.models.bayes.network import BayesianNetworkConfig
from genarch.validation import describe

__all__ = ["FamilyScore", "chow_liu", "hill_climb"]

Edge = tuple[str, str]
Codes = NDArray[np.int64]


_lgamma = np.vectorize(math.lgamma, otypes=[np.float64])  # numpy has no log-gamma


class FamilyScore:
    """The BIC or BDeu score of one variable given a parent set, cached by parent set.

    Args:
        codes: complete rows of state codes, shape ``(N, V)``.
        cards: number of states of each variable.
        score: ``"bic"`` or ``"bdeu"``.
        equivalent_sample_size: BDeu's prior strength.
    """

    def __init__(
        self,
        codes: Codes,
        cards: Sequence[int],
        score: Literal["bic", "bdeu"] = "bic",
        equivalent_sample_size: float = 1.0,
    ) -> None:
        self.codes, self.cards, self.score = codes, tuple(cards), score
        self.ess = equivalent_sample_size
        self._cache: dict[tuple[int, frozenset[int]], float] = {}

    def __call__(self, variable: int, parents: Iterable[int]) -> float:
        key = (variable, frozenset(parents))
        if key not in self._cache:
            self._cache[key] = self._compute(variable, sorted(key[1]))
        return self._cache[key]

    @property
    def evaluations(self) -> int:
        """How many families have been scored (the cache's size)."""
        return len(self._cache)

    def _compute(self, variable: int, parents: list[int]) -> float:
        counts = family_counts(self.codes, (*parents, variable), self.cards)
        states = self.cards[variable]
        counts = counts.reshape(-1, states)  # (parent configurations, states)
        configurations = counts.shape[0]
        totals = counts.sum(axis=1)
        if self.score == "bic":
            with np.errstate(divide="ignore", invalid="ignore"):
                terms = np.where(counts > 0, counts * np.log(counts / totals[:, None]), 0.0)
            penalty = 0.5 * math.log(max(len(self.codes), 1)) * configurations * (states - 1)
            return float(terms.sum()) - penalty
        alpha_j = self.ess / configurations
        alpha_jk = alpha_j / states
        return float(
            (_lgamma(alpha_j) - _lgamma(alpha_j + totals)).sum()
            + (_lgamma(alpha_jk + counts) - _lgamma(alpha_jk)).sum()
        )


def _prepare(
    data: object, states: Mapping[str, Sequence[str]] | None, where: str
) -> tuple[list[str], list[tuple[str, ...]], Codes]:
    if states is None:
        states = _states_from(data, where)
    names = list(states)
    state_lists = [tuple(states[n]) for n in names]
    codes = encode_rows(data, names, state_lists, where)
    complete = codes[(codes >= 0).all(axis=1)]
    if complete.shape[0] == 0:
        raise InvalidInputError(f"{where}: no row has a value for every column")
    return names, state_lists, complete


def _states_from(data: object, where: str) -> dict[str, list[str]]:
    if isinstance(data, Mapping):
        columns = {str(k): list(v) for k, v in data.items()}
    elif isinstance(data, Sequence) and not isinstance(data, str):
        columns = {}
        for row in data:
            if not isinstance(row, Mapping):
                raise InvalidInputError(f"{where}: each row must be a mapping, got {describe(row)}")
            for key, value in row.items():
                columns.setdefault(str(key), []).append(value)
    else:
        raise InvalidInputError(f"{where} expected rows or a column mapping, got {describe(data)}")
    found = {}
    for name, values in columns.items():
        present = {v for v in values if v is not None}
        strange = next((v for v in present if not isinstance(v, str)), None)
        if strange is not None:
            raise InvalidInputError(
                f"{where}: column {name!r} holds a value that is not a str state: "
                f"{describe(strange)} (states are str; None marks a missing value)"
            )
        if not present:
            raise InvalidInputError(f"{where}: column {name!r} has no values")
        if len(present) == 1:
            raise InvalidInputError(
                f"{where}: column {name!r} has one value only ({next(iter(present))!r}), so it "
                "carries no information about the others; drop the column, or pass its "
                "possible states in states="
            )
        found[name] = sorted(present)
    if not found:
        raise InvalidInputError(f"{where}: the data have no columns")
    return found


def _config(
    names: Sequence[str],
    states: Sequence[tuple[str, ...]],
    parents: Sequence[Collection[int]],
    settings: Mapping[str, Any],
) -> BayesianNetworkConfig:
    variables = [
        {"name": n, "states": s, "parents": [names[p] for p in sorted(parents[i])]}
        for i, (n, s) in enumerate(zip(names, states, strict=True))
    ]
    return BayesianNetworkConfig.parse({"variables": variables, **settings})


def _edges(names: Sequence[str], edges: Iterable[Edge], what: str) -> set[tuple[int, int]]:
    index = {n: i for i, n in enumerate(names)}
    found = set()
    for edge in edges:
        if not (isinstance(edge, tuple) and len(edge) == 2 and all(e in index for e in edge)):
            raise InvalidInputError(
                f"{what} must hold (parent, child) pairs of columns {list(names)}, got {edge!r}"
            )
        found.add((index[edge[0]], index[edge[1]]))
    return found


def _reaches(children: Sequence[set[int]], start: int, goal: int, skip: tuple[int, int]) -> bool:
    """Whether a directed path ``start -> ... -> goal`` exists, ignoring the edge ``skip``."""
    stack, seen = [start], {start}
    while stack:
        node = stack.pop()
        for child in children[node]:
            if (node, child) == skip:
                continue
            if child == goal:
                return True
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return False


def hill_climb(
    data: object,
    *,
    states: Mapping[str, Sequence[str]] | None = None,
    score: Literal["bic", "bdeu"] = "bic",
    equivalent_sample_size: float = 1.0,
    max_indegree: int | None = None,
    white_list: Iterable[Edge] = (),
    black_list: Iterable[Edge] = (),
    start: BayesianNetworkConfig | None = None,
    tabu_length: int = 10,
    max_non_improving: int = 10,
    max_iterations: int = 10_000,
    restarts: int = 0,
    perturb: int = 1,
    seed: int | None = None,
    **config: Any,
) -> BayesianNetworkConfig:
    """Greedy DAG search: the best-scoring structure reachable by single-edge moves.

    Args:
        data: rows or columns of state names (rows with a missing value are dropped).
        states: the states of every column, in order (default: sorted values seen).
        score: ``"bic"`` or ``"bdeu"``.
        equivalent_sample_size: BDeu's prior strength.
        max_indegree: the most parents a variable may have.
        white_list: ``(parent, child)`` edges that must be present (never removed).
        black_list: edges that may never be added.
        start: a structure to start from (default: the white-listed edges only).
        tabu_length: how many recent moves may not be undone (unless undoing
            one gives the best score seen yet).
        max_non_improving: at a local optimum, how many moves that do not
            improve the score may be taken (the best ones not tabu) to escape
            it; the best structure seen is returned. 0 is plain hill climbing.
        max_iterations: a bound on the number of moves (per climb).
        restarts: after the first climb, how many times to apply ``perturb``
            random legal moves to the best structure and climb again, keeping
            the best (bnlearn's ``restart``/``perturb``): a way out of deeper
            local optima. 0 (the default) climbs once and needs no seed.
        perturb: how many random moves each restart makes.
        seed: makes the restarts' random moves reproducible.
        **config: other fields of the returned config (``estimator``, ...).

    Raises:
        InvalidInputError: bad data, unknown edges, a start that lacks a white-listed
            edge or breaks the in-degree bound, or a negative bound.
    """
    where = "hill_climb"
    names, state_lists, codes = _prepare(data, states, where)
    n = len(names)
    if max_indegree is not None and max_indegree < 0:
        raise InvalidInputError(f"{where}: max_indegree must be >= 0, got {max_indegree}")
    for name, value in (("restarts", restarts), ("perturb", perturb)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidInputError(f"{where}: {name} must be an int >= 0, got {describe(value)}")
    limit = n if max_indegree is None else max_indegree
    white, black = _edges(names, white_list, "white_list"), _edges(names, black_list, "black_list")
    parents: list[set[int]] = [set() for _ in range(n)]
    if start is not None:
        index = {v: i for i, v in enumerate(names)}
        for variable in start.variables:
            if variable.name not in index:
                raise InvalidInputError(
                    f"{where}: start names the unknown column {variable.name!r}"
                )
            parents[index[variable.name]] = {index[p] for p in variable.parents}
    for parent, child in white:
        parents[child].add(parent)
    if any(len(p) > limit for p in parents):
        raise InvalidInputError(f"{where}: the start has more than max_indegree={limit} parents")
    children = [{c for c in range(n) if v in parents[c]} for v in range(n)]
    if any(_reaches(children, c, p, (-1, -1)) for c in range(n) for p in parents[c]):
        raise InvalidInputError(f"{where}: the start structure (with the white list) has a cycle")
    family = FamilyScore(codes, [len(s) for s in state_lists], score, equivalent_sample_size)

    def moves() -> Iterable[tuple[float, str, int, int]]:
        """Every legal move and its score change (only the changed families are scored)."""
        for u in range(n):
            for v in range(n):
                if u == v:
                    continue
                if u in parents[v]:  # remove or reverse u -> v
                    if (u, v) in white:
                        continue
                    removed = family(v, parents[v] - {u}) - family(v, parents[v])
                    yield removed, "remove", u, v
                    if (
                        (v, u) not in black
                        and len(parents[u]) < limit
                        and not _reaches(children, u, v, (u, v))
                    ):
                        gained = family(u, parents[u] | {v}) - family(u, parents[u])
                        yield removed + gained, "reverse", u, v
                elif not (
                    (u, v) in black
                    or len(parents[v]) >= limit
                    or _reaches(children, v, u, (-1, -1))
                ):
                    yield family(v, parents[v] | {u}) - family(v, parents[v]), "add", u, v

    def apply(move: str, u: int, v: int) -> None:
        if move in ("remove", "reverse"):
            parents[v].discard(u)
            children[u].discard(v)
        if move == "add":
            parents[v].add(u)
            children[u].add(v)
        if move == "reverse":
            parents[u].add(v)
            children[v].add(u)

    def climb() -> tuple[float, list[set[int]]]:
        """Tabu hill climbing from the current ``parents``: the best score and structure seen."""
        current = best_total = sum(family(v, parents[v]) for v in range(n))
        best_parents = [set(p) for p in parents]
        tabu: list[tuple[str, int, int]] = []
        patience = max_non_improving
        for _ in range(max_iterations):
            allowed = [  # tabu moves only when they beat the best seen (aspiration)
                m
                for m in moves()
                if (m[1], m[2], m[3]) not in tabu or current + m[0] > best_total + 1e-9
            ]
            if not allowed:
                break
            delta, move, u, v = max(allowed, key=lambda m: (m[0], -m[2], -m[3], m[1]))
            if delta <= 1e-9:  # a local optimum: step on only while patience lasts
                if patience <= 0:
                    break
                patience -= 1
            apply(move, u, v)
            current += delta
            if current > best_total + 1e-9:
                best_total, best_parents, patience = (
                    current,
                    [set(p) for p in parents],
                    max_non_improving,
                )
            undo = {"add": ("remove", u, v), "remove": ("add", u, v), "reverse": ("reverse", v, u)}
            tabu = [*tabu, undo[move]][-tabu_length:] if tabu_length > 0 else []
        return best_total, best_parents

    best_total, best_parents = climb()
    rng = np.random.default_rng(seed)
    for _ in range(restarts):  # perturb the best structure, climb again, keep the better
        for v in range(n):
            parents[v] = set(best_parents[v])
            children[v] = {c for c in range(n) if v in best_parents[c]}
        for _ in range(perturb):
            legal = [m[1:] for m in moves()]
            if not legal:
                break
            move, u, v = legal[int(rng.integers(len(legal)))]
            apply(move, u, v)
        total, found = climb()
        if total > best_total + 1e-9:
            best_total, best_parents = total, found
    return _config(names, state_lists, best_parents, config)


def chow_liu(
    data: object,
    *,
    states: Mapping[str, Sequence[str]] | None = None,
    root: str | None = None,
    **config: Any,
) -> BayesianNetworkConfig:
    """The Chow-Liu tree: the maximum spanning tree of pairwise mutual information.

    Edges point away from ``root`` (default: the first column), so every other
    variable has exactly one parent.

    Raises:
        InvalidInputError: bad data or an unknown root.
    """
    names, state_lists, codes = _prepare(data, states, "chow_liu")
    n = len(names)
    if root is not None and root not in names:
        raise InvalidInputError(f"chow_liu: unknown root {root!r}; have {names}")
    cards = [len(s) for s in state_lists]
    rows = codes.shape[0]
    information = np.zeros((n, n))
    for a in range(n):
        for b in range(a + 1, n):
            joint = family_counts(codes, (a, b), cards) / rows
            outer = joint.sum(axis=1, keepdims=True) * joint.sum(axis=0, keepdims=True)
            with np.errstate(divide="ignore", invalid="ignore"):
                terms = np.where(joint > 0, joint * np.log(joint / outer), 0.0)
            information[a, b] = information[b, a] = float(terms.sum())
    start = names.index(root) if root is not None else 0
    parents: list[set[int]] = [set() for _ in range(n)]
    in_tree = {start}
    while len(in_tree) < n:  # Prim's algorithm; ties broken by index, so deterministic
        _, negative_parent, negative_child = max(
            (information[a, b], -a, -b) for a in in_tree for b in range(n) if b not in in_tree
        )  # the largest information; among equals the smallest indices
        parents[-negative_child].add(-negative_parent)
        in_tree.add(-negative_child)
    return _config(names, state_lists, parents, config)
