"""Generate ``docs/architecture-map.md`` from the code: layer → protocol → implementations → docs.

Nothing on the page is typed by hand except which protocols belong to which
layer and which doc pages explain it. The implementations are *discovered*:
every public class exported by genarch's packages (their ``__all__``) or named
in the builtin registry is kept for a protocol when it structurally satisfies
it — it has every member of the protocol, and each method accepts the
arguments the protocol passes. So the page cannot list a component that does
not exist, and a layer whose protocol nothing implements says so.

Usage::

    python scripts/architecture_map.py           # rewrite docs/architecture-map.md
    python scripts/architecture_map.py --check   # exit 1 when the committed page is stale

The same file is an mkdocs hook (``hooks:`` in ``mkdocs.yml``): every
``mkdocs build`` / ``mkdocs serve`` regenerates the page first.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import sys
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGE = DOCS / "architecture-map.md"
COMMAND = "python scripts/architecture_map.py"
PROTOCOLS_PAGE = "reference/protocols.md"  # the API reference of genarch.protocols


@dataclass(frozen=True)
class Layer:
    """One layer of the architecture, as users know it (see ARCHITECTURE.md).

    Attributes:
        name: the layer's name.
        protocols: its protocols, names in ``genarch.protocols``.
        packages: the packages meant to hold it (whether they exist is checked).
        docs: pages under ``docs/`` that explain it (each must exist).
        capabilities: optional sub-protocols shown as a column of the first protocol's table.
    """

    name: str
    protocols: tuple[str, ...]
    packages: tuple[str, ...]
    docs: tuple[str, ...] = ()
    capabilities: tuple[str, ...] = ()


LAYERS: tuple[Layer, ...] = (
    Layer(
        "Data processing",
        ("DataProcessor", "Tokenizer"),
        ("genarch.data",),
        (
            "concepts/data.md",
            "concepts/dedup-and-pii.md",
            "concepts/tokenizers.md",
            "tutorials/prepare-a-corpus.md",
        ),
    ),
    Layer(
        "Feature extraction",
        ("FeatureExtractor",),
        ("genarch.features",),
        ("concepts/features.md", "concepts/retrieval.md"),
        capabilities=("Fittable",),
    ),
    Layer(
        "Generative model",
        ("Generator",),
        ("genarch.models",),
        (
            "concepts/models.md",
            "concepts/image-models.md",
            "tutorials/train-a-tiny-gpt.md",
            "tutorials/digits-three-ways.md",
        ),
        capabilities=(
            "StreamingGenerator",
            "ContinuousBatchingGenerator",
            "DecodingSession",
            "LatentGenerator",
            "ScoringGenerator",
            "ConditionalGenerator",
        ),
    ),
    Layer(
        "Training & optimisation",
        ("Optimizer", "TrainingObjective"),
        ("genarch.training",),
        (
            "concepts/training.md",
            "tutorials/train-a-tiny-gpt.md",
            "tutorials/pretrain-finetune.md",
        ),
    ),
    Layer(
        "Feedback & improvement",
        ("FeedbackLoop", "Evaluator"),
        ("genarch.feedback", "genarch.evaluation"),
        ("concepts/feedback.md",),
    ),
    Layer(
        "Deployment & integration",
        ("Deployer", "Endpoint", "HealthStatus"),
        ("genarch.deploy",),
        ("concepts/deployment.md",),
    ),
    Layer(
        "Orchestration",
        ("PromptTemplate", "Retriever", "VectorStore"),
        ("genarch.orchestration",),
        (
            "concepts/orchestration.md",
            "concepts/retrieval.md",
            "tutorials/rag-assistant.md",
        ),
    ),
    Layer(
        "Privacy",
        (),
        ("genarch.privacy",),
        ("concepts/privacy.md", "tutorials/private-synthetic-data.md"),
    ),
    Layer(
        "Infrastructure & performance",
        (),
        ("genarch.models.compression", "genarch.distributed", "genarch.federated"),
        (
            "concepts/making-it-fast.md",
            "concepts/scaling-out.md",
            "tutorials/federated-learning.md",
        ),
    ),
)
"""The layers in data-flow order. Protocols outside every layer are cross-cutting."""

CROSS_CUTTING: tuple[str, ...] = ("Persistable", "Configurable")
"""Protocols every kind of component may implement, listed once at the end of the page."""

GENERAL_DOCS: tuple[str, ...] = (
    "concepts/layers.md",
    "concepts/pipelines.md",
    "concepts/testing.md",
    "tutorials/own-component.md",
)
"""Pages about the architecture as a whole, linked from the page's introduction."""

EXTRA_PACKAGES: tuple[str, ...] = ("genarch", "genarch.pipeline")
"""Packages scanned besides the layers' own (components that live at the root)."""


# ---------------------------------------------------------------- structural checks

# Names that typing.Protocol machinery puts on a protocol class; never members
# (the list of typing._get_protocol_attrs on Python 3.11, plus newer additions).
_NOT_MEMBERS = frozenset(
    {
        "__abstractmethods__",
        "__annotations__",
        "__annotate__",
        "__annotate_func__",
        "__annotations_cache__",
        "__callable_proto_members_only__",
        "__dict__",
        "__doc__",
        "__firstlineno__",
        "__init__",
        "__module__",
        "__new__",
        "__non_callable_proto_members__",
        "__orig_bases__",
        "__parameters__",
        "__protocol_attrs__",
        "__qualname__",
        "__slots__",
        "__static_attributes__",
        "__subclasshook__",
        "__type_params__",
        "__weakref__",
        "__args__",
        "__next_in_mro__",
        "__origin__",
        "__extra__",
        "__tree_hash__",
        "_MutableMapping__marker",
        "_gorg",
        "_is_protocol",
        "_is_runtime_protocol",
    }
)


def is_protocol(obj: object) -> bool:
    """Whether ``obj`` is a :class:`typing.Protocol` class (not a class implementing one)."""
    return isinstance(obj, type) and bool(obj.__dict__.get("_is_protocol", False))


def _fallback_protocol_members(protocol: type) -> frozenset[str]:
    """Python 3.11: walk the protocol's bases as ``typing`` itself does."""
    members: set[str] = set()
    for base in protocol.__mro__[:-1]:  # the last one is object
        if base.__name__ in {"Protocol", "Generic"}:
            continue
        names = [*base.__dict__, *inspect.get_annotations(base)]
        members.update(n for n in names if not n.startswith("_abc_") and n not in _NOT_MEMBERS)
    return frozenset(members)


def protocol_members(protocol: type) -> frozenset[str]:
    """The names a class must have to satisfy ``protocol``.

    Uses :func:`typing.get_protocol_members` (Python >= 3.13), else the
    protocol's ``__protocol_attrs__`` (3.12), else the same walk over the
    protocol's bases that ``typing`` does on 3.11.

    Raises:
        TypeError: ``protocol`` is not a protocol class.
    """
    if not is_protocol(protocol):
        raise TypeError(f"expected a typing.Protocol class, got {protocol!r}")
    getter = getattr(typing, "get_protocol_members", None)
    if getter is not None:
        return frozenset(getter(protocol))
    attrs = getattr(protocol, "__protocol_attrs__", None)
    if attrs is not None:
        return frozenset(attrs)
    return _fallback_protocol_members(protocol)


def _is_data_member(raw: object) -> bool:
    """A property or plain attribute, not a method."""
    return not isinstance(raw, (classmethod, staticmethod)) and not inspect.isroutine(raw)


def _call_signature(cls: type, name: str) -> inspect.Signature | None:
    """The signature ``obj.name(...)`` is called with on an instance of ``cls`` (self dropped)."""
    raw = inspect.getattr_static(cls, name)
    try:
        signature = inspect.signature(getattr(cls, name))
    except (TypeError, ValueError):  # builtins without a signature
        return None
    if isinstance(raw, (classmethod, staticmethod)):
        return signature
    parameters = list(signature.parameters.values())[1:]  # drop self
    return signature.replace(parameters=parameters)


def _accepts(implementation: inspect.Signature, protocol: inspect.Signature) -> bool:
    """Whether every call the protocol's signature allows binds to the implementation's."""
    args: list[object] = []
    kwargs: dict[str, object] = {}
    for parameter in protocol.parameters.values():
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            args.append(None)
        elif parameter.kind is parameter.KEYWORD_ONLY:
            kwargs[parameter.name] = None
    try:
        implementation.bind(*args, **kwargs)
    except TypeError:
        return False
    return True


def _has_data_member(cls: type, name: str) -> bool:
    for base in cls.__mro__:
        if name in inspect.get_annotations(base):
            return True
        if name in getattr(base, "model_fields", {}):  # a pydantic field
            return True
    return hasattr(cls, name) and _is_data_member(inspect.getattr_static(cls, name))


def missing_members(cls: type, protocol: type) -> list[str]:
    """What ``cls`` lacks to satisfy ``protocol``, checked on the class, no instance needed.

    A data member (a property in the protocol) must be a property, class
    attribute, annotated field or pydantic field of ``cls``; a method must be a
    method that accepts every argument the protocol's signature passes
    (dunder methods are only checked for presence).

    Returns:
        One line per problem, empty when ``cls`` satisfies ``protocol``.
    """
    problems: list[str] = []
    for name in sorted(protocol_members(protocol)):
        raw_protocol = inspect.getattr_static(protocol, name, None)
        if raw_protocol is None or _is_data_member(raw_protocol):
            if not _has_data_member(cls, name):
                problems.append(f"no attribute {name!r}")
            continue
        if not hasattr(cls, name) or _is_data_member(inspect.getattr_static(cls, name)):
            problems.append(f"no method {name!r}")
            continue
        if name.startswith("__") and name.endswith("__"):
            continue
        wanted = _call_signature(protocol, name)
        found = _call_signature(cls, name)
        if wanted is not None and found is not None and not _accepts(found, wanted):
            problems.append(f"{name}{found} cannot be called as {name}{wanted}")
    return problems


def satisfies(cls: type, protocol: type) -> bool:
    """Whether the class ``cls`` structurally satisfies ``protocol`` (see :func:`missing_members`)."""
    return not is_protocol(cls) and not missing_members(cls, protocol)


# ---------------------------------------------------------------- discovery


@dataclass(frozen=True)
class Candidate:
    """A public class of genarch: where it is exported from and its registry name."""

    cls: type
    public_name: str  # "genarch.data.ExactDeduplicator"
    registry_name: str | None


def package_exists(name: str) -> bool:
    """Whether ``name`` is an importable module of this genarch."""
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def _public_classes(package: str) -> Iterable[tuple[str, type]]:
    module = importlib.import_module(package)
    for name in getattr(module, "__all__", ()):
        obj = getattr(module, name)
        if isinstance(obj, type):
            yield f"{package}.{name}", obj


def discover(packages: Sequence[str]) -> list[Candidate]:
    """Every public class of the existing ``packages`` and of the builtin registry.

    A class exported from several places is listed once, under the first
    package (in the order given) that exports it.
    """
    from genarch.registry import BUILTIN_COMPONENTS, builtin_registry

    registry = builtin_registry()
    registry_names = {registry.resolve(name): name for name in BUILTIN_COMPONENTS}
    found: dict[type, str] = {}
    for package in packages:
        if package_exists(package):
            for public_name, cls in _public_classes(package):
                found.setdefault(cls, public_name)
    for cls, name in registry_names.items():
        module, _, attribute = BUILTIN_COMPONENTS[name].partition(":")
        found.setdefault(cls, f"{module}.{attribute}")
    return [Candidate(cls, public, registry_names.get(cls)) for cls, public in found.items()]


def implementations(protocol: type, candidates: Sequence[Candidate]) -> list[Candidate]:
    """The candidates that satisfy ``protocol``, sorted by public name."""
    kept = [c for c in candidates if satisfies(c.cls, protocol)]
    return sorted(kept, key=lambda c: c.public_name.lower())


# ---------------------------------------------------------------- the page


def _title(page: str) -> str:
    path = DOCS / page
    if not path.is_file():
        raise FileNotFoundError(f"{COMMAND}: linked page docs/{page} does not exist")
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return page


def _doc_links(pages: Sequence[str]) -> str:
    return ", ".join(f"[{_title(page)}]({page})" for page in pages) or "—"


def _protocol_ref(name: str) -> str:
    # A plain link (not an autorefs [name][id]) so the page also reads on a code host.
    return f"[`{name}`]({PROTOCOLS_PAGE}#genarch.protocols.{name})"


def _code(text: str | None) -> str:
    return f"`{text}`" if text else "—"


def _check_every_protocol_is_placed(protocols: dict[str, type]) -> None:
    placed = {name for layer in LAYERS for name in (*layer.protocols, *layer.capabilities)}
    placed.update(CROSS_CUTTING)
    unplaced = sorted(set(protocols) - placed)
    unknown = sorted(placed - set(protocols))
    if unplaced or unknown:
        raise LookupError(
            f"{COMMAND}: every protocol of genarch.protocols must be placed in LAYERS or "
            f"CROSS_CUTTING, and only those; not placed: {unplaced}, not protocols: {unknown}"
        )


def _conformance_check(name: str, kit: set[str]) -> str:
    snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")
    check = f"check_{snake}"
    return f"`genarch.testing.{check}`" if check in kit else "none yet"


def render() -> str:
    """The page, as Markdown."""
    import genarch.protocols
    import genarch.testing

    protocols = {
        name: obj
        for name in genarch.protocols.__all__
        if is_protocol(obj := getattr(genarch.protocols, name))
    }
    _check_every_protocol_is_placed(protocols)
    _title(PROTOCOLS_PAGE)  # raises when the page the protocol links point at is gone
    kit = set(genarch.testing.__all__)
    packages = [p for layer in LAYERS for p in layer.packages] + list(EXTRA_PACKAGES)
    candidates = discover(packages)
    found = {name: implementations(protocol, candidates) for name, protocol in protocols.items()}

    lines = [
        "<!-- Generated by scripts/architecture_map.py: do not edit by hand. -->",
        "<!-- Regenerate with: python scripts/architecture_map.py -->",
        "",
        "# Architecture map",
        "",
        "Every layer of genarch, its protocol, the implementations genarch ships and",
        "the pages that explain them. This page is generated from the code: an",
        "implementation is listed when a public class of genarch (exported in a",
        "package's `__all__`, or registered in `genarch.registry.builtin_registry()`)",
        "has every member of the protocol and each method accepts the protocol's",
        "arguments. Having the methods is not the same as keeping the contract: the",
        "conformance kit checks behaviour (see " + _doc_links(["concepts/testing.md"]) + ").",
        "",
        "Start with " + _doc_links(GENERAL_DOCS) + ".",
        "",
        "## Overview",
        "",
        "| layer | protocols | implementations | package | docs |",
        "|---|---|---|---|---|",
    ]
    for layer in LAYERS:
        protocol_cell = ", ".join(_protocol_ref(p) for p in layer.protocols) or "—"
        if layer.protocols:
            counts = ", ".join(
                f"{len(found[p])} {p}" if found[p] else f"no {p} yet" for p in layer.protocols
            )
        else:
            counts = "—"
        package_cell = ", ".join(
            f"`{p}`" if package_exists(p) else f"`{p}` (not yet)" for p in layer.packages
        )
        lines.append(
            f"| [{layer.name}](#{_anchor(layer.name)}) | {protocol_cell} | {counts} "
            f"| {package_cell} | {_doc_links(layer.docs)} |"
        )

    for layer in LAYERS:
        lines += ["", f"## {layer.name}", ""]
        existing = [p for p in layer.packages if package_exists(p)]
        missing = [p for p in layer.packages if not package_exists(p)]
        if existing:
            lines.append("Package: " + ", ".join(f"`{p}`" for p in existing) + ".")
        if missing:
            lines.append("Not in this version: " + ", ".join(f"`{p}`" for p in missing) + ".")
        if layer.docs:
            lines.append("Docs: " + _doc_links(layer.docs) + ".")
        if not layer.protocols:
            lines += ["", "This layer has no protocol of its own."]
        for index, name in enumerate(layer.protocols):
            capabilities = layer.capabilities if index == 0 else ()
            lines += _protocol_section(name, found, protocols, capabilities, kit)

    lines += [
        "",
        "## Cross-cutting protocols",
        "",
        "Components of every layer may also implement these.",
    ]
    for name in CROSS_CUTTING:
        names = ", ".join(f"`{c.public_name}`" for c in found[name]) or "no implementation yet"
        lines += ["", f"### `{name}`", "", f"{_protocol_ref(name)}: {names}."]
    return "\n".join(lines) + "\n"


def _anchor(title: str) -> str:
    """The id mkdocs' toc extension gives a heading."""
    kept = "".join(c for c in title.lower() if c.isalnum() or c in " -_")
    return "-".join(kept.split())


def _protocol_section(
    name: str,
    found: dict[str, list[Candidate]],
    protocols: dict[str, type],
    capabilities: Sequence[str],
    kit: set[str],
) -> list[str]:
    lines = [
        "",
        f"### `{name}`",
        "",
        f"Contract: {_protocol_ref(name)}. Conformance check: {_conformance_check(name, kit)}.",
        "",
    ]
    if capabilities:
        optional = ", ".join(_protocol_ref(c) for c in capabilities)
        lines += [f"Optional capabilities (sub-protocols, in the last column): {optional}.", ""]
    if not found[name]:
        return [*lines, f"No implementation yet: no public class of genarch satisfies `{name}`."]
    header = "| implementation | registry name |"
    rule = "|---|---|"
    if capabilities:
        header += " capabilities |"
        rule += "---|"
    lines += [header, rule]
    for candidate in found[name]:
        row = f"| `{candidate.public_name}` | {_code(candidate.registry_name)} |"
        if capabilities:
            has = [c for c in capabilities if satisfies(candidate.cls, protocols[c])]
            row += " " + (", ".join(f"`{c}`" for c in has) or "—") + " |"
        lines.append(row)
    return lines


# ---------------------------------------------------------------- entry points


def write(page: Path | None = None) -> bool:
    """Regenerate ``page`` (default: :data:`PAGE`); returns whether its content changed."""
    page = PAGE if page is None else page
    text = render()
    if page.is_file() and page.read_text(encoding="utf-8") == text:
        return False
    page.write_text(text, encoding="utf-8")
    return True


def on_pre_build(config: Any, **kwargs: Any) -> None:
    """mkdocs hook: regenerate the page before the docs are read.

    Writes only when the content changed, so ``mkdocs serve`` does not rebuild in a loop.
    """
    write()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the page differs from the code"
    )
    args = parser.parse_args(argv)
    if args.check:
        current = PAGE.read_text(encoding="utf-8") if PAGE.is_file() else ""
        if current != render():
            print(f"{PAGE.relative_to(ROOT)} is stale: run {COMMAND}", file=sys.stderr)
            return 1
        print(f"{PAGE.relative_to(ROOT)} is up to date")
        return 0
    changed = write()
    print(f"{PAGE.relative_to(ROOT)} {'written' if changed else 'unchanged'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
