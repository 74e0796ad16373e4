"""Sentence features from a language model: mean-pooled hidden states.

A transformer maps token ids ``(B, T)`` to hidden states ``(B, T, D)``; the
average of a text's states over its tokens is a fixed-size vector that
describes the text — the simplest sentence embedding (Reimers & Gurevych, 2019,
found mean pooling the best of the simple poolings for BERT). For a model
trained only to predict the next token the vectors capture topic and style more
than meaning; the contrastive encoder (:mod:`genarch.features.contrastive`) or a
pretrained one (:mod:`genarch.features.minilm`) is better for retrieval.

* :class:`MeanPooledEncoder` works with any module that maps ids to hidden
  states, plus any :class:`~genarch.protocols.Tokenizer`.
* :class:`GPTMeanPooledEncoder` wraps a :class:`~genarch.models.transformer.GPT`
  and a genarch tokenizer, with a config and ``save``/``load``.

Texts are never padded: they are grouped by token count and each group runs as
one batch, so a text's vector is the same whichever batch it arrives in, even
for a model that attends in both directions. Texts longer than ``max_length``
tokens are truncated; an empty text (no tokens) gives a zero vector.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Self

import torch
import torch.nn.functional as F  # noqa: N812 - the usual torch spelling
from pydantic import BaseModel, Field

from genarch.configured import Configured
from genarch.data.tokenizers import (
    ByteTokenizerConfig,
    SavedTokenizerReference,
    StandardEncodingReference,
    load_tokenizer,
)
from genarch.errors import ConfigError, InvalidInputError
from genarch.models.transformer import GPT, GPTConfig
from genarch.persistence import open_saved, reading, save_component
from genarch.protocols import PathLike, Tokenizer
from genarch.schemas import Config
from genarch.validation import checked_texts, describe

__all__ = ["GPTMeanPooledEncoder", "GPTMeanPooledEncoderConfig", "MeanPooledEncoder"]

HiddenStates = Callable[[torch.Tensor], torch.Tensor]
"""Maps token ids ``(B, T)`` (int64) to hidden states ``(B, T, D)``."""

_FORMAT = "genarch.GPTMeanPooledEncoder"
_STATE_FILE = (
    "encoder.json"  # the settings; the model and the tokenizer are in model/ and tokenizer/
)


class MeanPooledEncoder:
    """The mean of a model's hidden states over each text's tokens.

    Args:
        model: maps token ids ``(B, T)`` to hidden states ``(B, T, dim)`` — an
            ``nn.Module`` or any callable (e.g. ``gpt.hidden_states``). It is run in
            eval mode, under ``torch.inference_mode``.
        tokenizer: turns each text into the ids the model reads.
        dim: width of the hidden states.
        max_length: the most tokens read per text (longer texts are truncated).
        normalize: L2-normalise each vector.
        batch_size: most texts per forward pass.

    Raises:
        ConfigError: a non-positive ``dim``, ``max_length`` or ``batch_size``, or a
            tokenizer without ``encode``.

    Examples:
        >>> import torch
        >>> from genarch.data.tokenizers import ByteTokenizer
        >>> torch.manual_seed(0) and None
        >>> table = torch.nn.Embedding(256, 8)  # a "model": each byte's own vector
        >>> encoder = MeanPooledEncoder(table, ByteTokenizer(), dim=8, max_length=64)
        >>> encoder.extract(["ab", "ba"]).allclose(encoder.extract(["ba", "ab"]))  # order-free mean
        True
    """

    def __init__(
        self,
        model: HiddenStates,
        tokenizer: Tokenizer,
        *,
        dim: int,
        max_length: int,
        normalize: bool = False,
        batch_size: int = 32,
    ) -> None:
        if not callable(model):
            raise ConfigError(f"model must map token ids to hidden states, got {describe(model)}")
        if not callable(getattr(tokenizer, "encode", None)):
            raise ConfigError(f"tokenizer must have an encode method, got {describe(tokenizer)}")
        for name, value in (("dim", dim), ("max_length", max_length), ("batch_size", batch_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive int, got {value!r}")
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.normalize = normalize
        self.batch_size = batch_size
        self._dim = dim

    @property
    def dim(self) -> int:
        """Width of the vectors."""
        return self._dim

    def _ids(self, text: str) -> list[int]:
        ids = list(self.tokenizer.encode(text))[: self.max_length]
        vocab_size = getattr(self.tokenizer, "vocab_size", None)
        if ids and isinstance(vocab_size, int) and not 0 <= min(ids) <= max(ids) < vocab_size:
            raise InvalidInputError(f"the tokenizer gave ids outside range({vocab_size})")
        return ids

    def extract(self, items: Sequence[str]) -> torch.Tensor:
        """Mean-pooled vectors of ``items``: float32, ``(len(items), dim)``, on the CPU.

        Raises:
            InvalidInputError: ``items`` is not a sequence of strings, or the model
                returns states of the wrong shape.
        """
        texts = checked_texts(items, f"{type(self).__name__}.extract")
        out = torch.zeros((len(texts), self._dim), dtype=torch.float32)
        groups: dict[int, list[tuple[int, list[int]]]] = {}
        for row, text in enumerate(texts):
            ids = self._ids(text)
            if ids:  # no tokens: the row stays zero
                groups.setdefault(len(ids), []).append((row, ids))
        was_training = getattr(self.model, "training", False)
        if isinstance(self.model, torch.nn.Module):
            self.model.eval()
        try:
            with torch.inference_mode():
                for length, members in sorted(groups.items()):
                    for start in range(0, len(members), self.batch_size):
                        chunk = members[start : start + self.batch_size]
                        self._run(out, chunk, length)
        finally:
            if isinstance(self.model, torch.nn.Module) and was_training:
                self.model.train()
        if self.normalize:
            out = F.normalize(out, p=2.0, dim=1)
        return out

    def _run(self, out: torch.Tensor, chunk: list[tuple[int, list[int]]], length: int) -> None:
        device = _device_of(self.model)
        ids = torch.tensor([ids for _, ids in chunk], dtype=torch.int64, device=device)  # (B, T)
        states = self.model(ids)
        if not isinstance(states, torch.Tensor) or tuple(states.shape) != (
            len(chunk),
            length,
            self._dim,
        ):
            found = tuple(states.shape) if isinstance(states, torch.Tensor) else describe(states)
            raise InvalidInputError(
                f"the model must map ids {tuple(ids.shape)} to states "
                f"{(len(chunk), length, self._dim)}; it returned {found}"
            )
        out[torch.tensor([row for row, _ in chunk])] = states.float().mean(dim=1).cpu()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim={self._dim}, max_length={self.max_length})"


def _device_of(model: object) -> torch.device:
    module = model if isinstance(model, torch.nn.Module) else getattr(model, "__self__", None)
    if isinstance(module, torch.nn.Module):
        for parameter in module.parameters():
            return parameter.device
    return torch.device("cpu")


# ------------------------------------------------------------------ GPT adapter


class GPTMeanPooledEncoderConfig(Config):
    """Everything that defines a :class:`GPTMeanPooledEncoder` except the trained weights.

    Attributes:
        model: the transformer's :class:`~genarch.models.transformer.GPTConfig`.
        tokenizer: how to rebuild the tokenizer (its ``reference``).
        max_length: the most tokens read per text; ``None`` means the model's context length.
        normalize: L2-normalise each vector.
        batch_size: most texts per forward pass.
    """

    model: GPTConfig
    tokenizer: ByteTokenizerConfig | StandardEncodingReference | SavedTokenizerReference
    max_length: Annotated[int, Field(ge=1)] | None = None
    normalize: bool = False
    batch_size: Annotated[int, Field(ge=1)] = 32


class GPTMeanPooledEncoder(Configured[GPTMeanPooledEncoderConfig]):
    """Mean-pooled final hidden states of a genarch :class:`~genarch.models.transformer.GPT`.

    The GPT attends causally, so a token's state summarises the text up to it;
    their mean weighs the beginning of the text more than the end.

    Args:
        model: the transformer (its ``hidden_states`` are pooled).
        tokenizer: a genarch tokenizer (:class:`~genarch.data.tokenizers.ByteTokenizer`
            or :class:`~genarch.data.tokenizers.TiktokenTokenizer`) whose ids the model reads.
        max_length: the most tokens read per text; default: the model's context length.
        normalize: L2-normalise each vector.
        batch_size: most texts per forward pass.

    Raises:
        ConfigError: the tokenizer has more ids than the model's vocabulary, it
            cannot describe itself (no ``reference``), or ``max_length`` exceeds
            the context.

    Examples:
        >>> import torch
        >>> from genarch.data.tokenizers import ByteTokenizer
        >>> from genarch.models.transformer import GPT
        >>> torch.manual_seed(0) and None
        >>> gpt = GPT(vocab_size=256, context_length=64, n_layer=1, n_head=2, n_embd=16)
        >>> encoder = GPTMeanPooledEncoder(gpt, ByteTokenizer())
        >>> encoder.extract(["hello", "world", ""]).shape
        torch.Size([3, 16])
    """

    def __init__(
        self,
        model: GPT,
        tokenizer: Tokenizer,
        *,
        max_length: int | None = None,
        normalize: bool = False,
        batch_size: int = 32,
    ) -> None:
        if not isinstance(model, GPT):
            raise ConfigError(f"GPTMeanPooledEncoder needs a genarch GPT, got {describe(model)}")
        reference = getattr(tokenizer, "reference", None)
        if reference is None or not callable(getattr(tokenizer, "save", None)):
            raise ConfigError(
                "GPTMeanPooledEncoder needs a genarch tokenizer that can be saved and described "
                f"(ByteTokenizer or TiktokenTokenizer), got {describe(tokenizer)}; "
                "for any other tokenizer use MeanPooledEncoder"
            )
        if tokenizer.vocab_size > model.config.vocab_size:
            raise ConfigError(
                f"the tokenizer has {tokenizer.vocab_size} ids but the model reads only "
                f"{model.config.vocab_size}"
            )
        Configured.__init__(
            self,
            GPTMeanPooledEncoderConfig(
                model=model.config,
                tokenizer=reference,
                max_length=max_length,
                normalize=normalize,
                batch_size=batch_size,
            ),
        )
        context = model.config.context_length
        if max_length is not None and max_length > context:
            raise ConfigError(f"max_length {max_length} exceeds the context length {context}")
        self.model = model
        self.tokenizer = tokenizer
        self._pooled = MeanPooledEncoder(
            model.hidden_states,
            tokenizer,
            dim=model.config.n_embd,
            max_length=max_length or context,
            normalize=normalize,
            batch_size=batch_size,
        )

    @classmethod
    def from_config(cls, config: BaseModel | Mapping[str, Any]) -> Self:
        """A fresh encoder: an untrained GPT (seeded with 0) and the referenced tokenizer.

        Raises:
            ConfigError: the config is invalid.
            NotFoundError: the referenced tokenizer's files are missing.
        """
        settings = GPTMeanPooledEncoderConfig.coerce(config)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = GPT(settings.model)
        return cls(
            model,
            load_tokenizer(settings.tokenizer),
            max_length=settings.max_length,
            normalize=settings.normalize,
            batch_size=settings.batch_size,
        )

    @property
    def dim(self) -> int:
        """Width of the vectors: the model's ``n_embd``."""
        return self._pooled.dim

    def extract(self, items: Sequence[str]) -> torch.Tensor:
        """Mean-pooled vectors of ``items``: float32, ``(len(items), dim)``, on the CPU.

        Raises:
            InvalidInputError: ``items`` is not a sequence of strings.
        """
        return self._pooled.extract(items)

    def save(self, directory: PathLike) -> None:
        """Write the model (``model/``), the tokenizer (``tokenizer/``) and the settings, atomically."""
        settings = self.config

        def write_parts(staging: Path) -> None:
            self.model.save(staging / "model")
            self.tokenizer.save(staging / "tokenizer")  # type: ignore[attr-defined]

        save_component(
            directory,
            _FORMAT,
            header={
                "max_length": settings.max_length,
                "normalize": settings.normalize,
                "batch_size": settings.batch_size,
            },
            write_files=write_parts,
            header_file=_STATE_FILE,
        )

    @classmethod
    def load(cls, directory: PathLike) -> Self:
        """Load an encoder written by :meth:`save`.

        Raises:
            NotFoundError: ``directory`` holds no saved encoder.
            IntegrityError: the files are corrupt, incomplete or were written by
                another component.
        """
        saved = open_saved(directory, _FORMAT, header_file=_STATE_FILE)
        with reading(_FORMAT, saved.root):
            return cls(
                GPT.load(saved.root / "model"),
                load_tokenizer(saved.root / "tokenizer"),
                max_length=saved.header.get("max_length"),
                normalize=bool(saved.header.get("normalize", False)),
                batch_size=int(saved.header.get("batch_size", 32)),
            )

    def __repr__(self) -> str:
        return f"GPTMeanPooledEncoder(dim={self.dim}, max_length={self._pooled.max_length})"
