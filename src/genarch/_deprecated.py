"""Old names kept for one release, each warning where its replacement lives.

Two tools, both for a module's ``__getattr__`` (PEP 562), so nothing is
imported or warned about until an old name is actually used:

* :func:`moved_module` — a module that was renamed or split: its names are
  forwarded to the new module with a :class:`DeprecationWarning`;
* :func:`renamed_names` — names inside a module that were renamed
  (``Sequence`` → ``Chain``).

The new module is imported by name on first use (``importlib``), so an old
module path adds no edge to the import graph.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["moved_module", "renamed_names"]


def moved_module(old: str, new: str | Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` forwarding every name of ``old`` to its new home.

    Args:
        old: the deprecated module's name (pass ``__name__``).
        new: the module that now holds the names, or ``{name: module}`` when a
            module was split in several.

    Examples:
        >>> getattr_ = moved_module("genarch.old_json", "json")
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     getattr_("dumps")([1])
        '[1]'
        >>> print(caught[0].message)
        genarch.old_json.dumps has moved; the old path goes in the next release: import dumps from json
    """

    def module_getattr(name: str) -> Any:
        target = new if isinstance(new, str) else new.get(name)
        if target is None or name.startswith("__"):
            raise AttributeError(f"module {old!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(target), name)
        warnings.warn(
            f"{old}.{name} has moved; the old path goes in the next release: "
            f"import {name} from {target}",
            DeprecationWarning,
            stacklevel=2,
        )
        return value

    return module_getattr


def renamed_names(module: str, renames: Mapping[str, tuple[str, str]]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for renamed names: ``{old: (new module, new name)}``.

    Examples:
        >>> getattr_ = renamed_names("genarch.example", {"loads_json": ("json", "loads")})
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     getattr_("loads_json")("[2]")
        [2]
        >>> print(caught[0].message)
        genarch.example.loads_json is deprecated and will be removed in the next release: use json.loads
    """

    def module_getattr(name: str) -> Any:
        if name not in renames:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        target, new_name = renames[name]
        warnings.warn(
            f"{module}.{name} is deprecated and will be removed in the next release: "
            f"use {target}.{new_name}",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(target), new_name)

    return module_getattr
