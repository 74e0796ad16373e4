"""Loading corpora, splitting them, packing tokens and memory-mapped datasets."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from genarch import Document, IntegrityError, InvalidInputError, NotFoundError
from genarch.data import (
    TokenDataset,
    load_text_files,
    pack_blocks,
    python_docs,
    train_validation_split,
    write_token_file,
)


def test_loads_text_files_in_sorted_order(tmp_path):
    (tmp_path / "b.txt").write_text("second")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.txt").write_text("nested")
    (tmp_path / "a.txt").write_text("first")
    docs = list(load_text_files(tmp_path))
    assert [d.id for d in docs] == ["a.txt", "b.txt", "sub/a.txt"]
    assert docs[0].text == "first"


def test_non_utf8_bytes_are_refused_with_file_and_offset(tmp_path):
    (tmp_path / "bad.txt").write_bytes(b"caf\xe9 au lait")
    with pytest.raises(InvalidInputError, match=r"bad.txt is not valid utf-8: byte 3"):
        list(load_text_files(tmp_path))
    [doc] = load_text_files(tmp_path, errors="replace")
    assert doc.text == "caf\ufffd au lait"
    assert doc.metadata["replaced_bytes"] == 1


def test_enormous_files_and_missing_directories_are_refused(tmp_path):
    (tmp_path / "big.txt").write_text("x" * 100)
    with pytest.raises(InvalidInputError, match="max_bytes"):
        list(load_text_files(tmp_path, max_bytes=10))
    with pytest.raises(NotFoundError):
        list(load_text_files(tmp_path / "missing"))


def test_documents_refuse_undecodable_bytes():
    with pytest.raises(InvalidInputError, match="Document.text"):
        Document(id="x", text=b"\xff\xfe")


def test_split_is_deterministic_and_order_independent():
    docs = python_docs()
    split = train_validation_split(docs, validation_fraction=0.2, seed=1)
    again = train_validation_split(list(reversed(docs)), validation_fraction=0.2, seed=1)
    assert {d.id for d in split.validation} == {d.id for d in again.validation}
    assert 0.05 < len(split.validation) / len(docs) < 0.4
    assert not {d.id for d in split.train} & {d.id for d in split.validation}


def test_adding_documents_never_moves_existing_ones():
    docs = python_docs()
    before = train_validation_split(docs[:40], validation_fraction=0.3)
    after = train_validation_split(docs, validation_fraction=0.3)
    assert {d.id for d in before.validation} <= {d.id for d in after.validation}


def test_split_refuses_bad_fractions_and_duplicate_ids():
    with pytest.raises(InvalidInputError):
        train_validation_split(python_docs(), validation_fraction=1.0)
    with pytest.raises(InvalidInputError, match="unique"):
        train_validation_split([Document(id="a", text=""), Document(id="a", text="")])


@given(st.lists(st.lists(st.integers(0, 99), max_size=20), max_size=10), st.integers(1, 16))
def test_packed_blocks_are_the_concatenation_cut_evenly(sequences, block_size):
    blocks = list(pack_blocks(sequences, block_size, separator=0))
    flat = [t for s in sequences for t in [*s, 0]]
    assert all(len(b) == block_size for b in blocks)
    assert [t for b in blocks for t in b] == flat[: len(blocks) * block_size]


def test_token_file_round_trips_through_memmap(tmp_path):
    sequences = [list(range(10)), [5, 6, 7], list(range(100, 120))]
    info = write_token_file(tmp_path / "train.bin", sequences, vocab_size=1000, separator=999)
    assert info.dtype == "uint16"
    assert info.num_tokens == 10 + 3 + 20 + 3
    data = TokenDataset.open(tmp_path / "train.bin")
    assert isinstance(data.tokens, np.memmap)
    assert data.tokens[:11].tolist() == [*range(10), 999]
    blocks = list(data.blocks(8, batch_size=2))
    assert sum(b.shape[0] for b in blocks) == (len(data) - 1) // 8
    assert blocks[0][0].tolist() == data.tokens[:9].tolist()


def test_large_vocabularies_use_32_bit_ids(tmp_path):
    info = write_token_file(tmp_path / "t.bin", [[70_000, 1]], vocab_size=100_000)
    assert info.dtype == "uint32"
    assert TokenDataset.open(tmp_path / "t.bin").tokens.tolist() == [70_000, 1]


def test_random_batches_are_seeded_windows():
    data = TokenDataset(np.arange(1000), vocab_size=1000)
    a = data.random_batch(4, 16, torch.Generator().manual_seed(3))
    b = data.random_batch(4, 16, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert torch.equal(a[:, 1:] - a[:, :-1], torch.ones(4, 16, dtype=torch.int64))


def test_token_files_are_verified_and_validated(tmp_path):
    with pytest.raises(InvalidInputError, match="outside"):
        write_token_file(tmp_path / "t.bin", [[5, 10]], vocab_size=10)
    with pytest.raises(InvalidInputError, match="1-D"):
        write_token_file(tmp_path / "t.bin", [[[1, 2]]], vocab_size=10)
    assert not list(tmp_path.iterdir()), "a failed write must leave nothing behind"
    write_token_file(tmp_path / "t.bin", [[1, 2, 3, 4]], vocab_size=10)
    with open(tmp_path / "t.bin" / "tokens.bin", "ab") as handle:
        handle.write(b"\0\0")
    with pytest.raises(IntegrityError, match="tokens.bin does not match its SHA-256"):
        TokenDataset.open(tmp_path / "t.bin")
    with pytest.raises(NotFoundError):
        TokenDataset.open(tmp_path / "missing.bin")
    with pytest.raises(InvalidInputError, match="too few"):
        TokenDataset(np.arange(5), vocab_size=5).random_batch(1, 8, torch.Generator())


# ------------------------------------------------------------ token files: hardening


def _first_layout(directory: Path, ids: list[int], **fields: object) -> Path:
    """A token file as the first release wrote it: raw ids, and a sidecar beside them."""
    path = directory / "old.bin"
    np.asarray(ids, dtype=np.uint16).tofile(path)
    sidecar = {
        "format": "genarch.tokens/1",
        "dtype": "uint16",
        "num_tokens": len(ids),
        "num_sequences": 1,
        "vocab_size": 10,
        **fields,
    }
    Path(f"{path}.json").write_text(json.dumps(sidecar))
    return path


def test_a_token_file_of_the_first_layout_still_opens(tmp_path):
    path = _first_layout(tmp_path, [1, 2, 3, 9])
    assert TokenDataset.open(path).tokens.tolist() == [1, 2, 3, 9]


def test_a_first_layout_sidecar_with_a_bogus_dtype_is_an_integrity_error_naming_it(tmp_path):
    path = _first_layout(tmp_path, [1, 2], dtype="bogus")
    with pytest.raises(IntegrityError, match=r"old\.bin\.json.*dtype.*bogus"):
        TokenDataset.open(path)


def test_a_sidecar_vocab_size_below_the_ids_is_an_integrity_error_naming_the_field(tmp_path):
    path = _first_layout(tmp_path, [1, 2, 9], vocab_size=5)
    with pytest.raises(IntegrityError, match=r"token id 9.*old\.bin\.json field vocab_size is 5"):
        TokenDataset.open(path)


def test_a_first_layout_file_of_the_wrong_size_is_an_integrity_error(tmp_path):
    path = _first_layout(tmp_path, [1, 2, 3], num_tokens=4)
    with pytest.raises(IntegrityError, match="truncated or foreign"):
        TokenDataset.open(path)


@pytest.mark.parametrize("garbage", ["[]", "{not json", '{"dtype": "uint16"}', "[" * 100_000])
def test_a_garbled_first_layout_sidecar_is_an_integrity_error(tmp_path, garbage):
    path = _first_layout(tmp_path, [1, 2])
    Path(f"{path}.json").write_text(garbage)
    with pytest.raises(IntegrityError, match=r"old\.bin\.json"):
        TokenDataset.open(path)


def test_a_saved_description_with_a_vocab_size_below_the_ids_is_an_integrity_error(tmp_path):
    from genarch._io import write_manifest

    write_token_file(tmp_path / "t", [[1, 2, 9]], vocab_size=10)
    header = tmp_path / "t" / "tokens.json"
    header.write_text(json.dumps({**json.loads(header.read_text()), "vocab_size": 4}))
    write_manifest(tmp_path / "t")  # consistent hashes, so the id check is what refuses it
    with pytest.raises(IntegrityError, match=r"token id 9.*vocab_size is 4"):
        TokenDataset.open(tmp_path / "t")


def test_writing_over_a_first_layout_file_replaces_it_and_its_sidecar(tmp_path):
    path = _first_layout(tmp_path, [1, 2])
    write_token_file(path, [[3, 4, 5]], vocab_size=10)
    assert TokenDataset.open(path).tokens.tolist() == [3, 4, 5]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.bin"]


class _Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs, not even ``except Exception``."""


def test_a_crash_at_any_rename_of_a_token_file_save_leaves_the_old_or_the_new_file(
    tmp_path, monkeypatch
):
    real_replace = os.replace
    outcomes = set()
    for crash_at in range(1, 20):
        folder = tmp_path / str(crash_at)
        write_token_file(folder / "t", [[1, 2, 3]], vocab_size=10)
        calls = 0

        def replace(source, target, crash_at=crash_at):
            nonlocal calls
            calls += 1
            if calls == crash_at:
                raise _Killed
            real_replace(source, target)

        monkeypatch.setattr(os, "replace", replace)
        try:
            write_token_file(folder / "t", [[7, 8], [9, 4]], vocab_size=10)
            finished = True
        except _Killed:
            finished = False
        finally:
            monkeypatch.setattr(os, "replace", real_replace)
        tokens = TokenDataset.open(folder / "t").tokens.tolist()
        assert tokens in ([1, 2, 3], [7, 8, 9, 4]), f"crash at rename {crash_at}: {tokens}"
        outcomes.add(tuple(tokens))
        if finished:
            break
    else:
        pytest.fail("the save never finished")
    # Some crashes kept the old file, the last (uninterrupted) save wrote the new one.
    assert outcomes == {(1, 2, 3), (7, 8, 9, 4)}


@pytest.mark.parametrize("vocab_size", [0, -1, True, 2**32 + 1, 2.5, "10", None])
def test_write_token_file_refuses_vocab_sizes_a_token_file_cannot_hold(tmp_path, vocab_size):
    with pytest.raises(InvalidInputError, match="vocab_size"):
        write_token_file(tmp_path / "t", [[1]], vocab_size=vocab_size)
    assert not list(tmp_path.iterdir())


def test_the_largest_vocabulary_keeps_every_id_exactly(tmp_path):
    info = write_token_file(tmp_path / "t", [[2**32 - 1, 0]], vocab_size=2**32)
    assert info.dtype == "uint32"
    assert TokenDataset.open(tmp_path / "t").tokens.tolist() == [2**32 - 1, 0]


@pytest.mark.parametrize("vocab_size", [-1, 0, True, 2**32 + 1, 7.0])
def test_token_dataset_refuses_a_vocab_size_that_is_not_a_positive_int(vocab_size):
    with pytest.raises(InvalidInputError, match="vocab_size"):
        TokenDataset(np.arange(5), vocab_size=vocab_size)


def test_token_dataset_refuses_ids_outside_the_vocabulary():
    with pytest.raises(InvalidInputError, match=r"outside \[0, 5\)"):
        TokenDataset(np.arange(7), vocab_size=5)
    with pytest.raises(InvalidInputError, match="1-D integer"):
        TokenDataset(None, vocab_size=5)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="1-D integer"):
        TokenDataset(np.array([True, False]), vocab_size=5)


def test_a_batch_larger_than_the_cap_is_refused_before_allocating():
    data = TokenDataset(np.arange(100), vocab_size=100)
    with pytest.raises(InvalidInputError, match=r"batch_size.*\[1, \d+\]"):
        data.random_batch(10**9, 8, torch.Generator())
    with pytest.raises(InvalidInputError, match="batch_size"):
        next(data.blocks(8, batch_size=10**9))


def test_the_batch_cap_is_configurable_per_dataset():
    data = TokenDataset(np.arange(100), vocab_size=100)
    data.max_batch_tokens = 18  # two windows of 9
    assert data.random_batch(2, 8, torch.Generator()).shape == (2, 9)
    with pytest.raises(InvalidInputError, match="batch_size"):
        data.random_batch(3, 8, torch.Generator())


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda d: d.random_batch(2.0, 8, torch.Generator()), "batch_size"),
        (lambda d: d.random_batch(True, 8, torch.Generator()), "batch_size"),
        (lambda d: d.random_batch(2, "8", torch.Generator()), "block_size"),
        (lambda d: d.random_batch(2, 8, None), "Generator"),
        (lambda d: d.split(float("nan")), "validation_fraction"),
        (lambda d: list(pack_blocks([[1]], 0)), "block_size"),
    ],
)
def test_token_dataset_sizes_of_the_wrong_type_are_invalid_input(call, argument):
    with pytest.raises(InvalidInputError, match=argument):
        call(TokenDataset(np.arange(100), vocab_size=100))
