"""Prefix caching and speculative decoding: each against plain decoding, on models trained here.

Two byte-level GPTs are trained briefly on the Python documentation that ships
with Python (``genarch.data.python_docs``), with the same data and seed:

* the target: 4 layers, 4 heads, width 256 (about 3.3 M parameters);
* the draft: 1 layer, 2 heads, width 96 (about 0.2 M parameters).

Training stops after a step count or a time budget, whichever comes first
(``--train-seconds``); the steps done and the final loss are reported, since
how often the two models agree depends on how far they were trained.

Then, in one process, peers alternating:

1. **Prefix cache**: time to first token (prefill + one token) of a request
   whose prompt is a 512-token shared prefix (a slice of the docs, as a RAG
   system prompt would be) plus a 24-token question, with a warm
   :class:`~genarch.models.generation.prefix_cache.PrefixCache` against the
   same generator without one; and whether 32 greedy tokens are identical.
2. **Speculative decoding**: greedy tokens/s of
   :class:`~genarch.models.generation.speculative.SpeculativeGenerator`
   (target + draft) against the target alone, 96 new tokens after held-out
   32-byte prompts, batch 1; identical tokens and the acceptance rate.

Ratios are medians over paired (adjacent) runs. The last line is one JSON object.

Run: ``python benchmarks/bench_decoding_tricks.py [--quick] [--threads 2]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import platform
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from _timing import summary

import genarch
from genarch.data import python_docs
from genarch.models import GPT, GPTConfig, TextGenerator
from genarch.models.generation.prefix_cache import PrefixCache
from genarch.models.generation.speculative import SpeculativeGenerator
from genarch.schemas import TextRequest

logger = logging.getLogger("bench_decoding_tricks")

PREFIX, QUESTION, BLOCK, CONTEXT = 512, 24, 128, 640


class Bytes:
    """UTF-8 bytes as tokens: no tokenizer to train, every text encodes."""

    vocab_size = 256

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, token_ids: Sequence[int]) -> str:
        return bytes(token_ids).decode("utf-8", errors="replace")


def train(
    config: GPTConfig, data: torch.Tensor, steps: int, budget_s: float
) -> tuple[GPT, dict[str, Any]]:
    """AdamW with warm-up and cosine decay on random windows of ``data``, as the tutorial does."""
    torch.manual_seed(0)
    model = GPT(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.1)
    windows = torch.Generator().manual_seed(0)
    started, loss, done = time.perf_counter(), float("nan"), 0
    model.train()
    for step in range(steps):
        lr = (
            3e-3 * min(1.0, (step + 1) / 20) * (0.1 + 0.45 * (1 + math.cos(math.pi * step / steps)))
        )
        for group in optimizer.param_groups:
            group["lr"] = lr
        starts = torch.randint(0, len(data) - BLOCK - 1, (8,), generator=windows).tolist()
        batch = torch.stack([data[s : s + BLOCK + 1] for s in starts])
        value = model.loss(batch[:, :-1], batch[:, 1:])
        optimizer.zero_grad(set_to_none=True)
        value.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        loss, done = value.item(), step + 1
        if time.perf_counter() - started > budget_s:
            break
    model.eval()
    seconds = time.perf_counter() - started
    return model, {"steps": done, "seconds": round(seconds, 1), "final_loss": round(loss, 3)}


def timed(function: Callable[[], object]) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def paired(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Seconds per run, peers alternating, after one warm-up each."""
    for run in runs.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            times[name].append(timed(run))
    return times


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter training, fewer repeats")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument(
        "--k", type=int, nargs="+", default=None, help="draft tokens per round (4; full: 4 6 8)"
    )
    parser.add_argument(
        "--train-seconds", type=float, default=None, help="target's training budget (draft: 1/3)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    repeats = 3 if args.quick else 7
    draft_tokens = args.k or ([4] if args.quick else [4, 6, 8])
    target_steps, draft_steps = (150, 300) if args.quick else (1000, 2000)
    budget_s = args.train_seconds or (60.0 if args.quick else 300.0)

    tokenizer = Bytes()
    documents = python_docs()
    held_out = [d.text for d in documents[::10]]
    training = "\n\n".join(d.text for i, d in enumerate(documents) if i % 10)
    data = torch.tensor(tokenizer.encode(training))
    shape = {"vocab_size": 256, "context_length": CONTEXT, "mlp": "gelu_tanh"}
    target_model, target_training = train(
        GPTConfig(n_layer=4, n_head=4, n_embd=256, **shape),
        data,
        target_steps,
        budget_s,
    )
    draft_model, draft_training = train(
        GPTConfig(n_layer=1, n_head=2, n_embd=96, **shape),
        data,
        draft_steps,
        budget_s / 3,
    )
    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "genarch": genarch.__version__,
    }
    print("versions:", ", ".join(f"{k} {v}" for k, v in versions.items()))
    print(
        f"target {target_model.num_parameters() / 1e6:.2f} M parameters, trained {target_training}; "
        f"draft {draft_model.num_parameters() / 1e6:.2f} M, trained {draft_training}; "
        f"{args.threads} threads, {repeats} repeats{' (quick)' if args.quick else ''}"
    )
    if target_training["final_loss"] > 2.5:  # bytes: a trained model reaches about 1.5-2
        logger.warning(
            "the target was barely trained (loss %.2f after %d steps): both models may repeat "
            "one token, which makes the acceptance rate and speed-up unrepresentative; give "
            "training more time (--train-seconds)",
            target_training["final_loss"],
            target_training["steps"],
        )
    results: dict[str, Any] = {
        "versions": versions,
        "threads": args.threads,
        "quick": args.quick,
        "target": {"parameters": target_model.num_parameters(), **target_training},
        "draft": {"parameters": draft_model.num_parameters(), **draft_training},
    }

    # ------------------------------------------------ 1. prefix cache, TTFT
    plain = TextGenerator(target_model, tokenizer)
    cache = PrefixCache(max_bytes=256 * 2**20, block_size=16)
    cached = TextGenerator(target_model, tokenizer, prefix_cache=cache)
    text = held_out[0].encode()
    prefix = text[:PREFIX].decode(errors="ignore")
    while len(prefix.encode()) < PREFIX:  # pad a cut character back to 512 bytes
        prefix += " "
    questions = [held_out[i][:QUESTION] for i in range(1, 5)]
    first = [TextRequest(prompt=prefix + q, max_new_tokens=1, temperature=0) for q in questions]
    longer = [TextRequest(prompt=prefix + q, max_new_tokens=32, temperature=0) for q in questions]
    cached.generate(TextRequest(prompt=prefix + "warm", max_new_tokens=1))  # the prefix is cached
    same_prefix = [cached.generate(r) == plain.generate(r) for r in longer]
    times = paired(
        {
            "no_cache": lambda: [plain.generate(r) for r in first],
            "prefix_cache_warm": lambda: [cached.generate(r) for r in first],
        },
        repeats,
    )
    ttft = {name: [t / len(first) * 1e3 for t in values] for name, values in times.items()}
    ratio = [a / b for a, b in zip(ttft["no_cache"], ttft["prefix_cache_warm"], strict=True)]
    stats = cache.stats()
    results["prefix_cache"] = {
        "prefix_tokens": PREFIX,
        "question_tokens": QUESTION,
        "ttft_ms": {name: summary(values) for name, values in ttft.items()},
        "speedup": summary(ratio),
        "identical_tokens": all(same_prefix),
        "cache": {
            "entries": stats.entries,
            "bytes": stats.bytes,
            "hit_rate": round(stats.hit_rate, 3),
        },
    }
    print(
        f"\nprefix cache, {PREFIX}-token prefix + {QUESTION}-token question: time to first token "
        f"{summary(ttft['no_cache'])['median']:.1f} ms without, "
        f"{summary(ttft['prefix_cache_warm'])['median']:.1f} ms warm: "
        f"{summary(ratio)['median']:.1f}x; identical tokens (32 greedy): {all(same_prefix)}"
    )

    # --------------------------------------- 2. speculative decoding, greedy
    draft = TextGenerator(draft_model, tokenizer)
    prompts = [t[200:232] for t in held_out[1:5]]
    requests = [TextRequest(prompt=p, max_new_tokens=96, temperature=0) for p in prompts]
    expected = [plain.generate(r) for r in requests]
    speculative_rows: dict[str, Any] = {}
    new_tokens = sum(len(r.token_ids) for r in expected)
    for k in draft_tokens:
        speculative = SpeculativeGenerator(plain, draft, num_draft_tokens=k)
        outs = [speculative.generate_with_stats(r) for r in requests]
        identical = all(
            o.result.token_ids == e.token_ids for o, e in zip(outs, expected, strict=True)
        )
        drafted = sum(o.stats.drafted for o in outs)
        accepted = sum(o.stats.accepted for o in outs)
        passes = sum(o.stats.target_passes for o in outs)
        times = paired(
            {
                "target_alone": lambda: [plain.generate(r) for r in requests],
                "speculative": lambda s=speculative: [s.generate(r) for r in requests],  # type: ignore[misc]
            },
            repeats,
        )
        speed = {name: [new_tokens / t for t in values] for name, values in times.items()}
        ratio = [a / b for a, b in zip(speed["speculative"], speed["target_alone"], strict=True)]
        speculative_rows[f"k_{k}"] = {
            "tokens_per_s": {name: summary(values) for name, values in speed.items()},
            "speedup": summary(ratio),
            "identical_tokens": identical,
            "acceptance_rate": round(accepted / drafted, 3) if drafted else 0.0,
            "tokens_per_target_pass": round(new_tokens / passes, 2),
        }
        print(
            f"speculative, k={k}: {summary(speed['speculative'])['median']:.0f} tokens/s against "
            f"{summary(speed['target_alone'])['median']:.0f} for the target alone: "
            f"{summary(ratio)['median']:.2f}x; acceptance {accepted / max(drafted, 1):.2f}, "
            f"{new_tokens / passes:.2f} tokens per target pass; identical tokens: {identical}"
        )
    draft_alone = paired({"draft": lambda: [draft.generate(r) for r in requests]}, 1)["draft"]
    results["speculative_greedy"] = {
        "new_tokens": new_tokens,
        "draft_alone_tokens_per_s": new_tokens / min(draft_alone),
        **speculative_rows,
    }
    print(json.dumps(results))
    return results


if __name__ == "__main__":
    main()
