"""The configs and health record of the serving core.

Configs are frozen :class:`~genarch.schemas.Config`\\ s: a value out of range
or an unknown field raises :class:`~genarch.errors.ConfigError` naming it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from genarch.schemas import Config, Record

__all__ = ["EmbeddingServiceConfig", "GenerationServiceConfig", "ServiceHealth"]


class GenerationServiceConfig(Config):
    """Batching, caps, caching and redaction of a :class:`~genarch.deploy.GenerationService`.

    Attributes:
        max_batch: slots: the most requests decoded together (a running
            stream holds one slot).
        max_wait_ms: how long the oldest queued request waits for companions
            before its micro-batch starts (0: start at once). With continuous
            batching only an idle service waits; a running batch takes new
            requests at its next step.
        continuous_batching: decode in the generator's
            :class:`~genarch.protocols.DecodingSession` when it has one
            (:class:`~genarch.protocols.ContinuousBatchingGenerator`): requests
            join the running batch between steps and a finished one frees its
            slot at once. ``False`` keeps request-level micro-batches.
        max_prompt_tokens: cap on a prompt's tokens.
        max_new_tokens: cap on a request's ``max_new_tokens``.
        max_body_bytes: cap on a request's size: the UTF-8 length of its
            canonical JSON (an HTTP layer checks the raw body against it too).
        max_batch_size: cap on the requests of one ``invoke_batch`` call.
        cache_bytes: the response cache's budget; 0 turns caching off.
        redact_prompts: replace PII in prompts before they reach the model.
        redact_outputs: replace PII in generated text before it is returned.
    """

    max_batch: Annotated[int, Field(ge=1, le=4096)] = 8
    max_wait_ms: Annotated[float, Field(ge=0, le=60_000, allow_inf_nan=False)] = 5.0
    continuous_batching: bool = True
    max_prompt_tokens: Annotated[int, Field(ge=1)] = 4096
    max_new_tokens: Annotated[int, Field(ge=0)] = 512
    max_body_bytes: Annotated[int, Field(ge=1)] = 1_000_000
    max_batch_size: Annotated[int, Field(ge=1)] = 64
    cache_bytes: Annotated[int, Field(ge=0)] = 0
    redact_prompts: bool = False
    redact_outputs: bool = False


class EmbeddingServiceConfig(Config):
    """Batching, caps and redaction of an :class:`~genarch.deploy.EmbeddingService`.

    Attributes:
        max_batch: the most items extracted together (several requests' items
            share one ``extract`` call).
        max_wait_ms: how long the oldest queued request waits for companions.
        max_items: cap on the items of one request.
        max_item_chars: cap on the characters of one item.
        max_body_bytes: cap on a request's size (the UTF-8 length of its
            items as a JSON list).
        redact_inputs: replace PII in items before they are embedded.
    """

    max_batch: Annotated[int, Field(ge=1, le=65_536)] = 64
    max_wait_ms: Annotated[float, Field(ge=0, le=60_000, allow_inf_nan=False)] = 5.0
    max_items: Annotated[int, Field(ge=1)] = 256
    max_item_chars: Annotated[int, Field(ge=1)] = 100_000
    max_body_bytes: Annotated[int, Field(ge=1)] = 4_000_000
    redact_inputs: bool = False


class ServiceHealth(Record):
    """What a service's ``health()`` reports; satisfies :class:`~genarch.protocols.HealthStatus`.

    Attributes:
        ready: ``True`` while the service takes requests.
        status: ``"ready"``, ``"draining"`` (closing, finishing what it holds)
            or ``"closed"``.
        component: the served component's class name.
        model_version: the version responses are cached under.
        queued: requests waiting for a slot.
        busy_slots: slots held by running requests.
        requests: requests answered so far (cache hits included).
        failures: requests that raised (refusals included).
    """

    ready: bool
    status: Literal["ready", "draining", "closed"]
    component: str
    model_version: str
    queued: Annotated[int, Field(ge=0)] = 0
    busy_slots: Annotated[int, Field(ge=0)] = 0
    requests: Annotated[int, Field(ge=0)] = 0
    failures: Annotated[int, Field(ge=0)] = 0
