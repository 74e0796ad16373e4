"""The public surface: __all__ is honest, errors form one tree, records validate."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys

import pydantic
import pytest

import genarch
from genarch import errors
from genarch.schemas import Chunk, Document, ImageResult, StoredFeedback, TextRequest


def test_all_lists_exactly_the_public_names():
    public = {name for name in vars(genarch) if not name.startswith("_")}
    modules = {name for name, value in vars(genarch).items() if inspect.ismodule(value)}
    assert set(genarch.__all__) == (public - modules) | {"__version__"}
    assert genarch.__all__ == sorted(genarch.__all__)


def test_every_name_in_all_is_a_documented_object_of_its_home_module():
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", genarch.__version__)
    undocumented, foreign = [], []
    for name in genarch.__all__:
        value = getattr(genarch, name)
        if not (inspect.isclass(value) or inspect.isfunction(value)):
            continue  # __version__ and type aliases
        home = sys.modules.get(value.__module__)
        if not value.__module__.startswith("genarch.") or getattr(home, name, None) is not value:
            foreign.append(name)
        if not value.__doc__:
            undocumented.append(name)
    assert (foreign, undocumented) == ([], [])


def test_the_six_layers_and_pipeline_import_from_the_top():
    from genarch import (
        DataProcessor,
        Deployer,
        FeatureExtractor,
        FeedbackLoop,
        Generator,
        Optimizer,
        Pipeline,
        pipeline,
        protocols,
    )

    layers = (DataProcessor, FeatureExtractor, Generator, Optimizer, Deployer, FeedbackLoop)
    assert [layer.__name__ for layer in layers] == [
        "DataProcessor",
        "FeatureExtractor",
        "Generator",
        "Optimizer",
        "Deployer",
        "FeedbackLoop",
    ]
    for layer in layers:  # the contracts themselves, not look-alikes
        assert getattr(protocols, layer.__name__) is layer
        assert getattr(layer, "_is_runtime_protocol", False), layer.__name__
    assert Pipeline is pipeline.Pipeline


@pytest.mark.parametrize("name", errors.__all__)
def test_every_error_is_a_genarch_error_and_documented_in_the_tree(name):
    error = getattr(errors, name)
    assert issubclass(error, errors.GenarchError)
    assert name in errors.__doc__


@pytest.mark.parametrize(
    ("error", "builtin"),
    [
        (errors.InvalidInputError, ValueError),
        (errors.ConfigError, ValueError),
        (errors.PipelineTypeError, TypeError),
        (errors.RegistryError, KeyError),
        (errors.NotFoundError, LookupError),
        (errors.MissingDependencyError, ImportError),
        (errors.ConformanceError, AssertionError),
    ],
)
def test_errors_also_derive_from_the_builtin_users_expect(error, builtin):
    assert issubclass(error, builtin)


def test_missing_dependency_error_says_how_to_install():
    message = str(errors.missing_dependency("faiss", "faiss", "the faiss vector store"))
    assert "pip install 'genarch[faiss]'" in message


def test_importing_genarch_does_no_work_and_loads_no_optional_extra():
    code = "import sys, genarch; print(sorted(m for m in ('fastapi','faiss','transformers','matplotlib') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_records_are_frozen_and_forbid_unknown_fields():
    doc = Document(id="a", text="x")
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        doc.text = "y"
    assert doc.text == "x"
    with pytest.raises(errors.InvalidInputError, match="Document.txt"):
        Document(id="a", txt="typo")


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (
            lambda: TextRequest(prompt="x", top_p=1.5),
            r"TextRequest.top_p.*less than or equal to 1.*1\.5",
        ),
        (lambda: TextRequest(prompt="x", max_new_tokens=-1), "max_new_tokens"),
        (lambda: TextRequest(prompt="x", temperature=-0.1), "temperature"),
        (lambda: Document(id="", text="x"), "Document.id"),
        (lambda: Chunk(id="c", document_id="d", text="", start=5, end=2), "end"),
        (lambda: ImageResult(images=__import__("torch").zeros(3, 8, 8)), "N, C, H, W"),
    ],
)
def test_bad_records_raise_invalid_input_naming_field_and_value(make, match):
    with pytest.raises(errors.InvalidInputError, match=match):
        make()


def test_records_parse_from_json_and_mappings():
    request = TextRequest(prompt="hi", seed=3)
    assert TextRequest.parse(request.model_dump_json()) == request
    assert TextRequest.parse({"prompt": "hi", "seed": 3}) == request
    with pytest.raises(errors.InvalidInputError, match=r"TextRequest\.prompt: .*string"):
        TextRequest.parse('{"prompt": 3}')


def test_feedback_is_a_discriminated_union():
    stored = StoredFeedback.parse(
        {
            "id": "1",
            "feedback": {"kind": "preference", "prompt": "p", "chosen": "a", "rejected": "b"},
        }
    )
    assert type(stored.feedback).__name__ == "Preference"
    with pytest.raises(errors.InvalidInputError, match=r"StoredFeedback\.feedback: .*'shrug'"):
        StoredFeedback.parse({"id": "1", "feedback": {"kind": "shrug", "prompt": "p"}})
