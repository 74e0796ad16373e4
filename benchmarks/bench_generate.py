"""Generation speed: genarch's TextGenerator against transformers' generate and a no-cache loop.

Same config, same weights, one process, alternating runs: a GPT-2-shaped model
(6 layers, 6 heads, width 384, vocabulary 8192, as in ../shared/BENCHMARKS.md)
continues 16-token prompts by 256 tokens, greedily, at batch 1 and batch 8.

* genarch: ``TextGenerator.generate`` / ``generate_batch`` (static KV cache).
* transformers: ``GPT2LMHeadModel.generate`` with its KV cache (and, in the
  full run, without it at batch 1).
* nanoGPT-style: the genarch model re-run over the whole context for every
  new token (no cache), as nanoGPT's ``generate`` does.
* the floor: only the matrix-vector products a decoding step cannot avoid
  (every weight matrix, the output layer included, applied to the batch's
  vectors), timed in the same alternation. At this size they are bound by
  reading the 56 MB of fp32 weights from cache once per step, not by
  arithmetic, so each engine's time above the floor is its per-step overhead.

Prints tokens/s (all sequences of the batch together) and time to first token
(prefill + one token), median and min-max over the repeats; the ratio of
genarch to transformers as the median over paired (adjacent) runs and as best
run against best run (load on a shared machine only adds time, so a best run
is the closest to the unloaded speed); and as its last line one JSON object
with every figure.

Run: ``python benchmarks/bench_generate.py [--quick] [--threads 2]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

import genarch
from genarch.models import GPT, GPTConfig, TextGenerator, load_hf_gpt2
from genarch.schemas import TextRequest

logger = logging.getLogger("bench_generate")

VOCAB, LAYERS, HEADS, WIDTH, CONTEXT = 8192, 6, 6, 384, 512
PROMPT, NEW = 16, 256
from _timing import summary  # noqa: E402 - benchmarks/ is the script's folder


class IdTokenizer:
    """Token ids written as text ("12 7 99"), so both engines see the same ids."""

    vocab_size = VOCAB

    def encode(self, text: str) -> list[int]:
        return [int(word) for word in text.split()]

    def decode(self, token_ids: Sequence[int]) -> str:
        return " ".join(map(str, token_ids))


def build_models() -> tuple[GPT, Any]:
    """The genarch model and, if transformers is installed, the same weights as GPT2LMHeadModel."""
    try:
        import transformers
    except ImportError:
        logger.warning("transformers is not installed: its columns are skipped")
        torch.manual_seed(0)
        config = GPTConfig(
            vocab_size=VOCAB,
            context_length=CONTEXT,
            n_layer=LAYERS,
            n_head=HEADS,
            n_embd=WIDTH,
            mlp="gelu_tanh",
        )
        return GPT(config).eval(), None
    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    hf_config = transformers.GPT2Config(
        vocab_size=VOCAB,
        n_positions=CONTEXT,
        n_embd=WIDTH,
        n_layer=LAYERS,
        n_head=HEADS,
        bos_token_id=None,  # no end-of-text token: both engines generate exactly NEW tokens
        eos_token_id=None,
        attn_implementation="sdpa",
    )
    reference = transformers.GPT2LMHeadModel(hf_config).eval()
    with tempfile.TemporaryDirectory() as directory:
        reference.save_pretrained(directory)
        model = load_hf_gpt2(directory).eval()
    return model, reference


def floor_run(model: GPT, batch: int, new: int) -> Callable[[], list[tuple[int, ...]]]:
    """Every weight matrix of ``model`` applied to ``batch`` vectors, ``new`` times."""
    layers = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    inputs = [torch.randn(batch, m.in_features) for m in layers]

    def run() -> list[tuple[int, ...]]:
        with torch.inference_mode():
            for _ in range(new):
                for layer, x in zip(layers, inputs, strict=True):
                    layer(x)
        return []

    return run


def timed(function: Callable[[], object]) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, short no-cache runs")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per measurement")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    repeats = args.repeats or (3 if args.quick else 9)
    no_cache_tokens = 32 if args.quick else NEW

    model, reference = build_models()
    generator = TextGenerator(model, IdTokenizer())
    prompts = torch.randint(0, VOCAB, (8, PROMPT), generator=torch.Generator().manual_seed(1))

    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "genarch": genarch.__version__,
    }
    if reference is not None:
        import transformers

        versions["transformers"] = transformers.__version__
    print("versions:", ", ".join(f"{k} {v}" for k, v in versions.items()))
    print(
        f"model: {model.num_parameters() / 1e6:.1f} M parameters, vocab {VOCAB}; "
        f"prompt {PROMPT} tokens, {NEW} new tokens, greedy; {args.threads} threads; "
        f"{repeats} repeats{' (quick)' if args.quick else ''}"
    )

    def genarch_run(batch: int, new: int) -> Callable[[], list[tuple[int, ...]]]:
        requests = [
            TextRequest(prompt=" ".join(map(str, p.tolist())), max_new_tokens=new, temperature=0.0)
            for p in prompts[:batch]
        ]
        if batch == 1:
            return lambda: [generator.generate(requests[0]).token_ids]
        return lambda: [r.token_ids for r in generator.generate_batch(requests)]

    def hf_run(batch: int, new: int, cache: bool = True) -> Callable[[], list[tuple[int, ...]]]:
        ids = prompts[:batch]

        def run() -> list[tuple[int, ...]]:
            with torch.inference_mode():
                out = reference.generate(
                    ids,
                    attention_mask=torch.ones_like(ids),
                    max_new_tokens=new,
                    do_sample=False,
                    use_cache=cache,
                    pad_token_id=0,
                )
            return [tuple(row) for row in out[:, PROMPT:].tolist()]

        return run

    def nanogpt_run(batch: int, new: int) -> Callable[[], list[tuple[int, ...]]]:
        def run() -> list[tuple[int, ...]]:
            idx = prompts[:batch]
            with torch.inference_mode():
                for _ in range(new):
                    logits = model(idx[:, -CONTEXT:])[:, -1]
                    idx = torch.cat([idx, logits.argmax(-1, keepdim=True)], dim=1)
            return [tuple(row) for row in idx[:, PROMPT:].tolist()]

        return run

    results: dict[str, Any] = {"versions": versions, "threads": args.threads, "quick": args.quick}
    for batch in (1, 8):
        engines: dict[str, Callable[[int, int], Callable[[], list[tuple[int, ...]]]]] = {
            "genarch": genarch_run
        }
        if reference is not None:
            engines["transformers"] = hf_run
        tokens: dict[str, list[float]] = {name: [] for name in engines}
        first: dict[str, list[float]] = {name: [] for name in engines}
        outputs = {name: make(batch, NEW)() for name, make in engines.items()}  # warm-up
        for make in engines.values():
            make(batch, 1)()
        runs = {name: make(batch, NEW) for name, make in engines.items()}
        starts = {name: make(batch, 1) for name, make in engines.items()}
        floor, floor_ms = floor_run(model, batch, NEW), []
        floor()
        for _ in range(repeats):  # alternate, so drifting load hits all alike
            for name in engines:
                tokens[name].append(batch * NEW / timed(runs[name]))
                first[name].append(timed(starts[name]) * 1e3)
            floor_ms.append(timed(floor) / NEW * 1e3)
        row: dict[str, Any] = {"floor_ms_per_step": summary(floor_ms)}
        for name in engines:
            step_ms = [batch / t * 1e3 for t in tokens[name]]
            row[name] = {
                "tokens_per_s": summary(tokens[name]),
                "ttft_ms": summary(first[name]),
                "overhead_ms_per_step": summary(
                    [s - f for s, f in zip(step_ms, floor_ms, strict=True)]
                ),
            }
        no_cache = {"nanogpt_no_cache": nanogpt_run}
        if reference is not None and batch == 1 and not args.quick:
            no_cache["transformers_no_cache"] = lambda b, n: hf_run(b, n, cache=False)
        if batch == 1 or not args.quick:
            for name, make in no_cache.items():
                make(batch, 2)()  # warm-up
                speed = batch * no_cache_tokens / timed(make(batch, no_cache_tokens))
                ttft = timed(make(batch, 1)) * 1e3
                row[name] = {
                    "tokens_per_s": summary([speed]),
                    "ttft_ms": summary([ttft]),
                    "new_tokens": no_cache_tokens,
                }
        if reference is not None:
            ratio = [g / t for g, t in zip(tokens["genarch"], tokens["transformers"], strict=True)]
            row["speedup_vs_transformers"] = summary(ratio)
            # Load only ever adds time, so each engine's best run estimates its unloaded speed.
            row["speedup_best_runs"] = max(tokens["genarch"]) / max(tokens["transformers"])
            row["same_tokens_as_transformers"] = outputs["genarch"] == outputs["transformers"]
        nano = row.get("nanogpt_no_cache")
        if nano is not None:
            row["speedup_vs_nanogpt"] = (
                row["genarch"]["tokens_per_s"]["median"] / nano["tokens_per_s"]["median"]
            )
        results[f"batch_{batch}"] = row

        print(f"\nbatch {batch}")
        print(f"  {'engine':24s} {'tokens/s (median, min-max)':>30s} {'first token ms':>16s}")
        for name, figures in row.items():
            if not isinstance(figures, dict) or "tokens_per_s" not in figures:
                continue
            speed, ttft = figures["tokens_per_s"], figures["ttft_ms"]
            print(
                f"  {name:24s} {speed['median']:10.0f} ({speed['min']:.0f}-{speed['max']:.0f})"
                f"{'':>8s} {ttft['median']:10.1f}"
            )
        print(
            f"  matrix products alone (the floor): {row['floor_ms_per_step']['median']:.2f} ms "
            "per step; above it: "
            + ", ".join(
                f"{name} {row[name]['overhead_ms_per_step']['median']:.2f} ms" for name in engines
            )
        )
        if "speedup_vs_transformers" in row:
            s = row["speedup_vs_transformers"]
            print(
                f"  genarch / transformers: {s['median']:.2f}x ({s['min']:.2f}-{s['max']:.2f}) "
                f"over paired runs, {row['speedup_best_runs']:.2f}x best run against best run; "
                f"identical tokens: {row['same_tokens_as_transformers']}"
            )
        if "speedup_vs_nanogpt" in row:
            print(f"  genarch / nanoGPT no-cache loop: {row['speedup_vs_nanogpt']:.1f}x")
    print(json.dumps(results))
    return results


if __name__ == "__main__":
    main()
