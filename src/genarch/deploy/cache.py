"""A response cache for deterministic text requests: LRU within a byte budget.

Only a request whose answer is fixed may be cached: a greedy one
(``temperature == 0``) or a seeded one (``seed`` set). Unseeded sampling
must give fresh text on every call, so :func:`is_deterministic` keeps it out,
both when storing and when looking up.

The key is SHA-256 of the model version and the request's canonical JSON
(every field, sorted keys, no whitespace; :func:`canonical_json`), so two
requests share an answer only when every field — sampling settings, stop
conditions, log-probabilities — is the same, and a new model version never
sees the old one's answers. An entry's size is the UTF-8 length of its
result's JSON; the least recently used entries are evicted to stay within
``max_bytes``, and a result larger than the whole budget is not stored.

Examples:
    >>> from genarch.schemas import TextRequest, TextResult
    >>> cache = ResponseCache(max_bytes=10_000)
    >>> request = TextRequest(prompt="Hi", temperature=0)
    >>> cache.put("m@1", request, TextResult(text="!"))
    True
    >>> cache.get("m@1", request).text, cache.get("m@2", request)
    ('!', None)
    >>> cache.put("m@1", TextRequest(prompt="Hi"), TextResult(text="?"))  # unseeded sampling
    False
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict

from genarch.errors import ConfigError
from genarch.schemas import TextRequest, TextResult

__all__ = ["ResponseCache", "cache_key", "canonical_json", "is_deterministic"]


def canonical_json(request: TextRequest) -> str:
    """Every field of ``request`` as JSON with sorted keys and no whitespace."""
    return json.dumps(
        request.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )


def is_deterministic(request: TextRequest) -> bool:
    """Whether ``request`` always gets the same answer: greedy, or seeded."""
    return request.temperature == 0 or request.seed is not None


def cache_key(model_version: str, request: TextRequest) -> str:
    """SHA-256 (hex) of the model version and the request's canonical JSON."""
    material = f"{model_version}\0{canonical_json(request)}".encode()
    return hashlib.sha256(material).hexdigest()


class ResponseCache:
    """Results of deterministic requests, least recently used evicted first.

    Thread-safe. Several services may share one cache: keys include the model
    version.

    Args:
        max_bytes: the budget for the stored results' JSON (> 0).

    Raises:
        ConfigError: ``max_bytes`` is not a positive int.
    """

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
            raise ConfigError(f"ResponseCache: max_bytes must be a positive int, got {max_bytes!r}")
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, tuple[TextResult, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ResponseCache({len(self)} entries, {self._bytes}/{self.max_bytes} bytes)"

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    @property
    def size_bytes(self) -> int:
        """The bytes the stored results take (their JSON)."""
        with self._lock:
            return self._bytes

    def get(self, model_version: str, request: TextRequest) -> TextResult | None:
        """The stored result for ``request`` on ``model_version``, or ``None``.

        Always ``None`` for a request that is not deterministic.
        """
        if not is_deterministic(request):
            return None
        key = cache_key(model_version, request)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, model_version: str, request: TextRequest, result: TextResult) -> bool:
        """Store ``result`` for ``request``; return whether it was stored.

        Not stored: a request that is not deterministic, or a result larger
        than the whole budget.
        """
        if not is_deterministic(request):
            return False
        size = len(result.model_dump_json().encode("utf-8"))
        if size > self.max_bytes:
            return False
        key = cache_key(model_version, request)
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._entries[key] = (result, size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, evicted) = self._entries.popitem(last=False)
                self._bytes -= evicted
        return True

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0
