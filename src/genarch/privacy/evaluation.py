"""How good, and how revealing, is a synthetic table? :func:`evaluate_synthetic`.

Three tables: the real rows the synthesizer was fitted on (``real_train``),
real rows it never saw (``real_holdout``), and the ``synthetic`` rows. Every
column is coded once, from ``real_train`` (numeric columns into ``bins``
quantile bins, categorical columns into the values seen in any of the three),
and the report holds:

**Utility**

* *Total-variation distance* per column between the real-train and synthetic
  distributions of the coded column, ``½ Σ |p - q|`` (0 = identical, 1 = disjoint).
* *Pairwise association*: Cramér's V of every pair of coded columns, in the real
  and in the synthetic table, and the largest and mean absolute difference.
* *TSTR vs TRTR* (with ``target``): a scikit-learn classifier (default a random
  forest) trained on the synthetic table and on the real training table, both
  tested on the holdout (train-on-synthetic/test-on-real vs train-on-real/test-on-real).
  Numeric features are used as they are, categorical ones one-hot.

**Disclosure**

* *Distance to closest record* (DCR): for each synthetic row, the distance to
  its nearest real training row, compared with the same distance for holdout
  rows (which the model never saw). Synthetic rows much closer to the training
  rows than holdout rows are copies, not samples. The distance is Gower's:
  the mean over columns of ``|x - y| / range`` (numeric, range from
  ``real_train``) or ``[x != y]`` (categorical).
* *Membership-inference AUC*: a distance attack. Every real row (members =
  ``real_train``, non-members = ``real_holdout``) is scored by minus its
  distance to the closest synthetic row; the AUC of that score separating
  members from non-members. 0.5 is a coin toss; 1.0 means the synthetic table
  gives membership away. It is one attack, not a bound: a low AUC does not
  prove privacy (only differential privacy bounds every attack).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from genarch.errors import InvalidInputError, missing_dependency
from genarch.privacy._tables import Table, is_numeric, read_table
from genarch.privacy.discretize import ColumnCoding
from genarch.validation import describe, require_count

__all__ = ["SyntheticDataReport", "evaluate_synthetic"]

Array = NDArray[np.float64]


@dataclass(frozen=True)
class SyntheticDataReport:
    """What :func:`evaluate_synthetic` measured. Distances are in ``[0, 1]``.

    Attributes:
        num_train: rows of the real training table.
        num_holdout: rows of the real holdout table.
        num_synthetic: rows of the synthetic table.
        column_tvd: total-variation distance of each column (real train vs synthetic).
        columns: the column order of the association matrices.
        real_association: Cramér's V between every pair of columns, real train.
        synthetic_association: the same, synthetic.
        target: the column the classifiers predict, or ``None``.
        classifier: the classifier's name, or ``None`` without a target.
        trtr_accuracy: holdout accuracy of the classifier trained on the real table.
        tstr_accuracy: holdout accuracy of the classifier trained on the synthetic table.
        dcr_synthetic: quantiles (5%, 50%) of synthetic rows' distance to the closest training row.
        dcr_holdout: the same quantiles for holdout rows (the reference).
        exact_copy_share: the share of synthetic rows identical to a training row.
        membership_auc: AUC of the distance membership-inference attack.
    """

    num_train: int
    num_holdout: int
    num_synthetic: int
    column_tvd: dict[str, float]
    columns: tuple[str, ...]
    real_association: tuple[tuple[float, ...], ...]
    synthetic_association: tuple[tuple[float, ...], ...]
    target: str | None
    classifier: str | None
    trtr_accuracy: float | None
    tstr_accuracy: float | None
    dcr_synthetic: tuple[float, float]
    dcr_holdout: tuple[float, float]
    exact_copy_share: float
    membership_auc: float

    @property
    def mean_tvd(self) -> float:
        """The mean of :attr:`column_tvd`."""
        return float(np.mean(list(self.column_tvd.values())))

    @property
    def max_tvd(self) -> float:
        """The largest of :attr:`column_tvd`."""
        return float(max(self.column_tvd.values()))

    @property
    def association_difference(self) -> tuple[float, float]:
        """``(max, mean)`` absolute difference of the two Cramér's V matrices (off-diagonal)."""
        real, synthetic = np.asarray(self.real_association), np.asarray(self.synthetic_association)
        if real.shape[0] < 2:
            return (0.0, 0.0)
        off = ~np.eye(real.shape[0], dtype=bool)
        difference = np.abs(real - synthetic)[off]
        return float(difference.max()), float(difference.mean())

    @property
    def tstr_ratio(self) -> float | None:
        """TSTR / TRTR accuracy (``None`` without a target)."""
        if self.tstr_accuracy is None or not self.trtr_accuracy:
            return None
        return self.tstr_accuracy / self.trtr_accuracy

    def to_markdown(self) -> str:
        """The report as a short Markdown document: a summary table, then every column's TVD."""
        largest, mean = self.association_difference
        lines = [
            f"## Synthetic data report ({self.num_synthetic} synthetic rows; "
            f"{self.num_train} real training rows, {self.num_holdout} holdout rows)",
            "",
            "| measure | value |",
            "|---|---|",
            f"| mean / max total-variation distance per column | {self.mean_tvd:.3f} / {self.max_tvd:.3f} |",
            f"| Cramér's V difference, max / mean over pairs | {largest:.3f} / {mean:.3f} |",
        ]
        if self.target is not None:
            ratio = self.tstr_ratio
            lines += [
                f"| TRTR accuracy ({self.classifier}, target {self.target!r}) | {self.trtr_accuracy:.3f} |",
                f"| TSTR accuracy | {self.tstr_accuracy:.3f} |",
                f"| TSTR / TRTR | {'n/a' if ratio is None else f'{ratio:.3f}'} |",
            ]
        lines += [
            f"| distance to closest training row, synthetic (5% / median) | "
            f"{self.dcr_synthetic[0]:.3f} / {self.dcr_synthetic[1]:.3f} |",
            f"| the same for holdout rows (reference) | "
            f"{self.dcr_holdout[0]:.3f} / {self.dcr_holdout[1]:.3f} |",
            f"| synthetic rows that copy a training row | {self.exact_copy_share:.1%} |",
            f"| membership-inference AUC (distance attack; 0.5 = chance) | {self.membership_auc:.3f} |",
            "",
            "| column | TVD |",
            "|---|---|",
            *(f"| {name} | {value:.3f} |" for name, value in self.column_tvd.items()),
        ]
        return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ the parts


def _value_type(values: NDArray[Any]) -> str:
    """``"number"``, ``"bool"`` or ``"text"``: what must agree between the three tables."""
    return "number" if is_numeric(values) else "bool" if values.dtype.kind == "b" else "text"


def _codings(tables: Sequence[Table], bins: int) -> list[ColumnCoding]:
    train = tables[0]
    codings = []
    for name, values in train.columns.items():
        if is_numeric(values) and len(np.unique(values)) > bins:
            codings.append(ColumnCoding.learn(name, values, bins=bins))
        else:
            seen = np.concatenate([t.columns[name] for t in tables])
            codings.append(ColumnCoding.categories(name, seen, sorted(np.unique(seen).tolist())))
    return codings


def _distribution(codes: NDArray[np.int64], states: int) -> Array:
    return np.bincount(codes, minlength=states) / max(len(codes), 1)


def _cramers_v(a: NDArray[np.int64], b: NDArray[np.int64], ca: int, cb: int) -> float:
    table = np.bincount(a * cb + b, minlength=ca * cb).reshape(ca, cb).astype(np.float64)
    table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]
    n = table.sum()
    if min(table.shape) < 2 or n == 0:
        return 0.0
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / n
    chi2 = float(((table - expected) ** 2 / expected).sum())
    return float(np.sqrt(chi2 / n / (min(table.shape) - 1)))


def _associations(codes: NDArray[np.int64], cards: Sequence[int]) -> tuple[tuple[float, ...], ...]:
    d = codes.shape[1]
    matrix = np.eye(d)
    for i in range(d):
        for j in range(i + 1, d):
            matrix[i, j] = matrix[j, i] = _cramers_v(codes[:, i], codes[:, j], cards[i], cards[j])
    return tuple(tuple(float(v) for v in row) for row in matrix)


def _features(table: Table, codings: Sequence[ColumnCoding], skip: str | None) -> Array:
    """Numeric columns as floats, categorical ones one-hot: the classifier's input."""
    parts = []
    for coding in codings:
        if coding.name == skip:
            continue
        values = table.columns[coding.name]
        if is_numeric(values) and coding.kind == "numeric":
            parts.append(values.astype(np.float64)[:, None])
        else:
            parts.append(np.eye(len(coding.states))[coding.encode(values)])
    if not parts:
        raise InvalidInputError("evaluate_synthetic: the table has no column besides the target")
    return np.concatenate(parts, axis=1)


def _gower_columns(
    table: Table, codings: Sequence[ColumnCoding], ranges: dict[str, float]
) -> list[tuple[bool, NDArray[Any]]]:
    """Each column ready for Gower's distance: ``(True, value / range)`` or ``(False, codes)``."""
    return [
        (True, table.columns[c.name].astype(np.float64) / ranges[c.name])
        if c.name in ranges
        else (False, c.encode(table.columns[c.name]))
        for c in codings
    ]


def _closest_distances(
    queries: list[tuple[bool, NDArray[Any]]], reference: list[tuple[bool, NDArray[Any]]]
) -> Array:
    """Each query row's Gower distance to its nearest reference row (columns from _gower_columns)."""
    n, m = len(queries[0][1]), len(reference[0][1])
    best = np.empty(n)
    chunk = max(1, 1_000_000 // max(m, 1))  # rows of queries per block of (chunk, m) distances
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        total = np.zeros((stop - start, m))
        for (numeric, q), (_, r) in zip(queries, reference, strict=True):
            if numeric:
                total += np.abs(q[start:stop, None] - r[None, :])
            else:
                total += q[start:stop, None] != r[None, :]
        best[start:stop] = total.min(axis=1)
    return np.minimum(best / len(queries), 1.0)


def _auc(positive: Array, negative: Array) -> float:
    """The probability that a positive scores above a negative (ties count half): Mann-Whitney."""
    scores = np.concatenate([positive, negative])
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    start = 0
    while start < len(scores):  # average ranks over ties
        stop = start
        while stop + 1 < len(scores) and sorted_scores[stop + 1] == sorted_scores[start]:
            stop += 1
        ranks[order[start : stop + 1]] = (start + stop) / 2.0 + 1.0
        start = stop + 1
    p = len(positive)
    return float((ranks[:p].sum() - p * (p + 1) / 2.0) / (p * len(negative)))


def _accuracies(
    tables: Sequence[Table],
    codings: Sequence[ColumnCoding],
    target: str,
    classifier: Any,
    seed: int,
) -> tuple[str, float, float]:
    try:
        base = importlib.import_module("sklearn.base")
        ensemble = importlib.import_module("sklearn.ensemble")
    except ImportError:
        raise missing_dependency(
            "scikit-learn", "datasets", "evaluate_synthetic's TSTR/TRTR accuracy (target=...)"
        ) from None
    coding = next(c for c in codings if c.name == target)
    if coding.edges is not None:
        raise InvalidInputError(
            f"evaluate_synthetic: target {target!r} must be categorical (str, bool, or numbers "
            f"with few values), but it has {len(np.unique(tables[0].columns[target]))} distinct "
            "numeric values"
        )
    train, holdout, synthetic = tables
    model = (
        ensemble.RandomForestClassifier(n_estimators=100, random_state=seed, n_jobs=1)
        if classifier is None
        else classifier
    )
    holdout_x, holdout_y = (
        _features(holdout, codings, target),
        coding.encode(holdout.columns[target]),
    )
    scores = []
    for table in (train, synthetic):
        fitted = base.clone(model).fit(
            _features(table, codings, target), coding.encode(table.columns[target])
        )
        scores.append(float(np.mean(fitted.predict(holdout_x) == holdout_y)))
    return type(model).__name__, scores[0], scores[1]


def evaluate_synthetic(
    real_train: object,
    real_holdout: object,
    synthetic: object,
    *,
    target: str | None = None,
    bins: int = 10,
    classifier: Any = None,
    seed: int = 0,
) -> SyntheticDataReport:
    """Measure a synthetic table's utility and disclosure against real training and holdout rows.

    Args:
        real_train: the real rows the synthesizer was fitted on.
        real_holdout: real rows it did not see (same columns).
        synthetic: the synthetic rows (same columns).
        target: a categorical column to predict for TSTR/TRTR; ``None`` skips
            the classifiers (and scikit-learn).
        bins: quantile bins per numeric column for TVD and Cramér's V.
        classifier: an unfitted scikit-learn classifier (cloned for each fit);
            default ``RandomForestClassifier(n_estimators=100, random_state=seed)``.
        seed: the default classifier's seed.

    Tables are what :class:`~genarch.privacy.TabularSynthesizer` reads: numpy
    structured arrays, mappings of columns or pandas DataFrames.

    Raises:
        InvalidInputError: a table is not a valid table, the tables' columns or
            column types differ, ``target`` is unknown or not categorical, or
            ``bins`` is not an int >= 2.
        MissingDependencyError: ``target`` is given and scikit-learn is not
            installed (``pip install 'genarch[datasets]'``).
    """
    bins = require_count(bins, "evaluate_synthetic", "bins", minimum=2)
    named = {"real_train": real_train, "real_holdout": real_holdout, "synthetic": synthetic}
    tables = [read_table(data, f"evaluate_synthetic({name})") for name, data in named.items()]
    names = tables[0].names
    for (name, _), table in zip(named.items(), tables, strict=True):
        if set(table.names) != set(names):
            raise InvalidInputError(
                f"evaluate_synthetic: {name} has the columns {sorted(table.names)}, but "
                f"real_train has {sorted(names)}"
            )
        for column in names:
            if _value_type(table.columns[column]) != _value_type(tables[0].columns[column]):
                raise InvalidInputError(
                    f"evaluate_synthetic: column {column!r} is "
                    f"{table.columns[column].dtype} in {name} but "
                    f"{tables[0].columns[column].dtype} in real_train"
                )
    if target is not None and target not in names:
        raise InvalidInputError(
            f"evaluate_synthetic: target {describe(target)} is not a column; have {list(names)}"
        )
    codings = _codings(tables, bins)
    train, holdout, synth = tables
    codes = [np.stack([c.encode(t.columns[c.name]) for c in codings], axis=1) for t in tables]
    cards = [len(c.states) for c in codings]
    tvd = {
        c.name: 0.5
        * float(
            np.abs(
                _distribution(codes[0][:, j], cards[j]) - _distribution(codes[2][:, j], cards[j])
            ).sum()
        )
        for j, c in enumerate(codings)
    }
    ranges = {}
    for c in codings:
        values = train.columns[c.name]
        if is_numeric(values) and c.kind == "numeric":
            ranges[c.name] = float(np.ptp(values)) or 1.0
    train_g, holdout_g, synth_g = (_gower_columns(t, codings, ranges) for t in tables)
    dcr_synthetic = _closest_distances(synth_g, train_g)
    dcr_holdout = _closest_distances(holdout_g, train_g)
    member_score = -_closest_distances(train_g, synth_g)
    outsider_score = -_closest_distances(holdout_g, synth_g)
    model_name: str | None = None
    trtr: float | None = None
    tstr: float | None = None
    if target is not None:
        model_name, trtr, tstr = _accuracies(tables, codings, target, classifier, seed)

    def quantiles(values: Array) -> tuple[float, float]:
        low, middle = np.quantile(values, [0.05, 0.5])
        return float(low), float(middle)

    return SyntheticDataReport(
        num_train=train.num_rows,
        num_holdout=holdout.num_rows,
        num_synthetic=synth.num_rows,
        column_tvd=tvd,
        columns=tuple(c.name for c in codings),
        real_association=_associations(codes[0], cards),
        synthetic_association=_associations(codes[2], cards),
        target=target,
        classifier=model_name,
        trtr_accuracy=trtr,
        tstr_accuracy=tstr,
        dcr_synthetic=quantiles(dcr_synthetic),
        dcr_holdout=quantiles(dcr_holdout),
        exact_copy_share=float(np.mean(dcr_synthetic == 0.0)),
        membership_auc=_auc(member_score, outsider_score),
    )
