"""Synthetic tables from a Bayesian network: fit on a real table, sample a look-alike.

:class:`TabularSynthesizer` reads a table (numpy structured array, mapping of
columns, or pandas DataFrame), codes every column into a few states
(:mod:`genarch.privacy.discretize`), learns a discrete
:class:`~genarch.models.bayes.BayesianNetwork` over the states and samples new
rows, decoding each state back to a value of the column's type. Three ways to
learn the network (``structure``):

* ``"hill_climb"`` — BIC hill climbing with at most ``max_parents`` parents,
  then the configured estimator for the tables (not private);
* ``"chow_liu"`` — the Chow-Liu tree, then the estimator (not private);
* ``"privbayes"`` — PrivBayes (:mod:`genarch.privacy.privbayes`): with
  ``epsilon`` set, ε-differentially private; without, its noiseless greedy form.

In the ε-DP mode nothing about the coding may come from the data: every numeric
column needs public ``bounds`` (equal-width bins, values clipped to them) and
every other column its ``categories``; the fit refuses to learn either. The
privacy account of the fit is kept with the model (:attr:`TabularSynthesizer.privacy_account`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, Self

import numpy as np
from numpy.typing import NDArray
from pydantic import Field, model_validator

from genarch.configured import Configured
from genarch.errors import InvalidInputError
from genarch.models.bayes import BayesianNetwork, chow_liu, hill_climb
from genarch.persistence import open_saved, reading, save_component
from genarch.privacy._tables import Table, TableKind, is_numeric, read_table, write_table
from genarch.privacy.discretize import ColumnCoding
from genarch.privacy.privbayes import PrivacyAccount, learn_privbayes
from genarch.protocols import PathLike
from genarch.schemas import Config, TabularRequest, TabularResult
from genarch.validation import describe, require_count, require_instance

__all__ = ["TabularSynthesizer", "TabularSynthesizerConfig"]

FORMAT = "genarch.tabular_synthesizer/1"
Category = str | bool | int | float


class TabularSynthesizerConfig(Config):
    """How :class:`TabularSynthesizer` codes the columns and learns the network."""

    structure: Literal["hill_climb", "chow_liu", "privbayes"] = "hill_climb"
    """How the network's graph is chosen (``"privbayes"`` for differential privacy)."""
    epsilon: Annotated[float, Field(gt=0.0, allow_inf_nan=False)] | None = None
    """The total privacy budget ε (``structure="privbayes"`` only); ``None``: not private."""
    structure_share: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.3
    """ε₁ / ε, the share of the budget spent on the structure (Zhang et al. use 0.3)."""
    max_parents: Annotated[int, Field(ge=0, le=8)] = 2
    """The most parents of a variable (hill climbing's in-degree, PrivBayes' degree k)."""
    bins: Annotated[int, Field(ge=2, le=256)] = 8
    """Bins per numeric column (a numeric column with no more distinct values keeps them)."""
    categorical: tuple[str, ...] = ()
    """Numeric columns to treat as categories (a class label stored as 0/1/2)."""
    bounds: dict[str, tuple[float, float]] = Field(default_factory=dict)
    """Public ``(low, high)`` of numeric columns: equal-width bins instead of quantiles."""
    categories: dict[str, tuple[Category, ...]] = Field(default_factory=dict)
    """Public values of columns: their states, instead of the values seen."""
    estimator: Literal["mle", "bdeu", "dirichlet"] = "bdeu"
    """How hill climbing and Chow-Liu estimate the tables (PrivBayes has its own)."""
    seed: int | None = None
    """The randomness of fitting (PrivBayes' draws and noise); ``None``: fresh entropy.
    A DP release is private only if its seed is secret."""

    @model_validator(mode="after")
    def _privacy_needs_privbayes(self) -> Self:
        if self.epsilon is not None and self.structure != "privbayes":
            raise ValueError(
                f"epsilon is set, so structure must be 'privbayes' (got {self.structure!r}): "
                "hill climbing and Chow-Liu are not differentially private"
            )
        for name, (low, high) in self.bounds.items():
            if not low < high:
                raise ValueError(f"bounds[{name!r}] must have low < high, got ({low}, {high})")
        return self


class TabularSynthesizer(Configured[TabularSynthesizerConfig]):
    """Learns a Bayesian network from a table and samples synthetic tables like it.

    A single-valued column is refused (``InvalidInputError`` naming it): a
    network variable needs two states, and a constant column says nothing a
    synthesizer should learn — drop it and add it back yourself, or give its
    ``categories`` (then it is kept, as a variable with those states).

    Args:
        config: the settings (or a mapping of them).
        **fields: shorthand for the config's fields.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> age = rng.integers(18, 90, 300)
        >>> table = {"age": age, "smoker": np.where(age > 50, "yes", "no")}
        >>> synth = TabularSynthesizer(bins=4).fit(table)
        >>> fake = synth.sample(5, seed=1)
        >>> sorted(fake), fake["age"].dtype.kind, len(fake["smoker"])
        (['age', 'smoker'], 'i', 5)
    """

    def __init__(
        self, config: TabularSynthesizerConfig | Mapping[str, Any] | None = None, **fields: Any
    ) -> None:
        Configured.__init__(self, config, **fields)
        self._codings: tuple[ColumnCoding, ...] | None = None
        self._network: BayesianNetwork | None = None
        self._account: PrivacyAccount | None = None
        self._kind: TableKind = "columns"
        self._dtype: np.dtype[Any] | None = None

    # ------------------------------------------------------------ fitted state

    @property
    def network(self) -> BayesianNetwork:
        """The fitted network over the coded columns.

        Raises:
            InvalidInputError: not fitted yet.
        """
        return self._fitted("network")[1]

    @property
    def codings(self) -> tuple[ColumnCoding, ...]:
        """How each column maps to states (its bins or values), in column order."""
        return self._fitted("codings")[0]

    @property
    def privacy_account(self) -> PrivacyAccount | None:
        """What the fit spent of the privacy budget; ``None`` unless ``epsilon`` was set."""
        self._fitted("privacy_account")
        return self._account

    def _fitted(self, what: str) -> tuple[tuple[ColumnCoding, ...], BayesianNetwork]:
        if self._codings is None or self._network is None:
            raise InvalidInputError(
                f"TabularSynthesizer.{what} needs a fitted synthesizer: call fit(table) first"
            )
        return self._codings, self._network

    # ------------------------------------------------------------ learning

    def _codings_for(self, table: Table) -> tuple[ColumnCoding, ...]:
        config = self.config
        private = config.epsilon is not None
        unknown = sorted(
            (set(config.bounds) | set(config.categories) | set(config.categorical))
            - set(table.names)
        )
        if unknown:
            raise InvalidInputError(
                f"TabularSynthesizer.fit: the config names columns the table lacks: {unknown}; "
                f"the table has {list(table.names)}"
            )
        codings = []
        for name, values in table.columns.items():
            if name in config.categories:
                coding = ColumnCoding.categories(name, values, config.categories[name])
            elif name in config.bounds:
                low, high = config.bounds[name]
                coding = ColumnCoding.within_bounds(name, values, low, high, bins=config.bins)
            elif private:
                need = (
                    "bounds"
                    if is_numeric(values) and name not in config.categorical
                    else "categories"
                )
                raise InvalidInputError(
                    f"TabularSynthesizer.fit: column {name!r} has no public {need}; with epsilon "
                    f"set, bins and categories learned from the data would leak it: give "
                    f"{need}={{{name!r}: ...}} in the config"
                )
            elif name in config.categorical:
                distinct = np.unique(values)
                if len(distinct) < 2:
                    raise InvalidInputError(
                        f"TabularSynthesizer.fit: column {name!r} holds a single value "
                        f"({distinct[0]!r}); drop it or give its categories"
                    )
                coding = ColumnCoding.categories(name, values, distinct.tolist())
            else:
                try:
                    coding = ColumnCoding.learn(name, values, bins=config.bins)
                except InvalidInputError as error:
                    raise InvalidInputError(f"TabularSynthesizer.fit: {error}") from None
            codings.append(coding)
        return tuple(codings)

    def fit(self, table: object) -> Self:
        """Code the columns, learn the network's structure and tables; returns ``self``.

        Args:
            table: a numpy structured array, a mapping of column name to values
                (sequences or 1-D arrays of equal length), or a pandas DataFrame.
                Numbers are numeric columns unless named in ``categorical``;
                str and bool columns are categorical.

        Raises:
            InvalidInputError: no rows or columns, NaN/inf, missing values,
                mixed types, a single-valued column, a value outside the given
                categories, or (with ``epsilon``) a column without public bounds
                or categories — naming the column.
        """
        checked = read_table(table, "TabularSynthesizer.fit")
        codings = self._codings_for(checked)
        try:
            codes = np.stack([c.encode(checked.columns[c.name]) for c in codings], axis=1)  # (N, V)
        except InvalidInputError as error:
            raise InvalidInputError(f"TabularSynthesizer.fit: {error}") from None
        config = self.config
        names = [c.name for c in codings]
        variables = [{"name": c.name, "states": c.states} for c in codings]
        if config.structure == "privbayes":
            rng = np.random.default_rng(config.seed)
            learned = learn_privbayes(
                codes,
                [len(c.states) for c in codings],
                epsilon=config.epsilon,
                degree=config.max_parents,
                structure_share=config.structure_share,
                rng=rng,
            )
            for variable, parents in zip(variables, learned.parents, strict=True):
                variable["parents"] = tuple(names[p] for p in parents)
            network = BayesianNetwork(
                variables=variables,
                cpts=dict(zip(names, learned.tables, strict=True)),
            )
            account = learned.account
        else:
            columns = {
                c.name: [c.states[s] for s in codes[:, j].tolist()] for j, c in enumerate(codings)
            }
            states = {c.name: c.states for c in codings}
            if config.structure == "chow_liu":
                structure = chow_liu(columns, states=states, estimator=config.estimator)
            else:
                structure = hill_climb(
                    columns,
                    states=states,
                    score="bic",
                    max_indegree=config.max_parents,
                    estimator=config.estimator,
                )
            network = BayesianNetwork(structure).fit(columns)
            account = None
        self._codings, self._network, self._account = codings, network, account
        self._kind = checked.kind
        self._dtype = checked.dtype
        return self

    # ------------------------------------------------------------ sampling

    def sample(self, num_rows: int, *, seed: int | None = None) -> Any:
        """A synthetic table of ``num_rows`` rows, of the kind and columns fitted on.

        A structured array gives a structured array of the same dtype, a
        DataFrame a DataFrame, a mapping a ``dict`` of 1-D numpy arrays.
        Numeric columns get a value drawn uniformly within the sampled bin
        (rounded for integer columns); categorical columns a value seen in
        training (or given as a category). The same seed gives the same table.

        Raises:
            InvalidInputError: not fitted, or ``num_rows`` not an int >= 1.
        """
        codings, network = self._fitted("sample")
        num_rows = require_count(num_rows, "TabularSynthesizer.sample", "num_rows")
        rng = np.random.default_rng(seed)
        rows = network.sample(num_rows, seed=int(rng.integers(2**63 - 1)))
        columns: dict[str, NDArray[Any]] = {}
        for coding in codings:
            lookup = {state: code for code, state in enumerate(coding.states)}
            codes = np.fromiter((lookup[row[coding.name]] for row in rows), np.int64, num_rows)
            columns[coding.name] = coding.decode(codes, rng)
        return write_table(columns, self._kind, self._dtype)

    @property
    def conditions(self) -> Mapping[str, Sequence[str]]:
        """Every column can be conditioned on in :meth:`generate`, with its states."""
        return self.network.conditions

    def generate(self, request: TabularRequest) -> TabularResult:
        """Rows of *states* (bin labels, category names) for ``request``, given its evidence.

        The :class:`~genarch.protocols.Generator` face of the synthesizer: the
        network's rows, not decoded to values (use :meth:`sample` for a table).

        Raises:
            InvalidInputError: not fitted, or evidence on an unknown column or state.
        """
        request = require_instance(request, TabularRequest, "TabularSynthesizer.generate")
        return self.network.generate(request)

    def generate_batch(self, requests: Sequence[TabularRequest]) -> list[TabularResult]:
        """``[generate(r) for r in requests]``, every request checked first."""
        return self.network.generate_batch(requests)

    # ------------------------------------------------------------ persistence

    def save(self, directory: PathLike) -> None:
        """Save the config, codings, network and privacy account as JSON.

        Raises:
            InvalidInputError: not fitted.
        """
        codings, network = self._fitted("save")
        save_component(
            directory,
            FORMAT,
            config=self.config,
            header={
                "codings": [c.to_json() for c in codings],
                "network": {
                    "config": network.config.model_dump(mode="json"),
                    "cpts": {name: table.tolist() for name, table in network.cpts.items()},
                },
                "privacy_account": None if self._account is None else self._account.to_json(),
                "table": {
                    "kind": self._kind,
                    "dtype": None if self._dtype is None else self._dtype.descr,
                },
            },
        )

    @classmethod
    def load(cls, directory: PathLike) -> Self:
        """Load what :meth:`save` wrote.

        Raises:
            NotFoundError: nothing is saved there.
            IntegrityError: the save is corrupt, of another kind, or inconsistent.
        """
        saved = open_saved(directory, FORMAT)
        config = saved.config(TabularSynthesizerConfig)
        with reading(FORMAT, saved.root):
            synthesizer = cls(config)
            codings = tuple(ColumnCoding.from_json(c) for c in saved.field("codings"))
            stored = saved.field("network")
            if not isinstance(stored, dict):
                raise InvalidInputError(f"network must be an object, got {describe(stored)}")
            network = BayesianNetwork(stored["config"], cpts=stored["cpts"])
            if network.variables != tuple(c.name for c in codings) or any(
                network.states(c.name) != c.states for c in codings
            ):
                raise InvalidInputError("the network's variables disagree with the codings")
            account = saved.field("privacy_account")
            table = saved.field("table")
            kind = table["kind"]
            if kind not in ("structured", "columns", "pandas"):
                raise InvalidInputError(f"unknown table kind {kind!r}")
            descr = table["dtype"]
            synthesizer._codings = codings
            synthesizer._network = network
            synthesizer._account = None if account is None else PrivacyAccount.from_json(account)
            synthesizer._kind = kind
            synthesizer._dtype = None if descr is None else np.dtype([tuple(f) for f in descr])
        return synthesizer
