"""Atomic writes: a crash at any moment leaves either the old or the new content.

Files are written to a temporary sibling, flushed and fsynced, then moved into
place with :func:`os.replace` (atomic on POSIX and Windows). Directories are
built in a temporary sibling; the old directory is moved aside, the new one
moved in, and only then is the old one deleted (renamed to a ``.trash-`` name
first, so a half-deleted copy never looks like a save). :func:`settle` finishes
or undoes what a killed process left, and saved directories carry a
``SHA256SUMS`` manifest (:func:`write_manifest`, :func:`manifest_problems`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import IO, Any

__all__ = [
    "MANIFEST_FILE",
    "atomic_directory",
    "atomic_file",
    "atomic_write_bytes",
    "atomic_write_text",
    "discard",
    "manifest_digest",
    "manifest_problems",
    "read_manifest",
    "readable_directory",
    "settle",
    "sha256_file",
    "write_manifest",
]


def _fsync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform can open a directory
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str], *, text: bool = False) -> Iterator[IO[Any]]:
    """Yield a handle whose content replaces ``path`` atomically when the block succeeds.

    The handle writes to a temporary sibling (binary, or UTF-8 text with ``\\n``
    line ends when ``text``); it is flushed, fsynced and renamed over ``path``
    only if the block finishes. The parent directory must exist.
    """
    target = Path(path)
    fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        handle: IO[Any] = (
            os.fdopen(fd, "w", encoding="utf-8", newline="\n") if text else os.fdopen(fd, "wb")
        )
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _fsync_directory(target.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (the parent directory must exist)."""
    with atomic_file(path) as handle:
        handle.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _retired_copies(target: Path) -> list[Path]:
    """Copies that an interrupted swap left aside, newest first."""
    found = []
    for path in target.parent.glob(f".{target.name}.old-*"):
        with contextlib.suppress(OSError):  # gone while we looked
            found.append((path.stat().st_mtime, path))
    return [path for _, path in sorted(found, reverse=True)]


def _verified_or_unverifiable(directory: Path) -> bool:
    problems = manifest_problems(directory)
    return problems is None or not problems


def readable_directory(path: str | os.PathLike[str]) -> Path | None:
    """The saved directory to read: ``path`` itself, or — when a crash struck between
    the two renames of :func:`atomic_directory` — the complete previous copy it left
    aside as ``.<name>.old-*``. ``None`` when there is neither.

    Among several copies left aside, the newest one whose :data:`MANIFEST_FILE`
    verifies wins, so a copy damaged by an interrupted deletion never does.
    Loaders call this instead of checking ``path`` directly, so no crash at any
    moment makes saved data unreadable.
    """
    target = Path(path)
    if target.is_dir():
        return target
    retired = _retired_copies(target)
    complete = [copy for copy in retired if _verified_or_unverifiable(copy)]
    return complete[0] if complete else None


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def discard(path: str | os.PathLike[str], name: str | None = None) -> None:
    """Delete a directory so that a crash mid-way never leaves a partial copy under a
    name a loader would read: rename it to ``.<name>.trash-*`` first, then delete.

    ``name`` is the save the copy belongs to (default: the directory's own name),
    so that :func:`settle` of that save removes a half-deleted one.
    """
    path = Path(path)
    owner = name if name is not None else path.name
    trash = path.with_name(f".{owner}.trash-{os.getpid()}-{time.monotonic_ns()}")
    try:
        os.replace(path, trash)
    except OSError:
        return
    shutil.rmtree(trash, ignore_errors=True)


def settle(path: str | os.PathLike[str]) -> None:
    """Finish what interrupted saves left around ``path``, losing nothing.

    * ``path`` missing but a complete copy left aside (``.<name>.old-*``): the copy
      is moved back, so the latest complete save is under its real name again;
    * ``path`` present: copies left aside are older saves and are deleted;
    * staging directories of processes that no longer run, and half-deleted
      ``.trash-`` directories, are deleted.

    :func:`atomic_directory` calls this before every save, so disk garbage is
    bounded; owners of a directory of saves (the checkpoint manager) call it for
    every entry before they list or prune.
    """
    target = Path(path)
    parent = target.parent
    if not parent.is_dir():
        return
    for staging in parent.glob(f".{target.name}.*.tmp"):
        pid = staging.name[len(target.name) + 2 :].split("-", 1)[0]
        if pid.isdigit() and not _process_alive(int(pid)):
            shutil.rmtree(staging, ignore_errors=True)
    for trash in parent.glob(f".{target.name}.trash-*"):
        shutil.rmtree(trash, ignore_errors=True)
    retired = _retired_copies(target)
    if not target.exists():
        complete = [copy for copy in retired if _verified_or_unverifiable(copy)]
        if complete:
            with contextlib.suppress(OSError):  # another process restored it first
                os.replace(complete[0], target)
                _fsync_directory(parent)
            retired = [copy for copy in retired if copy != complete[0]]
    if target.exists():
        for copy in retired:
            discard(copy, target.name)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``path`` when the block succeeds.

    If the block raises, ``path`` is untouched and the temporary directory is
    removed. If the process dies, the next save (or :func:`settle`) cleans up;
    a crash between the two renames leaves the complete previous copy aside,
    where :func:`readable_directory` finds it.

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
    settle(target)
    staging = Path(
        tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}-", suffix=".tmp", dir=target.parent)
    )
    try:
        yield staging
        for file in staging.rglob("*"):
            if file.is_file():
                with open(file, "rb") as handle:
                    os.fsync(handle.fileno())
        retired = None
        if target.exists():
            retired = target.with_name(f".{target.name}.old-{os.getpid()}-{time.monotonic_ns()}")
            os.replace(target, retired)
        os.replace(staging, target)
        _fsync_directory(target.parent)
        if retired is not None:
            discard(retired, target.name)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


# ------------------------------------------------------------------- file manifests

MANIFEST_FILE = "SHA256SUMS"
"""Every saved directory's list of files and their SHA-256, in ``sha256sum`` format
(``<hex>  <relative path>`` per line), so ``sha256sum -c SHA256SUMS`` checks it too."""


def _files_below(directory: Path) -> list[str]:
    return sorted(
        path.relative_to(directory).as_posix()
        for path in directory.rglob("*")
        if path.is_file() and path.relative_to(directory).as_posix() != MANIFEST_FILE
    )


def write_manifest(directory: str | os.PathLike[str]) -> str:
    """Write :data:`MANIFEST_FILE` for every file below ``directory``; return its SHA-256.

    The returned digest identifies the whole directory's content.
    """
    root = Path(directory)
    lines = "".join(f"{sha256_file(root / name)}  {name}\n" for name in _files_below(root))
    (root / MANIFEST_FILE).write_text(lines, encoding="utf-8")
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


def read_manifest(file: str | os.PathLike[str]) -> dict[str, str]:
    """The entries of a :data:`MANIFEST_FILE`: relative path → SHA-256.

    Lines are split on ``\\n`` only (``str.splitlines`` would also split on
    ``\\v``, ``\\f`` and others, so a changed byte could pass unnoticed), the
    file must end with a line break, and every path must stay inside the
    directory.

    Raises:
        ValueError: the file is unreadable or malformed (the message says how).
    """
    try:
        text = Path(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{MANIFEST_FILE} is unreadable ({error})") from None
    if text and not text.endswith("\n"):
        raise ValueError(f"{MANIFEST_FILE} was changed: it does not end with a line break")
    entries: dict[str, str] = {}
    for number, line in enumerate(text.split("\n")[:-1], 1):
        digest, separator, name = line.partition("  ")
        parts = PurePosixPath(name).parts
        if (
            not separator
            or len(digest) != 64
            or digest.strip("0123456789abcdef")
            or not name
            or name.startswith("/")
            or ".." in parts
        ):
            raise ValueError(f"{MANIFEST_FILE} line {number} is malformed: {line[:120]!r}")
        entries[name] = digest
    return entries


def manifest_problems(directory: str | os.PathLike[str]) -> list[str] | None:
    """What is wrong with ``directory`` against its :data:`MANIFEST_FILE`.

    Returns ``None`` when there is no manifest (a save made before manifests
    existed), ``[]`` when every listed file is present with its SHA-256 and no
    other file is there, and otherwise one sentence per problem.
    """
    root = Path(directory)
    manifest = root / MANIFEST_FILE
    if not manifest.is_file():
        return None
    try:
        expected = read_manifest(manifest)
    except ValueError as error:
        return [str(error)]
    present = set(_files_below(root))
    problems = [f"{name} is missing" for name in sorted(expected.keys() - present)]
    problems += [
        f"{name} is not listed in {MANIFEST_FILE}" for name in sorted(present - expected.keys())
    ]
    problems += [
        f"{name} does not match its SHA-256 (changed or damaged)"
        for name in sorted(expected.keys() & present)
        if sha256_file(root / name) != expected[name]
    ]
    return problems


def manifest_digest(directory: str | os.PathLike[str]) -> str | None:
    """SHA-256 of ``directory``'s :data:`MANIFEST_FILE` (its content's identity), or ``None``."""
    manifest = Path(directory) / MANIFEST_FILE
    return sha256_file(manifest) if manifest.is_file() else None


def sha256_file(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()
