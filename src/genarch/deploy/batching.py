"""The worker behind the services: one thread owns the model and forms micro-batches.

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

__all__ = ["Job", "MicroBatcher", "Stepper"]

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
    arrival: float = field(default_factory=time.monotonic)

    @property
    def abandoned(self) -> bool:
        if self.stepper is not None:
            return self.stepper.cancelled
        return self.future is not None and self.future.cancelled()


class MicroBatcher:
    """A worker thread that batches jobs (see the module docstring).

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
        self.name = name
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._run_batch = run_batch
        self._queue: deque[Job] = deque()
        self._streams: list[Job] = []
        self._cond = threading.Condition()
        self._closing = False
        self._batch_sizes = metrics.histogram(
            "genarch_batch_size", "Requests decoded together in one call.", BATCH_SIZE_BUCKETS
        )
        self._queue_depth = metrics.gauge("genarch_queue_depth", "Requests waiting for a slot.")
        self._busy = metrics.gauge("genarch_busy_slots", "Slots held by running requests.")
        self._running = 0
        self._thread = threading.Thread(target=self._loop, name=f"genarch-{name}", daemon=True)
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
            busy = sum(job.weight for job in self._streams) + self._running
            return len(self._queue), busy

    def close(self, timeout: float | None = None) -> bool:
        """Refuse new jobs, finish every queued and running one, stop the worker.

        Returns whether the worker stopped within ``timeout`` seconds.
        """
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # -------------------------------------------------------------- worker

    def _admit(self) -> list[Job] | None:
        """Under the lock: admit streams, and return a batch when it should run now.

        Returns ``None`` when there is nothing to do and the worker may stop.
        """
        while True:
            for job in [j for j in self._queue if j.abandoned]:
                self._queue.remove(job)
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
