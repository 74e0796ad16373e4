"""Does one declared type fit another? The check behind pipeline assembly.

This is a small structural subset of what a static type checker does, enough
for the element types that flow between pipeline stages:

* ``Any`` and ``object`` accept everything; an unknown (``Any``) source fits anywhere.
* classes by subclassing, generics by origin (``list`` fits ``Iterable``) and
  then argument by argument (``list[Chunk]`` fits ``Iterable[Chunk]``, but not
  ``Iterable[Document]``); read-only containers are treated as covariant.
* unions: a source union must fit entirely, a target union needs one member.
* type variables on the receiving side are bound to what arrives (respecting
  bounds and constraints), so ``Shuffle[T]`` passes the type through.
"""

from __future__ import annotations

import collections.abc as cabc
import logging
import types
import typing
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

Bindings = dict[TypeVar, Any]

_NONE = type(None)


def type_name(tp: Any) -> str:
    """A short readable name: ``Iterable[Chunk]`` rather than ``collections.abc.Iterable[...]``."""
    if tp is Any:
        return "Any"
    if tp is None or tp is _NONE:
        return "None"
    if isinstance(tp, TypeVar):
        return tp.__name__
    if _is_union(tp):
        return " | ".join(type_name(arg) for arg in typing.get_args(tp))
    origin = typing.get_origin(tp)
    if origin is not None:
        args = ", ".join(
            "..." if arg is Ellipsis else type_name(arg) for arg in typing.get_args(tp)
        )
        base = getattr(origin, "__name__", str(origin))
        return f"{base}[{args}]"
    return getattr(tp, "__qualname__", None) or getattr(tp, "__name__", None) or repr(tp)


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _normalise(tp: Any) -> Any:
    return _NONE if tp is None else tp


def fits(source: Any, target: Any, bindings: Bindings | None = None) -> bool:
    """True when a value of type ``source`` is acceptable where ``target`` is declared.

    ``bindings`` collects the type variables of ``target`` bound along the way.
    """
    env: Bindings = {} if bindings is None else bindings
    source, target = _normalise(source), _normalise(target)
    if target is Any or target is object or source is Any:
        return True
    if isinstance(target, TypeVar):
        return _bind(source, target, env)
    if isinstance(source, TypeVar):
        # An unbound type variable coming out of a stage: all we know is its bound.
        return fits(source.__bound__ if source.__bound__ is not None else Any, target, env)
    if _is_union(target):
        for member in typing.get_args(target):
            trial = dict(env)
            if fits(source, member, trial):
                env.update(trial)
                return True
        return False
    if _is_union(source):
        return all(fits(member, target, env) for member in typing.get_args(source))
    if typing.get_origin(source) is typing.Literal:
        return all(fits(type(value), target, env) for value in typing.get_args(source))
    if typing.get_origin(target) is typing.Literal:
        return False

    source_origin = typing.get_origin(source) or source
    target_origin = typing.get_origin(target) or target
    if not (isinstance(source_origin, type) and isinstance(target_origin, type)):
        return bool(source == target)
    try:
        if not issubclass(source_origin, target_origin):
            return False
    except TypeError:  # e.g. a protocol with data members
        return bool(source_origin is target_origin)
    return _arguments_fit(source, target, env)


def _bind(source: Any, variable: TypeVar, env: Bindings) -> bool:
    if variable in env:
        return fits(source, env[variable], env)
    if variable.__bound__ is not None and not fits(source, variable.__bound__, {}):
        return False
    if variable.__constraints__ and not any(
        fits(source, constraint, {}) for constraint in variable.__constraints__
    ):
        return False
    env[variable] = source
    return True


def _arguments_fit(source: Any, target: Any, env: Bindings) -> bool:
    target_args = typing.get_args(target)
    source_args = typing.get_args(source)
    if not target_args or not source_args:
        return True  # an unparameterised side says nothing about its elements
    source_origin = typing.get_origin(source)
    if source_origin is tuple and len(source_args) == 2 and source_args[1] is Ellipsis:
        source_args = source_args[:1]  # tuple[X, ...] behaves like Sequence[X]
    if typing.get_origin(target) is tuple and target_args[-1:] == (Ellipsis,):
        target_args = target_args[:1]
        if typing.get_origin(source) is tuple and len(source_args) > 1:
            return all(fits(arg, target_args[0], env) for arg in source_args)
    if len(source_args) == len(target_args):
        return all(fits(s, t, env) for s, t in zip(source_args, target_args, strict=True))
    if len(target_args) == 1:
        if isinstance(source_origin, type) and issubclass(source_origin, cabc.Mapping):
            return fits(source_args[0], target_args[0], env)  # iterating a mapping gives keys
        return all(fits(arg, target_args[0], env) for arg in source_args)
    return False


def substitute(tp: Any, env: Bindings) -> Any:
    """Replace bound type variables in ``tp`` by what they were bound to."""
    if isinstance(tp, TypeVar):
        return env.get(tp, tp)
    args = typing.get_args(tp)
    origin = typing.get_origin(tp)
    if not args or origin is None or origin is typing.Literal:
        return tp
    new_args = tuple(substitute(arg, env) for arg in args)
    if new_args == args:
        return tp
    if _is_union(tp):
        return typing.Union[new_args]  # noqa: UP007 - building a union from a tuple
    try:
        return origin[new_args if len(new_args) > 1 else new_args[0]]
    except TypeError:
        return tp


_ITERABLE_ORIGINS = (cabc.Iterable, cabc.Iterator, cabc.Generator, cabc.Sequence, cabc.Collection)


def _element_of(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    is_iterable = isinstance(origin, type) and any(issubclass(origin, b) for b in _ITERABLE_ORIGINS)
    if is_iterable and args:
        return args[0]
    return Any


def stage_types(stage: object) -> tuple[Any, Any]:
    """The element types a stream stage accepts and produces.

    Explicit ``input_type`` / ``output_type`` attributes win; otherwise they are
    read from the annotations of ``process(items: Iterable[In]) -> Iterator[Out]``.
    Type variables of a generic class instantiated as ``Stage[int]()`` are
    substituted. Anything that cannot be determined is ``Any``.
    """
    declared_in = getattr(stage, "input_type", None)
    declared_out = getattr(stage, "output_type", None)
    in_type: Any = declared_in if declared_in is not None else Any
    out_type: Any = declared_out if declared_out is not None else Any
    if declared_in is None or declared_out is None:
        method = getattr(type(stage), "process", None)
        hints: dict[str, Any] = {}
        if method is not None:
            try:
                hints = typing.get_type_hints(method)
            except Exception as error:  # unresolvable forward reference, local class, ...
                logger.warning(
                    "cannot read the annotations of %s.process (%s); treating its types as Any",
                    type(stage).__name__,
                    error,
                )
        params = [name for name in hints if name != "return"]
        if declared_in is None and params:
            in_type = _element_of(hints[params[0]])
        if declared_out is None and "return" in hints:
            out_type = _element_of(hints["return"])
    env = _class_bindings(stage)
    return substitute(in_type, env), substitute(out_type, env)


def _class_bindings(stage: object) -> Bindings:
    orig = getattr(stage, "__orig_class__", None)
    if orig is None:
        return {}
    parameters = getattr(typing.get_origin(orig), "__parameters__", ())
    return dict(zip(parameters, typing.get_args(orig), strict=False))
