"""VAE: the Generator and latent-space contracts, the ELBO objective, persistence."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from genarch.errors import ConfigError, InvalidInputError
from genarch.models.image_common import interpolate
from genarch.models.vae import VAE, VAEConfig
from genarch.protocols import (
    ConditionalGenerator,
    LatentGenerator,
    TrainingObjective,
    is_conditional,
)
from genarch.schemas import ImageRequest
from genarch.testing import assert_same, check_generator, check_optimizer
from genarch.training import ObjectiveOptimizer, adamw


def tiny(num_classes: int = 10, **fields: object) -> VAE:
    torch.manual_seed(0)
    return VAE(VAEConfig(num_classes=num_classes, latent_dim=4, width=4, hidden=16, **fields))


@pytest.mark.parametrize("num_classes", [0, 10], ids=["unconditional", "conditional"])
def test_vae_passes_the_generator_conformance_kit_with_its_latent_space(num_classes: int) -> None:
    model = tiny(num_classes)
    label = 2 if num_classes else None
    requests = [
        ImageRequest(num_samples=3, label=label, seed=0),
        ImageRequest(num_samples=2, seed=1),
    ]
    invalid = [ImageRequest(label=10)] + ([] if num_classes else [ImageRequest(label=0)])
    check_generator(model, requests, invalid_requests=invalid)
    assert isinstance(model, LatentGenerator)
    assert isinstance(model, ConditionalGenerator)  # conditions are always described
    assert is_conditional(model) == bool(num_classes)


def test_encode_is_the_deterministic_posterior_mean() -> None:
    model = tiny()
    images = torch.rand(5, 1, 8, 8) * 2 - 1
    labels = torch.arange(5)
    mean, _ = model.posterior(images, model._one_hot(labels, 5))
    assert_same(model.encode(images, labels), mean.detach())
    assert_same(model.encode(images, labels), model.encode(images, labels))


def test_latents_and_images_of_the_wrong_shape_are_refused() -> None:
    model = tiny()
    with pytest.raises(InvalidInputError, match=r"\(N, 1, 8, 8\)"):
        model.encode(torch.zeros(2, 1, 16, 16))
    with pytest.raises(InvalidInputError, match=r"\(N, 4\)"):
        model.decode(torch.zeros(2, 5))
    with pytest.raises(InvalidInputError, match="labels must be in 0..9"):
        model.decode(torch.zeros(2, 4), torch.tensor([1, 11]))


@given(steps=st.integers(2, 9), spherical=st.booleans(), seed=st.integers(0, 1000))
def test_interpolation_runs_from_start_to_end(steps: int, spherical: bool, seed: int) -> None:
    start, end = torch.randn(2, 6, generator=torch.Generator().manual_seed(seed))
    path = interpolate(start, end, steps, spherical=spherical)
    assert path.shape == (steps, 6)
    assert_same(path[0], start, atol=1e-6)
    assert_same(path[-1], end, atol=1e-6)


@given(seed=st.integers(0, 1000))
def test_spherical_interpolation_keeps_the_norm_of_equal_norm_latents(seed: int) -> None:
    start, end = torch.nn.functional.normalize(
        torch.randn(2, 6, generator=torch.Generator().manual_seed(seed))
    )
    norms = interpolate(start * 3, end * 3, 7, spherical=True).norm(dim=1)
    assert_same(norms, torch.full((7,), 3.0), atol=1e-4)
    midpoint = interpolate(start, end, 3)[1]
    assert_same(midpoint, (start + end) / 2, atol=1e-6)


def test_interpolation_refuses_mismatched_endpoints() -> None:
    with pytest.raises(InvalidInputError, match="same shape"):
        tiny().interpolate(torch.zeros(4), torch.zeros(5), 3)


def test_log_prob_is_a_deterministic_float64_elbo_per_image() -> None:
    model = tiny(0)
    images = torch.rand(3, 1, 8, 8) * 2 - 1
    scores = model.log_prob(images)
    assert scores.dtype == torch.float64
    assert scores.shape == (3,)
    assert_same(model.log_prob(images), scores)


def test_beta_weighs_the_kl_term() -> None:
    model = tiny(0)
    images = torch.rand(3, 1, 8, 8) * 2 - 1
    noise = torch.randn(3, 4)
    condition = model._one_hot(None, 3)
    plain = model.elbo_terms(images, condition, noise)
    model._config = model.config.model_copy(update={"beta": 4.0})
    heavy = model.elbo_terms(images, condition, noise)
    assert_same(heavy.elbo, plain.reconstruction - 4.0 * plain.kl, atol=1e-4)


def test_bad_config_values_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="observation_std"):
        VAEConfig(observation_std=0)


def test_the_elbo_objective_trains_through_the_optimizer_kit() -> None:
    images = torch.rand(3, 4, 1, 8, 8) * 2 - 1
    labels = torch.randint(10, (3, 4), generator=torch.Generator().manual_seed(0))

    def make() -> ObjectiveOptimizer[object]:
        return ObjectiveOptimizer(tiny().objective(), optimizer=adamw(1e-3), seed=0)

    assert isinstance(tiny().objective(), TrainingObjective)
    check_optimizer(make, [(images[i], labels[i]) for i in range(3)],
                    invalid_batches=[torch.zeros(2, 1, 4, 4)])  # fmt: skip


def test_training_lowers_the_negative_elbo_on_digits() -> None:
    pytest.importorskip("sklearn")
    from genarch.data.digits import load_digits
    from genarch.models.image_training import train_objective

    digits = load_digits()
    model = tiny()
    before = -float(model.log_prob(digits.test.inputs, digits.test.labels).mean())
    train_objective(
        model.objective(), digits.train.as_batch(), steps=25, batch_size=64, learning_rate=3e-3
    )
    after = -float(model.log_prob(digits.test.inputs, digits.test.labels).mean())
    assert after < before - 50  # nats per image, on held-out digits


def test_a_save_interrupted_between_its_two_renames_still_loads(tmp_path) -> None:
    model = tiny()
    model.save(tmp_path / "vae")
    # the old copy moved aside, the new one not yet in place:
    (tmp_path / "vae").rename(tmp_path / ".vae.old-1-2")
    request = ImageRequest(num_samples=2, label=1, seed=0)
    assert_same(VAE.load(tmp_path / "vae").generate(request), model.generate(request))
