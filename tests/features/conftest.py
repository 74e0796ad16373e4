"""Helpers shared by the feature tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


def _interrupt_between_renames(saved: Path) -> None:
    """Leave ``saved`` as a crash between atomic_directory's two renames leaves it.

    The previous copy has been moved aside as ``.<name>.old-<pid>-<id>`` and the new
    one is not yet in place, so ``saved`` itself does not exist.
    """
    saved.rename(saved.with_name(f".{saved.name}.old-123-456"))
    assert not saved.exists()


@pytest.fixture
def interrupt_between_renames() -> Callable[[Path], None]:
    """Simulate a crash between the two renames of a save (see genarch._io.atomic_directory)."""
    return _interrupt_between_renames
