"""Sentence features from a language model: mean-pooled hidden states.

A transformer maps token ids ``(B, T)`` to hidden states ``(B, T, D)``; the
average of a text's states over its tokens is a fixed-size vector that
describes the text — the simplest sentence embedding (Reimers & Gurevych, 2019,
found mean pooling the best of the simple poolings for BERT). For a model
trained only to predict the next token the vectors capture topic and style more
than meaning; the contrastive encoder (:mod:`genarch.features.contrastive`) or a
pretrained one (:mod:`genarch.features.minilm`) is better for retrieval.

:class:`MeanPooledEncoder` works with any module that maps ids to hidden
states, plus any :class:`~genarch.protocols.Tokenizer`. Its adapter for a
genarch GPT, with a config and ``save``/``load``, is
:class:`~genarch.models.gpt_embeddings.GPTMeanPooledEncoder`: it lives in the
models layer, beside the GPT it wraps, because features never import models
(data → features → models → orchestration).

Texts are never padded: they are grouped by token count and each group runs as
one batch, so a text's vector is the same whichever batch it arrives in, even
for a model that attends in both directions. Texts longer than ``max_length``
tokens are truncated; an empty text (no tokens) gives a zero vector.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F  # noqa: N812 - the usual torch spelling

from genarch._deprecated import moved_module
from genarch.errors import ConfigError, InvalidInputError
from genarch.protocols import Tokenizer
from genarch.validation import checked_texts, describe

__all__ = ["MeanPooledEncoder"]

# The GPT adapter moved to the models layer, beside the GPT it wraps.
__getattr__ = moved_module(
    __name__,
    dict.fromkeys(
        ("GPTMeanPooledEncoder", "GPTMeanPooledEncoderConfig"), "genarch.models.gpt_embeddings"
    ),
)

HiddenStates = Callable[[torch.Tensor], torch.Tensor]
"""Maps token ids ``(B, T)`` (int64) to hidden states ``(B, T, D)``."""


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
        >>> from genarch.data import ByteTokenizer
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
