"""A vector store on disk: vectors, entry table, config, and a manifest that vouches for them.

A saved store is a directory of four files, written together through
:func:`genarch.persistence.save_component` (one atomic replace; a crash at any
moment leaves the previous store loadable, and a crash between the two renames
of a save is recovered by :func:`genarch.persistence.open_saved`):

* ``vectors.safetensors`` — the ``(N, dim)`` float32 vectors, in row order;
* ``entries.sqlite`` — the :class:`~genarch.orchestration.entry_table.EntryTable`
  (tenant, id and metadata JSON of each row);
* ``config.json`` — ``{"format": 1, "backend": ..., "config": {...}}``,
  unchanged since the first release;
* ``manifest.json`` — the header: ``{"format": "genarch.vector_store/1",
  "sha256": {file: digest}}`` with the SHA-256 of the three other files,
  checked on every load.

Stores saved before the manifest carried a ``"format"`` (its only key was
``"sha256"``) still load: such a manifest is read as this kind.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import torch

from genarch._io import readable_directory
from genarch.errors import GenarchError, IntegrityError
from genarch.orchestration.entry_table import EntryTable
from genarch.orchestration.vector_validation import VectorStoreConfig, stored_vectors_problem
from genarch.persistence import SavedComponent, open_saved, save_component
from genarch.validation import describe

__all__ = ["FORMAT_VERSION", "KIND", "read_store", "write_store"]

logger = logging.getLogger(__name__)

KIND = "genarch.vector_store/1"
"""The ``"format"`` of ``manifest.json``, the header of a saved store."""
FORMAT_VERSION = 1
"""The ``"format"`` of ``config.json`` (kept from the first release)."""
MANIFEST = "manifest.json"
VECTORS, ENTRIES, CONFIG = "vectors.safetensors", "entries.sqlite", "config.json"
FILES = (VECTORS, ENTRIES, CONFIG)
_SHA256 = re.compile(r"[0-9a-f]{64}")


def write_store(
    directory: str | os.PathLike[str],
    config: VectorStoreConfig,
    backend: str,
    vectors: torch.Tensor,
    table: EntryTable,
) -> None:
    """Atomically replace ``directory`` with the vectors, entries, config and manifest.

    The files are serialised first, so the manifest (written last, as the
    header) holds the digest of exactly the bytes that land on disk.
    """
    from safetensors.torch import save

    document = {"format": FORMAT_VERSION, "backend": backend, "config": config.model_dump()}
    files = {
        VECTORS: save({"vectors": vectors.contiguous()}),
        ENTRIES: table.sqlite_bytes(),
        CONFIG: json.dumps(document, indent=2).encode("utf-8"),
    }

    def write_files(staging: Path) -> None:
        for name, data in files.items():
            (staging / name).write_bytes(data)

    digests = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    save_component(
        directory, KIND, header={"sha256": digests}, write_files=write_files, header_file=MANIFEST
    )
    logger.info("saved %d vectors to %s", vectors.shape[0], directory)


def _parse_json(data: bytes, file: Path) -> Any:
    """The JSON document in ``data`` (the bytes of ``file``); IntegrityError naming the file."""
    try:
        return json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
        raise IntegrityError(f"{file} is not valid UTF-8 JSON: {error}") from None


def _read_bytes(file: Path) -> bytes:
    try:
        return file.read_bytes()
    except OSError as error:
        raise IntegrityError(f"{file} cannot be read: {error}") from None


def _json_type(value: object) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    return names.get(type(value), "null" if value is None else "a number")


def _open(directory: str | os.PathLike[str]) -> SavedComponent:
    """The saved store, accepting a manifest written before it carried a ``"format"``."""
    try:
        return open_saved(directory, KIND, header_file=MANIFEST)
    except IntegrityError as error:
        root = readable_directory(directory)  # as open_saved found it
        if root is None:
            raise
        file = root / MANIFEST
        manifest = _parse_json(_read_bytes(file), file)
        if isinstance(manifest, dict) and set(manifest) == {"sha256"}:
            return SavedComponent(kind=KIND, root=root, header={"format": KIND, **manifest})
        if not isinstance(manifest, dict):
            raise IntegrityError(
                f"{file}: expected a JSON object (the manifest of a saved vector store), "
                f"got {_json_type(manifest)}"
            ) from None
        raise error


def _digests(saved: SavedComponent) -> dict[str, str]:
    """The manifest's ``sha256`` field: exactly the three files, each a SHA-256 hex digest."""
    file = saved.root / MANIFEST
    digests = saved.header.get("sha256")
    expected = sorted(FILES)
    if (
        not isinstance(digests, dict)
        or sorted(digests) != expected
        or not all(isinstance(d, str) and _SHA256.fullmatch(d) for d in digests.values())
    ):
        raise IntegrityError(
            f"{file}: field 'sha256' does not list the store's files: expected exactly "
            f"{expected}, each with a SHA-256 hex digest, got {describe(digests)}"
        )
    return digests


def read_store(
    directory: str | os.PathLike[str],
) -> tuple[VectorStoreConfig, torch.Tensor, EntryTable]:
    """Load and verify what :func:`write_store` wrote.

    If a crash interrupted a save between its two renames, the previous store
    (left aside as ``.<name>.old-*``) is loaded. Each file is read once, and
    the bytes whose SHA-256 was checked are the bytes parsed.

    Raises:
        NotFoundError: nothing was saved there.
        IntegrityError: a file is missing, altered, malformed or inconsistent
            with the others; the message names the file and the field.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    saved = _open(directory)
    source = saved.root
    if source != Path(directory):
        logger.warning("%s is missing; loading %s, left by an interrupted save", directory, source)
    digests = _digests(saved)
    data = {name: _read_bytes(saved.path(name)) for name in FILES}
    for name, digest in digests.items():
        if hashlib.sha256(data[name]).hexdigest() != digest:
            raise IntegrityError(f"{source / name} does not match its SHA-256 in {MANIFEST}")

    config_file = source / CONFIG
    document = _parse_json(data[CONFIG], config_file)
    if not isinstance(document, dict):
        raise IntegrityError(f"{config_file}: expected a JSON object, got {_json_type(document)}")
    if document.get("format") != FORMAT_VERSION:
        raise IntegrityError(
            f"{config_file}: field 'format' is {document.get('format')!r}, "
            f"expected vector-store format {FORMAT_VERSION}"
        )
    if "config" not in document:
        raise IntegrityError(f"{config_file}: field 'config' is missing")
    try:
        config = VectorStoreConfig.parse(document["config"])
    except GenarchError as error:
        raise IntegrityError(f"{config_file}: field 'config' is invalid: {error}") from None

    vectors_file = source / VECTORS
    try:
        tensors = load(data[VECTORS])
    except (SafetensorError, ValueError, RuntimeError, OverflowError) as error:
        raise IntegrityError(
            f"{vectors_file} is not a readable safetensors file: {error}"
        ) from None
    vectors = tensors.get("vectors")
    if vectors is None:
        raise IntegrityError(f"{vectors_file}: tensor 'vectors' is missing")
    table = EntryTable.from_sqlite_bytes(data[ENTRIES], str(source / ENTRIES))
    if vectors.dtype != torch.float32 or vectors.shape != (len(table), config.dim):
        raise IntegrityError(
            f"{vectors_file}: tensor 'vectors' is {vectors.dtype} of shape {tuple(vectors.shape)}, "
            f"expected torch.float32 of shape ({len(table)}, {config.dim}) "
            f"({len(table)} entries in {ENTRIES}, dim in {CONFIG})"
        )
    problem = stored_vectors_problem(vectors, config.metric)
    if problem is not None:
        raise IntegrityError(f"{vectors_file}: tensor 'vectors' {problem}")
    return config, vectors, table
