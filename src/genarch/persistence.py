"""Saving and loading components: one directory layout, one error policy, crash-safe.

Every persistable genarch component saves into a directory holding a JSON
*header* (``config.json`` unless the component names another file) whose
``"format"`` names the kind of component, optional weights in
``model.safetensors`` (never pickle), and any files of its own. The helper
here writes all of it in one :func:`~genarch._io.atomic_directory`, so a crash
at any moment leaves either the old save or the new one; and it reads through
:func:`~genarch._io.readable_directory`, so a crash between the two renames of
a save still loads the complete previous copy.

Every save also lists each of its files with its SHA-256 in ``SHA256SUMS``
(the ``sha256sum`` format, so ``sha256sum -c SHA256SUMS`` checks it by hand),
and :func:`open_saved` verifies them all before it parses anything.

The error policy is the same for every component:

* nothing saved there → :class:`~genarch.errors.NotFoundError` naming the kind,
  the path and the file that is missing;
* the files are corrupt, truncated, changed since the save, of another kind or
  inconsistent with the config → :class:`~genarch.errors.IntegrityError` naming
  the kind, the path and, for a changed file, the file.

Examples:
    >>> import tempfile, torch
    >>> from genarch.schemas import Config
    >>> class ScaleConfig(Config):
    ...     size: int = 2
    >>> folder = tempfile.mkdtemp() + "/scale"
    >>> save_component(folder, "example.scale/1", config=ScaleConfig(),
    ...                tensors={"weight": torch.ones(2)})
    >>> saved = open_saved(folder, "example.scale/1")
    >>> saved.config(ScaleConfig).size, saved.tensors()["weight"].tolist()
    (2, [1.0, 1.0])
    >>> open_saved(folder, "example.other/1")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    genarch.errors.IntegrityError: ... holds a saved 'example.scale/1', not a 'example.other/1'
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors import SafetensorError
from torch import Tensor, nn

from genarch._io import (
    atomic_directory,
    manifest_digest,
    manifest_problems,
    readable_directory,
    write_manifest,
)
from genarch.errors import GenarchError, IntegrityError, NotFoundError
from genarch.schemas import Config

__all__ = [
    "HEADER_FILE",
    "WEIGHTS_FILE",
    "SavedComponent",
    "load_state",
    "open_saved",
    "reading",
    "save_component",
]

HEADER_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"

C = TypeVar("C", bound=Config)
PathLike = str | os.PathLike[str]


def save_component(
    directory: PathLike,
    kind: str,
    *,
    config: Config | None = None,
    header: Mapping[str, Any] | None = None,
    tensors: Mapping[str, Tensor] | None = None,
    write_files: Callable[[Path], None] | None = None,
    header_file: str = HEADER_FILE,
) -> None:
    """Save a component into ``directory``, atomically replacing what was there.

    Args:
        directory: where to save (created with its parents).
        kind: the format name written into the header (``"genarch.gpt/1"``);
            :func:`open_saved` refuses a directory of another kind.
        config: the component's config, stored as ``header["config"]``.
        header: more JSON fields for the header.
        tensors: weights for ``model.safetensors`` (moved to CPU, made contiguous).
        write_files: called with the staging directory to write files of the
            component's own (a tokenizer, an entry table); they land atomically
            together with the header.
        header_file: the header's file name.
    """
    document: dict[str, Any] = {"format": kind}
    if config is not None:
        document["config"] = config.model_dump(mode="json")
    document.update(header or {})
    with atomic_directory(directory) as staging:
        if write_files is not None:
            write_files(staging)
        if tensors is not None:
            from safetensors.torch import save_file

            state = {name: t.detach().cpu().contiguous() for name, t in tensors.items()}
            save_file(state, str(staging / WEIGHTS_FILE))
        (staging / header_file).write_text(json.dumps(document, indent=2) + "\n", "utf-8")
        write_manifest(staging)


@dataclass(frozen=True)
class SavedComponent:
    """A saved component, opened for reading by :func:`open_saved`.

    Attributes:
        kind: the format name that was checked.
        root: the directory read (the saved one, or the complete copy an
            interrupted save left aside).
        header: the parsed JSON header, ``"format"`` included.
        digest: SHA-256 of the save's ``SHA256SUMS`` — one value that changes
            when any file of the save changes (``None`` for a save made before
            manifests existed).
    """

    kind: str
    root: Path
    header: dict[str, Any]
    digest: str | None = None

    def field(self, name: str) -> Any:
        """A header field. Raises :class:`IntegrityError` when it is missing."""
        if name not in self.header:
            raise IntegrityError(f"the saved {self.kind} in {str(self.root)!r} has no {name!r}")
        return self.header[name]

    def config(self, config_type: type[C]) -> C:
        """The stored config, validated. Raises :class:`IntegrityError` when invalid."""
        with reading(self.kind, self.root):
            return config_type.parse(self.field("config"))

    def path(self, name: str) -> Path:
        """A file of the save. Raises :class:`IntegrityError` when it is missing."""
        file = self.root / name
        if not file.exists():
            raise IntegrityError(f"the saved {self.kind} in {str(self.root)!r} lacks {name!r}")
        return file

    def tensors(self, name: str = WEIGHTS_FILE) -> dict[str, Tensor]:
        """The weights in ``name``. Raises :class:`IntegrityError` when unreadable."""
        from safetensors.torch import load_file

        file = self.path(name)
        with reading(self.kind, self.root):
            return load_file(str(file))


def open_saved(directory: PathLike, kind: str, *, header_file: str = HEADER_FILE) -> SavedComponent:
    """Open what :func:`save_component` wrote, checking every file and its kind.

    Every file is checked against the save's ``SHA256SUMS`` *before* anything is
    parsed: a changed byte, a missing file or an extra file is refused. (Saves
    from before manifests existed have none and are read unchecked.) The
    manifest guards against damage and accidental edits; it is not a signature:
    whoever can rewrite the files can rewrite it too.

    Raises:
        NotFoundError: nothing is saved in ``directory``.
        IntegrityError: a file does not match the manifest, the header is not
            valid JSON, or it names another kind.
    """
    found = readable_directory(directory)  # also the copy an interrupted save left aside
    problems = manifest_problems(found) if found is not None else None
    if problems:
        raise IntegrityError(
            f"the saved {kind} in {str(found)!r} failed verification: {'; '.join(problems[:5])}"
        )
    if found is None or not (found / header_file).is_file():
        raise NotFoundError(f"no saved {kind} in {str(directory)!r} ({header_file} is missing)")
    with reading(kind, found):
        document = json.loads((found / header_file).read_text("utf-8"))
    if not isinstance(document, dict) or document.get("format") != kind:
        other = document.get("format") if isinstance(document, dict) else None
        raise IntegrityError(f"{str(found)!r} holds a saved {other!r}, not a {kind!r}")
    return SavedComponent(kind=kind, root=found, header=document, digest=manifest_digest(found))


@contextlib.contextmanager
def reading(kind: str, root: PathLike) -> Iterator[None]:
    """Turn any failure while reading a save into :class:`IntegrityError`.

    genarch's own errors pass through unchanged, except :class:`NotFoundError`:
    a file missing *inside* a save means the save is damaged, not absent.
    """
    try:
        yield
    except IntegrityError:
        raise
    except NotFoundError as error:
        raise IntegrityError(f"the saved {kind} in {str(root)!r} is incomplete: {error}") from None
    except (
        GenarchError,
        OSError,
        ValueError,
        KeyError,
        TypeError,
        RuntimeError,  # RecursionError from deeply nested JSON among them
        ArithmeticError,  # OverflowError from an absurd number
        SafetensorError,
    ) as error:
        raise IntegrityError(f"the saved {kind} in {str(root)!r} is corrupt: {error}") from None


def load_state(module: nn.Module, state: Mapping[str, Tensor], where: str) -> None:
    """Copy ``state`` into ``module``, raising :class:`IntegrityError` on any mismatch.

    Every name and shape is checked first, so a failed load leaves the module untouched.
    """
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise IntegrityError(
            f"{where}: the weights are of another model (missing {missing[:4]}, "
            f"unexpected {unexpected[:4]})"
        )
    for name, tensor in expected.items():
        if state[name].shape != tensor.shape:
            raise IntegrityError(
                f"{where}: {name} has shape {tuple(state[name].shape)}, "
                f"the config expects {tuple(tensor.shape)}"
            )
        if state[name].dtype != tensor.dtype and not (
            state[name].is_floating_point() and tensor.is_floating_point()
        ):
            raise IntegrityError(
                f"{where}: {name} has dtype {state[name].dtype}, expected {tensor.dtype}"
            )
    with torch.no_grad():
        module.load_state_dict(dict(state))
