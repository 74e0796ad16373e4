"""FSDP2 on two CPU processes (gloo): the same training as one process, and exact resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from safetensors.torch import load_file

from genarch.errors import InvalidInputError
from genarch.training import load_checkpoint
from genarch.training.fsdp import is_sharded, shard
from training.ddp_worker import torchrun, train
from training.tiny_models import TinyLM

WORKER = Path(__file__).with_name("fsdp_worker.py")


@pytest.mark.slow
def test_sharded_training_matches_one_process_and_resumes_bit_exact(tmp_path: Path) -> None:
    torchrun(WORKER, tmp_path)

    single_model, single_report = train(checkpoint_dir=None)
    full = load_file(str(tmp_path / "full.safetensors"))
    for name, value in single_model.state_dict().items():
        torch.testing.assert_close(full[name], value, rtol=0, atol=1e-5, msg=name)
    report = json.loads((tmp_path / "full.json").read_text())
    assert report["train_loss"] == pytest.approx(single_report["train_loss"], abs=1e-5)

    # resumed from the step-2 checkpoint (and another initial seed): the same bits
    resumed = load_file(str(tmp_path / "resumed.safetensors"))
    assert full.keys() == resumed.keys()
    for name, value in full.items():
        assert torch.equal(resumed[name], value), name
    assert json.loads((tmp_path / "resumed.json").read_text())["train_loss"] == report["train_loss"]

    # the sharded run's checkpoints hold ordinary tensors that load into an unsharded model
    state = load_checkpoint(tmp_path / "full" / "step-00000004")
    plain = TinyLM(dropout=0.0)
    plain.load_state_dict(state["optimizer"]["players"]["model"])
    for name, value in plain.state_dict().items():
        assert torch.equal(value, full[name]), name


def test_shard_refuses_clearly_without_a_process_group() -> None:
    assert not dist.is_initialized()
    with pytest.raises(InvalidInputError, match="init_process_group"):
        shard(TinyLM())
    with pytest.raises(InvalidInputError, match="nn.Module"):
        shard("model")  # type: ignore[arg-type]
    assert not is_sharded(TinyLM())
