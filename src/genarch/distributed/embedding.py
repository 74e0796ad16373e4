"""Embed chunks on Ray actors and build one persisted vector store from the shards.

:class:`RayIndexBuilder` is the distributed form of the local index build,
``DenseRetriever(extractor, ExactVectorStore(dim=..., metric=...)).add(chunks)``
followed by ``store.save(directory)``:

1. the driver reads the chunks in order and cuts them into shards of
   ``shard_size`` (checking that no id repeats);
2. a pool of actors, each of which rebuilt the feature extractor **once**
   (see below), builds one vector-store shard per call — literally the local
   build on that slice, ``DenseRetriever(...).add(shard)`` — and sends it back
   in the store's own file format (vectors in safetensors, entries in SQLite,
   SHA-256 manifest), which the driver verifies on arrival;
3. the driver appends the shards in input order and writes one store,
   atomically, with :func:`~genarch.orchestration.store_files.write_store`.

Because every shard starts at a multiple of ``batch_size`` (``shard_size``
must be one), each ``extract`` call sees exactly the texts it sees locally,
and the merged store holds the same ids, metadata and vectors in the same
order as the local build: searching either gives the same hits.

**Rebuilding the extractor on a worker** (``rebuild``):

* ``"saved"`` — the extractor has ``save(directory)`` and a ``load(directory)``
  classmethod: the driver saves it, the files travel through Ray's object
  store and each actor loads them (fitted state included, no pickle);
* ``"config"`` — it has a pydantic ``config`` and ``from_config``: each actor
  calls ``from_config`` (e.g. :class:`~genarch.features.MiniLMEncoder` finds its
  checkpoint on the worker: install ``genarch[embeddings]`` on the cluster);
* ``"pickle"`` — Ray pickles the object itself (any extractor; the only way
  for one defined in a script). Pickle is used only as Ray's transport
  between this driver and its own workers, never for anything stored.

``"auto"`` picks the first that applies, in that order. For ``saved`` and
``config`` the extractor's class must be importable on the workers. Each
actor then embeds the first chunk's text and compares it with the driver's
vector, so an extractor whose rebuild lost state (a tokenizer passed to its
constructor, weights trained after construction) is caught before it writes
a single shard (:class:`~genarch.errors.IntegrityError`; use ``"pickle"``).

**Failures.** Actors are created with ``max_restarts`` and
``max_task_retries``: when one dies mid-shard (node lost, ``ray.kill``), Ray
restarts it — it rebuilds the extractor — and runs the shard again. A shard
is kept only when its call returns, so a retried shard is not counted twice.
"""

from __future__ import annotations

import importlib
import itertools
import logging
import os
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from pydantic import BaseModel, Field, model_validator

from genarch.configured import Configured
from genarch.distributed._cluster import check_address, connect_ray, genarch_cause
from genarch.errors import ConfigError, GenarchError, IntegrityError, InvalidInputError
from genarch.orchestration.entry_table import EntryTable
from genarch.orchestration.retrievers import DenseRetriever, embed_texts
from genarch.orchestration.store_files import read_store, write_store
from genarch.orchestration.vector_validation import Metric, VectorStoreConfig, check_tenant
from genarch.orchestration.vectorstore import ExactVectorStore, StoreHandle
from genarch.protocols import FeatureExtractor
from genarch.schemas import Chunk, Config, Record
from genarch.validation import checked_items, describe

__all__ = ["IndexBuild", "RayIndexBuilder", "RayIndexBuilderConfig", "Rebuild"]

logger = logging.getLogger(__name__)

Rebuild = Literal["auto", "saved", "config", "pickle"]
"""How each actor gets its own copy of the feature extractor (see the module docstring)."""

StoreBackend = Literal["exact", "faiss"]

_WHERE = "RayIndexBuilder"


class RayIndexBuilderConfig(Config):
    """Settings of :class:`RayIndexBuilder`.

    Attributes:
        workers: actors, each holding one copy of the extractor.
        shard_size: chunks per shard (one actor call); a multiple of ``batch_size``.
        batch_size: texts per ``extract`` call, as ``DenseRetriever(batch_size=...)``.
        in_flight: shards queued per actor at once (bounds the driver's memory).
        rebuild: how actors rebuild the extractor (``"auto"``: saved, config, pickle).
        num_cpus: CPUs Ray reserves for each actor.
        max_restarts: times Ray restarts an actor that died (``-1``: always).
        max_task_retries: times a shard is run again after its actor died (``-1``: always).
    """

    workers: Annotated[int, Field(ge=1)] = 2
    shard_size: Annotated[int, Field(ge=1)] = 1024
    batch_size: Annotated[int, Field(ge=1)] = 64
    in_flight: Annotated[int, Field(ge=1)] = 2
    rebuild: Rebuild = "auto"
    num_cpus: Annotated[float, Field(gt=0)] = 1.0
    max_restarts: Annotated[int, Field(ge=-1)] = 3
    max_task_retries: Annotated[int, Field(ge=-1)] = 3

    @model_validator(mode="after")
    def _shards_hold_whole_batches(self) -> RayIndexBuilderConfig:
        if self.shard_size % self.batch_size:
            raise ValueError(
                f"shard_size ({self.shard_size}) must be a multiple of batch_size "
                f"({self.batch_size}), so each extract call sees the texts it sees locally"
            )
        return self


class IndexBuild(Record):
    """What :meth:`RayIndexBuilder.build` wrote.

    Attributes:
        directory: the saved store (load it with ``ExactVectorStore.load`` or
            ``FaissVectorStore.load``).
        backend: ``"exact"`` or ``"faiss"``, as recorded in the store.
        metric: the store's similarity measure.
        dim: the vectors' width.
        chunks: entries written.
        shards: shards built by the actors.
        rebuild: how the actors rebuilt the extractor.
        seconds: wall time of the build on the driver.
        worker_seconds: time the actors spent building shards, summed.
    """

    directory: str
    backend: StoreBackend
    metric: Metric
    dim: int
    chunks: int
    shards: int
    rebuild: Literal["saved", "config", "pickle"]
    seconds: float
    worker_seconds: float


# ------------------------------------------------------------ extractor recipe


class _Recipe:
    """How an actor gets its copy of the extractor: saved files, a config, or the object."""

    def __init__(
        self,
        method: Literal["saved", "config", "pickle"],
        *,
        cls: tuple[str, str] | None = None,
        files: dict[str, bytes] | None = None,
        config: dict[str, Any] | None = None,
        extractor: Any = None,
    ) -> None:
        self.method = method
        self.cls = cls
        self.files = files
        self.config = config
        self.extractor = extractor

    def rebuild(self) -> Any:
        if self.method == "pickle":
            return self.extractor
        assert self.cls is not None
        module, qualname = self.cls
        target: Any = importlib.import_module(module)
        for part in qualname.split("."):
            target = getattr(target, part)
        if self.method == "config":
            return target.from_config(self.config)
        assert self.files is not None
        with tempfile.TemporaryDirectory(prefix="genarch-extractor-") as tmp:
            root = Path(tmp) / "extractor"
            for name, data in self.files.items():
                path = root / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
            return target.load(root)


def _recipe(extractor: Any, rebuild: Rebuild) -> _Recipe:
    kind = type(extractor)
    cls = (kind.__module__, kind.__qualname__)
    can_save = callable(getattr(extractor, "save", None)) and callable(getattr(kind, "load", None))
    can_config = isinstance(getattr(extractor, "config", None), BaseModel) and callable(
        getattr(kind, "from_config", None)
    )
    importable = kind.__module__ != "__main__" and "<locals>" not in kind.__qualname__
    method = rebuild
    if method == "auto":
        method = (
            "saved"
            if can_save and importable
            else "config"
            if can_config and importable
            else "pickle"
        )
    if method == "saved":
        if not can_save:
            raise ConfigError(
                f"{_WHERE} rebuild='saved' needs an extractor with save(directory) and a "
                f"load(directory) classmethod; {kind.__name__} has not both"
            )
        with tempfile.TemporaryDirectory(prefix="genarch-extractor-") as tmp:
            root = Path(tmp) / "extractor"
            extractor.save(root)
            files = {
                path.relative_to(root).as_posix(): path.read_bytes()
                for path in sorted(root.rglob("*"))
                if path.is_file()
            }
        return _Recipe("saved", cls=cls, files=files)
    if method == "config":
        if not can_config:
            raise ConfigError(
                f"{_WHERE} rebuild='config' needs an extractor with a pydantic config and a "
                f"from_config classmethod; {kind.__name__} has not both"
            )
        return _Recipe("config", cls=cls, config=extractor.config.model_dump(mode="json"))
    return _Recipe("pickle", extractor=extractor)


# ------------------------------------------------------------------- the actor


def _store_class(backend: StoreBackend) -> type[StoreHandle]:
    if backend == "faiss":
        from genarch.orchestration.faiss_store import FaissVectorStore

        return FaissVectorStore
    return ExactVectorStore


class _ShardBuilder:
    """A Ray actor: rebuilds the extractor once, then builds one store shard per call."""

    def __init__(self, recipe: _Recipe, settings: dict[str, Any]) -> None:
        self.method = recipe.method
        self.settings = settings
        self.extractor: Any = None
        self.problem: GenarchError | None = None
        try:
            self.extractor = recipe.rebuild()
        except GenarchError as error:  # raised by check(), where the driver sees it whole
            self.problem = error

    def check(self, text: str, expected: torch.Tensor) -> None:
        """Raise unless the rebuilt extractor gives the driver's vector for ``text``."""
        if self.problem is not None:
            raise self.problem
        hint = (
            f"the extractor rebuilt on a worker (rebuild={self.method!r}) "
            "does not reproduce the driver's: it lost state that this rebuild does not carry"
        )
        try:
            got = embed_texts(self.extractor, [text], _WHERE)
        except GenarchError as error:
            raise IntegrityError(f"{_WHERE}: {hint} ({error}). Use rebuild='pickle'") from None
        if got.shape != expected.shape or not torch.allclose(got, expected, rtol=1e-4, atol=1e-5):
            raise IntegrityError(
                f"{_WHERE}: {hint} (its vector for the first chunk differs). Use rebuild='pickle'"
            )

    def build(self, index: int, chunks: list[Chunk]) -> tuple[int, dict[str, bytes], float]:
        start = time.perf_counter()
        s = self.settings
        store = _store_class(s["backend"])(dim=s["dim"], metric=s["metric"], tenant=s["tenant"])
        DenseRetriever(self.extractor, store, batch_size=s["batch_size"]).add(chunks)
        with tempfile.TemporaryDirectory(prefix="genarch-shard-") as tmp:
            root = Path(tmp) / "shard"
            store.save(root)
            files = {path.name: path.read_bytes() for path in root.iterdir() if path.is_file()}
        return index, files, time.perf_counter() - start


# ------------------------------------------------------------------ the builder


class RayIndexBuilder(Configured[RayIndexBuilderConfig]):
    """Embeds chunks on Ray actors and writes one vector store (``pip install 'genarch[ray]'``).

    Args:
        config: a :class:`RayIndexBuilderConfig`; keyword fields are shorthand.
        address: the Ray cluster to join when this process has not joined one
            (``"auto"``, ``"ray://head:10001"``); ``None`` uses the Ray this
            process already started (``ray.init(...)``).

    Raises:
        ConfigError: bad settings or address.

    Examples:
        >>> builder = RayIndexBuilder(workers=4, shard_size=512, batch_size=64)
        >>> builder.config.workers
        4
    """

    def __init__(
        self,
        config: RayIndexBuilderConfig | Mapping[str, Any] | None = None,
        *,
        address: str | None = None,
        **fields: Any,
    ) -> None:
        Configured.__init__(self, config, **fields)
        self.address = check_address(address, _WHERE)

    def build(
        self,
        chunks: Iterable[Chunk],
        extractor: FeatureExtractor[str],
        directory: str | os.PathLike[str],
        *,
        backend: StoreBackend = "exact",
        metric: Metric = "cosine",
        tenant: str = "default",
    ) -> IndexBuild:
        """Embed ``chunks`` on the actors and save one store to ``directory``, atomically.

        Args:
            chunks: the chunks, in the order the store should hold them; ids unique.
            extractor: any :class:`~genarch.protocols.FeatureExtractor` of strings.
            directory: where the store is saved (replaced as a whole).
            backend: the store kind recorded in the files (both load either way).
            metric: ``"cosine"``, ``"inner_product"`` or ``"l2"``.
            tenant: the tenant every entry belongs to.

        Returns:
            An :class:`IndexBuild` describing what was written.

        Raises:
            InvalidInputError: an item is not a Chunk, an id repeats, a chunk's
                metadata ``document_id`` differs from its own, or a bad
                ``extractor``, ``backend``, ``metric`` or ``directory``.
            ConfigError: ``rebuild`` does not fit the extractor, or no Ray to use.
            IntegrityError: the rebuilt extractor disagrees with the driver's,
                or a shard arrived corrupted.
        """
        started = time.perf_counter()
        config = self.config
        if not callable(getattr(extractor, "extract", None)):
            raise InvalidInputError(
                f"{_WHERE}.build expected a FeatureExtractor (with extract()), got "
                f"{describe(extractor)}"
            )
        if backend not in ("exact", "faiss"):
            raise InvalidInputError(
                f"{_WHERE}.build expected backend 'exact' or 'faiss', got {describe(backend)}"
            )
        if not isinstance(directory, str | os.PathLike) or not os.fspath(directory):
            raise InvalidInputError(
                f"{_WHERE}.build expected directory as a path, got {describe(directory)}"
            )
        store_config = VectorStoreConfig(dim=extractor.dim, metric=metric)
        tenant = check_tenant(tenant, f"{_WHERE}.build")
        shards = _shards(chunks, config.shard_size)
        first = next(shards, None)
        recipe = _recipe(extractor, config.rebuild)
        results: dict[int, tuple[dict[str, bytes], float]] = {}
        if first:  # no chunks, no Ray: the store is written empty
            settings = {
                "backend": backend,
                "dim": store_config.dim,
                "metric": store_config.metric,
                "tenant": tenant,
                "batch_size": config.batch_size,
            }
            shards = itertools.chain([first], shards)
            results = self._build_shards(extractor, recipe, settings, first[0].text, shards)
        vectors, table = _merge(results, tenant, store_config)
        write_store(directory, store_config, backend, vectors, table)
        build = IndexBuild(
            directory=os.fspath(directory),
            backend=backend,
            metric=store_config.metric,
            dim=store_config.dim,
            chunks=len(table),
            shards=len(results),
            rebuild=recipe.method,
            seconds=time.perf_counter() - started,
            worker_seconds=sum(seconds for _, seconds in results.values()),
        )
        logger.info(
            "built %s: %d chunks in %d shards on %d actors in %.2f s",
            build.directory,
            build.chunks,
            build.shards,
            config.workers,
            build.seconds,
        )
        return build

    def _build_shards(
        self,
        extractor: FeatureExtractor[str],
        recipe: _Recipe,
        settings: dict[str, Any],
        probe: str,
        shards: Iterator[list[Chunk]],
    ) -> dict[int, tuple[dict[str, bytes], float]]:
        """Start the actors, check their extractors against ``probe``, build every shard."""
        config = self.config
        ray = connect_ray(self.address, _WHERE)
        actor_class = ray.remote(
            num_cpus=config.num_cpus,
            max_restarts=config.max_restarts,
            max_task_retries=config.max_task_retries,
        )(_ShardBuilder)
        # one copy for all actors; the reference lives until the build ends, so a
        # restarted actor can still read it (Ray warns about that case when it starts)
        recipe_ref = ray.put(recipe)
        actors = [actor_class.remote(recipe_ref, settings) for _ in range(config.workers)]
        expected = embed_texts(extractor, [probe], _WHERE)
        results: dict[int, tuple[dict[str, bytes], float]] = {}
        try:
            ray.get([actor.check.remote(probe, expected) for actor in actors])
            _run_shards(ray, actors, shards, config.in_flight, results)
        except Exception as error:
            raise genarch_cause(error) from error
        finally:
            for actor in actors:
                ray.kill(actor)
        return results


def _shards(chunks: Iterable[Chunk], size: int) -> Iterator[list[Chunk]]:
    """Consecutive lists of ``size`` chunks, each checked, no id twice."""
    seen: set[str] = set()
    shard: list[Chunk] = []
    for chunk in checked_items(chunks, Chunk, where=f"{_WHERE}.build"):
        if chunk.id in seen:
            raise InvalidInputError(f"{_WHERE}.build got chunk id {chunk.id!r} more than once")
        seen.add(chunk.id)
        shard.append(chunk)
        if len(shard) == size:
            yield shard
            shard = []
    if shard:
        yield shard


def _run_shards(
    ray: Any,
    actors: list[Any],
    shards: Iterator[list[Chunk]],
    in_flight: int,
    results: dict[int, tuple[dict[str, bytes], float]],
) -> None:
    """Keep each actor ``in_flight`` shards busy until all are built; fill ``results``.

    A shard goes to whichever actor just finished one, so a slow actor gets fewer.
    """
    pending: dict[Any, int] = {}  # future -> index of the actor building it
    numbered = enumerate(shards)

    def submit(actor: int) -> None:
        item = next(numbered, None)
        if item is not None:
            pending[actors[actor].build.remote(*item)] = actor

    for _ in range(in_flight):
        for actor in range(len(actors)):
            submit(actor)
    while pending:
        (future,), _ = ray.wait(list(pending), num_returns=1)
        actor = pending.pop(future)
        number, files, seconds = ray.get(future)
        results[number] = (files, seconds)
        submit(actor)


def _merge(
    results: Mapping[int, tuple[dict[str, bytes], float]],
    tenant: str,
    config: VectorStoreConfig,
) -> tuple[torch.Tensor, EntryTable]:
    """The shards' vectors and entries, appended in shard order (each shard verified)."""
    table = EntryTable()
    parts = [torch.empty(0, config.dim, dtype=torch.float32)]
    with tempfile.TemporaryDirectory(prefix="genarch-merge-") as tmp:
        for number in sorted(results):
            root = Path(tmp) / f"shard-{number}"
            root.mkdir()
            for name, data in results[number][0].items():
                (root / Path(name).name).write_bytes(data)
            shard_config, vectors, shard_table = read_store(root)
            if shard_config != config:
                raise IntegrityError(
                    f"{_WHERE}: shard {number} was built with {shard_config}, expected {config}"
                )
            ids = [id_ for _, id_ in shard_table.keys]
            table.assign(tenant, ids, list(shard_table.metadata))
            parts.append(vectors)
    return torch.cat(parts), table
