"""The HTTP layer in process (FastAPI's TestClient): error mapping, 503 when closed, lazy import."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Sequence

import pytest
from fastapi.testclient import TestClient

from genarch.deploy import GenerationService, TokenStream, create_app
from genarch.deploy.http_errors import describe_failure
from genarch.deploy.http_startup import LoadingApp
from genarch.deploy.serving_errors import CapExceededError, RateLimitError
from genarch.deploy.streams import StreamState
from genarch.errors import InvalidInputError, MissingDependencyError
from genarch.orchestration.chat_template import ChatTemplate
from genarch.schemas import TextRequest, TextResult


class Echo:
    """Answers with the prompt reversed."""

    def generate(self, request: TextRequest) -> TextResult:
        return TextResult(text=request.prompt[::-1], finish_reason="stop")

    def generate_batch(self, requests: Sequence[TextRequest]) -> list[TextResult]:
        return [self.generate(r) for r in requests]


def test_closing_a_stream_wakes_a_reader_blocked_on_another_thread() -> None:
    stream = TokenStream(StreamState())
    got: list[list[str]] = []
    reader = threading.Thread(target=lambda: got.append(list(stream)))
    reader.start()
    time.sleep(0.05)  # let the reader block in next()
    stream.close()
    reader.join(timeout=5)
    assert not reader.is_alive()
    assert got == [[]]


def test_without_fastapi_create_app_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fastapi", None)
    with (
        GenerationService(Echo(), max_wait_ms=0) as service,
        pytest.raises(MissingDependencyError, match=r"genarch\[serve\]"),
    ):
        create_app(service)


def test_rate_limits_give_whole_seconds_in_retry_after() -> None:
    status, body, headers = describe_failure(
        RateLimitError("slow", retry_after=0.2, limit="requests")
    )
    assert (status, headers["Retry-After"], body["error"]["type"]) == (429, "1", "rate_limit_error")
    status, _, _ = describe_failure(CapExceededError("max_body_bytes", 10, 20, "body"))
    assert status == 413


def test_an_unexpected_error_is_a_500_without_details() -> None:
    status, body, _ = describe_failure(RuntimeError("secret internals"))
    assert status == 500
    assert "secret" not in body["error"]["message"]


def test_chat_uses_the_template_and_a_closed_service_is_503() -> None:
    service = GenerationService(Echo(), max_wait_ms=0)
    app = create_app(service, model_name="echo", chat_template=ChatTemplate(assistant="A:"))
    with TestClient(app) as client:
        chat = client.post(
            "/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]}
        )
        assert chat.status_code == 200
        assert chat.json()["choices"][0]["message"]["content"].startswith(":A")
        service.close()
        assert client.get("/readyz").status_code == 503
        refused = client.post("/v1/completions", json={"prompt": "a"})
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "draining"
        assert client.get("/healthz").status_code == 200


def test_without_a_chat_template_chat_is_404_and_completions_still_work() -> None:
    service = GenerationService(Echo(), max_wait_ms=0)
    with TestClient(create_app(service)) as client:  # closes the service on exit
        missing = client.post(
            "/v1/chat/completions", json={"messages": [{"role": "user", "content": "a"}]}
        )
        assert missing.status_code == 404
        assert (
            client.post("/v1/completions", json={"prompt": "ab"}).json()["choices"][0]["text"]
            == "ba"
        )


# ------------------------------------------------------- 503 while loading


def test_while_loading_the_server_is_alive_not_ready_and_routes_are_503() -> None:
    loading = LoadingApp(retry_after_s=2)
    with TestClient(loading) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert (ready.status_code, ready.json()["status"]) == (503, "loading")
        refused = client.post("/v1/completions", json={"prompt": "ab"})
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "2"
        assert refused.json()["error"]["code"] == "model_loading"
        assert refused.json()["error"]["type"] == "service_unavailable"

        service = GenerationService(Echo(), max_wait_ms=0)
        app = create_app(service, close_on_shutdown=False)
        loading.serve(app, close=app.state.close_services)
        assert loading.status == "serving"
        assert client.get("/readyz").status_code == 200
        answer = client.post("/v1/completions", json={"prompt": "ab"})
        assert answer.json()["choices"][0]["text"] == "ba"
    # the lifespan's shutdown closed the real app's services
    assert not service.health().ready


def test_a_failed_load_says_so_and_cannot_be_served_afterwards() -> None:
    loading = LoadingApp()
    loading.fail(RuntimeError("weights.safetensors changed"))
    with TestClient(loading) as client:
        assert client.get("/readyz").json()["status"] == "failed"
        refused = client.post("/v1/completions", json={"prompt": "ab"})
        assert refused.json()["error"]["code"] == "model_load_failed"
        assert "weights.safetensors changed" in refused.json()["error"]["message"]
    service = GenerationService(Echo(), max_wait_ms=0)
    with pytest.raises(InvalidInputError, match="already failed"):
        loading.serve(create_app(service))
    service.close()


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "1"])
def test_loading_app_refuses_a_bad_retry_after(bad: object) -> None:
    with pytest.raises(InvalidInputError, match="retry_after_s"):
        LoadingApp(retry_after_s=bad)  # type: ignore[arg-type]
