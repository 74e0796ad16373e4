"""Atomic writes leave either the old or the new content, never a mixture."""

from __future__ import annotations

import pytest

from genarch._io import atomic_directory, atomic_write_text, sha256_file


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
    from genarch._io import readable_directory

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
