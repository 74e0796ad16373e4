"""TabularSynthesizer: fit a table, sample one like it; seeded, typed, persistable, checked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from genarch.errors import ConfigError, InvalidInputError, NotFoundError
from genarch.privacy import TabularSynthesizer
from genarch.schemas import TabularRequest
from genarch.testing import generator_checks, run_checks
from privacy.privacy_testing import mixed_table


def test_a_sample_has_the_columns_and_types_of_the_table(table: dict[str, Any]) -> None:
    fake = TabularSynthesizer().fit(table).sample(50, seed=0)
    assert list(fake) == list(table)
    assert {k: v.dtype.kind for k, v in fake.items()} == {
        "age": "i",
        "income": "f",
        "smoker": "O",
        "sick": "b",
        "region": "O",
    }
    assert all(len(v) == 50 for v in fake.values())
    assert set(fake["smoker"]) <= {"yes", "no"}


def test_the_same_seed_gives_the_same_table(table: dict[str, Any]) -> None:
    synthesizer = TabularSynthesizer().fit(table)
    first, again = synthesizer.sample(40, seed=3), synthesizer.sample(40, seed=3)
    other = synthesizer.sample(40, seed=4)
    assert all(np.array_equal(first[c], again[c]) for c in table)
    assert not all(np.array_equal(first[c], other[c]) for c in table)


@pytest.mark.parametrize("structure", ["hill_climb", "chow_liu", "privbayes"])
def test_marginals_and_dependencies_are_kept(structure: str) -> None:
    real = mixed_table(3000, seed=1)
    fake = TabularSynthesizer(structure=structure, seed=0).fit(real).sample(3000, seed=2)
    for column in ("smoker", "sick"):  # marginal shares within 0.05
        for value in set(real[column].tolist()):
            assert abs(np.mean(real[column] == value) - np.mean(fake[column] == value)) < 0.05
    # the dependency smoker -> sick survives (0.7 vs 0.1 in the generator)
    sick_if_smoker = np.mean(fake["sick"][fake["smoker"] == "yes"])
    sick_otherwise = np.mean(fake["sick"][fake["smoker"] == "no"])
    assert sick_if_smoker - sick_otherwise > 0.4
    # and age -> income: a clear positive rank correlation
    assert np.corrcoef(np.argsort(np.argsort(fake["age"])), fake["income"])[0, 1] > 0.2
    assert (
        real["income"].min() <= fake["income"].min() <= fake["income"].max() <= real["income"].max()
    )


def test_hill_climbing_finds_the_dependencies_and_not_the_independent_column(
    table: dict[str, Any],
) -> None:
    network = TabularSynthesizer().fit(table).network
    edges = {frozenset((p, v)) for v in network.variables for p in network.parents(v)}
    assert frozenset(("smoker", "sick")) in edges
    assert not any("region" in edge for edge in edges)


def test_a_structured_array_gives_a_structured_array(table: dict[str, Any]) -> None:
    dtype = np.dtype([("age", "<i8"), ("income", "<f8"), ("smoker", "<U3")])
    data = np.array(list(zip(table["age"], table["income"], table["smoker"], strict=True)), dtype)
    fake = TabularSynthesizer().fit(data).sample(10, seed=0)
    assert isinstance(fake, np.ndarray)
    assert fake.dtype == dtype
    assert len(fake) == 10


def test_a_dataframe_gives_a_dataframe(table: dict[str, Any]) -> None:
    pandas = pytest.importorskip("pandas", reason="pandas is optional")
    fake = TabularSynthesizer().fit(pandas.DataFrame(table)).sample(10, seed=0)
    assert isinstance(fake, pandas.DataFrame)
    assert list(fake.columns) == list(table)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"income": [float("nan")] * 600}, "column 'income' holds nan"),
        ({"region": ["north"] * 600}, "column 'region' holds a single value"),
        ({"age": [1, "two"] * 300}, "column 'age' mixes value types"),
        ({"age": [b"x"] * 600}, "column 'age'"),
    ],
)
def test_bad_columns_are_refused_naming_the_column(
    table: dict[str, Any], change: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        TabularSynthesizer().fit({**table, **change})


def test_an_empty_table_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="no rows"):
        TabularSynthesizer().fit({"a": np.zeros(0)})


def test_a_single_valued_column_with_given_categories_is_kept(table: dict[str, Any]) -> None:
    data = {**table, "country": np.array(["nl"] * 600)}
    synthesizer = TabularSynthesizer(categories={"country": ("nl", "be")}).fit(data)
    assert set(synthesizer.sample(200, seed=0)["country"]) <= {"nl", "be"}


def test_a_value_outside_the_given_categories_is_refused(table: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError, match="column 'region', row 0"):
        TabularSynthesizer(categories={"region": ("up", "down")}).fit(table)


def test_epsilon_needs_privbayes() -> None:
    with pytest.raises(ConfigError, match="structure must be 'privbayes'"):
        TabularSynthesizer(epsilon=1.0)


def test_differential_privacy_refuses_bins_learned_from_the_data(table: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError, match="column 'age' has no public bounds"):
        TabularSynthesizer(structure="privbayes", epsilon=1.0).fit(table)


def private(epsilon: float | None = 1.0, seed: int | None = 0) -> TabularSynthesizer:
    return TabularSynthesizer(
        structure="privbayes",
        epsilon=epsilon,
        seed=seed,
        bounds={"age": (0, 100), "income": (0, 200_000)},
        categories={
            "smoker": ("yes", "no"),
            "sick": (False, True),
            "region": ("north", "south", "east", "west"),
        },
    )


def test_a_private_fit_records_its_budget(table: dict[str, Any]) -> None:
    account = private(epsilon=2.0).fit(table).privacy_account
    assert account is not None
    assert account.structure_epsilon == pytest.approx(0.6)
    assert account.structure_epsilon + account.parameter_epsilon == pytest.approx(2.0)
    assert TabularSynthesizer().fit(table).privacy_account is None


def test_a_private_fit_is_reproducible_only_with_its_seed(table: dict[str, Any]) -> None:
    cpts = [private(seed=s).fit(table).network.cpts for s in (5, 5, 6)]
    assert all(np.array_equal(cpts[0][v], cpts[1][v]) for v in cpts[0])
    assert not all(np.array_equal(cpts[0][v], cpts[2][v]) for v in cpts[0])


def test_save_and_load_give_the_same_samples_and_account(
    table: dict[str, Any], tmp_path: Path
) -> None:
    synthesizer = private().fit(table)
    synthesizer.save(tmp_path / "synth")
    loaded = TabularSynthesizer.load(tmp_path / "synth")
    assert loaded.config == synthesizer.config
    assert loaded.privacy_account == synthesizer.privacy_account
    assert loaded.codings == synthesizer.codings
    a, b = synthesizer.sample(30, seed=1), loaded.sample(30, seed=1)
    assert all(np.array_equal(a[c], b[c]) for c in table)


def test_loading_from_an_empty_directory_says_nothing_is_saved(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        TabularSynthesizer.load(tmp_path)


def test_an_unfitted_synthesizer_says_to_fit_first() -> None:
    with pytest.raises(InvalidInputError, match=r"call fit\(table\) first"):
        TabularSynthesizer().sample(3)


def test_it_passes_the_generator_kit_over_coded_rows(table: dict[str, Any]) -> None:
    synthesizer = TabularSynthesizer().fit(table)
    run_checks(
        generator_checks(
            synthesizer,
            [
                TabularRequest(num_rows=3, seed=0),
                TabularRequest(evidence={"smoker": "yes"}, seed=1),
            ],
            invalid_requests=[TabularRequest(evidence={"smoker": "maybe"})],
        )
    )
