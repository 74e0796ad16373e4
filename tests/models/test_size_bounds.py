"""Sizes are bounded: configs, saved configs and requests that would allocate without
bound fail with a clear error before anything is allocated; large allowed
requests are generated in bounded batches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from genarch._io import write_manifest
from genarch.errors import ConfigError, IntegrityError, InvalidInputError
from genarch.models import GAN, GPT, VAE, GPTConfig
from genarch.models.diffusion import DDIMSampler, Diffusion, DiffusionConfig, NoiseSchedule
from genarch.schemas import MAX_IMAGE_SAMPLES, ImageRequest
from models.gpt_testing import tiny_config


@pytest.mark.parametrize(
    "field",
    ["vocab_size", "context_length", "n_layer", "n_head", "n_embd", "mlp_hidden"],
)
def test_every_size_of_a_gpt_config_is_bounded(field: str) -> None:
    with pytest.raises(ConfigError, match=f"GPTConfig.{field}"):
        tiny_config(**{field: 2**40})


def test_a_gpt_config_whose_sizes_together_are_absurd_is_refused() -> None:
    with pytest.raises(ConfigError, match="parameters"):
        GPTConfig(vocab_size=2**24, n_embd=2**14, n_head=2)


def test_building_a_gpt_of_an_absurd_vocabulary_fails_before_allocating() -> None:
    with pytest.raises(ConfigError, match="vocab_size"):
        GPT(GPTConfig(vocab_size=2**40, n_layer=1, n_head=1, n_embd=8))


def _save_then_edit_config(tmp_path: Path, **changes: object) -> Path:
    torch.manual_seed(0)
    GPT(tiny_config()).save(tmp_path / "m")
    document = json.loads((tmp_path / "m" / "config.json").read_text())
    document["config"].update(changes)
    (tmp_path / "m" / "config.json").write_text(json.dumps(document))
    write_manifest(tmp_path / "m")  # consistent hashes: only the config is wrong
    return tmp_path / "m"


def test_a_saved_config_with_an_absurd_vocabulary_is_refused_before_allocating(
    tmp_path: Path,
) -> None:
    saved = _save_then_edit_config(tmp_path, vocab_size=2**40)
    with pytest.raises(IntegrityError, match="vocab_size"):
        GPT.load(saved)


def test_a_saved_config_that_does_not_fit_its_weights_fails_before_the_model_is_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved = _save_then_edit_config(tmp_path, vocab_size=5_000_000)  # the weights hold 256 rows
    devices: list[str] = []
    monkeypatch.setattr(
        torch.nn.Embedding, "reset_parameters", lambda self: devices.append(self.weight.device.type)
    )
    with pytest.raises(IntegrityError, match=r"wte\.weight has shape \(256, 32\)"):
        GPT.load(saved)
    assert set(devices) <= {"meta"}, "the model was allocated before the shapes were checked"


# ---------------------------------------------------------------------- image models


def _image_models() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    return {
        "vae": VAE(latent_dim=4, width=4, hidden=16),
        "gan": GAN(latent_dim=4, width=4),
        "diffusion": Diffusion(
            DiffusionConfig(
                width=8, schedule=NoiseSchedule(num_timesteps=10), sampler=DDIMSampler(steps=3)
            )
        ),
    }


MODELS = _image_models()


def test_an_image_request_for_unbounded_samples_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="num_samples"):
        ImageRequest(num_samples=10**9)
    with pytest.raises(InvalidInputError, match="num_samples"):
        ImageRequest(num_samples=MAX_IMAGE_SAMPLES + 1)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_each_image_model_caps_the_samples_of_a_request(name: str) -> None:
    model = MODELS[name]
    with pytest.raises(InvalidInputError, match="max_request_samples"):
        model.generate(ImageRequest(num_samples=10_000))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_request_that_skipped_validation_is_still_capped(name: str) -> None:
    with pytest.raises(InvalidInputError, match="num_samples"):
        MODELS[name].generate(ImageRequest.model_construct(num_samples=10**9))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_cap_is_configurable_per_model(name: str) -> None:
    model = _image_models()[name]
    model.max_request_samples = 2
    assert model.generate(ImageRequest(num_samples=2, seed=0)).images.shape[0] == 2
    with pytest.raises(InvalidInputError, match=r"max_request_samples \(2\)"):
        model.generate(ImageRequest(num_samples=3, seed=0))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_large_request_is_generated_in_batches_with_the_same_images(name: str) -> None:
    model = _image_models()[name]
    whole = model.generate(ImageRequest(num_samples=7, seed=3)).images
    calls: list[int] = []
    network = getattr(
        model, {"vae": "decoder", "gan": "ema_generator", "diffusion": "denoiser"}[name]
    )
    handle = network.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    model.generation_batch_size = 3
    try:
        batched = model.generate(ImageRequest(num_samples=7, seed=3)).images
    finally:
        handle.remove()
    assert max(calls) <= 3, f"a forward pass saw {max(calls)} images"
    torch.testing.assert_close(batched, whole)  # deterministic samplers: batching changes nothing


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: VAE(width=10**6), "width"),
        (lambda: VAE(hidden=10**9), "hidden"),
        (lambda: VAE(num_classes=10**9), "num_classes"),
        (lambda: GAN(width=10**6), "width"),
        (lambda: Diffusion(width=8 * 10**6), "width"),
        (lambda: Diffusion(guidance_scale=float("inf")), "guidance_scale"),
        (lambda: DDIMSampler(steps=10**9), "steps"),
    ],
)
def test_image_model_sizes_are_bounded(build: object, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        build()  # type: ignore[operator]


def test_a_saved_image_model_whose_config_does_not_fit_its_weights_fails_before_allocating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    MODELS["vae"].save(tmp_path / "v")
    document = json.loads((tmp_path / "v" / "config.json").read_text())
    document["config"]["hidden"] = 60_000
    (tmp_path / "v" / "config.json").write_text(json.dumps(document))
    write_manifest(tmp_path / "v")
    devices: list[str] = []
    monkeypatch.setattr(
        torch.nn.Linear, "reset_parameters", lambda self: devices.append(self.weight.device.type)
    )
    with pytest.raises(IntegrityError, match="shape"):
        VAE.load(tmp_path / "v")
    assert set(devices) <= {"meta"}
