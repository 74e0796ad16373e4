"""The conformance kit fails implementations that break their contract."""

from __future__ import annotations

import random

import pytest
import torch

from fakes import BigramLM, TinyGAN
from genarch import ConformanceError, Document, TextRequest, TextResult
from genarch.data import TextCleaner
from genarch.testing import check_data_processor, check_generator, check_optimizer
from genarch.training import ObjectiveOptimizer

REQUESTS = [TextRequest(prompt="the", max_new_tokens=8, seed=1), TextRequest(prompt="a", seed=2)]


class IgnoresItsSeed(BigramLM):
    def generate(self, request: TextRequest) -> TextResult:
        return TextResult(text=str(random.random()))


class RemembersPreviousCalls(TextCleaner):
    """A cleaner that (wrongly) keeps a counter between calls."""

    calls = 0

    def process(self, items):
        type(self).calls += 1
        for document in super().process(items):
            yield document.model_copy(update={"text": f"{document.text} #{type(self).calls}"})


class ForgetsItsStep:
    """An optimizer whose state_dict leaves out the step count: resume is not exact."""

    def __init__(self):
        self.inner = ObjectiveOptimizer(TinyGAN(0), seed=0)

    def step(self, batch):
        return self.inner.step(batch)

    def state_dict(self):
        state = self.inner.state_dict()
        return {k: v for k, v in state.items() if k != "step"}

    def load_state_dict(self, state):
        self.inner.load_state_dict({**state, "step": 0})


class CrashesOnBadInput(BigramLM):
    def generate(self, request):
        return TextResult(text=request.prompt.upper())  # AttributeError on a wrong type


def failures(error: ConformanceError) -> set[str]:
    return {name for name, _ in error.failures}


def test_a_generator_that_ignores_its_seed_is_reported():
    with pytest.raises(ConformanceError) as caught:
        check_generator(IgnoresItsSeed(), REQUESTS)
    assert "seeded_determinism" in failures(caught.value)
    assert "IgnoresItsSeed" in str(caught.value)


def test_a_generator_that_crashes_on_bad_input_is_reported():
    with pytest.raises(ConformanceError) as caught:
        check_generator(CrashesOnBadInput(), REQUESTS)
    assert "rejects_wrong_request_type" in failures(caught.value)
    assert "AttributeError" in str(caught.value)


def test_a_processor_with_state_between_calls_is_reported():
    docs = [Document(id="a", text="x"), Document(id="b", text="y")]
    with pytest.raises(ConformanceError) as caught:
        check_data_processor(RemembersPreviousCalls(), docs)
    assert {"deterministic", "no_state_between_calls"} <= failures(caught.value)


def test_an_optimizer_whose_resume_is_not_exact_is_reported():
    batches = [torch.randn(8, 1, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    with pytest.raises(ConformanceError) as caught:
        check_optimizer(ForgetsItsStep, batches)
    assert "exact_resume" in failures(caught.value)


def test_a_correct_implementation_passes_every_check():
    passed = check_generator(BigramLM(), REQUESTS)
    assert "seeded_determinism" in passed
    assert "save_load_roundtrip" in passed
