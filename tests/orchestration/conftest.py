"""Shared markers for the orchestration tests."""

from __future__ import annotations

import sys

import pytest

from genarch.orchestration.rag_evaluation import DOCS_PYTHON

quotes_this_python = pytest.mark.skipif(
    sys.version_info[:2] != DOCS_PYTHON,
    reason=(
        f"the question sets quote Python {DOCS_PYTHON[0]}.{DOCS_PYTHON[1]}'s documentation; "
        "pydoc_data.topics is reworded between versions"
    ),
)
