"""The base of every record and config, and the helpers records share.

:class:`Record` (frozen, no unknown fields, :class:`~genarch.errors.InvalidInputError`
on bad values), :class:`Config` (the same with :class:`~genarch.errors.ConfigError`),
the flat :data:`Metadata` type and :func:`describe_validation_error`. Import
them from :mod:`genarch.schemas`.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationError

from genarch.errors import ConfigError, InvalidInputError

__all__ = [
    "Config",
    "Metadata",
    "MetadataValue",
    "Record",
    "describe_validation_error",
    "utc_now",
]

MetadataValue = str | int | float | bool | None
"""A metadata value: a JSON scalar, so metadata can be filtered and stored in SQLite."""

Metadata = dict[str, MetadataValue]
"""Flat metadata attached to documents, chunks, vectors and feedback."""


def describe_validation_error(name: str, error: ValidationError) -> str:
    """Turn a pydantic ``ValidationError`` into one readable sentence per problem."""
    parts = []
    for item in error.errors():
        cause = (item.get("ctx") or {}).get("error")
        if isinstance(cause, InvalidInputError):  # a genarch message already: keep it as it is
            parts.append(str(cause))
            continue
        location = ".".join(str(part) for part in item["loc"]) or "(record)"
        value = item.get("input")
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        parts.append(f"{name}.{location}: {item['msg']} (got {shown})")
    return "; ".join(parts)


class Record(BaseModel):
    """Base of every genarch record and config: frozen, no unknown fields.

    Validation problems raise :class:`~genarch.errors.InvalidInputError`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)
    _error: ClassVar[type[InvalidInputError]] = InvalidInputError

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as error:
            raise self._error(describe_validation_error(type(self).__name__, error)) from None

    @classmethod
    def parse(cls, data: Mapping[str, Any] | str | bytes) -> Self:
        """Validate a mapping or a JSON document into this record.

        Raises:
            InvalidInputError: the data does not describe a valid record.
        """
        try:
            if isinstance(data, str | bytes):
                return cls.model_validate_json(data)
            return cls.model_validate(data)
        except ValidationError as error:
            raise cls._error(describe_validation_error(cls.__name__, error)) from None


class Config(Record):
    """Base of every component configuration: like :class:`Record`, but bad values
    raise :class:`~genarch.errors.ConfigError`.

    Examples:
        >>> class ChunkerConfig(Config):
        ...     max_tokens: int = 256
        >>> ChunkerConfig(max_tokens="many")
        Traceback (most recent call last):
        ...
        genarch.errors.ConfigError: ChunkerConfig.max_tokens: Input should be a valid integer, unable to parse string as an integer (got 'many')
    """

    _error: ClassVar[type[InvalidInputError]] = ConfigError

    @classmethod
    def resolve(
        cls, config: BaseModel | Mapping[str, Any] | None, fields: Mapping[str, Any]
    ) -> Self:
        """The config a component constructor was given: a config object *or* keyword fields.

        Components accept ``Component(config)`` and ``Component(field=value, ...)``
        as shorthand; this turns either into a validated config and refuses both at once.

        Raises:
            ConfigError: both were given, or the result is not a valid config.

        Examples:
            >>> class SizeConfig(Config):
            ...     size: int = 1
            >>> SizeConfig.resolve(None, {"size": 3}).size
            3
        """
        if config is not None and fields:
            raise ConfigError(f"pass either a {cls.__name__} or keyword fields, not both")
        return cls.coerce(config if config is not None else fields)

    @classmethod
    def coerce(cls, config: BaseModel | Mapping[str, Any]) -> Self:
        """Accept this config, another pydantic model with the same fields, or a mapping.

        This is what a component's ``from_config`` needs: a config object, or
        the plain data a saved pipeline holds.

        Raises:
            ConfigError: the data does not describe a valid config.
        """
        if isinstance(config, cls):
            return config
        if isinstance(config, BaseModel):
            config = config.model_dump()
        if not isinstance(config, Mapping):
            raise ConfigError(f"{cls.__name__} expected a mapping, got {type(config).__name__}")
        return cls.parse(config)


def utc_now() -> _dt.datetime:
    """The current time, timezone-aware, in UTC (the default of every ``created_at``)."""
    return _dt.datetime.now(_dt.UTC)
