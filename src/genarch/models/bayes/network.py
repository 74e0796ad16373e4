"""A discrete Bayesian network: a DAG of named variables with conditional probability tables.

The structure (variables, their states and parents) and the learning settings
are the config; the CPTs are the parameters — learned by :meth:`BayesianNetwork.fit`,
given to the constructor, saved as JSON or exchanged as BIF
(:mod:`genarch.models.bayes.bif`). A network is a tabular
:class:`~genarch.protocols.Generator` (``TabularRequest`` -> ``TabularResult``)
that can be conditioned on any variable, a
:class:`~genarch.protocols.ScoringGenerator` (exact log-likelihood of rows) and
:class:`~genarch.protocols.Fittable`.

References: Pearl, *Probabilistic Reasoning in Intelligent Systems* (1988);
Koller & Friedman, *Probabilistic Graphical Models* (2009), chapters 3, 9, 12, 17.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Self

import numpy as np
import torch
from numpy.typing import NDArray
from pydantic import Field

from genarch.configured import Configured
from genarch.errors import InvalidInputError
from genarch.models.bayes import inference
from genarch.models.bayes._checks import checked_cpt, checked_structure, shown
from genarch.models.bayes._factors import NetworkTables
from genarch.models.bayes.learning import encode_rows, estimate_cpt, family_counts
from genarch.persistence import open_saved, reading, save_component
from genarch.protocols import PathLike
from genarch.schemas import Config, TabularRequest, TabularResult
from genarch.validation import describe, require_instance

__all__ = [
    "BayesianNetwork",
    "BayesianNetworkConfig",
    "DiscreteVariable",
    "Distribution",
    "MapAssignment",
]

Array = NDArray[np.float64]
FORMAT = "genarch.bayesian_network/1"


class DiscreteVariable(Config):
    """One discrete variable: its name, its states (in order) and its parents."""

    name: Annotated[str, Field(min_length=1)]
    states: Annotated[tuple[Annotated[str, Field(min_length=1)], ...], Field(min_length=1)]
    parents: tuple[str, ...] = ()


class BayesianNetworkConfig(Config):
    """The structure of a network and how :meth:`BayesianNetwork.fit` estimates its CPTs."""

    variables: Annotated[tuple[DiscreteVariable, ...], Field(min_length=1)]
    """The variables, in column order; parents are named, the graph must be acyclic."""
    estimator: Literal["mle", "bdeu", "dirichlet"] = "bdeu"
    """Maximum likelihood, the BDeu posterior mean, or a uniform Dirichlet posterior mean."""
    equivalent_sample_size: Annotated[float, Field(gt=0.0, allow_inf_nan=False)] = 1.0
    """The BDeu prior's equivalent sample size (``estimator="bdeu"``)."""
    pseudo_count: Annotated[float, Field(gt=0.0, allow_inf_nan=False)] = 1.0
    """The pseudo-count added to every cell (``estimator="dirichlet"``; 1 is K2)."""


@dataclass(frozen=True)
class Distribution:
    """A (joint) distribution over ``variables``: axis ``i`` of ``probabilities`` is ``variables[i]``."""

    variables: tuple[str, ...]
    states: tuple[tuple[str, ...], ...]
    probabilities: Array
    effective_sample_size: float | None = None
    """For an estimate (:meth:`BayesianNetwork.likelihood_weighting`), the
    effective sample size of its weights; ``None`` for an exact answer."""

    def probability(self, assignment: Mapping[str, str]) -> float:
        """The probability of one state of every variable.

        Raises:
            InvalidInputError: a variable is missing or a state unknown.
        """
        index = []
        for name, states in zip(self.variables, self.states, strict=True):
            state = assignment.get(name)
            if state not in states:
                raise InvalidInputError(
                    f"assignment[{name!r}] must be one of {list(states)}, got {state!r}"
                )
            index.append(states.index(state))
        return float(self.probabilities[tuple(index)])

    def as_dict(self) -> dict[str, float]:
        """``{state: probability}`` of a distribution over one variable."""
        if len(self.variables) != 1:
            raise InvalidInputError(f"as_dict needs one variable, this has {list(self.variables)}")
        return dict(zip(self.states[0], self.probabilities.tolist(), strict=True))


@dataclass(frozen=True)
class MapAssignment:
    """The most probable joint state of the non-evidence variables, and its posterior probability."""

    assignment: dict[str, str]
    probability: float


def _check_rows(num_rows: object) -> None:
    if isinstance(num_rows, bool) or not isinstance(num_rows, int) or num_rows < 0:
        raise InvalidInputError(f"num_rows must be a non-negative int, got {describe(num_rows)}")


class BayesianNetwork(Configured[BayesianNetworkConfig]):
    """A discrete Bayesian network with exact inference, sampling and learning.

    Args:
        config: the structure and learning settings (or a mapping of them).
        cpts: each variable's conditional probability table as nested lists or
            an array of shape ``(*parent cards, own card)`` — parents in the
            order the variable lists them, the variable's own states last, so
            every row sums to 1. Omitted tables are uniform.
        **fields: shorthand for the config's fields.

    Raises:
        ConfigError: duplicate names or states, an unknown parent, a cycle.
        InvalidInputError: a table of another shape, with a negative or
            non-finite entry, or a row that does not sum to 1 within 1e-9 —
            naming the variable.

    Example:
        >>> net = BayesianNetwork(
        ...     variables=[
        ...         {"name": "rain", "states": ["yes", "no"]},
        ...         {"name": "wet", "states": ["yes", "no"], "parents": ["rain"]},
        ...     ],
        ...     cpts={"rain": [0.2, 0.8], "wet": [[0.9, 0.1], [0.1, 0.9]]},
        ... )
        >>> round(net.query(["rain"], {"wet": "yes"}).probability({"rain": "yes"}), 4)
        0.6923
    """

    def __init__(
        self,
        config: BayesianNetworkConfig | Mapping[str, Any] | None = None,
        *,
        cpts: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> None:
        Configured.__init__(self, config, **fields)
        order = checked_structure(self.config)
        variables = self.config.variables
        self._index = {v.name: i for i, v in enumerate(variables)}
        cards = tuple(len(v.states) for v in variables)
        parents = tuple(tuple(self._index[p] for p in v.parents) for v in variables)
        given = dict(cpts or {})
        unknown = sorted(set(given) - set(self._index))
        if unknown:
            raise InvalidInputError(
                f"cpts names unknown variables {unknown}; have {list(self._index)}"
            )
        tables = []
        for v, variable in enumerate(variables):
            shape = (*(cards[p] for p in parents[v]), cards[v])
            if variable.name in given:
                tables.append(checked_cpt(variable.name, given[variable.name], shape))
            else:
                tables.append(np.full(shape, 1.0 / cards[v]))
        self._tables = NetworkTables(cards, parents, tuple(tables), order)

    # ------------------------------------------------------------ the structure

    @property
    def variables(self) -> tuple[str, ...]:
        """The variable names, in column order."""
        return tuple(self._index)

    def states(self, variable: str) -> tuple[str, ...]:
        """The states of ``variable``."""
        return self.config.variables[self._variable(variable, "variable")].states

    def parents(self, variable: str) -> tuple[str, ...]:
        """The parents of ``variable``, in the order its CPT's axes follow."""
        return self.config.variables[self._variable(variable, "variable")].parents

    def cpt(self, variable: str) -> Array:
        """A copy of the CPT of ``variable``, shape ``(*parent cards, own card)``."""
        return self._tables.cpts[self._variable(variable, "variable")].copy()

    @property
    def cpts(self) -> dict[str, Array]:
        """Copies of every CPT by variable (what the constructor's ``cpts`` takes)."""
        return {name: self.cpt(name) for name in self._index}

    @property
    def conditions(self) -> Mapping[str, Sequence[str]]:
        """Every variable can be conditioned on, with its states (``TabularRequest.evidence``)."""
        return {v.name: list(v.states) for v in self.config.variables}

    def _variable(self, name: object, where: str) -> int:
        if not isinstance(name, str) or name not in self._index:
            raise InvalidInputError(
                f"{where}: unknown variable {shown(name)}; have {list(self._index)}"
            )
        return self._index[name]

    def _evidence(self, evidence: Mapping[str, str] | None, where: str) -> dict[int, int]:
        if evidence is None:
            return {}
        if not isinstance(evidence, Mapping):
            raise InvalidInputError(
                f"{where} expected a mapping of variable to state, got {describe(evidence)}"
            )
        codes = {}
        for name, state in evidence.items():
            v = self._variable(name, where)
            states = self.config.variables[v].states
            if state not in states:
                raise InvalidInputError(
                    f"{where}: variable {name!r} has no state {shown(state)}; expected one of {list(states)}"
                )
            codes[v] = states.index(state)
        return codes

    # ------------------------------------------------------------ inference

    def _query_codes(
        self, variables: Sequence[str], evidence: Mapping[str, str] | None, where: str
    ) -> tuple[list[int], dict[int, int]]:
        if isinstance(variables, str) or not isinstance(variables, Sequence) or not variables:
            raise InvalidInputError(
                f"{where} expected a non-empty list of variables, got {describe(variables)}"
            )
        query = [self._variable(name, where) for name in variables]
        fixed = self._evidence(evidence, f"{where} evidence")
        if len(set(query)) != len(query) or set(query) & set(fixed):
            raise InvalidInputError(
                f"{where}: each variable at most once and not in the evidence, got {list(variables)} "
                f"with evidence on {sorted(evidence or {})}"
            )
        return query, fixed

    def query(
        self, variables: Sequence[str], evidence: Mapping[str, str] | None = None
    ) -> Distribution:
        """The joint posterior ``P(variables | evidence)`` by variable elimination.

        Raises:
            InvalidInputError: an unknown variable or state, a variable queried
                twice or also in the evidence, or evidence of probability zero.
        """
        query, fixed = self._query_codes(variables, evidence, "query")
        table = inference.posterior(self._tables, query, fixed)
        return Distribution(
            tuple(variables), tuple(self.config.variables[v].states for v in query), table
        )

    def marginal(
        self, variable: str, evidence: Mapping[str, str] | None = None
    ) -> dict[str, float]:
        """``{state: P(variable = state | evidence)}``."""
        return self.query([variable], evidence).as_dict()

    def likelihood_weighting(
        self,
        variables: Sequence[str],
        evidence: Mapping[str, str] | None = None,
        *,
        num_samples: int = 10_000,
        seed: int | None = None,
    ) -> Distribution:
        """An estimate of ``P(variables | evidence)`` by likelihood weighting.

        For networks too large for :meth:`query`'s exact elimination: rows are
        drawn ancestrally (ancestors of the query and evidence only) with the
        evidence clamped, each weighted by the probability of the evidence given
        its parents; the answer is the weighted frequency table. It converges to
        the exact posterior as ``num_samples`` grows; its error shrinks with the
        *effective* sample size (``Distribution.effective_sample_size``), which
        unlikely evidence makes much smaller than ``num_samples``. Vectorised
        over rows; a seed makes it reproducible.

        Raises:
            InvalidInputError: what :meth:`query` refuses, a ``num_samples`` that
                is not a positive int, or no sample consistent with the evidence.

        Example:
            >>> from genarch.models.bayes import random_network
            >>> net = random_network(40, seed=0)
            >>> estimate = net.likelihood_weighting(["x3"], {"x7": "s0"}, num_samples=20_000, seed=0)
            >>> exact = net.query(["x3"], {"x7": "s0"})
            >>> bool(abs(estimate.probabilities - exact.probabilities).max() < 0.05)
            True
        """
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise InvalidInputError(
                f"likelihood_weighting: num_samples must be a positive int, got {describe(num_samples)}"
            )
        query, fixed = self._query_codes(variables, evidence, "likelihood_weighting")
        rng = np.random.default_rng(seed)
        table, effective = inference.likelihood_weighting(
            self._tables, query, fixed, num_samples, rng
        )
        return Distribution(
            tuple(variables),
            tuple(self.config.variables[v].states for v in query),
            table,
            effective,
        )

    def map_assignment(self, evidence: Mapping[str, str] | None = None) -> MapAssignment:
        """The most probable joint state of every non-evidence variable (max-product elimination).

        Raises:
            InvalidInputError: an unknown variable or state, or evidence of probability zero.
        """
        fixed = self._evidence(evidence, "map_assignment evidence")
        best = inference.most_probable(self._tables, fixed)
        codes = np.array([[{**best, **fixed}[v] for v in range(len(self._index))]], dtype=np.int64)
        log_joint = float(inference.log_joint(self._tables, codes)[0])
        log_evidence = inference.log_evidence(self._tables, fixed)
        assignment = {
            self.config.variables[v].name: self.config.variables[v].states[s]
            for v, s in sorted(best.items())
        }
        return MapAssignment(assignment, math.exp(log_joint - log_evidence))

    def log_prob(self, samples: Sequence[Mapping[str, str | None]]) -> torch.Tensor:
        """Exact ``log P(row)`` of each row, float64 of shape ``(len(samples),)``.

        A row that leaves variables out (or sets them to ``None``) scores the
        marginal probability of what it does give (by variable elimination).
        Impossible rows score ``-inf``.

        Raises:
            InvalidInputError: not a sequence of mappings, an unknown column or state.
        """
        if isinstance(samples, Sequence) and len(samples) == 0:
            return torch.zeros(0, dtype=torch.float64)
        codes = self._encode(samples, "log_prob")
        complete = (codes >= 0).all(axis=1)
        scores = np.empty(codes.shape[0])
        scores[complete] = inference.log_joint(self._tables, codes[complete])
        for row in np.flatnonzero(~complete):
            fixed = {v: int(s) for v, s in enumerate(codes[row]) if s >= 0}
            scores[row] = inference.log_evidence(self._tables, fixed)  # -inf if impossible
        return torch.from_numpy(scores)

    # ------------------------------------------------------------ sampling

    def sample(
        self, num_rows: int, evidence: Mapping[str, str] | None = None, *, seed: int | None = None
    ) -> list[dict[str, str]]:
        """``num_rows`` rows drawn from the network, or exactly from ``P(. | evidence)``.

        Without evidence: ancestral sampling. With evidence: exact posterior
        sampling (variable elimination, then drawing in reverse elimination
        order), so every row is a true posterior draw with the evidence values.
        A seed makes the rows reproducible.

        Raises:
            InvalidInputError: a negative count, an unknown variable or state,
                or evidence of probability zero.
        """
        _check_rows(num_rows)
        fixed = self._evidence(evidence, "sample evidence")
        codes = self._sample_codes(num_rows, fixed, seed)
        return self._decode(codes)

    def sample_columns(
        self, num_rows: int, evidence: Mapping[str, str] | None = None, *, seed: int | None = None
    ) -> dict[str, list[str]]:
        """The rows :meth:`sample` draws (same seed, same rows), as one list of states per column.

        Building one dict per row is most of :meth:`sample`'s time on wide
        networks; columns skip it, and are what a data frame is built from
        (``pandas.DataFrame(net.sample_columns(n))``) and what :meth:`fit` takes.

        Raises:
            InvalidInputError: what :meth:`sample` raises.
        """
        _check_rows(num_rows)
        fixed = self._evidence(evidence, "sample_columns evidence")
        codes = self._sample_codes(num_rows, fixed, seed)
        return dict(zip(self._index, self._decode_columns(codes), strict=True))

    def _sample_codes(
        self, num_rows: int, fixed: Mapping[int, int], seed: int | None
    ) -> NDArray[np.int64]:
        uniforms = np.random.default_rng(seed).random((num_rows, len(self._index)))
        if fixed:
            return inference.posterior_sample(self._tables, fixed, uniforms)
        return inference.forward_sample(self._tables, uniforms)

    def _decode_columns(self, codes: NDArray[np.int64]) -> list[list[str]]:
        return [  # lists, not object arrays: zipping lists is several times faster
            np.asarray(v.states, dtype=object)[codes[:, i]].tolist()
            for i, v in enumerate(self.config.variables)
        ]

    def _decode(self, codes: NDArray[np.int64]) -> list[dict[str, str]]:
        names = tuple(self._index)
        blank = dict.fromkeys(names, "")  # every row's keys, in column order
        columns = self._decode_columns(codes)  # one state name per row, every column as long

        def row_dict(row: tuple[str, ...], copy: Any = blank.copy) -> dict[str, str]:
            # Copying a dict of the same keys and overwriting its values skips the
            # resizing that building a wide dict key by key goes through.
            filled: dict[str, str] = copy()
            filled.update(zip(names, row, strict=False))  # equal lengths by construction
            return filled

        # Dicts of strings hold no reference cycles, yet allocating a hundred thousand of
        # them runs the cyclic collector over the whole heap again and again (measured:
        # 5-10 % of sampling); it is paused while they are built, and restored after.
        collecting = gc.isenabled()
        gc.disable()
        try:
            return list(map(row_dict, zip(*columns, strict=False)))
        finally:
            if collecting:
                gc.enable()

    def generate(self, request: TabularRequest) -> TabularResult:
        """``request.num_rows`` rows given ``request.evidence`` (see :meth:`sample`)."""
        request = require_instance(request, TabularRequest, "BayesianNetwork.generate")
        fixed = self._evidence(request.evidence, "TabularRequest.evidence")
        return TabularResult(
            rows=tuple(self._decode(self._sample_codes(request.num_rows, fixed, request.seed)))
        )

    def generate_batch(self, requests: Sequence[TabularRequest]) -> list[TabularResult]:
        """``[generate(r) for r in requests]``, every request checked first."""
        checked = [
            require_instance(r, TabularRequest, "BayesianNetwork.generate_batch") for r in requests
        ]
        for request in checked:
            self._evidence(request.evidence, "TabularRequest.evidence")
        return [self.generate(r) for r in checked]

    # ------------------------------------------------------------ learning

    def _encode(self, data: object, where: str) -> NDArray[np.int64]:
        return encode_rows(data, self.variables, [v.states for v in self.config.variables], where)

    def fit(
        self, items: Sequence[Mapping[str, str | None]] | Mapping[str, Sequence[str | None]]
    ) -> Self:
        """Learn every CPT from data for the configured structure and estimator; returns ``self``.

        ``items`` are rows (mappings of column to state) or a column mapping;
        ``None`` or an absent column is a missing value, and each variable's
        table is learned from the rows where it and its parents are all observed
        (see :mod:`genarch.models.bayes.learning`).

        Raises:
            InvalidInputError: no rows, an unknown column or state, or a value
                that is neither a state name nor None.
        """
        codes = self._encode(items, "BayesianNetwork.fit")
        tables = self._tables
        learned = tuple(
            estimate_cpt(
                family_counts(codes, (*tables.parents[v], v), tables.cards),
                self.config.estimator,
                equivalent_sample_size=self.config.equivalent_sample_size,
                pseudo_count=self.config.pseudo_count,
            )
            for v in range(len(tables.cards))
        )
        self._tables = NetworkTables(tables.cards, tables.parents, learned, tables.order)
        return self

    # ------------------------------------------------------------ persistence

    def save(self, directory: PathLike) -> None:
        """Save the config and the CPTs as JSON (through :mod:`genarch.persistence`)."""
        cpts = {
            name: table.tolist() for name, table in zip(self._index, self._tables.cpts, strict=True)
        }
        save_component(directory, FORMAT, config=self.config, header={"cpts": cpts})

    @classmethod
    def load(cls, directory: PathLike) -> Self:
        """Load what :meth:`save` wrote.

        Raises:
            NotFoundError: nothing is saved there.
            IntegrityError: the save is corrupt, of another kind, or its tables invalid.
        """
        saved = open_saved(directory, FORMAT)
        config = saved.config(BayesianNetworkConfig)
        with reading(FORMAT, saved.root):
            cpts = saved.field("cpts")
            if not isinstance(cpts, dict):
                raise InvalidInputError(f"cpts must be an object, got {describe(cpts)}")
            return cls(config, cpts=cpts)
