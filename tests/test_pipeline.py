"""Pipelines: checked at assembly, lazy when run, traced, saved and rebuilt."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

import pytest

from genarch import (
    Chunk,
    ConfigError,
    Document,
    InvalidInputError,
    NotFoundError,
    Pipeline,
    PipelineTypeError,
    Registry,
    RegistryError,
    builtin_registry,
)
from genarch.data import TextCleaner
from genarch.testing import check_data_processor

T = TypeVar("T")


class SplitParagraphs:
    """Document -> list[Chunk] (one list per document)."""

    def process(self, items: Iterable[Document]) -> Iterator[list[Chunk]]:
        for doc in items:
            chunks, start = [], 0
            for part in doc.text.split("\n\n"):
                begin = doc.text.index(part, start)
                chunks.append(
                    Chunk(
                        id=f"{doc.id}:{begin}",
                        document_id=doc.id,
                        text=part,
                        start=begin,
                        end=begin + len(part),
                    )
                )
                start = begin + len(part)
            yield chunks


class FlattenChunks:
    """Iterable[Chunk] -> Chunk."""

    def process(self, items: Iterable[Iterable[Chunk]]) -> Iterator[Chunk]:
        for group in items:
            yield from group


class CountWords:
    def process(self, items: Iterable[str]) -> Iterator[int]:
        for text in items:
            yield len(text.split())


class ChunkText:
    def process(self, items: Iterable[Chunk]) -> Iterator[str]:
        for chunk in items:
            yield chunk.text


class Passthrough(Generic[T]):
    def process(self, items: Iterable[T]) -> Iterator[T]:
        yield from items


class DropShort:
    def process_counting(self, items: Iterable[Document], counts) -> Iterator[Document]:
        for doc in items:
            if len(doc.text) < 5:
                counts["dropped:too_short"] += 1
                continue
            yield doc

    def process(self, items: Iterable[Document]) -> Iterator[Document]:
        from collections import Counter

        return self.process_counting(items, Counter())


DOCS = [
    Document(id="a", text="First  paragraph.\n\n\n\nSecond paragraph here."),
    Document(id="b", text="tiny"),
    Document(id="c", text="One more document with words."),
]


def test_stages_whose_types_fit_assemble_and_run():
    pipe = Pipeline([TextCleaner(), SplitParagraphs(), FlattenChunks(), ChunkText(), CountWords()])
    assert pipe.run(DOCS).collect() == [2, 3, 1, 5]
    assert pipe.input_type is Document
    assert pipe.output_type is int


def test_list_output_fits_an_iterable_input_of_the_same_element():
    pipe = Pipeline([SplitParagraphs(), FlattenChunks()])  # list[Chunk] -> Iterable[Chunk]
    assert (pipe.input_type, pipe.output_type) == (Document, Chunk)
    chunks = pipe.run(DOCS).collect()
    assert [(c.document_id, c.text) for c in chunks] == [
        ("a", "First  paragraph."),
        ("a", ""),
        ("a", "Second paragraph here."),
        ("b", "tiny"),
        ("c", "One more document with words."),
    ]


def test_mismatched_stages_are_refused_at_assembly_naming_both():
    with pytest.raises(PipelineTypeError) as caught:
        Pipeline([("clean", TextCleaner()), ("count", CountWords())])
    message = str(caught.value)
    for expected in ("'clean'", "TextCleaner", "Document", "'count'", "CountWords", "str"):
        assert expected in message


def test_generic_element_mismatch_is_refused():
    class WantsDocumentGroups:
        def process(self, items: Iterable[Iterable[Document]]) -> Iterator[Document]:
            for group in items:
                yield from group

    with pytest.raises(PipelineTypeError, match=r"list\[Chunk\].*Iterable\[Document\]"):
        Pipeline([SplitParagraphs(), WantsDocumentGroups()])


def test_type_variables_pass_the_type_through():
    pipe = Pipeline([TextCleaner(), Passthrough(), SplitParagraphs()])
    assert pipe.output_type == list[Chunk]
    with pytest.raises(PipelineTypeError):
        Pipeline([TextCleaner(), Passthrough(), CountWords()])


def test_explicitly_parameterised_generic_stage_is_checked():
    with pytest.raises(PipelineTypeError):
        Pipeline([TextCleaner(), Passthrough[int]()])


def test_nested_pipelines_check_against_their_outer_neighbours():
    inner = Pipeline([SplitParagraphs(), FlattenChunks()])
    outer = Pipeline([TextCleaner(), inner, ChunkText()])
    assert (outer.input_type, outer.output_type) == (Document, str)
    assert outer.run(DOCS).collect() == [
        "First paragraph.",
        "Second paragraph here.",
        "tiny",
        "One more document with words.",
    ]
    with pytest.raises(PipelineTypeError):
        Pipeline([inner, CountWords()])


def test_runs_lazily_one_item_at_a_time():
    pulled = []

    def source():
        for doc in DOCS:
            pulled.append(doc.id)
            yield doc

    run = Pipeline([TextCleaner(), SplitParagraphs()]).run(source())
    assert pulled == []
    next(run)
    assert pulled == ["a"]


def test_trace_counts_items_and_stage_counters():
    run = Pipeline(
        [("clean", TextCleaner()), ("filter", DropShort()), ("split", SplitParagraphs())]
    ).run(DOCS)
    assert not run.trace.finished
    run.collect()
    trace = run.trace
    assert trace.finished
    assert [(s.name, s.items_in, s.items_out) for s in trace.stages] == [
        ("clean", 3, 3),
        ("filter", 3, 2),
        ("split", 2, 2),
    ]
    assert trace.stage("filter").counters == {"dropped:too_short": 1}
    assert all(s.seconds >= 0 for s in trace.stages)
    assert "filter" in trace.summary()


def test_indexing_by_position_name_and_slice():
    cleaner, splitter = TextCleaner(), SplitParagraphs()
    pipe = Pipeline([("clean", cleaner), ("split", splitter)])
    assert pipe[0] is cleaner
    assert pipe["split"] is splitter
    assert pipe[1:].names == ("split",)
    assert len(pipe) == 2
    with pytest.raises(NotFoundError):
        pipe["nope"]
    with pytest.raises(NotFoundError):
        pipe[5]


def test_bare_stages_get_unique_snake_case_names():
    assert Pipeline([TextCleaner(), TextCleaner()]).names == ("text_cleaner", "text_cleaner_2")


@pytest.mark.parametrize(
    ("steps", "match"),
    [
        ([], "at least one step"),
        ("clean", "list of steps"),
        ([object()], "not a DataProcessor"),
        ([("a", TextCleaner()), ("a", TextCleaner())], "named 'a'"),
        ([("", TextCleaner())], "name, processor"),
    ],
)
def test_bad_steps_are_refused(steps, match):
    with pytest.raises(InvalidInputError, match=match):
        Pipeline(steps)


def test_running_on_a_non_iterable_is_refused():
    with pytest.raises(InvalidInputError):
        Pipeline([TextCleaner()]).run(42)


def test_saves_to_json_and_rebuilds_an_equal_pipeline(tmp_path):
    pipe = Pipeline(
        [
            ("clean", TextCleaner(unicode_form="NFKC")),
            ("inner", Pipeline([("again", TextCleaner())])),
        ]
    )
    pipe.save(tmp_path / "pipe")
    rebuilt = Pipeline.load(tmp_path / "pipe")
    assert rebuilt == pipe
    assert rebuilt["clean"].config.unicode_form == "NFKC"
    assert rebuilt.run(DOCS).collect() == pipe.run(DOCS).collect()
    assert rebuilt != Pipeline(
        [("clean", TextCleaner()), ("inner", Pipeline([("again", TextCleaner())]))]
    )


def test_saved_pipeline_names_components_never_import_paths():
    data = json.loads(Pipeline([TextCleaner()]).to_json())
    assert data["steps"][0]["component"] == "genarch.TextCleaner"


def test_unknown_component_in_a_file_is_refused_without_importing_it():
    data = {
        "format": "genarch.pipeline/1",
        "steps": [{"name": "x", "component": "os.system", "config": {}}],
    }
    with pytest.raises(RegistryError, match="no component is registered as 'os.system'"):
        Pipeline.from_dict(data)


def test_user_components_round_trip_through_an_extended_registry():
    from pydantic import BaseModel

    class Upper(BaseModel):
        model_config = {"frozen": True}
        suffix: str = "!"

    class Shout:
        def __init__(self, config: Upper | None = None):
            self.config = config or Upper()

        @classmethod
        def from_config(cls, config):
            return cls(Upper.model_validate(config) if not isinstance(config, Upper) else config)

        def process(self, items: Iterable[str]) -> Iterator[str]:
            for text in items:
                yield text.upper() + self.config.suffix

    pipe = Pipeline([Shout(Upper(suffix="?"))])
    with pytest.raises(RegistryError, match="not registered"):
        pipe.to_json()
    registry = builtin_registry().register("mine.Shout", Shout)
    rebuilt = Pipeline.from_json(pipe.to_json(registry), registry)
    assert rebuilt.run(["hi"]).collect() == ["HI?"]


def test_malformed_saved_pipelines_are_refused():
    with pytest.raises(ConfigError):
        Pipeline.from_json("not json")
    with pytest.raises(ConfigError):
        Pipeline.from_dict({"format": "something/else", "steps": []})
    with pytest.raises(ConfigError):
        Pipeline.from_dict({"format": "genarch.pipeline/1", "steps": [{"name": "x"}]})
    with pytest.raises(NotFoundError):
        Pipeline.load("/no/such/pipeline")


def test_registry_refuses_conflicting_names():
    registry = Registry({"a.Cleaner": TextCleaner})
    registry.register("a.Cleaner", TextCleaner)  # idempotent
    with pytest.raises(RegistryError):
        registry.register("a.Cleaner", Pipeline)
    with pytest.raises(RegistryError):
        registry.register("b.Cleaner", TextCleaner)
    with pytest.raises(RegistryError, match="Did you mean 'a.Cleaner'"):
        registry.resolve("a.Cleanr")


def test_builtin_registry_is_fresh_each_time():
    first = builtin_registry().register("mine.X", SplitParagraphs)
    assert "mine.X" in first
    assert "mine.X" not in builtin_registry()


def test_a_pipeline_is_itself_a_conforming_data_processor():
    check_data_processor(Pipeline([TextCleaner(), TextCleaner(unicode_form="NFKC")]), DOCS)
