"""Checkpoints: safetensors for tensors, JSON for everything else, written atomically.

A checkpoint is a directory ``step-00000100/`` holding

* ``weights.safetensors`` — the players' parameters and buffers,
* ``optimizer.safetensors`` — every other tensor of the state (optimizer moments),
* ``state.json`` — the rest: step, config, RNG states, data position, the
  optimizer's hyper-parameters, metrics so far — and where each tensor goes.

Nothing is pickled. The directory is built under a temporary name and renamed
into place (:func:`genarch._io.atomic_directory`), so a process killed at any
moment leaves every earlier checkpoint intact and never a half-written one
under a real name. :class:`CheckpointManager` keeps the last ``K`` checkpoints
plus the best one by a validation metric.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from genarch._io import discard, readable_directory, settle
from genarch.errors import ConfigError, IntegrityError
from genarch.persistence import open_saved, reading, save_component

__all__ = ["CheckpointManager", "load_checkpoint", "save_checkpoint"]

logger = logging.getLogger(__name__)

FORMAT = "genarch.checkpoint/1"
WEIGHTS_FILE = "weights.safetensors"
TENSORS_FILE = "optimizer.safetensors"
STATE_FILE = "state.json"
_NAME = re.compile(r"^step-(\d{8,})$")
_LEFT_ASIDE = re.compile(r"^\.step-(\d{8,})\.old-")  # the previous copy, mid-swap
_ANY_LEFTOVER = re.compile(r"^\.step-(\d{8,})\.(old-|trash-|\d+-.*\.tmp$)")


def _encode(value: Any, path: str, tensors: dict[str, torch.Tensor]) -> Any:
    """Turn a state tree into JSON, moving tensors into ``tensors`` by path."""
    if isinstance(value, torch.Tensor):
        # clone: tied weights share storage, which safetensors refuses to write
        tensors[path] = value.detach().to("cpu").contiguous().clone()
        return {"$tensor": path}
    if isinstance(value, Mapping):
        if all(isinstance(key, str) and not key.startswith("$") for key in value):
            return {key: _encode(item, f"{path}/{key}", tensors) for key, item in value.items()}
        return {
            "$items": [
                [_encode(key, f"{path}/$key{i}", tensors), _encode(item, f"{path}/{i}", tensors)]
                for i, (key, item) in enumerate(value.items())
            ]
        }
    if isinstance(value, tuple):
        return {"$tuple": [_encode(item, f"{path}/{i}", tensors) for i, item in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(item, f"{path}/{i}", tensors) for i, item in enumerate(value)]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise ConfigError(
        f"cannot store {type(value).__name__} at {path or '/'} in a checkpoint: "
        "only tensors, numbers, strings, None, lists, tuples and dicts are stored (never pickle)"
    )


def _decode(value: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    if isinstance(value, list):
        return [_decode(item, tensors) for item in value]
    if not isinstance(value, dict):
        return value
    if "$tensor" in value:
        try:
            return tensors[value["$tensor"]]
        except KeyError:
            raise IntegrityError(f"the checkpoint lacks the tensor {value['$tensor']}") from None
    if "$tuple" in value:
        return tuple(_decode(item, tensors) for item in value["$tuple"])
    if "$items" in value:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in value["$items"]}
    return {key: _decode(item, tensors) for key, item in value.items()}


def save_checkpoint(
    directory: str | os.PathLike[str],
    state: Mapping[str, Any],
    *,
    weights_at: tuple[str, ...] = ("players",),
) -> Path:
    """Write ``state`` atomically as a checkpoint directory.

    Args:
        directory: the checkpoint directory (replaced atomically if it exists).
        state: a tree of dicts, lists, tuples, tensors and JSON scalars.
        weights_at: the keys leading to the model weights within ``state``;
            their tensors go to ``weights.safetensors``, all others to
            ``optimizer.safetensors``.

    Returns:
        The checkpoint directory.

    Raises:
        ConfigError: the state holds something that cannot be stored without pickle.
    """
    target = Path(directory)
    tensors: dict[str, torch.Tensor] = {}
    tree = _encode(dict(state), "", tensors)
    prefix = "".join(f"/{key}" for key in weights_at) + "/"
    weights = {k: t for k, t in tensors.items() if k.startswith(prefix)}
    others = {k: t for k, t in tensors.items() if not k.startswith(prefix)}

    def write_tensors(staging: Path) -> None:
        save_file(weights, str(staging / WEIGHTS_FILE))
        save_file(others, str(staging / TENSORS_FILE))

    save_component(
        target, FORMAT, header={"state": tree}, write_files=write_tensors, header_file=STATE_FILE
    )
    return target


def load_checkpoint(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` back into a state tree.

    Raises:
        NotFoundError: ``directory`` holds no checkpoint.
        IntegrityError: the checkpoint is corrupt or not a genarch checkpoint.
    """
    saved = open_saved(directory, FORMAT, header_file=STATE_FILE)
    tensors = {**saved.tensors(WEIGHTS_FILE), **saved.tensors(TENSORS_FILE)}
    with reading(FORMAT, saved.root):
        state = _decode(saved.field("state"), tensors)
    if not isinstance(state, dict):
        raise IntegrityError(f"the checkpoint at {saved.root} holds no state mapping")
    return state


class CheckpointManager:
    """Numbered checkpoints in one directory: keeps the last ``keep_last`` and the best.

    Args:
        directory: where ``step-XXXXXXXX`` checkpoints live.
        keep_last: how many of the most recent checkpoints to keep (>= 1).
        keep_best: also keep the checkpoint with the lowest ``metric``.

    Examples:
        >>> import tempfile, torch
        >>> manager = CheckpointManager(tempfile.mkdtemp(), keep_last=2)
        >>> for step, metric in [(1, 0.9), (2, 0.5), (3, 0.7), (4, 0.8)]:
        ...     _ = manager.save(step, {"players": {"w": torch.ones(2) * step}}, metric=metric)
        >>> [manager.step_of(p) for p in manager.checkpoints()]
        [2, 3, 4]
        >>> manager.step_of(manager.best())
        2
    """

    def __init__(
        self, directory: str | os.PathLike[str], *, keep_last: int = 3, keep_best: bool = True
    ) -> None:
        if not (isinstance(keep_last, int) and keep_last >= 1):
            raise ConfigError(f"keep_last must be an int >= 1, got {keep_last!r}")
        self.directory = Path(directory)
        self.keep_last = keep_last
        self.keep_best = keep_best

    @staticmethod
    def step_of(path: Path | None) -> int | None:
        """The step number in a checkpoint's name."""
        match = _NAME.match(path.name) if path is not None else None
        return int(match.group(1)) if match else None

    def checkpoints(self) -> list[Path]:
        """Complete checkpoints, oldest first (half-written ones have hidden names).

        A checkpoint whose save was interrupted between its two renames is listed
        under its real name too: :func:`load_checkpoint` reads the complete copy
        that was left aside.
        """
        if not self.directory.is_dir():
            return []
        steps = set()
        for path in self.directory.iterdir():
            match = _NAME.match(path.name) or _LEFT_ASIDE.match(path.name)
            if match and readable_directory(self.directory / f"step-{match.group(1)}"):
                steps.add(match.group(1))
        return [self.directory / f"step-{step}" for step in sorted(steps, key=int)]

    def latest(self) -> Path | None:
        """The most recent checkpoint, or ``None``."""
        found = self.checkpoints()
        return found[-1] if found else None

    def best(self) -> Path | None:
        """The checkpoint with the lowest recorded metric, or ``None``."""
        scored = [(m, p) for p in self.checkpoints() if (m := self._metric(p)) is not None]
        return min(scored, key=lambda pair: (pair[0], self.step_of(pair[1])))[1] if scored else None

    def save(self, step: int, state: Mapping[str, Any], *, metric: float | None = None) -> Path:
        """Write the checkpoint of ``step`` (with its validation metric), then prune old ones."""
        self._remove_leftovers()
        path = save_checkpoint(
            self.directory / f"step-{step:08d}",
            {**state, "checkpoint_metric": metric},
            weights_at=("optimizer", "players"),
        )
        self._prune()
        return path

    @staticmethod
    def _metric(path: Path) -> float | None:
        root = readable_directory(path)
        try:
            if root is None:
                return None
            document = json.loads((root / STATE_FILE).read_text(encoding="utf-8"))
            value = document["state"].get("checkpoint_metric")
        except (OSError, ValueError, KeyError, AttributeError):
            return None
        return float(value) if isinstance(value, int | float) else None

    def _prune(self) -> None:
        found = self.checkpoints()
        keep = set(found[-self.keep_last :])
        if self.keep_best and (best := self.best()) is not None:
            keep.add(best)
        for path in found:
            if path not in keep:
                settle(path)  # a copy left aside becomes the real one, then goes too
                discard(path)  # renamed first: a kill mid-delete leaves no partial checkpoint

    def _remove_leftovers(self) -> None:
        """Finish what processes killed while writing left behind, losing nothing.

        A checkpoint interrupted between its two renames is moved back under its
        real name (it is the only complete copy of that step); staging and
        half-deleted directories of dead processes are removed.
        """
        if not self.directory.is_dir():
            return
        for path in list(self.directory.iterdir()):
            match = _NAME.match(path.name) or _ANY_LEFTOVER.match(path.name)
            if match:
                settle(self.directory / f"step-{match.group(1)}")
            elif path.name.startswith(".step-") and path.name.endswith(".deleting"):
                logger.info("removing a half-deleted checkpoint: %s", path)
                shutil.rmtree(path, ignore_errors=True)  # the older layout
