"""One pytest test per conformance check, like scikit-learn's ``parametrize_with_checks``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from genarch.errors import missing_dependency
from genarch.testing._kit import Check

__all__ = ["parametrize_with_checks"]


def parametrize_with_checks(checks: Iterable[Check] | Sequence[Iterable[Check]]) -> Any:
    """A ``pytest.mark.parametrize`` decorator giving one test per check.

    Args:
        checks: checks from ``*_checks(...)`` functions (or several lists of them).

    Examples:
        .. code-block:: python

            from genarch.testing import data_processor_checks, parametrize_with_checks

            @parametrize_with_checks(data_processor_checks(MyCleaner(), examples))
            def test_my_cleaner_conforms(check):
                check()
    """
    try:
        import pytest
    except ImportError:  # pragma: no cover - pytest is what calls this
        raise missing_dependency("pytest", "dev", "parametrize_with_checks") from None
    flat: list[Check] = []
    for entry in checks:
        if isinstance(entry, Check):
            flat.append(entry)
        else:
            flat.extend(entry)
    return pytest.mark.parametrize("check", flat, ids=[check.id for check in flat])
