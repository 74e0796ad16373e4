"""k-anonymity: the smallest class, the offending classes, and generalising until k is reached."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from genarch.errors import InvalidInputError
from genarch.privacy import (
    generalize_numeric,
    k_anonymity,
    suppress_rare_values,
    suppress_small_classes,
)

TABLE = {
    "age": [23, 27, 29, 35, 38, 39, 61],
    "zip": ["1010", "1010", "1010", "2020", "2020", "2020", "3030"],
    "diagnosis": ["flu", "cold", "flu", "flu", "cold", "cold", "flu"],
}


def test_k_is_the_smallest_class_and_the_offenders_are_listed() -> None:
    report = k_anonymity(TABLE, ["zip"])
    assert report.k == 1
    assert report.num_classes == 3
    assert [(c.values, c.size) for c in report.classes] == [(("3030",), 1)]


def test_a_threshold_lists_every_class_below_it() -> None:
    report = k_anonymity(TABLE, ["zip"], threshold=4)
    assert [(c.values, c.size) for c in report.classes] == [
        (("3030",), 1),
        (("1010",), 3),
        (("2020",), 3),
    ]


def test_every_row_distinct_is_1_anonymous() -> None:
    assert k_anonymity(TABLE, ["age", "zip"]).k == 1


def test_binning_and_suppression_reach_k_3() -> None:
    coarse = generalize_numeric(TABLE, "age", edges=[20, 40, 60])
    assert coarse["age"].tolist()[:3] == ["[20, 40)"] * 3
    assert coarse["age"].tolist()[-1] == ">= 60"
    assert k_anonymity(coarse, ["age", "zip"]).k == 1  # the one 61-year-old
    protected = suppress_small_classes(coarse, ["age", "zip"], k=3)
    assert k_anonymity(protected, ["age", "zip"]).k == 3
    assert len(protected["zip"]) == 6  # only the offending row is gone


def test_equal_width_bins_cover_the_column() -> None:
    coarse = generalize_numeric(TABLE, "age", bins=2)
    assert set(coarse["age"].tolist()) == {"[23, 42)", "[42, 61]"}


def test_rare_values_are_replaced() -> None:
    out = suppress_rare_values(TABLE, "zip", min_count=2)
    assert out["zip"].tolist() == ["1010"] * 3 + ["2020"] * 3 + ["*"]
    assert k_anonymity(out, ["zip"]).k == 1  # the "*" class has one row: suppression is not enough
    assert k_anonymity(suppress_rare_values(TABLE, "zip", min_count=4), ["zip"]).k == 7


def test_a_structured_array_stays_a_structured_array() -> None:
    data = np.array(
        list(zip(TABLE["age"], TABLE["zip"], strict=True)), dtype=[("age", "<i8"), ("zip", "<U4")]
    )
    coarse = generalize_numeric(data, "age", edges=[20, 40, 80])
    assert coarse.dtype.names == ("age", "zip")
    assert coarse["age"].dtype.kind == "U"
    kept = suppress_small_classes(data, ["zip"], k=2)
    assert kept.dtype == data.dtype
    assert len(kept) == 6


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: k_anonymity(TABLE, "zip"), "non-empty list of column names"),
        (lambda: k_anonymity(TABLE, ["zip", "zip"]), "distinct columns"),
        (lambda: k_anonymity(TABLE, ["postcode"]), "distinct columns"),
        (lambda: k_anonymity({"zip": []}, ["zip"]), "no rows"),
        (lambda: generalize_numeric(TABLE, "zip", bins=2), "'zip' is not numeric"),
        (lambda: generalize_numeric(TABLE, "age"), "either edges or bins"),
        (lambda: generalize_numeric(TABLE, "age", edges=[3, 1]), "increasing"),
        (lambda: suppress_rare_values(TABLE, "age", min_count=0), "min_count"),
        (lambda: suppress_small_classes(TABLE, ["age", "zip"], k=2), "every equivalence class"),
    ],
)
def test_bad_input_is_refused_naming_the_problem(call: Any, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        call()
