"""The one error tree of genarch.

Every public entry point raises a subclass of :class:`GenarchError` for
problems the caller can fix. Messages say what was expected, what arrived and,
where there is one, how to fix it. Where a built-in exception type is the
natural expectation (``ValueError`` for a bad value, ``TypeError`` for a
mismatched type, ``ImportError`` for a missing package, ``KeyError`` for an
unknown name) the genarch error also derives from it, so ordinary ``except``
clauses keep working::

    GenarchError
    ├── InvalidInputError (ValueError)        bad argument or record at a public entry point
    │   └── ConfigError                        a configuration value is out of range or inconsistent
    ├── PipelineError                          a pipeline cannot be assembled or run
    │   └── PipelineTypeError (TypeError)      adjacent stages' declared types do not fit
    ├── RegistryError (KeyError)               a component name is unknown or taken twice
    ├── NotFoundError (LookupError)            a stored item, file or resource does not exist
    ├── IntegrityError                         stored data is corrupt, tampered with or of another model
    ├── MissingDependencyError (ImportError)   an optional extra is not installed (says which)
    ├── TrainingError                          training cannot continue (e.g. repeated non-finite loss)
    └── ConformanceError (AssertionError)      an implementation failed the ``genarch.testing`` kit

Examples:
    >>> from genarch.errors import GenarchError, InvalidInputError
    >>> try:
    ...     raise InvalidInputError("expected a positive batch size, got 0")
    ... except GenarchError as error:
    ...     print(type(error).__name__, error)
    InvalidInputError expected a positive batch size, got 0
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ConformanceError",
    "GenarchError",
    "IntegrityError",
    "InvalidInputError",
    "MissingDependencyError",
    "NotFoundError",
    "PipelineError",
    "PipelineTypeError",
    "RegistryError",
    "TrainingError",
]


class GenarchError(Exception):
    """Base class of every error genarch raises on purpose."""


class InvalidInputError(GenarchError, ValueError):
    """An argument or record given to a public entry point is not acceptable."""


class ConfigError(InvalidInputError):
    """A configuration value is out of range, inconsistent or unknown."""


class PipelineError(GenarchError):
    """A pipeline cannot be assembled, saved, loaded or run."""


class PipelineTypeError(PipelineError, TypeError):
    """Two adjacent pipeline stages do not fit: the first's output type is not
    accepted by the second's input type. Raised when the pipeline is assembled."""


class RegistryError(GenarchError, KeyError):
    """A component name is not registered, or is registered twice."""

    def __str__(self) -> str:  # KeyError would quote the message; keep it readable.
        return str(self.args[0]) if self.args else ""


class NotFoundError(GenarchError, LookupError):
    """A stored item, file or resource that was asked for does not exist."""


class IntegrityError(GenarchError):
    """Stored data failed verification: a hash mismatch, a truncated or foreign
    file, or a checkpoint that belongs to a different model."""


class MissingDependencyError(GenarchError, ImportError):
    """An optional dependency is not installed; the message names the extra."""


class TrainingError(GenarchError):
    """Training cannot continue, for example after too many non-finite losses."""


class ConformanceError(GenarchError, AssertionError):
    """An implementation failed one or more checks of :mod:`genarch.testing`.

    Attributes:
        failures: ``(check name, message)`` for every check that failed.
    """

    def __init__(self, subject: str, failures: list[tuple[str, str]]) -> None:
        self.subject = subject
        self.failures = failures
        lines = [f"{subject} failed {len(failures)} conformance check(s):"]
        lines += [f"  - {name}: {message}" for name, message in failures]
        super().__init__("\n".join(lines))


def missing_dependency(package: str, extra: str, purpose: str) -> MissingDependencyError:
    """Build the error for an optional package that is not installed.

    Args:
        package: the import name that failed, e.g. ``"faiss"``.
        extra: the genarch extra that installs it, e.g. ``"faiss"``.
        purpose: what the user was trying to do, e.g. ``"the faiss vector store"``.
    """
    return MissingDependencyError(
        f"{purpose} needs the optional package {package!r}, which is not installed. "
        f"Install it with: pip install 'genarch[{extra}]'"
    )
