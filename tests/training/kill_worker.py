"""Subprocess for test_checkpoint_kill: trains, and hangs inside the second checkpoint write.

Usage: python kill_worker.py CHECKPOINT_DIR MARKER_FILE
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

import genarch.training.checkpoint as checkpoint
from genarch.training import LanguageModeling, Trainer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for training.tiny_models
from training.tiny_models import TinyLM, lm_data, seeded

directory, marker = sys.argv[1], Path(sys.argv[2])
torch.set_num_threads(1)
real_save_file = checkpoint.save_file
writes = 0


def save_file_then_hang(tensors: dict[str, torch.Tensor], filename: str) -> None:
    """Write the file for real; in the second checkpoint, signal the test and wait to be killed."""
    global writes
    writes += 1
    real_save_file(tensors, filename)
    if writes == 3:  # weights.safetensors of the second checkpoint: half-way through it
        marker.write_text(filename)
        time.sleep(120)


checkpoint.save_file = save_file_then_hang
trainer = Trainer(
    LanguageModeling(seeded(0, TinyLM)),
    batch_size=8,
    max_steps=3,
    checkpoint_every=1,
    checkpoint_dir=directory,
    progress=False,
)
trainer.fit(lm_data(32))
