"""One process of the DDP test, started by torchrun: trains and writes its final weights.

Usage: torchrun --nproc_per_node=2 ddp_worker.py OUTPUT_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import save_file

from genarch.training import LanguageModeling, Trainer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for training.tiny_models
from training.tiny_models import TinyLM, lm_data, seeded

SETTINGS = {
    "batch_size": 8,
    "max_steps": 4,
    "eval_every": 2,
    "accumulation_steps": 2,
    "optimizer": {"learning_rate": 3e-2, "weight_decay": 0.1},
    "schedule": {"warmup_steps": 1, "decay": "cosine"},
    "progress": False,
}


def torchrun(worker: Path, output: Path) -> None:
    """Run ``worker OUTPUT`` as two gloo processes under torchrun; fail with its stderr."""
    import os
    import subprocess

    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        str(worker), str(output),
    ]  # fmt: skip
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=240, env=environment, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]


def train(checkpoint_dir: str | None) -> tuple[TinyLM, dict[str, object]]:
    """The run the test also does in one process: same global batch, same everything."""
    model = seeded(0, lambda: TinyLM(dropout=0.0))
    trainer = Trainer(LanguageModeling(model), checkpoint_dir=checkpoint_dir, **SETTINGS)
    report = trainer.fit(lm_data(32), eval_data=lm_data(6, seed=1))
    return model, report.model_dump(mode="json")


if __name__ == "__main__":
    output = Path(sys.argv[1])
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    model, report = train(str(output / "checkpoints"))
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()},
        str(output / f"rank{rank}.safetensors"),
    )
    (output / f"report{rank}.json").write_text(json.dumps(report))
    dist.destroy_process_group()
