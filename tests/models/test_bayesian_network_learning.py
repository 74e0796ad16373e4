"""BayesianNetwork: parameter learning, JSON persistence and BIF read/write."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genarch.errors import IntegrityError, InvalidInputError, NotFoundError
from genarch.models.bayes import BayesianNetwork, format_bif, parse_bif, read_bif, write_bif
from models.bayes_testing import ASIA_BIF, SPRINKLER_BIF, asia, random_network, sprinkler

STRUCTURE = [
    {"name": "a", "states": ["x", "y"]},
    {"name": "b", "states": ["p", "q", "r"], "parents": ["a"]},
]
ROWS = [
    {"a": "x", "b": "p"},
    {"a": "x", "b": "p"},
    {"a": "x", "b": "q"},
    {"a": "y", "b": "r"},
]

# ------------------------------------------------------------------ parameter learning


def test_maximum_likelihood_is_the_relative_frequency_and_unseen_parents_get_uniform() -> None:
    net = BayesianNetwork(variables=STRUCTURE, estimator="mle").fit(ROWS)
    np.testing.assert_allclose(net.cpt("a"), [3 / 4, 1 / 4])
    np.testing.assert_allclose(net.cpt("b"), [[2 / 3, 1 / 3, 0], [0, 0, 1]])
    lonely = BayesianNetwork(variables=STRUCTURE, estimator="mle").fit([{"a": "x", "b": "p"}])
    np.testing.assert_allclose(lonely.cpt("b")[1], [1 / 3] * 3)


def test_bdeu_adds_ess_over_q_r_to_every_cell() -> None:
    net = BayesianNetwork(variables=STRUCTURE, estimator="bdeu", equivalent_sample_size=6.0).fit(
        ROWS
    )
    # a: q=1, r=2 -> 3 per cell; b: q=2, r=3 -> 1 per cell
    np.testing.assert_allclose(net.cpt("a"), [(3 + 3) / (4 + 6), (1 + 3) / (4 + 6)])
    np.testing.assert_allclose(net.cpt("b"), [[3 / 6, 2 / 6, 1 / 6], [1 / 4, 1 / 4, 2 / 4]])


def test_dirichlet_adds_the_pseudo_count_to_every_cell() -> None:
    net = BayesianNetwork(variables=STRUCTURE, estimator="dirichlet", pseudo_count=0.5).fit(ROWS)
    np.testing.assert_allclose(net.cpt("b")[0], [2.5 / 4.5, 1.5 / 4.5, 0.5 / 4.5])


def test_missing_values_drop_rows_per_family() -> None:
    rows = [
        *ROWS,
        {"a": None, "b": "r"},
        {"a": "y"},
    ]  # the first counts for nothing, the second for a
    net = BayesianNetwork(variables=STRUCTURE, estimator="mle").fit(rows)
    np.testing.assert_allclose(net.cpt("a"), [3 / 5, 2 / 5])
    np.testing.assert_allclose(net.cpt("b"), [[2 / 3, 1 / 3, 0], [0, 0, 1]])


def test_a_column_mapping_learns_what_the_rows_learn() -> None:
    columns = {"a": [r["a"] for r in ROWS], "b": [r["b"] for r in ROWS]}
    by_rows = BayesianNetwork(variables=STRUCTURE).fit(ROWS)
    by_columns = BayesianNetwork(variables=STRUCTURE).fit(columns)
    for name in ("a", "b"):
        np.testing.assert_array_equal(by_rows.cpt(name), by_columns.cpt(name))


def test_fit_recovers_the_cpts_of_asia_from_its_samples() -> None:
    truth = asia()
    learned = BayesianNetwork(truth.config.model_copy(update={"estimator": "mle"}))
    learned.fit(truth.sample(50_000, seed=0))
    for name in ("smoke", "bronc", "xray", "dysp"):
        np.testing.assert_allclose(learned.cpt(name), truth.cpt(name), atol=0.03)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_fitting_twice_gives_the_same_tables(seed: int) -> None:
    truth = random_network(seed, 5)
    rows = truth.sample(200, seed=seed)
    first = BayesianNetwork(truth.config).fit(rows).cpts
    again = BayesianNetwork(truth.config).fit(rows).fit(rows).cpts
    for name, table in first.items():
        np.testing.assert_array_equal(again[name], table)
        np.testing.assert_allclose(table.sum(axis=-1), 1.0, atol=1e-12)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "no rows"),
        ({"a": [], "b": []}, "no rows"),
        ([{"a": "z", "b": "p"}], r"row 0, column 'a' has the unknown state 'z'"),
        ([{"a": "x", "b": float("nan")}], r"column 'b' has the unknown value"),
        ([{"a": "x", "c": "p"}], r"unknown columns \['c'\]"),
        ({"a": ["x"], "b": ["p", "q"]}, "differ in length"),
        (["ab"], "row 0 must be a mapping"),
        ("ab", "expected rows"),
    ],
)
def test_bad_data_is_refused_naming_the_problem(data: object, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        BayesianNetwork(variables=STRUCTURE).fit(data)  # type: ignore[arg-type]


# ------------------------------------------------------------------ persistence


def test_save_and_load_give_the_same_network(tmp_path: Path) -> None:
    net = random_network(5, 8)
    net.save(tmp_path / "net")
    loaded = BayesianNetwork.load(tmp_path / "net")
    assert loaded.config == net.config
    for name, table in net.cpts.items():
        np.testing.assert_array_equal(loaded.cpt(name), table)
    assert loaded.sample(10, seed=3) == net.sample(10, seed=3)


def test_load_refuses_nothing_saved_and_invalid_tables(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        BayesianNetwork.load(tmp_path / "none")
    sprinkler().save(tmp_path / "net")
    header = tmp_path / "net" / "config.json"
    header.write_text(header.read_text().replace("0.99", "0.5"))
    (tmp_path / "net" / "SHA256SUMS").unlink()  # a save without a manifest is read unchecked
    with pytest.raises(IntegrityError, match="CPT of 'wet'"):
        BayesianNetwork.load(tmp_path / "net")


# ------------------------------------------------------------------ BIF


def test_the_hand_written_sprinkler_bif_in_pgmpy_table_layout_is_read() -> None:
    net = parse_bif(SPRINKLER_BIF)
    expected = sprinkler()
    assert net.config == expected.config
    for name, table in expected.cpts.items():
        np.testing.assert_array_equal(net.cpt(name), table)


def test_the_hand_written_asia_bif_is_read_with_its_structure() -> None:
    net = parse_bif(ASIA_BIF)
    assert net.parents("dysp") == ("bronc", "either")
    assert net.cpt("dysp")[1, 0].tolist() == [0.7, 0.3]  # (bronc=no, either=yes)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), size=st.integers(1, 8))
def test_bif_round_trips_random_networks_exactly(seed: int, size: int) -> None:
    net = random_network(seed, size)
    back = parse_bif(format_bif(net))
    assert back.config == net.config
    for name, table in net.cpts.items():
        np.testing.assert_array_equal(back.cpt(name), table)


def test_bif_files_round_trip(tmp_path: Path) -> None:
    write_bif(asia(), tmp_path / "asia.bif", name="asia")
    assert (tmp_path / "asia.bif").read_text().startswith("network asia {")
    back = read_bif(tmp_path / "asia.bif", estimator="mle")
    assert back.config.estimator == "mle"
    assert back.marginal("dysp") == asia().marginal("dysp")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("variable a { type discrete [ 3 ] { x, y }; }", "declares 3 states"),
        ("variable a { type discrete [ 2 ] { x, y }; }", r"no probability block for \['a'\]"),
        (
            "variable a { type discrete [ 2 ] { x, y }; } probability ( a ) { table 0.5; }",
            "expected 2 values",
        ),
        (
            "variable a { type discrete [ 2 ] { x, y }; } probability ( a ) { table 0.5, 0.6; }",
            "CPT of 'a'",
        ),
        (
            "variable a { type discrete [ 2 ] { x, y }; } probability ( b ) { table 1; }",
            "unknown variable",
        ),
        ("variable a { type discrete [ 2 ] { x, y };", "not closed"),
        (
            "variable a { type discrete [ 2 ] { x, y }; } variable b { type discrete [ 2 ] { x, y }; }"
            "probability ( a ) { table 0.5, 0.5; } probability ( b | a ) { (x) 0.5, 0.5; }",
            "no row",
        ),
    ],
)
def test_malformed_bif_is_refused_naming_the_problem(text: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        parse_bif(text)
