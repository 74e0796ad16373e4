"""Records that cross layer boundaries.

Every record is a frozen pydantic model that forbids unknown fields, so a typo
in a field name is an error rather than a silently ignored value. Constructing
a record with bad values raises :class:`~genarch.errors.InvalidInputError`
(a ``ValueError``) that names the record, the field, the problem and the value
that arrived.

Records that carry tensors (:class:`ImageResult`) compare with
:func:`genarch.testing.assert_same`, not ``==``.

Import every record from here, ``genarch.schemas``: the private modules
(``_base``, ``_data``, ``_generation``, ``_training``, ``_feedback``,
``_evaluation``, ``_deployment``, ``_pipeline``) are where each family is written, not where
it lives.
"""

from genarch.schemas._base import (
    Config,
    Metadata,
    MetadataValue,
    Record,
    describe_validation_error,
)
from genarch.schemas._data import Chunk, Document, Hit, ScoredChunk
from genarch.schemas._deployment import ArtifactManifest, FileDigest
from genarch.schemas._evaluation import BiasFinding, ConfidenceInterval, MetricSummary
from genarch.schemas._feedback import (
    MAX_PAGE_SIZE,
    Correction,
    Evaluation,
    Feedback,
    FeedbackFilter,
    FeedbackKind,
    FeedbackPage,
    Output,
    OutputRef,
    Preference,
    Rating,
    StoredFeedback,
)
from genarch.schemas._generation import (
    MAX_IMAGE_SAMPLES,
    ImageRequest,
    ImageResult,
    TabularRequest,
    TabularResult,
    TextRequest,
    TextResult,
    TokenLogprob,
)
from genarch.schemas._pipeline import PipelineTrace, StageTrace
from genarch.schemas._training import StepReport, TrainingReport

__all__ = [
    "MAX_IMAGE_SAMPLES",
    "MAX_PAGE_SIZE",
    "ArtifactManifest",
    "BiasFinding",
    "Chunk",
    "ConfidenceInterval",
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
    "MetricSummary",
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
