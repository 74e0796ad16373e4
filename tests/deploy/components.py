"""Small real components for the deployment tests (import: ``from deploy.components import ...``)."""

from __future__ import annotations

from typing import Any

import torch

from genarch.data import ByteTokenizer
from genarch.features import TfidfVectorizer
from genarch.models import GPT, VAE, TextGenerator
from genarch.orchestration import ExactVectorStore
from genarch.registry import Registry, builtin_registry


def text_generator(seed: int = 0) -> TextGenerator:
    torch.manual_seed(seed)
    gpt = GPT(vocab_size=257, context_length=32, n_layer=1, n_head=2, n_embd=16)
    return TextGenerator(gpt, ByteTokenizer())


def with_text_generator() -> Registry:
    """genarch's registry plus TextGenerator, which it does not hold (see LocalDeployer)."""
    return builtin_registry().register("genarch.TextGenerator", TextGenerator)


def vae(seed: int = 0) -> VAE:
    torch.manual_seed(seed)
    return VAE(num_classes=10, latent_dim=4, width=4, hidden=16)


def tfidf(texts: tuple[str, ...] = ("open a file", "sort a list", "read a file")) -> Any:
    return TfidfVectorizer().fit(list(texts))


def vector_store() -> ExactVectorStore:
    store = ExactVectorStore(dim=8)
    vectors = torch.nn.functional.normalize(
        torch.randn(6, 8, generator=torch.Generator().manual_seed(0)), dim=1
    )
    store.upsert([f"v{i}" for i in range(6)], vectors, [{"i": i} for i in range(6)])
    return store
