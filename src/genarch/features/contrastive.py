"""A small sentence encoder trained contrastively on pairs mined from your own corpus.

No labels are needed: a document's structure says which texts belong together.
:func:`mine_pairs` pairs each section title (and the topic name) with the
section's chunks, and the first sentence of each chunk with the rest of it —
the *inverse cloze task* of Lee et al. (2019, "Latent Retrieval for Weakly
Supervised Open Domain Question Answering"). The encoder learns to place a
query near its passage and far from the other passages of the batch: the
InfoNCE loss with in-batch negatives (van den Oord et al., 2018; Karpukhin et
al., 2020, "Dense Passage Retrieval"), computed in both directions.

The encoder itself is deliberately small and fast on a CPU: a bag of hashed
word unigrams, word bigrams and character trigrams of words (as in fastText,
Bojanowski et al., 2017) averaged by an ``nn.EmbeddingBag`` and projected to
``dim`` dimensions, then L2-normalised. Subword trigrams let it match
``"iterate"`` with ``"iterator"`` and survive typos.

Training uses the ordinary genarch machinery: :class:`InfoNCE` is a
:class:`~genarch.protocols.TrainingObjective`, stepped by
:class:`~genarch.training.ObjectiveOptimizer`; :func:`train_on_corpus` is the
whole recipe in one call.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Self

import torch
import torch.nn.functional as F  # noqa: N812 - the usual torch spelling
from pydantic import Field
from torch import Tensor, nn

from genarch.configured import Configured
from genarch.data.chunking import Chunker
from genarch.errors import ConfigError, InvalidInputError
from genarch.features.lexical import lexical_tokens, stable_hash
from genarch.persistence import load_state, open_saved, save_component
from genarch.protocols import PathLike
from genarch.schemas import Config, Document
from genarch.training.optimizer import ObjectiveOptimizer, adamw
from genarch.validation import checked_texts, describe

__all__ = [
    "ContrastiveEncoderConfig",
    "ContrastiveSentenceEncoder",
    "InfoNCE",
    "TextPair",
    "mine_pairs",
    "train_on_corpus",
]

logger = logging.getLogger(__name__)

_FORMAT = "genarch.ContrastiveSentenceEncoder"  # saved as config.json + model.safetensors
_PAD = 0  # bucket 0 is padding; hashed features use buckets 1..buckets-1


class ContrastiveEncoderConfig(Config):
    """Shape and features of a :class:`ContrastiveSentenceEncoder`.

    Attributes:
        dim: width of the sentence vectors.
        width: width of the hashed-feature embedding table.
        buckets: rows of the table; features are hashed into them.
        char_ngrams: add the character trigrams of each word (with ``<``/``>``
            marking its ends) as features.
        word_bigrams: add adjacent word pairs as features.
        max_features: the most features read per text (longer texts are truncated).
        seed: seeds the initial weights (:meth:`ContrastiveSentenceEncoder.from_config`).
    """

    dim: Annotated[int, Field(ge=1)] = 128
    width: Annotated[int, Field(ge=1)] = 128
    buckets: Annotated[int, Field(ge=2, le=1 << 24)] = 1 << 17
    char_ngrams: bool = True
    word_bigrams: bool = True
    max_features: Annotated[int, Field(ge=1)] = 2048
    seed: int = 0


def _features(text: str, config: ContrastiveEncoderConfig) -> list[int]:
    """Hashed feature ids (in ``1..buckets-1``) of one text."""
    words = lexical_tokens(text)
    terms = ["w:" + w for w in words]
    if config.word_bigrams:
        terms += [f"b:{a} {b}" for a, b in itertools.pairwise(words)]
    if config.char_ngrams:
        for word in words:
            marked = f"<{word}>"
            terms += ["c:" + marked[i : i + 3] for i in range(len(marked) - 2)]
    slots = config.buckets - 1
    return [1 + stable_hash(term) % slots for term in terms[: config.max_features]]


def _padded(rows: list[list[int]]) -> Tensor:
    """``(B, L)`` int64 feature ids, right-padded with the padding bucket (L >= 1)."""
    width = max([1, *map(len, rows)])
    out = torch.full((len(rows), width), _PAD, dtype=torch.int64)
    for index, row in enumerate(rows):
        out[index, : len(row)] = torch.tensor(row, dtype=torch.int64)
    return out


class _BagEncoder(nn.Module):
    """Hashed features ``(B, L)`` -> unit vectors ``(B, dim)``: mean of embeddings, projected."""

    def __init__(self, config: ContrastiveEncoderConfig) -> None:
        super().__init__()
        self.table = nn.EmbeddingBag(config.buckets, config.width, mode="mean", padding_idx=_PAD)
        self.projection = nn.Linear(config.width, config.dim)
        nn.init.normal_(self.table.weight, std=0.1)
        with torch.no_grad():
            self.table.weight[_PAD].zero_()

    def forward(self, features: Tensor) -> Tensor:
        pooled = self.table(features)  # (B, width); padding is left out of the mean
        return F.normalize(self.projection(pooled), p=2.0, dim=-1)  # (B, dim)


class ContrastiveSentenceEncoder(Configured[ContrastiveEncoderConfig]):
    """Unit-length sentence vectors from a small hashed-feature encoder.

    ``extract(texts)`` gives float32 ``(len(texts), dim)``, each row of length 1
    (a text with no words gives the projection of the zero vector, normalised).
    Train it with :func:`train_on_corpus`, or step :class:`InfoNCE` yourself.

    Args:
        config: a :class:`ContrastiveEncoderConfig`; keyword fields are shorthand.
            The weights are initialised from ``config.seed`` (so
            :meth:`from_config` gives a fresh, untrained encoder).

    Examples:
        >>> encoder = ContrastiveSentenceEncoder(dim=32, width=32, buckets=4096)
        >>> vectors = encoder.extract(["open a file", "sort a list"])
        >>> vectors.shape, [round(float(n), 4) for n in vectors.norm(dim=1)]
        (torch.Size([2, 32]), [1.0, 1.0])
    """

    def __init__(
        self, config: ContrastiveEncoderConfig | Mapping[str, Any] | None = None, **fields: Any
    ) -> None:
        Configured.__init__(self, config, **fields)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed)
            self.module = _BagEncoder(self.config)

    @property
    def dim(self) -> int:
        """Width of the vectors."""
        return self.config.dim

    def featurize(self, texts: Sequence[str]) -> Tensor:
        """The padded hashed-feature ids ``(len(texts), L)`` the module reads.

        Raises:
            InvalidInputError: ``texts`` is not a sequence of strings.
        """
        checked = checked_texts(texts, "ContrastiveSentenceEncoder.featurize")
        return _padded([_features(text, self.config) for text in checked])

    def extract(self, items: Sequence[str]) -> Tensor:
        """Unit vectors of ``items``: float32, ``(len(items), dim)``, on the CPU.

        Raises:
            InvalidInputError: ``items`` is not a sequence of strings.
        """
        texts = checked_texts(items, "ContrastiveSentenceEncoder.extract")
        if not texts:
            return torch.zeros((0, self.dim), dtype=torch.float32)
        was_training = self.module.training
        self.module.eval()
        try:
            with torch.inference_mode():
                return self.module(self.featurize(texts)).float()  # type: ignore[no-any-return]
        finally:
            self.module.train(was_training)

    def save(self, directory: PathLike) -> None:
        """Write ``config.json`` and ``model.safetensors`` atomically."""
        save_component(directory, _FORMAT, config=self.config, tensors=self.module.state_dict())

    @classmethod
    def load(cls, directory: PathLike) -> Self:
        """Load an encoder written by :meth:`save`.

        Raises:
            NotFoundError: ``directory`` holds no saved encoder.
            IntegrityError: the files are corrupt or were written by another component.
        """
        saved = open_saved(directory, _FORMAT)
        encoder = cls(saved.config(ContrastiveEncoderConfig))
        load_state(encoder.module, saved.tensors(), f"the saved {_FORMAT} in {str(saved.root)!r}")
        return encoder


# ------------------------------------------------------------------ pairs


@dataclass(frozen=True)
class TextPair:
    """A query and a passage that belong together.

    Attributes:
        query: the short text (a title, a first sentence).
        passage: the text it should retrieve.
        group: pairs of one group (one document) are not used as each other's
            negatives — they may well be related.
    """

    query: str
    passage: str
    group: str


_UNDERLINE = re.compile(r"^\s*([*=\-~^\"#]{3,})\s*$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")


def _title_and_body(text: str) -> tuple[str, int]:
    """The document's title (its first line when underlined, as in reST) and where the body starts."""
    lines = text.split("\n", 2)
    if len(lines) >= 2 and _UNDERLINE.match(lines[1]) and lines[0].strip():
        return lines[0].strip(), len(lines[0]) + len(lines[1]) + 2
    return "", 0


def mine_pairs(
    documents: Iterable[Document],
    *,
    chunker: Chunker | None = None,
    min_passage_words: int = 8,
) -> list[TextPair]:
    """Query/passage pairs from the structure of each document.

    For every chunk of a document's body (cut by ``chunker``, default 96 word
    pieces without overlap): ``(title, chunk)`` when the document starts with an
    underlined title, ``(topic, chunk)`` from ``metadata["topic"]`` (dashes read
    as spaces) when present, and ``(first sentence, rest of the chunk)`` when the
    chunk has two sentences or more. Chunks under ``min_passage_words`` words are skipped.

    Raises:
        InvalidInputError: an item is not a :class:`~genarch.schemas.Document`.

    Examples:
        >>> doc = Document(id="lists", text="Lists\\n*****\\n\\nLists are mutable sequences. "
        ...                "They hold items of any type and grow as needed.")
        >>> [(p.query, p.passage[:22]) for p in mine_pairs([doc], min_passage_words=3)]
        [('Lists', 'Lists are mutable sequ'), ('Lists are mutable sequences.', 'They hold items of any')]
    """
    chunker = chunker or Chunker(max_tokens=96, overlap_tokens=0)
    pairs: list[TextPair] = []
    for index, document in enumerate(documents):
        if not isinstance(document, Document):
            raise InvalidInputError(
                f"mine_pairs expected Document items, but item {index} is {describe(document)}"
            )
        title, body_start = _title_and_body(document.text)
        topic = document.metadata.get("topic")
        queries = [
            q for q in (title, topic.replace("-", " ") if isinstance(topic, str) else "") if q
        ]
        body = Document(id=document.id, text=document.text[body_start:])
        for chunk in chunker.process([body]):
            passage = " ".join(chunk.text.split())
            if len(passage.split()) < min_passage_words:
                continue
            pairs.extend(TextPair(query, passage, document.id) for query in dict.fromkeys(queries))
            sentences = _SENTENCE_END.split(passage, maxsplit=1)
            if len(sentences) == 2 and len(sentences[1].split()) >= min_passage_words // 2:
                pairs.append(TextPair(sentences[0], sentences[1], document.id))
    return pairs


# ------------------------------------------------------------------ objective


class InfoNCE:
    """Contrastive loss with in-batch negatives, for a :class:`ContrastiveSentenceEncoder`.

    A batch is ``(queries, passages, groups)``: feature ids ``(B, Lq)`` and
    ``(B, Lp)`` (from :meth:`ContrastiveSentenceEncoder.featurize`) and group
    ids ``(B,)``. Query ``i`` should score highest against passage ``i`` among
    all passages of the batch, and passage ``i`` against query ``i``; the loss is
    the mean of the two cross-entropies over ``q·p / temperature``. Other pairs
    of the same group are masked out rather than used as negatives.

    With gradient accumulation the negatives of a query are those of its
    micro-batch only, so the loss changes with ``accumulation_steps``.

    Args:
        encoder: the encoder whose ``module`` is trained (the player ``"encoder"``).
        temperature: softmax temperature; small values sharpen the contrast.
    """

    def __init__(self, encoder: ContrastiveSentenceEncoder, *, temperature: float = 0.05) -> None:
        if not isinstance(encoder, ContrastiveSentenceEncoder):
            raise ConfigError(
                f"InfoNCE needs a ContrastiveSentenceEncoder, got {describe(encoder)}"
            )
        if not temperature > 0:
            raise ConfigError(f"temperature must be positive, got {temperature!r}")
        self.encoder = encoder
        self.temperature = temperature

    def players(self) -> Mapping[str, nn.Module]:
        """The one player: ``{"encoder": encoder.module}``."""
        return {"encoder": self.encoder.module}

    def batch(self, pairs: Sequence[TextPair]) -> tuple[Tensor, Tensor, Tensor]:
        """Turn pairs into the tensors :meth:`loss` reads.

        Raises:
            InvalidInputError: fewer than two pairs, or an item is not a :class:`TextPair`.
        """
        if len(pairs) < 2 or not all(isinstance(p, TextPair) for p in pairs):
            raise InvalidInputError(
                f"InfoNCE.batch needs at least two TextPairs, got {describe(pairs)}"
            )
        names = {name: i for i, name in enumerate(dict.fromkeys(p.group for p in pairs))}
        return (
            self.encoder.featurize([p.query for p in pairs]),
            self.encoder.featurize([p.passage for p in pairs]),
            torch.tensor([names[p.group] for p in pairs], dtype=torch.int64),
        )

    def loss(self, player: str, batch: tuple[Tensor, Tensor, Tensor]) -> Tensor:
        """Symmetric InfoNCE over the batch.

        Raises:
            InvalidInputError: the player is not ``"encoder"`` or the batch is malformed.
        """
        if player != "encoder":
            raise InvalidInputError(f"InfoNCE has one player, 'encoder'; got {player!r}")
        if (
            not isinstance(batch, tuple | list)
            or len(batch) != 3
            or not all(isinstance(t, Tensor) for t in batch)
            or batch[0].ndim != 2
            or batch[1].ndim != 2
            or batch[2].ndim != 1
            or not batch[0].shape[0] == batch[1].shape[0] == batch[2].shape[0] >= 2
        ):
            raise InvalidInputError(
                "InfoNCE expects (queries (B, Lq), passages (B, Lp), groups (B,)) with B >= 2, "
                f"as made by InfoNCE.batch; got {describe(batch)}"
            )
        queries, passages, groups = batch
        q = self.encoder.module(queries)  # (B, dim)
        p = self.encoder.module(passages)  # (B, dim)
        logits = q @ p.T / self.temperature  # (B, B)
        same_group = groups.unsqueeze(0) == groups.unsqueeze(1)
        same_group.fill_diagonal_(False)
        logits = logits.masked_fill(same_group, float("-inf"))
        targets = torch.arange(len(groups), device=logits.device)
        return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


# ------------------------------------------------------------------ recipe


def train_on_corpus(
    documents: Iterable[Document] | None = None,
    *,
    config: ContrastiveEncoderConfig | None = None,
    steps: int = 300,
    batch_size: int = 64,
    learning_rate: float = 3e-3,
    temperature: float = 0.05,
    seed: int = 0,
) -> ContrastiveSentenceEncoder:
    """Mine pairs from ``documents`` and train a fresh encoder on them.

    Args:
        documents: the corpus; default: Python's documentation
            (:func:`genarch.data.python_docs`).
        config: the encoder's shape (default :class:`ContrastiveEncoderConfig`).
        steps: optimizer steps, each on ``batch_size`` pairs drawn without
            replacement (reshuffled every pass over the pairs).
        batch_size: pairs per step; each query has ``batch_size - 1`` negatives.
        learning_rate: AdamW's learning rate.
        temperature: InfoNCE's temperature.
        seed: seeds the weights' initialisation (via ``config.seed`` when no config
            is given), the order of the pairs and the optimizer.

    Returns:
        The trained encoder.

    Raises:
        InvalidInputError: the documents yield fewer than ``batch_size`` pairs.
        ConfigError: a non-positive ``steps`` or a ``batch_size`` below 2.

    Examples:
        >>> from genarch.data import python_docs
        >>> encoder = train_on_corpus(python_docs()[:20], steps=5, batch_size=16,
        ...                           config=ContrastiveEncoderConfig(buckets=8192))
        >>> encoder.extract(["How do I loop over a list?"]).shape
        torch.Size([1, 128])
    """
    if not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"steps must be a positive int, got {steps!r}")
    if not isinstance(batch_size, int) or batch_size < 2:
        raise ConfigError(
            f"batch_size must be an int >= 2 (in-batch negatives), got {batch_size!r}"
        )
    if documents is None:
        from genarch.data import python_docs

        documents = python_docs()
    pairs = mine_pairs(documents)
    if len(pairs) < batch_size:
        raise InvalidInputError(
            f"the documents gave {len(pairs)} pairs, fewer than one batch of {batch_size}"
        )
    encoder = ContrastiveSentenceEncoder(config or ContrastiveEncoderConfig(seed=seed))
    objective = InfoNCE(encoder, temperature=temperature)
    optimizer: ObjectiveOptimizer[tuple[Tensor, Tensor, Tensor]] = ObjectiveOptimizer(
        objective, optimizer=adamw(learning_rate), seed=seed
    )
    # Hash every distinct text once, not once per step.
    texts = dict.fromkeys(t for p in pairs for t in (p.query, p.passage))
    features = {text: _features(text, encoder.config) for text in texts}
    groups = {name: i for i, name in enumerate(dict.fromkeys(p.group for p in pairs))}
    generator = torch.Generator().manual_seed(seed)
    order: list[int] = []
    for step in range(steps):
        if len(order) < batch_size:
            order = torch.randperm(len(pairs), generator=generator).tolist()
        chosen, order = order[:batch_size], order[batch_size:]
        batch = (
            _padded([features[pairs[i].query] for i in chosen]),
            _padded([features[pairs[i].passage] for i in chosen]),
            torch.tensor([groups[pairs[i].group] for i in chosen], dtype=torch.int64),
        )
        report = optimizer.step(batch)
        if step % 50 == 0 or step == steps - 1:
            logger.info(
                "contrastive step %d/%d: loss %.4f", step + 1, steps, report.losses["encoder"]
            )
    encoder.module.eval()
    return encoder
