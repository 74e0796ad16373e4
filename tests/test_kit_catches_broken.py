"""The conformance kit fails implementations that break their contract."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap

import pytest
import torch

from fakes import BigramLM, TinyGAN
from genarch import ConformanceError, Document, ImageRequest, ImageResult, TextRequest, TextResult
from genarch.data import TextCleaner
from genarch.errors import InvalidInputError
from genarch.testing import check_data_processor, check_generator, check_optimizer, generator_checks
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


class NoiseImages:
    """A correct little image generator; subclasses vary only what they say about conditions."""

    def generate(self, request: ImageRequest) -> ImageResult:
        if not isinstance(request, ImageRequest):
            raise InvalidInputError(f"expected an ImageRequest, got {type(request).__name__}")
        noise = torch.Generator().manual_seed(request.seed or 0)
        return ImageResult(images=torch.rand(request.num_samples, 1, 2, 2, generator=noise))

    def generate_batch(self, requests):
        return [self.generate(r) for r in requests]


IMAGE_REQUESTS = [ImageRequest(num_samples=1, seed=1), ImageRequest(num_samples=2, seed=2)]


def conditioned(conditions):
    return type("Conditioned", (NoiseImages,), {"conditions": conditions})()


@pytest.mark.parametrize("conditions", [{"label": ["0", "1"]}, {"label": ["a"], "style": ["b"]}])
def test_described_conditions_pass(conditions):
    assert "conditions_are_described" in check_generator(conditioned(conditions), IMAGE_REQUESTS)


def test_an_unconditional_generator_with_empty_conditions_passes():
    passed = check_generator(conditioned({}), IMAGE_REQUESTS)
    assert "unconditional_has_empty_conditions" in passed


@pytest.mark.parametrize(
    ("conditions", "check"),
    [
        (None, "unconditional_has_empty_conditions"),
        ([], "unconditional_has_empty_conditions"),
        ("", "unconditional_has_empty_conditions"),
        ({"label": []}, "conditions_are_described"),
        ({"label": [0, 1]}, "conditions_are_described"),
        ({"label": "01"}, "conditions_are_described"),
        ({1: ["a"]}, "conditions_are_described"),
        (["label"], "conditions_are_described"),
    ],
)
def test_badly_described_conditions_are_reported(conditions, check):
    with pytest.raises(ConformanceError) as caught:
        check_generator(conditioned(conditions), IMAGE_REQUESTS)
    assert failures(caught.value) == {check}
    assert "expected" in str(caught.value)


def test_a_generator_without_conditions_gets_no_condition_check():
    names = check_generator(NoiseImages(), IMAGE_REQUESTS)
    assert not {"conditions_are_described", "unconditional_has_empty_conditions"} & set(names)


def test_one_check_called_alone_raises_conformance_error_naming_it():
    (check,) = [c for c in generator_checks(IgnoresItsSeed(), REQUESTS) if c.name == "empty_batch"]
    check()  # passes
    (broken,) = [
        c
        for c in generator_checks(conditioned(None), IMAGE_REQUESTS)
        if c.name.startswith("uncond")
    ]
    with pytest.raises(ConformanceError) as caught:
        broken()
    assert caught.value.failures[0][0] == "unconditional_has_empty_conditions"
    assert "Conditioned" in str(caught.value)


BROKEN_UNDER_OPTIMISATION = textwrap.dedent(
    """
    import json, random, sys
    from genarch import ConformanceError, Document, TextRequest
    from genarch.testing import check_data_processor, check_generator

    assert sys.flags.optimize, "run me with python -O"

    class IgnoresSeedAndAnswersEmptyBatches:
        def generate(self, request):
            return random.random()
        def generate_batch(self, requests):
            return [0.5]  # something for nothing

    class Eager:
        def process(self, items):
            return [item for item in items]  # a list, consumed at once: not lazy

    found = {}
    for name, run in [
        ("generator", lambda: check_generator(
            IgnoresSeedAndAnswersEmptyBatches(),
            [TextRequest(prompt="a", seed=1), TextRequest(prompt="b", seed=2)])),
        ("processor", lambda: check_data_processor(
            Eager(), [Document(id="a", text="x"), Document(id="b", text="y")])),
    ]:
        try:
            run()
        except ConformanceError as error:
            found[name] = sorted(check for check, _ in error.failures)
        else:
            found[name] = []
    print(json.dumps(found))
    """
)


def test_the_kit_fails_loudly_under_python_optimisation():
    # ``python -O`` strips every ``assert``: the kit must raise ConformanceError itself
    completed = subprocess.run(
        [sys.executable, "-O", "-c", BROKEN_UNDER_OPTIMISATION],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    found = json.loads(completed.stdout.strip().splitlines()[-1])
    assert {"seeded_determinism", "empty_batch", "rejects_wrong_request_type"} <= set(
        found["generator"]
    )
    assert {"is_lazy", "rejects_non_iterables"} <= set(found["processor"])
