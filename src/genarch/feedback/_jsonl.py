"""JSONL export and import of stored feedback, for any store that can ``scan``.

Two layouts:

* one :class:`~genarch.schemas.StoredFeedback` JSON object a line (a backup
  that :func:`read_feedback` reads back), and
* ``{"prompt", "chosen", "rejected"}`` lines, the layout preference-training
  tools read, from :func:`~genarch.feedback.preference_pairs`.

Files are written through a fsynced temporary and an atomic rename.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from genarch.errors import InvalidInputError, NotFoundError
from genarch.feedback._files import write_lines
from genarch.feedback.pairs import preference_pairs
from genarch.schemas import StoredFeedback

__all__ = ["export_feedback", "export_preferences", "read_feedback"]


def export_feedback(path: str | os.PathLike[str], records: Iterable[StoredFeedback]) -> int:
    """Write ``records``, one ``StoredFeedback`` JSON object a line; return the count."""
    return write_lines(path, (record.model_dump_json() for record in records))


def export_preferences(path: str | os.PathLike[str], records: Iterable[StoredFeedback]) -> int:
    """Write the pairs ``records`` state as ``{"prompt", "chosen", "rejected"}`` lines.

    Pairs whose outputs are references rather than text are left out.
    Returns the number of lines.
    """
    lines = (
        json.dumps(
            {"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected}, ensure_ascii=False
        )
        for p in preference_pairs(records)
        if isinstance(p.chosen, str) and isinstance(p.rejected, str)
    )
    return write_lines(path, lines)


def read_feedback(path: Path) -> list[tuple[int, StoredFeedback]]:
    """Every record of a file :func:`export_feedback` wrote, with its line number.

    Blank lines are skipped. Every line is read before anything is returned.

    Raises:
        InvalidInputError: invalid UTF-8, invalid JSON or fields — naming the
            file, the line (and the field).
        NotFoundError: the file does not exist.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise NotFoundError(f"no JSONL file at {path}") from None
    records: list[tuple[int, StoredFeedback]] = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        where = f"{path.name}: line {number}: "
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise InvalidInputError(
                f"{where}invalid UTF-8 at byte {error.start} of the line"
            ) from None
        if not text.strip():
            continue
        try:
            records.append((number, StoredFeedback.parse(text)))
        except InvalidInputError as error:
            raise InvalidInputError(f"{where}{error}") from None
    return records
