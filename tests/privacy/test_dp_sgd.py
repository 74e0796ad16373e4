"""DP-SGD through Opacus: the mechanism, the accounting, learning, checkpoints, bad input."""

from __future__ import annotations

import json
import math
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from genarch.errors import ConfigError, InvalidInputError, MissingDependencyError
from genarch.privacy.dp_sgd import PRIVACY_FILE, DPConfig, DPTrainer, unsupported_layers
from genarch.training import CheckpointManager, Trainer, load_checkpoint


@pytest.fixture
def opacus() -> Any:
    return pytest.importorskip("opacus", reason="DP-SGD needs the privacy extra (opacus)")


@pytest.fixture(autouse=True)
def _quiet() -> Any:
    # Opacus's full backward hooks on the first layer and the RDP order search warn; neither matters here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


class Regression:
    """Mean squared error of a linear model: one player, a mean over the batch."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def players(self) -> dict[str, nn.Module]:
        return {"model": self.model}

    def loss(self, player: str, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        inputs, targets = batch
        return nn.functional.mse_loss(self.model(inputs), targets)


class Classification:
    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def players(self) -> dict[str, nn.Module]:
        return {"classifier": self.model}

    def loss(self, player: str, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        inputs, labels = batch
        return nn.functional.cross_entropy(self.model(inputs), labels)


def regression_data(rows: int = 200, width: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(rows, width, generator=generator)
    return inputs, inputs @ torch.arange(1.0, width + 1).unsqueeze(1)


def dp_trainer(model: nn.Module, privacy: dict[str, Any], **fields: Any) -> DPTrainer:
    options: dict[str, Any] = {"max_steps": 25, "batch_size": 20, "progress": False}
    return DPTrainer(Regression(model), privacy=privacy, **{**options, **fields})


# ------------------------------------------------------------------ the mechanism


def test_an_update_is_the_clipped_per_example_sum_over_the_expected_batch_size(opacus: Any):
    # Identical examples: the sum of clipped per-example gradients is |batch| * clip(g).
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    before = [p.detach().clone() for p in model.parameters()]
    x, y = torch.tensor([[1.0, -2.0, 3.0]]), torch.tensor([[10.0]])
    reference = nn.Linear(3, 1)
    reference.load_state_dict(model.state_dict())
    nn.functional.mse_loss(reference(x), y).backward()
    gradient = [p.grad for p in reference.parameters()]
    norm = float(torch.cat([g.reshape(-1) for g in gradient]).norm())
    assert norm > 0.5  # so clipping to 0.5 changes it
    steps: list[int] = []
    trainer = DPTrainer(
        Regression(model),
        max_steps=1,
        batch_size=10,
        optimizer={"name": "sgd", "learning_rate": 1.0, "momentum": 0.0},
        progress=False,
        privacy={"noise_multiplier": 0.0, "max_grad_norm": 0.5, "noise_seed": 1},
    )
    trainer.fit(
        (x.repeat(100, 1), y.repeat(100, 1)), on_step_end=[lambda r: steps.append(r.num_items)]
    )
    (sampled,) = steps
    for old, new, grad in zip(before, model.parameters(), gradient, strict=True):
        expected = old - 1.0 * sampled * grad * (0.5 / norm) / 10
        torch.testing.assert_close(new.detach(), expected, rtol=1e-4, atol=1e-5)


def test_the_noise_has_standard_deviation_sigma_times_clip_over_batch_size(opacus: Any):
    model = nn.Linear(50, 40, bias=False)
    nn.init.zeros_(model.weight)  # zero weights, zero targets: every gradient is 0
    trainer = DPTrainer(
        Regression(model),
        max_steps=1,
        batch_size=10,
        optimizer={"name": "sgd", "learning_rate": 1.0, "momentum": 0.0},
        progress=False,
        privacy={"noise_multiplier": 2.0, "max_grad_norm": 3.0, "noise_seed": 1},
    )
    trainer.fit((torch.randn(100, 50), torch.zeros(100, 40)))
    spread = float(model.weight.detach().std())
    assert spread == pytest.approx(2.0 * 3.0 / 10, rel=0.1)  # 2000 draws: ±10% is > 6 sigma


def test_batches_are_poisson_samples_around_the_batch_size(opacus: Any):
    sizes: list[int] = []
    trainer = dp_trainer(
        nn.Linear(4, 1), {"noise_multiplier": 1.0, "noise_seed": 3}, max_steps=40, batch_size=20
    )
    trainer.fit(regression_data(200), on_step_end=[lambda r: sizes.append(r.num_items)])
    assert len(set(sizes)) > 5  # sizes vary (Binomial(200, 0.1): sd 4.2)
    assert 17 < sum(sizes) / len(sizes) < 23  # mean 20, sd of the mean 0.7


# ----------------------------------------------------------------- the accounting


@pytest.mark.parametrize("accountant", ["rdp", "prv"])
def test_reported_epsilon_equals_opacus_accountant_stepped_independently(
    opacus: Any, accountant: str, tmp_path: Path
):
    from opacus.accountants import create_accountant

    trainer = dp_trainer(
        nn.Linear(4, 1),
        {"noise_multiplier": 1.1, "delta": 1e-4, "accountant": accountant},
        checkpoint_dir=str(tmp_path),
    )
    report = trainer.fit(regression_data(200))  # q = 20 / 200, 10 steps an epoch, 25 steps
    independent = create_accountant(accountant)
    expected = {}
    for step in range(1, 26):
        independent.step(noise_multiplier=1.1, sample_rate=0.1)
        if step in (10, 20, 25):
            expected[step] = independent.get_epsilon(delta=1e-4)
    assert (report.noise_multiplier, report.sample_rate, report.steps) == (1.1, 0.1, 25)
    assert report.epsilon_by_epoch == tuple(expected.items())
    assert report.epsilon == expected[25]
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert {r["step"]: r["privacy/epsilon"] for r in logged if "privacy/epsilon" in r} == expected


def test_epsilon_equals_privacy_engine_on_an_opacus_run_of_the_same_steps(opacus: Any):
    # Opacus's own pipeline: make_private with a Poisson data loader, 25 optimizer steps.
    from opacus import PrivacyEngine
    from torch.utils.data import DataLoader, TensorDataset

    inputs, targets = regression_data(200)
    model = nn.Linear(4, 1)
    engine = PrivacyEngine(accountant="prv")
    module, optimizer, loader = engine.make_private(
        module=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.01),
        data_loader=DataLoader(TensorDataset(inputs, targets), batch_size=20),
        noise_multiplier=1.1,
        max_grad_norm=1.0,
    )
    steps = 0
    while steps < 25:
        for x, y in loader:
            optimizer.zero_grad()
            nn.functional.mse_loss(module(x), y).backward()
            optimizer.step()
            steps += 1
            if steps == 25:
                break
    report = dp_trainer(nn.Linear(4, 1), {"noise_multiplier": 1.1, "delta": 1e-4}).fit(
        (inputs, targets)
    )
    assert report.epsilon == pytest.approx(engine.get_epsilon(delta=1e-4), rel=1e-9)


def test_dp_training_learns_the_digits_at_epsilon_8(opacus: Any):
    from genarch.data.digits import load_digits

    pytest.importorskip("sklearn", reason="the digits ship with scikit-learn")
    digits = load_digits(seed=0)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    trainer = DPTrainer(
        Classification(model),
        max_steps=40,
        batch_size=128,
        optimizer={"learning_rate": 2e-2},
        progress=False,
        privacy={"target_epsilon": 8.0, "delta": 1e-5, "accountant": "rdp", "noise_seed": 0},
    )
    report = trainer.fit(digits.train.as_batch())
    assert 7.5 < report.epsilon <= 8.0 + 0.01  # the noise was chosen to spend about 8 in 40 steps
    assert report.noise_multiplier > 0.5
    model.eval()
    with torch.no_grad():
        accuracy = float((model(digits.test.inputs).argmax(1) == digits.test.labels).float().mean())
    assert accuracy > 0.6  # chance is 0.1


# -------------------------------------------------------------------- checkpoints


def test_checkpoints_hold_the_plain_model_and_the_model_leaves_without_opacus(
    opacus: Any, tmp_path: Path
):
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    trainer = dp_trainer(model, {"noise_multiplier": 1.0}, checkpoint_dir=str(tmp_path))
    trainer.fit(regression_data(200))
    latest = CheckpointManager(tmp_path).latest()
    assert latest is not None
    weights = load_checkpoint(latest)["optimizer"]["players"]["model"]
    assert sorted(weights) == ["0.bias", "0.weight", "2.bias", "2.weight"]  # no "_module." prefix
    plain = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    plain.load_state_dict(weights)  # strict
    inputs, _ = regression_data(10)
    torch.testing.assert_close(plain(inputs), model(inputs))
    ordinary = Trainer(Regression(plain), max_steps=26, batch_size=20, progress=False)
    ordinary.load_checkpoint(latest)  # a plain run continues from a DP checkpoint
    assert ordinary.step_count == 25
    leftovers = [
        (name, attribute)
        for name, parameter in model.named_parameters()
        for attribute in ("grad_sample", "_forward_counter", "summed_grad")
        if hasattr(parameter, attribute)
    ]
    hooks = [name for name, layer in model.named_modules() if layer._forward_hooks]
    assert (leftovers, hooks, hasattr(model, "autograd_grad_sample_hooks")) == ([], [], False)


def test_resuming_continues_the_run_and_its_accounting_exactly(opacus: Any, tmp_path: Path):
    privacy = {"noise_multiplier": 1.0, "accountant": "rdp", "noise_seed": 5}
    torch.manual_seed(0)
    whole = nn.Linear(4, 1)
    start = {k: v.clone() for k, v in whole.state_dict().items()}
    dp_trainer(whole, privacy).fit(regression_data(200))

    split = nn.Linear(4, 1)
    split.load_state_dict(start)
    first = dp_trainer(split, privacy, checkpoint_dir=str(tmp_path))
    assert first.fit(regression_data(200), until_step=12).steps == 12
    resumed = nn.Linear(4, 1)
    resumed.load_state_dict(start)
    second = dp_trainer(resumed, privacy, checkpoint_dir=str(tmp_path))
    report = second.fit(regression_data(200))
    assert report.steps == 25
    assert report.epsilon == second.epsilon(25) == first.epsilon(25)
    for key, value in whole.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[key], value)

    other = dp_trainer(
        nn.Linear(4, 1), {**privacy, "noise_multiplier": 0.5}, checkpoint_dir=str(tmp_path)
    )
    with pytest.raises(ConfigError, match="noise_multiplier: 1.0 then, 0.5 now"):
        other.fit(regression_data(200))
    assert json.loads((tmp_path / PRIVACY_FILE).read_text())["noise_multiplier"] == 1.0


# ---------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"noise_multiplier": -0.1}, "noise_multiplier"),
        ({"noise_multiplier": float("nan")}, "noise_multiplier"),
        ({"noise_multiplier": 1.0, "max_grad_norm": 0.0}, "max_grad_norm"),
        ({"noise_multiplier": 1.0, "max_grad_norm": -1.0}, "max_grad_norm"),
        ({"noise_multiplier": 1.0, "delta": 0.0}, "delta"),
        ({"noise_multiplier": 1.0, "delta": 1.0}, "delta"),
        ({"noise_multiplier": 1.0, "delta": -1e-5}, "delta"),
        ({"target_epsilon": 0.0}, "target_epsilon"),
        ({"noise_multiplier": 1.0, "target_epsilon": 8.0}, "exactly one of"),
        ({}, "exactly one of"),
        ({"noise_multiplier": 1.0, "accountant": "gdp"}, "accountant"),
    ],
)
def test_bad_privacy_settings_raise_an_error_naming_the_setting(
    settings: dict[str, Any], named: str
):
    with pytest.raises(InvalidInputError, match=named):
        DPConfig(**settings)


class Normalised(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8, affine=False))
        self.head = nn.Linear(8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def test_a_model_with_batchnorm_is_refused_naming_the_layer(opacus: Any):
    with pytest.raises(InvalidInputError, match=r"body\.1 \(BatchNorm1d\): BatchNorm cannot"):
        DPTrainer(Regression(Normalised()), privacy={"noise_multiplier": 1.0}, progress=False)
    assert unsupported_layers(nn.Sequential(nn.Linear(2, 2), nn.ReLU())) == []
    assert unsupported_layers(nn.LSTM(2, 2))[0].startswith("(the model itself) (LSTM)")


def test_runs_dp_sgd_cannot_account_are_refused(opacus: Any):
    class TwoPlayers:
        def players(self) -> dict[str, nn.Module]:
            return {"a": nn.Linear(1, 1), "b": nn.Linear(1, 1)}

        def loss(self, player: str, batch: Any) -> torch.Tensor:
            raise AssertionError("not reached")

    with pytest.raises(ConfigError, match=r"one player, got players \['a', 'b'\]"):
        DPTrainer(TwoPlayers(), privacy={"noise_multiplier": 1.0})
    with pytest.raises(ConfigError, match="accumulation_steps must be 1, got 2"):
        dp_trainer(nn.Linear(4, 1), {"noise_multiplier": 1.0}, accumulation_steps=2)
    with pytest.raises(InvalidInputError, match=r"delta \(0.01\) must be below 1/N = 1/200"):
        dp_trainer(nn.Linear(4, 1), {"noise_multiplier": 1.0, "delta": 0.01}).fit(
            regression_data(200)
        )
    trainer = dp_trainer(nn.Linear(4, 1), {"noise_multiplier": 1.0}, max_steps=2)
    trainer.fit(regression_data(200))
    with pytest.raises(InvalidInputError, match="samples from 200 examples"):
        trainer.fit(regression_data(300))
    with pytest.raises(ConfigError, match="once fit has seen the training data"):
        dp_trainer(nn.Linear(4, 1), {"noise_multiplier": 1.0}).epsilon()


def test_without_opacus_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "opacus", None)  # what an absent package looks like
    with pytest.raises(MissingDependencyError, match=r"pip install 'genarch\[privacy\]'"):
        DPTrainer(Regression(nn.Linear(1, 1)), privacy={"noise_multiplier": 1.0})


def test_no_noise_means_infinite_epsilon(opacus: Any):
    report = dp_trainer(nn.Linear(4, 1), {"noise_multiplier": 0.0}, max_steps=3).fit(
        regression_data(200)
    )
    assert math.isinf(report.epsilon)
