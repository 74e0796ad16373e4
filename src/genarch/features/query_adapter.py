"""A learned question-side adapter for a sentence encoder: asymmetric search from labelled questions.

A sentence encoder such as all-MiniLM-L6-v2 embeds a question and a passage
the same way, so "I added __eq__ and now my objects are unhashable. Why?"
lands near sentences about equality rather than near the one that answers
it. :class:`QueryAdapter` moves only the *questions*: a low-rank residual map
learned from labelled questions,

    ``q' = normalize(q + q @ down @ up)``,

while passages keep the encoder's own vectors (so an index built with the
encoder stays valid). With ``down`` and ``up`` zero it is the encoder itself.
It is a :class:`~genarch.protocols.FeatureExtractor` of strings: give it where
the questions are embedded (``DenseRetriever(query_extractor=...)``,
``ExtractiveGenerator(question_encoder=...)``).

:func:`fit_query_adapter` learns the map from :class:`AdapterExample`\\ s:
a question, the candidate passages an assistant chose among, and which of
them answer it. The loss is the softmax cross-entropy of the answering
candidates among all the candidates (cosines over ``temperature``), plus
``l2`` times the squared norm of the map, so that it stays close to the
encoder; Adam, full batch, seeded: the same examples give the same adapter.

The file format is one safetensors file (``down``, ``up``) whose metadata
names the format and the fingerprint of the encoder it was fitted on
(:func:`~genarch.features.embedding_cache.encoder_fingerprint`): an adapter is
only meaningful on its encoder's vectors, and :meth:`QueryAdapter.load`
refuses any other encoder.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Annotated

import torch
from pydantic import Field, model_validator
from torch.nn import functional

from genarch._io import atomic_write_bytes
from genarch.errors import IntegrityError, InvalidInputError, NotFoundError
from genarch.features.embedding_cache import encoder_fingerprint
from genarch.protocols import FeatureExtractor
from genarch.schemas import Record
from genarch.validation import checked_items, checked_texts, describe, require_count

__all__ = ["AdapterExample", "QueryAdapter", "fit_query_adapter"]

FORMAT = "genarch.query_adapter/1"

PathLike = str | os.PathLike[str]


class AdapterExample(Record):
    """One labelled question for :func:`fit_query_adapter`.

    Attributes:
        question: the question as asked.
        candidates: the passages the answer is chosen among, as the encoder
            embeds them (e.g. a sentence with its topic's title in front).
        answers: the indexes of the candidates that answer the question.
    """

    question: Annotated[str, Field(min_length=1)]
    candidates: Annotated[tuple[str, ...], Field(min_length=1)]
    answers: Annotated[tuple[int, ...], Field(min_length=1)]

    @model_validator(mode="after")
    def _answers_are_candidates(self) -> AdapterExample:
        if any(not 0 <= index < len(self.candidates) for index in self.answers):
            raise ValueError(
                f"answers must index the {len(self.candidates)} candidates, got {self.answers}"
            )
        return self


class QueryAdapter:
    """Embeds questions with ``encoder``, then moves them by a learned low-rank map.

    Args:
        encoder: the sentence encoder whose vectors the passages have.
        down: ``(dim, rank)``.
        up: ``(rank, dim)``.

    Raises:
        InvalidInputError: ``encoder`` is not a FeatureExtractor, or the
            matrices do not fit its ``dim`` or each other.

    Examples:
        >>> from genarch.features import HashingVectorizer
        >>> encoder = HashingVectorizer(dim=8)
        >>> same = QueryAdapter(encoder, torch.zeros(8, 2), torch.zeros(2, 8))
        >>> vectors = torch.nn.functional.normalize(encoder.extract(["a b"]), dim=1)
        >>> bool(torch.allclose(same.extract(["a b"]), vectors))
        True
    """

    def __init__(
        self, encoder: FeatureExtractor[str], down: torch.Tensor, up: torch.Tensor
    ) -> None:
        if not isinstance(encoder, FeatureExtractor):
            raise InvalidInputError(
                f"QueryAdapter needs a FeatureExtractor (dim, extract), got {describe(encoder)}"
            )
        dim = encoder.dim
        if not (
            isinstance(down, torch.Tensor)
            and isinstance(up, torch.Tensor)
            and down.ndim == 2
            and up.ndim == 2
            and down.shape[0] == dim
            and up.shape[1] == dim
            and down.shape[1] == up.shape[0]
        ):
            raise InvalidInputError(
                f"QueryAdapter expected down (dim={dim}, rank) and up (rank, dim={dim}) tensors, "
                f"got {_shape(down)} and {_shape(up)}"
            )
        self.encoder = encoder
        self.down = down.detach().to(dtype=torch.float32, device="cpu")
        self.up = up.detach().to(dtype=torch.float32, device="cpu")

    @property
    def dim(self) -> int:
        """The encoder's dimension."""
        return self.encoder.dim

    @property
    def rank(self) -> int:
        """The rank of the learned map."""
        return int(self.down.shape[1])

    def adapt(self, vectors: torch.Tensor) -> torch.Tensor:
        """Unit vectors of the questions whose encoder vectors are ``vectors`` ``(n, dim)``."""
        unit = functional.normalize(vectors.to(torch.float32), dim=1)
        return functional.normalize(unit + unit @ self.down @ self.up, dim=1)

    def extract(self, items: Sequence[str]) -> torch.Tensor:
        """The adapted unit vectors of ``items`` (questions), ``(len(items), dim)``.

        Raises:
            InvalidInputError: ``items`` is not a list of str.
        """
        return self.adapt(self.encoder.extract(checked_texts(items, "QueryAdapter.extract")))

    def save(self, path: PathLike) -> None:
        """Write the adapter to ``path`` (one safetensors file, atomically)."""
        from safetensors.torch import save

        metadata = {
            "format": FORMAT,
            "encoder_fingerprint": encoder_fingerprint(self.encoder),
            "rank": str(self.rank),
        }
        data = save({"down": self.down.contiguous(), "up": self.up.contiguous()}, metadata)
        atomic_write_bytes(path, data)

    @classmethod
    def load(cls, path: PathLike, encoder: FeatureExtractor[str]) -> QueryAdapter:
        """The adapter saved at ``path``, on ``encoder``.

        Raises:
            NotFoundError: no file at ``path``.
            IntegrityError: the file is not a query adapter.
            InvalidInputError: ``encoder`` is not the one the adapter was fitted on
                (its model fingerprint differs).
        """
        from safetensors import SafetensorError, safe_open

        if not os.path.isfile(path):
            raise NotFoundError(f"no query adapter at {path}")
        try:
            with safe_open(os.fspath(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
                tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
        except (SafetensorError, OSError) as error:
            raise IntegrityError(f"{path} is not a safetensors file: {error}") from None
        if metadata.get("format") != FORMAT or set(tensors) != {"down", "up"}:
            raise IntegrityError(
                f"{path} is not a query adapter (expected format {FORMAT!r} with tensors "
                f"down and up, got {metadata.get('format')!r} with {sorted(tensors)})"
            )
        if metadata.get("encoder_fingerprint") != encoder_fingerprint(encoder):
            raise InvalidInputError(
                f"the query adapter at {path} was fitted on another encoder's vectors "
                f"(fingerprint {str(metadata.get('encoder_fingerprint'))[:12]}…), not on "
                f"{describe(encoder)}'s"
            )
        return cls(encoder, tensors["down"], tensors["up"])


def _shape(value: object) -> str:
    return str(tuple(value.shape)) if isinstance(value, torch.Tensor) else describe(value)


def fit_query_adapter(
    encoder: FeatureExtractor[str],
    examples: Sequence[AdapterExample],
    *,
    rank: int = 32,
    steps: int = 150,
    temperature: float = 0.05,
    l2: float = 0.01,
    learning_rate: float = 0.01,
    seed: int = 0,
) -> QueryAdapter:
    """Learn a :class:`QueryAdapter` that ranks each example's answers first among its candidates.

    Every question and candidate is embedded once (pass a
    :class:`~genarch.features.CachedExtractor` to keep the vectors).

    Args:
        encoder: the sentence encoder (its vectors stay as they are for passages).
        examples: the labelled questions.
        rank: the rank of the map.
        steps: full-batch Adam steps.
        temperature: the softmax temperature of the cosines.
        l2: the weight of the map's squared norm in the loss.
        learning_rate: Adam's.
        seed: the initialisation's.

    Raises:
        InvalidInputError: no examples, an item that is not an AdapterExample,
            or a setting out of range.
    """
    examples = list(checked_items(examples, AdapterExample, "fit_query_adapter"))
    if not examples:
        raise InvalidInputError("fit_query_adapter expected at least one AdapterExample, got none")
    rank = require_count(rank, "fit_query_adapter", "rank")
    steps = require_count(steps, "fit_query_adapter", "steps")
    for name, number in (("temperature", temperature), ("learning_rate", learning_rate)):
        if not isinstance(number, int | float) or not number > 0:
            raise InvalidInputError(
                f"fit_query_adapter expected {name} > 0, got {describe(number)}"
            )
    if not isinstance(l2, int | float) or not l2 >= 0:
        raise InvalidInputError(f"fit_query_adapter expected l2 >= 0, got {describe(l2)}")
    texts = list(dict.fromkeys(t for e in examples for t in (e.question, *e.candidates)))
    vectors = functional.normalize(encoder.extract(texts).to(torch.float32), dim=1)
    row = {text: n for n, text in enumerate(texts)}
    questions = vectors[[row[e.question] for e in examples]]
    candidates = [vectors[[row[t] for t in e.candidates]] for e in examples]
    targets = []
    for example in examples:
        target = torch.zeros(len(example.candidates))
        target[list(example.answers)] = 1.0 / len(set(example.answers))
        targets.append(target)
    generator = torch.Generator().manual_seed(seed)
    dim = encoder.dim
    down = (torch.randn(dim, rank, generator=generator) * 0.01).requires_grad_()
    up = torch.zeros(rank, dim, requires_grad=True)
    optimizer = torch.optim.Adam([down, up], lr=learning_rate)
    for _ in range(steps):
        optimizer.zero_grad()
        mapped = functional.normalize(questions + questions @ down @ up, dim=1)
        loss = (
            torch.stack(
                [
                    -(functional.log_softmax(c @ q / temperature, dim=0) * t).sum()
                    for q, c, t in zip(mapped, candidates, targets, strict=True)
                ]
            ).mean()
            + l2 * (down @ up).square().sum()
        )
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
    return QueryAdapter(encoder, down.detach(), up.detach())
