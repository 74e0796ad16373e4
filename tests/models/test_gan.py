"""GAN: the Generator contract, both losses, spectral norm, EMA, two-player training."""

from __future__ import annotations

import pytest
import torch

from genarch.errors import InvalidInputError
from genarch.models.gan import GAN, GANConfig, GANObjective
from genarch.protocols import ConditionalGenerator, TrainingObjective, is_conditional
from genarch.schemas import ImageRequest
from genarch.testing import assert_same, check_generator, check_optimizer
from genarch.training import ObjectiveOptimizer, adamw


def tiny(num_classes: int = 10, **fields: object) -> GAN:
    torch.manual_seed(0)
    return GAN(GANConfig(num_classes=num_classes, latent_dim=8, width=4, **fields))


VARIANTS = {
    "conditional-hinge-sn-ema": {"num_classes": 10, "loss": "hinge", "spectral_norm": True, "ema_decay": 0.9},
    "unconditional-nonsaturating-plain": {"num_classes": 0, "loss": "non_saturating", "spectral_norm": False,
                                          "ema_decay": 0.0},
}  # fmt: skip


@pytest.mark.parametrize("fields", VARIANTS.values(), ids=VARIANTS.keys())
def test_gan_passes_the_generator_conformance_kit(fields: dict[str, object]) -> None:
    model = tiny(**fields)  # type: ignore[arg-type]
    label = 4 if fields["num_classes"] else None
    requests = [
        ImageRequest(num_samples=3, label=label, seed=0),
        ImageRequest(num_samples=2, seed=5),
    ]
    invalid = [ImageRequest(label=10)] + ([] if fields["num_classes"] else [ImageRequest(label=1)])
    check_generator(model, requests, invalid_requests=invalid)
    assert isinstance(model, ConditionalGenerator)  # conditions are always described
    assert is_conditional(model) == bool(fields["num_classes"])


def batches(count: int = 3) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    return [(torch.rand(6, 1, 8, 8, generator=generator) * 2 - 1, torch.randint(10, (6,), generator=generator))
            for _ in range(count)]  # fmt: skip


@pytest.mark.parametrize("fields", VARIANTS.values(), ids=VARIANTS.keys())
def test_two_player_training_passes_the_optimizer_conformance_kit(
    fields: dict[str, object],
) -> None:
    def make() -> ObjectiveOptimizer[object]:
        return ObjectiveOptimizer(tiny(**fields).objective(), optimizer=adamw(1e-3), seed=0)  # type: ignore[arg-type]

    check_optimizer(make, batches(), invalid_batches=[torch.zeros(2, 1, 8, 9)])


def test_one_step_updates_the_discriminator_then_the_generator() -> None:
    model = tiny()
    objective = model.objective()
    assert isinstance(objective, TrainingObjective)
    assert list(objective.players()) == ["discriminator", "generator"]
    report = ObjectiveOptimizer(objective, optimizer=adamw(1e-3), seed=0).step(batches(1)[0])
    assert set(report.losses) == {"discriminator", "generator"}


def test_the_ema_follows_the_generator_once_per_step() -> None:
    model = tiny(ema_decay=0.5)
    assert model.ema_generator is not None
    start = [p.clone() for p in model.ema_generator.parameters()]
    objective = model.objective()
    optimizer = ObjectiveOptimizer(objective, optimizer=adamw(1e-2), seed=0)
    optimizer.step(batches(1)[0])
    assert all(
        torch.equal(a, b) for a, b in zip(start, model.ema_generator.parameters(), strict=True)
    )
    objective.finish()  # folds the step's generator update in: ema = 0.5 ema + 0.5 g
    for before, averaged, current in zip(start, model.ema_generator.parameters(), model.generator.parameters(),
                                         strict=True):  # fmt: skip
        assert_same(averaged, 0.5 * before + 0.5 * current, atol=1e-6)


def test_generate_uses_the_ema_generator_when_there_is_one() -> None:
    model = tiny(ema_decay=0.9)
    with torch.no_grad():
        for p in model.generator.parameters():
            p.add_(1.0)  # the raw generator moves; the EMA copy does not
    z = torch.randn(2, 8)
    labels = torch.tensor([1, 2])
    assert model.sampling_generator() is model.ema_generator
    assert_same(model.decode(z, labels), model.ema_generator.eval()(z, labels))


def test_losses_refuse_unknown_players_and_bad_batches() -> None:
    objective = GANObjective(tiny())
    with pytest.raises(InvalidInputError, match="players"):
        objective.loss("critic", batches(1)[0])
    with pytest.raises(InvalidInputError, match="labels"):
        objective.loss("generator", (torch.zeros(2, 1, 8, 8), torch.tensor([0.5, 1.5])))


@pytest.mark.parametrize("loss", ["hinge", "non_saturating"])
def test_the_discriminator_learns_to_tell_digits_from_generated_images(loss: str) -> None:
    model = tiny(0, loss=loss, ema_decay=0.0)
    real = torch.zeros(32, 1, 8, 8)
    real[:, :, 2:6, 3:5] = 1.0  # a bar: easy to tell from the untrained generator's output
    objective = model.objective()
    optimizer = torch.optim.Adam(
        model.discriminator.parameters(), lr=1e-2
    )  # the generator stays put
    losses = []
    for step in range(20):
        torch.manual_seed(step)
        loss = objective.loss("discriminator", real)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]
