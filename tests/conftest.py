"""Shared test settings: small, deterministic, quiet."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import torch
from hypothesis import HealthCheck, settings

# Two cores on CI: keep torch from oversubscribing when pytest runs alone.
torch.set_num_threads(min(2, os.cpu_count() or 1))

settings.register_profile(
    "genarch", deadline=None, max_examples=50, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("genarch")


@pytest.fixture(scope="session", autouse=True)
def cache_in_a_temporary_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Point genarch's cache (``default_embedding_cache``) at a folder of this
    session, so tests never write to the user's ``~/.cache`` (the quickstart's
    runs share its vectors, as a user's runs do)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GENARCH_CACHE_DIR", str(tmp_path_factory.mktemp("genarch-cache")))
        yield


@pytest.fixture(scope="session")
def minilm() -> object:
    """all-MiniLM-L6-v2, loaded once, or a skip when the embeddings extra is missing."""
    from genarch.errors import GenarchError
    from genarch.features import load_minilm

    try:
        return load_minilm()
    except GenarchError as error:
        pytest.skip(f"all-MiniLM-L6-v2 is not installed: {error}")


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Run a test on one torch thread. Tiny models run fastest that way: OpenMP
    synchronisation costs more than it saves, and on a busy machine spinning
    threads slow everything down by an order of magnitude."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def local_ray() -> Iterator[object]:
    """One local Ray for the whole session (2 CPUs, no dashboard), shut down at the end.

    Ray takes seconds to start, so every test that needs it shares this one;
    a test module skips with the install hint when the ``ray`` extra is absent.
    """
    ray = pytest.importorskip(
        "ray", reason="the ray extra is not installed: pip install 'genarch[ray]'"
    )
    started = not ray.is_initialized()
    if started:
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
            runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}},
        )
    yield ray
    if started:
        ray.shutdown()
