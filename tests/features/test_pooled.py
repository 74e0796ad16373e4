"""Mean-pooled hidden states of a transformer as sentence features.

:class:`MeanPooledEncoder` is in the features layer; its GPT adapter
:class:`GPTMeanPooledEncoder` in the models layer, beside the GPT.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from genarch.data import ByteTokenizer
from genarch.errors import ConfigError, IntegrityError, InvalidInputError, NotFoundError
from genarch.features import MeanPooledEncoder
from genarch.models.gpt_embeddings import GPTMeanPooledEncoder, GPTMeanPooledEncoderConfig
from genarch.models.transformer import GPT
from genarch.testing import check_feature_extractor, feature_extractor_checks, run_checks

TEXTS = ["hello", "hello world", "a longer sentence about Python lists", "", "ünïcödé ✓"]


def small_gpt(seed: int = 0, **fields: object) -> GPT:
    torch.manual_seed(seed)
    settings = {"vocab_size": 256, "context_length": 32, "n_layer": 2, "n_head": 2, "n_embd": 16}
    return GPT(**{**settings, **fields})  # type: ignore[arg-type]


def test_gpt_encoder_passes_the_conformance_kit() -> None:
    check_feature_extractor(GPTMeanPooledEncoder(small_gpt(), ByteTokenizer()), TEXTS)


def test_gpt_encoder_is_the_mean_of_the_hidden_states() -> None:
    gpt = small_gpt()
    encoder = GPTMeanPooledEncoder(gpt, ByteTokenizer())
    ids = torch.tensor([ByteTokenizer().encode("hello world")])
    with torch.no_grad():
        expected = gpt.hidden_states(ids).mean(dim=1)
    assert torch.allclose(encoder.extract(["hello world"]), expected, atol=1e-6)


def test_long_texts_are_truncated_and_empty_texts_are_zero() -> None:
    encoder = GPTMeanPooledEncoder(small_gpt(), ByteTokenizer(), max_length=8)
    long, prefix, empty = encoder.extract(["abcdefgh" + "z" * 100, "abcdefgh", ""])
    assert torch.allclose(long, prefix, atol=1e-6)
    assert torch.equal(empty, torch.zeros(16))


def test_normalized_vectors_have_unit_length() -> None:
    encoder = GPTMeanPooledEncoder(small_gpt(), ByteTokenizer(), normalize=True)
    norms = encoder.extract(TEXTS[:3]).norm(dim=1)
    assert torch.allclose(norms, torch.ones(3), atol=1e-5)


def test_save_load_keeps_the_trained_weights(tmp_path) -> None:
    encoder = GPTMeanPooledEncoder(small_gpt(seed=3), ByteTokenizer(), max_length=16)
    encoder.save(tmp_path / "encoder")
    loaded = GPTMeanPooledEncoder.load(tmp_path / "encoder")
    assert torch.equal(loaded.extract(TEXTS), encoder.extract(TEXTS))
    fresh = GPTMeanPooledEncoder.from_config(encoder.config)
    assert fresh.config == encoder.config
    assert not torch.equal(
        fresh.extract(TEXTS[:1]), encoder.extract(TEXTS[:1])
    )  # untrained weights


def test_load_refuses_missing_and_foreign_directories(tmp_path) -> None:
    with pytest.raises(NotFoundError):
        GPTMeanPooledEncoder.load(tmp_path)
    (tmp_path / "encoder.json").write_text('{"format": "other"}')
    with pytest.raises(IntegrityError):
        GPTMeanPooledEncoder.load(tmp_path)


def test_load_after_a_save_interrupted_between_its_renames(
    tmp_path: Path, interrupt_between_renames: Callable[[Path], None]
) -> None:
    encoder = GPTMeanPooledEncoder(small_gpt(seed=3), ByteTokenizer(), max_length=16)
    encoder.save(tmp_path / "encoder")
    interrupt_between_renames(tmp_path / "encoder")
    loaded = GPTMeanPooledEncoder.load(tmp_path / "encoder")
    assert torch.equal(loaded.extract(TEXTS), encoder.extract(TEXTS))


def test_load_reads_a_save_of_the_previous_release(tmp_path: Path) -> None:
    # the layout GPTMeanPooledEncoder.save wrote before genarch.persistence
    gpt = small_gpt(seed=3)
    gpt.save(tmp_path / "model")
    ByteTokenizer().save(tmp_path / "tokenizer")
    settings = {
        "format": "genarch.GPTMeanPooledEncoder",
        "max_length": 16,
        "normalize": True,
        "batch_size": 4,
    }
    (tmp_path / "encoder.json").write_text(json.dumps(settings, indent=2) + "\n")
    loaded = GPTMeanPooledEncoder.load(tmp_path)
    expected = GPTMeanPooledEncoder(gpt, ByteTokenizer(), max_length=16, normalize=True)
    assert (loaded.config.max_length, loaded.config.batch_size) == (16, 4)
    assert torch.equal(loaded.extract(TEXTS), expected.extract(TEXTS))


def test_save_keeps_its_layout_and_format(tmp_path: Path) -> None:
    GPTMeanPooledEncoder(small_gpt(), ByteTokenizer()).save(tmp_path / "encoder")
    names = {p.name for p in (tmp_path / "encoder").iterdir()}
    assert names == {"encoder.json", "model", "tokenizer", "SHA256SUMS"}
    settings = json.loads((tmp_path / "encoder" / "encoder.json").read_text())
    assert settings == {
        "format": "genarch.GPTMeanPooledEncoder",
        "max_length": None,
        "normalize": False,
        "batch_size": 32,
    }


def test_a_save_without_its_tokenizer_is_damaged_not_absent(tmp_path: Path) -> None:
    GPTMeanPooledEncoder(small_gpt(), ByteTokenizer()).save(tmp_path / "encoder")
    for file in (tmp_path / "encoder" / "tokenizer").iterdir():
        file.unlink()
    (tmp_path / "encoder" / "tokenizer").rmdir()
    with pytest.raises(IntegrityError, match="GPTMeanPooledEncoder"):
        GPTMeanPooledEncoder.load(tmp_path / "encoder")


def test_the_features_import_path_still_works_with_a_warning() -> None:
    import genarch.features
    import genarch.features.pooled

    for module in (genarch.features, genarch.features.pooled):
        with pytest.warns(DeprecationWarning, match="genarch.models.gpt_embeddings"):
            assert module.GPTMeanPooledEncoder is GPTMeanPooledEncoder
        with pytest.warns(DeprecationWarning, match="genarch.models.gpt_embeddings"):
            assert module.GPTMeanPooledEncoderConfig is GPTMeanPooledEncoderConfig


def test_gpt_encoder_refuses_mismatched_parts() -> None:
    with pytest.raises(ConfigError, match="reads only 100"):
        GPTMeanPooledEncoder(small_gpt(vocab_size=100), ByteTokenizer())
    with pytest.raises(ConfigError, match="context length"):
        GPTMeanPooledEncoder(small_gpt(), ByteTokenizer(), max_length=64)
    with pytest.raises(ConfigError, match="genarch GPT"):
        GPTMeanPooledEncoder(torch.nn.Linear(2, 2), ByteTokenizer())  # type: ignore[arg-type]


# ------------------------------------------------------------------ any module


class Bidirectional(torch.nn.Module):
    """Every state depends on the whole sequence, so padding would change it."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.table = torch.nn.Embedding(256, 8)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.table(ids)  # (B, T, 8)
        return x + x.mean(dim=1, keepdim=True)


def test_any_module_passes_the_kit_without_persistence() -> None:
    encoder = MeanPooledEncoder(Bidirectional(), ByteTokenizer(), dim=8, max_length=64)
    assert not hasattr(encoder, "save")
    run_checks(feature_extractor_checks(encoder, TEXTS, atol=1e-6))


def test_texts_are_never_padded_so_batches_do_not_change_results() -> None:
    encoder = MeanPooledEncoder(
        Bidirectional(), ByteTokenizer(), dim=8, max_length=64, batch_size=2
    )
    together = encoder.extract(["ab", "abcdef", "xy", "q"])
    alone = torch.cat([encoder.extract([t]) for t in ["ab", "abcdef", "xy", "q"]])
    assert torch.equal(together, alone)


def test_a_model_with_the_wrong_output_shape_is_reported() -> None:
    encoder = MeanPooledEncoder(torch.nn.Embedding(256, 4), ByteTokenizer(), dim=8, max_length=16)
    with pytest.raises(InvalidInputError, match="it returned"):
        encoder.extract(["abc"])


def test_generic_encoder_validates_its_arguments() -> None:
    with pytest.raises(ConfigError):
        MeanPooledEncoder(Bidirectional(), ByteTokenizer(), dim=0, max_length=8)
    with pytest.raises(ConfigError):
        MeanPooledEncoder("not a model", ByteTokenizer(), dim=8, max_length=8)  # type: ignore[arg-type]
    encoder = MeanPooledEncoder(Bidirectional(), ByteTokenizer(), dim=8, max_length=8)
    with pytest.raises(InvalidInputError):
        encoder.extract("text")  # type: ignore[arg-type]
