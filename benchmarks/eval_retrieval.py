"""Retrieval and RAG quality on genarch's labelled questions over Python's documentation.

Usage::

    python benchmarks/eval_retrieval.py [--quick]

Chunks every topic of :func:`genarch.data.python_docs` (``Chunker``, 128 tokens,
overlap 16) and evaluates, on the same chunks and the same questions:

* BM25 (``BM25Retriever``, no stop words: Python keywords such as ``with`` matter),
* a dense retriever with the contrastive sentence encoder trained on the corpus
  itself (``train_on_corpus``; fewer steps with ``--quick``),
* a dense retriever with the pretrained all-MiniLM-L6-v2 (when ``genarch[embeddings]``
  is installed; otherwise, and with ``--quick``, the row is skipped and says so),
* hybrids of BM25 with each dense retriever (reciprocal-rank fusion),

reporting recall@k, evidence@10 (a retrieved chunk contains the supporting
quote) and MRR, then RAG with the extractive generator over BM25 and the best
hybrid: citation correctness and not-found behaviour. The last line printed is
one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from typing import Any

import torch

import genarch
from genarch.data import Chunker, python_docs
from genarch.orchestration.bm25 import BM25Retriever
from genarch.orchestration.extractive import ExtractiveGenerator
from genarch.orchestration.rag import RAG
from genarch.orchestration.rag_evaluation import (
    evaluate_rag,
    evaluate_retriever,
    format_table,
    load_questions,
    verify_questions,
)
from genarch.orchestration.retrievers import DenseRetriever, HybridRetriever
from genarch.orchestration.vectorstore import ExactVectorStore
from genarch.protocols import Retriever

KS = (1, 3, 5, 10)


def add_minilm(
    retrievers: dict[str, Retriever],
    bm25: Retriever,
    chunks: list[Any],
    timings: dict[str, float],
    *,
    quick: bool,
) -> str:
    """Add the MiniLM rows when the model is installed (and not ``--quick``); say why not."""
    if quick:
        return "skipped in --quick (embedding every chunk takes minutes on 2 cores)"
    try:
        from genarch.features.minilm import load_minilm

        started = time.perf_counter()
        minilm = dense(load_minilm(), chunks)
    except (ImportError, genarch.GenarchError) as error:
        return f"skipped: {error}"
    timings["minilm_index_s"] = time.perf_counter() - started
    retrievers["dense all-MiniLM-L6-v2"] = minilm
    retrievers["hybrid bm25 + MiniLM"] = HybridRetriever([bm25, minilm])
    return "used"


def dense(extractor: Any, chunks: list[Any]) -> DenseRetriever:
    store = ExactVectorStore(dim=extractor.dim, metric="cosine")
    return DenseRetriever(extractor, store).fit(chunks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="fewer training steps (under a minute)"
    )
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)

    print(
        f"genarch {genarch.__version__}, torch {torch.__version__}, python {platform.python_version()}"
    )
    print(f"threads: {args.threads}, quick: {args.quick}")
    documents = python_docs()
    questions = load_questions()
    verify_questions(questions, documents)
    chunks = list(Chunker(max_tokens=128, overlap_tokens=16).process(documents))
    answerable = sum(q.answerable for q in questions)
    print(
        f"corpus: {len(documents)} topics, {len(chunks)} chunks; questions: {answerable} "
        f"answerable, {len(questions) - answerable} unanswerable"
    )

    retrievers: dict[str, Retriever] = {}
    timings: dict[str, float] = {}
    started = time.perf_counter()
    bm25 = BM25Retriever(stopwords=()).fit(chunks)
    timings["bm25_index_s"] = time.perf_counter() - started
    retrievers["bm25"] = bm25

    from genarch.features.contrastive import train_on_corpus

    steps = 60 if args.quick else 300
    started = time.perf_counter()
    encoder = train_on_corpus(documents, steps=steps, seed=0)
    timings["contrastive_train_s"] = time.perf_counter() - started
    started = time.perf_counter()
    retrievers[f"dense contrastive ({steps} steps)"] = contrastive = dense(encoder, chunks)
    timings["contrastive_index_s"] = time.perf_counter() - started
    retrievers["hybrid bm25 + contrastive"] = HybridRetriever([bm25, contrastive])

    minilm_status = add_minilm(retrievers, bm25, chunks, timings, quick=args.quick)
    if minilm_status != "used":
        print(f"all-MiniLM-L6-v2 {minilm_status}")

    reports = [evaluate_retriever(r, questions, ks=KS, name=name) for name, r in retrievers.items()]
    print()
    print(format_table(reports))

    rag_reports = []
    for name in ("bm25", "hybrid bm25 + MiniLM", "hybrid bm25 + contrastive"):
        if name in retrievers:
            rag = RAG(retrievers[name], ExtractiveGenerator(), k=4)
            rag_reports.append(evaluate_rag(rag, questions, documents, name=f"{name} + extractive"))
    print()
    print("| RAG | answered | quote cited | topic cited | spans exact | unanswerable declined |")
    print("|---|---|---|---|---|---|")
    for report in rag_reports:
        print(
            f"| {report.name} | {report.answered:.3f} | {report.quote_cited:.3f} | "
            f"{report.topic_cited:.3f} | {report.spans_exact:.3f} | {report.declined_unanswerable:.3f} |"
        )
    print()
    summary = {
        "genarch": genarch.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "quick": args.quick,
        "chunks": len(chunks),
        "questions": {"answerable": answerable, "unanswerable": len(questions) - answerable},
        "minilm": minilm_status,
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "retrieval": {
            r.name: {
                "recall": {str(k): round(v, 4) for k, v in r.recall.items()},
                "hit": {str(k): round(v, 4) for k, v in r.hit.items()},
                "evidence": {str(k): round(v, 4) for k, v in r.evidence.items()},
                "mrr": round(r.mrr, 4),
                "ms_per_query": round(r.seconds_per_query * 1000, 3),
            }
            for r in reports
        },
        "rag": {r.name: r.model_dump(exclude={"name"}) for r in rag_reports},
    }
    sys.stdout.write(json.dumps(summary) + "\n")


if __name__ == "__main__":
    main()
