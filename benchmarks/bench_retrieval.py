"""Retrieval: exact vector search vs faiss and numpy; BM25 vs ``bm25s``.

1. Exact top-10 by inner product over ``N`` float32 unit vectors of dimension
   384 (default 100,000) for ``Q`` queries (default 1,000): genarch
   ``ExactVectorStore`` vs faiss ``IndexFlatIP`` vs plain numpy (matmul +
   ``argpartition``), plus a bare torch ``mm`` + ``topk`` as the hardware
   reference; queries batched, and one query per call. The top-10 id sets are
   compared query by query.
2. BM25 over Python's documentation cut into chunks (``Chunker``, 128 tokens),
   replicated with variation to a realistic size: indexing from raw text
   (tokenisation included) and top-10 querying, genarch ``BM25Retriever`` vs
   ``bm25s`` (same tokenisation, k1 = 1.5, b = 0.75, Lucene scoring); top-10
   lists are compared (equal scores may come in either order).

Peers run in the same process, alternating, after a warm-up. Usage:
``python benchmarks/bench_retrieval.py [--quick] [--threads 2]``. The last line
printed is one JSON object with every figure and ratio.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from genarch.data import Chunker, python_docs
from genarch.orchestration.bm25 import BM25Retriever
from genarch.orchestration.vectorstore import ExactVectorStore
from genarch.schemas import Chunk

os.environ.setdefault("DISABLE_TQDM", "1")  # bm25s progress bars
from _timing import alternate, summary, version


def report(title: str, times: dict[str, list[float]], per_run: int, unit: str) -> dict[str, Any]:
    """Print a table of ``per_run / seconds`` rates; return the figures."""
    print(f"\n{title}")
    print(f"  {'method':<34} {unit + ' (median)':>18} {'min':>10} {'max':>10}")
    figures = {}
    for name, seconds in times.items():
        rates = [per_run / s for s in seconds]
        figures[name] = {
            "per_second": statistics.median(rates),
            "min": min(rates),
            "max": max(rates),
            "seconds": summary(seconds),
        }
        print(
            f"  {name:<34} {statistics.median(rates):>18.1f} {min(rates):>10.1f} {max(rates):>10.1f}"
        )
    return figures


# ------------------------------------------------------------------ vectors


def numpy_top_k(data: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    scores = queries @ data.T
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def bench_vectors(
    n: int, q: int, singles: int, repeats: int, dim: int = 384, k: int = 10
) -> dict[str, Any]:
    generator = torch.Generator().manual_seed(0)
    data = torch.nn.functional.normalize(torch.randn(n, dim, generator=generator), dim=1)
    queries = torch.nn.functional.normalize(torch.randn(q, dim, generator=generator), dim=1)
    data_np, queries_np = data.numpy(), queries.numpy()
    ids = [str(i) for i in range(n)]
    print(f"\nexact top-{k} inner product: {n:,} x {dim} float32 unit vectors, {q:,} queries")

    start = time.perf_counter()
    store = ExactVectorStore(dim=dim, metric="inner_product")
    store.upsert(ids, data)
    build = {"genarch": time.perf_counter() - start}
    faiss = None
    if importlib.util.find_spec("faiss") is not None:
        import faiss

        faiss.omp_set_num_threads(torch.get_num_threads())
        start = time.perf_counter()
        index = faiss.IndexFlatIP(dim)
        index.add(data_np)
        build["faiss"] = time.perf_counter() - start
    else:
        print("  faiss not installed: its columns are skipped (pip install faiss-cpu)")
    print("  index build (s): " + ", ".join(f"{k_}={v:.3f}" for k_, v in build.items()))

    # --- correctness: identical top-10 sets
    ours = [[int(h.id) for h in hits] for hits in store.search(queries, k)]
    reference = numpy_top_k(data_np, queries_np, k)
    peers = {"numpy": reference.tolist()}
    if faiss is not None:
        peers["faiss"] = index.search(queries_np, k)[1].tolist()
    exact_scores = queries_np @ data_np.T
    agreement = {}
    for name, result in peers.items():
        same = sum(set(a) == set(b) for a, b in zip(ours, result, strict=True))
        # a differing set is acceptable only where the 10th and 11th scores tie within rounding
        unexplained = 0
        for row, (a, b) in enumerate(zip(ours, result, strict=True)):
            if set(a) != set(b):
                gap = np.sort(exact_scores[row])[::-1]
                unexplained += int(gap[k - 1] - gap[k] > 1e-5)
        agreement[name] = {"identical_top10_sets": same, "queries": q, "unexplained": unexplained}
        print(
            f"  top-{k} sets identical to {name}: {same}/{q} (differences not due to ties: {unexplained})"
        )

    # --- batched
    runs: dict[str, Callable[[], object]] = {
        "genarch ExactVectorStore.search": lambda: store.search(queries, k),
        "torch mm + topk (reference)": lambda: torch.mm(queries, data.T).topk(k, dim=1),
        "numpy matmul + argpartition": lambda: numpy_top_k(data_np, queries_np, k),
    }
    if faiss is not None:
        runs["faiss IndexFlatIP.search"] = lambda: index.search(queries_np, k)
    batched = report("batched (all queries in one call)", alternate(runs, repeats), q, "queries/s")

    # --- one query per call
    one = [queries[i : i + 1] for i in range(singles)]
    one_np = [queries_np[i : i + 1] for i in range(singles)]
    single_runs: dict[str, Callable[[], object]] = {
        "genarch ExactVectorStore.search": lambda: [store.search(x, k) for x in one],
        "torch mm + topk (reference)": lambda: [torch.mm(x, data.T).topk(k, dim=1) for x in one],
        "numpy matmul + argpartition": lambda: [numpy_top_k(data_np, x, k) for x in one_np],
    }
    if faiss is not None:
        single_runs["faiss IndexFlatIP.search"] = lambda: [index.search(x, k) for x in one_np]
    single = report(
        f"one query per call ({singles} calls)",
        alternate(single_runs, repeats),
        singles,
        "queries/s",
    )
    figures: dict[str, Any] = {
        "n": n,
        "dim": dim,
        "queries": q,
        "build_seconds": build,
        "agreement": agreement,
        "batched": batched,
        "single": single,
    }
    if faiss is not None:
        ours_b = batched["genarch ExactVectorStore.search"]["per_second"]
        ours_s = single["genarch ExactVectorStore.search"]["per_second"]
        figures["ratio_batched_vs_faiss"] = (
            ours_b / batched["faiss IndexFlatIP.search"]["per_second"]
        )
        figures["ratio_single_vs_faiss"] = ours_s / single["faiss IndexFlatIP.search"]["per_second"]
        figures["single_latency_ms"] = {
            "genarch": 1e3 / ours_s,
            "faiss": 1e3 / single["faiss IndexFlatIP.search"]["per_second"],
        }
        print(
            f"  genarch vs faiss: batched {figures['ratio_batched_vs_faiss']:.2f}x queries/s, "
            f"single-query latency {figures['single_latency_ms']['genarch']:.2f} ms "
            f"vs {figures['single_latency_ms']['faiss']:.2f} ms"
        )
    figures["ratio_batched_vs_numpy"] = (
        batched["genarch ExactVectorStore.search"]["per_second"]
        / batched["numpy matmul + argpartition"]["per_second"]
    )
    figures["ratio_batched_vs_torch_reference"] = (
        batched["genarch ExactVectorStore.search"]["per_second"]
        / batched["torch mm + topk (reference)"]["per_second"]
    )
    return figures


# --------------------------------------------------------------------- BM25


def corpus(replicas: int) -> list[Chunk]:
    """Python docs chunks, plus ``replicas - 1`` varied copies (each chunk joined with part of another)."""
    base = list(Chunker(max_tokens=128, overlap_tokens=0).process(python_docs()))
    chunks = list(base)
    n = len(base)
    for r in range(1, replicas):
        for i, chunk in enumerate(base):
            other = base[(i * 7 + r * 131) % n].text
            text = chunk.text + "\n" + other[: len(other) // 2]
            chunks.append(chunk.model_copy(update={"id": f"{chunk.id}~{r}", "text": text}))
    return chunks


def make_queries(chunks: list[Chunk], count: int) -> list[str]:
    rng = random.Random(0)
    queries = []
    while len(queries) < count:
        words = rng.choice(chunks).text.split()
        if len(words) < 12:
            continue
        start = rng.randrange(len(words) - 8)
        queries.append(" ".join(words[start : start + rng.randint(3, 8)]))
    return queries


def bench_bm25(replicas: int, q: int, repeats: int, k: int = 10) -> dict[str, Any]:
    chunks = corpus(replicas)
    texts = [c.text for c in chunks]
    queries = make_queries(chunks, q)
    mb = sum(len(t.encode()) for t in texts) / 1e6
    print(f"\nBM25: {len(chunks):,} chunks ({mb:.1f} MB) of Python docs, {q:,} queries, top-{k}")
    if importlib.util.find_spec("bm25s") is None:
        print("  bm25s not installed: its columns are skipped (pip install bm25s)")
        bm25s = None
    else:
        import bm25s

    def index_genarch() -> BM25Retriever:
        return BM25Retriever(k1=1.5, b=0.75).fit(chunks)

    def index_bm25s() -> Any:
        model = bm25s.BM25(k1=1.5, b=0.75, method="lucene")
        model.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
        return model

    index_runs: dict[str, Callable[[], object]] = {"genarch BM25Retriever.fit": index_genarch}
    if bm25s is not None:
        index_runs["bm25s tokenize + index"] = index_bm25s
    indexing = report(
        "indexing (raw text -> index)", alternate(index_runs, repeats), len(chunks), "chunks/s"
    )

    ours = index_genarch()
    query_runs: dict[str, Callable[[], object]] = {
        "genarch BM25Retriever.retrieve": lambda: [ours.retrieve(x, k) for x in queries],
    }
    figures: dict[str, Any] = {
        "chunks": len(chunks),
        "megabytes": mb,
        "queries": q,
        "indexing": indexing,
    }
    if bm25s is not None:
        theirs = index_bm25s()

        def query_bm25s() -> Any:
            tokens = bm25s.tokenize(queries, stopwords="en", show_progress=False, return_ids=False)
            return theirs.retrieve(tokens, k=k, show_progress=False)

        query_runs["bm25s tokenize + retrieve"] = query_bm25s
        # identical rankings: the same chunk at each rank, except where two chunks score
        # exactly the same (Python's docs repeat some sections verbatim; bm25s leaves the
        # order of equal scores unspecified, genarch orders them by position)
        indices, scores = query_bm25s()
        position = {c.id: i for i, c in enumerate(chunks)}
        same, tie_only, different = 0, 0, 0
        for row, question in enumerate(queries):
            mine = [r.chunk.id for r in ours.retrieve(question, k)]
            peer = [
                chunks[int(i)].id for i, s in zip(indices[row], scores[row], strict=True) if s > 0
            ]
            if mine == peer:
                same += 1
                continue
            exact = ours.scores(question).numpy()
            ties = len(mine) == len(peer) and all(
                exact[position[a]] == exact[position[b]] for a, b in zip(mine, peer, strict=True)
            )
            tie_only += ties
            different += not ties
        figures["agreement"] = {
            "identical": same,
            "ties_reordered": tie_only,
            "different": different,
        }
        print(
            f"  top-{k} vs bm25s: {same} identical, {tie_only} differ only in the order of exactly equal scores, {different} different"
        )
    querying = report(
        "querying (one query per call for genarch; bm25s batched)",
        alternate(query_runs, repeats),
        q,
        "queries/s",
    )
    figures["querying"] = querying
    if bm25s is not None:
        figures["ratio_index_vs_bm25s"] = (
            indexing["genarch BM25Retriever.fit"]["per_second"]
            / indexing["bm25s tokenize + index"]["per_second"]
        )
        figures["ratio_query_vs_bm25s"] = (
            querying["genarch BM25Retriever.retrieve"]["per_second"]
            / querying["bm25s tokenize + retrieve"]["per_second"]
        )
        print(
            f"  genarch vs bm25s: indexing {figures['ratio_index_vs_bm25s']:.2f}x, "
            f"querying {figures['ratio_query_vs_bm25s']:.2f}x"
        )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="smaller sizes: finishes in under a minute"
    )
    parser.add_argument("--threads", type=int, default=2, help="torch and faiss threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "faiss-cpu": version("faiss-cpu"),
        "bm25s": version("bm25s"),
        "genarch": version("genarch"),
    }
    print("versions: " + ", ".join(f"{k}={v}" for k, v in versions.items()))
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, threads={args.threads}, load={os.getloadavg()[0]:.1f}"
    )
    if args.quick:
        vectors = bench_vectors(n=20_000, q=200, singles=50, repeats=3)
        bm25 = bench_bm25(replicas=2, q=200, repeats=3)
    else:
        vectors = bench_vectors(n=100_000, q=1_000, singles=200, repeats=3)
        bm25 = bench_bm25(replicas=20, q=1_000, repeats=3)
    result = {
        "quick": args.quick,
        "threads": args.threads,
        "versions": versions,
        "vectors": vectors,
        "bm25": bm25,
    }
    sys.stdout.flush()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
