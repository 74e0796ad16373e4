"""Deployment: verified artefacts, a model registry and in-process endpoints.

* :class:`LocalDeployer` packages a persistable component into an artefact
  (its save, ``manifest.json``, a model card, ``SHA256SUMS``), verifies every
  file before loading, rebuilds the component by its registry name and serves
  it as a :class:`LocalEndpoint`.
* :class:`ModelRegistry` stores artefacts by content address, with versions,
  aliases (``production``, ``staging``, ...), promotion, rollback and an
  append-only audit log.
* :class:`GenerationService` and :class:`EmbeddingService` serve a text
  generator or feature extractor in process: micro-batching, streaming, a
  response cache, caps, API keys, rate limits, redaction and metrics (see the
  [serving concept page](../concepts/serving.md)).
* :func:`create_app` puts them behind an OpenAI-compatible HTTP API
  (``pip install "genarch[serve]"``; ``genarch serve`` on the command line).
* :class:`OpenAICompatibleGenerator` and :class:`OpenAICompatibleEmbedder`
  call any OpenAI-compatible server as a ``Generator`` and a ``FeatureExtractor``.

See the [deployment concept page](../concepts/deployment.md).
"""

from genarch.deploy.artifacts import LocalDeployer, artifact_digest
from genarch.deploy.cache import ResponseCache
from genarch.deploy.clients import (
    OpenAICompatibleEmbedder,
    OpenAICompatibleGenerator,
    RemoteConnectionError,
    RemoteServerError,
)
from genarch.deploy.embedding_service import EmbeddingService
from genarch.deploy.endpoints import LocalEndpoint, serve
from genarch.deploy.http import create_app
from genarch.deploy.keys import ApiKey, ApiKeyStore
from genarch.deploy.limits import RateLimiter, TokenBucket
from genarch.deploy.metrics import MetricsRegistry
from genarch.deploy.model_card import count_parameters, render_model_card
from genarch.deploy.model_registry import ModelRegistry, VerifiedComponent, load_verified
from genarch.deploy.records import (
    AuditEntry,
    EndpointHealth,
    ModelVersion,
    RetrievalRequest,
    VectorSearchRequest,
)
from genarch.deploy.service import GenerationService
from genarch.deploy.serving_errors import (
    AuthenticationError,
    AuthorizationError,
    CapExceededError,
    RateLimitError,
    ServiceClosedError,
)
from genarch.deploy.serving_records import (
    EmbeddingServiceConfig,
    GenerationServiceConfig,
    ServiceHealth,
)
from genarch.deploy.streams import TokenStream

__all__ = [
    "ApiKey",
    "ApiKeyStore",
    "AuditEntry",
    "AuthenticationError",
    "AuthorizationError",
    "CapExceededError",
    "EmbeddingService",
    "EmbeddingServiceConfig",
    "EndpointHealth",
    "GenerationService",
    "GenerationServiceConfig",
    "LocalDeployer",
    "LocalEndpoint",
    "MetricsRegistry",
    "ModelRegistry",
    "ModelVersion",
    "OpenAICompatibleEmbedder",
    "OpenAICompatibleGenerator",
    "RateLimitError",
    "RateLimiter",
    "RemoteConnectionError",
    "RemoteServerError",
    "ResponseCache",
    "RetrievalRequest",
    "ServiceClosedError",
    "ServiceHealth",
    "TokenBucket",
    "TokenStream",
    "VectorSearchRequest",
    "VerifiedComponent",
    "artifact_digest",
    "count_parameters",
    "create_app",
    "load_verified",
    "render_model_card",
    "serve",
]
