"""What the Ray runners share: joining a cluster, and the error a worker raised."""

from __future__ import annotations

from types import ModuleType

from genarch.distributed._ray import import_ray
from genarch.errors import ConfigError, GenarchError
from genarch.validation import describe


def check_address(address: object, where: str) -> str | None:
    """``None`` or a non-empty str, else :class:`~genarch.errors.ConfigError`."""
    if address is not None and (not isinstance(address, str) or not address.strip()):
        raise ConfigError(
            f"{where} expected address as a Ray address such as 'auto' or "
            f"'ray://head:10001' (or None for the Ray already started), got {describe(address)}"
        )
    return address


def connect_ray(address: str | None, where: str) -> ModuleType:
    """The ``ray`` module, connected: to ``address`` when this process has not connected yet.

    With ``address=None`` the Ray this process started or joined is used; genarch
    starts no Ray of its own.

    Raises:
        MissingDependencyError: Ray is not installed.
        ConfigError: no Ray is running in this process and no ``address`` was given.
    """
    ray = import_ray(where)
    if not ray.is_initialized():
        if address is None:
            raise ConfigError(
                f"{where} found no Ray in this process: start one with ray.init() (local) "
                "or ray.init(address=...), or pass address='auto' | 'ray://head:10001' "
                "to join an existing cluster"
            )
        ray.init(address=address)
    return ray


def genarch_cause(error: BaseException) -> BaseException:
    """The :class:`~genarch.errors.GenarchError` a worker raised inside ``error``, else ``error``.

    Ray wraps an exception raised on a worker (``RayTaskError``, Ray Data's
    ``UserCodeException``); the caller should see the genarch error itself.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, GenarchError):
            return current
        cause = getattr(current, "cause", None)
        current = cause if isinstance(cause, BaseException) else current.__cause__
    return error
