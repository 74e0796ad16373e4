"""The architecture map (docs/architecture-map.md) is generated from the code and says only what exists.

The generator is ``scripts/architecture_map.py``; it discovers implementations
structurally, so its helper that decides "this class satisfies that protocol"
is tested here too.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
import typing
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol, Self

import pytest

import genarch.protocols

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "architecture_map.py"


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("architecture_map", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


amap = _load_script()
PROTOCOLS = {
    name: obj
    for name in genarch.protocols.__all__
    if amap.is_protocol(obj := getattr(genarch.protocols, name))
}


@pytest.fixture(scope="module")
def page() -> str:
    return str(amap.render())


# ---------------------------------------------------------------- the page


def test_architecture_map_regenerated_equals_committed_page(page: str) -> None:
    committed = amap.PAGE.read_text(encoding="utf-8") if amap.PAGE.is_file() else ""
    assert committed == page, (
        "docs/architecture-map.md is stale (the code changed since it was generated): "
        "run `python scripts/architecture_map.py` and commit the page"
    )


def _import(public_name: str) -> type:
    module_name, _, attribute = public_name.rpartition(".")
    cls = getattr(importlib.import_module(module_name), attribute)
    assert isinstance(cls, type), public_name
    return cls


def test_every_class_the_page_names_exists_and_satisfies_its_protocol(page: str) -> None:
    protocol: type | None = None
    checked = 0
    for line in page.splitlines():
        if heading := re.fullmatch(r"### `(\w+)`", line):
            protocol = PROTOCOLS[heading.group(1)]
        elif protocol is not None and line.startswith("| `genarch."):
            # | `implementation` | `registry name` or — | capabilities (optional) |
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            cls = _import(cells[0].strip("`"))
            assert amap.satisfies(cls, protocol), (cells[0], protocol)
            for capability in re.findall(r"`(\w+)`", cells[2] if len(cells) > 2 else ""):
                assert amap.satisfies(cls, PROTOCOLS[capability]), (cells[0], capability)
            checked += 1
        elif protocol is not None and line.startswith("[`"):  # cross-cutting: a list
            for public_name in re.findall(r"`(genarch(?:\.\w+)*\.[A-Z]\w*)`", line):
                assert amap.satisfies(_import(public_name), protocol), (public_name, protocol)
                checked += 1
    assert checked > 20  # the parse found the tables


def test_registry_names_on_the_page_are_registered(page: str) -> None:
    from genarch.registry import BUILTIN_COMPONENTS

    shown = set(re.findall(r"\| `(genarch\.[A-Z]\w*)` \|", page))
    assert shown, "no registry name found on the page"
    assert shown <= set(BUILTIN_COMPONENTS)


def test_every_protocol_of_genarch_has_a_section(page: str) -> None:
    for name in PROTOCOLS:
        assert f"[`{name}`](reference/protocols.md#genarch.protocols.{name})" in page


def test_a_protocol_not_placed_in_a_layer_stops_the_generator() -> None:
    class Unplaced(Protocol):
        def act(self) -> None: ...

    with pytest.raises(LookupError, match="Unplaced"):
        amap._check_every_protocol_is_placed({**PROTOCOLS, "Unplaced": Unplaced})


def test_a_protocol_without_implementation_says_so() -> None:
    lines = amap._protocol_section("Deployer", {"Deployer": []}, PROTOCOLS, (), set())
    assert "No implementation yet: no public class of genarch satisfies `Deployer`." in lines
    assert not any(line.startswith("|") for line in lines)


def test_every_linked_doc_page_exists() -> None:
    pages = {p for layer in amap.LAYERS for p in layer.docs} | set(amap.GENERAL_DOCS)
    for page in sorted(pages):
        assert (amap.DOCS / page).is_file(), page


def test_a_missing_doc_page_stops_the_generator() -> None:
    with pytest.raises(FileNotFoundError, match="docs/concepts/no-such-page.md"):
        amap._title("concepts/no-such-page.md")


def test_readme_home_page_and_nav_link_the_map() -> None:
    assert "(docs/architecture-map.md)" in (ROOT / "README.md").read_text(encoding="utf-8")
    assert "(architecture-map.md)" in (amap.DOCS / "index.md").read_text(encoding="utf-8")
    mkdocs = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    assert ": architecture-map.md" in mkdocs
    assert "scripts/architecture_map.py" in mkdocs  # the hook that regenerates it on build


def test_check_mode_fails_on_a_stale_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = tmp_path / "architecture-map.md"
    stale.write_text("old\n", encoding="utf-8")
    monkeypatch.setattr(amap, "PAGE", stale)
    monkeypatch.setattr(amap, "ROOT", tmp_path)
    monkeypatch.setattr(amap, "render", lambda: "new\n")
    assert amap.main(["--check"]) == 1
    assert "python scripts/architecture_map.py" in capsys.readouterr().err
    assert amap.main([]) == 0
    assert stale.read_text(encoding="utf-8") == "new\n"
    assert amap.main(["--check"]) == 0


# ---------------------------------------------------------------- protocol members


def test_protocol_members_of_genarch_protocols() -> None:
    assert amap.protocol_members(genarch.protocols.Generator) == {"generate", "generate_batch"}
    assert amap.protocol_members(genarch.protocols.StreamingGenerator) == {
        "generate",
        "generate_batch",
        "stream",
    }
    assert amap.protocol_members(genarch.protocols.Tokenizer) == {"vocab_size", "encode", "decode"}
    assert {"__enter__", "__exit__", "record"} <= amap.protocol_members(
        genarch.protocols.FeedbackLoop
    )


def test_protocol_members_rejects_a_class_that_is_not_a_protocol() -> None:
    with pytest.raises(TypeError, match="Protocol"):
        amap.protocol_members(int)


@pytest.mark.skipif(
    not hasattr(typing, "get_protocol_members") and not hasattr(Protocol, "__protocol_attrs__"),
    reason="typing has no public list of protocol members before Python 3.12",
)
def test_fallback_members_agree_with_typing() -> None:
    for name, protocol in PROTOCOLS.items():
        fallback = amap._fallback_protocol_members(protocol)
        assert fallback == amap.protocol_members(protocol), name


# ---------------------------------------------------------------- structural satisfaction


class Store(Protocol):
    @property
    def dim(self) -> int: ...

    def search(self, query: str, k: int, *, where: str | None = None) -> list[str]: ...

    def __len__(self) -> int: ...

    @classmethod
    def load(cls, directory: str) -> Self: ...


class GoodStore:
    dim = 3

    def search(self, query: str, k: int, *, where: str | None = None) -> list[str]:
        return []

    def __len__(self) -> int:
        return 0

    @classmethod
    def load(cls, directory: str) -> GoodStore:
        return cls()


def test_a_class_with_every_member_satisfies_the_protocol() -> None:
    assert amap.missing_members(GoodStore, Store) == []
    assert amap.satisfies(GoodStore, Store)


def test_a_data_member_may_be_a_property_or_an_annotated_field() -> None:
    class WithProperty(GoodStore):
        @property
        def dim(self) -> int:  # type: ignore[override]
            return 3

    class WithField:
        dim: int
        search = GoodStore.search
        __len__ = GoodStore.__len__
        load = GoodStore.__dict__["load"]

    assert amap.satisfies(WithProperty, Store)
    assert amap.satisfies(WithField, Store)


def test_a_missing_method_is_named() -> None:
    class NoSearch:
        dim = 3

        def __len__(self) -> int:
            return 0

        @classmethod
        def load(cls, directory: str) -> NoSearch:
            return cls()

    assert amap.missing_members(NoSearch, Store) == ["no method 'search'"]
    assert not amap.satisfies(NoSearch, Store)


def test_a_method_that_cannot_take_the_protocols_arguments_does_not_satisfy() -> None:
    class OneArgument(GoodStore):
        def search(self, query: str) -> list[str]:  # type: ignore[override]
            return []

    class NoWhere(GoodStore):
        def search(self, query: str, k: int) -> list[str]:  # type: ignore[override]
            return []

    class ExtraRequired(GoodStore):
        def search(self, query: str, k: int, *, where: str | None = None, tenant: str) -> list[str]:  # type: ignore[override]
            return []

    for cls in (OneArgument, NoWhere, ExtraRequired):
        problems = amap.missing_members(cls, Store)
        assert len(problems) == 1, (cls, problems)
        assert problems[0].startswith("search("), (cls, problems)


def test_extra_optional_parameters_and_other_names_still_satisfy() -> None:
    class Wider(GoodStore):
        def search(  # type: ignore[override]
            self, text: str, top: int = 5, *args: Any, where: str | None = None, **kw: Any
        ) -> list[str]:
            return []

    assert amap.satisfies(Wider, Store)


def test_a_method_where_the_protocol_wants_a_property_does_not_satisfy() -> None:
    class DimMethod(GoodStore):
        def dim(self) -> int:  # type: ignore[override]
            return 3

    assert amap.missing_members(DimMethod, Store) == ["no attribute 'dim'"]


def test_a_protocol_class_does_not_implement_itself() -> None:
    assert amap.missing_members(Store, Store) == []
    assert not amap.satisfies(Store, Store)


def test_discovered_implementations_of_real_protocols() -> None:
    from genarch.data import TextCleaner
    from genarch.orchestration import RAG, BM25Retriever

    assert amap.satisfies(TextCleaner, genarch.protocols.DataProcessor)
    assert amap.satisfies(BM25Retriever, genarch.protocols.Retriever)
    # RAG.retrieve(question) takes no k: the name matches, the call does not.
    assert not amap.satisfies(RAG, genarch.protocols.Retriever)


def _names(candidates: Sequence[Any]) -> Iterator[str]:
    return (c.public_name for c in candidates)


def test_discovery_finds_registry_components_outside_package_exports() -> None:
    candidates = amap.discover(["genarch.data"])
    names = set(_names(candidates))
    assert "genarch.data.TextCleaner" in names
    assert "genarch.models.gpt_embeddings.GPTMeanPooledEncoder" in names  # registry only
    registered = {c.public_name: c.registry_name for c in candidates}
    assert registered["genarch.data.TextCleaner"] == "genarch.TextCleaner"


def test_a_package_that_does_not_exist_is_skipped_not_invented() -> None:
    assert not amap.package_exists("genarch.no_such_layer")
    assert amap.package_exists("genarch.data")
    names = set(_names(amap.discover(["genarch.no_such_layer"])))
    assert not any(name.startswith("genarch.no_such_layer") for name in names)
