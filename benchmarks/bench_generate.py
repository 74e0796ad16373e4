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

Compression rows (``--compression``): the same model quantised to int8
(weight-only, and with dynamic int8 activations) and int4 (group 64), and
pruned (30 % of MLP channels, 1 of 6 heads per block, a short recovery
fine-tune) then int8: tokens/s at batch 1 and 8 against transformers fp32
``generate``, each next to the held-out perplexity on Python-docs text
(``pydoc_data.topics``, bytes as token ids) and the weights' size. The
benchmark model is not trained on that text (its perplexity is about the
vocabulary size): the perplexity ratio to fp32 measures what compression
changes, not how good the model is.

Run: ``python benchmarks/bench_generate.py [--quick] [--threads 2] [--compression]``.
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
    parser.add_argument("--compression", action="store_true", help="also the compressed rows")
    parser.add_argument("--only-compression", action="store_true", help="only the compressed rows")
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
    for batch in () if args.only_compression else (1, 8):
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
    if args.compression or args.only_compression:
        results["compression"] = compression_rows(model, reference, prompts, repeats, args.quick)
    print(json.dumps(results))
    return results


def held_out_tokens() -> torch.Tensor:
    """Python-docs text as byte ids (they fit the 8192-id vocabulary), the last fifth of the topics."""
    from pydoc_data.topics import topics

    names = sorted(topics)
    return torch.tensor(list(" ".join(topics[n] for n in names[len(names) * 4 // 5 :]).encode()))


def training_tokens() -> torch.Tensor:
    from pydoc_data.topics import topics

    names = sorted(topics)
    return torch.tensor(list(" ".join(topics[n] for n in names[: len(names) * 4 // 5]).encode()))


def weight_bytes(model: torch.nn.Module) -> int:
    """Bytes of the weights as saved (a tied output layer counted once)."""
    seen, total = set(), 0
    for tensor in list(model.parameters()) + list(model.buffers()):
        if tensor.data_ptr() not in seen and tensor.dtype != torch.bool:
            seen.add(tensor.data_ptr())
            total += tensor.numel() * tensor.element_size()
    return total


def compression_rows(
    model: GPT, reference: Any, prompts: torch.Tensor, repeats: int, quick: bool
) -> dict[str, Any]:
    """tokens/s, perplexity and size of the quantised and pruned models against transformers fp32."""
    import copy

    from genarch.models import evaluate_loss
    from genarch.models.compression import prune_structured, quantize, recover

    held_out = held_out_tokens()[: 16 * 129 if quick else 64 * 129]
    variants: dict[str, GPT] = {
        "fp32": model,
        "int8": quantize(copy.deepcopy(model), "int8"),
        "int8_dynamic": quantize(copy.deepcopy(model), "int8", activations="dynamic"),
        "int4": quantize(copy.deepcopy(model), "int4", group_size=64),
    }
    pruned = prune_structured(copy.deepcopy(model).train(), heads=0.3, mlp=0.3)
    recovery = recover(pruned, training_tokens(), steps=10 if quick else 100, batch_size=8)
    variants["pruned30"] = pruned.eval()
    variants["pruned30_int8"] = quantize(copy.deepcopy(pruned), "int8")
    rows: dict[str, Any] = {"recovery_steps": len(recovery.train_loss)}
    new = 64 if quick else NEW
    for name, variant in variants.items():
        ppl = evaluate_loss(variant, held_out, block_size=128, batch_size=8).perplexity
        generator = TextGenerator(variant, IdTokenizer())
        row: dict[str, Any] = {"perplexity": ppl, "weight_mb": weight_bytes(variant) / 1e6}
        for batch in (1, 8):
            requests = [
                TextRequest(
                    prompt=" ".join(map(str, p.tolist())), max_new_tokens=new, temperature=0.0
                )
                for p in prompts[:batch]
            ]
            generator.generate_batch(requests[:1])  # warm-up (packs the kernels)
            mine, theirs = [], []
            for _ in range(repeats):
                mine.append(
                    batch * new / timed(lambda r=requests, g=generator: g.generate_batch(r))
                )
                if reference is not None:
                    ids = prompts[:batch]

                    def hf(ids: torch.Tensor = ids) -> None:
                        with torch.inference_mode():
                            reference.generate(
                                ids,
                                attention_mask=torch.ones_like(ids),
                                max_new_tokens=new,
                                do_sample=False,
                                pad_token_id=0,
                            )

                    theirs.append(batch * new / timed(hf))
            row[f"batch_{batch}_tokens_per_s"] = summary(mine)
            if theirs:
                row[f"batch_{batch}_vs_transformers_fp32"] = summary(
                    [m / t for m, t in zip(mine, theirs, strict=True)]
                )
        rows[name] = row
        print(f"  measured {name}: {json.dumps(row)}", flush=True)
    base = rows["fp32"]["perplexity"]
    print(f"\ncompression ({new} new tokens; perplexity on held-out Python-docs bytes)")
    print(
        f"  {'model':14s} {'MB':>7s} {'ppl':>9s} {'ppl/fp32':>9s} {'b1 tok/s':>9s} "
        f"{'b1 vs HF':>9s} {'b8 tok/s':>9s} {'b8 vs HF':>9s}"
    )
    for name in variants:
        r = rows[name]
        r["perplexity_vs_fp32"] = r["perplexity"] / base
        vs1 = r.get("batch_1_vs_transformers_fp32", {}).get("median", float("nan"))
        vs8 = r.get("batch_8_vs_transformers_fp32", {}).get("median", float("nan"))
        print(
            f"  {name:14s} {r['weight_mb']:7.1f} {r['perplexity']:9.1f} "
            f"{r['perplexity_vs_fp32']:9.4f} {r['batch_1_tokens_per_s']['median']:9.0f} "
            f"{vs1:9.2f} {r['batch_8_tokens_per_s']['median']:9.0f} {vs8:9.2f}"
        )
    return rows


if __name__ == "__main__":
    main()
