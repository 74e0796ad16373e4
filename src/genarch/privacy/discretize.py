"""Mixed data for a discrete Bayesian network: each column to a few named states and back.

A :class:`ColumnCoding` maps one column to the states of a network variable
and samples values back from states:

* **categorical** (text, bools, or numbers named as categorical): one state per
  value, decoded to exactly that value;
* **numeric with few values** (no more distinct values than bins): one state
  per value, decoded exactly (a count column with values 0..3 stays 0..3);
* **numeric** otherwise: ``bins`` intervals. :meth:`ColumnCoding.learn` puts
  the edges at the column's quantiles (so each bin holds about the same number
  of rows; repeated quantiles are merged, so heavily tied columns get fewer
  bins); :meth:`ColumnCoding.within_bounds` puts equal-width edges between
  bounds you give, without looking at the data. A state decodes to a value
  drawn **uniformly within its bin** — the distribution inside a bin is not
  learned — and an integer column's draw is rounded to the nearest integer.

Privacy: quantile edges, the minimum and maximum, and the set of categories
are all read from the data, so they disclose facts about individual rows (the
largest value *is* some row's value). The ε-DP mode of
:class:`~genarch.privacy.TabularSynthesizer` therefore refuses learned edges
and uses only :meth:`ColumnCoding.within_bounds` and categories given by the
user (see docs/concepts/privacy.md).

Examples:
    >>> import numpy as np
    >>> coding = ColumnCoding.learn("age", np.arange(100.0), bins=4)
    >>> coding.states
    ('[0, 24.75)', '[24.75, 49.5)', '[49.5, 74.25)', '[74.25, 99]')
    >>> coding.encode(np.array([3.0, 50.0, 99.0])).tolist()
    [0, 2, 3]
    >>> values = coding.decode(np.array([1, 1]), np.random.default_rng(0))
    >>> bool(((values >= 24.75) & (values < 49.5)).all())
    True
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Self

import numpy as np
from numpy.typing import NDArray

from genarch.errors import InvalidInputError
from genarch.privacy._tables import is_numeric

__all__ = ["ColumnCoding", "Scalar", "interval_labels"]

Scalar = str | bool | int | float


@dataclass(frozen=True)
class ColumnCoding:
    """How one column becomes network states and how states become values again.

    Attributes:
        name: the column.
        kind: ``"categorical"`` (states are values) or ``"numeric"``.
        dtype: the column's numpy dtype (``"float64"``, ``"int64"``, ``"bool"``, ``"object"``).
        states: the network variable's state names, in code order.
        values: for point states, the value of each state (categorical columns
            and numeric columns with few values); else ``None``.
        edges: for binned numeric columns, ``len(states) + 1`` increasing edges.
    """

    name: str
    kind: Literal["categorical", "numeric"]
    dtype: str
    states: tuple[str, ...]
    values: tuple[Scalar, ...] | None = None
    edges: tuple[float, ...] | None = None

    # -------------------------------------------------------------- building

    @classmethod
    def categories(
        cls,
        name: str,
        values: NDArray[Any],
        categories: Sequence[Scalar],
        kind: Literal["categorical", "numeric"] = "categorical",
    ) -> Self:
        """Point states for ``categories`` (in the given order), typed like ``values``.

        Raises:
            InvalidInputError: the categories are empty or repeat a value.
        """
        cast = [_as_python(v) for v in categories]
        if len(set(cast)) != len(cast) or not cast:
            raise InvalidInputError(
                f"the categories of column {name!r} must be distinct and non-empty, got {cast}"
            )
        return cls(
            name,
            kind,
            str(values.dtype),
            _state_names(cast),
            values=tuple(cast),
        )

    @classmethod
    def learn(cls, name: str, values: NDArray[Any], *, bins: int) -> Self:
        """Learn a coding from the data: categories, distinct values, or quantile bins.

        Raises:
            InvalidInputError: the column holds a single value (a network
                variable needs at least two states; drop the column or give its
                categories/bounds).
        """
        distinct = np.unique(values)
        if len(distinct) < 2:
            raise InvalidInputError(
                f"column {name!r} holds a single value ({_as_python(distinct[0])!r}); a "
                "synthesizer learns nothing from it: drop the column (and add it back as a "
                "constant) or give its categories/bounds"
            )
        if not is_numeric(values):
            return cls.categories(name, values, sorted(distinct.tolist()))
        if len(distinct) <= bins:
            return cls.categories(name, values, distinct.tolist(), kind="numeric")
        edges = np.unique(np.quantile(values.astype(np.float64), np.linspace(0.0, 1.0, bins + 1)))
        return cls._binned(name, values, edges)

    @classmethod
    def within_bounds(
        cls, name: str, values: NDArray[Any], low: float, high: float, *, bins: int
    ) -> Self:
        """Equal-width bins between public bounds (values outside are clipped to them).

        Raises:
            InvalidInputError: the column is not numeric, or ``low >= high``.
        """
        if not is_numeric(values):
            raise InvalidInputError(
                f"bounds were given for column {name!r}, which is not numeric ({values.dtype}); "
                "give its categories instead"
            )
        if not (np.isfinite(low) and np.isfinite(high) and low < high):
            raise InvalidInputError(
                f"the bounds of column {name!r} must be finite with low < high, got ({low}, {high})"
            )
        return cls._binned(name, values, np.linspace(low, high, bins + 1))

    @classmethod
    def _binned(cls, name: str, values: NDArray[Any], edges: NDArray[np.float64]) -> Self:
        labels = interval_labels(edges)
        if len(set(labels)) != len(labels):  # edges closer than 6 significant digits
            labels = [f"bin {i}: {label}" for i, label in enumerate(labels)]
        return cls(
            name,
            "numeric",
            str(values.dtype),
            tuple(labels),
            edges=tuple(float(e) for e in edges),
        )

    # -------------------------------------------------------------- using

    def encode(self, values: NDArray[Any]) -> NDArray[np.int64]:
        """The state code of every value.

        Binned values outside the edges fall in the first or last bin.

        Raises:
            InvalidInputError: a value that is not one of the column's point values.
        """
        if self.edges is not None:
            inner = np.asarray(self.edges[1:-1])
            return np.searchsorted(inner, values.astype(np.float64), side="right").astype(np.int64)
        assert self.values is not None, "a coding has edges or values"
        lookup = {v: i for i, v in enumerate(self.values)}
        codes = np.empty(len(values), dtype=np.int64)
        for row, value in enumerate(values.tolist()):
            code = lookup.get(_as_python(value))
            if code is None:
                raise InvalidInputError(
                    f"column {self.name!r}, row {row}: {value!r} is not one of its "
                    f"{len(self.values)} known values {list(self.values)[:10]}"
                )
            codes[row] = code
        return codes

    def decode(self, codes: NDArray[np.int64], rng: np.random.Generator) -> NDArray[Any]:
        """Values for state codes: the point value, or a uniform draw within the bin."""
        if self.edges is None:
            assert self.values is not None, "a coding has edges or values"
            points: NDArray[Any] = np.asarray(self.values, dtype=self.dtype)
            return points[codes]
        edges = np.asarray(self.edges)
        low, high = edges[codes], edges[codes + 1]
        drawn = low + (high - low) * rng.random(len(codes))
        if np.dtype(self.dtype).kind in "iu":
            drawn = np.clip(np.rint(drawn), edges[0], edges[-1])
        out: NDArray[Any] = drawn.astype(self.dtype)
        return out

    # -------------------------------------------------------------- storing

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready mapping (what :meth:`from_json` reads)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "dtype": self.dtype,
            "states": list(self.states),
            "values": None if self.values is None else list(self.values),
            "edges": None if self.edges is None else list(self.edges),
        }

    @classmethod
    def from_json(cls, data: Any) -> Self:
        """Read what :meth:`to_json` wrote.

        Raises:
            InvalidInputError: fields missing or inconsistent.
        """
        if not isinstance(data, dict):
            raise InvalidInputError(f"a column coding must be an object, got {type(data).__name__}")
        values, edges = data.get("values"), data.get("edges")
        coding = cls(
            str(data["name"]),
            "numeric" if data["kind"] == "numeric" else "categorical",
            str(np.dtype(data["dtype"])),
            tuple(str(s) for s in data["states"]),
            values=None if values is None else tuple(values),
            edges=None if edges is None else tuple(float(e) for e in edges),
        )
        count = len(coding.values) if coding.values is not None else None
        if coding.edges is not None:
            count = len(coding.edges) - 1
            if not np.all(np.diff(coding.edges) > 0):
                raise InvalidInputError(f"column {coding.name!r}: edges must increase")
        if count != len(coding.states) or len(coding.states) < 1:
            raise InvalidInputError(f"column {coding.name!r}: states and values/edges disagree")
        return coding


def interval_labels(edges: Sequence[float] | NDArray[np.float64]) -> list[str]:
    """``"[a, b)"`` for each pair of consecutive edges; the last interval is closed: ``"[a, b]"``."""
    pairs = list(itertools.pairwise(float(e) for e in edges))
    return [
        f"[{a:.6g}, {b:.6g}{']' if i == len(pairs) - 1 else ')'}" for i, (a, b) in enumerate(pairs)
    ]


def _as_python(value: Any) -> Scalar:
    """A numpy scalar as the plain Python value (JSON-ready, hashable)."""
    item = value.item() if isinstance(value, np.generic) else value
    if not isinstance(item, str | bool | int | float):
        raise InvalidInputError(f"expected a str, bool or number, got {type(item).__name__}")
    return item


def _state_names(values: Sequence[Scalar]) -> tuple[str, ...]:
    names = [str(v) for v in values]
    if len(set(names)) != len(names):  # e.g. 1 and "1": keep them apart
        names = [f"{i}: {n}" for i, n in enumerate(names)]
    return tuple(names)
