"""The genarch command line."""

from __future__ import annotations

import math
import re
import subprocess
import sys

import pytest

import genarch
from genarch.cli import main
from genarch.quickstart_report import REPORT_FILES


def test_version(capsys):
    try:
        main(["--version"])
    except SystemExit as exit_:
        assert exit_.code == 0
    assert genarch.__version__ in capsys.readouterr().out


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "quickstart" in capsys.readouterr().out


def _figures(stdout):
    """The held-out bits per byte and perplexity of the quickstart's summary line."""
    found = re.search(r"held-out (\S+) bits per byte, perplexity (\S+) per token", stdout)
    assert found, stdout
    return float(found[1]), float(found[2])


def test_quickstart_runs_the_real_job_on_python_docs(tmp_path):
    # the default settings, as the README runs them (about 90 s of training on 2 cores)
    out = subprocess.run(
        [sys.executable, "-m", "genarch", "quickstart", "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    assert "loaded 79 documents" in out.stdout
    assert "PII redacted: CREDIT_CARD 1, EMAIL 1, IBAN 1, PHONE 1" in out.stdout
    assert "trained 1,024 tokens" in out.stdout
    assert "1000 steps" in out.stdout
    assert "sample: The list" in out.stdout
    assert "[1] string-methods chars" in out.stdout  # a cited answer
    assert "not found in the sources" in out.stdout  # the question the docs cannot answer
    bits_per_byte, perplexity = _figures(out.stdout)
    assert math.isfinite(bits_per_byte)
    assert 0 < bits_per_byte < 10
    # the GPT alone, the 6-gram counts, and their mixture (the summary's figure)
    found = re.search(r"GPT (\S+), 6-gram (\S+), mixed \(.*\) (\S+)\n", out.stdout)
    assert found, out.stdout
    gpt, counts, mixed = (float(found[i]) for i in (1, 2, 3))
    assert abs(mixed - bits_per_byte) <= 0.0015  # one printed to 3 places, one rounded twice
    # the goal is 1.6 held out. Deterministic for one Python, but the corpus is that
    # Python's own documentation: on 3.11, 1.563 (GPT), 1.588 (counts), 1.308 (mixture);
    # on 3.13 the counts score 1.628
    assert gpt < 1.6
    assert counts < 1.7
    assert mixed < 1.4
    assert mixed < min(gpt, counts)
    assert math.isfinite(perplexity)
    assert 1 < perplexity <= 1024 * 2
    # the run folder holds every file it promises, and the last line says where it is
    assert out.stdout.splitlines()[-1] == f"run report: {tmp_path / 'run' / 'report.md'}"
    for name in REPORT_FILES:
        assert (tmp_path / "run" / name).stat().st_size > 0, name
    assert (tmp_path / "run" / "training_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (tmp_path / "run" / "report.md").read_text()
    for name in REPORT_FILES[1:]:
        assert f"({name})" in report, name  # report.md links every other file
    # progress off a terminal: plain lines, no carriage returns
    assert "step 1000/1000" in out.stderr
    assert "\r" not in out.stderr + out.stdout


def test_quickstart_quiet_prints_only_the_summary(tmp_path, capsys):
    assert (
        main(
            [
                "quickstart",
                "--quiet",
                "--train-steps",
                "3",
                "--vocab-size",
                "300",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert captured.err == ""  # no progress lines
    lines = captured.out.splitlines()
    assert len(lines) == 4, lines  # figures, sample, time, where the report is
    assert all(math.isfinite(figure) for figure in _figures(captured.out))
    assert lines[1].startswith("sample: The list")
    assert lines[-1] == f"run report: {tmp_path / 'report.md'}"
    assert all((tmp_path / name).is_file() for name in REPORT_FILES)


def test_a_second_quickstart_reads_the_corpus_vectors_back(tmp_path, capsys, minilm):
    cache = tmp_path / "vectors" / "embeddings.sqlite"  # the folder is created
    tiny = ["quickstart", "--train-steps", "2", "--vocab-size", "300"]
    counts = []
    for run in ("first", "second"):
        assert main([*tiny, "--out", str(tmp_path / run), "--embedding-cache", str(cache)]) == 0
        found = re.search(
            r"embeddings: (\S+) computed, (\S+) read back from (.+)\n", capsys.readouterr().out
        )
        assert found, run
        assert found[3] == str(cache)
        counts.append((int(found[1].replace(",", "")), int(found[2].replace(",", ""))))
    (computed, _), (again, read_back) = counts
    assert computed > 1000  # every chunk of the docs, the candidate sentences, the questions
    assert again == 0
    assert read_back >= computed


def test_the_quickstart_refuses_an_embedding_cache_it_cannot_open(tmp_path, capsys, minilm):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert main(["quickstart", "--embedding-cache", str(blocker / "e.sqlite")]) == 1
    error = capsys.readouterr().err
    assert f"--embedding-cache {blocker / 'e.sqlite'}: cannot open it" in error
    assert "--no-embedding-cache" in error
    with pytest.raises(SystemExit):  # one or the other
        main(["quickstart", "--embedding-cache", "x.sqlite", "--no-embedding-cache"])


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
