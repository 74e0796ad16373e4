"""The one config shell every configurable component shares.

A genarch component is built from a frozen :class:`~genarch.schemas.Config`
and exposes it back: ``Component(config)`` or ``Component(field=value)`` as
shorthand, ``component.config``, ``Component.from_config(mapping)`` (what a
saved pipeline calls) and a ``repr`` that shows the config. Twenty components
used to repeat that shell by hand and the copies drifted (some silently dropped
keyword fields when a config was also passed); now each inherits it from
:class:`Configured`, one generic base with no further levels::

    class TextCleaner(Configured[TextCleanerConfig]):
        def process(self, items): ...

Why a base class and not composition: the shell *is* the component's public
face (``config``, ``from_config``), and a base of four members with no state
beyond ``_config`` and no hooks is the smallest way to give every component
the same face. It is deliberately the only level: components never inherit
from one another (see the style notes, "no inheritance towers").

Components that take more than a config (a tokenizer, a tenant) define their
own ``__init__`` and call ``Configured.__init__(self, config, **fields)``
first; ``torch.nn.Module`` subclasses list ``nn.Module`` first, so its
``__repr__`` (the layer tree) wins.

Examples:
    >>> from genarch.schemas import Config
    >>> class GreeterConfig(Config):
    ...     greeting: str = "hello"
    >>> class Greeter(Configured[GreeterConfig]):
    ...     def greet(self, name: str) -> str:
    ...         return f"{self.config.greeting}, {name}"
    >>> Greeter(greeting="hi").greet("Ada")
    'hi, Ada'
    >>> Greeter.from_config({"greeting": "ahoy"})
    Greeter(GreeterConfig(greeting='ahoy'))
    >>> Greeter(GreeterConfig(), greeting="hi")
    Traceback (most recent call last):
    ...
    genarch.errors.ConfigError: pass either a GreeterConfig or keyword fields, not both
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Generic, Self, TypeVar, cast, get_args, get_origin

from pydantic import BaseModel

from genarch.schemas import Config

__all__ = ["Configured"]

C = TypeVar("C", bound=Config)


class Configured(Generic[C]):
    """Base of every configurable component: stores and exposes a frozen config.

    Subclass it as ``Configured[MyConfig]``; the config class is read from that
    parameter (``config_type``), so it is written once.

    Args:
        config: a config object, or a mapping of its fields.
        **fields: shorthand for the config's fields (not together with ``config``).

    Raises:
        ConfigError: both a config and fields were given, or the values are invalid.
    """

    config_type: ClassVar[type[Config]]
    _config: C

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for base in getattr(cls, "__orig_bases__", ()):
            if get_origin(base) is Configured:
                (parameter,) = get_args(base)
                if isinstance(parameter, type) and issubclass(parameter, Config):
                    cls.config_type = parameter

    def __init__(self, config: C | Mapping[str, Any] | None = None, **fields: Any) -> None:
        self._config = cast(C, type(self).config_type.resolve(config, fields))

    @property
    def config(self) -> C:
        """The frozen configuration."""
        return self._config

    @classmethod
    def from_config(cls, config: BaseModel | Mapping[str, Any]) -> Self:
        """Build from a config object or a mapping (as a saved pipeline holds).

        Raises:
            ConfigError: unknown or invalid fields.
        """
        return cls(cast(C, cls.config_type.coerce(config)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._config!r})"
