"""The kit core: a :class:`Check`, the runner, and the helpers every check uses.

A check signals a broken contract by raising
:class:`~genarch.errors.ConformanceError` — never with a bare ``assert``,
which ``python -O`` strips, so an optimised run would pass everything.
:func:`require` and :func:`failure` build that error for the check that is
running, saying what was expected and what arrived. The families of checks,
one module per layer, live in :mod:`genarch.testing.checks`.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import random
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel

from genarch.errors import ConformanceError, GenarchError
from genarch.testing._compare import assert_same

__all__ = ["Check", "run_checks"]

# (subject, check name) of the check running now, for the errors the helpers raise
_running: contextvars.ContextVar[tuple[str, str]] = contextvars.ContextVar(
    "genarch_running_check", default=("implementation", "check")
)


@dataclass(frozen=True)
class Check:
    """One conformance check, ready to run.

    Calling it runs the check; a broken contract raises
    :class:`~genarch.errors.ConformanceError` naming the subject and the check
    (an error the implementation itself raises passes through unchanged).

    Attributes:
        protocol: the protocol checked, e.g. ``"Generator"``.
        name: what is checked, e.g. ``"seeded_determinism"``.
        subject: a label for the implementation under test.
    """

    protocol: str
    name: str
    subject: str
    function: Callable[[], None]

    def __call__(self) -> None:
        token = _running.set((self.subject, self.name))
        try:
            self.function()
        except ConformanceError:
            raise
        except AssertionError as error:  # assert_same's "expected ..., got ..."
            raise ConformanceError(self.subject, [(self.name, str(error))]) from error
        finally:
            _running.reset(token)

    @property
    def id(self) -> str:
        """``subject-name``, used as the pytest test id."""
        return f"{self.subject}-{self.name}"


def run_checks(checks: Sequence[Check]) -> list[str]:
    """Run every check; return the names that passed.

    Raises:
        ConformanceError: one or more checks failed (all failures are listed).
    """
    passed: list[str] = []
    failures: list[tuple[str, str]] = []
    for check in checks:
        try:
            check()
        except ConformanceError as error:
            failures.extend(error.failures)
        except Exception as error:
            failures.append((check.name, f"{type(error).__name__}: {error}"))
        else:
            passed.append(check.name)
    if failures:
        subject = checks[0].subject if checks else "implementation"
        raise ConformanceError(subject, failures)
    return passed


def failure(message: str) -> ConformanceError:
    """The error for a broken contract in the check that is running (raise it)."""
    subject, name = _running.get()
    return ConformanceError(subject, [(name, message)])


def require(condition: object, message: str) -> None:
    """Raise :func:`failure` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise failure(message)


def expect_genarch_error(action: Callable[[], object], what: str) -> None:
    """Require ``action`` to raise a :class:`~genarch.errors.GenarchError`."""
    try:
        action()
    except GenarchError:
        return
    except Exception as error:
        raise failure(
            f"{what}: expected a GenarchError subclass, got {type(error).__name__}({error})"
        ) from error
    raise failure(f"{what}: expected a GenarchError, but nothing was raised")


@contextlib.contextmanager
def scrambled_global_rngs() -> Iterator[None]:
    """Set Python, NumPy and torch global RNGs to fresh random states, restoring them after.

    An implementation whose output depends on global RNG state (instead of the
    seed it was given) gives different results inside two such blocks.
    """
    python_state, numpy_state = random.getstate(), np.random.get_state()
    entropy = int.from_bytes(os.urandom(4), "little")
    with torch.random.fork_rng(devices=[]):
        random.seed(entropy)
        np.random.seed(entropy)
        torch.manual_seed(entropy)
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


def label_of(obj: object, label: str | None) -> str:
    """The subject shown in reports: ``label`` or the class name."""
    return label or type(obj).__name__


def is_seeded(request: object) -> bool:
    """Whether a request carries a seed (objects without a ``seed`` field count as seeded)."""
    return getattr(request, "seed", 0) is not None


def saved_and_loaded(obj: Any) -> Any:
    """``type(obj).load`` of what ``obj.save`` wrote, in a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="genarch-check-") as directory:
        obj.save(directory)
        return type(obj).load(directory)


def supports_persistence(obj: object) -> bool:
    """Whether ``obj`` has ``save`` and its class ``load``."""
    return callable(getattr(obj, "save", None)) and callable(getattr(type(obj), "load", None))


def supports_config(obj: object) -> bool:
    """Whether ``obj`` has a pydantic ``config`` and its class ``from_config``."""
    return isinstance(getattr(obj, "config", None), BaseModel) and callable(
        getattr(type(obj), "from_config", None)
    )


def assert_config_roundtrip(obj: Any) -> None:
    """Require ``from_config`` of the config (and of its JSON dump) to give the same config."""
    rebuilt = type(obj).from_config(obj.config)
    assert_same(rebuilt.config, obj.config, path="from_config(config).config")
    dumped = obj.config.model_dump(mode="json")
    assert_same(type(obj).from_config(dumped).config, obj.config, path="from_config(dict).config")
