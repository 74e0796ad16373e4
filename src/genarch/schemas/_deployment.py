"""Records of packaged artefacts: the manifest and each file's digest."""

from __future__ import annotations

import datetime as _dt
from typing import Annotated, Any

from pydantic import Field

from genarch.schemas._base import Metadata, Record, utc_now

__all__ = ["ArtifactManifest", "FileDigest"]


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
    created_at: _dt.datetime = Field(default_factory=utc_now)
    metadata: Metadata = Field(default_factory=dict)
