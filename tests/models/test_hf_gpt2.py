"""Hugging Face GPT-2 checkpoints load into genarch's GPT and give transformers' logits."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from genarch.errors import ConfigError, IntegrityError, InvalidInputError, NotFoundError
from genarch.models import TextGenerator, config_from_hf_gpt2, load_hf_gpt2
from genarch.schemas import TextRequest
from models.gpt_testing import ByteTokenizer, one_torch_thread


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


transformers = pytest.importorskip("transformers")


def save_random_gpt2(directory: Path, **overrides: object) -> torch.nn.Module:
    """A randomly initialised GPT2LMHeadModel saved as config.json + model.safetensors."""
    fields: dict[str, object] = {
        "vocab_size": 256,
        "n_positions": 40,
        "n_embd": 32,
        "n_layer": 2,
        "n_head": 4,
        "bos_token_id": 0,
        "eos_token_id": 0,
    }
    fields.update(overrides)
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config(**fields)).eval()
    with torch.no_grad():  # make biases and norms non-trivial, so a mix-up would show
        for name, parameter in model.named_parameters():
            if name.endswith("bias") or ".ln_" in name:
                parameter.add_(torch.randn_like(parameter) * 0.1)
    model.save_pretrained(directory, safe_serialization=True)
    return model


@pytest.mark.parametrize(
    "overrides",
    [{}, {"tie_word_embeddings": False}, {"n_inner": 48, "activation_function": "gelu"}],
    ids=["tied", "untied", "exact-gelu"],
)
def test_loaded_gpt2_gives_the_logits_of_transformers(
    tmp_path: Path, overrides: dict[str, object]
) -> None:
    reference = save_random_gpt2(tmp_path, **overrides)
    model = load_hf_gpt2(tmp_path).eval()
    idx = torch.randint(0, 256, (3, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = reference(idx).logits
        actual = model(idx)
    assert (actual - expected).abs().max().item() <= 1e-4


def test_greedy_generation_matches_transformers_generate(tmp_path: Path) -> None:
    reference = save_random_gpt2(tmp_path)
    generator = TextGenerator(load_hf_gpt2(tmp_path), ByteTokenizer())
    prompt = "Hello"
    ids = torch.tensor([list(prompt.encode())])
    with torch.no_grad():
        expected = reference.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=20,
            min_new_tokens=20,
            do_sample=False,
            pad_token_id=0,
        )[0, ids.shape[1] :].tolist()
    result = generator.generate(TextRequest(prompt=prompt, max_new_tokens=20, temperature=0))
    assert list(result.token_ids) == expected


def test_a_missing_file_is_not_found(tmp_path: Path) -> None:
    save_random_gpt2(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(NotFoundError, match="model.safetensors"):
        load_hf_gpt2(tmp_path)


def test_weights_of_another_size_are_refused(tmp_path: Path) -> None:
    save_random_gpt2(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["n_embd"] = 64
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(IntegrityError, match="shape"):
        load_hf_gpt2(tmp_path)


@pytest.mark.parametrize(
    "change",
    [
        {"activation_function": "relu"},
        {"scale_attn_by_inverse_layer_idx": True},
        {"model_type": "llama"},
        {"n_head": 5},
    ],
)
def test_unsupported_gpt2_configs_are_refused(change: dict[str, object]) -> None:
    base = {"vocab_size": 256, "n_positions": 40, "n_embd": 32, "n_layer": 2, "n_head": 4}
    with pytest.raises(ConfigError):
        config_from_hf_gpt2({**base, **change})


def test_a_prompt_that_fills_the_context_continues_as_in_transformers(tmp_path: Path) -> None:
    reference = save_random_gpt2(tmp_path)  # n_positions = 40
    generator = TextGenerator(load_hf_gpt2(tmp_path), ByteTokenizer())
    prompt = "The context holds forty tokens, exactly."
    assert len(prompt) == 40
    ids = torch.tensor([list(prompt.encode())])
    with torch.no_grad():  # transformers accepts it and predicts from the full context
        expected = reference.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=1,
            do_sample=False,
            pad_token_id=0,
        )[0, ids.shape[1] :].tolist()
    result = generator.generate(TextRequest(prompt=prompt, max_new_tokens=5, temperature=0))
    assert list(result.token_ids) == expected  # one token: the next would need position 40
    assert result.finish_reason == "end"
    with pytest.raises(InvalidInputError, match="41 tokens long"):
        generator.generate(TextRequest(prompt=prompt + "!", max_new_tokens=1))


def test_generation_near_the_context_end_matches_transformers(tmp_path: Path) -> None:
    reference = save_random_gpt2(tmp_path)
    generator = TextGenerator(load_hf_gpt2(tmp_path), ByteTokenizer())
    prompt = "x" * 37  # room for 3 fed positions, so 4 new tokens in all
    ids = torch.tensor([list(prompt.encode())])
    with torch.no_grad():
        expected = reference.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=4,
            min_new_tokens=4,
            do_sample=False,
            pad_token_id=0,
        )[0, ids.shape[1] :].tolist()
    result = generator.generate(TextRequest(prompt=prompt, max_new_tokens=10, temperature=0))
    assert list(result.token_ids) == expected


@pytest.mark.parametrize("field", ["vocab_size", "n_positions", "n_embd", "n_layer"])
def test_a_config_with_an_absurd_size_is_refused_before_anything_is_allocated(
    tmp_path: Path, field: str
) -> None:
    save_random_gpt2(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config[field] = 2**40
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match=field if field != "n_positions" else "context_length"):
        load_hf_gpt2(tmp_path)


def test_weights_of_another_shape_are_refused_before_the_model_is_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_random_gpt2(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["vocab_size"] = 50_000  # the file holds 256 rows
    (tmp_path / "config.json").write_text(json.dumps(config))
    devices = []
    monkeypatch.setattr(
        torch.nn.Embedding, "reset_parameters", lambda self: devices.append(self.weight.device.type)
    )
    with pytest.raises(IntegrityError, match=r"wte\.weight.*\(256, 32\).*\(50000, 32\)"):
        load_hf_gpt2(tmp_path)
    assert set(devices) <= {"meta"}, "no layer may be allocated before the shapes are checked"


@pytest.mark.parametrize("hf_config", [None, [], "gpt2", {"vocab_size": "many"}])
def test_a_config_that_is_not_a_gpt2_mapping_is_a_config_error(hf_config: object) -> None:
    with pytest.raises(ConfigError):
        config_from_hf_gpt2(hf_config)  # type: ignore[arg-type]
