"""What the VAE, GAN and diffusion model share: config shell, conditions, persistence."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from genarch.errors import ConfigError, IntegrityError, NotFoundError
from genarch.models import GAN, VAE, DDIMSampler, Diffusion, NoiseSchedule
from genarch.protocols import is_conditional
from genarch.schemas import ImageRequest
from genarch.testing import assert_same

ModelType = type[VAE] | type[GAN] | type[Diffusion]

TINY: dict[ModelType, dict[str, object]] = {
    VAE: {"latent_dim": 4, "width": 4, "hidden": 16},
    GAN: {"latent_dim": 8, "width": 4},
    Diffusion: {"width": 8, "schedule": NoiseSchedule(num_timesteps=10), "sampler": DDIMSampler(steps=3)},
}  # fmt: skip
FORMATS = {VAE: "genarch.vae/1", GAN: "genarch.gan/1", Diffusion: "genarch.diffusion/1"}
models = pytest.mark.parametrize("model_type", list(TINY), ids=lambda t: t.__name__)


def tiny(model_type: ModelType, num_classes: int = 10) -> VAE | GAN | Diffusion:
    torch.manual_seed(0)
    return model_type(num_classes=num_classes, **TINY[model_type])  # type: ignore[arg-type]


# ---------------------------------------------------------------------- the config


@models
def test_a_config_and_keyword_fields_together_are_refused(model_type: ModelType) -> None:
    config = tiny(model_type).config
    with pytest.raises(ConfigError, match="not both"):
        model_type(config, width=16)  # type: ignore[arg-type]


@models
def test_keyword_fields_build_the_same_config_as_the_config(model_type: ModelType) -> None:
    config = tiny(model_type).config
    assert model_type(**dict(config)).config == config
    assert model_type.from_config(config.model_dump(mode="json")).config == config


@models
def test_unknown_keyword_fields_are_config_errors(model_type: ModelType) -> None:
    with pytest.raises(ConfigError, match="widht"):
        model_type(widht=4)


# ---------------------------------------------------------------------- conditions


@models
def test_an_unconditional_model_has_empty_conditions(model_type: ModelType) -> None:
    model = tiny(model_type, num_classes=0)
    assert model.conditions == {}
    assert not is_conditional(model)


@models
def test_a_conditional_model_lists_its_labels(model_type: ModelType) -> None:
    model = tiny(model_type, num_classes=3)
    assert model.conditions == {"label": ["0", "1", "2"]}
    assert is_conditional(model)


# --------------------------------------------------------------------- persistence


@models
def test_a_save_interrupted_between_its_two_renames_still_loads(
    model_type: ModelType, tmp_path: Path
) -> None:
    model = tiny(model_type)
    model.save(tmp_path / "m")
    # the old copy moved aside, the new one not yet in place:
    (tmp_path / "m").rename(tmp_path / ".m.old-1-2")
    request = ImageRequest(num_samples=2, label=1, seed=0)
    assert_same(model_type.load(tmp_path / "m").generate(request), model.generate(request))


@models
def test_a_save_of_the_first_release_loads(model_type: ModelType, tmp_path: Path) -> None:
    """config.json ({"format": kind, "config": ...}) and model.safetensors with every weight."""
    from safetensors.torch import save_file

    model = tiny(model_type)
    (tmp_path / "m").mkdir()
    state = {name: t.contiguous() for name, t in model.state_dict().items()}
    save_file(state, str(tmp_path / "m" / "model.safetensors"))
    document = {"format": FORMATS[model_type], "config": model.config.model_dump(mode="json")}
    (tmp_path / "m" / "config.json").write_text(json.dumps(document))
    request = ImageRequest(num_samples=2, label=1, seed=0)
    assert_same(model_type.load(tmp_path / "m").generate(request), model.generate(request))


@models
def test_load_of_nothing_is_not_found(model_type: ModelType, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=FORMATS[model_type]):
        model_type.load(tmp_path / "nothing")


@models
def test_weights_of_another_config_are_an_integrity_error(
    model_type: ModelType, tmp_path: Path
) -> None:
    tiny(model_type).save(tmp_path / "m")
    document = json.loads((tmp_path / "m" / "config.json").read_text())
    document["config"]["width"] = 16
    (tmp_path / "m" / "config.json").write_text(json.dumps(document))
    with pytest.raises(IntegrityError, match=re.escape(str(tmp_path / "m"))):
        model_type.load(tmp_path / "m")
