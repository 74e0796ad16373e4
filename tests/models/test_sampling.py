"""TokenSampler: bounded settings, and sampling that never fails within them."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from genarch.errors import InvalidInputError
from genarch.models.generation.sampling import TokenSampler
from genarch.schemas import TextRequest

VOCAB = 7

# Finite floats of every magnitude, the extremes included.
extreme_logits = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.sampled_from([0.0, -0.0, 3.4e38, -3.4e38, 1e-45, -1e-45, float("-inf")]),
)


@st.composite
def requests(draw: st.DrawFn) -> TextRequest:
    def bounded(low: float, high: float, *specials: float) -> float:
        return draw(st.one_of(st.floats(low, high), st.sampled_from([low, high, *specials])))

    return TextRequest(
        prompt="x",
        temperature=bounded(0.0, 100.0, 1e-300, 5e-324, 1e-39, 1e-45),
        repetition_penalty=bounded(1e-6, 1e6, 1.0),
        presence_penalty=bounded(-1e6, 1e6, 0.0),
        frequency_penalty=bounded(-1e6, 1e6, 0.0),
        top_k=draw(st.none() | st.integers(1, VOCAB + 2)),
        top_p=draw(st.floats(1e-9, 1.0, exclude_min=False)),
        min_p=draw(st.none() | st.floats(0.0, 0.999)),
    )


@settings(max_examples=300, deadline=None)
@given(
    st.lists(requests(), min_size=1, max_size=3),
    st.data(),
)
def test_sampling_never_fails_and_returns_valid_ids(
    rows: list[TextRequest], data: st.DataObject
) -> None:
    logits = torch.tensor(
        [data.draw(st.lists(extreme_logits, min_size=VOCAB, max_size=VOCAB)) for _ in rows],
        dtype=torch.float32,
    )
    counts = torch.tensor(
        [data.draw(st.lists(st.integers(0, 10_000), min_size=VOCAB, max_size=VOCAB)) for _ in rows],
        dtype=torch.float32,
    )
    generators = [torch.Generator().manual_seed(i) for i in range(len(rows))]
    sampler = TokenSampler(rows, generators, torch.device("cpu"))
    tokens = sampler(logits, counts > 0, counts)
    assert tokens.shape == (len(rows),)
    assert all(0 <= t < VOCAB for t in tokens.tolist())


def test_a_row_of_nan_logits_falls_back_to_its_argmax_instead_of_failing() -> None:
    sampler = TokenSampler([TextRequest(prompt="x")], [torch.Generator()], torch.device("cpu"))
    assert sampler(torch.full((1, 4), math.nan), None, None).tolist() == [0]


@pytest.mark.parametrize("temperature", [1e-300, 1e-39, 5e-324])
def test_a_vanishing_temperature_samples_the_most_likely_token(temperature: float) -> None:
    logits = torch.tensor([[1.0, 5.0, 2.0, 4.999]])
    request = TextRequest(prompt="x", temperature=temperature)
    sampler = TokenSampler([request], [torch.Generator().manual_seed(0)], torch.device("cpu"))
    assert sampler(logits, None, None).tolist() == [1]


@pytest.mark.parametrize(
    "fields",
    [
        {"temperature": math.inf},
        {"temperature": math.nan},
        {"temperature": 1e3},
        {"repetition_penalty": 1e-45},
        {"repetition_penalty": math.inf},
        {"presence_penalty": math.nan},
        {"frequency_penalty": math.inf},
        {"frequency_penalty": -math.inf},
        {"frequency_penalty": 1e39},
    ],
)
def test_sampling_settings_outside_their_bounds_are_refused_naming_the_field(
    fields: dict[str, float],
) -> None:
    [name] = fields
    with pytest.raises(InvalidInputError, match=f"TextRequest.{name}"):
        TextRequest(prompt="x", **fields)  # type: ignore[arg-type]
