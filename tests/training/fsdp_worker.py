"""One process of the FSDP2 test, started by torchrun: trains sharded, checkpoints, resumes.

Usage: torchrun --nproc_per_node=2 fsdp_worker.py OUTPUT_DIR

Run ``full`` trains 4 steps with checkpoints at steps 2 and 4. Run ``resumed``
starts from another seed in a folder holding only the step-2 checkpoint, so it
must load it and redo steps 3 and 4. Rank 0 writes both runs' final weights
(gathered in full) and reports.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import save_file

from genarch.training import CheckpointManager, LanguageModeling, Trainer
from genarch.training.fsdp import shard

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for training.tiny_models
from training.ddp_worker import SETTINGS
from training.tiny_models import TinyLM, lm_data, seeded


def run(seed: int, checkpoint_dir: Path) -> tuple[dict[str, torch.Tensor], dict[str, object]]:
    model = shard(seeded(seed, lambda: TinyLM(dropout=0.0)), layers=None)
    settings = {**SETTINGS, "checkpoint_every": 2}
    trainer = Trainer(LanguageModeling(model), checkpoint_dir=str(checkpoint_dir), **settings)
    report = trainer.fit(lm_data(32), eval_data=lm_data(6, seed=1))
    weights = trainer.state_dict()["optimizer"]["players"]["model"]  # gathered on every rank
    return weights, report.model_dump(mode="json")


if __name__ == "__main__":
    output = Path(sys.argv[1])
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    full, report = run(0, output / "full")
    if rank == 0:
        save_file({k: v.contiguous() for k, v in full.items()}, str(output / "full.safetensors"))
        (output / "full.json").write_text(json.dumps(report))
        at_two = next(
            p
            for p in CheckpointManager(output / "full").checkpoints()
            if CheckpointManager.step_of(p) == 2
        )
        (output / "resumed").mkdir()
        shutil.copytree(at_two, output / "resumed" / at_two.name)
    dist.barrier()
    resumed, report = run(1, output / "resumed")
    if rank == 0:
        save_file(
            {k: v.contiguous() for k, v in resumed.items()}, str(output / "resumed.safetensors")
        )
        (output / "resumed.json").write_text(json.dumps(report))
    dist.destroy_process_group()
