"""GenerationService with continuous batching: requests join a running batch and leave it early."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future

import pytest

from genarch.deploy.service import GenerationService
from genarch.errors import InvalidInputError
from genarch.models import TextGenerator
from genarch.protocols import ContinuousBatchingGenerator, RowUpdate
from genarch.schemas import TextRequest, TextResult
from models.gpt_testing import ByteTokenizer, one_torch_thread, tiny_model


@pytest.fixture(scope="module")
def generator() -> Iterator[TextGenerator]:
    with one_torch_thread():
        yield TextGenerator(tiny_model(context_length=256), ByteTokenizer())


def finish_order(futures: dict[str, Future[TextResult]]) -> list[str]:
    """The names of ``futures`` in the order they completed (wait for all)."""
    order: list[str] = []
    lock = threading.Lock()

    def done(name: str) -> None:
        with lock:
            order.append(name)

    for name, future in futures.items():
        future.add_done_callback(lambda _, name=name: done(name))  # type: ignore[misc]
    for future in futures.values():
        future.result(timeout=60)
    return order


@pytest.mark.parametrize("continuous", [True, False])
def test_a_finished_request_frees_its_slot_for_a_waiting_one(
    generator: TextGenerator, continuous: bool
) -> None:
    long = TextRequest(prompt="long", max_new_tokens=240, temperature=0)
    short = TextRequest(prompt="short", max_new_tokens=2, temperature=0)
    waiting = TextRequest(prompt="waiting", max_new_tokens=2, temperature=0)
    later = TextRequest(prompt="later", max_new_tokens=2, temperature=0)
    # Two slots and a long wait: a batch starts when both slots are taken, so the first two
    # start together (and, under micro-batching, so do the last two) whatever the timing.
    with GenerationService(
        generator, max_batch=2, max_wait_ms=10_000, continuous_batching=continuous
    ) as service:
        assert service.continuous is continuous
        requests = {"long": long, "short": short, "waiting": waiting, "later": later}
        futures = {name: service.submit(request) for name, request in requests.items()}
        order = finish_order(futures)
        results = {name: future.result() for name, future in futures.items()}
    assert results == {name: generator.generate(r) for name, r in requests.items()}
    if continuous:  # the short one's slot went to the waiting one, long before the end
        assert order == ["short", "waiting", "later", "long"]
    else:  # a micro-batch is a unit: the waiting ones start when both first ones are done
        assert set(order[:2]) == {"long", "short"}


def test_mixed_requests_submitted_at_once_get_the_tokens_they_get_alone(
    generator: TextGenerator,
) -> None:
    requests = [
        TextRequest(prompt="p" * (1 + 7 * i), max_new_tokens=3 + 11 * i, temperature=0.8, seed=i)
        for i in range(10)
    ]
    with GenerationService(generator, max_batch=3, max_wait_ms=0) as service:
        futures = [service.submit(r) for r in requests]
        results = [f.result(timeout=60) for f in futures]
        sizes = service.metrics.snapshot()["genarch_batch_size"]["values"]['{service="generate"}']
    assert results == [generator.generate(r) for r in requests]
    assert sizes["sum"] / sizes["count"] > 1  # rows really shared steps


def test_streams_are_rows_of_the_batch_and_closing_one_frees_its_row(
    generator: TextGenerator,
) -> None:
    request = TextRequest(prompt="stream me", max_new_tokens=30, temperature=0.9, seed=4)
    with GenerationService(generator, max_batch=1, max_wait_ms=0) as service:
        assert "".join(service.stream(request)) == generator.generate(request).text
        stream = service.stream(TextRequest(prompt="endless", max_new_tokens=250, seed=1))
        next(stream)
        assert service.health().busy_slots == 1
        stream.close()
        # the only row is free again: the next request gets it long before 250 steps
        after = TextRequest(prompt="next", max_new_tokens=3, temperature=0)
        assert service.generate(after, timeout=30) == generator.generate(after)
        assert service.health().busy_slots == 0
        outcomes = service.metrics.snapshot()["genarch_requests_total"]["values"]
    assert outcomes['{outcome="cancelled",service="generate"}'] == 1


# --------------------------------------------------- a user's own decoding session


class Reverser:
    """A generator that answers a prompt reversed, one character per step, in a session.

    It shows the protocol a user implements for continuous batching; a row whose
    prompt is ``"boom"`` makes the step fail, one whose prompt is ``"bad"`` is refused.
    """

    def generate(self, request: TextRequest) -> TextResult:
        return self.generate_batch([request])[0]

    def generate_batch(self, requests: Sequence[TextRequest]) -> list[TextResult]:
        return [TextResult(text=r.prompt[::-1]) for r in requests]

    def open_session(self, max_rows: int) -> ReverserSession:
        self.session = ReverserSession(max_rows)
        return self.session


class ReverserSession:
    def __init__(self, max_rows: int) -> None:
        self.max_rows = max_rows
        self.rows: dict[int, list[str]] = {}
        self.texts: dict[int, str] = {}
        self.next_id = 0
        self.widest = 0
        self.cancelled: list[int] = []

    @property
    def active_rows(self) -> int:
        return len(self.rows)

    @property
    def free_rows(self) -> int:
        return self.max_rows - len(self.rows)

    def join(self, request: TextRequest) -> int:
        if request.prompt == "bad" or not self.free_rows:
            raise InvalidInputError(f"refused {request.prompt!r}")
        self.next_id += 1
        self.rows[self.next_id] = list(request.prompt)
        self.texts[self.next_id] = ""
        return self.next_id

    def step(self) -> list[RowUpdate[str, TextResult]]:
        self.widest = max(self.widest, len(self.rows))
        if any("".join(left) == "boom" for left in self.rows.values()):
            raise RuntimeError("the model blew up")
        updates = []
        for row, left in list(self.rows.items()):
            piece = left.pop()
            self.texts[row] += piece
            result = None if left else TextResult(text=self.texts.pop(row))
            if result is not None:
                del self.rows[row]
            updates.append(RowUpdate(row, piece, result))
        return updates

    def cancel(self, row: int) -> None:
        self.cancelled.append(row)
        self.rows.pop(row, None)

    def close(self) -> None:
        self.rows.clear()


def test_a_users_own_session_is_served_and_a_failed_step_fails_only_its_rows() -> None:
    reverser = Reverser()
    assert isinstance(reverser, ContinuousBatchingGenerator)
    with GenerationService(reverser, max_batch=4, max_wait_ms=0) as service:
        assert service.continuous
        stream = service.stream(TextRequest(prompt="abc"))
        assert list(stream) == ["c", "b", "a"]
        with pytest.raises(InvalidInputError, match="refused 'bad'"):
            service.generate(TextRequest(prompt="bad"), timeout=10)
        with pytest.raises(RuntimeError, match="blew up"):
            service.generate(TextRequest(prompt="boom"), timeout=10)
        # a fresh session serves the next requests
        texts = [
            f.result(timeout=10).text
            for f in [service.submit(TextRequest(prompt=p)) for p in ("hello", "xy")]
        ]
        errors = service.metrics.snapshot()["genarch_errors_total"]["values"]
    assert texts == ["olleh", "yx"]
    assert errors == {
        '{service="generate",type="InvalidInputError"}': 1,
        '{service="generate",type="RuntimeError"}': 1,
    }


def test_cancelling_a_decoding_request_frees_its_row() -> None:
    reverser = Reverser()
    caps = {"max_prompt_tokens": 1_000_000}
    with GenerationService(reverser, max_batch=1, max_wait_ms=0, **caps) as service:
        endless = service.submit(TextRequest(prompt="x" * 900_000))  # 900,000 steps
        deadline = time.monotonic() + 30
        while service.health().busy_slots == 0 and time.monotonic() < deadline:
            time.sleep(0.001)  # until it decodes
        assert endless.cancel()  # what the HTTP server does when its client disconnects
        assert service.generate(TextRequest(prompt="next"), timeout=30).text == "txen"
        outcomes = service.metrics.snapshot()["genarch_requests_total"]["values"]
    assert reverser.session.cancelled == [1]  # the row was dropped, not decoded to its end
    assert outcomes['{outcome="cancelled",service="generate"}'] == 1
