"""The quickstart's settings and its run folder: figures, curve, sample and answers, one ``report.md``.

:data:`QUICKSTART_SETTINGS` holds the small GPT's size and schedule for
``genarch quickstart`` (about 2 minutes of training on 2 CPU cores) and
``genarch quickstart --full`` (longer, better); :func:`write_run_folder` writes
every file of :data:`REPORT_FILES`.
The training curve is drawn as a PNG with the standard library alone (``zlib``
and ``struct``), so the report needs no plotting package and no Pillow.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "curve.png"
    >>> curve_png([5.0, 4.0, 3.5, 3.2], path).read_bytes()[:8]
    b'\\x89PNG\\r\\n\\x1a\\n'
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from genarch._io import atomic_write_bytes
from genarch.errors import InvalidInputError

__all__ = [
    "QUICKSTART_SETTINGS",
    "REPORT_FILES",
    "SAMPLE",
    "Printer",
    "curve_png",
    "quickstart_settings",
    "write_run_folder",
]

#: The GPT's training settings and the n-gram counts mixed with it. Weight decay 1.0
#: (AdamW, decoupled: each step shrinks the weights by ``learning_rate`` times 1.0) and a
#: learning rate of 0.002 were chosen by a sweep over the quickstart's own held-out text
#: (the learning rate 0.0015-0.005, weight decay 0-4, a 2,048-token vocabulary): with
#: the earlier 0.005 and no decay the GPT alone scored 2.01 bits per byte held out, with
#: these 1.56. Training longer only memorises the 150 thousand training tokens (2,500
#: steps of the default score 1.67) unless dropout is on too: ``--full`` (2,500 steps,
#: dropout 0.1) brings the GPT alone to 1.47. The measured figures and times are in the
#: README. ``--vocab-size`` and ``--train-steps`` override the settings.
QUICKSTART_SETTINGS: dict[str, dict[str, Any]] = {
    "default": {
        "vocab_size": 1024,
        "context_length": 64,
        "n_layer": 3,
        "n_head": 6,
        "n_embd": 192,
        "dropout": 0.0,
        "batch_size": 16,
        "learning_rate": 2e-3,
        "weight_decay": 1.0,
        "train_steps": 1000,
        "warmup_steps": 50,
        "ngram_order": 6,
        "ngram_weight": 0.5,
    },
    "full": {
        "vocab_size": 1024,
        "context_length": 64,
        "n_layer": 3,
        "n_head": 6,
        "n_embd": 192,
        "dropout": 0.1,
        "batch_size": 16,
        "learning_rate": 2e-3,
        "weight_decay": 1.0,
        "train_steps": 2500,
        "warmup_steps": 100,
        "ngram_order": 6,
        "ngram_weight": 0.5,
    },
}
SAMPLE = {"prompt": "The list", "max_new_tokens": 48, "temperature": 0.5, "top_k": 20, "seed": 0}


class Printer:
    """Prints the stages' output, or nothing under ``--quiet`` (the final summary always prints)."""

    def __init__(self, *, quiet: bool = False) -> None:
        self.quiet = quiet

    def __call__(self, *parts: object) -> None:
        if not self.quiet:
            print(*parts)

    def heading(self, title: str) -> None:
        self()
        self(f"== {title}")


def quickstart_settings(
    *, full: bool = False, vocab_size: int | None = None, train_steps: int | None = None
) -> dict[str, Any]:
    """The GPT's settings: :data:`QUICKSTART_SETTINGS` (``full`` or default), with overrides.

    A shorter run gets a proportionally shorter warm-up (a tenth of its steps at most).

    Raises:
        InvalidInputError: a vocabulary under 257 tokens or fewer than 1 step.

    Example:
        >>> quickstart_settings(train_steps=10)["warmup_steps"]
        1
    """
    settings = dict(QUICKSTART_SETTINGS["full" if full else "default"])
    if vocab_size is not None:
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 257:
            raise InvalidInputError(
                f"vocab_size must be an int >= 257 (the 256 bytes and one merge), got {vocab_size!r}"
            )
        settings["vocab_size"] = vocab_size
    if train_steps is not None:
        if isinstance(train_steps, bool) or not isinstance(train_steps, int) or train_steps < 1:
            raise InvalidInputError(f"train_steps must be an int >= 1, got {train_steps!r}")
        settings["train_steps"] = train_steps
        settings["warmup_steps"] = min(settings["warmup_steps"], train_steps // 10)
    return settings


#: Every file the quickstart's run folder holds (report.md links the others).
REPORT_FILES = (
    "report.md",
    "data_report.json",
    "tokenizer.json",
    "training.json",
    "training_curve.png",
    "sample.txt",
    "answers.json",
    "answers.md",
)


def _png(pixels: list[bytearray], width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + bytes(row) for row in pixels)  # filter 0 on each RGB row
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def curve_png(
    values: Sequence[float],
    path: str | Path,
    *,
    marks: Sequence[tuple[int, float]] = (),
    width: int = 480,
    height: int = 240,
) -> Path:
    """Draw ``values`` (one per step) as a line chart in a PNG at ``path``; return the path.

    ``marks`` are ``(step, value)`` points drawn as red squares (held-out losses).
    The vertical axis spans the finite values' range; grey lines mark every
    whole unit of it.

    Raises:
        InvalidInputError: no finite value to draw.
    """
    finite = [v for v in values if math.isfinite(v)] + [v for _, v in marks if math.isfinite(v)]
    if not finite:
        raise InvalidInputError("curve_png needs at least one finite value, got none")
    low, high = min(finite), max(finite)
    if high - low < 1e-9:
        low, high = low - 0.5, high + 0.5
    margin = 8
    pixels = [bytearray(b"\xff" * (3 * width)) for _ in range(height)]

    def put(x: int, y: int, colour: tuple[int, int, int]) -> None:
        if 0 <= x < width and 0 <= y < height:
            pixels[y][3 * x : 3 * x + 3] = bytes(colour)

    def to_y(value: float) -> int:
        return round(height - margin - (value - low) / (high - low) * (height - 2 * margin))

    steps = max(len(values) - 1, 1)

    def to_x(step: float) -> int:
        return round(margin + step / steps * (width - 2 * margin))

    for level in range(math.ceil(low), math.floor(high) + 1):
        for x in range(margin, width - margin):
            put(x, to_y(level), (220, 220, 220))
    previous: tuple[int, int] | None = None
    for step, value in enumerate(values):
        if not math.isfinite(value):
            previous = None
            continue
        point = (to_x(step), to_y(value))
        if previous is not None:
            count = max(abs(point[0] - previous[0]), abs(point[1] - previous[1]), 1)
            for i in range(count + 1):
                px = previous[0] + (point[0] - previous[0]) * i / count
                py = previous[1] + (point[1] - previous[1]) * i / count
                put(round(px), round(py), (31, 119, 180))
        else:
            put(*point, (31, 119, 180))
        previous = point
    for step, value in marks:
        if math.isfinite(value):
            cx, cy = to_x(step - 1), to_y(value)
            for dx in range(-3, 4):
                for dy in range(-3, 4):
                    put(cx + dx, cy + dy, (214, 39, 40))
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(target, _png(pixels, width, height))
    return target


def _json(path: Path, payload: Any) -> None:
    atomic_write_bytes(path, (json.dumps(payload, indent=2, default=str) + "\n").encode("utf-8"))


def write_run_folder(
    out: str | Path,
    *,
    data_report: Mapping[str, Any],
    tokenizer: Mapping[str, Any],
    training: Mapping[str, Any],
    train_loss: Sequence[float],
    eval_loss: Sequence[tuple[int, float]],
    sample: str,
    answers: Sequence[Mapping[str, Any]],
    answers_text: Sequence[str],
) -> Path:
    """Write the quickstart's run folder (every file of :data:`REPORT_FILES`); return ``report.md``."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    _json(folder / "data_report.json", dict(data_report))
    _json(folder / "tokenizer.json", dict(tokenizer))
    _json(
        folder / "training.json",
        {**training, "train_loss": list(train_loss), "eval_loss": [list(e) for e in eval_loss]},
    )
    curve_png(train_loss, folder / "training_curve.png", marks=eval_loss)
    atomic_write_bytes(folder / "sample.txt", (sample + "\n").encode("utf-8"))
    _json(folder / "answers.json", list(answers))
    answers_md = "# Answers with citations\n\n" + "\n\n".join(
        "```text\n" + text + "\n```" for text in answers_text
    )
    atomic_write_bytes(folder / "answers.md", (answers_md + "\n").encode("utf-8"))
    finite = [v for v in [*train_loss, *(e[1] for e in eval_loss)] if math.isfinite(v)]
    low, high = (min(finite), max(finite)) if finite else (math.nan, math.nan)
    figures = "\n".join(f"| {name} | {value} |" for name, value in training.items())
    report = f"""# genarch quickstart run

## Data

{data_report.get("summary", "")}

Details: [data_report.json](data_report.json)

## Tokenizer

Byte-level BPE, {tokenizer.get("vocab_size")} tokens, {tokenizer.get("bytes_per_token", 0):.2f} bytes
per token on the corpus. Details: [tokenizer.json](tokenizer.json)

## Training

| figure | value |
|---|---|
{figures}

![training curve](training_curve.png)

Training loss per step (blue, {low:.2f} to {high:.2f} nats/token; a grey line at every whole
nat), held-out loss at the end (red).

Per-step losses: [training.json](training.json)

## Sample

```text
{sample}
```

([sample.txt](sample.txt))

## Answers

[answers.md](answers.md) (readable), [answers.json](answers.json) (every citation with its offsets)
"""
    atomic_write_bytes(folder / "report.md", report.encode("utf-8"))
    return folder / "report.md"
