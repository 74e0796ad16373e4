"""Parameter learning: rows of named states to counts to conditional probability tables.

Data arrive as a sequence of row mappings (``[{"rain": "yes", "wet": "no"}, ...]``)
or as a column mapping (``{"rain": [...], "wet": [...]}``). Values are state
names (``str``); ``None`` (or a column absent from a row) marks a missing value.

Missing values are handled *per family*: the counts for a variable and its
parents use every row in which that variable and all its parents are
observed, and drop the others (available-case analysis). That is unbiased when
values are missing completely at random; it is not expectation-maximisation.

Estimators (``estimator`` in :class:`~genarch.models.bayes.BayesianNetworkConfig`):

* ``"mle"`` — maximum likelihood, ``N_ijk / N_ij``; a parent configuration
  never seen gets the uniform distribution.
* ``"bdeu"`` — the posterior mean under the BDeu prior (Buntine 1991; Heckerman,
  Geiger & Chickering 1995): pseudo-count ``ess / (q_i r_i)`` per cell, where
  ``q_i`` counts the parent configurations and ``r_i`` the states.
* ``"dirichlet"`` — the posterior mean with the same pseudo-count ``pseudo_count``
  in every cell (``1`` is the K2 / Laplace prior).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

from genarch.errors import InvalidInputError
from genarch.validation import describe

__all__ = ["encode_rows", "estimate_cpt", "family_counts"]

Codes = NDArray[np.int64]
Array = NDArray[np.float64]


def _column(name: str, values: Sequence[object], states: Sequence[str], where: str) -> Codes:
    lookup = {state: code for code, state in enumerate(states)}
    codes = np.empty(len(values), dtype=np.int64)
    for row, value in enumerate(values):
        if value is None:
            codes[row] = -1
        elif isinstance(value, str) and value in lookup:
            codes[row] = lookup[value]
        else:
            shown = repr(value) if isinstance(value, str) else describe(value)
            kind = "state" if isinstance(value, str) else "value (states are str, None is missing)"
            raise InvalidInputError(
                f"{where}: row {row}, column {name!r} has the unknown {kind} {shown}; "
                f"expected one of {list(states)} or None"
            )
    return codes


def encode_rows(
    data: object, names: Sequence[str], states: Sequence[Sequence[str]], where: str
) -> Codes:
    """State codes of ``data`` (rows or columns), shape ``(N, V)``; ``-1`` where missing.

    Raises:
        InvalidInputError: ``data`` is neither rows nor a column mapping, has no
            rows, names a column the network lacks, has columns of different
            lengths, or holds a value that is not one of the column's states or None.
    """
    known = set(names)
    if isinstance(data, Mapping):
        unknown = sorted(str(c) for c in data if c not in known)
        if unknown:
            raise InvalidInputError(
                f"{where}: unknown columns {unknown}; the network has {list(names)}"
            )
        lengths = set()
        for column, values in data.items():
            if isinstance(values, str) or not isinstance(values, Sequence):
                raise InvalidInputError(
                    f"{where}: column {column!r} must be a sequence of states, got {describe(values)}"
                )
            lengths.add(len(values))
        if len(lengths) > 1:
            raise InvalidInputError(f"{where}: the columns differ in length ({sorted(lengths)})")
        count = lengths.pop() if lengths else 0
        columns: Mapping[str, Sequence[object]] = data
    elif isinstance(data, Sequence) and not isinstance(data, str | bytes):
        count = len(data)
        for row, item in enumerate(data):
            if not isinstance(item, Mapping):
                raise InvalidInputError(
                    f"{where}: row {row} must be a mapping of column to state, got {describe(item)}"
                )
            unknown = sorted(str(c) for c in item if c not in known)
            if unknown:
                raise InvalidInputError(
                    f"{where}: row {row} has unknown columns {unknown}; the network has {list(names)}"
                )
        columns = {name: [item.get(name) for item in data] for name in names}
    else:
        raise InvalidInputError(
            f"{where} expected rows (a sequence of mappings) or a column mapping, got {describe(data)}"
        )
    if count == 0:
        raise InvalidInputError(f"{where}: the data have no rows")
    codes = np.full((count, len(names)), -1, dtype=np.int64)
    for v, name in enumerate(names):
        if name in columns:
            codes[:, v] = _column(name, columns[name], states[v], where)
    return codes


def family_counts(codes: Codes, family: Sequence[int], cards: Sequence[int]) -> Array:
    """Counts of each joint state of ``family`` over the rows where all of it is observed.

    Returns a float table of shape ``[cards[v] for v in family]``.
    """
    shape = [cards[v] for v in family]
    observed = codes[:, list(family)]
    observed = observed[(observed >= 0).all(axis=1)]
    flat = np.ravel_multi_index(tuple(observed.T), shape) if observed.size else np.zeros(0, int)
    return np.bincount(flat, minlength=math.prod(shape)).reshape(shape).astype(np.float64)


def estimate_cpt(
    counts: Array, estimator: str, *, equivalent_sample_size: float, pseudo_count: float
) -> Array:
    """A CPT from counts of shape ``(*parent cards, states)``, with the named estimator."""
    states = counts.shape[-1]
    configurations = counts.size // states
    if estimator == "bdeu":
        counts = counts + equivalent_sample_size / (configurations * states)
    elif estimator == "dirichlet":
        counts = counts + pseudo_count
    elif estimator != "mle":  # the config's Literal makes this unreachable
        raise InvalidInputError(f"unknown estimator {estimator!r}")
    totals = counts.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        table = np.where(totals > 0, counts / totals, 1.0 / states)
    return np.asarray(table, dtype=np.float64)
