"""Deployment: verified artefacts, a model registry and in-process endpoints.

* :class:`LocalDeployer` packages a persistable component into an artefact
  (its save, ``manifest.json``, a model card, ``SHA256SUMS``), verifies every
  file before loading, rebuilds the component by its registry name and serves
  it as a :class:`LocalEndpoint`.
* :class:`ModelRegistry` stores artefacts by content address, with versions,
  aliases (``production``, ``staging``, ...), promotion, rollback and an
  append-only audit log.

See the [deployment concept page](../concepts/deployment.md).
"""

from genarch.deploy.artifacts import LocalDeployer, artifact_digest
from genarch.deploy.endpoints import LocalEndpoint, serve
from genarch.deploy.model_card import count_parameters, render_model_card
from genarch.deploy.model_registry import ModelRegistry
from genarch.deploy.records import (
    AuditEntry,
    EndpointHealth,
    ModelVersion,
    RetrievalRequest,
    VectorSearchRequest,
)

__all__ = [
    "AuditEntry",
    "EndpointHealth",
    "LocalDeployer",
    "LocalEndpoint",
    "ModelRegistry",
    "ModelVersion",
    "RetrievalRequest",
    "VectorSearchRequest",
    "artifact_digest",
    "count_parameters",
    "render_model_card",
    "serve",
]
