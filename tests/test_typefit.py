"""The type-fit rules behind pipeline assembly."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import pytest

from genarch import Chunk, Document
from genarch._typefit import fits, stage_types, substitute, type_name

T = TypeVar("T")
B = TypeVar("B", bound=Document)


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (int, int),
        (bool, int),
        (int, Any),
        (Any, int),
        (int, object),
        (list[Chunk], Iterable[Chunk]),
        (list[Chunk], Sequence[Chunk]),
        (tuple[Chunk, ...], Iterable[Chunk]),
        (tuple[int, bool], Sequence[int]),
        (dict[str, int], Mapping[str, int]),
        (dict[str, int], Iterable[str]),
        (int, int | None),
        (None, int | None),
        (int | bool, int),
        (list, Iterable[int]),
        (list[int], T),
        (Document, B),
    ],
)
def test_fits(source, target):
    assert fits(source, target)


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (str, int),
        (int, bool),
        (list[Document], Iterable[Chunk]),
        (Iterable[Chunk], list[Chunk]),
        (int | str, int),
        (dict[str, int], Mapping[str, str]),
        (Chunk, B),
        (tuple[int, str], Sequence[int]),
    ],
)
def test_does_not_fit(source, target):
    assert not fits(source, target)


def test_type_variables_bind_and_substitute():
    bindings = {}
    assert fits(list[Chunk], list[T], bindings)
    assert bindings == {T: Chunk}
    assert substitute(Iterator[T], bindings) == Iterator[Chunk]
    assert not fits(list[int], list[T], {T: str})


def test_readable_names():
    assert type_name(Iterable[Chunk]) == "Iterable[Chunk]"
    assert type_name(int | None) == "int | None"
    assert type_name(tuple[int, ...]) == "tuple[int, ...]"


def test_stage_types_prefer_explicit_attributes():
    class Declared:
        input_type = str
        output_type = int

        def process(self, items: Iterable[Document]) -> Iterator[Document]:
            yield from items

    assert stage_types(Declared()) == (str, int)


def test_stage_types_without_annotations_are_any():
    class Bare:
        def process(self, items):
            yield from items

    assert stage_types(Bare()) == (Any, Any)
