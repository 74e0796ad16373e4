"""Saves survive SIGKILL at any moment: every save path, killed over and over.

For each persistable registered component (and the checkpoint manager), a
forked child saves into the same directory in a loop and the parent kills it
with SIGKILL after a random delay spread over the length of a save — so kills
land before, during and between the two renames, in the fsyncs and in the
cleanup. After every kill the directory must load (the old copy or the new,
verified against its SHA256SUMS), and after the next complete save nothing
but the save itself may be left in the parent directory.

Fork (not spawn) keeps each kill cheap: the child inherits the built
component, so a kill costs milliseconds, not a Python start.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from genarch.testing import assert_same
from genarch.training.checkpoint import CheckpointManager, load_checkpoint
from test_common import NAMES, persistable

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
    pytest.mark.usefixtures("one_thread"),
]

KILLS = 12


def save_forever(save: Callable[[], None]) -> None:
    """The child: save until killed (never returns to pytest)."""
    try:
        while True:
            save()
    finally:
        os._exit(0)


def kill_while_saving(
    save: Callable[[], None], seconds_per_save: float, rng: random.Random
) -> None:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child is killed
        save_forever(save)
    time.sleep(rng.uniform(0, 3 * seconds_per_save))
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status), "the child died before it was killed"
    assert os.WTERMSIG(status) == signal.SIGKILL


def timed(save: Callable[[], None]) -> float:
    start = time.perf_counter()
    save()
    return max(time.perf_counter() - start, 1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_a_save_killed_at_any_moment_leaves_a_loadable_save(name: str, tmp_path: Path) -> None:
    instance, probe = persistable(name)
    target = tmp_path / "saved"
    expected = probe(instance)
    seconds = timed(lambda: instance.save(target))
    rng = random.Random(f"{name}-kills")
    for kill in range(KILLS):
        kill_while_saving(lambda: instance.save(target), seconds, rng)
        loaded = type(instance).load(target)  # never NotFoundError, never IntegrityError
        assert_same(probe(loaded), expected, path=f"{name} after kill {kill}")
    instance.save(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saved"], "garbage left behind"


@pytest.mark.slow
def test_checkpoints_survive_kills_and_the_best_one_is_never_lost(tmp_path: Path) -> None:
    """Re-saving steps while being killed, then pruning, never loses a complete checkpoint."""
    manager = CheckpointManager(tmp_path / "run", keep_last=1, keep_best=True)
    weights = {"players": {"model": {"w": torch.arange(4096.0)}}}
    manager.save(1, weights, metric=0.1)  # the best: kept through every prune
    seconds = timed(lambda: manager.save(2, weights, metric=0.5))
    rng = random.Random("checkpoint-kills")
    for kill in range(KILLS):
        step = 1 + kill % 3  # re-saves the best step too
        kill_while_saving(lambda s=step: manager.save(s, weights, metric=0.1 * s), seconds, rng)  # type: ignore[misc]
        assert manager.best() is not None, f"no best checkpoint after kill {kill}"
        for path in manager.checkpoints():
            state = load_checkpoint(path)
            assert torch.equal(state["players"]["model"]["w"], weights["players"]["model"]["w"])
        manager.save(10 + kill, weights, metric=0.9)  # a later save prunes and cleans up
        assert manager.step_of(manager.best()) == 1, "the best checkpoint was lost"
    leftovers = [p.name for p in (tmp_path / "run").iterdir() if p.name.startswith(".")]
    assert leftovers == []


def kill_loop_over(save: Callable[[], None], check: Callable[[], None], target: Path) -> None:
    """Kill ``save`` at random moments; ``check`` must pass after every kill."""
    seconds = timed(save)
    rng = random.Random(str(target))
    for _ in range(KILLS):
        kill_while_saving(save, seconds, rng)
        check()
    save()
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name], "garbage left"


@pytest.mark.slow
def test_lora_adapters_survive_kills_mid_save(tmp_path: Path) -> None:
    from genarch.training.finetune import LoRAConfig, apply_lora, load_adapters, save_adapters

    def model() -> torch.nn.Module:
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.Linear(64, 8))

    tuned = model()
    apply_lora(tuned, ["0", "1"], LoRAConfig(rank=4, alpha=8.0))
    target = tmp_path / "adapters"

    def check() -> None:
        assert load_adapters(model(), target) == ["0", "1"]

    kill_loop_over(lambda: save_adapters(tuned, target), check, target)


@pytest.mark.slow
def test_token_files_survive_kills_mid_write(tmp_path: Path) -> None:
    from genarch.data.token_corpus import TokenDataset, write_token_file

    sequences = [list(range(i, i + 500)) for i in range(40)]
    target = tmp_path / "tokens"

    def check() -> None:
        assert len(TokenDataset.open(target)) == sum(len(s) for s in sequences)

    kill_loop_over(lambda: write_token_file(target, sequences, vocab_size=1024), check, target)


def test_the_kill_loop_notices_a_save_that_is_not_crash_safe(tmp_path: Path) -> None:
    """The harness can fail: a save written in place is caught half-written."""

    class WritesInPlace:
        def save(self, directory: Path) -> None:
            directory.mkdir(exist_ok=True)
            for index in range(64):
                (directory / f"part-{index}").write_bytes(b"x" * 4096)

        @classmethod
        def load(cls, directory: Path) -> Any:
            parts = list(directory.iterdir())
            if len(parts) != 64 or any(p.stat().st_size != 4096 for p in parts):
                raise RuntimeError("half-written")
            return cls()

    component = WritesInPlace()
    target = tmp_path / "saved"
    seconds = timed(lambda: component.save(target))
    rng = random.Random(0)
    failures = 0
    for _ in range(40):
        for part in target.iterdir():
            part.unlink()  # each round starts from nothing, so any kill mid-save shows
        kill_while_saving(lambda: component.save(target), seconds, rng)
        try:
            WritesInPlace.load(target)
        except RuntimeError:
            failures += 1
    assert failures > 0, "40 kills never caught an in-place save half-written"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
