"""Token streams: the caller's iterator and the worker's side of it.

A :class:`TokenStream` is what :meth:`genarch.deploy.GenerationService.stream`
returns: an iterator of text pieces that the worker thread fills. Closing it
(``close()``, leaving a ``with`` block, or dropping the last reference)
cancels the request: the worker stops decoding it at its next step and its
slot is free for the next request. The caller and the worker share only a
:class:`StreamState` (a queue and a ``cancelled`` flag), so an abandoned
iterator is garbage-collected — and cancelled — even while the worker runs.
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterator
from typing import Self

__all__ = ["PieceStepper", "StreamState", "TokenStream"]

_END = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class StreamState:
    """What the worker and the caller share: the pieces so far and whether it was cancelled."""

    def __init__(self) -> None:
        self.pieces: queue.SimpleQueue[object] = queue.SimpleQueue()
        self.cancelled = False

    def put(self, piece: str) -> None:
        self.pieces.put(piece)

    def end(self) -> None:
        self.pieces.put(_END)

    def fail(self, error: BaseException) -> None:
        self.pieces.put(_Failure(error))


class TokenStream(Iterator[str]):
    """The text pieces of one streamed request, as they are decoded.

    Iterating blocks until the next piece is ready; an error of the request
    is raised from ``next()``. Joined, the pieces are the whole output.

    Args:
        state: the queue the worker fills.
        on_cancel: called once when the caller cancels (wakes the worker).
    """

    def __init__(self, state: StreamState, on_cancel: Callable[[], object] = lambda: None) -> None:
        self._state = state
        self._on_cancel = on_cancel
        self._done = False

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> str:
        if self._done:
            raise StopIteration
        item = self._state.pieces.get()
        if item is _END:
            self._done = True
            raise StopIteration
        if isinstance(item, _Failure):
            self._done = True
            raise item.error
        assert isinstance(item, str)  # the worker puts pieces, _END or _Failure
        return item

    @property
    def cancelled(self) -> bool:
        """Whether the caller cancelled the stream before it ended."""
        return self._state.cancelled

    def close(self) -> None:
        """Cancel the request if it is still running (idempotent); iteration ends."""
        if not self._done:
            self._done = True
            self._state.cancelled = True
            self._state.end()  # wakes a reader blocked in next() on another thread
            self._on_cancel()

    cancel = close

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_done", True):
            self._state.cancelled = True  # the worker drops it at its next step


class PieceStepper:
    """The worker's side of a stream over an iterator of pieces (a model's ``stream``).

    ``start`` is called on the worker thread at the first step, so the model
    is only ever touched by the worker. ``on_done`` gets the whole text, or
    the error, once; ``on_cancel`` runs when the caller cancelled it.
    """

    def __init__(
        self,
        state: StreamState,
        start: Callable[[], Iterator[str]],
        on_done: Callable[[str | BaseException], None],
        on_cancel: Callable[[], None],
    ) -> None:
        self.state = state
        self._start = start
        self._on_done = on_done
        self._on_cancel = on_cancel
        self._pieces: Iterator[str] | None = None
        self._text: list[str] = []

    @property
    def cancelled(self) -> bool:
        return self.state.cancelled

    def step(self) -> bool:
        """Produce the next piece; ``True`` once the stream has ended (or failed)."""
        try:
            if self._pieces is None:
                self._pieces = iter(self._start())
            piece = next(self._pieces, _END)
        except Exception as error:  # the request's own error, raised to its caller
            self.state.fail(error)
            self._on_done(error)
            return True
        if piece is _END:
            self.state.end()
            self._on_done("".join(self._text))
            return True
        assert isinstance(piece, str)
        self._text.append(piece)
        self.state.put(piece)
        return False

    def abort(self) -> None:
        """Release the model's iterator (its KV cache) after a cancellation."""
        close = getattr(self._pieces, "close", None)
        if callable(close):
            close()
        self._pieces = None
        self._on_cancel()
