"""Fit the quickstart's question adapter on the RAG question set, and test it.

Usage::

    python benchmarks/fit_query_adapter.py [--write] [--cross-validate] [--embedding-cache PATH]

The quickstart's assistant scores candidate sentences by the all-MiniLM-L6-v2
cosine of the question to each sentence. A
:class:`~genarch.features.QueryAdapter` moves the question's vector by a
low-rank map learned from labelled questions (:func:`~genarch.features.fit_query_adapter`),
so that the sentences that answer come first. The examples are the answerable
questions of :data:`TRAINING_BATCHES` (see ``benchmarks/eval_rag.py`` for the
batches), each with the candidate sentences of the 12 chunks the quickstart's
assistant retrieves and which of them hold its answer
(:func:`~genarch.orchestration.rag_evaluation.adapter_examples`).

It prints:

* ``--cross-validate``: for each training batch, the assistant's answer
  accuracy on that batch with an adapter fitted on the other training batches
  (how much it helps on questions it never saw, before any test batch is
  looked at);
* what the rule for the decline threshold chooses with the adapter in place:
  the lowest ``min_confidence`` that declines at least 90% of the
  unanswerable questions of :data:`GATE_BATCHES`, and how many of their
  answerable questions it declines (whether to decline is decided on
  MiniLM's own similarities: the adapter only ranks). The quickstart's
  ``SEMANTIC_SETTINGS["min_confidence"]`` is what it chose;
* the assistant with and without the adapter on every batch, the test batches
  :data:`TEST_BATCHES` last (nothing is chosen on them).

``--write`` saves the adapter fitted on all of :data:`TRAINING_BATCHES` as the
package's ``python_docs_query_adapter.safetensors``.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from eval_rag import CachedEncoder, halves

from genarch.data import python_docs
from genarch.features import CachedExtractor, fit_query_adapter, load_minilm
from genarch.orchestration.extractive import ExtractiveGenerator
from genarch.orchestration.quickstart import ADAPTER_FIT, SEMANTIC_SETTINGS, quickstart_rag
from genarch.orchestration.rag import RAG
from genarch.orchestration.rag_evaluation import (
    LabelledQuestion,
    adapter_examples,
    evaluate_rag,
    load_questions,
)
from genarch.schemas import Document

#: What the adapter learns from: every batch but the test batches.
TRAINING_BATCHES = (
    "calibration",
    "held_out",
    "fresh",
    "fresh_2",
    "fresh_3",
    "fresh_4",
    "fresh_5",
    "fresh_9",
    "fresh_10",
    "fresh_11",
    "fresh_12",
    "fresh_13",
    "fresh_14",
    "fresh_15",
    "fresh_16",
)
#: Where the decline threshold was chosen (0.48): the unanswerable questions of
#: these, the batches there were when it was.
GATE_BATCHES = ("calibration", "held_out", "fresh", "fresh_2", "fresh_3", "fresh_4", "fresh_5")
#: Measured only: nothing is chosen on them.
TEST_BATCHES = ("fresh_6", "fresh_7", "fresh_8")
DECLINE_GOAL = 0.9


def accuracy(rag: RAG, questions: Sequence[LabelledQuestion], documents: list[Document]) -> float:
    return evaluate_rag(rag, questions, documents).answer_accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="save the adapter into the package")
    parser.add_argument("--cross-validate", action="store_true", help="leave one batch out")
    parser.add_argument("--embedding-cache", metavar="PATH")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    documents = python_docs()
    questions = load_questions(name="rag")
    parts = halves(questions)
    minilm: Any = load_minilm()
    if args.embedding_cache:
        minilm = CachedExtractor(minilm, args.embedding_cache)
    encoder = CachedEncoder(minilm)
    plain = quickstart_rag(documents, encoder=encoder)
    assert isinstance(plain.generator, ExtractiveGenerator)
    started = time.perf_counter()
    examples = {name: adapter_examples(plain, parts[name], documents) for name in TRAINING_BATCHES}
    print(
        "examples: "
        + ", ".join(
            f"{name} {len(found)}/{sum(q.answerable for q in parts[name])}"
            for name, found in examples.items()
        )
        + f" ({time.perf_counter() - started:.1f} s)"
    )
    settings = SEMANTIC_SETTINGS["min_confidence"]
    if args.cross_validate:
        print("\nleave one batch out: answer accuracy on the batch left out, plain -> adapted")
        for left_out in TRAINING_BATCHES:
            rest = [e for name, found in examples.items() if name != left_out for e in found]
            adapter = fit_query_adapter(encoder, rest, **ADAPTER_FIT)
            rag = quickstart_rag(documents, encoder=encoder, adapter=adapter)
            print(
                f"  {left_out}: {accuracy(plain, parts[left_out], documents):.3f} -> "
                f"{accuracy(rag, parts[left_out], documents):.3f}"
            )
    started = time.perf_counter()
    adapter = fit_query_adapter(
        encoder, [e for found in examples.values() for e in found], **ADAPTER_FIT
    )
    print(
        f"\nfitted on {sum(map(len, examples.values()))} questions in {time.perf_counter() - started:.1f} s"
    )
    rag = quickstart_rag(documents, encoder=encoder, adapter=adapter)
    generator = rag.generator
    assert isinstance(generator, ExtractiveGenerator)

    def confidence(question: LabelledQuestion) -> float:
        sources = rag.retrieve(question.question)
        found = generator.confidence(
            question.question,
            [s.chunk.text for s in sources],
            document_ids=[s.chunk.document_id for s in sources],
        )
        return -math.inf if found is None else found

    unanswerable = [q for name in GATE_BATCHES for q in parts[name] if not q.answerable]
    scores = sorted(confidence(q) for q in unanswerable)
    needed = math.ceil(DECLINE_GOAL * len(scores) - 1e-9)
    threshold = math.floor(scores[needed - 1] * 100 + 1) / 100  # declines the `needed` lowest
    held = [confidence(q) for name in GATE_BATCHES for q in parts[name] if q.answerable]
    print(
        f"decline threshold: {threshold:.2f} declines {sum(s < threshold for s in scores)}/"
        f"{len(scores)} unanswerable and {sum(s < threshold for s in held)}/{len(held)} "
        f"answerable questions (shipped: {settings})"
    )

    print("\n| batch | plain | adapted | adapted, declines (unanswerable) |")
    print("|---|---|---|---|")
    for name in (*TRAINING_BATCHES, *TEST_BATCHES, "all"):
        before = evaluate_rag(plain, parts[name], documents)
        after = evaluate_rag(rag, parts[name], documents)
        print(
            f"| {name} | {before.answer_accuracy:.3f} | {after.answer_accuracy:.3f} | "
            f"{after.decline_recall:.3f} ({after.unanswerable}) |"
        )
    if args.write:
        target = Path(str(resources.files("genarch.orchestration").joinpath("data")))
        adapter.save(target / "python_docs_query_adapter.safetensors")
        print(f"wrote {target / 'python_docs_query_adapter.safetensors'}")


if __name__ == "__main__":
    main()
