"""The ``genarch`` command line: ``genarch --version``, ``genarch quickstart``."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence

from genarch._version import __version__

__all__ = ["main"]


def _quickstart(args: argparse.Namespace) -> int:
    from genarch.data import TextCleaner, python_docs
    from genarch.pipeline import Pipeline

    started = time.perf_counter()
    documents = python_docs()
    print(f"genarch {__version__} quickstart: the end-to-end job on Python's own documentation")
    print(f"loaded {len(documents)} documents, {sum(len(d.text) for d in documents):,} characters")

    pipeline = Pipeline([("clean", TextCleaner())])
    run = pipeline.run(documents)
    cleaned = run.collect()
    words = sum(len(d.text.split()) for d in cleaned)
    characters = sum(len(d.text) for d in cleaned)
    print(f"cleaned: {len(cleaned)} documents, {characters:,} characters, {words:,} words")
    print()
    print(run.trace.summary())
    print()
    print(f"done in {time.perf_counter() - started:.2f} s")
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
