"""The records of the deployment layer: endpoint health, search requests, registry entries.

They are frozen :class:`~genarch.schemas.Record`\\ s like every genarch record:
unknown fields are refused, values validated, and a bad value raises
:class:`~genarch.errors.InvalidInputError` naming the field.
"""

from __future__ import annotations

import datetime as _dt
from typing import Annotated, Literal

import torch
from pydantic import Field

from genarch.schemas import MetadataValue, Record

__all__ = [
    "AuditEntry",
    "EndpointHealth",
    "ModelVersion",
    "RetrievalRequest",
    "VectorSearchRequest",
]


class EndpointHealth(Record):
    """What :meth:`genarch.deploy.LocalEndpoint.health` reports.

    Satisfies :class:`~genarch.protocols.HealthStatus`.

    Attributes:
        ready: ``True`` while the endpoint serves, ``False`` once closed.
        status: ``"ready"`` or ``"closed"``.
        component: the served component's class name.
        name: the artefact's name (``None`` for a component served directly).
        version: the artefact's version (``None`` likewise).
        digest: SHA-256 of the artefact's ``manifest.json`` (``None`` likewise).
        requests: requests served so far (a batch counts each request).
        failures: requests that raised.
    """

    ready: bool
    status: Literal["ready", "closed"]
    component: str
    name: str | None = None
    version: str | None = None
    digest: str | None = None
    requests: Annotated[int, Field(ge=0)] = 0
    failures: Annotated[int, Field(ge=0)] = 0


class VectorSearchRequest(Record):
    """One request to an endpoint serving a :class:`~genarch.protocols.VectorStore`.

    The endpoint answers ``store.search(queries, k, where=where)``.
    """

    queries: torch.Tensor
    k: Annotated[int, Field(ge=1)]
    where: dict[str, MetadataValue] | None = None


class RetrievalRequest(Record):
    """One request to an endpoint serving a :class:`~genarch.protocols.Retriever`.

    The endpoint answers ``retriever.retrieve(query, k)``.
    """

    query: str
    k: Annotated[int, Field(ge=1)] = 5


class ModelVersion(Record):
    """One registered artefact of a :class:`~genarch.deploy.ModelRegistry`.

    Attributes:
        name: the model's name (the artefact manifest's ``name``).
        version: its version (the manifest's ``version``).
        digest: SHA-256 of the artefact's ``manifest.json``: the content address.
        component: the component's registry name.
        registered_at: when it was registered (UTC).
        registered_by: who registered it.
    """

    name: str
    version: str
    digest: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    component: str
    registered_at: _dt.datetime
    registered_by: str


class AuditEntry(Record):
    """One line of a :class:`~genarch.deploy.ModelRegistry`'s append-only audit log.

    Attributes:
        time: when it happened (UTC).
        who: the user who did it (``getpass.getuser()`` unless given).
        action: ``"register"``, ``"promote"`` or ``"rollback"``.
        model: the model's name.
        alias: the alias moved (``None`` for ``"register"``).
        from_version: the version the alias pointed to before (``None`` if none).
        to_version: the version registered, or the alias points to now.
        digest: the content address of ``to_version``.
    """

    time: _dt.datetime
    who: str
    action: Literal["register", "promote", "rollback"]
    model: str
    alias: str | None = None
    from_version: str | None = None
    to_version: str
    digest: str
