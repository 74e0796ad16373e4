"""An explicit registry of components, for rebuilding pipelines from JSON.

A saved pipeline names each stage's component (``"genarch.TextCleaner"``) and
its config. Loading resolves that name through a :class:`Registry` you pass
in — never by importing a module path written in the file, so a pipeline file
cannot make genarch import or run arbitrary code. There is no global mutable
registry: :func:`builtin_registry` returns a fresh one holding genarch's own
components, and you add yours to it.

Examples:
    >>> from genarch.registry import builtin_registry
    >>> registry = builtin_registry()
    >>> "genarch.TextCleaner" in registry
    True
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any, Self

from genarch.errors import RegistryError

__all__ = ["BUILTIN_COMPONENTS", "Registry", "builtin_registry"]


class Registry:
    """A two-way mapping between component names and classes.

    Args:
        components: initial ``{name: class}`` entries.
    """

    def __init__(self, components: Mapping[str, type[Any]] | None = None) -> None:
        self._by_name: dict[str, type[Any]] = {}
        self._by_type: dict[type[Any], str] = {}
        self._lazy: dict[str, str] = {}  # name -> "package:attribute", imported on first use
        for name, component in (components or {}).items():
            self.register(name, component)

    def register(self, name: str, component: type[Any]) -> Self:
        """Add ``component`` under ``name`` and return the registry (calls chain).

        Raises:
            RegistryError: the name is empty, or already taken by another class,
                or the class is already registered under another name.
        """
        if not isinstance(name, str) or not name:
            raise RegistryError(f"a component name must be a non-empty string, got {name!r}")
        if not isinstance(component, type):
            raise RegistryError(f"register classes, not instances: got {component!r} for {name!r}")
        existing = self._by_name.get(name)
        if existing is None and name in self._lazy:
            existing = self.resolve(name)
        if existing is not None and existing is not component:
            raise RegistryError(
                f"{name!r} is already registered for {existing.__qualname__}; "
                f"choose another name for {component.__qualname__}"
            )
        other_name = self._by_type.get(component)
        if other_name is None and self._lazy:
            self._resolve_all()
            other_name = self._by_type.get(component)
        if other_name is not None and other_name != name:
            raise RegistryError(f"{component.__qualname__} is already registered as {other_name!r}")
        self._by_name[name] = component
        self._by_type[component] = name
        return self

    def resolve(self, name: str) -> type[Any]:
        """The class registered under ``name``.

        Raises:
            RegistryError: unknown name; the message suggests close matches.
        """
        if isinstance(name, str) and name in self._lazy:
            module_name, _, attribute = self._lazy.pop(name).partition(":")
            component = getattr(importlib.import_module(module_name), attribute)
            self._by_name[name] = component
            self._by_type[component] = name
        try:
            return self._by_name[name]
        except (KeyError, TypeError):
            close = difflib.get_close_matches(str(name), list(self), n=3)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise RegistryError(
                f"no component is registered as {name!r}.{hint} "
                "Register your own with registry.register(name, cls)."
            ) from None

    def name_of(self, component: type[Any]) -> str:
        """The name ``component`` is registered under.

        Raises:
            RegistryError: the class is not registered.
        """
        if component not in self._by_type:
            self._resolve_all()
        try:
            return self._by_type[component]
        except KeyError:
            raise RegistryError(
                f"{component.__qualname__} is not registered, so it cannot be saved by name; "
                f"call registry.register('your.{component.__name__}', {component.__name__})"
            ) from None

    def _resolve_all(self) -> None:
        for name in list(self._lazy):
            self.resolve(name)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name or name in self._lazy

    def __iter__(self) -> Iterator[str]:
        return iter(sorted([*self._by_name, *self._lazy]))

    def __len__(self) -> int:
        return len(self._by_name) + len(self._lazy)

    def copy(self) -> Registry:
        """An independent copy, to extend without touching this one."""
        copy = Registry(self._by_name)
        copy._lazy.update(self._lazy)
        return copy


def builtin_registry() -> Registry:
    """A fresh registry holding every configurable component genarch ships.

    The registry is a leaf of the package: it names genarch's components by
    dotted path in :data:`BUILTIN_COMPONENTS` (a table written here, never read
    from a file) and imports each one the first time it is resolved, so
    importing the registry imports no component.
    """
    registry = Registry()
    registry._lazy.update(BUILTIN_COMPONENTS)
    return registry


BUILTIN_COMPONENTS: Mapping[str, str] = MappingProxyType(
    {
        "genarch.BM25Retriever": "genarch.orchestration:BM25Retriever",
        "genarch.BayesianNetwork": "genarch.models:BayesianNetwork",
        "genarch.ByteTokenizer": "genarch.data:ByteTokenizer",
        "genarch.Chunker": "genarch.data:Chunker",
        "genarch.ContrastiveSentenceEncoder": "genarch.features:ContrastiveSentenceEncoder",
        "genarch.Diffusion": "genarch.models:Diffusion",
        "genarch.ExactDeduplicator": "genarch.data:ExactDeduplicator",
        "genarch.ExactVectorStore": "genarch.orchestration:ExactVectorStore",
        "genarch.ExtractiveGenerator": "genarch.orchestration:ExtractiveGenerator",
        "genarch.FaissVectorStore": "genarch.orchestration:FaissVectorStore",
        "genarch.GAN": "genarch.models:GAN",
        "genarch.GPT": "genarch.models:GPT",
        "genarch.GPTMeanPooledEncoder": "genarch.models.gpt_embeddings:GPTMeanPooledEncoder",
        "genarch.HashingVectorizer": "genarch.features:HashingVectorizer",
        "genarch.HtmlToText": "genarch.data:HtmlToText",
        "genarch.ImageNormalizer": "genarch.data:ImageNormalizer",
        "genarch.MiniLMEncoder": "genarch.features:MiniLMEncoder",
        "genarch.NearDeduplicator": "genarch.data:NearDeduplicator",
        "genarch.PiiRedactor": "genarch.data:PiiRedactor",
        "genarch.Pipeline": "genarch.pipeline:Pipeline",
        "genarch.QualityFilter": "genarch.data:QualityFilter",
        "genarch.TabularSynthesizer": "genarch.privacy:TabularSynthesizer",
        "genarch.TextCleaner": "genarch.data:TextCleaner",
        "genarch.TfidfVectorizer": "genarch.features:TfidfVectorizer",
        "genarch.TiktokenTokenizer": "genarch.data:TiktokenTokenizer",
        "genarch.Tokenize": "genarch.data:Tokenize",
        "genarch.VAE": "genarch.models:VAE",
    }
)
"""genarch's own components: registry name → ``"package:attribute"``, resolved on first use."""
