"""Requests to generators and the results they return: text, images, tables."""

from __future__ import annotations

from typing import Annotated, Literal, Self

import torch
from pydantic import Field, model_validator

from genarch.schemas._base import Record

__all__ = [
    "MAX_IMAGE_SAMPLES",
    "ImageRequest",
    "ImageResult",
    "TabularRequest",
    "TabularResult",
    "TextRequest",
    "TextResult",
    "TokenLogprob",
]


class TextRequest(Record):
    """A request to a text generator.

    Sampling is greedy when ``temperature`` is 0. With a ``seed`` the same
    request always gives the same text; without one, sampling is fresh each call.

    Every sampling setting is finite and bounded (NaN and infinities are
    refused): ``temperature`` in ``[0, 100]``, ``repetition_penalty`` in
    ``[1e-6, 1e6]`` (1 is none; 1e6 all but forbids repeats),
    ``presence_penalty`` and ``frequency_penalty`` in ``[-1e6, 1e6]`` (logits
    are shifted by them: 100 already rules a token out). Within these bounds
    sampling never fails, whatever the model's logits.
    """

    prompt: str
    max_new_tokens: Annotated[int, Field(ge=0)] = 64
    temperature: Annotated[float, Field(ge=0.0, le=100.0, allow_inf_nan=False)] = 1.0
    top_k: Annotated[int, Field(ge=1)] | None = None
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0
    min_p: Annotated[float, Field(ge=0.0, lt=1.0)] | None = None
    repetition_penalty: Annotated[float, Field(ge=1e-6, le=1e6, allow_inf_nan=False)] = 1.0
    presence_penalty: Annotated[float, Field(ge=-1e6, le=1e6, allow_inf_nan=False)] = 0.0
    frequency_penalty: Annotated[float, Field(ge=-1e6, le=1e6, allow_inf_nan=False)] = 0.0
    stop: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()
    logprobs: Annotated[int, Field(ge=0)] | None = None
    """Return the log-probability of each chosen token and this many top alternatives."""
    seed: int | None = None


class TokenLogprob(Record):
    """The log-probability of one generated token and its best alternatives."""

    token_id: int
    logprob: float
    alternatives: dict[int, float] = Field(default_factory=dict)


class TextResult(Record):
    """What a text generator produced for one :class:`TextRequest`."""

    text: str
    token_ids: tuple[int, ...] = ()
    finish_reason: Literal["length", "stop", "end"] = "length"
    logprobs: tuple[TokenLogprob, ...] | None = None


MAX_IMAGE_SAMPLES = 65_536
"""The most images one :class:`ImageRequest` may ask for (4 GiB of 64x64 RGBA float
images). Each image model also has its own, lower, configurable cap
(``max_request_samples``) and generates large requests in batches."""


class ImageRequest(Record):
    """A request for ``num_samples`` images, optionally of one class ``label``.

    ``num_samples`` is at most :data:`MAX_IMAGE_SAMPLES`.
    """

    num_samples: Annotated[int, Field(ge=1, le=MAX_IMAGE_SAMPLES)] = 1
    label: Annotated[int, Field(ge=0)] | None = None
    seed: int | None = None


class ImageResult(Record):
    """Generated images as a float tensor of shape (N, C, H, W) with values in [-1, 1]."""

    images: torch.Tensor
    labels: tuple[int | None, ...] = ()

    @model_validator(mode="after")
    def _images_are_nchw(self) -> Self:
        if self.images.ndim != 4:
            raise ValueError(f"images must have shape (N, C, H, W), got {tuple(self.images.shape)}")
        return self


class TabularRequest(Record):
    """A request for ``num_rows`` synthetic rows, optionally conditioned on ``evidence``."""

    num_rows: Annotated[int, Field(ge=1)] = 1
    evidence: dict[str, str] = Field(default_factory=dict)
    seed: int | None = None


class TabularResult(Record):
    """Synthetic rows, each a mapping from column name to category."""

    rows: tuple[dict[str, str], ...]
