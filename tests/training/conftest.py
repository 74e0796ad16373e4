"""Settings for the training tests: tiny models, one torch thread."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _training_tests_run_on_one_thread(one_thread: None) -> None:
    """Every training test uses the shared ``one_thread`` fixture."""
