"""Trainer.fit: the loop's behaviours, one per test."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from genarch.errors import IntegrityError, InvalidInputError, NotFoundError, TrainingError
from genarch.schemas import StepReport, TrainingReport
from genarch.training import (
    CheckpointManager,
    EvalReport,
    LanguageModeling,
    Schedule,
    Trainer,
    TrainerConfig,
    load_checkpoint,
)
from training.tiny_models import TinyLM, lm_data, seeded


def make_trainer(seed: int = 0, **fields: Any) -> tuple[Trainer, TinyLM]:
    model = seeded(seed, TinyLM)
    settings: dict[str, Any] = {"batch_size": 8, "progress": False, "max_steps": 12}
    settings |= fields
    settings.setdefault("optimizer", {"learning_rate": 3e-2})
    return Trainer(LanguageModeling(model), **settings), model


def parameters(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_fit_lowers_the_validation_loss_and_reports_the_run() -> None:
    trainer, _ = make_trainer(max_steps=30, eval_every=10)
    report = trainer.fit(lm_data(64), eval_data=lm_data(16, seed=1))
    assert isinstance(report, TrainingReport)
    assert report.steps == 30
    assert len(report.train_loss) == 30
    assert [step for step, _ in report.eval_loss] == [10, 20, 30]
    assert report.eval_loss[-1][1] < report.eval_loss[0][1]
    assert report.best_step == 30
    assert report.best_metric == report.eval_loss[-1][1]
    assert report.items_per_second > 0
    assert report.stopped_because == "finished"


def test_early_stopping_stops_after_patience_validations_without_improvement() -> None:
    # min_delta larger than any possible improvement: only the first validation counts
    trainer, _ = make_trainer(max_steps=100, eval_every=2, patience=3, min_delta=100.0)
    report = trainer.fit(lm_data(64), eval_data=lm_data(16, seed=1))
    assert report.stopped_because == "early_stopping"
    assert report.steps == 8  # evaluations at 2 (best), 4, 6, 8 -> three without improvement
    assert report.best_step == 2


def test_callbacks_receive_typed_reports(tmp_path: Path) -> None:
    steps: list[StepReport] = []
    evals: list[EvalReport] = []
    saved: list[Path] = []
    trainer, _ = make_trainer(
        max_steps=6, eval_every=3, checkpoint_dir=str(tmp_path), checkpoint_every=2
    )
    trainer.fit(
        lm_data(32),
        eval_data=lm_data(8, seed=1),
        on_step_end=[steps.append],
        on_eval_end=[evals.append],
        on_checkpoint=[saved.append],
    )
    assert [r.step for r in steps] == [1, 2, 3, 4, 5, 6]
    assert [e.step for e in evals] == [3, 6]
    assert [CheckpointManager.step_of(p) for p in saved] == [2, 3, 4, 6]  # 3: a new best


def test_metrics_are_written_as_json_lines(tmp_path: Path) -> None:
    trainer, _ = make_trainer(max_steps=4, eval_every=2, checkpoint_dir=str(tmp_path))
    trainer.fit(lm_data(32), eval_data=lm_data(8, seed=1))
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines if "losses" in r] == [1, 2, 3, 4]
    assert [r["step"] for r in lines if "eval_loss" in r] == [2, 4]
    assert all(r["items_per_second"] > 0 for r in lines if "losses" in r)


def test_the_learning_rate_follows_the_schedule() -> None:
    factors: list[float] = []
    trainer, _ = make_trainer(
        max_steps=6, schedule=Schedule(warmup_steps=2, decay="linear", min_factor=0.0)
    )
    trainer.fit(lm_data(32), on_step_end=[lambda r: factors.append(r.metrics["lr_factor"])])
    assert factors == pytest.approx([1 / 3, 2 / 3, 1.0, 0.75, 0.5, 0.25])


class PoisonedLM(LanguageModeling):
    """Loss is NaN for batches that contain token 15."""

    def loss(self, player: str, batch: torch.Tensor) -> torch.Tensor:
        loss = super().loss(player, batch)
        return loss * float("nan") if bool((batch == 15).any()) else loss


def test_a_non_finite_loss_skips_the_update_and_is_counted() -> None:
    model = seeded(0, TinyLM)
    trainer = Trainer(PoisonedLM(model), batch_size=4, max_non_finite=1, progress=False)
    good, bad = torch.zeros(4, 9, dtype=torch.long), torch.full((4, 9), 15)
    trainer.step(good)
    before = parameters(model)
    report = trainer.step(bad)
    assert report.skipped
    assert report.step == 2
    for key, value in parameters(model).items():
        assert torch.equal(value, before[key]), f"{key} changed on a skipped step"
    assert trainer.state_dict()["trainer"]["skipped"] == 1
    with pytest.raises(TrainingError, match="non-finite"):
        trainer.step(bad)


def test_fit_stops_with_a_training_error_after_too_many_non_finite_losses() -> None:
    model = seeded(0, TinyLM)
    trainer = Trainer(
        PoisonedLM(model), batch_size=4, max_steps=50, max_non_finite=3, progress=False
    )
    with pytest.raises(TrainingError, match="4 steps had a non-finite loss"):
        trainer.fit(torch.full((16, 9), 15))
    assert trainer.step_count == 4


def test_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path: Path) -> None:
    config: dict[str, Any] = {
        "max_steps": 10,
        "eval_every": 3,
        "accumulation_steps": 2,
        "schedule": {"warmup_steps": 2, "decay": "cosine"},
    }
    data, held_out = lm_data(40), lm_data(8, seed=1)
    straight, straight_model = make_trainer(checkpoint_dir=str(tmp_path / "a"), **config)
    expected = straight.fit(data, eval_data=held_out)

    first, _ = make_trainer(checkpoint_dir=str(tmp_path / "b"), **config)
    partial = first.fit(data, eval_data=held_out, until_step=4)
    assert partial.steps == 4
    assert partial.stopped_because == "until_step"
    # A new process would start from other weights and RNG states: emulate that.
    torch.manual_seed(1234)
    resumed, resumed_model = make_trainer(seed=99, checkpoint_dir=str(tmp_path / "b"), **config)
    actual = resumed.fit(data, eval_data=held_out)

    for key, value in parameters(straight_model).items():
        assert torch.equal(parameters(resumed_model)[key], value), f"{key} differs after resume"
    assert actual.train_loss == expected.train_loss
    assert actual.eval_loss == expected.eval_loss
    assert actual.best_step == expected.best_step


def test_resume_restores_global_rng_states(tmp_path: Path) -> None:
    trainer, _ = make_trainer(max_steps=2, checkpoint_dir=str(tmp_path))
    trainer.fit(lm_data(32))
    expected = torch.rand(3)
    torch.manual_seed(7)
    other, _ = make_trainer(max_steps=2, checkpoint_dir=str(tmp_path))
    other.load_checkpoint(CheckpointManager(tmp_path).latest())  # type: ignore[arg-type]
    assert torch.equal(torch.rand(3), expected)


def test_checkpoints_keep_the_last_k_and_the_best(tmp_path: Path) -> None:
    # a learning rate far too high: the validation loss jumps around, the best is not the last
    trainer, _ = make_trainer(
        max_steps=12,
        eval_every=4,
        checkpoint_every=2,
        keep_last=2,
        checkpoint_dir=str(tmp_path),
        optimizer={"learning_rate": 3.0},
    )
    trainer.fit(lm_data(32), eval_data=lm_data(8, seed=1))
    manager = CheckpointManager(tmp_path)
    best = manager.best()
    kept = [manager.step_of(p) for p in manager.checkpoints()]
    assert kept[-2:] == [10, 12]
    assert best is not None
    assert manager.step_of(best) in kept
    assert load_checkpoint(best)["checkpoint_metric"] == min(
        v for _, v in trainer.state_dict()["trainer"]["eval_loss"]
    )


def test_a_checkpoint_of_another_model_is_refused_without_changing_anything(
    tmp_path: Path,
) -> None:
    trainer, _ = make_trainer(max_steps=1, checkpoint_dir=str(tmp_path))
    trainer.fit(lm_data(16))
    other_model = seeded(0, lambda: TinyLM(width=8))
    other = Trainer(LanguageModeling(other_model), progress=False)
    before = parameters(other_model)
    with pytest.raises(IntegrityError, match="another model"):
        other.load_checkpoint(CheckpointManager(tmp_path).latest())  # type: ignore[arg-type]
    for key, value in parameters(other_model).items():
        assert torch.equal(value, before[key])


def test_loading_from_an_empty_directory_raises_not_found(tmp_path: Path) -> None:
    trainer, _ = make_trainer()
    with pytest.raises(NotFoundError):
        trainer.load_checkpoint(tmp_path)


def test_a_corrupt_checkpoint_raises_integrity_error(tmp_path: Path) -> None:
    trainer, _ = make_trainer(max_steps=1, checkpoint_dir=str(tmp_path))
    trainer.fit(lm_data(16))
    latest = CheckpointManager(tmp_path).latest()
    assert latest is not None
    (latest / "weights.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(IntegrityError):
        load_checkpoint(latest)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (lm_data(4), "fewer than one batch"),
        ("some text", "expected training data"),
        (42, "expected training data"),
    ],
)
def test_unusable_training_data_is_refused(data: object, message: str) -> None:
    trainer, _ = make_trainer()
    with pytest.raises(InvalidInputError, match=message):
        trainer.fit(data)


def test_sequences_of_examples_are_collated() -> None:
    rows = list(lm_data(16))
    trainer, _ = make_trainer(max_steps=2)
    assert trainer.fit(rows).steps == 2


def test_config_round_trips_through_json() -> None:
    config = TrainerConfig(max_steps=5, schedule={"warmup_steps": 1, "decay": "linear"})
    assert TrainerConfig.parse(config.model_dump_json()) == config


def test_label_smoothing_raises_the_loss_of_a_confident_model() -> None:
    model = seeded(0, lambda: TinyLM(dropout=0.0))
    batch = lm_data(8)
    plain = Trainer(LanguageModeling(model), optimizer={"learning_rate": 0.1}, progress=False)
    for _ in range(25):
        plain.step(batch)
    with torch.no_grad():
        sharp = LanguageModeling(model).loss("model", batch)
        smooth = LanguageModeling(model, label_smoothing=0.2).loss("model", batch)
    assert float(smooth) > float(sharp)


def test_bf16_autocast_trains() -> None:
    trainer, _ = make_trainer(max_steps=8, autocast="bfloat16", eval_every=8)
    report = trainer.fit(lm_data(32), eval_data=lm_data(8, seed=1))
    assert report.train_loss[-1] < report.train_loss[0]


def test_evaluate_uses_eval_mode_and_restores_training_mode() -> None:
    trainer, model = make_trainer()
    model.train()
    first = trainer.evaluate(lm_data(16, seed=1))
    assert model.training
    assert trainer.evaluate(lm_data(16, seed=1)) == first  # no dropout: the same every time
    with pytest.raises(InvalidInputError, match="no examples"):
        trainer.evaluate(lm_data(16)[:0])


def test_progress_in_a_log_is_plain_lines_without_carriage_returns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log = io.StringIO()  # what CI or `| tee` gives: not a TTY
    monkeypatch.setattr(sys, "stderr", log)
    trainer, _ = make_trainer(max_steps=5, progress=True)
    trainer.fit(lm_data(32))
    output = log.getvalue()
    assert "\r" not in output
    lines = output.splitlines()
    assert lines[0].startswith("step 1/5 (20%) loss=")  # the first step shows the run started
    assert lines[-1].startswith("step 5/5 (100%) loss=")  # and the last one how it ended
    assert all("items_s=" in line for line in lines)
