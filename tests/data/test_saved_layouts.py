"""Saves of the data layer: the previous release's layout still loads, and so does a
save interrupted between the two renames of its atomic swap.

The "old layout" fixtures write the files by hand, byte for byte as genarch
0.x wrote them, so they keep testing compatibility however the save code changes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from genarch.data.byte_tokenizer import ByteTokenizer, ByteTokenizerConfig
from genarch.data.images import ImageNormalizer
from genarch.data.tiktoken_tokenizer import TiktokenTokenizer
from genarch.data.tokenize_stage import Tokenize
from genarch.data.tokenizer_references import load_tokenizer
from genarch.errors import IntegrityError, NotFoundError
from genarch.schemas import Document

EOT = "<|endoftext|>"
PATTERN = r"\S+|\s+"
TEXTS = ["abab cab", f"ab{EOT}", "ünïcödé"]


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", "utf-8")


def old_byte_tokenizer(directory: Path) -> None:
    write_json(
        directory / "tokenizer.json",
        {
            "format": "genarch.tokenizer/1",
            "kind": "bytes",
            "special_tokens": [EOT],
            "allowed_special": [EOT],
        },
    )


def old_tiktoken_tokenizer(directory: Path) -> None:
    tokens = [bytes([b]) for b in range(256)] + [b"ab"]
    vocab = b"".join(base64.b64encode(t) + f" {rank}\n".encode() for rank, t in enumerate(tokens))
    directory.mkdir(parents=True)
    (directory / "vocab.tiktoken").write_bytes(vocab)
    write_json(
        directory / "tokenizer.json",
        {
            "format": "genarch.tokenizer/1",
            "kind": "tiktoken",
            "name": "tiny",
            "pattern": PATTERN,
            "special_tokens": {EOT: 257},
            "allowed_special": [],
            "vocab_file": "vocab.tiktoken",
            "vocab_sha256": hashlib.sha256(vocab).hexdigest(),
        },
    )


def old_tokenize_stage(directory: Path) -> None:
    old_byte_tokenizer(directory / "tokenizer")
    write_json(
        directory / "tokenize.json",
        {"format": "genarch.tokenize/1", "allowed_special": [], "append_special": EOT},
    )


def old_image_normalizer(directory: Path) -> None:
    """0.x wrote the bare config, without a format header."""
    directory.mkdir(parents=True)
    config = {"mode": "standardize", "low": 0.0, "high": 255.0, "mean": [0.5], "std": [2.0]}
    (directory / "config.json").write_text(json.dumps(config, indent=2))


def crashed_between_renames(directory: Path) -> None:
    """What atomic_directory leaves when a process dies after moving the old copy aside."""
    os.replace(directory, directory.with_name(f".{directory.name}.old-123-456"))


# ---------------------------------------------------------------- the old layouts


def test_an_old_byte_tokenizer_loads(tmp_path: Path) -> None:
    old_byte_tokenizer(tmp_path / "tok")
    for load in (ByteTokenizer.load, load_tokenizer):
        tokenizer = load(tmp_path / "tok")
        assert isinstance(tokenizer, ByteTokenizer)
        assert tokenizer.config == ByteTokenizerConfig(
            special_tokens=(EOT,), allowed_special=(EOT,)
        )


def test_an_old_tiktoken_tokenizer_loads(tmp_path: Path) -> None:
    old_tiktoken_tokenizer(tmp_path / "tok")
    for load in (TiktokenTokenizer.load, load_tokenizer):
        tokenizer = load(tmp_path / "tok")
        assert isinstance(tokenizer, TiktokenTokenizer)
        assert tokenizer.encode("abab") == [256, 256]
        assert tokenizer.special_tokens == {EOT: 257}
        assert tokenizer.decode(tokenizer.encode(TEXTS[2])) == TEXTS[2]


def test_an_old_tokenize_stage_loads(tmp_path: Path) -> None:
    old_tokenize_stage(tmp_path / "stage")
    stage = Tokenize.load(tmp_path / "stage")
    [out] = stage.process([Document(id="a", text="hi")])
    assert out.token_ids == (104, 105, 256)


def test_an_old_image_normalizer_without_a_format_header_loads(tmp_path: Path) -> None:
    old_image_normalizer(tmp_path / "norm")
    normalizer = ImageNormalizer.load(tmp_path / "norm")
    assert normalizer.config.mean == (0.5,)
    assert normalizer.transform(torch.full((1, 1, 1, 1), 2.5)).item() == 1.0


def test_tokenizers_still_write_the_old_layout(tmp_path: Path) -> None:
    """Same file names, same header: a directory saved now loads in the previous release."""
    old_byte_tokenizer(tmp_path / "old-bytes")
    ByteTokenizer.load(tmp_path / "old-bytes").save(tmp_path / "new-bytes")
    old_tiktoken_tokenizer(tmp_path / "old-tiktoken")
    TiktokenTokenizer.load(tmp_path / "old-tiktoken").save(tmp_path / "new-tiktoken")
    for kind in ("bytes", "tiktoken"):
        old, new = tmp_path / f"old-{kind}", tmp_path / f"new-{kind}"
        # the same files, plus the manifest every save now carries
        assert sorted(p.name for p in new.iterdir()) == sorted(
            [*(p.name for p in old.iterdir()), "SHA256SUMS"]
        )
        for file in old.iterdir():
            assert (new / file.name).read_bytes() == file.read_bytes()


def test_the_image_normalizer_now_writes_a_format_header(tmp_path: Path) -> None:
    ImageNormalizer(low=0, high=16).save(tmp_path / "norm")
    header = json.loads((tmp_path / "norm" / "config.json").read_text())
    assert header["format"] == "genarch.image_normalizer/1"
    assert ImageNormalizer.load(tmp_path / "norm").config == ImageNormalizer(low=0, high=16).config


def test_a_json_file_of_another_component_is_not_taken_for_an_old_normalizer(
    tmp_path: Path,
) -> None:
    write_json(tmp_path / "other" / "config.json", {"format": "genarch.gpt/1", "config": {}})
    with pytest.raises(IntegrityError, match="genarch.gpt/1"):
        ImageNormalizer.load(tmp_path / "other")
    write_json(tmp_path / "junk" / "config.json", {"mode": "sideways"})
    with pytest.raises(IntegrityError, match="corrupt"):
        ImageNormalizer.load(tmp_path / "junk")


# ------------------------------------------------------ interrupted between renames


def save_byte_tokenizer(directory: Path) -> Callable[[], object]:
    ByteTokenizer(special_tokens=(EOT,)).save(directory)
    return lambda: ByteTokenizer.load(directory).encode("hi")


def save_tiktoken_tokenizer(directory: Path) -> Callable[[], object]:
    old_tiktoken_tokenizer(directory.with_name("source"))
    TiktokenTokenizer.load(directory.with_name("source")).save(directory)
    return lambda: TiktokenTokenizer.load(directory).encode("abab")


def save_any_tokenizer(directory: Path) -> Callable[[], object]:
    ByteTokenizer().save(directory)
    return lambda: load_tokenizer(directory).encode("hi")


def save_tokenize_stage(directory: Path) -> Callable[[], object]:
    Tokenize(ByteTokenizer(special_tokens=(EOT,)), append_special=EOT).save(directory)
    return lambda: [d.token_ids for d in Tokenize.load(directory).process(DOCS)]


def save_image_normalizer(directory: Path) -> Callable[[], object]:
    ImageNormalizer(low=0, high=16).save(directory)
    return lambda: ImageNormalizer.load(directory).config


def save_old_image_normalizer(directory: Path) -> Callable[[], object]:
    old_image_normalizer(directory)
    return lambda: ImageNormalizer.load(directory).config


DOCS = [Document(id="a", text="hi")]


@pytest.mark.parametrize(
    "save",
    [
        save_byte_tokenizer,
        save_tiktoken_tokenizer,
        save_any_tokenizer,
        save_tokenize_stage,
        save_image_normalizer,
        save_old_image_normalizer,
    ],
)
def test_a_save_interrupted_between_the_two_renames_still_loads(
    save: Callable[[Path], Callable[[], object]], tmp_path: Path
) -> None:
    directory = tmp_path / "saved"
    load = save(directory)
    expected = load()
    crashed_between_renames(directory)
    assert not directory.exists()
    assert load() == expected


@pytest.mark.parametrize(
    "load",
    [
        ByteTokenizer.load,
        TiktokenTokenizer.load,
        load_tokenizer,
        Tokenize.load,
        ImageNormalizer.load,
    ],
)
def test_nothing_saved_is_not_found(load: Callable[[Path], object], tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        load(tmp_path / "missing")


def test_a_tokenize_stage_missing_its_tokenizer_is_damaged_not_absent(tmp_path: Path) -> None:
    old_tokenize_stage(tmp_path / "stage")
    (tmp_path / "stage" / "tokenizer" / "tokenizer.json").unlink()
    with pytest.raises(IntegrityError, match="incomplete"):
        Tokenize.load(tmp_path / "stage")
