"""Near-duplicate detection: genarch's NearDeduplicator against datasketch MinHash + MinHashLSH.

Corpus: the paragraphs of Python's documentation (``pydoc_data.topics``) plus
edited copies of some of them (word deletions, substitutions and insertions at
rates from 0 to 30 %), in a seeded order. Both methods see the same documents,
the same normalised text, the same shingles (character 5-grams, or word
3-grams), 128 permutations and the same Jaccard threshold, and keep the first
occurrence of each near-duplicate group.

Quality is judged against exact Jaccard similarity of the shingle sets:

* precision: of the documents a method dropped, the share whose matched kept
  document really has Jaccard >= threshold (for datasketch, any of the returned
  candidates — the generous reading);
* recall: of the true duplicates (planted copies at Jaccard >= threshold with
  their source, plus any pair either method found that is truly above the
  threshold), the share the method dropped.

Throughput: whole pipeline per document (normalise, shingle, MinHash, LSH query
and insert), both peers in the same process, alternating, median of repeats.

Run: ``python benchmarks/bench_dedup.py [--quick]``. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import random
import re
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable

import numpy as np
import torch

import genarch
from genarch import Document
from genarch.data.dedup import NearDeduplicator, normalize_for_matching
from genarch.testing import edit_words

logger = logging.getLogger("bench_dedup")
NUM_PERM = 128
SEED = 0


def corpus(fraction: float) -> tuple[list[Document], dict[str, str]]:
    """Paragraphs of the Python docs plus edited copies (copy id -> source id)."""
    from pydoc_data.topics import topics

    base = []
    for name, text in sorted(topics.items()):
        for index, paragraph in enumerate(re.split(r"\n\s*\n", text)):
            flat = " ".join(paragraph.split())
            if len(flat) >= 150:
                base.append(Document(id=f"{name}/{index}", text=flat))
    rng = random.Random(SEED)
    base = base[: int(len(base) * fraction)]
    words = [w for d in base for w in d.text.split(" ")]
    rates = [0.0, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.3]
    copies, source = [], {}
    for j, original in enumerate(rng.sample(base, len(base) // 2)):
        copy = Document(
            id=f"copy{j}", text=edit_words(original.text, rng.choice(rates), rng, words)
        )
        copies.append(copy)
        source[copy.id] = original.id
    documents = base + copies
    rng.shuffle(documents)  # copies may come before their source: then the source is dropped
    return documents, source


def shingles(text: str, unit: str, n: int) -> list[str]:
    normal = normalize_for_matching(text, ignore_punctuation=True)
    if unit == "word":
        tokens = normal.split(" ") if normal else []
        return [" ".join(tokens[i : i + n]) for i in range(max(1, len(tokens) - n + 1))]
    return [normal[i : i + n] for i in range(max(1, len(normal) - n + 1))]


def run_genarch(documents: list[Document], threshold: float, unit: str, n: int) -> dict[str, str]:
    dedup = NearDeduplicator(
        threshold=threshold, num_perm=NUM_PERM, shingle=unit, shingle_size=n, seed=SEED
    )
    return {m.duplicate_id: m.kept_id for m in dedup.find_duplicates(documents).matches}


def run_datasketch(
    documents: list[Document], threshold: float, unit: str, n: int
) -> dict[str, list[str]]:
    from datasketch import (  # type: ignore[import-untyped, import-not-found, unused-ignore]
        MinHash,
        MinHashLSH,
    )

    lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
    found: dict[str, list[str]] = {}
    sets = ([s.encode("utf-8") for s in shingles(d.text, unit, n)] for d in documents)
    for document, minhash in zip(
        documents, MinHash.generator(sets, num_perm=NUM_PERM, seed=SEED), strict=True
    ):
        candidates = lsh.query(minhash)
        if candidates:
            found[document.id] = candidates
        else:
            lsh.insert(document.id, minhash)
    return found


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def quality(
    documents: list[Document],
    source: dict[str, str],
    predictions: dict[str, dict[str, list[str]]],
    threshold: float,
    unit: str,
    n: int,
) -> dict[str, dict[str, float]]:
    sets = {d.id: set(shingles(d.text, unit, n)) for d in documents}
    order = {d.id: i for i, d in enumerate(documents)}
    truth = set()
    for copy, original in source.items():  # the later of the two is the duplicate
        if jaccard(sets[copy], sets[original]) >= threshold:
            truth.add(copy if order[copy] > order[original] else original)
    correct: dict[str, set[str]] = {}
    for name, found in predictions.items():
        correct[name] = {
            d
            for d, kept in found.items()
            if max(jaccard(sets[d], sets[k]) for k in kept) >= threshold
        }
        truth |= correct[name]  # pooled: a true pair found by either counts for both
    return {
        name: {
            "precision": len(correct[name]) / max(1, len(found)),
            "recall": len(set(found) & truth) / max(1, len(truth)),
            "dropped": len(found),
            "true_duplicates": len(truth),
        }
        for name, found in predictions.items()
    }


def timed(function: Callable[[], object]) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def bytes_per_kept_document(
    documents: list[Document], threshold: float, unit: str, n: int
) -> float:
    """Memory held by one genarch run's state at the end of the stream, per kept document."""
    dedup = NearDeduplicator(threshold=threshold, shingle=unit, shingle_size=n, batch_size=1)
    tracemalloc.start()
    baseline, kept, held = tracemalloc.get_traced_memory()[0], 0, 0
    for _ in dedup.process(documents):  # the state is alive while the stream is
        kept += 1
        held = tracemalloc.get_traced_memory()[0] - baseline
    tracemalloc.stop()
    return held / kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller corpus, fewer repeats")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    torch.set_num_threads(2)
    try:
        import datasketch

        peer_version: str | None = datasketch.__version__
    except ImportError:
        peer_version = None

    fraction, repeats = (0.5, 3) if args.quick else (1.0, 7)
    settings = [("char", 5, 0.8)] if args.quick else [("char", 5, 0.8), ("word", 3, 0.7)]
    documents, source = corpus(fraction)
    megabytes = sum(len(d.text.encode("utf-8")) for d in documents) / 1e6
    logger.info(
        "python %s | numpy %s | torch %s (threads %d) | genarch %s | datasketch %s | %s",
        platform.python_version(),
        np.__version__,
        torch.__version__,
        torch.get_num_threads(),
        genarch.__version__,
        peer_version or "not installed (column skipped; pip install datasketch)",
        platform.processor() or platform.machine(),
    )
    logger.info(
        "corpus: %d documents, %.2f MB, %d planted copies", len(documents), megabytes, len(source)
    )

    results: dict[str, object] = {
        "documents": len(documents),
        "megabytes": round(megabytes, 3),
        "num_perm": NUM_PERM,
        "repeats": repeats,
        "datasketch": peer_version,
    }
    for unit, n, threshold in settings:
        key = f"{unit}{n}@{threshold}"

        def ours(
            unit: str = unit, n: int = n, threshold: float = threshold
        ) -> dict[str, list[str]]:
            return {d: [k] for d, k in run_genarch(documents, threshold, unit, n).items()}

        def theirs(
            unit: str = unit, n: int = n, threshold: float = threshold
        ) -> dict[str, list[str]]:
            return run_datasketch(documents, threshold, unit, n)

        peers: dict[str, Callable[[], dict[str, list[str]]]] = {"genarch": ours}
        if peer_version is not None:
            peers["datasketch"] = theirs
        predictions = {name: run() for name, run in peers.items()}  # also the warm-up
        times: dict[str, list[float]] = {name: [] for name in peers}
        for _ in range(repeats):
            for name, run in peers.items():  # alternate, so drift hits both
                times[name].append(timed(run))
        scores = quality(documents, source, predictions, threshold, unit, n)
        entry: dict[str, object] = {}
        for name in peers:
            median = statistics.median(times[name])
            entry[name] = {
                **{k: round(v, 4) for k, v in scores[name].items()},
                "seconds_median": round(median, 4),
                "seconds_min": round(min(times[name]), 4),
                "seconds_max": round(max(times[name]), 4),
                "docs_per_s": round(len(documents) / median, 1),
                "mb_per_s": round(megabytes / median, 3),
            }
            logger.info(
                "%-8s %-10s precision %.3f recall %.3f | %.3f s median (%.3f-%.3f) | "
                "%.0f docs/s | %.2f MB/s",
                key,
                name,
                scores[name]["precision"],
                scores[name]["recall"],
                median,
                min(times[name]),
                max(times[name]),
                len(documents) / median,
                megabytes / median,
            )
        if "datasketch" in peers:
            ratio = statistics.median(times["datasketch"]) / statistics.median(times["genarch"])
            entry["throughput_ratio_vs_datasketch"] = round(ratio, 2)
            logger.info("%-8s genarch throughput = %.2f x datasketch", key, ratio)
        entry["genarch_bytes_per_kept_document"] = round(
            bytes_per_kept_document(documents, threshold, unit, n)
        )
        logger.info(
            "%-8s genarch state at the end of the stream: %d bytes per kept document",
            key,
            entry["genarch_bytes_per_kept_document"],
        )
        results[key] = entry
    print(json.dumps(results))


if __name__ == "__main__":
    main()
