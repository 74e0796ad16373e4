"""Fit the quickstart's question adapter and answer gate on the RAG question set, and test them.

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

An :class:`~genarch.orchestration.answer_gate.AnswerGate` then learns when
the adapted assistant should say "not in the sources": a logistic regression
over its best sentence's score and the rarity of the question's terms in the
corpus, fitted on every question of :data:`TRAINING_BATCHES`
(:func:`~genarch.orchestration.rag_evaluation.gate_examples`), its threshold
chosen to decline 90% of the unanswerable ones while holding out one batch at
a time (:data:`~genarch.orchestration.quickstart.GATE_FIT`).

It prints:

* ``--cross-validate``: for each training batch, the right answers and the
  unanswerable questions declined on that batch by the plain assistant, with
  an adapter fitted on the other training batches, and with that adapter and
  a gate fitted on them too (how much each helps on questions it never saw,
  before any test batch is looked at);
* what the rule for the decline threshold chooses with the adapter in place:
  the lowest ``min_confidence`` that declines at least 90% of the
  unanswerable questions of :data:`GATE_BATCHES`, and how many of their
  answerable questions it declines (whether to decline is decided on
  MiniLM's own similarities: the adapter only ranks). The quickstart's
  ``SEMANTIC_SETTINGS["min_confidence"]`` is what it chose;
* the gate's weights and threshold;
* the assistant plain, with the adapter and with the adapter and the gate on
  every batch, the test batches :data:`TEST_BATCHES` last (nothing is chosen
  on them).

``--write`` saves the adapter and the gate fitted on all of
:data:`TRAINING_BATCHES` as the package's
``python_docs_query_adapter.safetensors`` and ``python_docs_answer_gate.json``.
"""

from __future__ import annotations

import argparse
import math
import time
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from eval_rag import TEST_BATCHES, CachedEncoder, batch, halves

from genarch.data import python_docs
from genarch.features import CachedExtractor, fit_query_adapter, load_minilm
from genarch.orchestration.answer_gate import GATE_FEATURES, AnswerGate, fit_answer_gate
from genarch.orchestration.extractive import ExtractiveGenerator
from genarch.orchestration.quickstart import (
    ADAPTER_FIT,
    GATE_FIT,
    PYTHON_DOCS_ADAPTER,
    PYTHON_DOCS_GATE,
    SEMANTIC_SETTINGS,
    quickstart_rag,
)
from genarch.orchestration.rag import RAG
from genarch.orchestration.rag_evaluation import (
    LabelledQuestion,
    RAGReport,
    adapter_examples,
    evaluate_rag,
    gate_examples,
    load_questions,
)

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
    "fresh_19",
    "fresh_20",
    "fresh_21",
    "fresh_22",
    "fresh_23",
    "fresh_24",
    "fresh_27",
    "fresh_28",
    "fresh_29",
    "fresh_30",
    "fresh_31",
    "fresh_32",
)
#: Where the decline threshold was chosen (0.48): the unanswerable questions of
#: these, the batches there were when it was.
GATE_BATCHES = ("calibration", "held_out", "fresh", "fresh_2", "fresh_3", "fresh_4", "fresh_5")
DECLINE_GOAL = 0.9


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
        print(
            "\nleave one batch out: the adapter and the gate fitted on the other batches; "
            "on the batch left out, right answers and unanswerable questions declined, "
            "plain -> adapted -> adapted + gate"
        )
        totals = [[0, 0, 0, 0] for _ in range(3)]
        for left_out in TRAINING_BATCHES:
            rest = [e for name, found in examples.items() if name != left_out for e in found]
            adapted = quickstart_rag(
                documents, encoder=encoder, adapter=fit_query_adapter(encoder, rest, **ADAPTER_FIT)
            )
            others = [q for name in TRAINING_BATCHES if name != left_out for q in parts[name]]
            left_gate = fit_answer_gate(
                gate_examples(adapted, others),
                documents,
                groups=[batch(q) for q in others],
                **GATE_FIT,
            )
            counts = [
                _counts(evaluate_rag(r, parts[left_out], documents))
                for r in (plain, adapted, with_gate(adapted, left_gate))
            ]
            totals = [
                [a + b for a, b in zip(t, c, strict=True)]
                for t, c in zip(totals, counts, strict=True)
            ]
            print(f"  {left_out}: {_outcome(counts)}")
        print(f"  all: {_outcome(totals)}")
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
        f"decline threshold (without a gate): {threshold:.2f} declines "
        f"{sum(s < threshold for s in scores)}/{len(scores)} unanswerable and "
        f"{sum(s < threshold for s in held)}/{len(held)} answerable questions (shipped: {settings})"
    )

    # The answer gate learns from every question of the training batches, as the
    # adapted assistant scores them.
    labelled = {name: gate_examples(rag, parts[name]) for name in TRAINING_BATCHES}
    started = time.perf_counter()
    gate = fit_answer_gate(
        [e for found in labelled.values() for e in found],
        documents,
        groups=[name for name, found in labelled.items() for _ in found],  # batch by batch
        encoder=minilm,
        **GATE_FIT,
    )
    print(
        f"\nanswer gate fitted on {sum(map(len, labelled.values()))} questions in "
        f"{time.perf_counter() - started:.1f} s: weights "
        + ", ".join(f"{n} {w:+.2f}" for n, w in zip(GATE_FEATURES, gate.weights, strict=True))
        + f", declines at p >= {gate.threshold:.3f}"
    )
    gated = with_gate(rag, gate)

    print(
        "\n| batch | plain | adapted | adapted + gate | declined: adapted | adapted + gate "
        "(unanswerable) |"
    )
    print("|---|---|---|---|---|---|")
    for name in (*TRAINING_BATCHES, *TEST_BATCHES, "all"):
        reports = [evaluate_rag(r, parts[name], documents) for r in (plain, rag, gated)]
        print(
            "| "
            + " | ".join(
                [name, *(f"{r.answer_accuracy:.3f}" for r in reports)]
                + [f"{r.decline_recall:.3f}" for r in reports[1:]]
            )
            + f" ({reports[0].unanswerable}) |"
        )
    if args.write:
        target = Path(str(resources.files("genarch.orchestration").joinpath("data")))
        adapter.save(target / PYTHON_DOCS_ADAPTER)
        gate.save(target / PYTHON_DOCS_GATE)
        print(f"wrote {target / PYTHON_DOCS_ADAPTER} and {target / PYTHON_DOCS_GATE}")


def with_gate(rag: RAG, gate: AnswerGate) -> RAG:
    """``rag`` deciding whether to decline with ``gate`` (bound to its documents)."""
    generator = rag.generator
    assert isinstance(generator, ExtractiveGenerator)
    return RAG(
        rag.retriever,
        ExtractiveGenerator(
            generator.config,
            encoder=generator.encoder,
            question_encoder=generator.question_encoder,
            titles=generator.titles,
            gate=gate,
        ),
        rag.config,
    )


def _outcome(counts: list[list[int]]) -> str:
    """``right a -> b -> c of n, declined d -> e -> f of m`` (see :func:`_counts`)."""
    right = " -> ".join(str(c[0]) for c in counts)
    declined = " -> ".join(str(c[1]) for c in counts)
    return f"right {right} of {counts[0][2]}, declined {declined} of {counts[0][3]}"


def _counts(report: RAGReport) -> list[int]:
    """Right answers, unanswerable questions declined, answerable, unanswerable."""
    return [
        round(report.answer_accuracy * report.answerable),
        round(report.decline_recall * report.unanswerable),
        report.answerable,
        report.unanswerable,
    ]


if __name__ == "__main__":
    main()
