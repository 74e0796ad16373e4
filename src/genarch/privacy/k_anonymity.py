"""k-anonymity of a table, and the generalisations that raise it.

A table is *k-anonymous* over a set of quasi-identifiers (columns an attacker
may know from elsewhere: age, postcode, sex, ...) when every combination of
their values that occurs is shared by at least ``k`` rows (Sweeney 2002), so a
person cannot be narrowed down to fewer than ``k`` rows by those columns.
:func:`k_anonymity` reports the smallest such *equivalence class* (the ``k``
the table achieves) and the classes below a threshold; the helpers coarsen a
table until it reaches the ``k`` you need:

* :func:`generalize_numeric` — replace a numeric column by its interval
  (``"[30, 40)"``), from edges you give or equal-width bins;
* :func:`suppress_rare_values` — replace values seen in fewer than
  ``min_count`` rows by ``"*"``;
* :func:`suppress_small_classes` — drop the rows of every class smaller than ``k``.

k-anonymity protects against *re-identification by linkage* on the chosen
columns only. It does not stop attribute disclosure (a class whose rows all
share the same diagnosis discloses it: see l-diversity), it says nothing about
columns left out of the quasi-identifiers, and it gives no guarantee against
an attacker with other background knowledge. Differential privacy is the
guarantee that does not depend on what the attacker knows.

Examples:
    >>> table = {"age": [23, 27, 35, 38, 39], "zip": ["1010", "1010", "2020", "2020", "2020"]}
    >>> k_anonymity(table, ["age", "zip"]).k
    1
    >>> coarse = generalize_numeric(table, "age", edges=[20, 30, 40])
    >>> report = k_anonymity(coarse, ["age", "zip"])
    >>> report.k, [c.values for c in report.classes]
    (2, [('[20, 30)', '1010')])
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from genarch.errors import InvalidInputError
from genarch.privacy._tables import Table, is_numeric, read_table, write_table
from genarch.privacy.discretize import interval_labels
from genarch.validation import describe, require_count

__all__ = [
    "EquivalenceClass",
    "KAnonymityReport",
    "generalize_numeric",
    "k_anonymity",
    "suppress_rare_values",
    "suppress_small_classes",
]


@dataclass(frozen=True)
class EquivalenceClass:
    """Rows that share one combination of quasi-identifier values.

    Attributes:
        values: the quasi-identifiers' values, in the order they were named.
        size: how many rows share them.
    """

    values: tuple[Any, ...]
    size: int


@dataclass(frozen=True)
class KAnonymityReport:
    """The k-anonymity of a table over its quasi-identifiers.

    Attributes:
        k: the size of the smallest equivalence class (the table is k-anonymous for this k).
        quasi_identifiers: the columns that were grouped on.
        num_rows: rows in the table.
        num_classes: how many equivalence classes there are.
        classes: the classes smaller than the ``threshold`` asked for (all of
            size ``k`` when none was given), smallest first.
    """

    k: int
    quasi_identifiers: tuple[str, ...]
    num_rows: int
    num_classes: int
    classes: tuple[EquivalenceClass, ...]


def _quasi_identifiers(table: Table, quasi_identifiers: object, where: str) -> tuple[str, ...]:
    if isinstance(quasi_identifiers, str) or not isinstance(quasi_identifiers, Sequence):
        raise InvalidInputError(
            f"{where} expected quasi_identifiers as a non-empty list of column names, got "
            f"{describe(quasi_identifiers)}"
        )
    names = tuple(quasi_identifiers)
    unknown = [n for n in names if n not in table.columns]
    if not names or unknown or len(set(names)) != len(names):
        raise InvalidInputError(
            f"{where}: quasi_identifiers must name distinct columns of the table "
            f"{list(table.names)}, got {list(names)}"
        )
    return names


def _keys(table: Table, names: Sequence[str]) -> list[tuple[Any, ...]]:
    return list(zip(*(table.columns[n].tolist() for n in names), strict=True))


def k_anonymity(
    table: object, quasi_identifiers: Sequence[str], *, threshold: int | None = None
) -> KAnonymityReport:
    """The smallest equivalence class over ``quasi_identifiers``, and the offending classes.

    Args:
        table: a numpy structured array, a mapping of columns or a pandas DataFrame.
        quasi_identifiers: the columns an attacker may link on.
        threshold: report every class smaller than this (default: the classes of size ``k``).

    Raises:
        InvalidInputError: not a valid table (no rows, NaN, ...), unknown or
            repeated quasi-identifiers, or a threshold that is not an int >= 1.
    """
    where = "k_anonymity"
    checked = read_table(table, where)
    names = _quasi_identifiers(checked, quasi_identifiers, where)
    counts = Counter(_keys(checked, names))
    k = min(counts.values())
    limit = k + 1 if threshold is None else require_count(threshold, where, "threshold")
    small = sorted(
        (EquivalenceClass(values, size) for values, size in counts.items() if size < limit),
        key=lambda c: (c.size, [str(v) for v in c.values]),
    )
    return KAnonymityReport(k, names, checked.num_rows, len(counts), tuple(small))


def generalize_numeric(
    table: object,
    column: str,
    *,
    edges: Sequence[float] | None = None,
    bins: int | None = None,
) -> Any:
    """``table`` with the numeric ``column`` replaced by interval labels (``"[30, 40)"``).

    Give increasing ``edges`` (values outside fall into ``"< first"`` /
    ``">= last"``; the last interval is closed) or a number of equal-width
    ``bins`` between the column's minimum and maximum. Returns a table of the
    same kind; the column becomes text.

    Raises:
        InvalidInputError: not a valid table, an unknown or non-numeric column,
            both or neither of ``edges`` and ``bins``, or edges that do not increase.
    """
    where = "generalize_numeric"
    checked = read_table(table, where)
    values = _column(checked, column, where)
    if not is_numeric(values):
        raise InvalidInputError(f"{where}: column {column!r} is not numeric ({values.dtype})")
    if (edges is None) == (bins is None):
        raise InvalidInputError(
            f"{where}: give either edges or bins, got edges={edges}, bins={bins}"
        )
    if bins is not None:
        count = require_count(bins, where, "bins")
        cuts = np.linspace(float(values.min()), float(values.max()), count + 1)
    else:
        cuts = np.asarray(edges, dtype=np.float64)
        if cuts.ndim != 1 or len(cuts) < 2 or not np.all(np.diff(cuts) > 0):
            raise InvalidInputError(
                f"{where}: edges must be at least two increasing numbers, got {list(edges or [])}"
            )
    labels = interval_labels(cuts)
    index = np.searchsorted(cuts, values, side="right") - 1
    index = np.where(values == cuts[-1], len(cuts) - 2, index)  # the closed last interval
    out = np.asarray(
        [
            f"< {cuts[0]:g}" if i < 0 else f">= {cuts[-1]:g}" if i >= len(labels) else labels[i]
            for i in index.tolist()
        ],
        dtype=object,
    )
    return _replaced(checked, {column: out}, same_types=False)


def suppress_rare_values(
    table: object, column: str, *, min_count: int, replacement: str = "*"
) -> Any:
    """``table`` with every value of ``column`` seen in fewer than ``min_count`` rows replaced.

    The column becomes text (``str`` of each kept value, ``replacement`` for
    the rare ones). Returns a table of the same kind.

    Raises:
        InvalidInputError: not a valid table, an unknown column, or ``min_count`` not an int >= 1.
    """
    where = "suppress_rare_values"
    checked = read_table(table, where)
    values = _column(checked, column, where)
    min_count = require_count(min_count, where, "min_count")
    counts = Counter(values.tolist())
    out = np.asarray(
        [str(v) if counts[v] >= min_count else replacement for v in values.tolist()], dtype=object
    )
    return _replaced(checked, {column: out}, same_types=False)


def suppress_small_classes(table: object, quasi_identifiers: Sequence[str], *, k: int) -> Any:
    """``table`` without the rows of equivalence classes smaller than ``k``: k-anonymous.

    Raises:
        InvalidInputError: not a valid table, bad quasi-identifiers, ``k`` not
            an int >= 1, or every row would be dropped.
    """
    where = "suppress_small_classes"
    checked = read_table(table, where)
    names = _quasi_identifiers(checked, quasi_identifiers, where)
    k = require_count(k, where, "k")
    keys = _keys(checked, names)
    counts = Counter(keys)
    keep = np.asarray([counts[key] >= k for key in keys])
    if not keep.any():
        raise InvalidInputError(
            f"{where}: every equivalence class over {list(names)} has fewer than {k} rows; "
            "generalise the quasi-identifiers first"
        )
    return _replaced(checked, {n: v[keep] for n, v in checked.columns.items()}, same_types=True)


def _column(table: Table, column: str, where: str) -> NDArray[Any]:
    if column not in table.columns:
        raise InvalidInputError(
            f"{where}: unknown column {describe(column)}; the table has {list(table.names)}"
        )
    return table.columns[column]


def _replaced(table: Table, changed: dict[str, NDArray[Any]], *, same_types: bool) -> Any:
    """A table of the input's kind with ``changed`` columns; a structured array keeps its
    dtype only when no column changed type (else one is inferred: text becomes ``<U``)."""
    columns = {name: changed.get(name, values) for name, values in table.columns.items()}
    return write_table(columns, table.kind, table.dtype if same_types else None)
