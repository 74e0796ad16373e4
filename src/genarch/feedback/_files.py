"""Files beside the database: the pseudonym key file and atomically written exports."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Iterable
from pathlib import Path

from genarch._io import atomic_file
from genarch.errors import IntegrityError

__all__ = ["load_or_create_key", "write_lines"]


def load_or_create_key(key_path: Path) -> bytes:
    """The 32-byte key in ``key_path``, created first (mode 0600) when missing.

    Raises:
        IntegrityError: the file does not hold a 64-digit hex key.
    """
    if not key_path.exists():
        # write a private temporary, then link it into place: the key file
        # appears whole, with mode 0600, and a racing process keeps the first
        temporary = key_path.with_name(f".{key_path.name}.{secrets.token_hex(8)}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(temporary, key_path)
        finally:
            os.unlink(temporary)
    text = key_path.read_text("ascii").strip()
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        raise IntegrityError(f"{key_path} does not hold a 32-byte hex key")
    return bytes.fromhex(text)


def write_lines(path: str | os.PathLike[str], lines: Iterable[str]) -> int:
    """Stream ``lines`` into ``path`` through a fsynced temporary and an atomic rename."""
    count = 0
    with atomic_file(path, text=True) as handle:
        for line in lines:
            handle.write(line + "\n")
            count += 1
    return count
