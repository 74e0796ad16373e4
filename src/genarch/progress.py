"""Progress of a long loop: a tqdm bar on a terminal, plain periodic lines in a log.

A tqdm bar redraws itself with carriage returns. On a terminal that is what
you want; in a CI log, a file or ``| tee`` every redraw becomes a line of its
own full of ``\\r``. :class:`Progress` looks at the stream once: on a TTY it
shows a tqdm bar, anywhere else it writes one plain line at the first update,
then at most one every ``interval`` seconds, and a last one when it closes —
each with the count, the total, the latest fields (loss, items/s) and the
elapsed time. Every loop in genarch that reports progress goes through it.

Example:
    >>> import io
    >>> log = io.StringIO()  # not a TTY: plain lines
    >>> with Progress(total=3, stream=log, unit="step") as progress:
    ...     for step in range(3):
    ...         progress.update(loss="0.5")
    >>> print(log.getvalue().splitlines()[-1].split(" elapsed")[0])
    step 3/3 (100%) loss=0.5
    >>> "\\r" in log.getvalue()
    False
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import IO, Any, Self

from tqdm import tqdm

from genarch.errors import InvalidInputError
from genarch.validation import describe

__all__ = ["Progress", "is_interactive"]


def is_interactive(stream: IO[str]) -> bool:
    """Whether ``stream`` is a terminal (a closed or unusual stream is not)."""
    isatty = getattr(stream, "isatty", None)
    if isatty is None:
        return False
    try:
        return bool(isatty())
    except (ValueError, OSError):  # closed, or detached from its file
        return False


class Progress:
    """Count the steps of a loop and show them: a bar on a terminal, plain lines elsewhere.

    Args:
        total: the number of steps expected (the count starts at ``initial``).
        initial: the count already done (a resumed run).
        unit: what one step is called in the output.
        enabled: ``False`` shows nothing at all.
        stream: where to write (default: ``sys.stderr`` at construction).
        interval: seconds between two plain lines (non-terminal streams only).
        clock: the time source, in seconds (for tests).

    Raises:
        InvalidInputError: a negative ``total`` or ``initial``, or an
            ``interval`` that is not a positive finite number.
    """

    def __init__(
        self,
        total: int,
        *,
        initial: int = 0,
        unit: str = "step",
        enabled: bool = True,
        stream: IO[str] | None = None,
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        for name, value in (("total", total), ("initial", initial)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidInputError(
                    f"Progress {name} must be an int >= 0, got {describe(value)}"
                )
        if (
            isinstance(interval, bool)
            or not isinstance(interval, int | float)
            or not math.isfinite(interval)
            or interval <= 0
        ):
            raise InvalidInputError(
                f"Progress interval must be a positive finite number of seconds, "
                f"got {describe(interval)}"
            )
        self._total, self._count, self._unit = total, initial, unit
        self._stream = sys.stderr if stream is None else stream
        self._interval, self._clock = float(interval), clock
        self._fields: dict[str, str] = {}
        self._started = clock()
        self._last_line: float | None = None  # when the last plain line was written
        self._written = initial  # the count in the last plain line
        self._closed = not enabled
        self._bar: tqdm[Any] | None = None
        if enabled and is_interactive(self._stream):
            self._bar = tqdm(
                total=total, initial=initial, unit=unit, file=self._stream, dynamic_ncols=True
            )

    @property
    def count(self) -> int:
        """Steps done so far (``initial`` included)."""
        return self._count

    def update(self, steps: int = 1, **fields: str) -> None:
        """Add ``steps`` to the count and show the latest ``fields`` (e.g. ``loss="2.31"``)."""
        self._count += steps
        self._fields.update(fields)
        if self._closed:
            return
        if self._bar is not None:
            self._bar.update(steps)
            if fields:
                self._bar.set_postfix(self._fields)
            return
        now = self._clock()
        if self._last_line is None or now - self._last_line >= self._interval:
            self._write_line(now)

    def close(self) -> None:
        """Finish: close the bar, or write the last line if the count moved since the last one."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        elif self._count != self._written:
            self._write_line(self._clock())

    def _write_line(self, now: float) -> None:
        percent = f" ({100 * self._count / self._total:.0f}%)" if self._total else ""
        fields = "".join(f" {name}={value}" for name, value in self._fields.items())
        elapsed = now - self._started
        self._stream.write(
            f"{self._unit} {self._count}/{self._total}{percent}{fields} elapsed={elapsed:.1f}s\n"
        )
        self._stream.flush()
        self._last_line, self._written = now, self._count

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
