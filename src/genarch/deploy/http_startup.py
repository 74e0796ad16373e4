"""Open the port at once, answer 503 while the model loads, then serve.

Verifying and loading an artefact takes from milliseconds to minutes. A
server that opens its port only afterwards looks *dead* to a process
manager in the meantime (connection refused), and one that opens it before
has nothing to answer with. :class:`LoadingApp` is the ASGI app that
``genarch serve`` hands uvicorn first:

* while loading, ``GET /healthz`` answers 200 (the process is alive),
  ``GET /readyz`` 503 ``{"ready": false, "status": "loading"}``, and every
  other route 503 in OpenAI's error shape with code ``model_loading`` and
  ``Retry-After`` — which genarch's own clients and the ``openai`` package
  retry;
* once :meth:`LoadingApp.serve` receives the real app (from
  :func:`~genarch.deploy.http.create_app`), every request goes to it;
* when loading fails (:meth:`LoadingApp.fail`), ``/readyz`` says
  ``"failed"`` and the routes 503 with code ``model_load_failed`` until the
  caller stops the server (``genarch serve`` exits with the error).

On shutdown (uvicorn's lifespan, after in-flight requests finished) it
closes the real app's services, draining what is still queued.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from genarch.deploy.http_errors import json_response
from genarch.deploy.http_models import error_body
from genarch.errors import InvalidInputError

__all__ = ["LoadingApp"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class LoadingApp:
    """An ASGI app that answers 503 until :meth:`serve` gives it the real app.

    Args:
        retry_after_s: the ``Retry-After`` seconds of the 503 while loading.

    Examples:
        >>> app = LoadingApp()
        >>> app.status
        'loading'
    """

    def __init__(self, retry_after_s: int = 1) -> None:
        if isinstance(retry_after_s, bool) or not isinstance(retry_after_s, int):
            raise InvalidInputError(f"retry_after_s must be an int, got {retry_after_s!r}")
        if retry_after_s < 1:
            raise InvalidInputError(f"retry_after_s must be >= 1, got {retry_after_s}")
        self.retry_after_s = retry_after_s
        self._lock = threading.Lock()
        self._app: ASGIApp | None = None
        self._close: Callable[[], None] | None = None
        self.error: BaseException | None = None

    @property
    def status(self) -> str:
        """``"loading"``, ``"serving"`` or ``"failed"``."""
        with self._lock:
            return self._status()

    def _status(self) -> str:
        if self._app is not None:
            return "serving"
        return "failed" if self.error is not None else "loading"

    def serve(self, app: ASGIApp, close: Callable[[], None] | None = None) -> None:
        """Route every request to ``app`` from now on; ``close`` runs at shutdown.

        Raises:
            InvalidInputError: ``app`` is not callable, or the app already serves or failed.
        """
        if not callable(app):
            raise InvalidInputError(f"serve: app must be an ASGI app, got {app!r}")
        with self._lock:
            if self._app is not None or self.error is not None:
                raise InvalidInputError(f"serve: the app is already {self._status()}")
            self._app, self._close = app, close

    def fail(self, error: BaseException) -> None:
        """Record that loading failed: ``/readyz`` and the routes say so from now on."""
        with self._lock:
            if self._app is None:
                self.error = error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        app = self._app
        if app is not None:
            await app(scope, receive, send)
        elif scope["type"] == "http":
            await self._waiting(scope["path"])(scope, receive, send)

    def _waiting(self, path: str) -> Any:
        """The response while there is no model to serve."""
        status = self.status
        if path == "/healthz":
            return json_response({"status": "ok"})
        if path == "/readyz":
            return json_response({"ready": False, "status": status, "services": []}, 503)
        if status == "failed":
            message, code = f"the model failed to load: {self.error}", "model_load_failed"
        else:
            message, code = "the model is still loading; retry shortly", "model_loading"
        headers = {"Retry-After": str(self.retry_after_s)}
        return json_response(error_body(message, "service_unavailable", code), 503, headers)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                close = self._close
                if close is not None:
                    await asyncio.to_thread(close)
                await send({"type": "lifespan.shutdown.complete"})
                return
