"""The workers behind the services: one thread owns the model and forms batches.

Two workers share the queue, the draining and the metrics of :class:`Worker`:

* :class:`MicroBatcher` runs request-level micro-batches (below), for any
  generator and for feature extractors;
* :class:`SessionBatcher` does continuous batching over a
  :class:`~genarch.protocols.DecodingSession`: requests join the running batch
  between decoding steps and leave it as they finish.

:class:`MicroBatcher` keeps a FIFO queue of jobs and ``max_batch`` slots. A
job takes ``weight`` slots (a text request 1, an embedding request one per
item). The worker thread loops:

1. drops queued jobs whose caller gave up (a cancelled future or stream);
2. admits, in arrival order, as many jobs as free slots allow — a job never
   overtakes an earlier one that does not fit;
3. runs the admitted *batch* jobs together in one call of ``run_batch`` once
   the slots are full, or once the oldest has waited ``max_wait_s``, or at
   once while draining. The slots are free again when the call returns;
4. advances every admitted *stream* job (one with a :class:`Stepper`) by one
   step; a stream holds its slot until it finishes or its consumer cancels
   it, and a cancelled stream is dropped at the next step, freeing the slot.

The batch call is a unit: it is not joined by jobs that arrive while it runs
(see :class:`~genarch.deploy.GenerationService` for why).

:class:`SessionBatcher` loops: it drops cancelled jobs, joins queued jobs to
the session while it has free rows (in arrival order; an idle session waits
up to ``max_wait_s`` for companions, so they share their prefill), runs one
decoding step for every row, and hands each row's update to the service; a
row whose update carries a result has left, and its row is free for the next
job at the next step.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol

from genarch.deploy.metrics import BATCH_SIZE_BUCKETS, MetricsRegistry
from genarch.deploy.serving_errors import ServiceClosedError
from genarch.deploy.streams import StreamState
from genarch.protocols import DecodingSession, RowUpdate

__all__ = ["Job", "MicroBatcher", "SessionBatcher", "Stepper", "Worker"]

logger = logging.getLogger(__name__)


class Stepper(Protocol):
    """A stream the worker advances: ``step()`` returns ``True`` once finished."""

    @property
    def cancelled(self) -> bool: ...

    def step(self) -> bool: ...

    def abort(self) -> None: ...


@dataclass(eq=False)
class Job:
    """One queued request: what to run, who waits for it, and how many slots it takes."""

    payload: Any
    future: Future[Any] | None = None
    weight: int = 1
    stepper: Stepper | None = None
    stream: StreamState | None = None  # a streamed row of a SessionBatcher
    arrival: float = field(default_factory=time.monotonic)

    @property
    def abandoned(self) -> bool:
        if self.stepper is not None:
            return self.stepper.cancelled
        if self.stream is not None:
            return self.stream.cancelled
        return self.future is not None and self.future.cancelled()


class Worker:
    """A worker thread with a FIFO queue of jobs and ``max_batch`` slots (see the module docstring).

    Subclasses implement ``_loop`` (the thread's body) and ``_busy_slots``.

    Args:
        name: the service's name, the ``service`` label of its metrics.
        max_batch: slots: the most weight decoded together.
        max_wait_s: how long the oldest queued job waits for companions.
        metrics: where batch sizes, queue depth and busy slots are reported.
    """

    def __init__(
        self, name: str, *, max_batch: int, max_wait_s: float, metrics: MetricsRegistry
    ) -> None:
        self.name = name
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._queue: deque[Job] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._batch_sizes = metrics.histogram(
            "genarch_batch_size", "Requests decoded together in one call.", BATCH_SIZE_BUCKETS
        )
        self._queue_depth = metrics.gauge("genarch_queue_depth", "Requests waiting for a slot.")
        self._busy = metrics.gauge("genarch_busy_slots", "Slots held by running requests.")
        self._thread = threading.Thread(target=self._loop, name=f"genarch-{name}", daemon=True)

    def _start(self) -> None:
        """Start the thread; the subclass calls it once its own state is set up."""
        self._thread.start()

    # ------------------------------------------------------------- callers

    def put(self, job: Job) -> None:
        """Queue ``job``.

        Raises:
            ServiceClosedError: the batcher is draining or closed.
        """
        with self._cond:
            if self._closing:
                raise ServiceClosedError(f"the {self.name} service is closing; no new requests")
            self._queue.append(job)
            self._queue_depth.set(len(self._queue), service=self.name)
            self._cond.notify()

    def wake(self) -> None:
        """Make the worker look at the queue again (after a cancellation)."""
        with self._cond:
            self._cond.notify()

    @property
    def closing(self) -> bool:
        """Whether :meth:`close` was called (the batcher drains or has stopped)."""
        return self._closing

    @property
    def closed(self) -> bool:
        """Whether the worker has stopped after :meth:`close`."""
        return self._closing and not self._thread.is_alive()

    def load(self) -> tuple[int, int]:
        """``(queued jobs, busy slots)`` now."""
        with self._cond:
            return len(self._queue), self._busy_slots()

    def close(self, timeout: float | None = None) -> bool:
        """Refuse new jobs, finish every queued and running one, stop the worker.

        Returns whether the worker stopped within ``timeout`` seconds.
        """
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _drop_abandoned(self) -> None:
        """Under the lock: forget queued jobs whose caller gave up."""
        for job in [j for j in self._queue if j.abandoned]:
            self._queue.remove(job)

    def _busy_slots(self) -> int:
        raise NotImplementedError

    def _loop(self) -> None:
        raise NotImplementedError


class MicroBatcher(Worker):
    """A worker thread that runs request-level micro-batches (see the module docstring).

    Args:
        name: the service's name, the ``service`` label of its metrics.
        run_batch: runs a list of batch jobs and completes each job's future;
            anything it raises is set on the futures it left unset.
        max_batch: slots: the most weight decoded together.
        max_wait_s: how long the oldest queued job waits for companions.
        metrics: where batch sizes, queue depth and busy slots are reported.
    """

    def __init__(
        self,
        name: str,
        run_batch: Callable[[list[Job]], None],
        *,
        max_batch: int,
        max_wait_s: float,
        metrics: MetricsRegistry,
    ) -> None:
        super().__init__(name, max_batch=max_batch, max_wait_s=max_wait_s, metrics=metrics)
        self._run_batch = run_batch
        self._streams: list[Job] = []
        self._running = 0
        self._start()

    def _busy_slots(self) -> int:
        return sum(job.weight for job in self._streams) + self._running

    # -------------------------------------------------------------- worker

    def _admit(self) -> list[Job] | None:
        """Under the lock: admit streams, and return a batch when it should run now.

        Returns ``None`` when there is nothing to do and the worker may stop.
        """
        while True:
            self._drop_abandoned()
            busy = sum(job.weight for job in self._streams)
            free = self.max_batch - busy
            batch: list[Job] = []
            taken = 0
            for job in self._queue:
                # an oversized job runs alone once every slot is free
                fits = taken + job.weight <= free or (busy == 0 and taken == 0)
                if not fits:
                    break
                taken += job.weight
                if job.stepper is not None:
                    self._streams.append(job)
                    busy += job.weight
                else:
                    batch.append(job)
            for job in self._streams:
                if job in self._queue:
                    self._queue.remove(job)
            self._queue_depth.set(len(self._queue), service=self.name)
            if batch:
                now = time.monotonic()
                deadline = batch[0].arrival + self.max_wait_s
                if (
                    taken >= free
                    or now >= deadline
                    or self._closing
                    or len(batch) < len(self._queue)
                ):
                    for job in batch:
                        self._queue.remove(job)
                    self._queue_depth.set(len(self._queue), service=self.name)
                    return batch
                if not self._streams:
                    self._cond.wait(deadline - now)
                    continue
                return []  # step the streams; the batch keeps waiting for companions
            if self._streams:
                return []
            if self._closing and not self._queue:
                return None
            self._cond.wait()

    def _loop(self) -> None:
        while True:
            with self._cond:
                batch = self._admit()
                if batch is None:
                    return
                self._running = sum(job.weight for job in batch)
            if batch:
                self._run(batch)
            for job in list(self._streams):
                self._step(job)
            with self._cond:
                self._running = 0
                self._busy.set(sum(j.weight for j in self._streams), service=self.name)

    def _run(self, batch: list[Job]) -> None:
        live = [
            job for job in batch if job.future is None or job.future.set_running_or_notify_cancel()
        ]
        if not live:
            return
        self._batch_sizes.observe(sum(job.weight for job in live), service=self.name)
        self._busy.set(sum(j.weight for j in (*live, *self._streams)), service=self.name)
        try:
            self._run_batch(live)
        except BaseException as error:  # the worker must survive anything a model raises
            logger.exception("%s: a batch of %d failed", self.name, len(live))
            for job in live:
                if job.future is not None and not job.future.done():
                    job.future.set_exception(error)

    def _step(self, job: Job) -> None:
        stepper = job.stepper
        assert stepper is not None  # only stream jobs are in self._streams
        finished = True
        try:
            finished = stepper.cancelled or stepper.step()
        except BaseException:  # a stepper reports its own errors; never kill the worker
            logger.exception("%s: a stream step failed", self.name)
        if finished:
            if stepper.cancelled:
                stepper.abort()
            with self._cond:
                self._streams.remove(job)


class SessionBatcher(Worker):
    """A worker thread that does continuous batching over a decoding session.

    The session is opened (``open_session(max_batch)``) when the first job
    arrives and closed when the worker stops or a step fails. Every job takes
    one row.

    Args:
        name: the service's name, the ``service`` label of its metrics.
        open_session: makes a :class:`~genarch.protocols.DecodingSession` of
            ``max_batch`` rows.
        deliver: called with a job and each :class:`~genarch.protocols.RowUpdate`
            of its row; the update with a result is the last.
        fail: called with a job and the error that ended it (a request the
            session refused, or a failed step).
        cancelled: called with a job whose caller gave up while it ran (a
            cancelled future, a closed stream); its row is dropped.
        max_batch: rows: the most requests decoded together.
        max_wait_s: how long the oldest queued job waits for companions while
            the session is idle.
        metrics: where batch sizes (rows per step), queue depth and busy rows
            are reported.
    """

    def __init__(
        self,
        name: str,
        open_session: Callable[[int], DecodingSession[Any, Any, Any]],
        *,
        deliver: Callable[[Job, RowUpdate[Any, Any]], None],
        fail: Callable[[Job, BaseException], None],
        cancelled: Callable[[Job], None],
        max_batch: int,
        max_wait_s: float,
        metrics: MetricsRegistry,
    ) -> None:
        super().__init__(name, max_batch=max_batch, max_wait_s=max_wait_s, metrics=metrics)
        self._open_session = open_session
        self._deliver = deliver
        self._fail = fail
        self._cancelled = cancelled
        self._rows: dict[int, Job] = {}  # the session's rows and their jobs (worker thread only)
        self._active = 0  # len(self._rows), read under the lock by load()
        self._start()

    def _busy_slots(self) -> int:
        return self._active

    def _take(self) -> list[Job] | None:
        """Under the lock: the queued jobs to join now; ``None`` when the worker may stop."""
        while True:
            self._drop_abandoned()
            self._queue_depth.set(len(self._queue), service=self.name)
            free = self.max_batch - self._active
            if self._queue and free > 0:
                if not self._active and not self._closing and len(self._queue) < free:
                    deadline = self._queue[0].arrival + self.max_wait_s
                    now = time.monotonic()
                    if now < deadline:  # idle: let companions arrive, to share one prefill
                        self._cond.wait(deadline - now)
                        continue
                taken = [self._queue.popleft() for _ in range(min(free, len(self._queue)))]
                self._queue_depth.set(len(self._queue), service=self.name)
                return taken
            if self._active:
                return []
            if self._closing and not self._queue:
                return None
            self._cond.wait()

    def _loop(self) -> None:
        session: DecodingSession[Any, Any, Any] | None = None
        while True:
            with self._cond:
                taken = self._take()
            if taken is None:
                break
            if taken and session is None:
                session = self._open_session(self.max_batch)
            if session is None:
                continue
            for job in taken:
                self._join(session, job)
            for row, job in list(self._rows.items()):
                if job.abandoned:  # its caller cancelled it or closed its stream: free the row
                    session.cancel(row)
                    del self._rows[row]
                    self._cancelled(job)
            self._set_active()
            if not self._rows:
                continue
            self._batch_sizes.observe(len(self._rows), service=self.name)
            try:
                updates = session.step()
            except BaseException as error:  # the worker must survive anything a model raises
                logger.exception(
                    "%s: a decoding step of %d rows failed", self.name, len(self._rows)
                )
                for job in self._rows.values():
                    self._fail(job, error)
                self._rows.clear()
                session.close()
                session = None
                self._set_active()
                continue
            for update in updates:
                job = self._rows[update.row]
                if update.result is not None:
                    del self._rows[update.row]
                try:
                    self._deliver(job, update)
                except BaseException:  # a caller's callback must not stop the others
                    logger.exception("%s: delivering a row's update failed", self.name)
            self._set_active()
        if session is not None:
            session.close()

    def _join(self, session: DecodingSession[Any, Any, Any], job: Job) -> None:
        # The future is never marked running: its caller may still cancel it (an HTTP
        # client that disconnects), and the row is then dropped at the next step.
        if job.abandoned:
            return
        try:
            row = session.join(job.payload.request)
        except Exception as error:  # the request's own error, for its caller
            self._fail(job, error)
            return
        self._rows[row] = job

    def _set_active(self) -> None:
        with self._cond:
            self._active = len(self._rows)
            self._busy.set(self._active, service=self.name)
