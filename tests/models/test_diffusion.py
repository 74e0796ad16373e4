"""Diffusion: schedules, DDPM/DDIM samplers as stateless objects, guidance, training, the Generator contract."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from genarch.data.point_clouds import two_moons
from genarch.errors import ConfigError, IntegrityError, InvalidInputError, NotFoundError
from genarch.models.diffusion import (
    DDIMSampler,
    DDPMSampler,
    Diffusion,
    DiffusionConfig,
    DiffusionObjective,
    DiffusionRequest,
    NoiseSchedule,
    guided_noise,
    sample,
)
from genarch.protocols import ConditionalGenerator, Generator, TrainingObjective, is_conditional
from genarch.schemas import ImageRequest
from genarch.testing import assert_same, check_generator, check_optimizer
from genarch.training import ObjectiveOptimizer, adamw


def tiny(num_classes: int = 10, **fields: object) -> Diffusion:
    torch.manual_seed(0)
    config = {"num_classes": num_classes, "width": 8, "schedule": NoiseSchedule(num_timesteps=20),
              "sampler": DDIMSampler(steps=4), **fields}  # fmt: skip
    return Diffusion(DiffusionConfig(**config))


class GaussianData:
    """The exact noise predictor for data ~ N(mean, std²) (E[ε | x_t] in closed form)."""

    num_classes = 0
    data_shape = (1,)

    def __init__(self, schedule: NoiseSchedule, mean: float, std: float) -> None:
        self.abar = schedule.alphas_cumprod()
        self.mean, self.std = mean, std

    def __call__(
        self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None
    ) -> torch.Tensor:
        abar = self.abar[t].to(x.dtype)[:, None]
        variance = abar * self.std**2 + 1 - abar
        return (1 - abar).sqrt() * (x - abar.sqrt() * self.mean) / variance


# ---------------------------------------------------------------------- schedules


@given(kind=st.sampled_from(["linear", "cosine"]), steps=st.integers(2, 2000))
def test_alphas_cumprod_fall_from_nearly_one_towards_zero(kind: str, steps: int) -> None:
    abar = NoiseSchedule(kind=kind, num_timesteps=steps).alphas_cumprod()
    assert abar.shape == (steps,)
    assert abar.dtype == torch.float64
    assert bool((abar > 0).all())
    assert bool((abar < 1).all())
    assert bool((abar[1:] < abar[:-1]).all())


def test_a_schedule_with_bad_values_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="num_timesteps"):
        NoiseSchedule(num_timesteps=1)


@given(steps=st.integers(1, 50), total=st.integers(50, 400))
def test_sampler_timesteps_run_from_the_noisiest_step_down_to_clean_data(
    steps: int, total: int
) -> None:
    pairs = DDIMSampler(steps=steps).timesteps(total)
    assert len(pairs) == steps
    assert pairs[0][0] == total - 1
    assert pairs[-1][1] == -1
    times = [t for t, _ in pairs]
    assert times == sorted(set(times), reverse=True)
    assert all(prev == pairs[i + 1][0] for i, (_, prev) in enumerate(pairs[:-1]))


def test_more_sampler_steps_than_timesteps_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="cannot exceed"):
        DDIMSampler(steps=30).timesteps(20)


# ---------------------------------------------------------------------- samplers


def test_ddpm_with_the_exact_denoiser_reproduces_the_data_distribution() -> None:
    schedule = NoiseSchedule(kind="linear", num_timesteps=100, beta_end=0.2)
    out = sample_gaussian(DDPMSampler(clip_denoised=False), schedule)
    assert abs(float(out.mean()) - 0.7) < 0.03
    assert abs(float(out.std()) - 0.3) < 0.03


def test_ddim_with_the_exact_denoiser_converges_to_the_data_distribution_as_steps_grow() -> None:
    schedule = NoiseSchedule(kind="linear", num_timesteps=100, beta_end=0.2)
    runs = [
        sample_gaussian(DDIMSampler(steps=n, clip_denoised=False), schedule) for n in (10, 25, 100)
    ]
    errors = [abs(float(out.std()) - 0.3) for out in runs]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.02
    assert all(abs(float(out.mean()) - 0.7) < 0.03 for out in runs)


def sample_gaussian(sampler: object, schedule: NoiseSchedule) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(2000, 1, generator=generator, dtype=torch.float64)
    return sample(GaussianData(schedule, 0.7, 0.3), sampler, schedule, noise, generator=generator)  # type: ignore[arg-type]


def test_strided_ddpm_variances_bound_the_true_spread_from_below_and_above() -> None:
    # Ho et al.: the posterior variance and beta are the lower and upper extremes.
    schedule = NoiseSchedule(kind="linear", num_timesteps=100, beta_end=0.2)
    low = sample_gaussian(
        DDPMSampler(steps=10, variance="posterior", clip_denoised=False), schedule
    )
    high = sample_gaussian(DDPMSampler(steps=10, variance="beta", clip_denoised=False), schedule)
    assert float(low.std()) < 0.3 < float(high.std())
    assert abs(float(low.mean()) - 0.7) < 0.03
    assert abs(float(high.mean()) - 0.7) < 0.03


def test_samplers_keep_no_state_two_interleaved_runs_equal_two_separate_runs() -> None:
    model = tiny()
    schedule, sampler = model.config.schedule, DDPMSampler()  # stochastic: every step draws noise
    abar = schedule.alphas_cumprod()
    labels = torch.tensor([3, 4])

    def start(seed: int) -> tuple[torch.Tensor, torch.Generator]:
        generator = torch.Generator().manual_seed(seed)
        return torch.randn(2, 1, 8, 8, generator=generator), generator

    separate = []
    for seed in (1, 2):
        x, generator = start(seed)
        separate.append(sample(model.denoiser, sampler, schedule, x, generator=generator, labels=labels,
                               guidance_scale=2.0))  # fmt: skip
    (xa, ga), (xb, gb) = start(1), start(2)
    with torch.no_grad():
        for t, t_prev in sampler.timesteps(schedule.num_timesteps):
            xa = sampler.step(
                xa, guided_noise(model.denoiser, xa, t, labels, 2.0), t, t_prev, abar, ga
            )
            xb = sampler.step(
                xb, guided_noise(model.denoiser, xb, t, labels, 2.0), t, t_prev, abar, gb
            )
    assert_same([xa, xb], separate)


def test_deterministic_ddim_maps_the_same_noise_to_the_same_image_whatever_the_generator() -> None:
    model = tiny()
    noise = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    runs = [sample(model.denoiser, DDIMSampler(steps=5), model.config.schedule, noise,
                   generator=torch.Generator().manual_seed(seed)) for seed in (1, 2)]  # fmt: skip
    assert_same(runs[0], runs[1])


def test_guidance_scale_zero_is_unconditional_and_one_is_conditional() -> None:
    model = tiny()
    x = torch.randn(3, 1, 8, 8)
    labels = torch.tensor([1, 2, 3])
    null = torch.full((3,), 10)
    with torch.no_grad():
        times = torch.full((3,), 7)
        conditional = model.denoiser(x, times, labels)
        unconditional = model.denoiser(x, times, null)
        assert_same(guided_noise(model.denoiser, x, 7, labels, 1.0), conditional, atol=1e-5)
        assert_same(guided_noise(model.denoiser, x, 7, labels, 0.0), unconditional, atol=1e-5)
        mixed = guided_noise(model.denoiser, x, 7, labels, 3.0)
    assert_same(mixed, unconditional + 3.0 * (conditional - unconditional), atol=1e-5)


# --------------------------------------------------------------------- the Generator


@pytest.mark.parametrize("num_classes", [0, 10], ids=["unconditional", "conditional"])
def test_diffusion_passes_the_generator_conformance_kit(num_classes: int) -> None:
    model = tiny(num_classes)
    label = 3 if num_classes else None
    requests = [ImageRequest(num_samples=2, label=label, seed=1), ImageRequest(num_samples=1, seed=2),
                DiffusionRequest(num_samples=1, label=label, seed=3, sampler=DDPMSampler(steps=5))]  # fmt: skip
    invalid = [ImageRequest(label=10), DiffusionRequest(sampler=DDIMSampler(steps=21), seed=0)]
    if not num_classes:
        invalid.append(ImageRequest(label=0))
    check_generator(model, requests, invalid_requests=invalid)


def test_conditional_diffusion_describes_its_labels_and_returns_them() -> None:
    model = tiny()
    assert isinstance(model, Generator)
    assert isinstance(model, ConditionalGenerator)
    assert is_conditional(model)
    assert model.conditions == {"label": [str(d) for d in range(10)]}
    result = model.generate(ImageRequest(num_samples=3, label=9, seed=0))
    assert result.labels == (9, 9, 9)
    assert result.images.shape == (3, 1, 8, 8)
    assert float(result.images.abs().max()) <= 1.0


def test_a_request_can_choose_another_sampler_and_guidance() -> None:
    model = tiny()
    plain = model.generate(ImageRequest(num_samples=2, label=1, seed=0)).images
    ddpm = model.generate(
        DiffusionRequest(num_samples=2, label=1, seed=0, sampler=DDPMSampler())
    ).images
    weak = model.generate(
        DiffusionRequest(num_samples=2, label=1, seed=0, guidance_scale=0.0)
    ).images
    assert not torch.equal(plain, ddpm)
    assert not torch.equal(plain, weak)


def test_load_refuses_an_empty_directory_and_another_kind_of_model(tmp_path) -> None:
    with pytest.raises(NotFoundError):
        Diffusion.load(tmp_path / "nothing")
    from genarch.models.vae import VAE

    VAE(width=4, hidden=8).save(tmp_path / "vae")
    with pytest.raises(IntegrityError, match="genarch.vae"):
        Diffusion.load(tmp_path / "vae")


def test_saving_over_a_model_replaces_it_whole(tmp_path) -> None:
    first, second = tiny(), tiny(width=16)
    first.save(tmp_path / "m")
    second.save(tmp_path / "m")
    assert Diffusion.load(tmp_path / "m").config.width == 16


# ------------------------------------------------------------------------ training


def test_the_objective_is_a_training_objective_and_refuses_bad_batches() -> None:
    objective = tiny().objective()
    assert isinstance(objective, TrainingObjective)
    assert list(objective.players()) == ["denoiser"]
    with pytest.raises(InvalidInputError, match=r"\(N, 1, 8, 8\)"):
        objective.loss("denoiser", torch.zeros(2, 1, 16, 16))
    with pytest.raises(InvalidInputError, match="labels must be in 0..9"):
        objective.loss("denoiser", (torch.zeros(2, 1, 8, 8), torch.tensor([0, 10])))
    with pytest.raises(InvalidInputError, match="player"):
        objective.loss("generator", torch.zeros(2, 1, 8, 8))


def test_diffusion_training_passes_the_optimizer_conformance_kit() -> None:
    images = torch.rand(3, 4, 1, 8, 8) * 2 - 1
    labels = torch.randint(10, (3, 4), generator=torch.Generator().manual_seed(0))

    def make() -> ObjectiveOptimizer[object]:
        return ObjectiveOptimizer(tiny().objective(), optimizer=adamw(1e-3), seed=0)

    check_optimizer(make, [(images[i], labels[i]) for i in range(3)],
                    invalid_batches=[torch.zeros(2, 3, 8, 8)])  # fmt: skip


class PointDenoiser(nn.Module):
    """A small MLP noise predictor for 2-D points: the samplers do not care what the data is."""

    num_classes = 2
    data_shape = (2,)

    def __init__(self) -> None:
        super().__init__()
        self.label = nn.Embedding(3, 64)
        self.net = nn.Sequential(
            nn.Linear(2 + 16, 64), nn.SiLU(), nn.Linear(64, 64), nn.SiLU(), nn.Linear(64, 2)
        )

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None
    ) -> torch.Tensor:
        from genarch.models.diffusion.unet import sinusoidal_embedding

        h = torch.cat([x, sinusoidal_embedding(t, 16)], dim=1)
        h = self.net[0](h)
        if labels is not None:
            h = h + self.label(labels)
        return self.net[1:](h)


def test_training_on_two_moons_puts_samples_on_the_moons() -> None:
    torch.manual_seed(0)
    moons = two_moons(512, noise=0.03, seed=0)
    schedule = NoiseSchedule(kind="linear", num_timesteps=100, beta_end=0.2)
    denoiser = PointDenoiser()
    optimizer = ObjectiveOptimizer(
        DiffusionObjective(denoiser, schedule), optimizer=adamw(1e-2), seed=0
    )
    for step in range(400):
        index = torch.randperm(512, generator=torch.Generator().manual_seed(step))[:128]
        optimizer.step((moons.inputs[index], moons.labels[index]))
    generator = torch.Generator().manual_seed(1)
    noise = torch.randn(300, 2, generator=generator)
    labels = torch.arange(300) % 2
    points = sample(denoiser, DDIMSampler(steps=25, clip_denoised=False), schedule, noise,
                    generator=generator, labels=labels, guidance_scale=1.0)  # fmt: skip

    def distance_to_data(p: torch.Tensor) -> float:
        return float(torch.cdist(p, moons.inputs).min(dim=1).values.mean())

    assert distance_to_data(points) < 0.65 * distance_to_data(noise)
    own = torch.cdist(points, moons.inputs).argmin(dim=1)
    assert float((moons.labels[own] == labels).double().mean()) > 0.75  # the requested moon


def test_quickstart_trains_on_the_digits_and_writes_a_png_grid(tmp_path) -> None:
    pytest.importorskip("sklearn")
    pytest.importorskip("PIL")
    from genarch.models.diffusion import quickstart_images

    threads = torch.get_num_threads()
    path = quickstart_images(tmp_path / "out", seconds=30, max_steps=2, sample_steps=2)
    assert path == tmp_path / "out" / "digits.png"
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert Diffusion.load(tmp_path / "out" / "model").config.num_classes == 10
    assert torch.get_num_threads() == threads
