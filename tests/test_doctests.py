"""Every docstring example in the library runs (Google-style ``Example:`` sections)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import genarch

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(genarch.__path__, prefix="genarch.")
    if not info.name.endswith("__main__")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    try:
        module = importlib.import_module(name)
    except ImportError as error:  # an optional extra that is not installed
        pytest.skip(f"{name}: {error}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
