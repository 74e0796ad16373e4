"""The encoder's speed paths stay correct: packed (unpadded) layers, and optional int8 linears."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from genarch import _int8
from genarch.data.datasets import python_docs
from genarch.errors import ConfigError, GenarchError
from genarch.features import (
    BertConfig,
    BertModel,
    MiniLMEncoder,
    find_minilm_directory,
    load_minilm,
)
from genarch.features import bert as bert_module
from genarch.testing import check_feature_extractor

needs_int8 = pytest.mark.skipif(
    not _int8.int8_kernels_available(),
    reason="this PyTorch build has no x86/fbgemm int8 linear kernel",
)

SMALL = BertConfig(vocab_size=40, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                   intermediate_size=64, max_position_embeddings=24)  # fmt: skip


def python_docs_sentences(count: int) -> list[str]:
    """Sentences of 5-30 words from Python's documentation, in a fixed order."""
    found = [
        sentence
        for document in python_docs()
        for sentence in re.split(r"(?<=[.!?])\s+", " ".join(document.text.split()))
        if 5 <= len(sentence.split()) <= 30
    ]
    return found[:: max(1, len(found) // count)][:count]


# ------------------------------------------------------------------ packed layers


def test_padding_changes_no_hidden_state_and_its_positions_are_zero() -> None:
    torch.manual_seed(0)
    model = BertModel(SMALL).eval()
    ids = torch.randint(5, SMALL.vocab_size, (3, 9))
    lengths = [9, 4, 1]
    mask = (torch.arange(9)[None, :] < torch.tensor(lengths)[:, None]).long()
    with torch.inference_mode():
        batched = model(ids, mask)
        for row, length in enumerate(lengths):
            alone = model(ids[row : row + 1, :length], torch.ones(1, length, dtype=torch.long))
            assert torch.allclose(batched[row, :length], alone[0], atol=1e-5), row
    assert torch.equal(batched[1, 4:], torch.zeros(5, SMALL.hidden_size))
    assert torch.equal(batched[2, 1:], torch.zeros(8, SMALL.hidden_size))


def test_a_sequence_that_is_all_padding_gives_zeros_not_nan() -> None:
    model = BertModel(SMALL).eval()
    ids = torch.tensor([[2, 7, 3], [0, 0, 0]])
    with torch.inference_mode():
        hidden = model(ids, torch.tensor([[1, 1, 1], [0, 0, 0]]))
    assert torch.isfinite(hidden).all()
    assert torch.equal(hidden[1], torch.zeros(3, SMALL.hidden_size))


# ------------------------------------------------------------------ int8 linears


@needs_int8
@pytest.mark.parametrize("weight_limit", [127, 63])  # VNNI CPUs, and the overflow-safe range
def test_an_int8_linear_is_close_to_its_float_layer(weight_limit: int) -> None:
    generator = torch.Generator().manual_seed(0)
    linear = nn.Linear(64, 48)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(48, 64, generator=generator) * 0.1)
    x = torch.randn(20, 64, generator=generator)
    quantized = bert_module._Int8Linear(linear, weight_limit)
    with torch.inference_mode():
        expected, actual = linear(x), quantized(x)
    # Error budget: 8-bit activations (per tensor) and weight_limit-level weights.
    tolerance = 0.05 * float(expected.abs().max())
    assert float((actual - expected).abs().max()) <= tolerance
    assert not torch.equal(actual, expected)  # it really is quantised
    assert quantized.weight_int8.dtype == torch.int8
    assert int(quantized.weight_int8.abs().max()) == weight_limit


@needs_int8
def test_smoothing_rescues_the_small_channels_from_an_outlier_channel() -> None:
    generator = torch.Generator().manual_seed(0)
    linear = nn.Linear(64, 48)
    x = torch.randn(200, 64, generator=generator)
    x[:, 3] *= 60.0  # one outlier channel, as transformers' activations have
    ranges = x.abs().amax(dim=0)
    weights = linear.weight.detach().abs().amax(dim=0)
    plain = bert_module._Int8Linear(linear, 127)
    smoothed = bert_module._Int8Linear(linear, 127, (ranges**0.5 / weights**0.5).clamp(min=1e-5))
    with torch.inference_mode():
        expected = linear(x)
        plain_error = float((plain(x) - expected).abs().mean())
        smoothed_error = float((smoothed(x) - expected).abs().mean())
    assert smoothed_error < plain_error / 3


@needs_int8
def test_quantize_int8_smooths_with_recorded_ranges_and_checks_them() -> None:
    torch.manual_seed(0)
    model = BertModel(SMALL).eval()
    ids = torch.randint(5, SMALL.vocab_size, (2, 7))
    mask = torch.ones(2, 7, dtype=torch.long)
    with torch.inference_mode():
        expected = model(ids, mask)
        ranges = model.linear_input_ranges(lambda: model(ids, mask))
    assert set(ranges) == {
        f"layers.{i}.{name}"
        for i in range(2)
        for name in ("qkv", "attention_out", "ffn_in", "ffn_out")
    }
    assert ranges["layers.0.ffn_out"].shape == (SMALL.intermediate_size,)
    assert not any(m._forward_hooks for m in model.modules())  # the hooks are gone
    with pytest.raises(ConfigError, match="alpha"):
        model.quantize_int8(ranges, alpha=1.5)
    with pytest.raises(ConfigError, match=r"input_ranges\['layers.0.qkv'\]"):
        model.quantize_int8({k: v for k, v in ranges.items() if k != "layers.0.qkv"})
    model.quantize_int8(ranges)
    with torch.inference_mode():
        actual = model(ids, mask)
    cosine = torch.nn.functional.cosine_similarity(actual.flatten(0, 1), expected.flatten(0, 1))
    assert float(cosine.min()) > 0.98


@needs_int8
def test_quantize_int8_replaces_every_linear_and_keeps_the_output_close() -> None:
    torch.manual_seed(0)
    model = BertModel(SMALL).eval()
    ids = torch.randint(5, SMALL.vocab_size, (2, 7))
    mask = torch.tensor([[1] * 7, [1] * 5 + [0] * 2])
    with torch.inference_mode():
        expected = model(ids, mask)
    model.quantize_int8()
    assert not any(isinstance(m, nn.Linear) for m in model.modules())
    assert all(t.dtype != torch.qint8 for t in model.state_dict().values())  # plain tensors
    with torch.inference_mode():
        actual = model(ids, mask)
    cosine = torch.nn.functional.cosine_similarity(actual[mask.bool()], expected[mask.bool()])
    assert float(cosine.min()) > 0.98


@pytest.fixture(scope="module")
def encoders() -> tuple[MiniLMEncoder, MiniLMEncoder]:
    try:
        find_minilm_directory()
    except GenarchError as error:
        pytest.skip(f"all-MiniLM-L6-v2 is not installed: {error}")
    if not _int8.int8_kernels_available():
        pytest.skip("this PyTorch build has no x86/fbgemm int8 linear kernel")
    return load_minilm(batch_size=16), load_minilm(batch_size=16, quantize="int8")


def test_int8_minilm_embeddings_are_close_to_float32_on_python_docs(
    encoders: tuple[MiniLMEncoder, MiniLMEncoder],
) -> None:
    fp32, int8 = encoders
    sentences = python_docs_sentences(48)
    expected, actual = fp32.extract(sentences), int8.extract(sentences)
    cosine = (expected * actual).sum(1)  # both are unit vectors
    assert float(cosine.mean()) >= 0.995
    assert float(cosine.min()) >= 0.99  # issue 18's goal, with SmoothQuant
    assert float(cosine.max()) < 1 - 1e-7  # the int8 path really ran
    assert torch.allclose(actual.norm(dim=1), torch.ones(len(sentences)), atol=1e-5)


def test_int8_minilm_passes_the_conformance_kit(
    encoders: tuple[MiniLMEncoder, MiniLMEncoder],
) -> None:
    _, int8 = encoders
    assert int8.config.quantize == "int8"
    check_feature_extractor(int8, ["A cat sits on the mat.", "Lists are mutable.", "", "x " * 40])


def test_int8_is_refused_off_the_cpu_and_unknown_schemes_are_refused() -> None:
    with pytest.raises(ConfigError, match="CPU only"):
        MiniLMEncoder(quantize="int8", device="meta")
    with pytest.raises(ConfigError, match="quantize"):
        MiniLMEncoder(quantize="int4")
    model = BertModel(SMALL).to("meta")
    with pytest.raises(ConfigError, match="CPU only"):
        model.quantize_int8()
