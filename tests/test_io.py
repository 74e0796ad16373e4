"""Atomic writes leave either the old or the new content, never a mixture."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from genarch._io import (
    atomic_directory,
    atomic_write_text,
    manifest_problems,
    readable_directory,
    settle,
    sha256_file,
    write_manifest,
)


def test_atomic_write_replaces_content(tmp_path):
    path = tmp_path / "f.txt"
    atomic_write_text(path, "old")
    atomic_write_text(path, "new")
    assert path.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_failed_directory_write_keeps_the_previous_content(tmp_path):
    target = tmp_path / "model"
    with atomic_directory(target) as staging:
        (staging / "weights").write_text("v1")
    with pytest.raises(RuntimeError), atomic_directory(target) as staging:
        (staging / "weights").write_text("half-written v2")
        raise RuntimeError("crash mid-save")
    assert (target / "weights").read_text() == "v1"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_successful_directory_write_replaces_everything(tmp_path):
    target = tmp_path / "model"
    with atomic_directory(target) as staging:
        (staging / "a").write_text("1")
    with atomic_directory(target) as staging:
        (staging / "b").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["b"]


def test_sha256_file(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(b"abc")
    assert sha256_file(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_a_crash_between_the_two_renames_leaves_the_old_copy_readable(tmp_path):
    target = tmp_path / "model"
    with atomic_directory(target) as staging:
        (staging / "weights").write_text("v1")
    # Simulate a kill after the old directory was moved aside, before the new one moved in.
    aside = tmp_path / ".model.old-123-456"
    target.rename(aside)
    assert readable_directory(target) == aside
    assert (readable_directory(target) / "weights").read_text() == "v1"
    with atomic_directory(target) as staging:  # the next save first restores, then swaps
        (staging / "weights").write_text("v2")
    assert (target / "weights").read_text() == "v2"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
    assert readable_directory(tmp_path / "nothing") is None


def saved(directory, content):
    """A directory saved the way genarch.persistence saves: files plus SHA256SUMS."""
    with atomic_directory(directory) as staging:
        (staging / "weights").write_text(content)
        write_manifest(staging)


def test_the_manifest_lists_every_file_and_verifies(tmp_path):
    saved(tmp_path / "model", "v1")
    assert (tmp_path / "model" / "SHA256SUMS").read_text().endswith("  weights\n")
    assert manifest_problems(tmp_path / "model") == []
    (tmp_path / "model" / "weights").write_text("v2")
    assert manifest_problems(tmp_path / "model") == [
        "weights does not match its SHA-256 (changed or damaged)"
    ]
    assert manifest_problems(tmp_path) is None  # no manifest: a save from before manifests


@pytest.mark.parametrize(
    "line", ["nonsense", "0" * 64 + "  ../escape", "0" * 64 + "  /etc/passwd", "zz" * 32 + "  w"]
)
def test_a_malformed_manifest_is_a_problem_not_a_crash(tmp_path, line):
    (tmp_path / "SHA256SUMS").write_text(line + "\n")
    [problem] = manifest_problems(tmp_path)
    assert "malformed" in problem


def test_a_damaged_copy_left_aside_never_wins_over_a_complete_one(tmp_path):
    saved(tmp_path / "first", "v1")
    complete = tmp_path / ".model.old-1-1"
    (tmp_path / "first").rename(complete)
    saved(tmp_path / "second", "v2")
    damaged = tmp_path / ".model.old-2-2"
    (tmp_path / "second").rename(damaged)
    (damaged / "weights").unlink()  # an interrupted deletion got this far
    os.utime(complete, (1, 1))  # the complete copy is the older one
    assert readable_directory(tmp_path / "model") == complete
    settle(tmp_path / "model")  # and the next save restores it under its real name
    assert (tmp_path / "model" / "weights").read_text() == "v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_settle_cleans_what_dead_processes_left_and_spares_live_ones(tmp_path):
    saved(tmp_path / "model", "v1")
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_staging = tmp_path / f".model.{int(dead.stdout)}-abc.tmp"
    live_staging = tmp_path / f".model.{os.getpid()}-def.tmp"
    trash = tmp_path / ".model.trash-1-2"
    old = tmp_path / ".model.old-3-4"
    for directory in (dead_staging, live_staging, trash, old):
        directory.mkdir()
        (directory / "weights").write_text("partial")
    settle(tmp_path / "model")
    assert sorted(p.name for p in tmp_path.iterdir()) == [live_staging.name, "model"]
    assert (tmp_path / "model" / "weights").read_text() == "v1"


def test_interrupted_saves_leave_no_garbage_after_the_next_save(tmp_path):
    saved(tmp_path / "model", "v1")
    for number in range(3):  # three saves killed with their staging directories left
        (tmp_path / f".model.999999{number}-x.tmp").mkdir()
    saved(tmp_path / "model", "v2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_manifest_line_break_changed_to_another_separator_is_refused(tmp_path):
    saved(tmp_path / "model", "v1")
    manifest = tmp_path / "model" / "SHA256SUMS"
    manifest.write_text(manifest.read_text().replace("\n", "\x0b"))  # splitlines() would accept it
    [problem] = manifest_problems(tmp_path / "model")
    assert "does not end with a line break" in problem
