"""Shared helpers for the model tests: a byte-level tokenizer and tiny model configs."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Self

import torch

from genarch._io import atomic_directory
from genarch.errors import IntegrityError, NotFoundError
from genarch.models import GPT, GPTConfig
from genarch.models.transformer_layers import Block


class ByteTokenizer:
    """UTF-8 bytes as tokens (vocabulary 256): every string round-trips, and
    non-ASCII characters take several tokens, which exercises streaming."""

    vocab_size = 256

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, token_ids: Sequence[int]) -> str:
        return bytes(token_ids).decode("utf-8", errors="replace")

    def save(self, directory: str | os.PathLike[str]) -> None:
        with atomic_directory(directory) as staging:
            (staging / "tokenizer.json").write_text(json.dumps({"kind": "bytes"}))

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> Self:
        path = Path(directory) / "tokenizer.json"
        if not path.is_file():
            raise NotFoundError(f"no tokenizer in {directory}")
        if json.loads(path.read_text()) != {"kind": "bytes"}:
            raise IntegrityError(f"{path} is not a byte tokenizer")
        return cls()


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run tiny models on one thread: a second one only adds synchronisation (and,
    on a busy machine, waiting for a core), then restore the setting."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


# Small enough that a forward pass takes well under a millisecond, varied enough
# to cover every switch of the config.
VARIANTS: dict[str, dict[str, object]] = {
    "gpt2": {},
    "rotary-rms-swiglu": {"positions": "rotary", "norm": "rmsnorm", "mlp": "swiglu", "bias": False},
    "gqa-untied": {"n_kv_head": 1, "tie_embeddings": False, "mlp": "gelu_tanh"},
    "gqa-rotary": {"n_head": 4, "n_kv_head": 2, "positions": "rotary"},
}


def tiny_config(**overrides: object) -> GPTConfig:
    fields: dict[str, object] = {
        "vocab_size": 256,
        "context_length": 48,
        "n_layer": 2,
        "n_head": 2,
        "n_embd": 32,
    }
    fields.update(overrides)
    return GPTConfig(**fields)  # type: ignore[arg-type]


def tiny_model(seed: int = 0, **overrides: object) -> GPT:
    torch.manual_seed(seed)
    return GPT(tiny_config(**overrides)).eval()


SONG = "naïve café — 猫がいる. "


def block(model: GPT, index: int) -> Block:
    """Block ``index`` of ``model``, typed (``model.blocks`` holds plain modules to mypy)."""
    found = model.blocks[index]
    assert isinstance(found, Block)
    return found


def memorised_model(max_steps: int = 400) -> GPT:
    """A tiny model trained until it recites :data:`SONG` (greedy), non-ASCII included:
    until its mean loss over every phase of the song is below 0.03."""
    torch.manual_seed(0)
    model = GPT(tiny_config(n_embd=64))
    data = torch.tensor(list((SONG * 4).encode()))
    period = len(SONG.encode())
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    batch = torch.stack([data[s : s + 33] for s in range(0, period, 2)])  # every phase
    for _ in range(max_steps):
        loss = model.loss(batch[:, :-1], batch[:, 1:])
        if loss.item() < 0.03:
            break
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()
