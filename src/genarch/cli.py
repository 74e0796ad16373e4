"""The ``genarch`` command line: ``genarch --version``, ``quickstart``, ``serve`` and ``keys``."""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from genarch._version import __version__
from genarch.quickstart_report import QUICKSTART_SETTINGS

__all__ = ["main"]


END_OF_TEXT = "<|endoftext|>"
QUESTIONS = (
    "What does the pass statement do?",
    "Do dictionaries keep the order keys were inserted?",
    "What does str.partition return?",
    "How many moons does Jupiter have?",
)


def _one_line(text: str) -> str:
    """``text`` on one line: every line break (``str.splitlines`` knows eleven) as `` / ``."""
    return " / ".join(text.splitlines())


def _quickstart(args: argparse.Namespace) -> int:
    if args.modality == "image":
        return _quickstart_images(args)
    from pathlib import Path

    from genarch.data import (
        BPETrainer,
        DataReport,
        Tokenize,
        python_docs,
        quickstart_corpus,
    )
    from genarch.orchestration.quickstart import quickstart_chunker
    from genarch.quickstart_report import (
        Printer,
        quickstart_settings,
        write_run_folder,
    )
    from genarch.schemas import Document

    started = time.perf_counter()
    say = Printer(quiet=args.quiet)
    # before the work: a bad flag fails at once
    writer, writer_name = _answer_writer(args)
    encoder, cache = _answer_encoder(args, say)
    settings = quickstart_settings(
        full=args.full, vocab_size=args.vocab_size, train_steps=args.train_steps
    )
    out = Path(args.out or f"runs/quickstart-{time.strftime('%Y%m%d-%H%M%S')}")
    say(f"genarch {__version__} quickstart: the end-to-end job on Python's own documentation")

    say.heading("data: clean, filter, deduplicate, redact PII, chunk")
    documents = python_docs()
    say(f"loaded {len(documents)} documents, {sum(len(d.text) for d in documents):,} characters")
    # The docs hold no personal data, so one synthetic support ticket shows the redaction.
    ticket = Document(
        id="support-ticket",
        text="Hello, please call me back: Jane Doe, jane.doe@example.com, +44 20 7946 0958. "
        "I paid with card 4111 1111 1111 1111 and my account IBAN is GB82 WEST 1234 5698 7654 32.",
    )
    documents.append(ticket)
    say("added 1 synthetic support ticket with planted PII")
    corpus = quickstart_corpus()
    run = corpus.run(documents)
    cleaned = run.collect()
    data_report = DataReport.from_trace(run.trace)
    say(run.trace.summary())
    say(data_report.summary())
    redacted = next(d for d in cleaned if d.id == "support-ticket")
    say(f"redacted ticket: {redacted.text}")
    cleaned = [d for d in cleaned if d.id != "support-ticket"]
    chunks = list(quickstart_chunker().process(cleaned))
    say(f"chunked into {len(chunks)} retrieval chunks with character offsets")

    say.heading("tokenise: train a byte-level BPE vocabulary (tiktoken engine)")
    tick = time.perf_counter()
    tokenizer = BPETrainer(vocab_size=settings["vocab_size"], special_tokens=(END_OF_TEXT,)).train(
        cleaned
    )
    bpe_seconds = time.perf_counter() - tick
    say(f"trained {tokenizer.vocab_size:,} tokens in {bpe_seconds:.2f} s")
    tokenized = list(Tokenize(tokenizer, append_special=END_OF_TEXT).process(cleaned))
    total = sum(len(t.token_ids) for t in tokenized)
    size = sum(len(d.text.encode("utf-8")) for d in cleaned)
    say(f"{total:,} tokens, {size / total:.2f} bytes per token")

    say.heading("train: a small GPT on the tokenised docs, through genarch.training.Trainer")
    training, report, sample = _train_and_sample(
        args, settings, tokenizer, [t.token_ids for t in tokenized], say
    )

    from genarch.orchestration import format_result, quickstart_answers

    say.heading(f"answer: retrieval-augmented answers with citations ({writer_name})")
    try:
        results = quickstart_answers(
            cleaned,
            QUESTIONS,
            generator=writer,
            encoder=encoder,
            # the question adapter fitted on Python's documentation, with MiniLM
            # (not the answer gate: on the test batches it gained nothing, see the
            # RAG tutorial)
            adapter=None if encoder == "minilm" else "python-docs",
        )
    finally:
        if writer is not None:
            writer.close()
        if cache is not None:
            cache.close()
    if cache is not None:
        say(
            f"embeddings: {cache.stats.misses:,} computed, {cache.stats.hits:,} read back "
            f"from {cache.path}"
        )
    answers_text = [format_result(result) for result in results]
    for text in answers_text:
        say(text)
        say()

    path = write_run_folder(
        out,
        data_report={**data_report.model_dump(mode="json"), "summary": data_report.summary()},
        tokenizer={
            "vocab_size": tokenizer.vocab_size,
            "tokens": total,
            "bytes": size,
            "bytes_per_token": size / total,
            "train_seconds": bpe_seconds,
        },
        training=training,
        train_loss=report.train_loss,
        eval_loss=[(report.steps, training["held_out_loss_nats_per_token"])],
        sample=sample,
        answers=[result.model_dump(mode="json") for result in results],
        answers_text=answers_text,
    )
    say.heading("done")
    print(
        f"held-out {training['bits_per_byte']:.3f} bits per byte, perplexity "
        f"{training['perplexity']:.1f} per token; training {training['wall_seconds']:.1f} s wall, "
        f"{training['cpu_seconds']:.1f} s CPU"
    )
    if args.quiet:
        print(f"sample: {_one_line(sample)}")
    print(f"finished in {time.perf_counter() - started:.1f} s")
    print(f"run report: {path}")
    return 0


def _answer_encoder(args: argparse.Namespace, say: Any) -> tuple[Any, Any]:
    """The sentence encoder of the answer stage and the cache it embeds through.

    MiniLM behind a :class:`~genarch.features.CachedExtractor`, so a second run
    reads the corpus's vectors back instead of embedding it again; without the
    ``embeddings`` extra, ``"minilm"`` (the answers then use words only).
    ``--no-embedding-cache`` embeds everything anew. A default cache that cannot
    be opened is skipped with a line saying so; one given with
    ``--embedding-cache`` is an error.
    """
    import sqlite3
    from pathlib import Path

    from genarch.errors import InvalidInputError, MissingDependencyError
    from genarch.features import CachedExtractor, default_embedding_cache, load_minilm

    try:
        minilm = load_minilm()
    except MissingDependencyError:
        return "minilm", None  # quickstart_rag logs that the answers use words only
    if args.no_embedding_cache:
        return minilm, None
    path = Path(args.embedding_cache) if args.embedding_cache else default_embedding_cache()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        cache = CachedExtractor(minilm, path)
    except (OSError, sqlite3.Error) as error:
        if args.embedding_cache:
            raise InvalidInputError(
                f"--embedding-cache {path}: cannot open it as a SQLite file ({error}); "
                "give a writable path, or --no-embedding-cache"
            ) from None
        say(f"embedding cache {path} cannot be opened ({error}): embedding without it")
        return minilm, None
    return cache, cache


def _answer_writer(args: argparse.Namespace) -> tuple[Any, str]:
    """What writes the quickstart's answers: ``(None, "extractive")`` or an LLM client."""
    import os

    from genarch.errors import InvalidInputError

    if args.llm_url is None:
        if args.llm_model is not None:
            raise InvalidInputError("--llm-model needs --llm-url (the server's API root)")
        return None, (
            "extractive; with the embeddings extra, hybrid BM25 + MiniLM retrieval and "
            "MiniLM with the Python-docs question adapter"
        )
    if not args.llm_model:
        raise InvalidInputError(
            f"--llm-url {args.llm_url} needs --llm-model NAME (a model id the server lists "
            "at GET /v1/models)"
        )
    from genarch.deploy import OpenAICompatibleGenerator

    key = os.environ.get(args.llm_api_key_env) if args.llm_api_key_env else None
    client = OpenAICompatibleGenerator(args.llm_url, model=args.llm_model, api_key=key)
    return client, f"{args.llm_model} at {args.llm_url}"


def _train_and_sample(
    args: argparse.Namespace,
    settings: dict[str, Any],
    tokenizer: Any,
    token_rows: Sequence[Sequence[int]],
    say: Any,
) -> tuple[dict[str, Any], Any, str]:
    """Train the GPT and count the n-grams of the same tokens; return the figures (held-out
    bits per byte and perplexity of the GPT, the counts and their mixture; times), the
    trainer's report and the mixture's sample."""
    import math

    import torch

    from genarch.models import GPT, GPTConfig, Interpolation, NGramLM, TextGenerator
    from genarch.models.perplexity import token_log_probs
    from genarch.quickstart_report import SAMPLE
    from genarch.schemas import TextRequest
    from genarch.training import LanguageModeling, Trainer, token_blocks

    torch.manual_seed(0)
    stream = [token for row in token_rows for token in row]
    cut = int(0.95 * len(stream))
    context = settings["context_length"]
    train_rows, held_out = token_blocks(stream[:cut], context), stream[cut:]
    model = GPT(
        GPTConfig(
            vocab_size=tokenizer.vocab_size,
            context_length=context,
            n_layer=settings["n_layer"],
            n_head=settings["n_head"],
            n_embd=settings["n_embd"],
            dropout=settings["dropout"],
        )
    )
    steps = settings["train_steps"]
    trainer = Trainer(
        LanguageModeling(model),
        max_steps=steps,
        batch_size=settings["batch_size"],
        optimizer={
            "learning_rate": settings["learning_rate"],
            "weight_decay": settings["weight_decay"],
        },
        schedule={"warmup_steps": settings["warmup_steps"], "decay": "cosine", "min_factor": 0.1},
        progress=not args.quiet,
    )
    wall, cpu = time.perf_counter(), time.process_time()
    report = trainer.fit(train_rows)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    # The count model: every n-gram of the same training tokens, counted in a second or two.
    tick_wall, tick_cpu = time.perf_counter(), time.process_time()
    counts = NGramLM(tokenizer.vocab_size, order=settings["ngram_order"]).fit([stream[:cut]])
    count_wall = time.perf_counter() - tick_wall
    wall, cpu = wall + count_wall, cpu + time.process_time() - tick_cpu
    mixture = Interpolation(counts, weight=settings["ngram_weight"])
    # Held out, token by token: the GPT (sliding windows), the counts, and their mixture.
    model_nats = -token_log_probs(model, torch.tensor(held_out))
    count_nats = -counts.token_log_probs(held_out)
    weight = mixture.weight
    mixed_nats = -torch.log((1 - weight) * (-model_nats).exp() + weight * (-count_nats).exp())
    # bits per byte: the held-out text's total code length over its UTF-8 size (tokenizer-free).
    held_bytes = len(tokenizer.decode(held_out).replace(END_OF_TEXT, "").encode("utf-8"))

    def bits_per_byte(nats: torch.Tensor) -> float:
        return float(nats.sum()) / (math.log(2) * max(held_bytes, 1))

    mixed_loss = float(mixed_nats.mean())
    say(
        f"{model.num_parameters():,} parameters, {report.steps} steps in {wall - count_wall:.1f} s, "
        f"{report.items_per_second:,.0f} tokens/s; {settings['ngram_order']}-gram counts "
        f"in {count_wall:.1f} s"
    )
    say(
        f"held out, bits per byte: GPT {bits_per_byte(model_nats):.3f}, "
        f"{settings['ngram_order']}-gram {bits_per_byte(count_nats):.3f}, "
        f"mixed ({1 - weight:g} GPT + {weight:g} counts) {bits_per_byte(mixed_nats):.3f}"
    )
    generator = TextGenerator(model, tokenizer, interpolation=mixture)
    request = TextRequest(**SAMPLE)
    sample = f"{request.prompt}{generator.generate(request).text}"
    say(
        f"sampling {request.max_new_tokens} tokens from the mixture at temperature "
        f"{request.temperature}, top-k {request.top_k}"
    )
    say(f"sample: {_one_line(sample)}")
    training = {
        **settings,
        "parameters": model.num_parameters(),
        "steps": report.steps,
        "wall_seconds": round(wall, 2),
        "cpu_seconds": round(cpu, 2),
        "ngram_seconds": round(count_wall, 2),
        "held_out_tokens": len(mixed_nats),
        "held_out_bytes": held_bytes,
        "held_out_loss_nats_per_token": round(mixed_loss, 4),
        "bits_per_byte": round(bits_per_byte(mixed_nats), 4),
        "perplexity": round(math.exp(mixed_loss), 2),
        "gpt_bits_per_byte": round(bits_per_byte(model_nats), 4),
        "gpt_perplexity": round(math.exp(float(model_nats.mean())), 2),
        "ngram_bits_per_byte": round(bits_per_byte(count_nats), 4),
        "sample_temperature": request.temperature,
        "sample_top_k": request.top_k,
    }
    return training, report, sample


def _quickstart_images(args: argparse.Namespace) -> int:
    from pathlib import Path

    from genarch.models.diffusion import quickstart_images

    started = time.perf_counter()
    print(f"genarch {__version__} quickstart: a class-conditional diffusion model on 8x8 digits")
    out = Path(args.out or "genarch-quickstart")
    path = quickstart_images(out, seconds=args.seconds)
    print(f"model saved in {out / 'model'}; one row per digit 0-9 written to {path}")
    print(f"finished in {time.perf_counter() - started:.1f} s")
    return 0


LOOPBACK = ("127.0.0.1", "::1", "localhost")


def _load_verified(reference: str, registry_root: str | None) -> Any:
    """The verified component of an artefact directory or a ``name@alias`` reference."""
    from genarch.deploy.model_registry import load_verified
    from genarch.models import TextGenerator
    from genarch.registry import builtin_registry

    components = builtin_registry().register("genarch.TextGenerator", TextGenerator)
    return load_verified(reference, components, registry_root=registry_root)


def _serve(args: argparse.Namespace) -> int:
    from genarch.deploy.http_startup import LoadingApp
    from genarch.errors import InvalidInputError, missing_dependency

    try:
        import uvicorn
    except ImportError:
        raise missing_dependency("uvicorn", "serve", "genarch serve") from None
    if args.host not in LOOPBACK and args.api_keys is None:
        raise InvalidInputError(
            f"--host {args.host} serves beyond this machine: give --api-keys FILE "
            "(genarch keys create) so callers must authenticate"
        )
    if args.api_keys is None:
        print("genarch serve: no --api-keys: serving WITHOUT authentication", file=sys.stderr)
    # The port opens at once and answers 503 (model_loading) while the artefact is
    # verified and loaded in the background: a process manager sees the server alive
    # (/healthz) before it is ready (/readyz). A failed load stops the server.
    loading = LoadingApp()
    server = uvicorn.Server(
        uvicorn.Config(loading, host=args.host, port=args.port, log_level=args.log_level)
    )

    def load() -> None:
        try:
            app, version = _serving_app(args)
        except BaseException as error:  # re-raised by the main thread below
            loading.fail(error)
            server.should_exit = True
            return
        loading.serve(app, close=app.state.close_services)
        print(
            f"genarch serve: {version} ready on http://{args.host}:{args.port}",
            file=sys.stderr,
            flush=True,
        )

    threading.Thread(target=load, name="genarch-serve-load", daemon=True).start()
    # uvicorn turns SIGTERM/SIGINT into a graceful shutdown: it stops accepting, lets
    # in-flight requests finish, then the lifespan closes (drains) the services.
    server.run()
    if loading.error is not None:
        raise loading.error
    return 0


def _serving_app(args: argparse.Namespace) -> tuple[Any, str]:
    """The FastAPI app ``genarch serve`` serves, and the model version it loaded."""
    from genarch.deploy import ApiKeyStore, EmbeddingService, GenerationService, RateLimiter
    from genarch.deploy.http import create_app
    from genarch.deploy.metrics import MetricsRegistry
    from genarch.orchestration.chat_template import ChatTemplate

    keys = ApiKeyStore(args.api_keys) if args.api_keys else None
    limiter = None
    if args.requests_per_second is not None or args.tokens_per_second is not None:
        limiter = RateLimiter(
            requests_per_second=args.requests_per_second,
            request_burst=args.request_burst,
            tokens_per_second=args.tokens_per_second,
            token_burst=args.token_burst,
        )
    generator, name, version = _load_verified(args.reference, args.registry)
    metrics = MetricsRegistry()
    service = GenerationService(
        generator,
        keys=keys,
        limiter=limiter,
        metrics=metrics,
        model_version=version,
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        continuous_batching=not args.no_continuous_batching,
        max_new_tokens=args.max_new_tokens,
        max_prompt_tokens=args.max_prompt_tokens,
        max_body_bytes=args.max_body_bytes,
        cache_bytes=args.cache_bytes,
        redact_prompts=args.redact,
        redact_outputs=args.redact,
    )
    embeddings = None
    if args.embeddings is not None:
        extractor, _, embedding_version = _load_verified(args.embeddings, args.registry)
        embeddings = EmbeddingService(
            extractor,
            keys=keys,
            limiter=limiter,
            metrics=metrics,
            model_version=embedding_version,
            redact_inputs=args.redact,
        )
    feedback = None
    if args.feedback is not None:
        from genarch.feedback import SQLiteFeedbackStore

        feedback = SQLiteFeedbackStore(args.feedback)
    app = create_app(
        service,
        embeddings,
        feedback,
        model_name=args.model_name or name,
        keys=keys,
        chat_template=ChatTemplate(),
        tokenizer=getattr(generator, "tokenizer", None),
        close_on_shutdown=False,  # LoadingApp runs the lifespan: app.state.close_services
    )
    return app, version


def _keys(args: argparse.Namespace) -> int:
    from genarch.deploy import ApiKeyStore

    store = ApiKeyStore(args.file)
    if args.keys_command == "create":
        scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
        print(store.create_key(args.name, scopes))
        print("store this key now: it is not shown again", file=sys.stderr)
    elif args.keys_command == "revoke":
        revoked = store.revoke(args.name)
        print(f"revoked {revoked.name} ({revoked.id})")
    else:
        for key in store.keys():  # noqa: SIM118 - ApiKeyStore is not a dict
            state = "revoked" if key.revoked_at else "valid"
            print(f"{key.id}  {key.name}  {','.join(key.scopes)}  {state}")
    return 0


def _add_serve_commands(commands: Any) -> None:
    serve = commands.add_parser(
        "serve", help="serve an artefact over an OpenAI-compatible HTTP API (genarch[serve])"
    )
    serve.add_argument("reference", help="an artefact directory, or name@alias with --registry")
    serve.add_argument("--registry", help="the ModelRegistry root that name@alias is resolved in")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--api-keys", help="the API key file (genarch keys create); none: no auth")
    serve.add_argument("--embeddings", help="also serve this feature extractor at /v1/embeddings")
    serve.add_argument("--feedback", help="SQLite file that /v1/feedback records into")
    serve.add_argument(
        "--model-name", help="the model id clients use (default: the artefact's name)"
    )
    serve.add_argument("--max-batch", type=int, default=8, help="requests decoded together")
    serve.add_argument(
        "--max-wait-ms", type=float, default=5.0, help="wait for companions when idle (ms)"
    )
    serve.add_argument(
        "--no-continuous-batching",
        action="store_true",
        help="answer requests in micro-batches (generate_batch calls) instead",
    )
    serve.add_argument("--max-new-tokens", type=int, default=512, help="cap on max_tokens")
    serve.add_argument("--max-prompt-tokens", type=int, default=4096, help="cap on prompt tokens")
    serve.add_argument("--max-body-bytes", type=int, default=1_000_000, help="cap on body size")
    serve.add_argument("--cache-bytes", type=int, default=0, help="response cache (0: off)")
    serve.add_argument("--requests-per-second", type=float, help="per-key request rate")
    serve.add_argument("--request-burst", type=float, help="per-key request burst")
    serve.add_argument("--tokens-per-second", type=float, help="per-key token rate")
    serve.add_argument("--token-burst", type=float, help="per-key token burst")
    serve.add_argument("--redact", action="store_true", help="redact PII in prompts and outputs")
    serve.add_argument("--log-level", default="warning", help="uvicorn's log level")
    serve.set_defaults(handler=_serve)

    keys = commands.add_parser("keys", help="create, revoke or list API keys")
    actions = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="create a key and print it (once)")
    create.add_argument("name")
    create.add_argument(
        "--scopes", required=True, help="comma-separated: generate,embed,feedback,admin"
    )
    create.add_argument("--file", required=True, help="the API key file")
    revoke = actions.add_parser("revoke", help="revoke the valid key of NAME (or key id)")
    revoke.add_argument("name")
    revoke.add_argument("--file", required=True, help="the API key file")
    listing = actions.add_parser("list", help="list keys (never the keys themselves)")
    listing.add_argument("--file", required=True, help="the API key file")
    keys.set_defaults(handler=_keys)


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
        "--vocab-size",
        type=int,
        default=None,
        help=f"BPE vocabulary size (default {QUICKSTART_SETTINGS['default']['vocab_size']})",
    )
    quickstart.add_argument(
        "--train-steps",
        type=int,
        default=None,
        help=f"training steps for the small GPT (default {QUICKSTART_SETTINGS['default']['train_steps']}, "
        f"--full {QUICKSTART_SETTINGS['full']['train_steps']})",
    )
    quickstart.add_argument(
        "--full",
        action="store_true",
        help="train longer for a better model (several minutes instead of about 2)",
    )
    quickstart.add_argument(
        "--quiet", action="store_true", help="no progress lines: print only the final summary"
    )
    quickstart.add_argument(
        "--modality",
        choices=("text", "image"),
        default="text",
        help="text: the Python-docs job (default); image: train a conditional diffusion model on digits",
    )
    quickstart.add_argument(
        "--out",
        default=None,
        help="the run folder (default: runs/quickstart-TIMESTAMP for text, "
        "./genarch-quickstart for --modality image)",
    )
    quickstart.add_argument(
        "--llm-url",
        default=None,
        help="write the answers with a model behind this OpenAI-compatible API root "
        "(e.g. http://127.0.0.1:8000/v1: genarch serve, vLLM, llama.cpp) instead of "
        "extractive answers; citations and 'not in the sources' are kept",
    )
    quickstart.add_argument("--llm-model", default=None, help="the model id to ask, with --llm-url")
    caching = quickstart.add_mutually_exclusive_group()
    caching.add_argument(
        "--embedding-cache",
        default=None,
        help="the SQLite file that keeps the answer stage's MiniLM vectors between runs "
        "(default: embeddings.sqlite in $GENARCH_CACHE_DIR, $XDG_CACHE_HOME/genarch "
        "or ~/.cache/genarch)",
    )
    caching.add_argument(
        "--no-embedding-cache",
        action="store_true",
        help="embed the corpus anew, keeping no vectors",
    )
    quickstart.add_argument(
        "--llm-api-key-env",
        default="OPENAI_API_KEY",
        help="the environment variable holding the API key for --llm-url "
        "(default OPENAI_API_KEY; unset: no key is sent)",
    )
    quickstart.add_argument(
        "--seconds",
        type=float,
        default=90.0,
        help="training time for --modality image (default 90)",
    )
    quickstart.set_defaults(handler=_quickstart)
    _add_serve_commands(commands)
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
