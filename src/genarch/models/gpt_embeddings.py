"""Sentence features from a genarch GPT: the mean of its final hidden states.

:class:`GPTMeanPooledEncoder` is a :class:`~genarch.protocols.FeatureExtractor`
of ``str`` built on :class:`~genarch.features.pooled.MeanPooledEncoder` (see
there how texts are batched, truncated and pooled); it adds what a GPT and a
genarch tokenizer make possible: a config that describes both, and
``save``/``load``.

It lives in the models layer, beside the GPT it wraps, and not in
:mod:`genarch.features`, because the layers import downwards only (data →
features → models → orchestration): a feature extractor may not depend on a
model family, but a model family may use a feature extractor. The old import
path ``genarch.features.GPTMeanPooledEncoder`` still works for one release,
with a :class:`DeprecationWarning`.

A save is a directory: ``encoder.json`` (the format name and the settings),
``model/`` (the GPT, :meth:`~genarch.models.transformer.GPT.save`) and
``tokenizer/`` (the tokenizer's own save).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Self

import torch
from pydantic import BaseModel, Field

from genarch.configured import Configured
from genarch.data.tokenizer_references import TokenizerReference, load_tokenizer
from genarch.errors import ConfigError
from genarch.features.pooled import MeanPooledEncoder
from genarch.models.transformer import GPT, GPTConfig
from genarch.persistence import open_saved, reading, save_component
from genarch.protocols import PathLike, Tokenizer
from genarch.schemas import Config
from genarch.validation import describe

__all__ = ["GPTMeanPooledEncoder", "GPTMeanPooledEncoderConfig"]

_FORMAT = "genarch.GPTMeanPooledEncoder"
_STATE_FILE = "encoder.json"  # the settings; the parts are in model/ and tokenizer/


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
    tokenizer: TokenizerReference
    max_length: Annotated[int, Field(ge=1)] | None = None
    normalize: bool = False
    batch_size: Annotated[int, Field(ge=1)] = 32


class GPTMeanPooledEncoder(Configured[GPTMeanPooledEncoderConfig]):
    """Mean-pooled final hidden states of a genarch :class:`~genarch.models.transformer.GPT`.

    The GPT attends causally, so a token's state summarises the text up to it;
    their mean weighs the beginning of the text more than the end.

    Args:
        model: the transformer (its ``hidden_states`` are pooled).
        tokenizer: a genarch tokenizer (:class:`~genarch.data.byte_tokenizer.ByteTokenizer`
            or :class:`~genarch.data.tiktoken_tokenizer.TiktokenTokenizer`) whose ids the model reads.
        max_length: the most tokens read per text; default: the model's context length.
        normalize: L2-normalise each vector.
        batch_size: most texts per forward pass.

    Raises:
        ConfigError: the tokenizer has more ids than the model's vocabulary, it
            cannot describe itself (no ``reference``), or ``max_length`` exceeds
            the context.

    Examples:
        >>> import torch
        >>> from genarch.data import ByteTokenizer
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
