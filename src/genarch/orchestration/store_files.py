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
from pathlib import Path

import torch

from genarch._io import readable_directory, sha256_file
from genarch.errors import IntegrityError
from genarch.orchestration.entry_table import EntryTable
from genarch.orchestration.vector_validation import VectorStoreConfig
from genarch.persistence import SavedComponent, open_saved, reading, save_component

__all__ = ["FORMAT_VERSION", "KIND", "read_store", "write_store"]

logger = logging.getLogger(__name__)

KIND = "genarch.vector_store/1"
"""The ``"format"`` of ``manifest.json``, the header of a saved store."""
FORMAT_VERSION = 1
"""The ``"format"`` of ``config.json`` (kept from the first release)."""
MANIFEST = "manifest.json"
VECTORS, ENTRIES, CONFIG = "vectors.safetensors", "entries.sqlite", "config.json"


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


def _open(directory: str | os.PathLike[str]) -> SavedComponent:
    """The saved store, accepting a manifest written before it carried a ``"format"``."""
    try:
        return open_saved(directory, KIND, header_file=MANIFEST)
    except IntegrityError:
        root = readable_directory(directory)  # as open_saved found it
        if root is not None:
            with reading(KIND, root):
                manifest = json.loads((root / MANIFEST).read_text("utf-8"))
            if isinstance(manifest, dict) and set(manifest) == {"sha256"}:
                return SavedComponent(kind=KIND, root=root, header={"format": KIND, **manifest})
        raise


def read_store(
    directory: str | os.PathLike[str],
) -> tuple[VectorStoreConfig, torch.Tensor, EntryTable]:
    """Load and verify what :func:`write_store` wrote.

    If a crash interrupted a save between its two renames, the previous store
    (left aside as ``.<name>.old-*``) is loaded.

    Raises:
        NotFoundError: nothing was saved there.
        IntegrityError: a file is missing, altered or inconsistent with the others.
    """
    saved = _open(directory)
    source = saved.root
    if source != Path(directory):
        logger.warning("%s is missing; loading %s, left by an interrupted save", directory, source)
    digests = saved.field("sha256")
    if not isinstance(digests, dict) or not {VECTORS, ENTRIES, CONFIG} <= set(digests):
        raise IntegrityError(f"{source / MANIFEST} does not list the store's files")
    with reading(KIND, source):
        for name, digest in digests.items():
            if sha256_file(saved.path(name)) != digest:
                raise IntegrityError(f"{source / name} does not match its SHA-256 in {MANIFEST}")
        document = json.loads(saved.path(CONFIG).read_text("utf-8"))
        found = document.get("format") if isinstance(document, dict) else None
        if found != FORMAT_VERSION:
            raise IntegrityError(f"{source} holds vector-store format {found!r}")
        config = VectorStoreConfig.parse(document["config"])
        vectors = saved.tensors(VECTORS)["vectors"]
        table = EntryTable.read_sqlite(saved.path(ENTRIES))
    if vectors.dtype != torch.float32 or vectors.shape != (len(table), config.dim):
        raise IntegrityError(
            f"{source}: vectors have shape {tuple(vectors.shape)}, expected ({len(table)}, {config.dim})"
        )
    return config, vectors, table
