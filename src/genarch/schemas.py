"""Records that cross layer boundaries.

Every record is a frozen pydantic model that forbids unknown fields, so a typo
in a field name is an error rather than a silently ignored value. Constructing
a record with bad values raises :class:`~genarch.errors.InvalidInputError`
(a ``ValueError``) that names the record, the field, the problem and the value
that arrived.

Records that carry tensors (:class:`ImageResult`) compare with
:func:`genarch.testing.assert_same`, not ``==``.
"""

from __future__ import annotations

import datetime as _dt
import warnings
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal, Self

import torch
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from genarch.errors import ConfigError, InvalidInputError, NotFoundError

__all__ = [
    "MAX_PAGE_SIZE",
    "ArtifactManifest",
    "Chunk",
    "Config",
    "Correction",
    "Document",
    "Evaluation",
    "Feedback",
    "FeedbackFilter",
    "FeedbackKind",
    "FeedbackPage",
    "FileDigest",
    "Hit",
    "ImageRequest",
    "ImageResult",
    "Metadata",
    "MetadataValue",
    "Output",
    "OutputRef",
    "PipelineTrace",
    "Preference",
    "Rating",
    "Record",
    "ScoredChunk",
    "StageTrace",
    "StepReport",
    "StoredFeedback",
    "TabularRequest",
    "TabularResult",
    "TextRequest",
    "TextResult",
    "TokenLogprob",
    "TrainingReport",
    "describe_validation_error",
]

MetadataValue = str | int | float | bool | None
"""A metadata value: a JSON scalar, so metadata can be filtered and stored in SQLite."""

Metadata = dict[str, MetadataValue]
"""Flat metadata attached to documents, chunks, vectors and feedback."""


def describe_validation_error(name: str, error: ValidationError) -> str:
    """Turn a pydantic ``ValidationError`` into one readable sentence per problem."""
    parts = []
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"]) or "(record)"
        value = item.get("input")
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        parts.append(f"{name}.{location}: {item['msg']} (got {shown})")
    return "; ".join(parts)


class Record(BaseModel):
    """Base of every genarch record and config: frozen, no unknown fields.

    Validation problems raise :class:`~genarch.errors.InvalidInputError`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)
    _error: ClassVar[type[InvalidInputError]] = InvalidInputError

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as error:
            raise self._error(describe_validation_error(type(self).__name__, error)) from None

    @classmethod
    def parse(cls, data: Mapping[str, Any] | str | bytes) -> Self:
        """Validate a mapping or a JSON document into this record.

        Raises:
            InvalidInputError: the data does not describe a valid record.
        """
        try:
            if isinstance(data, str | bytes):
                return cls.model_validate_json(data)
            return cls.model_validate(data)
        except ValidationError as error:
            raise cls._error(describe_validation_error(cls.__name__, error)) from None


class Config(Record):
    """Base of every component configuration: like :class:`Record`, but bad values
    raise :class:`~genarch.errors.ConfigError`.

    Examples:
        >>> class ChunkerConfig(Config):
        ...     max_tokens: int = 256
        >>> ChunkerConfig(max_tokens="many")
        Traceback (most recent call last):
        ...
        genarch.errors.ConfigError: ChunkerConfig.max_tokens: Input should be a valid integer, unable to parse string as an integer (got 'many')
    """

    _error: ClassVar[type[InvalidInputError]] = ConfigError

    @classmethod
    def resolve(
        cls, config: BaseModel | Mapping[str, Any] | None, fields: Mapping[str, Any]
    ) -> Self:
        """The config a component constructor was given: a config object *or* keyword fields.

        Components accept ``Component(config)`` and ``Component(field=value, ...)``
        as shorthand; this turns either into a validated config and refuses both at once.

        Raises:
            ConfigError: both were given, or the result is not a valid config.

        Examples:
            >>> class SizeConfig(Config):
            ...     size: int = 1
            >>> SizeConfig.resolve(None, {"size": 3}).size
            3
        """
        if config is not None and fields:
            raise ConfigError(f"pass either a {cls.__name__} or keyword fields, not both")
        return cls.coerce(config if config is not None else fields)

    @classmethod
    def coerce(cls, config: BaseModel | Mapping[str, Any]) -> Self:
        """Accept this config, another pydantic model with the same fields, or a mapping.

        This is what a component's ``from_config`` needs: a config object, or
        the plain data a saved pipeline holds.

        Raises:
            ConfigError: the data does not describe a valid config.
        """
        if isinstance(config, cls):
            return config
        if isinstance(config, BaseModel):
            config = config.model_dump()
        if not isinstance(config, Mapping):
            raise ConfigError(f"{cls.__name__} expected a mapping, got {type(config).__name__}")
        return cls.parse(config)


# --------------------------------------------------------------------------- data


class Document(Record):
    """A source text with a stable identifier.

    Examples:
        >>> Document(id="tutorial", text="Python is easy to learn.").id
        'tutorial'
    """

    id: Annotated[str, Field(min_length=1)]
    text: str
    metadata: Metadata = Field(default_factory=dict)


class Chunk(Record):
    """A contiguous span of a :class:`Document`, as used for retrieval and citations.

    ``start`` and ``end`` are character offsets into the source document's text,
    so ``document.text[chunk.start:chunk.end]`` is the text the chunk came from.
    """

    id: Annotated[str, Field(min_length=1)]
    document_id: Annotated[str, Field(min_length=1)]
    text: str
    start: Annotated[int, Field(ge=0)]
    end: Annotated[int, Field(ge=0)]
    metadata: Metadata = Field(default_factory=dict)

    @model_validator(mode="after")
    def _span_is_ordered(self) -> Self:
        if self.end < self.start:
            raise ValueError(f"end ({self.end}) must not be before start ({self.start})")
        return self


class ScoredChunk(Record):
    """A chunk returned by a retriever with its relevance score (higher is better)."""

    chunk: Chunk
    score: float


class Hit(Record):
    """One vector-store search result: the stored id, its score and its metadata."""

    id: str
    score: float
    metadata: Metadata = Field(default_factory=dict)


# --------------------------------------------------------------------- generation


class TextRequest(Record):
    """A request to a text generator.

    Sampling is greedy when ``temperature`` is 0. With a ``seed`` the same
    request always gives the same text; without one, sampling is fresh each call.
    """

    prompt: str
    max_new_tokens: Annotated[int, Field(ge=0)] = 64
    temperature: Annotated[float, Field(ge=0.0)] = 1.0
    top_k: Annotated[int, Field(ge=1)] | None = None
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0
    min_p: Annotated[float, Field(ge=0.0, lt=1.0)] | None = None
    repetition_penalty: Annotated[float, Field(gt=0.0)] = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
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


class ImageRequest(Record):
    """A request for ``num_samples`` images, optionally of one class ``label``."""

    num_samples: Annotated[int, Field(ge=1)] = 1
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


# ----------------------------------------------------------------------- training


class StepReport(Record):
    """What one optimisation step did.

    Attributes:
        step: the step number after this step (1 after the first step).
        losses: one loss per player, e.g. ``{"model": 2.3}`` or
            ``{"discriminator": 0.7, "generator": 1.2}``.
        metrics: anything else worth logging (accuracies, reward margins, ...).
        num_items: samples or tokens the step consumed, for throughput.
        skipped: the update was skipped (e.g. a non-finite loss).
    """

    step: Annotated[int, Field(ge=0)]
    losses: dict[str, float]
    metrics: dict[str, float] = Field(default_factory=dict)
    num_items: Annotated[int, Field(ge=0)] = 0
    skipped: bool = False


class TrainingReport(Record):
    """The outcome of a training run: curves, best step, throughput, wall time."""

    steps: int
    train_loss: tuple[float, ...]
    eval_loss: tuple[tuple[int, float], ...] = ()
    best_step: int | None = None
    best_metric: float | None = None
    items_per_second: float = 0.0
    wall_seconds: float = 0.0
    skipped_steps: int = 0
    stopped_because: str = "finished"


# ----------------------------------------------------------------------- feedback


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


FeedbackKind = Literal["rating", "correction", "preference"]
"""The kinds of feedback: the ``kind`` field of :data:`Feedback`."""


class OutputRef(Record):
    """An output that is not inline text (an image, a table): a reference and its media type.

    ``uri`` is whatever locates the output for you — a URI or an id in your own
    artefact store; genarch stores the reference, never the bytes.
    """

    uri: Annotated[str, Field(min_length=1)]
    media_type: Annotated[str, Field(pattern=r"^[\w.+-]+/[\w.+-]+$")]


Output = str | OutputRef
"""What a model produced: inline text, or a reference to a non-text output."""


class _FeedbackBase(Record):
    """Fields every piece of feedback carries: who, about which model and response, when."""

    prompt: Annotated[str, Field(min_length=1)]
    model_name: str | None = None
    model_version: str | None = None
    response_id: str | None = None
    user: str | None = None
    created_at: AwareDatetime = Field(default_factory=_now)
    metadata: Metadata = Field(default_factory=dict)

    @field_validator("created_at")
    @classmethod
    def _in_utc(cls, value: _dt.datetime) -> _dt.datetime:
        return value.astimezone(_dt.UTC)


class Rating(_FeedbackBase):
    """A user's score for one output, between 0 (bad) and 1 (good)."""

    kind: Literal["rating"] = "rating"
    output: Output
    score: Annotated[float, Field(ge=0.0, le=1.0)]
    comment: str | None = None


class Correction(_FeedbackBase):
    """A user's corrected version of an output (it must differ from the output)."""

    kind: Literal["correction"] = "correction"
    output: Output
    corrected: Output

    @field_validator("corrected")
    @classmethod
    def _changes_something(cls, value: Output, info: ValidationInfo) -> Output:
        if value == info.data.get("output"):
            raise ValueError("corrected is the same as output")
        return value


class Preference(_FeedbackBase):
    """A pairwise preference: for ``prompt``, ``chosen`` is better than ``rejected``."""

    kind: Literal["preference"] = "preference"
    chosen: Output
    rejected: Output

    @field_validator("rejected")
    @classmethod
    def _differs_from_chosen(cls, value: Output, info: ValidationInfo) -> Output:
        if value == info.data.get("chosen"):
            raise ValueError("rejected is the same as chosen")
        return value


Feedback = Annotated[Rating | Correction | Preference, Field(discriminator="kind")]
"""Any piece of feedback; the ``kind`` field tells which."""


class StoredFeedback(Record):
    """Feedback as a store keeps it: with its id and the time the store recorded it.

    ``feedback.created_at`` is when the feedback was given; ``recorded_at`` when
    the store committed it. (``created_at`` on this record is the pre-0.x
    spelling of ``recorded_at`` and still reads, with a ``DeprecationWarning``.)
    """

    id: Annotated[str, Field(min_length=1)]
    feedback: Feedback
    recorded_at: AwareDatetime = Field(default_factory=_now)

    @model_validator(mode="before")
    @classmethod
    def _old_spelling(cls, data: Any) -> Any:
        if isinstance(data, dict) and "created_at" in data and "recorded_at" not in data:
            warnings.warn(
                "StoredFeedback.created_at is deprecated and will be removed in the next "
                "release: use StoredFeedback.recorded_at",
                DeprecationWarning,
                stacklevel=2,
            )
            data = {**data, "recorded_at": data["created_at"]}
            del data["created_at"]
        return data

    @property
    def created_at(self) -> _dt.datetime:
        """Deprecated: use :attr:`recorded_at`."""
        warnings.warn(
            "StoredFeedback.created_at is deprecated and will be removed in the next "
            "release: use StoredFeedback.recorded_at",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.recorded_at


class FeedbackFilter(Record):
    """Which feedback a query selects; every field left ``None`` selects everything.

    ``since`` is inclusive and ``until`` exclusive, both on ``feedback.created_at``.
    ``user`` is the caller's user id (a store that pseudonymises users hashes it).
    """

    kind: FeedbackKind | None = None
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None
    model_name: str | None = None
    model_version: str | None = None
    response_id: str | None = None
    user: str | None = None

    def matches(self, feedback: Rating | Correction | Preference) -> bool:
        """Whether ``feedback`` (as recorded, with its raw user id) passes this filter."""
        equal = ("kind", "model_name", "model_version", "response_id", "user")
        if any(
            getattr(self, name) is not None and getattr(feedback, name) != getattr(self, name)
            for name in equal
        ):
            return False
        if self.since is not None and feedback.created_at < self.since:
            return False
        return self.until is None or feedback.created_at < self.until


class FeedbackPage(Record):
    """One page of a query: the records, oldest first, and the cursor of the next page.

    ``next_cursor`` is ``None`` on the last page; pass it back to ``query`` as
    ``cursor`` to read on. Cursors are opaque strings, valid for the store that
    made them.
    """

    items: tuple[StoredFeedback, ...]
    next_cursor: str | None = None


MAX_PAGE_SIZE = 1000
"""The largest ``limit`` a :class:`~genarch.protocols.FeedbackLoop` query accepts."""


class Evaluation(Record):
    """Scores an evaluator gave one output (higher is better unless documented)."""

    scores: dict[str, float]
    details: dict[str, str] = Field(default_factory=dict)


# --------------------------------------------------------------------- deployment


class FileDigest(Record):
    """Size and SHA-256 of one file of an artefact."""

    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    size: Annotated[int, Field(ge=0)]


class ArtifactManifest(Record):
    """Describes a packaged component so it can be verified and rebuilt.

    ``component`` is the component's name in a :class:`~genarch.registry.Registry`;
    ``files`` maps each path (relative to the artefact directory) to its digest.
    """

    name: Annotated[str, Field(min_length=1)]
    version: Annotated[str, Field(min_length=1)]
    component: str
    config: dict[str, Any] = Field(default_factory=dict)
    files: dict[str, FileDigest]
    genarch_version: str
    created_at: _dt.datetime = Field(default_factory=_now)
    metadata: Metadata = Field(default_factory=dict)


# ----------------------------------------------------------------------- pipelines


class StageTrace(Record):
    """What one stage did during a run.

    Attributes:
        seconds: time spent inside this stage alone (upstream stages excluded).
        counters: whatever the stage reported (see :class:`~genarch.pipeline.ReportingProcessor`).
    """

    name: str
    component: str
    items_in: int
    items_out: int
    seconds: float
    counters: dict[str, int]


class PipelineTrace(Record):
    """Per-stage counts and timing of one run; ``finished`` once the input is exhausted."""

    stages: tuple[StageTrace, ...]
    finished: bool
    seconds: float

    def stage(self, name: str) -> StageTrace:
        """The trace of the stage called ``name``."""
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise NotFoundError(f"no stage named {name!r}; stages: {[s.name for s in self.stages]}")

    def summary(self) -> str:
        """A small table, one line per stage."""
        lines = [f"{'stage':<16} {'in':>8} {'out':>8} {'seconds':>9}  counters"]
        for s in self.stages:
            counters = ", ".join(f"{k}={v}" for k, v in sorted(s.counters.items()))
            lines.append(
                f"{s.name:<16} {s.items_in:>8} {s.items_out:>8} {s.seconds:>9.3f}  {counters}"
            )
        return "\n".join(lines)
