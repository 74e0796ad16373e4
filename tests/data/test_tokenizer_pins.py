"""A saved-tokenizer reference pins every file, not only the vocabulary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from genarch._io import write_manifest
from genarch.data import BPETrainer, load_tokenizer
from genarch.data.tiktoken_tokenizer import SavedTokenizerReference
from genarch.errors import IntegrityError


def saved_reference(tmp_path: Path) -> SavedTokenizerReference:
    trainer = BPETrainer(vocab_size=300, special_tokens=("<|endoftext|>",))
    trainer.train(["to be or not to be, that is the question"] * 20).save(tmp_path / "tok")
    reference = load_tokenizer(tmp_path / "tok").reference
    assert isinstance(reference, SavedTokenizerReference)
    return reference


def test_a_reference_pins_the_whole_save(tmp_path: Path) -> None:
    reference = saved_reference(tmp_path)
    assert reference.content_sha256 is not None
    assert load_tokenizer(reference).encode("to be") == load_tokenizer(tmp_path / "tok").encode(
        "to be"
    )


def test_editing_the_settings_and_the_manifest_is_still_caught_by_the_pin(tmp_path: Path) -> None:
    reference = saved_reference(tmp_path)
    header = tmp_path / "tok" / "tokenizer.json"
    document = json.loads(header.read_text())
    document["allowed_special"] = ["<|endoftext|>"]  # user text could now inject control tokens
    header.write_text(json.dumps(document))
    write_manifest(tmp_path / "tok")  # an editor who also rewrites the manifest
    load_tokenizer(tmp_path / "tok")  # the edited save itself loads: its manifest agrees...
    with pytest.raises(IntegrityError, match="SHA-256 of its files"):
        load_tokenizer(reference)  # ...but not through the reference that pinned it


def test_a_reference_written_before_manifests_still_checks_the_vocabulary(tmp_path: Path) -> None:
    reference = saved_reference(tmp_path)
    old_style = SavedTokenizerReference(path=reference.path, vocab_sha256=reference.vocab_sha256)
    assert load_tokenizer(old_style).vocab_size == load_tokenizer(reference).vocab_size
    wrong = SavedTokenizerReference(path=reference.path, vocab_sha256="0" * 64)
    with pytest.raises(IntegrityError, match="SHA-256 of its vocabulary"):
        load_tokenizer(wrong)
