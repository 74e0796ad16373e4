"""Tiny but real implementations of every protocol, used to prove the protocols fit
every family: a text LM, an image generator with a latent space, a tabular sampler,
a two-player GAN step and a DPO step with a frozen reference model.

This module is type-checked with ``mypy --strict`` (see ``.ci/run``); the
``_static_conformance`` function at the bottom makes mypy verify that each fake
structurally satisfies its protocol.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import string
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import torch
from safetensors.torch import load_file, save_file

from genarch import (
    ArtifactManifest,
    Chunk,
    Deployer,
    Endpoint,
    FeatureExtractor,
    Feedback,
    FeedbackLoop,
    FileDigest,
    Generator,
    Hit,
    ImageRequest,
    ImageResult,
    IntegrityError,
    InvalidInputError,
    LatentGenerator,
    NotFoundError,
    Optimizer,
    Persistable,
    Preference,
    PromptTemplate,
    Retriever,
    ScoredChunk,
    StoredFeedback,
    StreamingGenerator,
    TabularRequest,
    TabularResult,
    TextRequest,
    TextResult,
    VectorStore,
)
from genarch._io import atomic_directory, sha256_file
from genarch.protocols import HealthStatus
from genarch.registry import Registry
from genarch.schemas import (
    MAX_PAGE_SIZE,
    Correction,
    FeedbackFilter,
    FeedbackPage,
    MetadataValue,
    Rating,
)
from genarch.training import ObjectiveOptimizer, adamw
from genarch.validation import require_instance

ALPHABET = string.ascii_lowercase + " .,"


def _generator_for(seed: int | None) -> torch.Generator:
    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator


# ------------------------------------------------------------------ a text LM


class BigramLM:
    """A character bigram language model: the smallest real text generator."""

    def __init__(self, counts: torch.Tensor | None = None) -> None:
        size = len(ALPHABET)
        self.counts = counts if counts is not None else torch.ones(size, size)

    @classmethod
    def fit(cls, text: str) -> BigramLM:
        indices = [ALPHABET.index(c) for c in text.lower() if c in ALPHABET]
        counts = torch.ones(len(ALPHABET), len(ALPHABET))
        for a, b in itertools.pairwise(indices):
            counts[a, b] += 1
        return cls(counts)

    def _check(self, request: object) -> TextRequest:
        request = require_instance(request, TextRequest, "BigramLM.generate")
        if not request.prompt:
            raise InvalidInputError("BigramLM needs a non-empty prompt")
        if any(c not in ALPHABET for c in request.prompt.lower()):
            raise InvalidInputError(f"prompt may only use {ALPHABET!r}")
        return request

    def stream(self, request: TextRequest) -> Iterator[str]:
        request = self._check(request)
        generator = _generator_for(request.seed)
        current = ALPHABET.index(request.prompt.lower()[-1])
        for _ in range(request.max_new_tokens):
            weights = self.counts[current]
            if request.temperature == 0:
                current = int(weights.argmax())
            else:
                probabilities = weights ** (1.0 / request.temperature)
                current = int(torch.multinomial(probabilities, 1, generator=generator))
            yield ALPHABET[current]

    def generate(self, request: TextRequest) -> TextResult:
        text = "".join(self.stream(request))
        return TextResult(text=text, token_ids=tuple(ALPHABET.index(c) for c in text))

    def generate_batch(self, requests: Sequence[TextRequest]) -> list[TextResult]:
        return [self.generate(r) for r in requests]

    def save(self, directory: str | os.PathLike[str]) -> None:
        with atomic_directory(directory) as staging:
            save_file({"counts": self.counts}, str(staging / "model.safetensors"))

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> Self:
        path = Path(directory) / "model.safetensors"
        if not path.is_file():
            raise NotFoundError(f"no BigramLM saved in {directory}")
        return cls(load_file(str(path))["counts"])


# ---------------------------------------------------- an image generator with a latent space


class LinearLatentImages:
    """Images = tanh(W z + b): a fixed linear decoder from a 4-d latent to 1x8x8 images.

    Class-conditional: class ``c`` shifts the latent mean by ``c``.
    """

    latent_dim = 4
    num_classes = 3

    def __init__(self, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.weight = torch.randn(64, self.latent_dim, generator=generator) / 2
        self.bias = torch.randn(64, generator=generator) / 10

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return (self.latent_dim,)

    @property
    def conditions(self) -> Mapping[str, Sequence[str]]:
        return {"label": [str(c) for c in range(self.num_classes)]}

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return torch.tanh(latents @ self.weight.T + self.bias).reshape(-1, 1, 8, 8)

    def encode(self, data: torch.Tensor) -> torch.Tensor:
        pre = torch.atanh(data.reshape(-1, 64).clamp(-0.999999, 0.999999)) - self.bias
        solution: torch.Tensor = torch.linalg.lstsq(self.weight, pre.T).solution
        return solution.T

    def interpolate(
        self, start: torch.Tensor, end: torch.Tensor, steps: int, *, spherical: bool = False
    ) -> torch.Tensor:
        weights = torch.linspace(0, 1, steps).unsqueeze(1)
        return (1 - weights) * start + weights * end

    def generate(self, request: ImageRequest) -> ImageResult:
        request = require_instance(request, ImageRequest, "LinearLatentImages.generate")
        if request.label is not None and request.label >= self.num_classes:
            raise InvalidInputError(
                f"label must be in 0..{self.num_classes - 1}, got {request.label}"
            )
        generator = _generator_for(request.seed)
        z = torch.randn(request.num_samples, self.latent_dim, generator=generator)
        if request.label is not None:
            z = z + request.label
        return ImageResult(images=self.decode(z), labels=(request.label,) * request.num_samples)

    def generate_batch(self, requests: Sequence[ImageRequest]) -> list[ImageResult]:
        return [self.generate(r) for r in requests]


# ------------------------------------------------------------------ a tabular sampler


class IndependentTabular:
    """Samples rows column by column from fixed categorical distributions."""

    def __init__(self, columns: Mapping[str, Mapping[str, float]]) -> None:
        self.columns = {name: dict(dist) for name, dist in columns.items()}

    @property
    def conditions(self) -> Mapping[str, Sequence[str]]:
        return {name: list(dist) for name, dist in self.columns.items()}

    def generate(self, request: TabularRequest) -> TabularResult:
        request = require_instance(request, TabularRequest, "IndependentTabular.generate")
        for column, value in request.evidence.items():
            if column not in self.columns:
                raise InvalidInputError(f"unknown column {column!r}; have {sorted(self.columns)}")
            if value not in self.columns[column]:
                raise InvalidInputError(f"{column!r} has no value {value!r}")
        generator = _generator_for(request.seed)
        rows = []
        for _ in range(request.num_rows):
            row = {}
            for column, dist in self.columns.items():
                if column in request.evidence:
                    row[column] = request.evidence[column]
                    continue
                values = list(dist)
                index = int(
                    torch.multinomial(torch.tensor(list(dist.values())), 1, generator=generator)
                )
                row[column] = values[index]
            rows.append(row)
        return TabularResult(rows=tuple(rows))

    def generate_batch(self, requests: Sequence[TabularRequest]) -> list[TabularResult]:
        return [self.generate(r) for r in requests]


# ------------------------------------------------------------ a two-player GAN objective


class TinyGAN:
    """A 1-D GAN: the generator learns to imitate samples from N(3, 0.5)."""

    def __init__(self, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.generator = torch.nn.Sequential(
            torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1)
        )
        self.discriminator = torch.nn.Sequential(
            torch.nn.Linear(1, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1)
        )

    def players(self) -> Mapping[str, torch.nn.Module]:
        return {"discriminator": self.discriminator, "generator": self.generator}

    def loss(self, player: str, batch: torch.Tensor) -> torch.Tensor:
        real = require_instance(batch, torch.Tensor, "TinyGAN.loss")
        if real.ndim != 2 or real.shape[1] != 1:
            raise InvalidInputError(
                f"expected real samples of shape (N, 1), got {tuple(real.shape)}"
            )
        noise = torch.randn(real.shape[0], 2)
        bce = torch.nn.functional.binary_cross_entropy_with_logits
        if player == "discriminator":
            fake = self.generator(noise).detach()
            real_logits, fake_logits = self.discriminator(real), self.discriminator(fake)
            return bce(real_logits, torch.ones_like(real_logits)) + bce(
                fake_logits, torch.zeros_like(fake_logits)
            )
        fake_logits = self.discriminator(self.generator(noise))
        return bce(fake_logits, torch.ones_like(fake_logits))  # non-saturating


# ------------------------------------------------- a DPO objective with a frozen reference


@dataclass(frozen=True)
class PreferenceBatch:
    """Feature vectors of chosen and rejected responses, shape (N, D) each."""

    chosen: torch.Tensor
    rejected: torch.Tensor


class TinyDPO:
    """Direct preference optimisation of a scoring policy against a frozen reference."""

    def __init__(self, dim: int = 4, beta: float = 0.5, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.policy = torch.nn.Linear(dim, 1)
        self.reference = torch.nn.Linear(dim, 1)
        self.reference.load_state_dict(self.policy.state_dict())
        self.reference.requires_grad_(False)
        self.beta = beta

    def players(self) -> Mapping[str, torch.nn.Module]:
        return {"policy": self.policy}  # the reference is held, never updated

    def loss(self, player: str, batch: PreferenceBatch) -> torch.Tensor:
        batch = require_instance(batch, PreferenceBatch, "TinyDPO.loss")
        if batch.chosen.shape != batch.rejected.shape:
            raise InvalidInputError("chosen and rejected must have the same shape")
        policy_margin = self.policy(batch.chosen) - self.policy(batch.rejected)
        with torch.no_grad():
            reference_margin = self.reference(batch.chosen) - self.reference(batch.rejected)
        return -torch.nn.functional.logsigmoid(
            self.beta * (policy_margin - reference_margin)
        ).mean()


def gan_optimizer(seed: int = 0) -> ObjectiveOptimizer[torch.Tensor]:
    return ObjectiveOptimizer(TinyGAN(seed), optimizer=adamw(0.01), seed=seed)


def dpo_optimizer(seed: int = 0) -> ObjectiveOptimizer[PreferenceBatch]:
    return ObjectiveOptimizer(TinyDPO(seed=seed), optimizer=adamw(0.05), seed=seed)


# -------------------------------------------------------------- the other layers


class CharHistogram:
    """Features: normalised letter counts (a 26-d lexical feature)."""

    @property
    def dim(self) -> int:
        return 26

    def extract(self, items: Sequence[str]) -> torch.Tensor:
        rows = []
        for index, text in enumerate(items):
            if not isinstance(text, str):
                raise InvalidInputError(f"item {index} must be str, got {type(text).__name__}")
            counts = torch.zeros(26)
            for ch in text.lower():
                if "a" <= ch <= "z":
                    counts[ord(ch) - 97] += 1
            rows.append(counts / max(1.0, float(counts.sum())))
        return torch.stack(rows) if rows else torch.zeros(0, 26)


class InMemoryFeedback:
    """Keeps feedback in a list (durability is the SQLite store's job).

    ``storage`` is the list it keeps; a second handle on the same list plays
    "reopening the same store" for the kit's durability check.
    """

    def __init__(self, storage: list[StoredFeedback] | None = None) -> None:
        self.storage: list[StoredFeedback] = storage if storage is not None else []
        self._serial = len(self.storage)

    def record(self, feedback: Feedback) -> str:
        if not isinstance(feedback, Rating | Correction | Preference):
            raise InvalidInputError(f"record expected feedback, got {type(feedback).__name__}")
        self._serial += 1
        stored = StoredFeedback(id=f"fb-{self._serial}-{id(self.storage)}", feedback=feedback)
        self.storage.append(stored)
        return stored.id

    def get(self, feedback_id: str) -> StoredFeedback:
        for item in self.storage:
            if item.id == feedback_id:
                return item
        raise NotFoundError(f"no feedback {feedback_id!r}")

    def query(
        self, filters: FeedbackFilter | None = None, *, limit: int = 100, cursor: str | None = None
    ) -> FeedbackPage:
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise InvalidInputError(f"limit must be in 1..{MAX_PAGE_SIZE}, got {limit}")
        start = 0
        if cursor is not None:
            if not cursor.startswith("after:"):
                raise InvalidInputError(f"not a cursor of this store: {cursor!r}")
            ids = [i.id for i in self.storage]
            if cursor.removeprefix("after:") not in ids:
                raise InvalidInputError(f"cursor {cursor!r} points at no record")
            start = ids.index(cursor.removeprefix("after:")) + 1
        selected = filters or FeedbackFilter()
        found = [i for i in self.storage[start:] if selected.matches(i.feedback)]
        more = len(found) > limit
        items = tuple(found[:limit])
        return FeedbackPage(items=items, next_cursor=f"after:{items[-1].id}" if more else None)

    def scan(self, filters: FeedbackFilter | None = None) -> Iterator[StoredFeedback]:
        selected = filters or FeedbackFilter()
        return iter([i for i in self.storage if selected.matches(i.feedback)])

    def forget_user(self, user: str) -> int:
        kept = [i for i in self.storage if i.feedback.user != user]
        removed = len(self.storage) - len(kept)
        self.storage[:] = kept
        return removed

    def close(self) -> None:
        pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def reopen_feedback(closed: FeedbackLoop) -> InMemoryFeedback:
    """A new :class:`InMemoryFeedback` handle on the storage of a closed one."""
    return InMemoryFeedback(require_instance(closed, InMemoryFeedback, "reopen").storage)


@dataclass(frozen=True)
class FakeHealth:
    """What :class:`FakeEndpoint` reports: satisfies ``HealthStatus``."""

    ready: bool
    status: str


class FakeEndpoint:
    """Serves a generator in-process: the least an ``Endpoint`` must do."""

    def __init__(self, generator: Generator[Any, Any]) -> None:
        self._generator: Generator[Any, Any] | None = generator

    def _open(self) -> Generator[Any, Any]:
        if self._generator is None:
            raise InvalidInputError("FakeEndpoint: the endpoint is closed")
        return self._generator

    def invoke(self, request: Any) -> Any:
        return self._open().generate(request)

    def invoke_batch(self, requests: Sequence[Any]) -> Sequence[Any]:
        return self._open().generate_batch(requests)

    def health(self) -> FakeHealth:
        ready = self._generator is not None
        return FakeHealth(ready=ready, status="ready" if ready else "closed")

    def close(self) -> None:
        self._generator = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


FAKE_REGISTRY = Registry({"tests.BigramLM": BigramLM})
"""The classes :class:`DirectoryDeployer` rebuilds by name when given no registry."""


class DirectoryDeployer:
    """Packages a BigramLM with a hash manifest and serves it in-process.

    Rebuilds the component by its name in a registry (``tests.BigramLM``);
    ``verify`` checks each listed file and refuses files it does not list.
    """

    def package(
        self,
        component: Persistable,
        directory: str | os.PathLike[str],
        *,
        name: str,
        version: str,
        registry: Registry | None = None,
    ) -> ArtifactManifest:
        component_name = (registry or FAKE_REGISTRY).name_of(type(component))
        with atomic_directory(directory) as staging:
            component.save(staging / "component")
            files = {
                p.relative_to(staging).as_posix(): FileDigest(
                    sha256=sha256_file(p), size=p.stat().st_size
                )
                for p in sorted(staging.rglob("*"))
                if p.is_file()
            }
            manifest = ArtifactManifest(
                name=name,
                version=version,
                component=component_name,
                files=files,
                genarch_version="test",
            )
            (staging / "manifest.json").write_text(manifest.model_dump_json())
        return manifest

    def verify(self, directory: str | os.PathLike[str]) -> ArtifactManifest:
        root = Path(directory)
        try:
            manifest = ArtifactManifest.parse((root / "manifest.json").read_text())
        except (OSError, InvalidInputError) as error:
            raise IntegrityError(f"manifest.json is missing or corrupt: {error}") from None
        for relative, digest in manifest.files.items():
            if not (root / relative).is_file():
                raise IntegrityError(f"{relative} is missing")
            if sha256_file(root / relative) != digest.sha256:
                raise IntegrityError(f"{relative}: SHA-256 does not match the manifest")
        for path in root.rglob("*"):
            relative = path.relative_to(root).as_posix()
            if path.is_file() and relative != "manifest.json" and relative not in manifest.files:
                raise IntegrityError(f"{relative} is not listed in the manifest")
        return manifest

    def load(
        self, directory: str | os.PathLike[str], registry: Registry | None = None
    ) -> Persistable:
        manifest = self.verify(directory)
        component_type = (registry or FAKE_REGISTRY).resolve(manifest.component)
        loaded: Persistable = component_type.load(Path(directory) / "component")
        return loaded

    def serve(self, component: Any) -> FakeEndpoint:
        return FakeEndpoint(require_instance(component, Generator, "serve"))  # type: ignore[type-abstract]

    def deploy(
        self, directory: str | os.PathLike[str], registry: Registry | None = None
    ) -> FakeEndpoint:
        return self.serve(self.load(directory, registry))


class ExactVectorStore:
    """Exact inner-product search over a dict of vectors."""

    def __init__(self, dim: int) -> None:
        self._dim = dim
        self._vectors: dict[str, torch.Tensor] = {}
        self._metadata: dict[str, dict[str, MetadataValue]] = {}

    @property
    def dim(self) -> int:
        return self._dim

    def __len__(self) -> int:
        return len(self._vectors)

    def _check(self, vectors: torch.Tensor) -> None:
        if vectors.ndim != 2 or vectors.shape[1] != self._dim:
            raise InvalidInputError(f"expected shape (N, {self._dim}), got {tuple(vectors.shape)}")
        if not bool(torch.isfinite(vectors).all()):
            raise InvalidInputError("vectors must be finite (found NaN or infinity)")

    def upsert(
        self,
        ids: Sequence[str],
        vectors: torch.Tensor,
        metadata: Sequence[dict[str, MetadataValue]] | None = None,
    ) -> None:
        self._check(vectors)
        for index, key in enumerate(ids):
            self._vectors[key] = vectors[index].clone()
            self._metadata[key] = dict(metadata[index]) if metadata else {}

    def delete(self, ids: Sequence[str]) -> None:
        missing = [i for i in ids if i not in self._vectors]
        if missing:
            raise NotFoundError(f"unknown ids: {missing}")
        for key in ids:
            del self._vectors[key], self._metadata[key]

    def search(
        self, queries: torch.Tensor, k: int, *, where: Mapping[str, MetadataValue] | None = None
    ) -> list[list[Hit]]:
        self._check(queries)
        if k < 1:
            raise InvalidInputError(f"k must be >= 1, got {k}")
        keys = [
            key
            for key, meta in self._metadata.items()
            if not where or all(meta.get(f) == v for f, v in where.items())
        ]
        if not keys:
            return [[] for _ in range(queries.shape[0])]
        matrix = torch.stack([self._vectors[key] for key in keys])
        scores, indices = (queries @ matrix.T).topk(min(k, len(keys)), dim=1)
        return [
            [
                Hit(id=keys[i], score=float(s), metadata=self._metadata[keys[i]])
                for s, i in zip(row_s, row_i, strict=True)
            ]
            for row_s, row_i in zip(scores.tolist(), indices.tolist(), strict=True)
        ]


class KeywordRetriever:
    """Scores chunks by the number of query words they contain."""

    def __init__(self, chunks: Iterable[Chunk]) -> None:
        self.chunks = list(chunks)

    def retrieve(self, query: str, k: int) -> list[ScoredChunk]:
        require_instance(query, str, "KeywordRetriever.retrieve")
        if k < 1:
            raise InvalidInputError(f"k must be >= 1, got {k}")
        words = set(query.lower().split())
        scored = [
            ScoredChunk(chunk=c, score=float(len(words & set(c.text.lower().split()))))
            for c in self.chunks
        ]
        scored.sort(key=lambda s: (-s.score, s.chunk.id))
        return scored[:k]


class SlotTemplate:
    """A template with ``[[name]]`` slots, filled literally (values are never parsed)."""

    def __init__(self, text: str) -> None:
        self.text = text
        parts = text.split("[[")
        self._variables = frozenset(p.split("]]", 1)[0] for p in parts[1:])

    @property
    def variables(self) -> frozenset[str]:
        return self._variables

    def render(self, values: Mapping[str, object]) -> str:
        missing, unexpected = self._variables - set(values), set(values) - self._variables
        if missing or unexpected:
            raise InvalidInputError(
                f"missing variables {sorted(missing)}, unexpected {sorted(unexpected)}"
            )
        pieces = self.text.split("[[")
        out = [pieces[0]]
        for piece in pieces[1:]:
            name, rest = piece.split("]]", 1)
            out.append(str(values[name]) + rest)
        return "".join(out)


def corpus_fingerprint(text: str) -> str:
    """Used by tests to show that a fake was trained on the expected corpus."""
    return hashlib.sha256(json.dumps(text).encode()).hexdigest()[:12]


def _static_conformance() -> None:
    """Never called: mypy checks that each fake satisfies its protocol structurally."""
    text_lm: StreamingGenerator[TextRequest, TextResult, str] = BigramLM()
    images: Generator[ImageRequest, ImageResult] = LinearLatentImages()
    latent: LatentGenerator = LinearLatentImages()
    tabular: Generator[TabularRequest, TabularResult] = IndependentTabular({"a": {"x": 1.0}})
    gan: Optimizer[torch.Tensor] = gan_optimizer()
    dpo: Optimizer[PreferenceBatch] = dpo_optimizer()
    features: FeatureExtractor[str] = CharHistogram()
    feedback: FeedbackLoop = InMemoryFeedback()
    deployer: Deployer = DirectoryDeployer()
    endpoint: Endpoint[TextRequest, TextResult] = FakeEndpoint(BigramLM())
    health: HealthStatus = FakeHealth(ready=True, status="ready")
    store: VectorStore = ExactVectorStore(4)
    retriever: Retriever = KeywordRetriever([])
    template: PromptTemplate = SlotTemplate("[[x]]")
    persistable: Persistable = BigramLM()
    del text_lm, images, latent, tabular, gan, dpo, features, feedback, deployer, endpoint, health
    del store, retriever, template, persistable
