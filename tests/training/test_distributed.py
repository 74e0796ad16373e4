"""Two CPU processes under torchrun (gloo) train exactly like one process with the same global batch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from genarch.training import CheckpointManager
from training.ddp_worker import torchrun, train

WORKER = Path(__file__).with_name("ddp_worker.py")


@pytest.mark.slow
def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path: Path) -> None:
    torchrun(WORKER, tmp_path)

    single_model, single_report = train(checkpoint_dir=None)
    expected = single_model.state_dict()
    for rank in (0, 1):
        weights = load_file(str(tmp_path / f"rank{rank}.safetensors"))
        for name, value in expected.items():
            torch.testing.assert_close(weights[name], value, rtol=0, atol=1e-5, msg=name)
        report = json.loads((tmp_path / f"report{rank}.json").read_text())
        assert report["train_loss"] == pytest.approx(single_report["train_loss"], abs=1e-5)
        assert [s for s, _ in report["eval_loss"]] == [2, 4]
        assert [v for _, v in report["eval_loss"]] == pytest.approx(
            [v for _, v in single_report["eval_loss"]], abs=1e-5
        )

    # rank 0 alone logs and checkpoints
    checkpoints = tmp_path / "checkpoints"
    lines = (checkpoints / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 4 + 2  # four steps, two evaluations: not one set per process
    assert [CheckpointManager.step_of(p) for p in CheckpointManager(checkpoints).checkpoints()][
        -1
    ] == 4
