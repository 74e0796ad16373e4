"""Tables in, tables out: a numpy structured array, a mapping of columns, or a pandas DataFrame.

Every public function of :mod:`genarch.privacy` reads its table through
:func:`read_table` and writes one of the same kind with :func:`write_table`, so
the checks (no rows, NaN, missing values, mixed types) and their messages are
the same everywhere. pandas is never imported here unless the caller already
has: a DataFrame is recognised by its class, and a DataFrame is only built when
one came in.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np
from numpy.typing import NDArray

from genarch.errors import InvalidInputError, MissingDependencyError
from genarch.validation import describe

__all__ = ["Table", "TableKind", "is_numeric", "read_table", "write_table"]

TableKind = Literal["structured", "columns", "pandas"]


@dataclass(frozen=True)
class Table:
    """A checked table: named 1-D columns of equal length, and the kind it came as.

    Attributes:
        columns: column name -> 1-D array (numbers as int/float/bool arrays,
            text as object arrays of ``str``).
        kind: what it came as, so :func:`write_table` gives the same back.
        dtype: the structured array's dtype (``kind == "structured"``), else ``None``.
    """

    columns: dict[str, NDArray[Any]]
    kind: TableKind
    dtype: np.dtype[Any] | None = None

    @property
    def names(self) -> tuple[str, ...]:
        """The column names, in order."""
        return tuple(self.columns)

    @property
    def num_rows(self) -> int:
        """The number of rows."""
        return len(next(iter(self.columns.values())))


def is_numeric(values: NDArray[Any]) -> bool:
    """Whether a column holds numbers (ints or floats, not bools or text)."""
    return values.dtype.kind in "iuf"


def _pandas_frame(data: object) -> Any | None:
    pandas = sys.modules.get("pandas")  # a DataFrame can only exist if pandas was imported
    if pandas is not None and isinstance(data, pandas.DataFrame):
        return data
    return None


def _checked_column(name: str, raw: object, where: str) -> NDArray[Any]:
    """One column as a clean 1-D array, or an error naming the column."""
    if isinstance(raw, str | bytes) or not isinstance(raw, Sequence | np.ndarray):
        raw_seq = getattr(raw, "to_numpy", None)  # a pandas Series
        if raw_seq is None:
            raise InvalidInputError(
                f"{where}: column {name!r} must be a sequence or 1-D array, got {describe(raw)}"
            )
        raw = raw_seq()
    # a Python sequence goes through object dtype, so ["x", 3] is not silently made ["x", "3"]
    values: NDArray[Any] = (
        raw
        if isinstance(raw, np.ndarray)
        else np.array(list(cast(Sequence[Any], raw)), dtype=object)
    )
    if values.ndim != 1:
        raise InvalidInputError(
            f"{where}: column {name!r} must be 1-D, got an array of shape {values.shape}"
        )
    kind = values.dtype.kind
    if kind == "f":
        bad = ~np.isfinite(values)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise InvalidInputError(
                f"{where}: column {name!r} holds {values[row].item()!r} at row {row}; expected finite "
                "numbers (missing values are not supported: drop or impute those rows first)"
            )
        return values.astype(np.float64)
    if kind in "iu":
        return values.astype(np.int64)
    if kind == "b":
        return values.astype(bool)
    if kind in "US":
        return np.asarray([str(v) for v in values.tolist()], dtype=object)
    if kind == "O":
        items = values.tolist()
        if all(isinstance(v, str) for v in items):  # also an empty column
            return np.asarray(items, dtype=object)
        if all(isinstance(v, bool | np.bool_) for v in items):
            return np.asarray(items, dtype=bool)
        if all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in items):
            return np.asarray(items, dtype=np.int64)
        if all(isinstance(v, int | float | np.integer | np.floating) for v in items):
            return _checked_column(name, np.asarray(items, dtype=np.float64), where)
        first = _value_kind(items[0])
        if first not in ("str", "bool", "number"):
            raise InvalidInputError(
                f"{where}: column {name!r} holds {describe(items[0])} at row 0; expected str, "
                "numbers or bool (missing values are not supported)"
            )
        row = next((i for i, v in enumerate(items) if _value_kind(v) != first), 0)
        raise InvalidInputError(
            f"{where}: column {name!r} mixes value types (row 0 is {describe(items[0])}, "
            f"row {row} is {describe(items[row])}); expected all str, all numbers or all bool "
            "(missing values are not supported)"
        )
    raise InvalidInputError(
        f"{where}: column {name!r} has the unsupported dtype {values.dtype}; "
        "expected numbers, bools or str"
    )


def _value_kind(value: object) -> str:
    if isinstance(value, str):
        return "str"
    if isinstance(value, bool | np.bool_):
        return "bool"
    if isinstance(value, int | float | np.integer | np.floating):
        return "number"
    return type(value).__name__


def read_table(data: object, where: str) -> Table:
    """Check ``data`` and return its columns.

    Raises:
        InvalidInputError: ``data`` is not a structured array, a mapping of
            columns or a DataFrame; it has no columns or no rows; the columns
            differ in length; a column holds NaN/inf, ``None``, mixed types or
            an unsupported dtype — naming the column.
    """
    frame = _pandas_frame(data)
    kind: TableKind
    dtype = None
    if frame is not None:
        raw = {str(c): frame[c].to_numpy() for c in frame.columns}
        if len(raw) != len(frame.columns):
            raise InvalidInputError(f"{where}: the DataFrame has duplicate column names")
        kind = "pandas"
    elif isinstance(data, np.ndarray):
        if data.dtype.names is None or data.ndim != 1:
            raise InvalidInputError(
                f"{where} expected a 1-D structured array (a dtype with named fields), got an "
                f"array of dtype {data.dtype} and shape {data.shape}"
            )
        raw = {name: data[name] for name in data.dtype.names}
        kind, dtype = "structured", data.dtype
    elif isinstance(data, Mapping):
        for name in data:
            if not isinstance(name, str) or not name:
                raise InvalidInputError(
                    f"{where}: column names must be non-empty str, got {describe(name)}"
                )
        raw = dict(data)
        kind = "columns"
    else:
        raise InvalidInputError(
            f"{where} expected a table: a numpy structured array, a mapping of column name to "
            f"values, or a pandas DataFrame; got {describe(data)}"
        )
    if not raw:
        raise InvalidInputError(f"{where}: the table has no columns")
    columns = {name: _checked_column(name, values, where) for name, values in raw.items()}
    lengths = {name: len(values) for name, values in columns.items()}
    if len(set(lengths.values())) > 1:
        raise InvalidInputError(f"{where}: the columns differ in length: {lengths}")
    if next(iter(lengths.values())) == 0:
        raise InvalidInputError(f"{where}: the table has no rows")
    return Table(columns, kind, dtype)


def write_table(
    columns: Mapping[str, NDArray[Any]], kind: TableKind, dtype: np.dtype[Any] | None = None
) -> Any:
    """A table of ``kind`` holding ``columns`` (the inverse of :func:`read_table`).

    ``"columns"`` gives a dict of 1-D numpy arrays; ``"structured"`` an array of
    ``dtype`` when given (fields missing from ``columns`` are not allowed), else
    one inferred from the columns; ``"pandas"`` a DataFrame.
    """
    if kind == "pandas":
        try:
            pandas = importlib.import_module("pandas")
        except ImportError:
            raise MissingDependencyError(
                "this table was a pandas DataFrame; writing one needs pandas, which is not "
                "installed. Install it with: pip install pandas"
            ) from None
        return pandas.DataFrame({name: np.asarray(v) for name, v in columns.items()})
    if kind == "structured":
        if dtype is None or set(dtype.names or ()) != set(columns):
            dtype = np.dtype([(name, _field_dtype(v)) for name, v in columns.items()])
        length = len(next(iter(columns.values()))) if columns else 0
        out = np.zeros(length, dtype=dtype)
        for name, values in columns.items():
            out[name] = values
        return out
    return {name: np.asarray(values) for name, values in columns.items()}


def _field_dtype(values: NDArray[Any]) -> np.dtype[Any]:
    if values.dtype.kind == "O":  # text: a fixed-width unicode field long enough for every value
        width = max((len(str(v)) for v in values.tolist()), default=1)
        return np.dtype(f"<U{max(width, 1)}")
    return values.dtype
