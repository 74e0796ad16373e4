"""Serving throughput: genarch's HTTP server with and without batching, against a plain peer.

16 concurrent clients (``httpx.AsyncClient``) send a fixed number of
``POST /v1/completions`` requests (mixed prompt lengths: 8, 32, 96 and 160
tokens; 64 new tokens each, greedy) over loopback to four servers, measured
alternately in the same run:

* ``batching_on``: ``genarch``'s server (``create_app`` over a
  ``GenerationService``) with ``max_batch=16`` and ``max_wait_ms=50``, with
  continuous batching (its default);
* ``micro_batches``: the same with ``continuous_batching=False``: each
  micro-batch is one ``generate_batch`` call;
* ``batching_off``: the same server with ``max_batch=1``;
* ``peer``: a plain FastAPI app calling ``transformers`` ``generate`` (KV
  cache) one request at a time (a lock around the call).

The three genarch servers run in one process, the peer in another. A second
load, ``mixed_lengths``, asks for 16, 64 or 128 new tokens per request (the
same prompts) from ``batching_on`` and ``micro_batches``: there a finished
request frees its slot at once under continuous batching, while a
micro-batch lasts as long as its longest request.

All three serve the same GPT-2-shaped model (6 layers, 6 heads, width 384,
vocabulary 8192, context 512, random weights from one seed: genarch loads the
``GPT2LMHeadModel``'s checkpoint with ``load_hf_gpt2``). Prompts are token ids
written as text, so every engine sees the same ids; the texts the three return
are compared.

Prints the versions, requests/s (median over the repeats, min-max), p50/p99
latency over every request, the ratios, the cache-hit latency of the batching
server (its response cache is on; load prompts are never repeated, so the load
never hits it), and as its last line one JSON object with every figure.

Run: ``python benchmarks/bench_serve.py [--quick] [--threads 2]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from genarch.models import load_hf_gpt2

sys.path.insert(0, str(Path(__file__).parent))
from _timing import summary, version

VOCAB, LAYERS, HEADS, WIDTH, CONTEXT = 8192, 6, 6, 384, 512
NEW_TOKENS, CONCURRENCY = 64, 16
MIXED_NEW_TOKENS = (16, 64, 128)  # the mixed_lengths load: requests of very different lengths
MAX_WAIT_MS = 50.0  # the micro-batch window: long enough for 16 clients' requests to meet
PROMPT_LENGTHS = (8, 32, 96, 160)
MODEL = "gpt2-shaped"


class IdTokenizer:
    """Token ids written as text ("12 7 99"), so every engine sees the same ids."""

    vocab_size = VOCAB

    def encode(self, text: str) -> list[int]:
        return [int(word) for word in text.split()]

    def decode(self, token_ids: Sequence[int]) -> str:
        return "".join(f" {token}" for token in token_ids)


def save_model(directory: Path) -> None:
    """A randomly initialised GPT2LMHeadModel (seed 0), saved as a checkpoint."""
    import transformers

    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=VOCAB,
        n_positions=CONTEXT,
        n_embd=WIDTH,
        n_layer=LAYERS,
        n_head=HEADS,
        bos_token_id=None,  # no end-of-text token: every engine generates exactly NEW_TOKENS
        eos_token_id=None,
        attn_implementation="sdpa",
    )
    transformers.GPT2LMHeadModel(config).eval().save_pretrained(directory)


# ----------------------------------------------------------------- the servers


def genarch_app(weights: Path, max_batch: int, continuous: bool = True) -> Any:
    from genarch.deploy import GenerationService, create_app
    from genarch.models import TextGenerator

    generator = TextGenerator(load_hf_gpt2(weights).eval(), IdTokenizer())
    service = GenerationService(
        generator,
        max_batch=max_batch,
        max_wait_ms=MAX_WAIT_MS,
        continuous_batching=continuous,
        max_new_tokens=max(MIXED_NEW_TOKENS),
        max_prompt_tokens=CONTEXT,
        cache_bytes=16_000_000,
    )
    return create_app(service, model_name=MODEL, tokenizer=IdTokenizer())


def peer_app(weights: Path) -> Any:
    """A plain FastAPI app: one ``generate`` call at a time, the way a first server is written."""
    import transformers
    from fastapi import FastAPI

    transformers.logging.set_verbosity_error()
    model = transformers.GPT2LMHeadModel.from_pretrained(weights).eval()
    lock = threading.Lock()
    app = FastAPI()

    @app.post("/v1/completions")
    def completions(body: dict[str, Any]) -> dict[str, Any]:
        ids = torch.tensor([[int(word) for word in body["prompt"].split()]])
        new = int(body.get("max_tokens", 16))
        with lock, torch.inference_mode():
            output = model.generate(
                ids, max_new_tokens=new, min_new_tokens=new, do_sample=False, pad_token_id=0
            )
        text = "".join(f" {token}" for token in output[0, ids.shape[1] :].tolist())
        return {"object": "text_completion", "choices": [{"index": 0, "text": text}]}

    @app.get("/readyz")  # the model is loaded before the app is made
    def readyz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def run_server(kind: str, weights: Path, ports: list[int], threads: int) -> None:
    """``peer``: the peer on ``ports[0]``; ``genarch``: continuous batching at ``ports[0]``,
    micro-batches at ``ports[1]``, batching off at ``ports[2]``.

    The genarch servers share one process (each with its own model and worker
    thread; only one is under load at a time), to start faster.
    """
    import uvicorn

    torch.set_num_threads(threads)
    if kind == "peer":
        apps = [peer_app(weights)]
    else:
        apps = [genarch_app(weights, 16), genarch_app(weights, 16, False), genarch_app(weights, 1)]
    servers = [
        uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        for app, port in zip(apps, ports, strict=True)
    ]

    async def serve_all() -> None:
        await asyncio.gather(*(server.serve() for server in servers))

    asyncio.run(serve_all())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start(
    kind: str, weights: Path, threads: int, log: Path
) -> tuple[subprocess.Popen[bytes], list[str]]:
    ports = [free_port() for _ in range(1 if kind == "peer" else 3)]
    command = [sys.executable, __file__, "--serve", kind, "--weights", str(weights)]
    command += ["--ports", ",".join(map(str, ports)), "--threads", str(threads)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=out, env=env)
    return process, [f"http://127.0.0.1:{port}" for port in ports]


def wait_ready(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    import httpx

    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{url}/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"the server did not start:\n{log.read_text()}")
        time.sleep(0.2)


# ----------------------------------------------------------------- the load


def prompts(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    lengths = [PROMPT_LENGTHS[i % len(PROMPT_LENGTHS)] for i in range(count)]
    rng.shuffle(lengths)
    return [" ".join(str(rng.randrange(VOCAB)) for _ in range(n)) for n in lengths]


async def load(
    url: str, texts: list[str], new_tokens: int | Sequence[int] = NEW_TOKENS
) -> tuple[float, list[float], list[str]]:
    """``(seconds, latency per request, text per request)`` with CONCURRENCY clients.

    ``new_tokens``: for every request, or one count per request.
    """
    counts = [new_tokens] * len(texts) if isinstance(new_tokens, int) else list(new_tokens)
    import httpx

    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(len(texts)):
        queue.put_nowait(index)
    latencies, outputs = [0.0] * len(texts), [""] * len(texts)
    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:

        async def one_client() -> None:
            while not queue.empty():
                index = queue.get_nowait()
                body = {
                    "model": MODEL,
                    "prompt": texts[index],
                    "max_tokens": counts[index],
                    "temperature": 0,
                }
                started = time.perf_counter()
                response = await client.post(f"{url}/v1/completions", json=body)
                latencies[index] = time.perf_counter() - started
                response.raise_for_status()
                outputs[index] = response.json()["choices"][0]["text"]
                if len(outputs[index].split()) != counts[index]:
                    raise RuntimeError(f"{url} returned {len(outputs[index].split())} tokens")

        started = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(CONCURRENCY)))
        return time.perf_counter() - started, latencies, outputs


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def cache_hit_latency(url: str, prompt: str, times: int = 5) -> float:
    """Median latency of a greedy request the server has already answered."""
    import httpx

    body = {"model": MODEL, "prompt": prompt, "max_tokens": NEW_TOKENS, "temperature": 0}
    with httpx.Client(timeout=600) as client:
        client.post(f"{url}/v1/completions", json=body).raise_for_status()  # cached now
        latencies = []
        for _ in range(times):
            started = time.perf_counter()
            client.post(f"{url}/v1/completions", json=body).raise_for_status()
            latencies.append(time.perf_counter() - started)
    return statistics.median(latencies)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="48 requests, one repeat")
    parser.add_argument("--threads", type=int, default=2, help="torch threads per server")
    parser.add_argument("--requests", type=int, default=None, help="requests per measurement")
    parser.add_argument("--repeats", type=int, default=None, help="measurements per server")
    parser.add_argument("--serve", help=argparse.SUPPRESS)  # internal: run one server
    parser.add_argument("--weights", help=argparse.SUPPRESS)
    parser.add_argument("--ports", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        ports = [int(port) for port in args.ports.split(",")]
        run_server(args.serve, Path(args.weights), ports, args.threads)
        return {}
    requests = args.requests or (3 * CONCURRENCY if args.quick else 96)
    repeats = args.repeats or (1 if args.quick else 3)
    try:
        import transformers  # noqa: F401 - the peer and the checkpoint need it
    except ImportError:
        print("transformers is not installed: this benchmark needs it for the model and the peer")
        raise SystemExit(1) from None

    versions = {
        "python": platform.python_version(),
        "genarch": version("genarch"),
        "torch": torch.__version__,
        "transformers": version("transformers"),
        "fastapi": version("fastapi"),
        "uvicorn": version("uvicorn"),
        "httpx": version("httpx"),
        "threads_per_server": args.threads,
        "cpus": os.cpu_count(),
    }
    print("versions:", json.dumps(versions))
    print(
        f"{requests} requests x {repeats} repeats, {CONCURRENCY} concurrent clients, "
        f"prompts of {PROMPT_LENGTHS} tokens, {NEW_TOKENS} new tokens, greedy; "
        f"genarch max_wait_ms={MAX_WAIT_MS}"
    )
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        save_model(root / "weights")
        processes = {
            kind: start(kind, root / "weights", args.threads, root / f"{kind}.log")
            for kind in ("genarch", "peer")
        }
        (genarch, (on_url, micro_url, off_url)), (peer, (peer_url,)) = processes.values()
        servers = {
            "batching_on": on_url,
            "micro_batches": micro_url,
            "batching_off": off_url,
            "peer": peer_url,
        }
        mixed_servers = {"batching_on": on_url, "micro_batches": micro_url}
        try:
            for kind, (process, urls) in processes.items():
                for url in urls:
                    wait_ready(process, url, root / f"{kind}.log")
            print(f"servers up after {time.perf_counter() - began:.1f} s")
            for url in servers.values():  # warm up: every code path, briefly
                asyncio.run(load(url, prompts(CONCURRENCY, seed=10_000), new_tokens=4))
            throughput: dict[str, list[float]] = {name: [] for name in servers}
            latencies: dict[str, list[float]] = {name: [] for name in servers}
            mixed: dict[str, list[float]] = {name: [] for name in mixed_servers}
            mixed_latencies: dict[str, list[float]] = {name: [] for name in mixed_servers}
            same_text, same_as_peer = True, True
            for repeat in range(repeats):
                texts = prompts(requests, seed=repeat)  # new prompts: the cache never hits
                outputs = {}
                for name, url in servers.items():
                    seconds, latency, outputs[name] = asyncio.run(load(url, texts))
                    throughput[name].append(requests / seconds)
                    latencies[name] += latency
                    print(f"  repeat {repeat}: {name:13s} {requests / seconds:7.2f} requests/s")
                same_text &= outputs["batching_on"] == outputs["batching_off"]
                same_text &= outputs["batching_on"] == outputs["micro_batches"]
                same_as_peer &= outputs["batching_on"] == outputs["peer"]
                lengths = [MIXED_NEW_TOKENS[i % len(MIXED_NEW_TOKENS)] for i in range(requests)]
                random.Random(repeat).shuffle(lengths)
                for name, url in mixed_servers.items():
                    seconds, latency, outputs[name] = asyncio.run(load(url, texts, lengths))
                    mixed[name].append(requests / seconds)
                    mixed_latencies[name] += latency
                    print(
                        f"  repeat {repeat}: mixed lengths, {name:13s} {requests / seconds:7.2f} requests/s"
                    )
                same_text &= outputs["batching_on"] == outputs["micro_batches"]
            hit = cache_hit_latency(on_url, prompts(1, seed=20_000)[0])
        finally:
            for process in (genarch, peer):
                process.kill()  # the benchmark needs no graceful shutdown
                process.wait()

    print(f"done after {time.perf_counter() - began:.1f} s")
    figures: dict[str, Any] = {"versions": versions, "requests": requests, "repeats": repeats}
    for name in servers:
        figures[name] = {
            "requests_per_s": summary(throughput[name]),
            "p50_ms": 1000 * percentile(latencies[name], 0.5),
            "p99_ms": 1000 * percentile(latencies[name], 0.99),
        }
        row = figures[name]
        rps = row["requests_per_s"]
        print(
            f"{name:13s} {rps['median']:7.2f} requests/s ({rps['min']:.2f}-{rps['max']:.2f})  "
            f"p50 {row['p50_ms']:7.0f} ms  p99 {row['p99_ms']:7.0f} ms"
        )
    figures["mixed_lengths"] = {
        name: {
            "requests_per_s": summary(mixed[name]),
            "p50_ms": 1000 * percentile(mixed_latencies[name], 0.5),
            "p99_ms": 1000 * percentile(mixed_latencies[name], 0.99),
        }
        for name in mixed_servers
    }
    for name, row in figures["mixed_lengths"].items():
        rps = row["requests_per_s"]
        print(
            f"mixed lengths, {name:13s} {rps['median']:7.2f} requests/s "
            f"({rps['min']:.2f}-{rps['max']:.2f})  p50 {row['p50_ms']:7.0f} ms  "
            f"p99 {row['p99_ms']:7.0f} ms"
        )
    on = figures["batching_on"]["requests_per_s"]["median"]
    figures["on_over_off"] = on / figures["batching_off"]["requests_per_s"]["median"]
    figures["on_over_peer"] = on / figures["peer"]["requests_per_s"]["median"]
    figures["continuous_over_micro"] = on / figures["micro_batches"]["requests_per_s"]["median"]
    mixed_rows = figures["mixed_lengths"]
    figures["mixed_continuous_over_micro"] = (
        mixed_rows["batching_on"]["requests_per_s"]["median"]
        / mixed_rows["micro_batches"]["requests_per_s"]["median"]
    )
    figures["cache_hit_ms"] = 1000 * hit
    figures["same_text_batching_on_and_off"] = same_text
    figures["same_text_as_peer"] = same_as_peer
    figures["goals_met"] = {
        "on_over_off_>=_3": figures["on_over_off"] >= 3,
        "on_over_peer_>=_4": figures["on_over_peer"] >= 4,
    }
    print(
        f"batching on / off: {figures['on_over_off']:.2f}x (goal 3x); "
        f"on / peer: {figures['on_over_peer']:.2f}x (goal 4x); "
        f"continuous / micro-batches: {figures['continuous_over_micro']:.2f}x, "
        f"with mixed lengths {figures['mixed_continuous_over_micro']:.2f}x; "
        f"cache hit {figures['cache_hit_ms']:.1f} ms; same text on/off: {same_text}, "
        f"as the peer: {same_as_peer}"
    )
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
