"""Reading tables and coding columns: what comes in, what goes out, what is refused."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from genarch.errors import InvalidInputError
from genarch.privacy import ColumnCoding
from genarch.privacy._tables import read_table, write_table


def test_quantile_bins_hold_about_equal_numbers_of_rows() -> None:
    values = np.random.default_rng(0).exponential(size=10_000)
    coding = ColumnCoding.learn("x", values, bins=5)
    counts = np.bincount(coding.encode(values), minlength=5)
    assert len(coding.states) == 5
    assert counts.min() >= 1_950
    assert counts.max() <= 2_050


def test_decoded_values_fall_uniformly_within_their_bin() -> None:
    coding = ColumnCoding.learn("x", np.arange(1000.0), bins=4)
    values = coding.decode(np.full(4000, 2), np.random.default_rng(1))
    edges = coding.edges
    assert edges is not None
    assert ((values >= edges[2]) & (values < edges[3])).all()
    # uniform within the bin: each half of the bin gets about half the draws
    middle = (edges[2] + edges[3]) / 2
    assert 0.45 < float(np.mean(values < middle)) < 0.55
    assert (coding.encode(values) == 2).all()


def test_integer_columns_decode_to_integers_within_the_range() -> None:
    values = np.arange(18, 90)
    coding = ColumnCoding.learn("age", values, bins=6)
    decoded = coding.decode(np.arange(6).repeat(50), np.random.default_rng(0))
    assert decoded.dtype == np.int64
    assert decoded.min() >= 18
    assert decoded.max() <= 89


def test_a_numeric_column_with_few_values_keeps_them_exactly() -> None:
    values = np.array([0, 1, 2, 3] * 10)
    coding = ColumnCoding.learn("children", values, bins=8)
    assert coding.edges is None
    assert coding.values == (0, 1, 2, 3)
    assert coding.decode(np.array([3, 0]), np.random.default_rng(0)).tolist() == [3, 0]


def test_public_bounds_give_equal_width_bins_and_clip_outliers() -> None:
    coding = ColumnCoding.within_bounds("x", np.array([5.0, 50.0]), 0.0, 100.0, bins=4)
    assert coding.edges == (0.0, 25.0, 50.0, 75.0, 100.0)
    assert coding.encode(np.array([-7.0, 10.0, 99.0, 1000.0])).tolist() == [0, 0, 3, 3]


def test_a_single_valued_column_is_refused_naming_it() -> None:
    with pytest.raises(InvalidInputError, match="'flag' holds a single value"):
        ColumnCoding.learn("flag", np.array(["x", "x"], dtype=object), bins=4)


def test_a_coding_round_trips_through_json() -> None:
    coding = ColumnCoding.learn("x", np.linspace(0, 1, 50), bins=3)
    assert ColumnCoding.from_json(coding.to_json()) == coding


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({}, "no columns"),
        ({"a": []}, "no rows"),
        ({"a": [1.0, float("nan")]}, "column 'a' holds nan at row 1"),
        ({"a": [1, 2], "b": ["x", None]}, "column 'b' mixes value types"),
        ({"a": [None, 2]}, "column 'a' holds NoneType: None at row 0"),
        ({"a": [1, 2], "b": ["x", 3]}, "column 'b' mixes value types"),
        ({"a": [1, 2], "b": [1]}, "differ in length"),
        ({"a": np.zeros((2, 2))}, "column 'a' must be 1-D"),
        ([1, 2, 3], "expected a table"),
        (np.zeros(3), "structured array"),
    ],
)
def test_bad_tables_are_refused_with_the_problem_named(table: Any, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        read_table(table, "here")


def test_a_structured_array_comes_back_with_its_dtype() -> None:
    dtype = np.dtype([("age", "<i8"), ("name", "<U5"), ("score", "<f4")])
    data = np.array([(30, "ada", 1.5), (40, "bob", 2.5)], dtype=dtype)
    table = read_table(data, "here")
    assert table.kind == "structured"
    assert table.columns["name"].tolist() == ["ada", "bob"]
    back = write_table(table.columns, table.kind, table.dtype)
    assert back.dtype == dtype
    assert back.tolist() == data.tolist()


def test_a_dataframe_comes_back_as_a_dataframe() -> None:
    pandas = pytest.importorskip("pandas", reason="pandas is optional")
    frame = pandas.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    table = read_table(frame, "here")
    back = write_table(table.columns, table.kind)
    assert isinstance(back, pandas.DataFrame)
    assert back.to_dict("list") == {"a": [1, 2], "b": ["x", "y"]}
