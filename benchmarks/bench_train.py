"""Training throughput: genarch's Trainer + GPT vs a hand-written loop over transformers' GPT-2.

The nanoGPT "baby GPT" configuration — 6 layers, 6 heads, width 384, context
256, batch 8, no dropout, exact GELU — at vocabularies 65 (characters) and
8,192 (a small BPE). ``--gelu tanh`` gives both models GPT-2's tanh
approximation instead (PyTorch's CPU kernel for it is ~4x slower than the
exact one, and transformers computes it in several Python-level ops).

Both sides do the same work per step: forward, next-token cross-entropy,
backward, gradient clipping at 1.0 and an AdamW step with weight decay 0.1.

* genarch: ``Trainer(LanguageModeling(GPT(...)))``, one ``Trainer.step`` per
  batch (the same call ``fit`` makes).
* peer: ``transformers.GPT2LMHeadModel`` (sdpa attention) with the same
  configuration and a plain PyTorch loop (``torch.optim.AdamW``,
  ``clip_grad_norm_``), as one writes it by hand.

The two alternate in one process (warm-up first), so machine load hits both
alike. MFU = model FLOPs per token (6N + 12·L·T·C, from
``GPT.flops_per_token``) * tokens/s / the fp32 matmul peak (2048 x 2048
matmuls, best of three) measured right after that run, so both see the same
machine load; the median over the repeats is reported.

Usage: ``python benchmarks/bench_train.py [--quick] [--threads N] [--gelu exact|tanh]
[--profile]``. The last line printed is one JSON object with every figure and
ratio. ``--profile`` times nothing: it splits each side's step into matrix
products, attention, optimizer and other ops (self CPU time under
``torch.profiler``), which shows how much of a step is left to win.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812

from genarch.models.transformer import GPT, GPTConfig
from genarch.training import LanguageModeling, Trainer

LAYERS, HEADS, WIDTH, CONTEXT, BATCH = 6, 6, 384, 256, 8
LEARNING_RATE, WEIGHT_DECAY, CLIP = 6e-4, 0.1, 1.0
from _timing import summary, version  # noqa: E402 - benchmarks/ is the script's folder


def matmul_peak() -> Callable[[], float]:
    """A measurement of fp32 GFLOP/s on 2048 x 2048 matmuls: the limit MFU is measured against.

    Called between the training runs, so the peak is measured under the same
    machine load as the runs it divides.
    """
    n = 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up

    def measure() -> float:
        start = time.perf_counter()
        for _ in range(4):
            a @ b
        return 4 * 2 * n**3 / (time.perf_counter() - start) / 1e9

    return measure


def batches(vocab: int, count: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return [
        torch.randint(0, vocab, (BATCH, CONTEXT + 1), generator=generator) for _ in range(count)
    ]


def genarch_step(vocab: int, gelu: str = "exact") -> tuple[Callable[[torch.Tensor], None], GPT]:
    torch.manual_seed(0)
    model = GPT(
        GPTConfig(
            vocab_size=vocab,
            context_length=CONTEXT,
            n_layer=LAYERS,
            n_head=HEADS,
            n_embd=WIDTH,
            mlp="gelu" if gelu == "exact" else "gelu_tanh",  # the peer is configured to match
            dropout=0.0,
        )
    )
    trainer = Trainer(
        LanguageModeling(model),
        batch_size=BATCH,
        max_steps=10**6,
        optimizer={"learning_rate": LEARNING_RATE, "weight_decay": WEIGHT_DECAY},
        max_grad_norm=CLIP,
        progress=False,
    )

    def step(batch: torch.Tensor) -> None:
        trainer.step(batch)

    return step, model


def peer_step(vocab: int, gelu: str = "exact") -> Callable[[torch.Tensor], None] | None:
    try:
        from transformers import GPT2Config, GPT2LMHeadModel
    except ImportError:
        return None
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=vocab,
        n_positions=CONTEXT,
        n_embd=WIDTH,
        n_layer=LAYERS,
        n_head=HEADS,
        activation_function="gelu" if gelu == "exact" else "gelu_new",  # gelu_new: tanh
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=0,  # the GPT-2 default (50256) is outside a small vocabulary
        eos_token_id=0,
    )
    config._attn_implementation = "sdpa"  # fused attention, as the peer figures use
    model = GPT2LMHeadModel(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)

    def step(batch: torch.Tensor) -> None:
        idx, targets = batch[:, :-1], batch[:, 1:]
        logits = model(input_ids=idx).logits
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        optimizer.step()

    return step


def measure(
    vocab: int, steps: int, repeats: int, peak: Callable[[], float], gelu: str = "exact"
) -> dict[str, Any]:
    """Tokens/s of both implementations and the matmul peak, alternating, after one warm-up
    step each; MFU is each run's rate against the peak measured next to it."""
    data = batches(vocab, steps)
    ours, model = genarch_step(vocab, gelu)
    runs: dict[str, Callable[[torch.Tensor], None]] = {"genarch": ours}
    if (theirs := peer_step(vocab, gelu)) is not None:
        runs["transformers"] = theirs
    for run in runs.values():
        run(data[0])
    rates: dict[str, list[float]] = {name: [] for name in runs}
    peaks: list[float] = []
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            for batch in data:
                run(batch)
            rates[name].append(steps * BATCH * CONTEXT / (time.perf_counter() - start))
        peaks.append(max(peak() for _ in range(3)))
    flops = model.flops_per_token(CONTEXT)
    result: dict[str, Any] = {
        "vocab": vocab,
        "parameters": model.num_parameters(),
        "flops_per_token": flops,
        "matmul_peak_gflops": summary(peaks),
    }
    for name, values in rates.items():
        result[name] = {
            "tokens_per_s": summary(values),
            "mfu": statistics.median(
                r * flops / (p * 1e9) for r, p in zip(values, peaks, strict=True)
            ),
        }
    if "transformers" in rates:  # each genarch run against the peer run next to it
        result["ratio"] = summary(
            [g / t for g, t in zip(rates["genarch"], rates["transformers"], strict=True)]
        )
    return result


#: profiler op names (self time) in each part of a step; everything else is "other"
MATRIX_PRODUCTS = {"aten::mm", "aten::addmm", "aten::addmm_", "aten::bmm", "aten::baddbmm"}


def step_profile(vocab: int, steps: int, gelu: str = "exact") -> dict[str, dict[str, float]]:
    """Where each implementation's step time goes: self CPU seconds per step by part.

    Parts: matrix products (``mm``/``addmm``/``bmm``: the work MFU counts,
    apart from attention), the fused attention kernels, the optimizer step
    (every op under ``Optimizer.step``), and other ops (normalisation,
    activations, the loss, gradient clipping, copies, allocation).
    """
    from torch.profiler import ProfilerActivity, profile

    data = batches(vocab, steps + 1)
    runs: dict[str, Callable[[torch.Tensor], None]] = {"genarch": genarch_step(vocab, gelu)[0]}
    if (theirs := peer_step(vocab, gelu)) is not None:
        runs["transformers"] = theirs
    parts: dict[str, dict[str, float]] = {}
    for name, run in runs.items():
        run(data[0])  # warm-up
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for batch in data[1:]:
                run(batch)
        seconds = dict.fromkeys(("matrix products", "attention", "optimizer", "other"), 0.0)
        for event in prof.events():
            part, scope = "other", event
            while scope is not None:  # the event itself or a caller in the optimizer
                if scope.name.startswith("Optimizer.step") or "adam" in scope.name:
                    part = "optimizer"
                scope = scope.cpu_parent
            if part != "optimizer":
                if event.name in MATRIX_PRODUCTS:
                    part = "matrix products"
                elif "scaled_dot_product" in event.name:
                    part = "attention"
            seconds[part] += event.self_cpu_time_total / 1e6 / steps
        parts[name] = seconds
    return parts


def print_profile(vocab: int, parts: dict[str, dict[str, float]]) -> None:
    print(f"vocab {vocab:5d} self CPU seconds per step (share of the step's total):")
    for name, seconds in parts.items():
        total = sum(seconds.values())
        cells = "  ".join(f"{part} {s:.3f} ({s / total:.0%})" for part, s in seconds.items())
        print(f"  {name:12s} total {total:.3f}  {cells}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps; under a minute")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument(
        "--gelu",
        choices=("exact", "tanh"),
        default="exact",
        help="the MLP activation of both models: nanoGPT's exact GELU (default) or GPT-2's tanh",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="instead of timing, profile a few steps of each side: where the step time goes",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    steps, repeats = (2, 2) if args.quick else (4, 7)
    vocabularies = (8192,) if args.quick else (65, 8192)
    if args.profile:
        profiles = {vocab: step_profile(vocab, steps, args.gelu) for vocab in vocabularies}
        for vocab, parts in profiles.items():
            print_profile(vocab, parts)
        print(json.dumps({"benchmark": "train_baby_gpt_profile", "threads": args.threads,
                          "load_average": os.getloadavg(), "profiles": profiles}))  # fmt: skip
        return

    print(f"python {platform.python_version()}, torch {torch.__version__}, "
          f"transformers {version('transformers')}, genarch {version('genarch')}")  # fmt: skip
    print(f"threads {args.threads}, GELU {args.gelu}, load average {os.getloadavg()}, "
          f"steps {steps} x {repeats}")  # fmt: skip
    peak = matmul_peak()
    results = []
    for vocab in vocabularies:
        result = measure(vocab, steps, repeats, peak, args.gelu)
        results.append(result)
        p = result["matmul_peak_gflops"]
        print(f"vocab {vocab:5d} fp32 matmul peak, measured between the runs: "
              f"{p['median']:.0f} GFLOP/s (min {p['min']:.0f}, max {p['max']:.0f})")  # fmt: skip
        for name in ("genarch", "transformers"):
            if name in result:
                t = result[name]["tokens_per_s"]
                print(f"vocab {vocab:5d} {name:12s} {t['median']:7.0f} tokens/s "
                      f"(min {t['min']:.0f}, max {t['max']:.0f})  MFU {result[name]['mfu']:.1%}")  # fmt: skip
            else:
                print(f"vocab {vocab:5d} {name:12s} not installed: skipped")
        if "ratio" in result:
            r = result["ratio"]
            print(f"vocab {vocab:5d} genarch / transformers: {r['median']:.3f}x "
                  f"(paired runs, min {r['min']:.3f}, max {r['max']:.3f})")  # fmt: skip
    print(f"load average after: {os.getloadavg()}")
    print(json.dumps({
        "benchmark": "train_baby_gpt",
        "threads": args.threads,
        "gelu": args.gelu,
        "quick": args.quick,
        "versions": {"torch": torch.__version__, "transformers": version("transformers")},
        "load_average": os.getloadavg(),
        "results": results,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
