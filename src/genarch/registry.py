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
from collections.abc import Iterator, Mapping
from typing import Any, Self

from genarch.errors import RegistryError

__all__ = ["Registry", "builtin_registry"]


class Registry:
    """A two-way mapping between component names and classes.

    Args:
        components: initial ``{name: class}`` entries.
    """

    def __init__(self, components: Mapping[str, type[Any]] | None = None) -> None:
        self._by_name: dict[str, type[Any]] = {}
        self._by_type: dict[type[Any], str] = {}
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
        if existing is not None and existing is not component:
            raise RegistryError(
                f"{name!r} is already registered for {existing.__qualname__}; "
                f"choose another name for {component.__qualname__}"
            )
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
        try:
            return self._by_name[name]
        except (KeyError, TypeError):
            close = difflib.get_close_matches(str(name), list(self._by_name), n=3)
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
        try:
            return self._by_type[component]
        except KeyError:
            raise RegistryError(
                f"{component.__qualname__} is not registered, so it cannot be saved by name; "
                f"call registry.register('your.{component.__name__}', {component.__name__})"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._by_name))

    def __len__(self) -> int:
        return len(self._by_name)

    def copy(self) -> Registry:
        """An independent copy, to extend without touching this one."""
        return Registry(self._by_name)


def builtin_registry() -> Registry:
    """A fresh registry holding every configurable component genarch ships."""
    from genarch.data.chunking import Chunker
    from genarch.data.dedup import ExactDeduplicator, NearDeduplicator
    from genarch.data.html import HtmlToText
    from genarch.data.images import ImageNormalizer
    from genarch.data.pii import PiiRedactor
    from genarch.data.quality import QualityFilter
    from genarch.data.text import TextCleaner
    from genarch.data.tokenize import Tokenize
    from genarch.data.tokenizers import ByteTokenizer, TiktokenTokenizer
    from genarch.features import (
        ContrastiveSentenceEncoder,
        GPTMeanPooledEncoder,
        HashingVectorizer,
        MiniLMEncoder,
        TfidfVectorizer,
    )
    from genarch.models.diffusion import Diffusion
    from genarch.models.gan import GAN
    from genarch.models.transformer import GPT
    from genarch.models.vae import VAE
    from genarch.orchestration.bm25 import BM25Retriever
    from genarch.orchestration.extractive import ExtractiveGenerator
    from genarch.orchestration.faiss_store import FaissVectorStore
    from genarch.orchestration.vectorstore import ExactVectorStore
    from genarch.pipeline import Pipeline

    return Registry(
        {
            "genarch.BM25Retriever": BM25Retriever,
            "genarch.ByteTokenizer": ByteTokenizer,
            "genarch.Chunker": Chunker,
            "genarch.ContrastiveSentenceEncoder": ContrastiveSentenceEncoder,
            "genarch.Diffusion": Diffusion,
            "genarch.ExtractiveGenerator": ExtractiveGenerator,
            "genarch.FaissVectorStore": FaissVectorStore,
            "genarch.GAN": GAN,
            "genarch.GPT": GPT,
            "genarch.GPTMeanPooledEncoder": GPTMeanPooledEncoder,
            "genarch.HashingVectorizer": HashingVectorizer,
            "genarch.MiniLMEncoder": MiniLMEncoder,
            "genarch.TfidfVectorizer": TfidfVectorizer,
            "genarch.ExactDeduplicator": ExactDeduplicator,
            "genarch.ExactVectorStore": ExactVectorStore,
            "genarch.HtmlToText": HtmlToText,
            "genarch.ImageNormalizer": ImageNormalizer,
            "genarch.NearDeduplicator": NearDeduplicator,
            "genarch.PiiRedactor": PiiRedactor,
            "genarch.Pipeline": Pipeline,
            "genarch.QualityFilter": QualityFilter,
            "genarch.TextCleaner": TextCleaner,
            "genarch.TiktokenTokenizer": TiktokenTokenizer,
            "genarch.Tokenize": Tokenize,
            "genarch.VAE": VAE,
        }
    )
