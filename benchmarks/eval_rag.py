"""Answer accuracy and "not in the sources" behaviour of genarch's RAG assistant.

Usage::

    python benchmarks/eval_rag.py [--quick] [--threads 2]

Runs, over the RAG question set (``load_questions(name="rag")``: answerable
questions with an answer span, and Python questions that the documentation
does not answer):

* the quickstart's assistant (:func:`genarch.orchestration.quickstart.quickstart_rag`),
* the RAG tutorial's configuration (BM25 over 128-token chunks, extractive
  answers of at most 2 sentences, k=4),

and reports, for each: answer accuracy (a right topic cited AND the cited span
overlapping the answer span) on the answerable questions, and decline
precision/recall (``NotFound`` results) on all of them. Figures are given for
the whole set and for its two halves: the questions with odd ids (the
"calibration" half, the one to tune thresholds on) and the even ones (the
"held-out" half, the one to report a tuned setting on). Both pipelines are
BM25-only and take seconds, so ``--quick`` runs the same as the full run; it
is kept so that every benchmark takes the same flag. The last line printed is
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
from genarch.orchestration.quickstart import quickstart_rag
from genarch.orchestration.rag import RAG
from genarch.orchestration.rag_evaluation import (
    LabelledQuestion,
    RAGReport,
    evaluate_rag,
    load_questions,
    verify_questions,
)


def halves(questions: list[LabelledQuestion]) -> dict[str, list[LabelledQuestion]]:
    """The calibration half (odd-numbered ids) and the held-out half (even ones)."""
    odd = [q for q in questions if int(q.id[1:]) % 2 == 1]
    even = [q for q in questions if int(q.id[1:]) % 2 == 0]
    return {"all": questions, "calibration": odd, "held_out": even}


def figures(report: RAGReport) -> dict[str, Any]:
    return {
        "answerable": report.answerable,
        "unanswerable": report.unanswerable,
        "answer_accuracy": round(report.answer_accuracy, 4),
        "topic_cited": round(report.topic_cited, 4),
        "decline_precision": round(report.decline_precision, 4),
        "decline_recall": round(report.decline_recall, 4),
        "spans_exact": round(report.spans_exact, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="the same run (already under a minute)"
    )
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")

    print(
        f"genarch {genarch.__version__}, torch {torch.__version__}, python {platform.python_version()}"
    )
    documents = python_docs()
    questions = load_questions(name="rag")
    verify_questions(questions, documents)
    answerable = sum(q.answerable for q in questions)
    print(f"questions: {answerable} answerable, {len(questions) - answerable} unanswerable")

    started = time.perf_counter()
    pipelines: dict[str, RAG] = {"quickstart": quickstart_rag(documents)}
    chunks = list(Chunker(max_tokens=128, overlap_tokens=16).process(documents))
    bm25 = BM25Retriever(stopwords=()).fit(chunks)
    pipelines["tutorial (bm25 + extractive)"] = RAG(bm25, ExtractiveGenerator(max_sentences=2), k=4)
    build_s = time.perf_counter() - started

    results: dict[str, Any] = {}
    print()
    print(
        "| pipeline | questions | answer accuracy | topic cited | decline precision | decline recall |"
    )
    print("|---|---|---|---|---|---|")
    for name, rag in pipelines.items():
        started = time.perf_counter()
        results[name] = {}
        for part, subset in halves(questions).items():
            report = evaluate_rag(rag, subset, documents, name=name)
            results[name][part] = figures(report)
            if part == "all":
                results[name]["outcomes"] = report.outcomes
            print(
                f"| {name} | {part} | {report.answer_accuracy:.3f} | {report.topic_cited:.3f} | "
                f"{report.decline_precision:.3f} | {report.decline_recall:.3f} |"
            )
        results[name]["seconds"] = round(time.perf_counter() - started, 2)
    print()
    summary = {
        "genarch": genarch.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "quick": args.quick,
        "questions": {"answerable": answerable, "unanswerable": len(questions) - answerable},
        "build_s": round(build_s, 2),
        "rag": results,
    }
    sys.stdout.write(json.dumps(summary) + "\n")


if __name__ == "__main__":
    main()
