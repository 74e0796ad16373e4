"""Exact inference and sampling on integer-coded networks.

* :func:`posterior` — variable elimination (Zhang & Poole 1994) with a min-fill
  order: the joint posterior of some variables given evidence, and the log
  probability of the evidence. Only the ancestors of the query and evidence
  variables take part (the other CPTs sum to one and are *barren*).
* :func:`most_probable` — the MAP (most probable explanation) assignment by
  max-product elimination with a traceback (Dechter 1999).
* :func:`forward_sample` — ancestral sampling, vectorised over rows.
* :func:`posterior_sample` — *exact* sampling under evidence: sum-product
  elimination keeps each step's combined factor, then variables are drawn in
  reverse elimination order from those factors, conditioned on the ones already
  drawn (forward filtering, backward sampling). Unlike likelihood weighting or
  rejection it needs no weights and wastes no draws, and it is vectorised over
  rows.
* :func:`likelihood_weighting` — *approximate* posteriors for networks too
  large for elimination (Fung & Chang 1990; Shachter & Peot 1990): ancestral
  sampling with the evidence variables clamped, each row weighted by the
  probability of the evidence given its parents. Vectorised over rows; only
  the ancestors of the query and evidence variables are sampled.

Everything works on :class:`~genarch.models.bayes._factors.NetworkTables` and
integer state codes; :class:`~genarch.models.bayes.BayesianNetwork` translates
names and states.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

from genarch.errors import InvalidInputError
from genarch.models.bayes._factors import (
    NetworkTables,
    eliminate,
    min_fill_order,
    product,
    sum_out,
)

__all__ = [
    "forward_sample",
    "likelihood_weighting",
    "log_joint",
    "most_probable",
    "posterior",
    "posterior_sample",
]

Array = NDArray[np.float64]
Codes = NDArray[np.int64]


def posterior(
    tables: NetworkTables, query: Sequence[int], evidence: Mapping[int, int]
) -> tuple[Array, float]:
    """``P(query | evidence)`` as a table with one axis per query variable, and ``log P(evidence)``.

    Raises:
        InvalidInputError: the evidence has probability zero.
    """
    relevant = tables.ancestral_set([*query, *evidence])
    factors = tables.factors(relevant, evidence)
    hidden = relevant - set(query) - set(evidence)
    order = min_fill_order(factors, hidden, tables.cards)
    left, log_scale = sum_out(factors, order)
    joint = product(left)
    table = joint.expanded(list(query)) if query else joint.table.reshape(())
    table = np.broadcast_to(table, [tables.cards[v] for v in query])
    total = float(table.sum())
    if not total > 0.0:
        raise InvalidInputError("the evidence has probability zero under this network")
    return np.array(table / total, dtype=np.float64), math.log(total) + log_scale


def most_probable(tables: NetworkTables, evidence: Mapping[int, int]) -> dict[int, int]:
    """The most probable state of every non-evidence variable given the evidence.

    Raises:
        InvalidInputError: the evidence has probability zero.
    """
    variables = range(len(tables.cards))
    factors = tables.factors(variables, evidence)
    hidden = [v for v in variables if v not in evidence]
    order = min_fill_order(factors, hidden, tables.cards)
    left, steps, _ = eliminate(factors, order, np.max)
    if not float(product(left).table.max(initial=0.0)) > 0.0:
        raise InvalidInputError("the evidence has probability zero under this network")
    assignment: dict[int, int] = {}
    for step in reversed(steps):  # each step's other variables were eliminated later
        combined = step.combined
        index = tuple(
            slice(None) if v == step.variable else assignment[v] for v in combined.variables
        )
        assignment[step.variable] = int(np.argmax(combined.table[index]))
    for v in hidden:  # a variable in no factor (cannot happen in a valid network) stays 0
        assignment.setdefault(v, 0)
    return assignment


def log_joint(tables: NetworkTables, codes: Codes) -> Array:
    """``log P(row)`` of complete rows of codes, shape ``(N, V)`` -> ``(N,)``."""
    total = np.zeros(codes.shape[0])
    with np.errstate(divide="ignore"):
        for v, cpt in enumerate(tables.cpts):
            index = tuple(codes[:, u] for u in (*tables.parents[v], v))
            total += np.log(cpt[index])
    return total


def _draw(probabilities: Array, uniform: Array) -> Codes:
    """One state per row of ``probabilities`` (N, K) from uniforms in [0, 1) (N,)."""
    cumulative = np.cumsum(probabilities, axis=1)
    cumulative /= cumulative[:, -1:]
    states = (cumulative <= uniform[:, None]).sum(axis=1)
    return np.asarray(np.minimum(states, probabilities.shape[1] - 1), dtype=np.int64)


def forward_sample(tables: NetworkTables, uniforms: Array) -> Codes:
    """Ancestral sampling: one row per row of ``uniforms`` (N, V), parents before children."""
    return _clamped_sample(tables, tables.order, {}, uniforms)[0]


def posterior_sample(tables: NetworkTables, evidence: Mapping[int, int], uniforms: Array) -> Codes:
    """Exact samples from ``P(all variables | evidence)``, one per row of ``uniforms`` (N, V).

    Raises:
        InvalidInputError: the evidence has probability zero.
    """
    rows = uniforms.shape[0]
    variables = range(len(tables.cards))
    factors = tables.factors(variables, evidence)
    hidden = [v for v in variables if v not in evidence]
    order = min_fill_order(factors, hidden, tables.cards)
    left, steps, _ = eliminate(factors, order, np.sum)
    if not float(product(left).table.sum()) > 0.0:
        raise InvalidInputError("the evidence has probability zero under this network")
    codes = np.zeros((len(tables.cards), rows), dtype=np.int64).T  # columns contiguous
    for v, state in evidence.items():
        codes[:, v] = state
    for step in reversed(steps):
        combined = step.combined
        others = [u for u in combined.variables if u != step.variable]
        table = combined.expanded([*others, step.variable])  # (*others, states of variable)
        if others:
            weights = table[tuple(codes[:, u] for u in others)]  # (N, states)
        else:
            weights = np.broadcast_to(table, (rows, table.shape[-1]))
        codes[:, step.variable] = _draw(
            np.asarray(weights, dtype=np.float64), uniforms[:, step.variable]
        )
    return codes


CHUNK_ROWS = 65_536
"""Likelihood weighting draws at most this many rows at a time (bounded memory)."""


def likelihood_weighting(
    tables: NetworkTables,
    query: Sequence[int],
    evidence: Mapping[int, int],
    num_samples: int,
    rng: np.random.Generator,
) -> tuple[Array, float]:
    """An estimate of ``P(query | evidence)`` from ``num_samples`` weighted rows.

    Rows are drawn in chunks of :data:`CHUNK_ROWS`; each chunk's weights are
    kept as logarithms and rescaled by their largest, so a long list of
    evidence does not underflow.

    Returns:
        the estimated table (one axis per query variable, summing to 1) and the
        effective sample size ``(sum w)^2 / sum w^2`` of the weights.

    Raises:
        InvalidInputError: no row is consistent with the evidence (every weight is zero).
    """
    relevant = tables.ancestral_set([*query, *evidence])
    order = [v for v in tables.order if v in relevant]
    shape = [tables.cards[v] for v in query]
    table = np.zeros(math.prod(shape))
    peak, total, total_squares = -math.inf, 0.0, 0.0
    for start in range(0, num_samples, CHUNK_ROWS):
        rows = min(CHUNK_ROWS, num_samples - start)
        uniforms = rng.random((rows, len(tables.cards)))
        codes, log_weights = _clamped_sample(tables, order, evidence, uniforms)
        chunk_peak = float(log_weights.max(initial=-math.inf))
        if not math.isfinite(chunk_peak):
            continue
        if chunk_peak > peak:  # rescale what was summed so far to the new peak
            shrink = math.exp(peak - chunk_peak) if math.isfinite(peak) else 0.0
            table *= shrink
            total *= shrink
            total_squares *= shrink * shrink
            peak = chunk_peak
        weights = np.exp(log_weights - peak)
        flat = (
            np.ravel_multi_index(tuple(codes[:, v] for v in query), shape)
            if query
            else np.zeros(rows, dtype=np.int64)
        )
        table += np.bincount(flat, weights=weights, minlength=table.size)
        total += float(weights.sum())
        total_squares += float(np.square(weights).sum())
    if not total > 0.0:
        raise InvalidInputError(
            f"likelihood weighting: none of the {num_samples} samples is consistent with the "
            "evidence (it has probability zero, or is too unlikely for this many samples)"
        )
    effective = total * total / total_squares
    return np.asarray((table / total).reshape(shape), dtype=np.float64), effective


def _clamped_sample(
    tables: NetworkTables, order: Sequence[int], evidence: Mapping[int, int], uniforms: Array
) -> tuple[Codes, Array]:
    """Ancestral sampling of ``order`` with the evidence clamped: codes (N, V) and log-weights (N,)."""
    rows = uniforms.shape[0]
    # column-major: each variable's column is contiguous
    codes = np.zeros((len(tables.cards), rows), dtype=np.int64).T
    log_weights = np.zeros(rows)
    samplers = tables.samplers
    by_variable = np.ascontiguousarray(uniforms.T)  # (V, N): each variable reads one row
    for v in order:
        cpt = tables.cpts[v]
        flat = cpt.reshape(-1, tables.cards[v])  # (parent configurations, states)
        parents = tables.parents[v]
        if parents:
            config = np.ravel_multi_index(tuple(codes[:, u] for u in parents), cpt.shape[:-1])
        else:
            config = np.zeros(rows, dtype=np.int64)
        if v in evidence:
            codes[:, v] = evidence[v]
            with np.errstate(divide="ignore"):
                log_weights += np.log(flat[config, evidence[v]])
        else:
            codes[:, v] = samplers[v].draw(config, by_variable[v])
    return codes, log_weights
