"""Atomic writes: a crash at any moment leaves either the old or the new content.

Files are written to a temporary sibling, flushed and fsynced, then moved into
place with :func:`os.replace` (atomic on POSIX and Windows). Directories are
built in a temporary sibling; the old directory is moved aside, the new one
moved in, and only then is the old one deleted.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "atomic_directory",
    "atomic_write_bytes",
    "atomic_write_text",
    "readable_directory",
    "sha256_file",
]


def _fsync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform can open a directory
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (the parent directory must exist)."""
    target = Path(path)
    fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _fsync_directory(target.parent)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _retired_copies(target: Path) -> list[Path]:
    """Copies that an interrupted swap left aside, oldest first."""
    return sorted(target.parent.glob(f".{target.name}.old-*"), key=lambda p: p.stat().st_mtime)


def readable_directory(path: str | os.PathLike[str]) -> Path | None:
    """The saved directory to read: ``path`` itself, or — when a crash struck between
    the two renames of :func:`atomic_directory` — the complete previous copy it left
    aside as ``.<name>.old-*``. ``None`` when there is neither.

    Loaders call this instead of checking ``path`` directly, so no crash at any
    moment makes saved data unreadable.
    """
    target = Path(path)
    if target.is_dir():
        return target
    retired = _retired_copies(target)
    return retired[-1] if retired else None


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``path`` when the block succeeds.

    If the block raises, ``path`` is untouched and the temporary directory is removed.

    Examples:
        >>> import tempfile, pathlib
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> with atomic_directory(root / "model") as staging:
        ...     _ = (staging / "config.json").write_text("{}")
        >>> sorted(p.name for p in (root / "model").iterdir())
        ['config.json']
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield staging
        for file in staging.rglob("*"):
            if file.is_file():
                with open(file, "rb") as handle:
                    os.fsync(handle.fileno())
        retired = None
        if not target.exists() and (left_aside := _retired_copies(target)):
            os.replace(left_aside[-1], target)  # finish undoing an interrupted swap first
        if target.exists():
            retired = target.with_name(f".{target.name}.old-{os.getpid()}-{id(staging)}")
            os.replace(target, retired)
        os.replace(staging, target)
        _fsync_directory(target.parent)
        if retired is not None:
            shutil.rmtree(retired, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def sha256_file(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()
