"""The OpenAI-compatible clients against `genarch serve`, and their retry policy.

One real server for the module (a subprocess on loopback with an API key file, a
tiny TextGenerator and a fitted TfidfVectorizer): the conformance kit runs on both
clients through it, and 401/403/404/400 come from it. The retry policy is tested
with an in-process ``httpx.MockTransport`` that answers 429 and 503 on cue, and a
recording ``sleep``, so no test waits.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import torch

from deploy.components import text_generator, tfidf, with_text_generator
from deploy.test_http import free_port
from genarch.deploy import (
    ApiKeyStore,
    AuthenticationError,
    AuthorizationError,
    LocalDeployer,
    OpenAICompatibleEmbedder,
    OpenAICompatibleGenerator,
    RateLimitError,
    RemoteConnectionError,
    RemoteServerError,
)
from genarch.errors import InvalidInputError, NotFoundError
from genarch.schemas import TextRequest
from genarch.testing import check_feature_extractor, check_generator

TEXTS = ["open a file", "sort a list", "read a file", "a file"]


@dataclass(frozen=True)
class Server:
    url: str  # the API root, .../v1
    key: str
    embed_only_key: str


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("clients")
    deployer = LocalDeployer()
    deployer.package(
        text_generator(), root / "tiny", name="tiny", version="1", registry=with_text_generator()
    )
    deployer.package(tfidf(), root / "tfidf", name="tfidf", version="1")
    keys = ApiKeyStore(root / "keys.json")
    key = keys.create_key("app", ["generate", "embed"])
    embed_only = keys.create_key("embedder", ["embed"])
    port = free_port()
    command = [
        sys.executable, "-m", "genarch.cli", "serve", str(root / "tiny"), "--port", str(port),
        "--api-keys", str(keys.path), "--embeddings", str(root / "tfidf"), "--max-wait-ms", "2",
    ]  # fmt: skip
    log = (root / "serve.log").open("wb")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/readyz").status_code == 200:
                break
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"genarch serve did not start: {(root / 'serve.log').read_text()}")
        time.sleep(0.1)
    yield Server(f"{url}/v1", key, embed_only)
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    finally:
        process.kill()
        log.close()


def generator(server: Server, key: str | None = None) -> OpenAICompatibleGenerator:
    return OpenAICompatibleGenerator(server.url, "tiny", key or server.key, max_retries=0)


# ------------------------------------------------------- against genarch serve


def test_generator_passes_the_conformance_kit_against_genarch_serve(server: Server) -> None:
    requests = [
        TextRequest(prompt="Hello", max_new_tokens=8, temperature=1.0, seed=1),
        TextRequest(prompt="a longer prompt", max_new_tokens=5, temperature=0.7, top_k=20, seed=2),
        TextRequest(prompt="greedy", max_new_tokens=6, temperature=0.0, seed=3),
    ]
    invalid = [TextRequest(prompt="x", max_new_tokens=10_000, seed=1)]  # over the server's cap
    with generator(server) as client:
        check_generator(client, requests, invalid_requests=invalid)


def test_streamed_pieces_join_to_the_generated_text(server: Server) -> None:
    request = TextRequest(prompt="stream me", max_new_tokens=12, seed=5)
    with generator(server) as client:
        pieces = list(client.stream(request))
        assert len(pieces) > 1
        assert "".join(pieces) == client.generate(request).text


def test_embedder_passes_the_conformance_kit_and_matches_the_model(server: Server) -> None:
    with OpenAICompatibleEmbedder(server.url, "tiny-embeddings", server.key) as embedder:
        check_feature_extractor(embedder, TEXTS)
        assert torch.allclose(embedder.extract(TEXTS), tfidf().extract(TEXTS), atol=1e-6)
        assert embedder.dim == tfidf().dim


def test_a_wrong_key_raises_authentication_error(server: Server) -> None:
    with pytest.raises(AuthenticationError, match="401"):
        generator(server, key="sk-wrong").generate(TextRequest(prompt="x", max_new_tokens=1))


def test_a_key_without_the_scope_raises_authorization_error(server: Server) -> None:
    with pytest.raises(AuthorizationError, match="403") as caught:
        generator(server, server.embed_only_key).generate(TextRequest(prompt="x", seed=1))
    assert caught.value.scope == "generate"


def test_an_unknown_model_raises_not_found(server: Server) -> None:
    client = OpenAICompatibleGenerator(server.url, "no-such-model", server.key)
    with pytest.raises(NotFoundError, match="no-such-model"):
        client.generate(TextRequest(prompt="x", max_new_tokens=1))


def test_a_request_the_api_cannot_express_is_refused_before_sending() -> None:
    client = OpenAICompatibleGenerator("http://127.0.0.1:9", "m", transport=refusing_transport())
    with pytest.raises(InvalidInputError, match="stop_token_ids"):
        client.generate(TextRequest(prompt="x", stop_token_ids=(1,)))
    with pytest.raises(InvalidInputError, match="logprobs"):
        client.generate(TextRequest(prompt="x", logprobs=2))


def test_a_refused_connection_names_the_url() -> None:
    port = free_port()  # nothing listens there
    waits: list[float] = []
    client = OpenAICompatibleGenerator(
        f"http://127.0.0.1:{port}/v1", "tiny", max_retries=2, sleep=waits.append
    )
    with pytest.raises(RemoteConnectionError, match=f"127.0.0.1:{port}/v1/completions"):
        client.generate(TextRequest(prompt="x", max_new_tokens=1))
    assert len(waits) == 2  # a refused connection is retried, then reported


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"base_url": "127.0.0.1:8000"}, "base_url"),
        ({"model": ""}, "model"),
        ({"timeout": 0}, "timeout"),
        ({"max_retries": -1}, "max_retries"),
        ({"backoff": float("nan")}, "backoff"),
    ],
)
def test_bad_arguments_are_refused_naming_them(arguments: dict[str, object], field: str) -> None:
    given: dict[str, object] = {"base_url": "http://127.0.0.1:8000/v1", "model": "m"}
    with pytest.raises(InvalidInputError, match=field):
        OpenAICompatibleGenerator(**{**given, **arguments})  # type: ignore[arg-type]


# ------------------------------------------------------- the retry policy


def completion(text: str = "ok") -> httpx.Response:
    return httpx.Response(
        200, json={"choices": [{"index": 0, "text": text, "finish_reason": "length"}]}
    )


def scripted(answers: list[httpx.Response]) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """A transport that gives ``answers`` in order and records the requests it saw."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers[len(seen) - 1]

    return httpx.MockTransport(handle), seen


def refusing_transport() -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        raise AssertionError("nothing should have been sent")

    return httpx.MockTransport(handle)


def client_over(
    transport: httpx.MockTransport, waits: list[float], **options: object
) -> OpenAICompatibleGenerator:
    return OpenAICompatibleGenerator(
        "http://model.test/v1",
        "m",
        "sk-test",
        transport=transport,
        sleep=waits.append,
        rng=random.Random(0),
        **options,  # type: ignore[arg-type]
    )


def test_429_is_retried_after_the_retry_after_the_server_asked_for() -> None:
    limited = httpx.Response(429, headers={"Retry-After": "3"}, json={"error": {"message": "slow"}})
    transport, seen = scripted([limited, completion("done")])
    waits: list[float] = []
    result = client_over(transport, waits).generate(TextRequest(prompt="x"))
    assert result.text == "done"
    assert waits == [3.0]
    assert len(seen) == 2
    assert seen[0].headers["authorization"] == "Bearer sk-test"


def test_retry_after_as_an_http_date_is_read_against_the_clock() -> None:
    limited = httpx.Response(429, headers={"Retry-After": "Sun, 06 Dec 2026 12:00:05 GMT"})
    transport, _ = scripted([limited, completion()])
    waits: list[float] = []
    noon = 1796558400.0  # 2026-12-06 12:00:00 UTC
    client_over(transport, waits, clock=lambda: noon).generate(TextRequest(prompt="x"))
    assert waits == [5.0]


def test_503_is_retried_with_jittered_exponential_backoff() -> None:
    unavailable = httpx.Response(503, json={"error": {"message": "draining"}})
    transport, seen = scripted([unavailable, unavailable, unavailable, completion("late")])
    waits: list[float] = []
    client = client_over(transport, waits, max_retries=3, backoff=1.0, max_backoff=3.0)
    assert client.generate(TextRequest(prompt="x")).text == "late"
    assert len(seen) == 4
    for wait, ceiling in zip(waits, [1.0, 2.0, 3.0], strict=True):  # 1, 2, then capped at 3
        assert ceiling / 2 <= wait <= ceiling


def test_retries_give_up_with_the_status_and_the_servers_message() -> None:
    unavailable = httpx.Response(503, json={"error": {"message": "draining"}})
    transport, seen = scripted([unavailable] * 3)
    waits: list[float] = []
    with pytest.raises(RemoteServerError, match="503: draining") as caught:
        client_over(transport, waits, max_retries=2).generate(TextRequest(prompt="x"))
    assert caught.value.status == 503
    assert len(seen) == 3
    assert len(waits) == 2


def test_a_retry_after_longer_than_the_bound_raises_at_once() -> None:
    limited = httpx.Response(429, headers={"Retry-After": "3600"})
    transport, seen = scripted([limited])
    waits: list[float] = []
    with pytest.raises(RateLimitError) as caught:
        client_over(transport, waits, max_retry_after=30).generate(TextRequest(prompt="x"))
    assert caught.value.retry_after == 3600
    assert waits == []
    assert len(seen) == 1


@pytest.mark.parametrize(
    ("status", "error"),
    [(400, InvalidInputError), (422, InvalidInputError), (404, NotFoundError)],
)
def test_client_errors_are_not_retried(status: int, error: type[Exception]) -> None:
    answer = httpx.Response(status, json={"error": {"message": "bad", "param": "max_tokens"}})
    transport, seen = scripted([answer])
    waits: list[float] = []
    with pytest.raises(error, match="bad"):
        client_over(transport, waits).generate(TextRequest(prompt="x"))
    assert len(seen) == 1
    assert waits == []


def test_embedder_retries_too_and_orders_rows_by_index() -> None:
    rows = [{"index": 1, "embedding": [0.0, 1.0]}, {"index": 0, "embedding": [1.0, 0.0]}]
    transport, _ = scripted([httpx.Response(502), httpx.Response(200, json={"data": rows})])
    waits: list[float] = []
    embedder = OpenAICompatibleEmbedder(
        "http://model.test/v1", "e", transport=transport, sleep=waits.append, dim=2
    )
    assert embedder.extract(["a", "b"]).tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert len(waits) == 1


def test_httpx_is_imported_only_when_a_client_is_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from genarch.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "httpx", None)  # import httpx now fails
    build: Callable[[], object] = lambda: OpenAICompatibleGenerator("http://x/v1", "m")  # noqa: E731
    with pytest.raises(MissingDependencyError, match=r"genarch\[serve\]"):
        build()


def test_module_has_no_import_time_dependency_on_httpx() -> None:
    source = Path(__file__).parents[2] / "src" / "genarch" / "deploy" / "clients.py"
    top_level = [
        line for line in source.read_text().splitlines() if line.startswith(("import ", "from "))
    ]
    assert not any("httpx" in line for line in top_level)


def sse(*events: str) -> httpx.Response:
    body = "".join(f"data: {event}\n\n" for event in events)
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, text=body)


def test_a_stream_that_ends_without_done_raises_instead_of_truncating() -> None:
    piece = '{"choices": [{"index": 0, "text": "par"}]}'
    transport, _ = scripted([sse(piece, piece, "[DONE]"), sse(piece)])
    client = client_over(transport, [])
    assert list(client.stream(TextRequest(prompt="x"))) == ["par", "par"]
    with pytest.raises(RemoteServerError, match=r"without data: \[DONE\]"):
        list(client.stream(TextRequest(prompt="x")))


def test_a_read_timeout_is_not_retried() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        raise httpx.ReadTimeout("slow", request=request)

    waits: list[float] = []
    client = client_over(httpx.MockTransport(handle), waits, timeout=0.5)
    with pytest.raises(RemoteConnectionError, match=r"did not answer within 0.5 s"):
        client.generate(TextRequest(prompt="x"))
    assert len(seen) == 1
    assert waits == []
