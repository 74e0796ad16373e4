"""A process killed (SIGKILL) while writing a checkpoint leaves the previous one intact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from genarch.training import CheckpointManager, LanguageModeling, Trainer, load_checkpoint
from training.tiny_models import TinyLM, lm_data, seeded

WORKER = Path(__file__).with_name("kill_worker.py")


def test_sigkill_during_a_checkpoint_write_keeps_the_previous_checkpoint(tmp_path: Path) -> None:
    directory, marker = tmp_path / "run", tmp_path / "writing"
    process = subprocess.Popen([sys.executable, str(WORKER), str(directory), str(marker)])
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert process.poll() is None, f"the worker exited early with {process.returncode}"
            assert time.monotonic() < deadline, "the worker never reached the second checkpoint"
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL

    # the interrupted write is only a hidden staging directory
    assert Path(marker.read_text()).parent.name.startswith(".step-00000002")
    manager = CheckpointManager(directory)
    assert [manager.step_of(p) for p in manager.checkpoints()] == [1]
    assert load_checkpoint(manager.checkpoints()[0])["optimizer"]["step"] == 1

    # a new run resumes from step 1, finishes, and cleans the leftover up
    model = seeded(5, TinyLM)
    trainer = Trainer(
        LanguageModeling(model),
        batch_size=8,
        max_steps=3,
        checkpoint_every=1,
        checkpoint_dir=str(directory),
        progress=False,
    )
    report = trainer.fit(lm_data(32))
    assert report.steps == 3
    assert len(report.train_loss) == 3
    assert not [p for p in directory.iterdir() if p.name.startswith(".")]

    reference_model = seeded(0, TinyLM)
    Trainer(LanguageModeling(reference_model), batch_size=8, max_steps=3, progress=False).fit(
        lm_data(32)
    )
    for (name, value), expected in zip(
        model.state_dict().items(), reference_model.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(value, expected, rtol=0, atol=1e-6, msg=name)
