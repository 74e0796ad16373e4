"""Settings for the model tests: tiny models, one torch thread."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _model_tests_run_on_one_thread(one_thread: None) -> None:
    """Every model test uses the shared ``one_thread`` fixture."""
