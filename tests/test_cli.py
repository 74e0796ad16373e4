"""The genarch command line."""

from __future__ import annotations

import subprocess
import sys

import genarch
from genarch.cli import main


def test_version(capsys):
    try:
        main(["--version"])
    except SystemExit as exit_:
        assert exit_.code == 0
    assert genarch.__version__ in capsys.readouterr().out


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "quickstart" in capsys.readouterr().out


def test_quickstart_runs_the_real_job_on_python_docs():
    out = subprocess.run(
        [sys.executable, "-m", "genarch", "quickstart"], capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr
    assert "loaded 79 documents" in out.stdout
    assert "clean" in out.stdout
