"""Flower ``Grid``s that deliver a strategy's messages to simulated clients.

A Flower strategy talks to its clients through a
:class:`flwr.serverapp.Grid`: it builds one ``Message`` per sampled node,
``send_and_receive`` delivers them and returns the replies. Flower's own
simulation engine (``flwr.simulation.run_simulation``) puts a SuperLink state,
polling threads and a Ray actor pool behind that interface, and at the end
calls ``ray.shutdown()`` whatever started Ray — so it cannot run inside a Ray
that the caller (a test session, a cluster driver) owns. These grids deliver
the same messages to the same ``ClientApp`` directly:

* :class:`InProcessGrid` calls the ``ClientApp`` in this process, node by node;
* :class:`RayGrid` runs each call as a Ray task on the Ray the caller already
  started (``ray.init()`` or ``ray.init(address=...)``), never starting or
  stopping it. Ray retries a task whose worker dies (``max_retries``).

Both return replies in node order, so aggregation sums in the same order every
run (floating-point addition is not associative).
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from genarch.errors import ConfigError, missing_dependency

if TYPE_CHECKING:  # flwr is optional: imported lazily where it is used
    from flwr.app import Context, Message
    from flwr.clientapp import ClientApp
    from flwr.serverapp import Grid
    from flwr.supercore.run import Run

__all__ = ["flower_identity", "make_grid"]

SERVER_NODE_ID = 0
_IDENTITY_LOCK = threading.Lock()


@contextlib.contextmanager
def flower_identity(run_id: int) -> Iterator[None]:
    """Set Flower's process-wide task identity for one run, then restore it.

    Flower's ``Message`` constructor reads the sender's run and node from the
    class-level ``TaskIdentity`` (set by each Flower process at start-up). A
    simulation inside an ordinary Python process sets it for its duration; the
    lock keeps two runs in one process from interleaving.
    """
    from flwr.supercore.task_identity import TaskIdentity

    with _IDENTITY_LOCK:
        saved = (TaskIdentity._task_id, TaskIdentity._run_id, TaskIdentity._node_id)
        TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, run_id, SERVER_NODE_ID
        try:
            yield
        finally:
            TaskIdentity._task_id, TaskIdentity._run_id, TaskIdentity._node_id = saved


def _contexts(run_id: int, num_clients: int) -> dict[int, Context]:
    from flwr.app import Context, RecordDict

    return {
        index + 1: Context(
            run_id=run_id,
            node_id=index + 1,
            node_config={"partition-id": index, "num-partitions": num_clients},
            state=RecordDict(),
            run_config={},
        )
        for index in range(num_clients)
    }


def _call_client(app: ClientApp, message: Message, context: Context) -> tuple[Message, Context]:
    """One client's turn: what a SuperNode does with a message."""
    reply = app(message, context)
    reply.metadata.__dict__["_message_id"] = str(uuid.uuid4())
    return reply, context


def make_grid(app: ClientApp, num_clients: int, run_id: int, backend: str) -> Grid:
    """A grid of ``num_clients`` simulated nodes (ids 1..K) running ``app``.

    Args:
        backend: ``"in-process"`` or ``"ray"`` (needs an initialised Ray).

    Raises:
        MissingDependencyError: ``backend="ray"`` without Ray installed.
        ConfigError: ``backend="ray"`` but Ray is not initialised.
    """
    from flwr.serverapp import Grid

    class _SimulatedGrid(Grid):
        """Nodes 1..K; subclasses say how a batch of messages reaches them."""

        def __init__(self) -> None:
            self._contexts = _contexts(run_id, num_clients)
            self._replies: dict[str, Message] = {}
            self._run: Run | None = None
            self._timeout: float | None = None

        def set_run(self, run: Run) -> None:
            self._run = run

        @property
        def run(self) -> Run:
            if self._run is None:
                raise RuntimeError("set_run was not called on this grid")
            return self._run

        def create_message(
            self,
            content: Any,
            message_type: str,
            dst_node_id: int,
            group_id: str,
            ttl: float | None = None,
        ) -> Message:
            from flwr.app import Message

            return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

        def get_node_ids(self) -> Iterable[int]:
            return list(self._contexts)

        def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
            batch = sorted(messages, key=lambda m: m.metadata.dst_node_id)
            for message in batch:
                if message.metadata.dst_node_id not in self._contexts:
                    raise ValueError(f"no node {message.metadata.dst_node_id} in this simulation")
                message.metadata.__dict__["_message_id"] = str(uuid.uuid4())
            for message, (reply, context) in zip(batch, self._deliver(batch), strict=True):
                self._contexts[message.metadata.dst_node_id] = context
                self._replies[message.metadata.message_id] = reply
            return [message.metadata.message_id for message in batch]

        def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
            return [self._replies.pop(i) for i in message_ids if i in self._replies]

        def send_and_receive(
            self, messages: Iterable[Message], *, timeout: float | None = None
        ) -> Iterable[Message]:
            self._timeout = timeout
            return self.pull_messages(self.push_messages(messages))

        def _deliver(self, batch: list[Message]) -> list[tuple[Message, Context]]:
            raise NotImplementedError

    class InProcessGrid(_SimulatedGrid):
        def _deliver(self, batch: list[Message]) -> list[tuple[Message, Context]]:
            return [_call_client(app, m, self._contexts[m.metadata.dst_node_id]) for m in batch]

    if backend == "in-process":
        return InProcessGrid()

    try:
        import ray
    except ImportError:
        raise missing_dependency("ray", "federated", "federated_train(backend='ray')") from None
    if not ray.is_initialized():
        raise ConfigError(
            "federated_train(backend='ray') runs on the Ray you started and starts none itself: "
            "call ray.init() (or ray.init(address=...) for a cluster) first, or use "
            "backend='in-process'"
        )
    app_ref = ray.put(app)  # shipped to the object store once, not once per task
    remote_call = ray.remote(num_cpus=1, max_retries=3)(_call_client)

    class RayGrid(_SimulatedGrid):
        def _deliver(self, batch: list[Message]) -> list[tuple[Message, Context]]:
            futures = [
                remote_call.remote(app_ref, m, self._contexts[m.metadata.dst_node_id])
                for m in batch
            ]
            try:
                results: list[tuple[Message, Context]] = ray.get(futures, timeout=self._timeout)
            except ray.exceptions.RayTaskError as error:
                cause = error.cause  # the client's own exception, not Ray's wrapper
                raise (cause if isinstance(cause, BaseException) else error) from None
            return results

    return RayGrid()
