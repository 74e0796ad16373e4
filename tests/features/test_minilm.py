"""The pretrained encoder: verified loading, and the same embeddings as sentence-transformers."""

from __future__ import annotations

import json
import os
from importlib import metadata
from pathlib import Path

import pytest
import torch

from genarch.errors import (
    ConfigError,
    GenarchError,
    IntegrityError,
    InvalidInputError,
    MissingDependencyError,
    NotFoundError,
)
from genarch.features import (
    ALL_MINILM_L6_V2_SHA256,
    BertConfig,
    BertModel,
    MiniLMEncoder,
    MiniLMEncoderConfig,
    find_minilm_directory,
    load_minilm,
)
from genarch.features import minilm as minilm_module
from genarch.testing import check_feature_extractor

TEXTS = [
    "A man is eating food.",
    "Python lists are mutable; tuples are not.",
    "Café résumé naïve — 北京 and Ελληνικά",
    "",
    "How do I open a file for reading? " * 60,  # longer than 256 tokens: truncated
]

# ------------------------------------------------------------------ a tiny checkpoint

TINY_VOCAB = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    "the",
    "cat",
    "sat",
    "on",
    "mat",
    "##s",
    ".",
    "a",
]
TINY = BertConfig(vocab_size=len(TINY_VOCAB), hidden_size=16, num_hidden_layers=2,
                  num_attention_heads=4, intermediate_size=32, max_position_embeddings=32)  # fmt: skip


def write_tiny_checkpoint(directory: Path, *, normalize: bool = True) -> dict[str, torch.Tensor]:
    """A random BERT in Hugging Face's layout, as sentence-transformers saves it."""
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(0)
    c = TINY

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator) * 0.2

    state = {
        "embeddings.word_embeddings.weight": rand(c.vocab_size, c.hidden_size),
        "embeddings.position_embeddings.weight": rand(c.max_position_embeddings, c.hidden_size),
        "embeddings.token_type_embeddings.weight": rand(c.type_vocab_size, c.hidden_size),
        "embeddings.LayerNorm.weight": 1 + rand(c.hidden_size),
        "embeddings.LayerNorm.bias": rand(c.hidden_size),
        "pooler.dense.weight": rand(c.hidden_size, c.hidden_size),
        "pooler.dense.bias": rand(c.hidden_size),
    }
    shapes = {
        "attention.self.query": (c.hidden_size, c.hidden_size),
        "attention.self.key": (c.hidden_size, c.hidden_size),
        "attention.self.value": (c.hidden_size, c.hidden_size),
        "attention.output.dense": (c.hidden_size, c.hidden_size),
        "intermediate.dense": (c.intermediate_size, c.hidden_size),
        "output.dense": (c.hidden_size, c.intermediate_size),
    }
    for layer in range(c.num_hidden_layers):
        prefix = f"encoder.layer.{layer}."
        for name, shape in shapes.items():
            state[prefix + name + ".weight"] = rand(*shape)
            state[prefix + name + ".bias"] = rand(shape[0])
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            state[prefix + norm + ".weight"] = 1 + rand(c.hidden_size)
            state[prefix + norm + ".bias"] = rand(c.hidden_size)
    directory.mkdir(parents=True, exist_ok=True)
    save_file(state, str(directory / "model.safetensors"))
    config = {**c.model_dump(), "model_type": "bert", "hidden_act": "gelu"}
    (directory / "config.json").write_text(json.dumps(config))
    (directory / "vocab.txt").write_text("\n".join(TINY_VOCAB) + "\n")
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
    ]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize",
                        "type": "sentence_transformers.models.Normalize"})  # fmt: skip
    (directory / "modules.json").write_text(json.dumps(modules))
    (directory / "1_Pooling").mkdir(exist_ok=True)
    (directory / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": 16, "pooling_mode_mean_tokens": True})
    )
    (directory / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 12}))
    return state


def test_a_checkpoint_loads_without_verification_only_when_asked(tmp_path: Path) -> None:
    write_tiny_checkpoint(tmp_path)
    with pytest.raises(IntegrityError, match="config.json failed verification"):
        MiniLMEncoder(directory=str(tmp_path))  # the pinned table is the default
    encoder = MiniLMEncoder(directory=str(tmp_path), sha256=None)
    assert (encoder.dim, encoder.max_length, encoder.normalize) == (16, 12, True)
    check_feature_extractor(encoder, ["the cat sat", "a mat", "", "cats " * 30])


def test_a_hash_table_must_cover_every_file_read(tmp_path: Path) -> None:
    write_tiny_checkpoint(tmp_path)
    hashes = {
        "config.json": minilm_module.hashlib.sha256(
            (tmp_path / "config.json").read_bytes()
        ).hexdigest()
    }
    with pytest.raises(IntegrityError, match="no pinned SHA-256"):
        MiniLMEncoder(directory=str(tmp_path), sha256=hashes)


def test_tiny_checkpoint_matches_transformers_bert(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    write_tiny_checkpoint(tmp_path, normalize=False)
    encoder = MiniLMEncoder(directory=str(tmp_path), sha256=None)
    reference = transformers.BertModel.from_pretrained(
        str(tmp_path), attn_implementation="eager"
    ).eval()
    batch = encoder.tokenizer.encode_batch(["the cat sat on the mat .", "a cats"], max_length=12)
    with torch.no_grad():
        hidden = reference(
            input_ids=batch.input_ids, attention_mask=batch.attention_mask
        ).last_hidden_state
    mask = batch.attention_mask.unsqueeze(-1).float()
    expected = (hidden * mask).sum(1) / mask.sum(1)
    assert torch.allclose(
        encoder.extract(["the cat sat on the mat .", "a cats"]), expected, atol=1e-5
    )


def test_unsupported_checkpoints_are_refused(tmp_path: Path) -> None:
    write_tiny_checkpoint(tmp_path)
    modules = json.loads((tmp_path / "modules.json").read_text())
    modules.append({"idx": 3, "path": "3_Dense", "type": "sentence_transformers.models.Dense"})
    (tmp_path / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(IntegrityError, match="Dense"):
        MiniLMEncoder(directory=str(tmp_path), sha256=None)


def test_missing_checkpoint_files_and_directories(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        MiniLMEncoder(directory=str(tmp_path / "nowhere"), sha256=None)
    write_tiny_checkpoint(tmp_path)
    (tmp_path / "vocab.txt").unlink()
    with pytest.raises(NotFoundError, match="vocab.txt"):
        MiniLMEncoder(directory=str(tmp_path), sha256=None)


def test_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    def not_installed(name: str) -> None:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(minilm_module.metadata, "distribution", not_installed)
    with pytest.raises(MissingDependencyError, match=r"pip install 'genarch\[embeddings\]'"):
        load_minilm()


def test_bad_configs() -> None:
    with pytest.raises(ConfigError):
        MiniLMEncoder(batch_size=0)
    with pytest.raises(ConfigError):
        MiniLMEncoder(max_length=1)
    with pytest.raises(ConfigError, match="not both"):
        MiniLMEncoder(MiniLMEncoderConfig(), batch_size=4)


def test_the_checkpoint_reader_returns_a_named_record(tmp_path: Path) -> None:
    write_tiny_checkpoint(tmp_path)
    checkpoint = minilm_module._read_checkpoint(minilm_module._VerifiedFiles(tmp_path, None))
    assert isinstance(checkpoint.model, BertModel)
    assert checkpoint.model.config == TINY
    assert checkpoint.tokenizer.vocab_size == len(TINY_VOCAB)
    assert (checkpoint.pooling, checkpoint.normalize, checkpoint.max_length) == ("mean", True, 12)


def test_the_bert_network_is_configured_like_every_component() -> None:
    model = BertModel(TINY)
    assert BertModel.from_config(TINY.model_dump()).config == model.config == TINY
    with pytest.raises(ConfigError, match="not both"):
        BertModel(TINY, hidden_size=8)
    with pytest.raises(ConfigError, match="divisible"):
        BertModel(hidden_size=10, num_attention_heads=4)


def test_the_bert_names_of_the_minilm_module_still_work_with_a_warning() -> None:
    for name, moved in (("BertModel", BertModel), ("BertConfig", BertConfig)):
        with pytest.warns(DeprecationWarning, match="genarch.features.bert"):
            assert getattr(minilm_module, name) is moved


# ------------------------------------------------------------------ all-MiniLM-L6-v2


@pytest.fixture(scope="module")
def model_directory() -> Path:
    try:
        return find_minilm_directory()
    except GenarchError as error:
        pytest.skip(f"all-MiniLM-L6-v2 is not installed: {error}")


@pytest.fixture(scope="module")
def encoder(model_directory: Path) -> MiniLMEncoder:
    return load_minilm()


def test_the_pinned_table_lists_the_files_the_loader_reads(model_directory: Path) -> None:
    for name, digest in ALL_MINILM_L6_V2_SHA256.items():
        assert (model_directory / name).is_file(), name
        assert len(digest) == 64


def test_minilm_passes_the_conformance_kit(encoder: MiniLMEncoder) -> None:
    assert encoder.dim == 384
    check_feature_extractor(encoder, TEXTS[:4], invalid_items=[None, b"bytes"])


def test_minilm_matches_sentence_transformers(
    encoder: MiniLMEncoder, model_directory: Path
) -> None:
    sentence_transformers = pytest.importorskip("sentence_transformers")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    reference = sentence_transformers.SentenceTransformer(str(model_directory), device="cpu")
    texts = [*TEXTS, "The quick brown fox jumps over the lazy dog.", "ok"]
    expected = reference.encode(texts, convert_to_tensor=True, batch_size=4)
    ours = encoder.extract(texts)
    assert float((ours - expected).abs().max()) <= 1e-5
    assert torch.allclose(ours.norm(dim=1), torch.ones(len(texts)), atol=1e-5)


def test_minilm_ranks_a_paraphrase_above_an_unrelated_text(encoder: MiniLMEncoder) -> None:
    a, b, c = encoder.extract(
        ["How do I read a file?", "Opening and reading files", "Bananas are yellow"]
    )
    assert a @ b > a @ c + 0.2


def test_minilm_rejects_wrong_items(encoder: MiniLMEncoder) -> None:
    with pytest.raises(InvalidInputError):
        encoder.extract("a single string")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="item 1"):
        encoder.extract(["ok", 3])  # type: ignore[list-item]


def tampered_copy(source: Path, target: Path, name: str, content: bytes) -> Path:
    """Link every file of ``source`` into ``target`` except ``name``, which gets ``content``."""
    for file in source.rglob("*"):
        if file.is_file():
            destination = target / file.relative_to(source)
            destination.parent.mkdir(parents=True, exist_ok=True)
            if file.relative_to(source).as_posix() == name:
                destination.write_bytes(content)
            else:
                destination.symlink_to(file)
    return target


@pytest.mark.parametrize(
    "name", ["config.json", "vocab.txt", "model.safetensors", "1_Pooling/config.json"]
)
def test_a_tampered_file_is_refused(model_directory: Path, tmp_path: Path, name: str) -> None:
    original = (model_directory / name).read_bytes()
    content = original[:4096] if name == "model.safetensors" else original.replace(b"a", b"b", 1)
    copy = tampered_copy(model_directory, tmp_path / "copy", name, content)
    with pytest.raises(IntegrityError, match=f"{name} failed verification"):
        load_minilm(copy)


def test_a_deleted_pinned_file_is_refused(model_directory: Path, tmp_path: Path) -> None:
    """Dropping modules.json would silently turn normalisation off: it must fail instead."""
    copy = tampered_copy(model_directory, tmp_path / "copy", "modules.json", b"")
    (copy / "modules.json").unlink()
    with pytest.raises(NotFoundError, match="modules.json"):
        load_minilm(copy)


PEER_EDGE_TEXTS = [
    "I love you \U0001fa77",  # unassigned in older Python tables: one [UNK], not deleted
    "rare ideographs \U0002b820\U0002b91f\U0002b920 and \U00031350",  # CJK Extension E/F edges
    "\u0890price\u0891 \u061d end \u2e55x\u2e56",  # format and punctuation newer than the peer's tables
    "\u1100\u1161\u11a8 \uac01 \uf900\ufaff e\U0001d16d\U0001d165\u0301",  # jamo, compatibility, marks
]


def test_minilm_matches_sentence_transformers_where_unicode_versions_differ(
    encoder: MiniLMEncoder, model_directory: Path
) -> None:
    sentence_transformers = pytest.importorskip("sentence_transformers")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    reference = sentence_transformers.SentenceTransformer(str(model_directory), device="cpu")
    for text in PEER_EDGE_TEXTS:
        expected_ids = reference.tokenizer(text, truncation=True, max_length=256)["input_ids"]
        assert encoder.tokenizer.encode(text, max_length=256) == expected_ids, text
    expected = reference.encode(PEER_EDGE_TEXTS, convert_to_tensor=True)
    assert float((encoder.extract(PEER_EDGE_TEXTS) - expected).abs().max()) <= 1e-5
