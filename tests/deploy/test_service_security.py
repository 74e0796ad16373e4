"""API keys (hashes only, scopes, revocation) and per-key token buckets with a fake clock."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import pytest

from genarch.deploy.keys import ApiKeyStore
from genarch.deploy.limits import RateLimiter, TokenBucket
from genarch.deploy.service import GenerationService
from genarch.deploy.serving_errors import AuthenticationError, AuthorizationError, RateLimitError
from genarch.errors import (
    ConfigError,
    GenarchError,
    IntegrityError,
    InvalidInputError,
    NotFoundError,
)
from genarch.schemas import TextRequest, TextResult


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Echo:
    def generate(self, request: TextRequest) -> TextResult:
        return TextResult(text=request.prompt)

    def generate_batch(self, requests: Sequence[TextRequest]) -> list[TextResult]:
        return [self.generate(r) for r in requests]


@pytest.fixture
def store(tmp_path: Path) -> ApiKeyStore:
    return ApiKeyStore(tmp_path / "keys.json")


# ---------------------------------------------------------------------- keys


def test_the_key_file_holds_salted_hashes_never_the_key(store: ApiKeyStore) -> None:
    first = store.create_key("alice", ["generate"])
    second = store.create_key("bob", ["generate"])
    text = store.path.read_text()
    secret = first.split("_", 2)[2]  # the secret itself may hold "_" (token_urlsafe)
    assert len(secret) >= 43
    assert first not in text
    assert secret not in text
    records = json.loads(text)["keys"]
    assert {r["name"] for r in records} == {"alice", "bob"}
    assert records[0]["salt"] != records[1]["salt"]
    assert all(len(bytes.fromhex(r["hash"])) == 32 for r in records)
    assert (store.path.stat().st_mode & 0o777) == 0o600
    assert first != second


def test_a_valid_key_with_its_scope_authenticates(store: ApiKeyStore) -> None:
    key = store.create_key("alice", ["generate", "embed"])
    assert store.authenticate(key, "embed").name == "alice"


@pytest.mark.parametrize(
    "wrong",
    [None, "", "not-a-key", "gk_0123456789abcdef_" + "A" * 43],
)
def test_a_missing_malformed_or_unknown_key_is_refused_as_401(
    store: ApiKeyStore, wrong: str | None
) -> None:
    store.create_key("alice", ["generate"])
    with pytest.raises(AuthenticationError):
        store.authenticate(wrong, "generate")


def test_a_wrong_secret_for_a_known_id_is_refused(store: ApiKeyStore) -> None:
    key = store.create_key("alice", ["generate"])
    tampered = key[:-1] + ("A" if key[-1] != "A" else "B")
    with pytest.raises(AuthenticationError, match="invalid API key") as caught:
        store.authenticate(tampered, "generate")
    assert tampered not in str(caught.value)


def test_a_key_without_the_scope_is_refused_as_403(store: ApiKeyStore) -> None:
    key = store.create_key("reader", ["embed"])
    with pytest.raises(AuthorizationError, match="'generate'") as caught:
        store.authenticate(key, "generate")
    assert caught.value.scope == "generate"
    assert not isinstance(caught.value, AuthenticationError)


def test_a_revoked_key_is_refused_also_by_another_store_on_the_same_file(
    store: ApiKeyStore,
) -> None:
    key = store.create_key("alice", ["generate"])
    serving = ApiKeyStore(store.path)  # e.g. the server process
    assert serving.authenticate(key, "generate").name == "alice"
    revoked = store.revoke("alice")
    assert revoked.revoked_at is not None
    with pytest.raises(AuthenticationError, match="revoked"):
        serving.authenticate(key, "generate")
    with pytest.raises(NotFoundError):
        store.revoke("alice")
    assert store.create_key("alice", ["generate"])  # the name is free again


def test_create_key_validates_name_and_scopes(store: ApiKeyStore) -> None:
    for scopes in ([], ["root"], ["embed", "embed"], "generate"):
        with pytest.raises(InvalidInputError, match="scope"):
            store.create_key("x", scopes)
    with pytest.raises(InvalidInputError, match="name"):
        store.create_key("has space", ["embed"])
    store.create_key("alice", ["embed"])
    with pytest.raises(InvalidInputError, match="already has a key"):
        store.create_key("alice", ["embed"])


def test_a_corrupt_key_file_raises_integrity_error(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text("{not json")
    with pytest.raises(IntegrityError, match="keys.json"):
        ApiKeyStore(path).authenticate("gk_0123456789abcdef_" + "A" * 43, "generate")


def test_the_service_authenticates_every_call(store: ApiKeyStore) -> None:
    key = store.create_key("app", ["generate"])
    embed_only = store.create_key("indexer", ["embed"])
    with GenerationService(Echo(), keys=store, max_wait_ms=0) as service:
        assert service.generate(TextRequest(prompt="hi"), api_key=key).text == "hi"
        with pytest.raises(AuthenticationError):
            service.generate(TextRequest(prompt="hi"))
        with pytest.raises(AuthorizationError):
            service.generate(TextRequest(prompt="hi"), api_key=embed_only)
        errors = service.metrics.snapshot()["genarch_errors_total"]["values"]
    assert errors == {
        '{service="generate",type="AuthenticationError"}': 1,
        '{service="generate",type="AuthorizationError"}': 1,
    }


# -------------------------------------------------------------------- limits


def test_a_token_bucket_refills_at_its_rate_up_to_its_capacity() -> None:
    clock = FakeClock()
    bucket = TokenBucket(capacity=10, rate=2, clock=clock)
    bucket.take(10)
    assert bucket.wait_for(4) == pytest.approx(2.0)
    clock.now += 1.5
    assert bucket.available() == pytest.approx(3.0)
    clock.now += 100
    assert bucket.available() == 10
    assert math.isinf(bucket.wait_for(11))


def test_the_request_limit_refuses_with_retry_after_and_recovers() -> None:
    clock = FakeClock()
    limiter = RateLimiter(requests_per_second=2, request_burst=3, clock=clock)
    for _ in range(3):
        limiter.acquire("k")
    with pytest.raises(RateLimitError) as caught:
        limiter.acquire("k")
    assert caught.value.limit == "requests"
    assert caught.value.retry_after == pytest.approx(0.5)
    limiter.acquire("other")  # buckets are per key
    clock.now += caught.value.retry_after
    limiter.acquire("k")


def test_the_token_limit_refuses_costly_requests_and_a_refusal_costs_nothing() -> None:
    clock = FakeClock()
    limiter = RateLimiter(
        requests_per_second=100, tokens_per_second=10, token_burst=50, clock=clock
    )
    limiter.acquire("k", tokens=40)
    with pytest.raises(RateLimitError) as caught:
        limiter.acquire("k", tokens=20)
    assert (caught.value.limit, caught.value.retry_after) == ("tokens", pytest.approx(1.0))
    limiter.acquire("k", tokens=10)  # the refused call took nothing
    with pytest.raises(InvalidInputError, match="token_burst"):
        limiter.acquire("k", tokens=51)  # could never be paid


def test_limiter_settings_are_validated() -> None:
    for bad in (0, -1, math.inf, math.nan, True):
        with pytest.raises(ConfigError, match="requests_per_second"):
            RateLimiter(requests_per_second=bad)


def test_the_service_charges_each_key_and_reports_retry_after(store: ApiKeyStore) -> None:
    clock = FakeClock()
    limiter = RateLimiter(requests_per_second=1, request_burst=2, clock=clock)
    key = store.create_key("app", ["generate"])
    other = store.create_key("app2", ["generate"])
    with GenerationService(Echo(), keys=store, limiter=limiter, max_wait_ms=0) as service:
        request = TextRequest(prompt="hi", max_new_tokens=1)
        service.generate(request, api_key=key)
        service.generate(request, api_key=key)
        with pytest.raises(RateLimitError) as caught:
            service.generate(request, api_key=key)
        assert caught.value.retry_after == pytest.approx(1.0)
        assert isinstance(caught.value, GenarchError)
        service.generate(request, api_key=other)  # another key has its own bucket
        clock.now += 1
        assert service.generate(request, api_key=key).text == "hi"
