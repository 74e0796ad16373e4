"""Child-process bodies for the concurrency and kill tests (importable under spawn)."""

from __future__ import annotations

import os
import sys

from genarch.feedback import SQLiteFeedbackStore
from genarch.schemas import Rating

KEY = b"k" * 32


def write_many(path: str, worker: int, count: int) -> None:
    with SQLiteFeedbackStore(path, key=KEY) as store:
        for i in range(count):
            store.record(
                Rating(prompt=f"w{worker} #{i}", output="ok", score=1.0, user=f"u{worker}")
            )


def record_until_killed(path: str, side_file: str) -> None:
    """Record forever; append each id to ``side_file`` (fsynced) once ``record`` returned.

    Each id is written between line breaks: SIGKILL can tear a write of a regular
    file, and the next child's id must not run into the torn piece.
    """
    with SQLiteFeedbackStore(path, key=KEY) as store, open(side_file, "a") as side:
        i = 0
        while True:
            feedback_id = store.record(Rating(prompt=f"#{i}", output="x" * 200, score=0.5))
            side.write(f"\n{feedback_id}\n")
            side.flush()
            os.fsync(side.fileno())
            i += 1


if __name__ == "__main__":
    record_until_killed(sys.argv[1], sys.argv[2])
