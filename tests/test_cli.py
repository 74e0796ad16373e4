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
        [
            sys.executable,
            "-m",
            "genarch",
            "quickstart",
            "--train-steps",
            "10",
            "--vocab-size",
            "1024",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    assert "loaded 79 documents" in out.stdout
    assert "PII redacted: CREDIT_CARD 1, EMAIL 1, IBAN 1, PHONE 1" in out.stdout
    assert "trained 1,024 tokens" in out.stdout
    assert "10 steps" in out.stdout
    assert "sample: The list" in out.stdout
    assert "[1] string-methods chars" in out.stdout  # a cited answer
    assert "not found in the sources" in out.stdout  # the question the docs cannot answer


def test_image_quickstart_trains_diffusion_and_writes_a_png(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "genarch",
            "quickstart",
            "--modality",
            "image",
            "--seconds",
            "3",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    png = tmp_path / "digits.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "model").is_dir()
