"""Answer accuracy and "not in the sources" behaviour of genarch's RAG assistant.

Usage::

    python benchmarks/eval_rag.py [--quick] [--calibrate] [--threads 2]

Runs, over the RAG question set (``load_questions(name="rag")``: answerable
questions with an answer span, and Python questions that the documentation
does not answer):

* the quickstart's assistant (:func:`genarch.orchestration.quickstart.quickstart_rag`):
  BM25 over chunks with their topic's title, operator symbols counted, k=8,
  extractive answers scored by words and by all-MiniLM-L6-v2 similarity,
  declining when no sentence scores well enough,
* the same without the ``embeddings`` extra (``encoder="none"``: words only),
* ablations: the MiniLM sentence scoring over plain BM25 (k=4 and k=8),
* the RAG tutorial's configuration (BM25 over 128-token chunks, extractive
  answers of at most 2 sentences, k=4) — the assistant before issue 19,

and reports, for each: answer accuracy (a right topic cited AND the cited span
overlapping the answer span) on the answerable questions, and decline
precision/recall (``NotFound`` results) on all of them. Figures are given for
the whole set and for its two halves: the questions with odd ids (the
"calibration" half, the one settings are chosen on) and the even ones (the
"held-out" half, the one that shows whether they generalise).

``--calibrate`` also re-chooses the semantic settings (the similarity weight
and the decline threshold ``min_confidence``) on the calibration half only, by
the most right answers plus correct declines there, and prints them next to
the shipped :data:`~genarch.orchestration.quickstart.SEMANTIC_SETTINGS`.
``--quick`` runs only the quickstart's two assistants and the tutorial's.
Sentence vectors are cached in-process, so the assistants sharing an encoder
embed each sentence once. The last line printed is one JSON object with every
figure.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from collections.abc import Sequence
from typing import Any

import torch

import genarch
from genarch.data import Chunker, python_docs
from genarch.features import load_minilm
from genarch.orchestration.bm25 import BM25Retriever
from genarch.orchestration.extractive import ExtractiveGenerator
from genarch.orchestration.quickstart import SEMANTIC_SETTINGS, quickstart_rag
from genarch.orchestration.rag import RAG
from genarch.orchestration.rag_evaluation import (
    LabelledQuestion,
    RAGReport,
    evaluate_rag,
    load_questions,
    verify_questions,
)


class CachedEncoder:
    """A sentence encoder that embeds each text once (shared by the assistants compared)."""

    def __init__(self, encoder: Any) -> None:
        self.encoder = encoder
        self.dim = encoder.dim
        self.vectors: dict[str, torch.Tensor] = {}

    def extract(self, items: Sequence[str]) -> torch.Tensor:
        texts = list(items)
        missing = [t for t in dict.fromkeys(texts) if t not in self.vectors]
        if missing:
            self.vectors.update(zip(missing, self.encoder.extract(missing), strict=True))
        return torch.stack([self.vectors[t] for t in texts])


def calibrate(
    retriever_rag: RAG, encoder: CachedEncoder, questions: list[LabelledQuestion], documents: Any
) -> dict[str, dict[str, float]]:
    """Semantic weight and decline threshold chosen on ``questions`` by two criteria.

    * ``"goal"`` (what is shipped): the lowest threshold that declines at least
      90% of the unanswerable questions (the goal), with, at it, the weight with
      the most right answers — every answer a decline costs is lost for no goal.
    * ``"most_correct"``: the most right answers + correct declines.

    Ties go to the lower threshold, then the lower weight.
    """
    figures: dict[tuple[float, float], tuple[float, float]] = {}
    for weight in (0.5, 0.6, 0.7, 0.8, 0.9):
        for step in range(21):
            threshold = round(0.3 + 0.02 * step, 2)
            settings = {**SEMANTIC_SETTINGS, "semantic_weight": weight, "min_confidence": threshold}
            rag = RAG(
                retriever_rag.retriever,
                ExtractiveGenerator(settings, encoder=encoder),
                k=retriever_rag.config.k,
            )
            report = evaluate_rag(rag, questions, documents)
            figures[threshold, weight] = (
                report.answer_accuracy * report.answerable,
                report.decline_recall * report.unanswerable,
            )
    unanswerable = sum(not q.answerable for q in questions)
    order = sorted(figures)  # by threshold, then weight
    reaching = [key for key in order if figures[key][1] >= 0.9 * unanswerable - 1e-9]
    lowest = reaching[0][0] if reaching else order[-1][0]
    goal = max(
        (key for key in order if key[0] == lowest), key=lambda key: (figures[key][0], -key[1])
    )
    most = max(order, key=lambda key: (round(sum(figures[key])), -key[0], -key[1]))

    def described(key: tuple[float, float]) -> dict[str, float]:
        right, declined = figures[key]
        return {
            "min_confidence": key[0],
            "semantic_weight": key[1],
            "right": round(right),
            "declined": round(declined),
        }

    return {"goal": described(goal), "most_correct": described(most)}


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
        "--quick", action="store_true", help="only the quickstart's assistants and the tutorial's"
    )
    parser.add_argument(
        "--calibrate",
        action="store_true",
        help="re-choose the semantic settings on the calibration half",
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
    encoder = CachedEncoder(load_minilm())
    pipelines: dict[str, RAG] = {
        "quickstart (titled bm25 + MiniLM sentences)": quickstart_rag(documents, encoder=encoder),
        "quickstart without the embeddings extra": quickstart_rag(documents, encoder="none"),
    }
    chunks = list(Chunker(max_tokens=128, overlap_tokens=16).process(documents))
    bm25 = BM25Retriever(stopwords=()).fit(chunks)
    if not args.quick:
        semantic = ExtractiveGenerator(SEMANTIC_SETTINGS, encoder=encoder)
        pipelines["ablation: plain bm25 k=4 + MiniLM sentences"] = RAG(bm25, semantic, k=4)
        pipelines["ablation: plain bm25 k=8 + MiniLM sentences"] = RAG(bm25, semantic, k=8)
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
    calibrated = None
    if args.calibrate:
        quickstart = pipelines["quickstart (titled bm25 + MiniLM sentences)"]
        calibrated = calibrate(quickstart, encoder, halves(questions)["calibration"], documents)
        print(f"calibrated on the calibration half: {calibrated}; shipped: {SEMANTIC_SETTINGS}")
    summary = {
        "genarch": genarch.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "quick": args.quick,
        "questions": {"answerable": answerable, "unanswerable": len(questions) - answerable},
        "build_s": round(build_s, 2),
        "semantic_settings": SEMANTIC_SETTINGS,
        "calibrated": calibrated,
        "rag": results,
    }
    sys.stdout.write(json.dumps(summary) + "\n")


if __name__ == "__main__":
    main()
