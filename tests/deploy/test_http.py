"""`genarch serve` as a real subprocess on loopback, called with the real `openai` client.

One server for the module: a tiny packaged TextGenerator (context 1024, so a stream
can run long enough to be cut) plus a fitted TfidfVectorizer for /v1/embeddings, served
by the CLI with an API key file, rate limits and a SQLite feedback store. Every
refusal test ends by checking that a valid request still succeeds.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest
import torch
from openai.types.chat import ChatCompletionMessageParam

from genarch.data import ByteTokenizer
from genarch.deploy import ApiKeyStore, LocalDeployer
from genarch.features import TfidfVectorizer
from genarch.feedback import SQLiteFeedbackStore
from genarch.models import GPT, TextGenerator
from genarch.registry import builtin_registry

MODEL = "tiny"


@dataclass(frozen=True)
class Server:
    url: str
    key: str
    embed_only_key: str
    burst_key: str
    feedback_db: Path
    process: subprocess.Popen[bytes]

    def client(self, key: str | None = None) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=key or self.key, max_retries=0)

    def post(self, path: str, key: str | None = None, **kwargs: object) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key or self.key}"}
        return httpx.post(f"{self.url}{path}", headers=headers, timeout=30, **kwargs)  # type: ignore[arg-type]

    def get(self, path: str, key: str | None = None) -> httpx.Response:
        return httpx.get(
            f"{self.url}{path}", headers={"Authorization": f"Bearer {key or self.key}"}
        )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def package(root: Path) -> tuple[Path, Path]:
    torch.manual_seed(0)
    gpt = GPT(vocab_size=257, context_length=1024, n_layer=1, n_head=2, n_embd=16)
    registry = builtin_registry().register("genarch.TextGenerator", TextGenerator)
    deployer = LocalDeployer()
    generator_dir, embedder_dir = root / "tiny", root / "tfidf"
    deployer.package(
        TextGenerator(gpt, ByteTokenizer()),
        generator_dir,
        name=MODEL,
        version="1",
        registry=registry,
    )
    tfidf = TfidfVectorizer().fit(["open a file", "sort a list", "read a file"])
    deployer.package(tfidf, embedder_dir, name="tfidf", version="1")
    return generator_dir, embedder_dir


def start_server(root: Path, *arguments: str) -> tuple[subprocess.Popen[bytes], str]:
    """``genarch serve ARGUMENTS`` on a free loopback port, once ``/readyz`` answers 200."""
    port = free_port()
    command = [sys.executable, "-m", "genarch.cli", "serve", *arguments, "--port", str(port)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with (root / "serve.log").open("ab") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/readyz").status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"genarch serve did not start: {(root / 'serve.log').read_text()}")
        time.sleep(0.1)


def stop_server(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM: the server drains, then exits."""
    process.send_signal(signal.SIGTERM)
    try:
        # uvicorn finishes its graceful shutdown, then re-raises the signal it caught
        assert process.wait(timeout=20) in (0, -signal.SIGTERM)
    finally:
        process.kill()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("serve")
    generator_dir, embedder_dir = package(root)
    keys = ApiKeyStore(root / "keys.json")
    key = keys.create_key("app", ["generate", "embed", "feedback", "admin"])
    embed_only = keys.create_key("embedder", ["embed"])
    burst = keys.create_key("bursty", ["generate"])
    process, url = start_server(
        root,
        str(generator_dir),
        *("--api-keys", str(keys.path), "--embeddings", str(embedder_dir)),
        *("--feedback", str(root / "feedback.db"), "--requests-per-second", "1"),
        *("--request-burst", "30", "--max-new-tokens", "1000", "--max-wait-ms", "1"),
    )
    yield Server(url, key, embed_only, burst, root / "feedback.db", process)
    stop_server(process)


def assert_still_serves(server: Server) -> None:
    completion = server.client().completions.create(
        model=MODEL, prompt="ok", max_tokens=2, temperature=0
    )
    assert completion.choices[0].finish_reason in ("length", "stop")


def greedy(server: Server, prompt: str, max_tokens: int) -> str:
    completion = server.client().completions.create(
        model=MODEL, prompt=prompt, max_tokens=max_tokens, temperature=0
    )
    return str(completion.choices[0].text)


# ---------------------------------------------------------------- what works


def test_completions_report_usage_and_are_deterministic_when_greedy(server: Server) -> None:
    completion = server.client().completions.create(
        model=MODEL, prompt="Hello", max_tokens=6, temperature=0, seed=1
    )
    assert completion.object == "text_completion"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 5  # bytes, with the byte tokenizer
    assert completion.usage.completion_tokens == 6
    assert completion.choices[0].finish_reason == "length"
    assert greedy(server, "Hello", 6) == completion.choices[0].text


def test_stop_strings_cut_the_text_exactly(server: Server) -> None:
    text = greedy(server, "abc", 24)
    stop = next(
        (text[i : i + 2] for i in range(4, len(text) - 1) if "\ufffd" not in text[i : i + 2]), None
    )
    if stop is None:
        pytest.skip("the tiny model produced no clean stop candidate")
    cut = server.client().completions.create(
        model=MODEL, prompt="abc", max_tokens=24, temperature=0, stop=[stop]
    )
    assert cut.choices[0].text == text[: text.index(stop)]
    assert cut.choices[0].finish_reason == "stop"


def test_n_choices_with_a_seed_and_top_k_as_an_extra_body_field(server: Server) -> None:
    completion = server.client().completions.create(
        model=MODEL, prompt="x", max_tokens=4, n=2, seed=3, extra_body={"top_k": 5}
    )
    assert [c.index for c in completion.choices] == [0, 1]
    again = server.client().completions.create(
        model=MODEL, prompt="x", max_tokens=4, n=2, seed=3, extra_body={"top_k": 5}
    )
    assert [c.text for c in again.choices] == [c.text for c in completion.choices]


def test_chat_with_logprobs(server: Server) -> None:
    chat = server.client().chat.completions.create(
        model=MODEL,
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        max_tokens=4,
        temperature=0,
        logprobs=True,
        top_logprobs=2,
    )
    assert chat.object == "chat.completion"
    assert chat.choices[0].message.role == "assistant"
    assert chat.usage is not None
    assert chat.usage.completion_tokens == 4
    assert chat.choices[0].logprobs is not None
    content = chat.choices[0].logprobs.content or []
    assert len(content) == 4
    assert all(len(item.top_logprobs) == 2 for item in content)


def test_chat_streams_the_same_text_as_without_stream_then_done(server: Server) -> None:
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Tell me"}]
    whole = server.client().chat.completions.create(
        model=MODEL,
        messages=messages,
        max_tokens=12,
        temperature=0,
    )
    chunks = list(
        server.client().chat.completions.create(
            model=MODEL,
            messages=messages,
            max_tokens=12,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    usage = chunks[-1].usage  # a stream counts the streamed text re-encoded
    assert usage is not None
    assert usage.completion_tokens >= 1
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    with httpx.stream(
        "POST",
        f"{server.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {server.key}"},
        json={"messages": messages, "max_tokens": 3, "stream": True},
    ) as response:
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"


def test_embeddings_and_models(server: Server) -> None:
    result = server.client().embeddings.create(model=f"{MODEL}-embeddings", input=["a b", "c"])
    dim = len(result.data[0].embedding)
    assert dim > 0
    assert len(result.data[1].embedding) == dim
    floats = server.post("/v1/embeddings", json={"input": "a b", "encoding_format": "float"})
    assert floats.json()["data"][0]["embedding"] == pytest.approx(result.data[0].embedding)
    ids = [model.id for model in server.client().models.list()]
    assert ids == [MODEL, f"{MODEL}-embeddings"]


def test_feedback_is_stored_against_the_response_id(server: Server) -> None:
    completion = server.client().completions.create(
        model=MODEL, prompt="Rate me", max_tokens=3, temperature=0
    )
    response = server.post(
        "/v1/feedback", json={"kind": "rating", "response_id": completion.id, "score": 0.9}
    )
    assert response.status_code == 200, response.text
    with SQLiteFeedbackStore(server.feedback_db) as store:
        stored = store.get(response.json()["id"]).feedback
    assert stored.response_id == completion.id
    assert stored.prompt == "Rate me"
    assert stored.output == completion.choices[0].text  # type: ignore[union-attr]
    missing = server.post(
        "/v1/feedback", json={"kind": "rating", "response_id": "nope", "score": 1}
    )
    assert missing.status_code == 404
    assert_still_serves(server)


def test_health_readiness_and_prometheus_metrics(server: Server) -> None:
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{server.url}/readyz").status_code == 200
    metrics = server.get("/metrics")
    assert metrics.status_code == 200
    assert "# TYPE genarch_requests_total counter" in metrics.text


# ------------------------------------------------------------- what is refused


def error_of(response: httpx.Response) -> dict[str, object]:
    body = response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return dict(body["error"])


def test_a_wrong_key_is_401(server: Server) -> None:
    with pytest.raises(openai.AuthenticationError):
        server.client("gk_0123456789abcdef_" + "x" * 43).completions.create(model=MODEL, prompt="a")
    assert server.post("/v1/completions", key="nonsense", json={"prompt": "a"}).status_code == 401
    assert httpx.get(f"{server.url}/metrics").status_code == 401
    assert_still_serves(server)


def test_a_key_without_the_scope_is_403(server: Server) -> None:
    with pytest.raises(openai.PermissionDeniedError):
        server.client(server.embed_only_key).completions.create(model=MODEL, prompt="a")
    assert server.get("/metrics", key=server.embed_only_key).status_code == 403
    assert_still_serves(server)


def test_a_burst_over_the_limit_is_429_with_retry_after(server: Server) -> None:
    statuses = []
    for _ in range(40):
        response = server.post(
            "/v1/completions", key=server.burst_key, json={"prompt": "a", "max_tokens": 1}
        )
        statuses.append(response.status_code)
        if response.status_code == 429:
            assert int(response.headers["Retry-After"]) >= 1
            assert error_of(response)["type"] == "rate_limit_error"
            break
    assert statuses[-1] == 429, statuses
    assert_still_serves(server)


def test_a_2mb_body_is_413(server: Server) -> None:
    response = server.post("/v1/completions", json={"prompt": "x" * 2_000_000})
    assert response.status_code == 413
    assert error_of(response)["code"] == "request_too_large"
    assert_still_serves(server)


def test_invalid_json_is_400_and_wrong_types_are_422(server: Server) -> None:
    bad = server.post("/v1/completions", content=b"{not json")
    assert bad.status_code == 400
    assert error_of(bad)["code"] == "invalid_json"
    wrong = server.post("/v1/completions", json={"prompt": "a", "max_tokens": "many"})
    assert wrong.status_code == 422
    assert error_of(wrong)["param"] == "max_tokens"
    assert server.post("/v1/chat/completions", json={"messages": "hi"}).status_code == 422
    assert_still_serves(server)


def test_max_tokens_over_the_cap_is_400_naming_it(server: Server) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        server.client().completions.create(model=MODEL, prompt="a", max_tokens=100_000)
    assert refused.value.body["param"] == "max_tokens"  # type: ignore[index]
    assert refused.value.body["code"] == "cap_exceeded"  # type: ignore[index]
    assert_still_serves(server)


def test_unknown_models_routes_and_unsupported_fields(server: Server) -> None:
    with pytest.raises(openai.NotFoundError):
        server.client().completions.create(model="gpt-4", prompt="a")
    assert error_of(server.get("/v1/nothing"))["code"] == "route_not_found"
    tools = server.post(
        "/v1/chat/completions", json={"messages": [{"role": "user", "content": "a"}], "tools": [{}]}
    )
    assert tools.status_code == 400
    assert error_of(tools)["param"] == "tools"
    ignored = server.post(
        "/v1/completions", json={"prompt": "a", "max_tokens": 1, "service_tier": "x"}
    )
    assert ignored.status_code == 200  # unknown fields are ignored
    assert_still_serves(server)


def cancelled_streams(server: Server) -> float:
    text = server.get("/metrics").text
    found = re.search(
        r'genarch_requests_total\{outcome="cancelled",service="generate"\} (\S+)', text
    )
    return float(found.group(1)) if found else 0.0


def test_a_client_that_disconnects_mid_stream_cancels_its_decoding(server: Server) -> None:
    before = cancelled_streams(server)
    with httpx.stream(
        "POST",
        f"{server.url}/v1/completions",
        headers={"Authorization": f"Bearer {server.key}"},
        json={"prompt": "long", "max_tokens": 1000, "stream": True},
    ) as response:
        lines = response.iter_lines()
        first = [next(lines) for _ in range(3)]
        assert first[0].startswith("data: ")
        json.loads(first[0][len("data: ") :])
    # the connection is closed: the server must stop decoding that request
    deadline = time.monotonic() + 10
    while cancelled_streams(server) <= before:
        assert time.monotonic() < deadline, "the stream was not cancelled"
        time.sleep(0.05)
    assert_still_serves(server)


def test_sigterm_lets_a_stream_in_flight_finish_then_exits(tmp_path: Path) -> None:
    generator_dir, _ = package(tmp_path)
    process, url = start_server(tmp_path, str(generator_dir), "--max-new-tokens", "1000")
    try:
        with httpx.stream(
            "POST",
            f"{url}/v1/completions",
            json={"prompt": "long", "max_tokens": 300, "stream": True, "temperature": 0},
            timeout=60,
        ) as response:
            lines = (line for line in response.iter_lines() if line)
            events = [next(lines)]  # the request is in flight: its first tokens arrived
            process.send_signal(signal.SIGTERM)
            events += list(lines)
        assert events[-1] == "data: [DONE]"
        chunks = [json.loads(event[len("data: ") :]) for event in events[:-1]]
        # every token came: the stream ran to max_tokens rather than being cut by draining
        assert chunks[-1]["choices"][0]["finish_reason"] == "length"
        assert process.wait(timeout=20) in (0, -signal.SIGTERM)
        with pytest.raises(httpx.TransportError):  # and then the port is closed
            httpx.get(f"{url}/healthz")
    finally:
        process.kill()


def test_a_tampered_artefact_stops_the_server_with_the_error(tmp_path: Path) -> None:
    generator_dir, _ = package(tmp_path)
    weights = next(p for p in (generator_dir / "component").rglob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    command = [sys.executable, "-m", "genarch.cli", "serve", str(generator_dir)]
    done = subprocess.run(
        [*command, "--port", str(free_port())], capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "IntegrityError" in done.stderr or "changed" in done.stderr, done.stderr
    assert weights.name in done.stderr
