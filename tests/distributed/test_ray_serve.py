"""genarch's server as a Ray Serve deployment, on the session's local Ray.

The `openai` client on loopback gets the same greedy completions and chat
answers from Ray Serve as from `genarch serve` on the same artefact.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

pytest.importorskip(
    "ray.serve", reason="the ray extra is not installed: pip install 'genarch[ray]'"
)

from deploy.test_http import MODEL, free_port, package, start_server, stop_server
from genarch.distributed.serving import RayServeConfig, ray_serve_app
from genarch.errors import ConfigError

PROMPTS = ["def ", "The quick brown fox", "import os\n", "x = [1, 2"]


def completions(base_url: str) -> list[str]:
    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0)
    texts = [
        client.completions.create(model=MODEL, prompt=p, max_tokens=12, temperature=0)
        .choices[0]
        .text
        for p in PROMPTS
    ]
    chat = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hello"}], max_tokens=8, temperature=0
    )
    return [*texts, chat.choices[0].message.content or ""]


@pytest.fixture(scope="module")
def artefact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    generator_dir, _ = package(tmp_path_factory.mktemp("ray-serve"))
    return generator_dir


@pytest.fixture(scope="module")
def ray_serve_url(local_ray: object, artefact: Path) -> Iterator[str]:
    from ray import serve

    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    app = ray_serve_app(str(artefact), num_replicas=1, num_cpus=0.5, service={"max_wait_ms": 1})
    serve.run(app, name="genarch-test", route_prefix="/")
    yield f"http://127.0.0.1:{port}/v1"
    serve.shutdown()


def test_ray_serve_answers_as_genarch_serve_does(
    ray_serve_url: str, artefact: Path, tmp_path: Path
) -> None:
    process, url = start_server(tmp_path, str(artefact))
    try:
        expected = completions(f"{url}/v1")
    finally:
        stop_server(process)
    assert completions(ray_serve_url) == expected
    client = openai.OpenAI(base_url=ray_serve_url, api_key="unused", max_retries=0)
    assert [m.id for m in client.models.list().data] == [MODEL]
    with pytest.raises(openai.BadRequestError):  # the same caps and errors
        client.completions.create(model=MODEL, prompt="a", max_tokens=10**6)


def test_ray_serve_config_is_checked() -> None:
    with pytest.raises(ConfigError):
        RayServeConfig(num_replicas=0)
    with pytest.raises(ConfigError, match="min_replicas"):
        RayServeConfig(autoscaling={"min_replicas": 3, "max_replicas": 2})
    with pytest.raises(ConfigError, match="reference"):
        ray_serve_app("")


def test_a_killed_replica_is_replaced_and_answers_the_same(ray_serve_url: str) -> None:
    import ray

    before = completions(ray_serve_url)
    replicas = [
        actor
        for actor in ray.util.list_named_actors(all_namespaces=True)
        if actor["name"].startswith("SERVE_REPLICA::") and "genarch-test" in actor["name"]
    ]
    assert len(replicas) == 1, replicas
    ray.kill(ray.get_actor(replicas[0]["name"], namespace=replicas[0]["namespace"]))
    deadline = time.monotonic() + 120
    while True:  # Ray Serve's controller notices the dead replica and starts another
        try:
            after = completions(ray_serve_url)
            break
        except openai.APIError:
            assert time.monotonic() < deadline, "no replica answered within 120 s"
            time.sleep(0.5)
    assert after == before
