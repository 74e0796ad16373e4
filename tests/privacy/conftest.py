"""Shared fixtures for the privacy tests."""

from __future__ import annotations

from typing import Any

import pytest

from privacy.privacy_testing import mixed_table


@pytest.fixture
def table() -> dict[str, Any]:
    """600 rows of :func:`~privacy.privacy_testing.mixed_table`."""
    return mixed_table(600)
