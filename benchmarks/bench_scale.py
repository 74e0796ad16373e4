"""Local vs Ray on this machine: near-duplicate detection and embedding of the same corpus.

Corpus: ``benchmarks/bench_dedup.py``'s — paragraphs of Python's documentation
plus edited copies, in a seeded order. Ray runs locally (``ray.init(num_cpus=2)``,
no dashboard), in this process's driver.

Dedup: ``NearDeduplicator.find_duplicates`` (one process) against
``distributed_near_dedup`` (Ray Data), with the correctness check (the two
reports must be equal), plus the figures the cost model in
``docs/concepts/scaling-out.md`` uses:

* signatures/s per core — normalise + MinHash in one process (numpy is single-threaded here);
* band-shuffle bytes per document — Ray's in-memory size of the band rows;
* signature bytes per document — what the two verification joins read per document;
* candidate pairs and verified edges per document, large-star rounds;
* Ray Data overhead: a trivial ``map_batches`` stage and a trivial ``groupby``
  shuffle on a handful of rows, and how many such steps one dedup run executes.

Embedding: ``DenseRetriever(extractor, ExactVectorStore).add(chunks)`` against
``RayIndexBuilder(workers=2).build(...)`` on the same documents as chunks, with a
check that both stores give the same top-5 hits for 20 queries. The extractor is
genarch's ``HashingVectorizer`` (cheap, no model files: this measures the
distribution overhead, not a neural encoder's cost); ``--minilm`` uses the
MiniLM encoder when its files are installed.

Run: ``python benchmarks/bench_scale.py [--quick] [--minilm]``. The last line is JSON.
On a 2-core machine Ray cannot be faster than one process; see the docs page.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from _timing import version
from bench_dedup import corpus

from genarch import Document
from genarch.data.dedup import NearDeduplicator, normalize_for_matching
from genarch.distributed import _dedup_stages as stages
from genarch.distributed.dedup import distributed_near_dedup

logger = logging.getLogger("bench_scale")
THRESHOLD = 0.8


def seconds(function: Callable[[], object]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def median_seconds(function: Callable[[], object], repeats: int) -> float:
    return statistics.median(seconds(function)[0] for _ in range(repeats))


def ray_overheads(ray: Any, repeats: int) -> dict[str, float]:
    """Seconds of a trivial Ray Data stage and a trivial shuffle (a few rows)."""
    tiny = ray.data.from_items([{"k": i % 4, "v": i} for i in range(16)]).materialize()

    def stage() -> object:
        return tiny.map_batches(lambda b: b, batch_format="numpy").materialize()

    def shuffle() -> object:
        return (
            tiny.groupby("k", num_partitions=2)
            .map_groups(lambda g: {"n": np.array([len(g["v"])])}, batch_format="numpy")
            .materialize()
        )

    stage()
    shuffle()  # warm-up: worker processes started
    return {
        "map_stage_s": median_seconds(stage, repeats),
        "shuffle_stage_s": median_seconds(shuffle, repeats),
    }


def shuffle_sizes(ray: Any, documents: list[Document], dedup: NearDeduplicator) -> dict[str, float]:
    """Bytes per document of the band rows and of the signature rows the joins read."""
    rows = [{"position": i, "id": d.id, "text": d.text} for i, d in enumerate(documents)]
    signatures = (
        ray.data.from_items(rows)
        .map_batches(lambda b: stages.signature_batch(b, dedup), batch_format="numpy")
        .materialize()
    )
    bands = signatures.map_batches(
        lambda b: stages.band_rows(b, dedup), batch_format="numpy"
    ).materialize()
    slim = signatures.select_columns(["position", "signature", "id", "empty"]).materialize()
    return {
        "band_rows_per_document": bands.count() / len(documents),
        "band_shuffle_bytes_per_document": bands.size_bytes() / len(documents),
        "signature_bytes_per_document": slim.size_bytes() / len(documents),
    }


def dedup_section(ray: Any, documents: list[Document], repeats: int) -> dict[str, Any]:
    dedup = NearDeduplicator(threshold=THRESHOLD, seed=0)
    texts = [normalize_for_matching(d.text, ignore_punctuation=True) for d in documents]
    signature_s = median_seconds(lambda: dedup.hasher.signatures(texts), repeats)
    normalise_s = median_seconds(
        lambda: [normalize_for_matching(d.text, ignore_punctuation=True) for d in documents],
        repeats,
    )
    local_s = median_seconds(lambda: dedup.find_duplicates(documents), repeats)
    local = dedup.find_duplicates(documents)
    logger.info("local NearDeduplicator: %.2f s median of %d", local_s, repeats)
    ray_times, result = [], None
    for _ in range(max(1, repeats // 2)):
        elapsed, result = seconds(lambda: distributed_near_dedup(documents, dedup))
        ray_times.append(elapsed)
        logger.info("distributed_near_dedup: %.2f s", elapsed)
    assert result is not None
    equal = result.report() == local
    stats = result.stats
    n = len(documents)
    ray_s = statistics.median(ray_times)
    # Ray Data executions of one run: signatures, band shuffle, two joins + verify,
    # per round a large-star shuffle and a count, per extra round a small-star shuffle,
    # labels, the replay join + shuffle.
    steps = 1 + 1 + 1 + 2 * stats.rounds + (stats.rounds - 1) + 1 + 1
    return {
        "documents": n,
        "lsh": dedup.lsh.model_dump(),
        "num_perm": dedup.config.num_perm,
        "local_s": round(local_s, 3),
        "local_docs_per_s": round(n / local_s, 1),
        "ray_s": round(ray_s, 3),
        "ray_docs_per_s": round(n / ray_s, 1),
        "ray_over_local_time": round(ray_s / local_s, 1),
        "ray_steps_per_run": steps,
        "reports_equal": equal,
        "duplicates": stats.duplicates,
        "signatures_per_s_per_core": round(n / signature_s, 1),
        "normalise_docs_per_s_per_core": round(n / normalise_s, 1),
        "candidate_pairs_per_document": round(stats.candidate_pairs / n, 4),
        "verified_edges_per_document": round(stats.verified_edges / n, 4),
        "component_nodes_per_document": round(stats.component_nodes / n, 4),
        "rounds": stats.rounds,
        **{k: round(v, 1) for k, v in shuffle_sizes(ray, documents, dedup).items()},
    }


def embedding_section(documents: list[Document], minilm: bool) -> dict[str, Any]:
    from genarch.distributed.embedding import RayIndexBuilder
    from genarch.features import HashingVectorizer
    from genarch.orchestration.retrievers import DenseRetriever
    from genarch.orchestration.vectorstore import ExactVectorStore
    from genarch.schemas import Chunk

    extractor: Any = HashingVectorizer(dim=256)
    name = "HashingVectorizer(dim=256)"
    if minilm:
        from genarch.features import find_minilm_directory, load_minilm

        if find_minilm_directory() is not None:
            extractor, name = load_minilm(), "MiniLMEncoder"
    chunks = [
        Chunk(id=d.id, document_id=d.id, text=d.text, start=0, end=len(d.text)) for d in documents
    ]
    dim = int(extractor.extract([chunks[0].text]).shape[-1])

    store = ExactVectorStore(dim=dim, metric="cosine")

    def local_build() -> DenseRetriever:
        return DenseRetriever(extractor, store, batch_size=64).add(chunks)

    local_s, _ = seconds(local_build)
    builder = RayIndexBuilder(workers=2, shard_size=256, batch_size=64)
    queries = [d.text[:80] for d in documents[:: max(1, len(documents) // 20)][:20]]
    vectors = extractor.extract(queries)
    with tempfile.TemporaryDirectory() as directory:
        ray_s, build = seconds(lambda: builder.build(chunks, extractor, directory))
        remote = ExactVectorStore.load(directory)
        same = [[h.id for h in hits] for hits in store.search(vectors, 5)] == [
            [h.id for h in hits] for hits in remote.search(vectors, 5)
        ]
    logger.info("embedding (%s): local %.2f s, Ray %.2f s", name, local_s, ray_s)
    return {
        "extractor": name,
        "chunks": len(chunks),
        "local_s": round(local_s, 3),
        "local_chunks_per_s": round(len(chunks) / local_s, 1),
        "ray_s": round(ray_s, 3),
        "ray_chunks_per_s": round(len(chunks) / ray_s, 1),
        "ray_over_local_time": round(ray_s / local_s, 1),
        "ray_worker_seconds": round(build.worker_seconds, 3),
        "shards": build.shards,
        "search_hits_equal": same,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="a quarter of the corpus, fewer repeats"
    )
    parser.add_argument("--minilm", action="store_true", help="embed with MiniLM if installed")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    for name in ("ray", "ray.data", "genarch.distributed"):
        logging.getLogger(name).setLevel(logging.WARNING)
    import ray

    fraction, repeats = (0.25, 3) if args.quick else (1.0, 5)
    documents, _ = corpus(fraction)
    start_s, _ = seconds(
        lambda: ray.init(
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
            runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}},
        )
    )
    ray.data.DataContext.get_current().enable_progress_bars = False
    logger.info(
        "python %s | ray %s | numpy %s | %s, %d cpu(s), load average %.1f (shared machine)",
        platform.python_version(),
        version("ray"),
        np.__version__,
        platform.machine(),
        os.cpu_count() or 0,
        os.getloadavg()[0],
    )
    logger.info("corpus: %d documents; ray.init %.1f s", len(documents), start_s)
    results: dict[str, Any] = {
        "quick": args.quick,
        "cpus": os.cpu_count(),
        "load_average_1min_at_start": round(os.getloadavg()[0], 1),
        "ray_init_s": round(start_s, 2),
        "overhead": {k: round(v, 3) for k, v in ray_overheads(ray, repeats).items()},
    }
    logger.info("Ray Data overhead: %s", results["overhead"])
    results["dedup"] = dedup_section(ray, documents, repeats)
    logger.info("dedup: %s", results["dedup"])
    try:
        results["embedding"] = embedding_section(documents, args.minilm)
        logger.info("embedding: %s", results["embedding"])
    except ImportError as error:  # the distributed embedding is not there
        results["embedding"] = {"skipped": str(error)}
    results["load_average_1min_at_end"] = round(os.getloadavg()[0], 1)
    ray.shutdown()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
