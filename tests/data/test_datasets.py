"""Loading corpora, splitting them, packing tokens and memory-mapped datasets."""

from __future__ import annotations

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
    with open(tmp_path / "t.bin", "ab") as handle:
        handle.write(b"\0\0")
    with pytest.raises(IntegrityError, match="truncated or foreign"):
        TokenDataset.open(tmp_path / "t.bin")
    with pytest.raises(NotFoundError):
        TokenDataset.open(tmp_path / "missing.bin")
    with pytest.raises(InvalidInputError, match="too few"):
        TokenDataset(np.arange(5), vocab_size=5).random_batch(1, 8, torch.Generator())
