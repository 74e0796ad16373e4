"""Training throughput: genarch's Trainer + GPT vs a hand-written loop over transformers' GPT-2.

The nanoGPT "baby GPT" configuration — 6 layers, 6 heads, width 384, context
256, batch 8, no dropout — at vocabularies 65 (characters) and 8,192 (a small
BPE). Both sides do the same work per step: forward, next-token cross-entropy,
backward, gradient clipping at 1.0 and an AdamW step with weight decay 0.1.

* genarch: ``Trainer(LanguageModeling(GPT(...)))``, one ``Trainer.step`` per
  batch (the same call ``fit`` makes).
* peer: ``transformers.GPT2LMHeadModel`` (sdpa attention) with the same
  configuration and a plain PyTorch loop (``torch.optim.AdamW``,
  ``clip_grad_norm_``), as one writes it by hand.

The two alternate in one process (warm-up first), so machine load hits both
alike. MFU = model FLOPs per token (6N + 12·L·T·C, from
``GPT.flops_per_token``) * tokens/s / the fp32 matmul peak measured in the
same run (2048 x 2048 matmuls).

Usage: ``python benchmarks/bench_train.py [--quick] [--threads N]``. The last
line printed is one JSON object with every figure and ratio.
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


def matmul_peak(repeats: int) -> dict[str, float]:
    """fp32 GFLOP/s of 2048 x 2048 matmuls: the physical limit MFU is measured against."""
    n = 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(4):
            a @ b
        rates.append(4 * 2 * n**3 / (time.perf_counter() - start) / 1e9)
    return summary(rates)


def batches(vocab: int, count: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return [
        torch.randint(0, vocab, (BATCH, CONTEXT + 1), generator=generator) for _ in range(count)
    ]


def genarch_step(vocab: int) -> tuple[Callable[[torch.Tensor], None], GPT]:
    torch.manual_seed(0)
    model = GPT(
        GPTConfig(
            vocab_size=vocab,
            context_length=CONTEXT,
            n_layer=LAYERS,
            n_head=HEADS,
            n_embd=WIDTH,
            mlp="gelu_tanh",  # GPT-2's activation, as the peer uses
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


def peer_step(vocab: int) -> Callable[[torch.Tensor], None] | None:
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


def measure(vocab: int, steps: int, repeats: int, peak: float) -> dict[str, Any]:
    """Tokens/s of both implementations, alternating, after one warm-up step each."""
    data = batches(vocab, steps)
    ours, model = genarch_step(vocab)
    runs: dict[str, Callable[[torch.Tensor], None]] = {"genarch": ours}
    if (theirs := peer_step(vocab)) is not None:
        runs["transformers"] = theirs
    for run in runs.values():
        run(data[0])
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            for batch in data:
                run(batch)
            rates[name].append(steps * BATCH * CONTEXT / (time.perf_counter() - start))
    flops = model.flops_per_token(CONTEXT)
    result: dict[str, Any] = {
        "vocab": vocab,
        "parameters": model.num_parameters(),
        "flops_per_token": flops,
    }
    for name, values in rates.items():
        result[name] = {
            "tokens_per_s": summary(values),
            "mfu": statistics.median(values) * flops / (peak * 1e9),
        }
    if "transformers" in rates:
        result["ratio"] = statistics.median(rates["genarch"]) / statistics.median(
            rates["transformers"]
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps; under a minute")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    steps, repeats = (2, 2) if args.quick else (4, 5)
    vocabularies = (8192,) if args.quick else (65, 8192)

    print(f"python {platform.python_version()}, torch {torch.__version__}, "
          f"transformers {version('transformers')}, genarch {version('genarch')}")  # fmt: skip
    print(f"threads {args.threads}, load average {os.getloadavg()}, steps {steps} x {repeats}")
    peak = matmul_peak(repeats=5)
    print(
        f"fp32 matmul peak: {peak['median']:.0f} GFLOP/s (min {peak['min']:.0f}, max {peak['max']:.0f})"
    )
    results = []
    for vocab in vocabularies:
        result = measure(vocab, steps, repeats, peak["median"])
        results.append(result)
        for name in ("genarch", "transformers"):
            if name in result:
                t = result[name]["tokens_per_s"]
                print(f"vocab {vocab:5d} {name:12s} {t['median']:7.0f} tokens/s "
                      f"(min {t['min']:.0f}, max {t['max']:.0f})  MFU {result[name]['mfu']:.1%}")  # fmt: skip
            else:
                print(f"vocab {vocab:5d} {name:12s} not installed: skipped")
        if "ratio" in result:
            print(f"vocab {vocab:5d} genarch / transformers: {result['ratio']:.3f}x")
    print(f"load average after: {os.getloadavg()}")
    print(json.dumps({
        "benchmark": "train_baby_gpt",
        "threads": args.threads,
        "quick": args.quick,
        "versions": {"torch": torch.__version__, "transformers": version("transformers")},
        "matmul_peak_gflops": peak,
        "load_average": os.getloadavg(),
        "results": results,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
