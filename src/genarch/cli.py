"""The ``genarch`` command line: ``genarch --version``, ``genarch quickstart``."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from typing import Any

from genarch._version import __version__

__all__ = ["main"]


END_OF_TEXT = "<|endoftext|>"
QUESTIONS = (
    "What does the pass statement do?",
    "Do dictionaries keep the order keys were inserted?",
    "What does str.partition return?",
    "How many moons does Jupiter have?",
)


def _heading(title: str) -> None:
    print()
    print(f"== {title}")


def _quickstart(args: argparse.Namespace) -> int:
    if args.modality == "image":
        return _quickstart_images(args)
    from genarch.data import (
        BPETrainer,
        Chunker,
        DataReport,
        NearDeduplicator,
        PiiRedactor,
        QualityFilter,
        TextCleaner,
        Tokenize,
        python_docs,
    )
    from genarch.pipeline import Pipeline
    from genarch.schemas import Document

    started = time.perf_counter()
    print(f"genarch {__version__} quickstart: the end-to-end job on Python's own documentation")

    _heading("data: clean, filter, deduplicate, redact PII, chunk")
    documents = python_docs()
    print(f"loaded {len(documents)} documents, {sum(len(d.text) for d in documents):,} characters")
    # The docs hold no personal data, so one synthetic support ticket shows the redaction.
    ticket = Document(
        id="support-ticket",
        text="Hello, please call me back: Jane Doe, jane.doe@example.com, +44 20 7946 0958. "
        "I paid with card 4111 1111 1111 1111 and my account IBAN is GB82 WEST 1234 5698 7654 32.",
    )
    documents.append(ticket)
    print("added 1 synthetic support ticket with planted PII")
    corpus = Pipeline(
        [
            ("clean", TextCleaner()),
            ("quality", QualityFilter()),
            ("dedup", NearDeduplicator()),
            ("redact", PiiRedactor(mode="placeholder")),
        ]
    )
    run = corpus.run(documents)
    cleaned = run.collect()
    print(run.trace.summary())
    print(DataReport.from_trace(run.trace).summary())
    redacted = next(d for d in cleaned if d.id == "support-ticket")
    print(f"redacted ticket: {redacted.text}")
    cleaned = [d for d in cleaned if d.id != "support-ticket"]
    chunks = list(Chunker(max_tokens=200, overlap_tokens=20).process(cleaned))
    print(f"chunked into {len(chunks)} retrieval chunks with character offsets")

    _heading("tokenise: train a byte-level BPE vocabulary (tiktoken engine)")
    tick = time.perf_counter()
    tokenizer = BPETrainer(vocab_size=args.vocab_size, special_tokens=(END_OF_TEXT,)).train(cleaned)
    print(f"trained {tokenizer.vocab_size:,} tokens in {time.perf_counter() - tick:.2f} s")
    tokenized = list(Tokenize(tokenizer, append_special=END_OF_TEXT).process(cleaned))
    total = sum(len(t.token_ids) for t in tokenized)
    size = sum(len(d.text.encode("utf-8")) for d in cleaned)
    print(f"{total:,} tokens, {size / total:.2f} bytes per token")

    _heading("train: a small GPT on the tokenised docs, through genarch.training.Trainer")
    _train_and_sample(args, tokenizer, [t.token_ids for t in tokenized])

    _heading("answer: retrieval-augmented answers with citations (BM25 + extractive)")
    from genarch.orchestration import format_result, quickstart_answers

    for result in quickstart_answers(cleaned, QUESTIONS):
        print(format_result(result))
        print()

    _heading("done")
    print(f"finished in {time.perf_counter() - started:.1f} s")
    return 0


def _train_and_sample(
    args: argparse.Namespace, tokenizer: Any, token_rows: Sequence[Sequence[int]]
) -> None:
    import torch

    from genarch.models import GPT, GPTConfig, TextGenerator
    from genarch.schemas import TextRequest
    from genarch.training import LanguageModeling, Trainer, token_blocks

    torch.manual_seed(0)
    stream = [token for row in token_rows for token in row]
    cut = int(0.95 * len(stream))
    train_rows, held_out = token_blocks(stream[:cut], 64), token_blocks(stream[cut:], 64)
    model = GPT(
        GPTConfig(
            vocab_size=tokenizer.vocab_size, context_length=64, n_layer=2, n_head=2, n_embd=64
        )
    )
    trainer = Trainer(
        LanguageModeling(model),
        max_steps=args.train_steps,
        batch_size=32,
        optimizer={"learning_rate": 2e-3},
        schedule={"warmup_steps": min(20, args.train_steps // 10), "decay": "cosine"},
    )
    report = trainer.fit(train_rows, eval_data=held_out)
    held_out_loss = f"{report.eval_loss[-1][1]:.3f}" if report.eval_loss else "n/a"
    print(
        f"{model.num_parameters():,} parameters, {report.steps} steps in {report.wall_seconds:.1f} s, "
        f"{report.items_per_second:,.0f} tokens/s; held-out loss {held_out_loss}"
    )
    generator = TextGenerator(model, tokenizer)
    request = TextRequest(prompt="The list", max_new_tokens=40, temperature=0.8, top_k=40, seed=0)
    print(f"sample: {request.prompt}{generator.generate(request).text}")


def _quickstart_images(args: argparse.Namespace) -> int:
    from pathlib import Path

    from genarch.models.diffusion import quickstart_images

    started = time.perf_counter()
    print(f"genarch {__version__} quickstart: a class-conditional diffusion model on 8x8 digits")
    out = Path(args.out)
    path = quickstart_images(out, seconds=args.seconds)
    print(f"model saved in {out / 'model'}; one row per digit 0-9 written to {path}")
    print(f"finished in {time.perf_counter() - started:.1f} s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    parser = argparse.ArgumentParser(
        prog="genarch", description="Typed building blocks for generative-AI systems."
    )
    parser.add_argument("--version", action="version", version=f"genarch {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress (INFO level)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    quickstart = commands.add_parser(
        "quickstart", help="run the smallest real end-to-end job on Python's documentation"
    )
    quickstart.add_argument(
        "--vocab-size", type=int, default=4096, help="BPE vocabulary size (default 4096)"
    )
    quickstart.add_argument(
        "--train-steps",
        type=int,
        default=150,
        help="training steps for the small GPT (default 150)",
    )
    quickstart.add_argument(
        "--modality",
        choices=("text", "image"),
        default="text",
        help="text: the Python-docs job (default); image: train a conditional diffusion model on digits",
    )
    quickstart.add_argument(
        "--out",
        default="genarch-quickstart",
        help="where --modality image writes (default ./genarch-quickstart)",
    )
    quickstart.add_argument(
        "--seconds",
        type=float,
        default=90.0,
        help="training time for --modality image (default 90)",
    )
    quickstart.set_defaults(handler=_quickstart)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``genarch`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s"
    )
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 2
    from genarch.errors import GenarchError

    try:
        result: int = args.handler(args)
    except GenarchError as error:
        print(f"genarch: error: {error}", file=sys.stderr)
        return 1
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
