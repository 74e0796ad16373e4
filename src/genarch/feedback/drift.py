"""Drift monitoring: are recent requests still like the data the model was trained on?

A :class:`DriftMonitor` is fitted on the training texts (or a sample of them)
and then checks batches of recent requests. It compares them two ways:

* **Token histogram PSI.** Both sides are tokenised with the model's
  tokenizer and counted into the same bins: the ``bins`` most frequent tokens
  of the training data, plus one bin for every other token. The population
  stability index is ``PSI = Σ (r_i - t_i) ln(r_i / t_i)`` over the bins, with
  ``t`` and ``r`` the training and recent shares (each count plus 1/2, so an
  empty bin stays finite). It is a symmetrised KL divergence: 0 for equal
  histograms, and by the usual rule of thumb below 0.1 no shift, 0.1 to 0.25 a
  moderate one, above 0.25 a major one.
* **Embedding-mean shift.** Both sides go through any
  :class:`~genarch.protocols.FeatureExtractor`; the shift is the distance
  between the two mean vectors in units of the training features' spread,
  ``‖μ_recent - μ_train‖ / sqrt(E‖x - μ_train‖²)``. 0 for the same mean; 1 when
  the means are as far apart as a typical training text is from its own mean.

Both statistics are biased upwards by sampling noise, more so for small
samples: each comes in the :class:`DriftReport` with its *noise floor*, the
value it takes on average when nothing has drifted (``(bins) (1/n_r + 1/n_t)``
for PSI with ``n`` the token counts, to first order; ``sqrt(1/n_r + 1/n_t)``
for the shift with ``n`` the text counts). A statistic well above its noise
floor and above its threshold is drift; one near the floor says the sample is
too small to tell.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Annotated, Any, Self

import torch
from pydantic import Field

from genarch.configured import Configured
from genarch.errors import ConfigError, InvalidInputError
from genarch.protocols import FeatureExtractor, Tokenizer
from genarch.schemas import Config, Record
from genarch.validation import describe

__all__ = ["DriftMonitor", "DriftMonitorConfig", "DriftReport", "TokenShift"]


class DriftMonitorConfig(Config):
    """Bins and thresholds of a :class:`DriftMonitor`.

    Attributes:
        bins: how many of the training data's most frequent tokens get a bin of
            their own (every other token shares one more bin).
        psi_threshold: token PSI above this is drift (0.2: between the rule of
            thumb's "moderate" and "major").
        shift_threshold: embedding-mean shift above this is drift.
        top_shifts: how many of the bins that contribute most to the PSI the
            report lists.
    """

    bins: Annotated[int, Field(ge=1)] = 200
    psi_threshold: Annotated[float, Field(gt=0.0)] = 0.2
    shift_threshold: Annotated[float, Field(gt=0.0)] = 0.5
    top_shifts: Annotated[int, Field(ge=0)] = 5


class TokenShift(Record):
    """One bin of the token histogram: its share in training and recent data.

    Attributes:
        token: the bin's token, decoded (``None`` for the bin of all other tokens).
        train_share, recent_share: the bin's share of the tokens on each side.
        contribution: the bin's term of the PSI sum.
    """

    token: str | None
    train_share: float
    recent_share: float
    contribution: float


class DriftReport(Record):
    """What a :meth:`DriftMonitor.check` found.

    Attributes:
        drifted: whether any statistic is above its threshold.
        reasons: one sentence per statistic above its threshold.
        token_psi: the population stability index of the token histograms.
        token_psi_noise_floor: PSI's expected value when nothing drifted.
        embedding_shift: the embedding-mean shift (``None`` without an extractor).
        embedding_shift_noise_floor: the shift's expected value when nothing drifted.
        recent_texts, recent_tokens: the size of the recent sample.
        largest_token_shifts: the bins that contribute most to the PSI.
    """

    drifted: bool
    reasons: tuple[str, ...]
    token_psi: Annotated[float, Field(ge=0.0)]
    token_psi_noise_floor: Annotated[float, Field(ge=0.0)]
    embedding_shift: Annotated[float, Field(ge=0.0)] | None
    embedding_shift_noise_floor: Annotated[float, Field(ge=0.0)] | None
    recent_texts: Annotated[int, Field(ge=1)]
    recent_tokens: Annotated[int, Field(ge=1)]
    largest_token_shifts: tuple[TokenShift, ...]


def _texts(items: object, where: str) -> list[str]:
    if isinstance(items, str) or not isinstance(items, Sequence):
        raise InvalidInputError(f"{where} must be a sequence of strings, got {describe(items)}")
    if not items:
        raise InvalidInputError(f"{where} is empty: drift needs texts to compare")
    for index, text in enumerate(items):
        if not isinstance(text, str):
            raise InvalidInputError(f"{where}[{index}] must be a string, got {describe(text)}")
    return list(items)


class DriftMonitor(Configured[DriftMonitorConfig]):
    """Compares recent requests with the training data (see the module docs).

    Args:
        tokenizer: the model's tokenizer (any :class:`~genarch.protocols.Tokenizer`).
        extractor: any text :class:`~genarch.protocols.FeatureExtractor` for the
            embedding-mean shift (``None``: token PSI only). A fittable one must
            be fitted before.
        config: a :class:`DriftMonitorConfig`; keyword arguments are shorthand for its fields.

    Raises:
        ConfigError: a tokenizer or extractor without the protocol's members, or a bad config.

    Example:
        >>> from genarch.data import ByteTokenizer
        >>> monitor = DriftMonitor(ByteTokenizer(), bins=20).fit(["open the file"] * 20)
        >>> monitor.check(["open the file"] * 10).drifted
        False
        >>> report = monitor.check(["SELECT * FROM users;"] * 10)
        >>> report.drifted, report.token_psi > 1.0
        (True, True)
    """

    def __init__(
        self,
        tokenizer: Tokenizer,
        extractor: FeatureExtractor[str] | None = None,
        config: DriftMonitorConfig | dict[str, Any] | None = None,
        **fields: Any,
    ) -> None:
        Configured.__init__(self, config, **fields)
        if not all(hasattr(tokenizer, name) for name in ("encode", "decode")):
            raise ConfigError(f"tokenizer must have encode and decode, got {describe(tokenizer)}")
        if extractor is not None and not callable(getattr(extractor, "extract", None)):
            raise ConfigError(f"extractor must have extract(), got {describe(extractor)}")
        self.tokenizer = tokenizer
        self.extractor = extractor
        self._bins: list[int] = []  # token ids with a bin of their own, most frequent first
        self._train_counts: list[int] = []  # per bin, and the "other" bin last
        self._train_texts = 0
        self._mean: torch.Tensor | None = None
        self._spread = 0.0

    # -------------------------------------------------------------- fitting

    def fit(self, texts: Sequence[str]) -> Self:
        """Learn the training data's token histogram (and feature mean and spread).

        Raises:
            InvalidInputError: ``texts`` is not a non-empty sequence of strings,
                or they hold no token.
        """
        checked = _texts(texts, "DriftMonitor.fit: texts")
        counts = self._count(checked)
        if not counts:
            raise InvalidInputError("DriftMonitor.fit: texts hold no token")
        self._bins = [token for token, _ in counts.most_common(self.config.bins)]
        self._train_counts = self._binned(counts)
        self._train_texts = len(checked)
        if self.extractor is not None:
            features = self._features(checked, "fit")
            self._mean = features.mean(dim=0)
            self._spread = float(((features - self._mean) ** 2).sum(dim=1).mean().sqrt())
            if self._spread == 0.0:
                raise InvalidInputError(
                    "DriftMonitor.fit: the training texts' features do not vary, so a "
                    "shift of their mean has no scale; fit on a varied sample"
                )
        return self

    def _count(self, texts: list[str]) -> Counter[int]:
        counts: Counter[int] = Counter()
        for text in texts:
            counts.update(self.tokenizer.encode(text))
        return counts

    def _binned(self, counts: Counter[int]) -> list[int]:
        own = [counts.get(token, 0) for token in self._bins]
        return [*own, sum(counts.values()) - sum(own)]

    def _features(self, texts: list[str], where: str) -> torch.Tensor:
        assert self.extractor is not None
        features = self.extractor.extract(texts)
        if not isinstance(features, torch.Tensor) or features.shape[:1] != (len(texts),):
            raise InvalidInputError(
                f"DriftMonitor.{where}: the extractor must return a ({len(texts)}, dim) "
                f"tensor, got {describe(features)}"
            )
        return features.detach().double().cpu().reshape(len(texts), -1)

    # ------------------------------------------------------------- checking

    def check(self, texts: Sequence[str]) -> DriftReport:
        """Compare recent requests with the training data.

        Raises:
            InvalidInputError: ``texts`` is not a non-empty sequence of strings,
                or holds no token.
            ConfigError: the monitor has not been fitted.
        """
        if not self._train_counts:
            raise ConfigError("DriftMonitor.check before fit: fit it on the training texts first")
        checked = _texts(texts, "DriftMonitor.check: texts")
        recent_counts = self._binned(self._count(checked))
        recent_tokens = sum(recent_counts)
        if recent_tokens == 0:
            raise InvalidInputError("DriftMonitor.check: texts hold no token")
        train_tokens = sum(self._train_counts)
        shifts = []
        for index, (train, recent) in enumerate(
            zip(self._train_counts, recent_counts, strict=True)
        ):
            t = (train + 0.5) / (train_tokens + 0.5 * len(recent_counts))
            r = (recent + 0.5) / (recent_tokens + 0.5 * len(recent_counts))
            token = self.tokenizer.decode([self._bins[index]]) if index < len(self._bins) else None
            contribution = (r - t) * math.log(r / t)
            shifts.append(
                TokenShift(token=token, train_share=t, recent_share=r, contribution=contribution)
            )
        psi = sum(s.contribution for s in shifts)
        psi_floor = (len(shifts) - 1) * (1 / recent_tokens + 1 / train_tokens)
        shift = shift_floor = None
        if self.extractor is not None and self._mean is not None:
            recent_mean = self._features(checked, "check").mean(dim=0)
            distance = float((recent_mean - self._mean).norm())
            shift = distance / self._spread
            shift_floor = math.sqrt(1 / len(checked) + 1 / self._train_texts)
        reasons = []
        if psi > self.config.psi_threshold:
            reasons.append(
                f"token PSI {psi:.3f} is above {self.config.psi_threshold} "
                f"(noise floor {psi_floor:.3f})"
            )
        if shift is not None and shift > self.config.shift_threshold:
            reasons.append(
                f"embedding-mean shift {shift:.3f} is above {self.config.shift_threshold} "
                f"(noise floor {shift_floor:.3f})"
            )
        largest = sorted(shifts, key=lambda s: -s.contribution)[: self.config.top_shifts]
        return DriftReport(
            drifted=bool(reasons),
            reasons=tuple(reasons),
            token_psi=psi,
            token_psi_noise_floor=psi_floor,
            embedding_shift=shift,
            embedding_shift_noise_floor=shift_floor,
            recent_texts=len(checked),
            recent_tokens=recent_tokens,
            largest_token_shifts=tuple(largest),
        )
