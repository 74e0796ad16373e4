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

Compression rows (``--compression``, or ``--only-compression``): a copy of the
model is first trained on Python-docs text (``pydoc_data.topics``, bytes as
token ids; the last fifth of the topics held out) for ``--train-steps`` steps
(200; 20 with ``--quick``), then quantised to int8 and int4 (group 64), each
weight-only and with dynamic int8 activations (FBGEMM), and pruned (30 % of
MLP channels and 1 of 6 heads per block, :func:`recover` fine-tuning 100 steps,
10 with ``--quick``) alone and then int8-dynamic. Each row gives the held-out
perplexity and its ratio to fp32, the size saved and held while decoding, and
tokens/s at batch 1 and 8 against transformers fp32 ``generate`` (same shapes,
random weights: the speed does not depend on the values). The weight-only
kernels are slow on x86 and timed at batch 1 only.

Quality table (with the compression rows, unless ``--no-quality``): the same
variants of a quickstart-sized GPT (3 layers, width 192, context 64, bytes)
trained 1000 steps (300 with ``--quick``) on the same text, perplexity only.

Run: ``python benchmarks/bench_generate.py [--quick] [--threads 2] [--compression]
[--only-compression] [--train-steps N] [--no-quality] [--kernels] [--only-kernels]``.
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
    parser.add_argument(
        "--train-steps",
        type=int,
        default=None,
        help="steps training the model on the docs before compressing (default 200, quick 20)",
    )
    parser.add_argument(
        "--no-quality", action="store_true", help="skip the quickstart-sized perplexity table"
    )
    parser.add_argument(
        "--kernels", action="store_true", help="also time each quantised kernel per step"
    )
    parser.add_argument("--only-kernels", action="store_true", help="only the kernel timings")
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
    for batch in () if args.only_compression or args.only_kernels else (1, 8):
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
    if (args.compression or args.only_compression) and not args.only_kernels:
        steps = args.train_steps or (20 if args.quick else 200)
        results["compression"] = compression_rows(
            model, reference, prompts, repeats, args.quick, steps
        )
        if not args.no_quality:
            results["quality"] = quality_rows(args.quick)
    if args.kernels or args.only_kernels:
        results["kernels"] = kernel_rows(model, args.quick)
    print(json.dumps(results))
    return results


def docs_tokens(part: str) -> torch.Tensor:
    """Python-docs text (``pydoc_data.topics``) as byte ids: the first four fifths of the
    topics (sorted by name) to train on, the last fifth held out."""
    from pydoc_data.topics import topics

    names = sorted(topics)
    cut = len(names) * 4 // 5
    chosen = names[:cut] if part == "train" else names[cut:]
    return torch.tensor(list(" ".join(topics[n] for n in chosen).encode()))


def held_out_tokens() -> torch.Tensor:
    return docs_tokens("held_out")


def training_tokens() -> torch.Tensor:
    return docs_tokens("train")


def train_on_docs(model: GPT, steps: int, *, block_size: int, batch_size: int, lr: float) -> GPT:
    """Train ``model`` in place on the Python-docs bytes (AdamW, warm-up then cosine; seed 0)."""
    from genarch.training import LanguageModeling, Trainer, token_blocks

    trainer = Trainer(
        LanguageModeling(model.train()),
        max_steps=steps,
        batch_size=batch_size,
        optimizer={"learning_rate": lr, "weight_decay": 0.1},
        schedule={"warmup_steps": max(1, steps // 10)},
        seed=0,
        progress=False,
    )
    trainer.fit(token_blocks(training_tokens(), block_size))
    return model.eval()


def weight_bytes(model: torch.nn.Module) -> int:
    """Bytes of the weights as saved (a tied output layer counted once)."""
    seen, total = set(), 0
    for tensor in list(model.parameters()) + list(model.buffers()):
        if tensor.data_ptr() not in seen and tensor.dtype != torch.bool:
            seen.add(tensor.data_ptr())
            total += tensor.numel() * tensor.element_size()
    return total


def runtime_bytes(model: torch.nn.Module) -> int:
    """:func:`weight_bytes` plus the packed copies the quantised kernels hold while decoding."""
    from genarch.models.compression import QuantizedLinear

    extra = 0
    for layer in model.modules():
        if isinstance(layer, QuantizedLinear):
            saved = sum(b.numel() * b.element_size() for b in layer.buffers())
            extra += layer.runtime_bytes() - saved
    return weight_bytes(model) + extra


#: (name, scheme, activations) of the quantised variants; "pruned30" rows are added to them
QUANTISED = (
    ("int8", "int8", "none"),
    ("int8_dynamic", "int8", "dynamic"),
    ("int4", "int4", "none"),
    ("int4_dynamic", "int4", "dynamic"),
)


def quantised_copies(model: GPT) -> dict[str, GPT]:
    """A quantised copy of ``model`` for every row of ``QUANTISED`` (int4 in groups of 64)."""
    import copy

    from genarch.models.compression import quantize

    return {
        name: quantize(
            copy.deepcopy(model),
            scheme,
            group_size=64 if scheme == "int4" else None,
            activations=activations,
        )
        for name, scheme, activations in QUANTISED
    }


def compressed_variants(
    model: GPT, *, recovery_steps: int, block_size: int, lr: float
) -> tuple[dict[str, GPT], float]:
    """fp32, each of :data:`QUANTISED`, pruned 30 % (recovered) and pruned then int8 dynamic.

    Pruned 30 %: 30 % of each block's attention heads (1 of 6) and MLP channels
    removed by :func:`prune_structured`, then :func:`recover` (a short fine-tune
    on the training bytes). ``fp32_same_steps`` is the unpruned model given the
    same fine-tune: an under-trained model improves from the steps alone, so the
    pruned rows are also compared with it. Returns the models and the seconds
    of one recovery.
    """
    import copy

    from genarch.models.compression import prune_structured, quantize, recover

    variants: dict[str, GPT] = {"fp32": model}
    variants.update(quantised_copies(model))
    pruned = prune_structured(copy.deepcopy(model).train(), heads=0.3, mlp=0.3)
    # The same fine-tune on the unpruned model: what the recovery steps alone are worth.
    continued = copy.deepcopy(model).train()
    started = time.perf_counter()
    for student in (pruned, continued):
        recover(
            student,
            training_tokens(),
            steps=recovery_steps,
            batch_size=8,
            block_size=block_size,
            learning_rate=lr,
        )
    seconds = (time.perf_counter() - started) / 2
    variants["fp32_same_steps"] = continued.eval()
    variants["pruned30"] = pruned.eval()
    variants["pruned30_int8_dynamic"] = quantize(
        copy.deepcopy(pruned), "int8", activations="dynamic"
    )
    return variants, seconds


def perplexities(variants: dict[str, GPT], held_out: torch.Tensor, block: int) -> dict[str, Any]:
    from genarch.models import evaluate_loss

    ppl = {
        name: evaluate_loss(v, held_out, block_size=block, batch_size=8).perplexity
        for name, v in variants.items()
    }
    rows: dict[str, Any] = {
        name: {"perplexity": p, "vs_fp32": p / ppl["fp32"]} for name, p in ppl.items()
    }
    for name in ("pruned30", "pruned30_int8_dynamic"):  # against fp32 fine-tuned as long
        rows[name]["vs_fp32_same_steps"] = ppl[name] / ppl["fp32_same_steps"]
    return rows


def quality_rows(quick: bool) -> dict[str, Any]:
    """Held-out perplexity of every variant of a quickstart-sized GPT trained on the docs.

    The quickstart's model (3 layers, 6 heads, width 192, context 64, batch 16,
    learning rate 5e-3) on bytes (vocabulary 256) instead of its BPE tokens, so
    the run needs no tokenizer training: 1000 steps as the quickstart's default
    (300 with ``--quick``).
    """
    steps = 300 if quick else 1000
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=256, context_length=64, n_layer=3, n_head=6, n_embd=192))
    started = time.perf_counter()
    train_on_docs(model, steps, block_size=64, batch_size=16, lr=5e-3)
    trained_s = time.perf_counter() - started
    variants, recovery_s = compressed_variants(
        model, recovery_steps=30 if quick else 100, block_size=64, lr=1e-3
    )
    held_out = held_out_tokens()[: 64 * 65 if quick else 256 * 65]
    rows = perplexities(variants, held_out, 64)
    for name, variant in variants.items():
        rows[name]["weight_mb"] = weight_bytes(variant) / 1e6
    print(
        f"\nquality: quickstart-sized byte GPT ({model.num_parameters() / 1e6:.2f} M parameters), "
        f"trained {steps} steps in {trained_s:.0f} s; held-out perplexity on "
        f"{len(held_out)} Python-docs bytes (pruned: {recovery_s:.0f} s recovery)"
    )
    for name, r in rows.items():
        print(
            f"  {name:22s} {r['weight_mb']:7.2f} MB  perplexity {r['perplexity']:7.3f}"
            f"  x{r['vs_fp32']:.4f} of fp32"
            + (
                f", x{r['vs_fp32_same_steps']:.4f} of fp32 fine-tuned as long"
                if "vs_fp32_same_steps" in r
                else ""
            )
        )
    return {"train_steps": steps, "train_s": trained_s, "rows": rows}


def kernel_rows(model: GPT, quick: bool) -> dict[str, Any]:
    """Microseconds per decoding step for all of ``model``'s matrix products, per kernel.

    Every linear layer (and the output layer) applied to one row (batch 1) and
    to eight, through each CPU kernel PyTorch has for quantised weights: the
    figures behind the kernel choice in ``genarch.models.compression.quantize``.
    Best of 5 rounds of 100 (30 with ``--quick``) calls per layer.
    """
    from genarch.models.compression import QuantizedLinear

    kernels: dict[str, GPT] = {"fp32": model}
    kernels.update(quantised_copies(model))
    calls = 30 if quick else 100
    rows: dict[str, Any] = {}
    for batch in (1, 8):
        for name, variant in kernels.items():
            total = 0.0
            for layer in variant.modules():
                if not isinstance(layer, torch.nn.Linear | QuantizedLinear):
                    continue
                x = torch.randn(batch, layer.in_features)
                with torch.inference_mode():
                    layer(x)
                    rounds = [
                        timed(lambda f=layer, x=x: [f(x) for _ in range(calls)]) for _ in range(5)
                    ]
                total += min(rounds) / calls
            rows.setdefault(name, {})[f"batch_{batch}_us_per_step"] = total * 1e6
    print("\nkernels: all matrix products of one decoding step, microseconds (best of 5)")
    for name, r in rows.items():
        print(
            f"  {name:14s} batch 1 {r['batch_1_us_per_step']:9.0f}   batch 8 {r['batch_8_us_per_step']:9.0f}"
        )
    return rows


def compression_rows(
    model: GPT, reference: Any, prompts: torch.Tensor, repeats: int, quick: bool, train_steps: int
) -> dict[str, Any]:
    """tokens/s, perplexity and size of the compressed models against transformers fp32.

    The benchmark model's weights (a copy) are first trained ``train_steps`` on
    the Python-docs bytes, so perplexity means something; transformers keeps its
    random weights (the same shapes: speed does not depend on the values).
    Weight-only variants run PyTorch's packed kernels, far slower than FBGEMM on
    CPUs like ours: they are timed at batch 1 only, with at most 2 repeats.
    """
    import copy

    started = time.perf_counter()
    trained = train_on_docs(
        copy.deepcopy(model), train_steps, block_size=128, batch_size=8, lr=2e-3
    )
    trained_s = time.perf_counter() - started
    variants, recovery_s = compressed_variants(
        trained, recovery_steps=10 if quick else 100, block_size=128, lr=5e-4
    )
    held_out = held_out_tokens()[: 16 * 129 if quick else 64 * 129]
    quality = perplexities(variants, held_out, 128)
    rows: dict[str, Any] = {
        "train_steps": train_steps,
        "train_s": trained_s,
        "recovery_s": recovery_s,
        "held_out_tokens": len(held_out),
    }
    new = 64 if quick else NEW
    for name, variant in variants.items():
        slow = name in ("int8", "int4")
        generator = TextGenerator(variant, IdTokenizer())
        row: dict[str, Any] = {
            **quality[name],
            "weight_mb": weight_bytes(variant) / 1e6,
            "runtime_mb": runtime_bytes(variant) / 1e6,
        }
        # fp32_same_steps is only a perplexity reference for the pruned rows: not timed
        for batch in () if name == "fp32_same_steps" else (1,) if slow else (1, 8):
            requests = [
                TextRequest(
                    prompt=" ".join(map(str, p.tolist())), max_new_tokens=new, temperature=0.0
                )
                for p in prompts[:batch]
            ]
            generator.generate_batch(requests[:1])  # warm-up (packs the kernels)
            mine, theirs = [], []
            for _ in range(min(repeats, 2) if slow else repeats):
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
                row[f"batch_{batch}_best_vs_best"] = max(mine) / max(theirs)
        rows[name] = row
        print(f"  measured {name}: {json.dumps(row)}", flush=True)
    print(
        f"\ncompression ({new} new tokens; the benchmark model trained {train_steps} steps on "
        f"Python-docs bytes in {trained_s:.0f} s, pruned rows recovered in {recovery_s:.0f} s; "
        f"perplexity on {len(held_out)} held-out bytes; /same: against fp32 fine-tuned as "
        "long as the pruned rows; ratios: median over paired runs / best run against best run)"
    )
    print(
        f"  {'model':22s} {'MB':>6s} {'run MB':>6s} {'ppl':>8s} {'ppl/fp32':>8s} {'/same':>6s} "
        f"{'b1 tok/s':>8s} {'b1 vs HF':>11s} {'b8 tok/s':>8s} {'b8 vs HF':>11s}"
    )
    for name in variants:
        r = rows[name]
        cells = []
        for batch in (1, 8):
            speed = r.get(f"batch_{batch}_tokens_per_s")
            vs = r.get(f"batch_{batch}_vs_transformers_fp32")
            cells.append(f"{speed['median']:8.0f}" if speed else f"{'-':>8s}")
            cells.append(
                f"{vs['median']:5.2f}/{r[f'batch_{batch}_best_vs_best']:5.2f}"
                if vs
                else f"{'-':>11s}"
            )
        print(
            f"  {name:22s} {r['weight_mb']:6.1f} {r['runtime_mb']:6.1f} {r['perplexity']:8.3f} "
            f"{r['vs_fp32']:8.4f} "
            + (f"{r['vs_fp32_same_steps']:6.3f} " if "vs_fp32_same_steps" in r else f"{'-':>6s} ")
            + " ".join(cells)
        )
    return rows


if __name__ == "__main__":
    main()
