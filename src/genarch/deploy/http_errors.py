"""Errors of the HTTP layer: every failure becomes OpenAI's JSON error shape and a status.

=====================================  ======  ===============================
error                                  status  ``type`` / ``code``
=====================================  ======  ===============================
body not JSON                          400     invalid_request_error / invalid_json
body of the wrong shape or types       422     invalid_request_error / invalid_type
:class:`InvalidInputError`             400     invalid_request_error / invalid_value
:class:`CapExceededError`              400     invalid_request_error / cap_exceeded
... on ``max_body_bytes``              413     invalid_request_error / request_too_large
:class:`AuthenticationError`           401     authentication_error / invalid_api_key
:class:`AuthorizationError`            403     permission_error / insufficient_scope
unknown model, route or response id    404     not_found_error / ..._not_found
:class:`RateLimitError`                429     rate_limit_error / rate_limit_exceeded
                                               (with ``Retry-After``, whole seconds)
:class:`ServiceClosedError`            503     service_unavailable / draining
anything else                          500     server_error (message without details)
=====================================  ======  ===============================

Messages never contain an API key; the details of a 500 go to the server's
log (the error's class and message, never the request body).
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from genarch.deploy.http_models import error_body
from genarch.deploy.serving_errors import (
    AuthenticationError,
    AuthorizationError,
    CapExceededError,
    RateLimitError,
    ServiceClosedError,
)
from genarch.errors import InvalidInputError, NotFoundError

if TYPE_CHECKING:
    from fastapi.responses import Response

__all__ = ["HttpError", "describe_failure", "json_response"]

LOG = logging.getLogger("genarch.deploy.http")

# the HTTP field a service cap is about
_CAP_PARAMS = {
    "max_new_tokens": "max_tokens",
    "max_prompt_tokens": "prompt",
    "max_body_bytes": None,
    "max_items": "input",
    "max_item_chars": "input",
    "max_batch_size": "n",
}


class HttpError(Exception):
    """An error the HTTP layer raises itself, with its status and OpenAI ``type``/``code``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.code = code
        self.param = param


def _validation_message(error: ValidationError) -> tuple[str, str | None]:
    problems = error.errors(include_input=False, include_url=False)
    parts = [f"{'.'.join(map(str, p['loc'])) or 'body'}: {p['msg']}" for p in problems[:5]]
    first = problems[0]["loc"] if problems else ()
    param = ".".join(map(str, first)) or None
    return "invalid request body: " + "; ".join(parts), param


def describe_failure(error: BaseException) -> tuple[int, dict[str, Any], dict[str, str]]:
    """``(status, OpenAI error body, extra headers)`` for ``error``."""
    headers: dict[str, str] = {}
    if isinstance(error, HttpError):
        body = error_body(str(error), error.type, error.code, error.param)
        return error.status, body, headers
    if isinstance(error, ValidationError):
        message, param = _validation_message(error)
        return 422, error_body(message, "invalid_request_error", "invalid_type", param), headers
    if isinstance(error, AuthenticationError):
        return 401, error_body(str(error), "authentication_error", "invalid_api_key"), headers
    if isinstance(error, AuthorizationError):
        return 403, error_body(str(error), "permission_error", "insufficient_scope"), headers
    if isinstance(error, RateLimitError):
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
        return 429, error_body(str(error), "rate_limit_error", "rate_limit_exceeded"), headers
    if isinstance(error, ServiceClosedError):
        return 503, error_body(str(error), "service_unavailable", "draining"), headers
    if isinstance(error, CapExceededError):
        if error.cap == "max_body_bytes":
            body = error_body(str(error), "invalid_request_error", "request_too_large")
            return 413, body, headers
        param = _CAP_PARAMS.get(error.cap, error.cap)
        return 400, error_body(str(error), "invalid_request_error", "cap_exceeded", param), headers
    if isinstance(error, NotFoundError):
        return 404, error_body(str(error), "not_found_error", "not_found"), headers
    if isinstance(error, InvalidInputError):
        return 400, error_body(str(error), "invalid_request_error", "invalid_value"), headers
    LOG.error("internal error answering a request: %s: %s", type(error).__name__, error)
    body = error_body("the server failed to answer this request", "server_error", "internal_error")
    return 500, body, headers


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response (FastAPI imported only when a server runs)."""
    from fastapi.responses import JSONResponse

    return JSONResponse(body, status_code=status, headers=headers)
