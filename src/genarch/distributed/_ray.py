"""Import Ray once, with the install hint when it is missing."""

from __future__ import annotations

from types import ModuleType

from genarch.errors import missing_dependency


def import_ray(purpose: str) -> ModuleType:
    """The ``ray`` module, or :class:`~genarch.errors.MissingDependencyError` naming ``purpose``.

    Args:
        purpose: what the caller was doing, for the message
            (e.g. ``"RayRunner"``); the error says ``pip install 'genarch[ray]'``.
    """
    try:
        import ray
    except ImportError:
        raise missing_dependency("ray", "ray", purpose) from None
    return ray
