"""Conformance checks, one family per protocol.

Each ``<protocol>_checks(...)`` function returns a list of :class:`Check`\\ s —
small callables that exercise the behaviour the protocol's docstring promises.
``check_<protocol>(...)`` runs them all and raises
:class:`~genarch.errors.ConformanceError` listing every failure; use
:func:`~genarch.testing.parametrize_with_checks` to get one pytest test per check.

The checks call the methods: seeded determinism (with the global RNGs
scrambled between calls, so an implementation that ignores its seed is
caught), save/load round trips, batch-versus-single agreement, no state
carried between calls, and bad input raising a
:class:`~genarch.errors.GenarchError`.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import itertools
import os
import random
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel

from genarch._io import sha256_file
from genarch._typefit import stage_types
from genarch.errors import ConformanceError, GenarchError, IntegrityError, NotFoundError
from genarch.protocols import (
    DataProcessor,
    Deployer,
    FeatureExtractor,
    FeedbackLoop,
    Generator,
    Optimizer,
    PromptTemplate,
    Retriever,
    VectorStore,
)
from genarch.schemas import Chunk, Hit, ScoredChunk, StepReport, StoredFeedback
from genarch.testing._compare import assert_same

__all__ = [
    "Check",
    "check_data_processor",
    "check_deployer",
    "check_feature_extractor",
    "check_feedback_loop",
    "check_generator",
    "check_optimizer",
    "check_prompt_template",
    "check_retriever",
    "check_vector_store",
    "data_processor_checks",
    "deployer_checks",
    "feature_extractor_checks",
    "feedback_loop_checks",
    "generator_checks",
    "optimizer_checks",
    "prompt_template_checks",
    "retriever_checks",
    "run_checks",
    "vector_store_checks",
]


@dataclass(frozen=True)
class Check:
    """One conformance check, ready to run.

    Attributes:
        protocol: the protocol checked, e.g. ``"Generator"``.
        name: what is checked, e.g. ``"seeded_determinism"``.
        subject: a label for the implementation under test.
    """

    protocol: str
    name: str
    subject: str
    function: Callable[[], None]

    def __call__(self) -> None:
        self.function()

    @property
    def id(self) -> str:
        """``subject-name``, used as the pytest test id."""
        return f"{self.subject}-{self.name}"


def run_checks(checks: Sequence[Check]) -> list[str]:
    """Run every check; return the names that passed.

    Raises:
        ConformanceError: one or more checks failed (all failures are listed).
    """
    passed, failures = [], []
    for check in checks:
        try:
            check()
        except Exception as error:
            failures.append((check.name, f"{type(error).__name__}: {error}"))
        else:
            passed.append(check.name)
    if failures:
        subject = checks[0].subject if checks else "implementation"
        raise ConformanceError(subject, failures)
    return passed


# ------------------------------------------------------------------- helpers


def _expect_genarch_error(action: Callable[[], object], what: str) -> None:
    try:
        action()
    except GenarchError:
        return
    except Exception as error:
        raise AssertionError(
            f"{what}: raised {type(error).__name__}({error}) instead of a GenarchError subclass"
        ) from error
    raise AssertionError(f"{what}: expected a GenarchError, but nothing was raised")


@contextlib.contextmanager
def _scrambled_global_rngs() -> Iterator[None]:
    """Set Python, NumPy and torch global RNGs to fresh random states, restoring them after.

    An implementation whose output depends on global RNG state (instead of the
    seed it was given) gives different results inside two such blocks.
    """
    python_state, numpy_state = random.getstate(), np.random.get_state()
    entropy = int.from_bytes(os.urandom(4), "little")
    with torch.random.fork_rng(devices=[]):
        random.seed(entropy)
        np.random.seed(entropy)
        torch.manual_seed(entropy)
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


def _label(obj: object, label: str | None) -> str:
    return label or type(obj).__name__


def _is_seeded(request: object) -> bool:
    return getattr(request, "seed", 0) is not None


def _roundtrip(obj: Any) -> Any:
    with tempfile.TemporaryDirectory(prefix="genarch-check-") as directory:
        obj.save(directory)
        return type(obj).load(directory)


def _supports_persistence(obj: object) -> bool:
    return callable(getattr(obj, "save", None)) and callable(getattr(type(obj), "load", None))


def _supports_config(obj: object) -> bool:
    return isinstance(getattr(obj, "config", None), BaseModel) and callable(
        getattr(type(obj), "from_config", None)
    )


def _config_roundtrip(obj: Any) -> None:
    rebuilt = type(obj).from_config(obj.config)
    assert_same(rebuilt.config, obj.config, path="from_config(config).config")
    dumped = obj.config.model_dump(mode="json")
    assert_same(type(obj).from_config(dumped).config, obj.config, path="from_config(dict).config")


# ------------------------------------------------------------------ DataProcessor


def data_processor_checks(
    processor: DataProcessor[Any, Any],
    examples: Sequence[Any],
    *,
    invalid_items: Sequence[Any] = (),
    label: str | None = None,
) -> list[Check]:
    """Checks for a :class:`~genarch.protocols.DataProcessor`.

    Args:
        processor: the implementation under test.
        examples: valid input items (a few, varied).
        invalid_items: items the processor must reject with a GenarchError.
        label: name shown in reports (default: the class name).
    """
    subject = _label(processor, label)
    items = list(examples)

    def run(source: Any) -> list[Any]:
        return list(processor.process(source))

    def is_lazy() -> None:
        pulled = 0

        def source() -> Iterator[Any]:
            nonlocal pulled
            for item in items:
                pulled += 1
                yield item

        outputs = processor.process(source())
        assert pulled == 0, f"process() consumed {pulled} item(s) before its output was iterated"
        assert isinstance(outputs, Iterator), (
            f"process() must return an iterator, got {type(outputs).__name__}"
        )
        list(outputs)

    def accepts_one_shot_iterators() -> None:
        assert_same(run(iter(items)), run(items), path="process(iter(items)) vs process(list)")

    def deterministic() -> None:
        with _scrambled_global_rngs():
            first = run(items)
        with _scrambled_global_rngs():
            second = run(items)
        assert_same(second, first, path="second run")

    def no_state_between_calls() -> None:
        first = run(items)
        run(items[::-1])
        run(items)
        assert_same(run(items), first, path="run after other runs")

    def outputs_have_declared_type() -> None:
        _, produces = stage_types(processor)
        if isinstance(produces, type) and produces is not object:
            for index, output in enumerate(run(items)):
                assert isinstance(output, produces), (
                    f"output {index} is {type(output).__name__}, "
                    f"but process() declares {produces.__name__}"
                )

    def rejects_non_iterables() -> None:
        _expect_genarch_error(lambda: run(42), "process(42)")

    def rejects_wrong_items() -> None:
        _expect_genarch_error(lambda: run([object()]), "process([object()])")

    def rejects_invalid_items() -> None:
        for index, bad in enumerate(invalid_items):
            _expect_genarch_error(functools.partial(run, [bad]), f"invalid item {index}")

    def config_roundtrip() -> None:
        _config_roundtrip(processor)
        rebuilt = type(processor).from_config(processor.config)  # type: ignore[attr-defined]
        assert_same(run_with(rebuilt), run(items), path="output of from_config(config)")

    def run_with(other: Any) -> list[Any]:
        return list(other.process(items))

    def save_load_roundtrip() -> None:
        assert_same(run_with(_roundtrip(processor)), run(items), path="loaded processor output")

    checks = [
        is_lazy,
        accepts_one_shot_iterators,
        deterministic,
        no_state_between_calls,
        outputs_have_declared_type,
        rejects_non_iterables,
        rejects_wrong_items,
    ]
    if invalid_items:
        checks.append(rejects_invalid_items)
    if _supports_config(processor):
        checks.append(config_roundtrip)
    if _supports_persistence(processor):
        checks.append(save_load_roundtrip)
    return [Check("DataProcessor", c.__name__, subject, c) for c in checks]


# ---------------------------------------------------------------------- Generator


def generator_checks(
    generator: Generator[Any, Any],
    requests: Sequence[Any],
    *,
    invalid_requests: Sequence[Any] = (),
    atol: float = 1e-5,
    label: str | None = None,
) -> list[Check]:
    """Checks for a :class:`~genarch.protocols.Generator` and its optional capabilities.

    Args:
        generator: the implementation under test.
        requests: at least two valid requests; give them seeds so determinism
            can be checked (unseeded requests are skipped by those checks).
        invalid_requests: requests of the right type that the generator must
            refuse (an unknown label, an over-long prompt, ...).
        atol: tolerance for batch-versus-single agreement of float outputs.
        label: name shown in reports.
    """
    subject = _label(generator, label)
    seeded = [r for r in requests if _is_seeded(r)]

    def has_the_methods() -> None:
        assert isinstance(generator, Generator), "missing generate() or generate_batch()"

    def seeded_determinism() -> None:
        assert seeded, "give at least one request with a seed"
        for request in seeded:
            with _scrambled_global_rngs():
                first = generator.generate(request)
            with _scrambled_global_rngs():
                second = generator.generate(request)
            assert_same(second, first, path="same seeded request, second call")

    def no_state_between_calls() -> None:
        assert seeded, "give at least one request with a seed"
        first = generator.generate(seeded[0])
        for request in requests[1:]:
            generator.generate(request)
        assert_same(generator.generate(seeded[0]), first, path="after other requests")

    def batch_matches_single() -> None:
        batch = list(generator.generate_batch(list(seeded)))
        single = [generator.generate(r) for r in seeded]
        assert_same(batch, single, atol=atol, path="generate_batch vs generate")

    def empty_batch() -> None:
        assert len(generator.generate_batch([])) == 0, "generate_batch([]) must return nothing"

    def rejects_wrong_request_type() -> None:
        _expect_genarch_error(lambda: generator.generate(object()), "generate(object())")
        _expect_genarch_error(
            lambda: generator.generate_batch([object()]), "generate_batch([object()])"
        )

    def rejects_invalid_requests() -> None:
        for index, bad in enumerate(invalid_requests):
            _expect_genarch_error(
                functools.partial(generator.generate, bad), f"invalid request {index}"
            )

    def save_load_roundtrip() -> None:
        loaded = _roundtrip(generator)
        for request in seeded:
            assert_same(loaded.generate(request), generator.generate(request), path="loaded")

    def config_roundtrip() -> None:
        _config_roundtrip(generator)

    def stream_matches_generate() -> None:
        stream = generator.stream  # type: ignore[attr-defined]
        for request in seeded:
            pieces = list(stream(request))
            assert_same(list(stream(request)), pieces, path="second stream")
            result = generator.generate(request)
            if hasattr(result, "text") and all(isinstance(p, str) for p in pieces):
                assert "".join(pieces) == result.text, (
                    f"streamed text {''.join(pieces)!r} != generated text {result.text!r}"
                )

    def latent_space() -> None:
        shape = tuple(generator.latent_shape)  # type: ignore[attr-defined]
        z = torch.randn((2, *shape), generator=torch.Generator().manual_seed(0))
        decoded = generator.decode(z)  # type: ignore[attr-defined]
        assert_same(generator.decode(z), decoded, path="decode twice")  # type: ignore[attr-defined]
        assert decoded.shape[0] == 2, f"decode kept {decoded.shape[0]} of 2 latents"
        encoded = generator.encode(decoded)  # type: ignore[attr-defined]
        assert tuple(encoded.shape) == (2, *shape), f"encode gave shape {tuple(encoded.shape)}"
        path = generator.interpolate(z[0], z[1], 5)  # type: ignore[attr-defined]
        assert tuple(path.shape) == (5, *shape), f"interpolate gave shape {tuple(path.shape)}"
        assert_same(path[0], z[0], atol=1e-5, path="interpolate start")
        assert_same(path[-1], z[1], atol=1e-5, path="interpolate end")

    def conditions_are_described() -> None:
        conditions = generator.conditions  # type: ignore[attr-defined]
        assert isinstance(conditions, Mapping), "conditions must be a mapping"
        assert conditions, "conditions must not be empty"
        for name, values in conditions.items():
            assert isinstance(name, str), f"condition name {name!r} is not a str"
            assert len(values) > 0, f"condition {name!r} has no values"

    checks = [
        has_the_methods,
        seeded_determinism,
        no_state_between_calls,
        batch_matches_single,
        empty_batch,
        rejects_wrong_request_type,
    ]
    if invalid_requests:
        checks.append(rejects_invalid_requests)
    if _supports_persistence(generator):
        checks.append(save_load_roundtrip)
    if _supports_config(generator):
        checks.append(config_roundtrip)
    if callable(getattr(generator, "stream", None)):
        checks.append(stream_matches_generate)
    if all(callable(getattr(generator, m, None)) for m in ("encode", "decode", "interpolate")):
        checks.append(latent_space)
    if hasattr(generator, "conditions"):
        checks.append(conditions_are_described)
    return [Check("Generator", c.__name__, subject, c) for c in checks]


# ---------------------------------------------------------------------- Optimizer


def optimizer_checks(
    make_optimizer: Callable[[], Optimizer[Any]],
    batches: Sequence[Any],
    *,
    invalid_batches: Sequence[Any] = (),
    label: str | None = None,
) -> list[Check]:
    """Checks for an :class:`~genarch.protocols.Optimizer`.

    Args:
        make_optimizer: builds a fresh optimizer (model included) in the same
            initial state every time — seed it.
        batches: at least three valid batches.
        invalid_batches: batches it must refuse without changing any parameter.
        label: name shown in reports.
    """
    if len(batches) < 3:
        raise ValueError("optimizer_checks needs at least three batches")
    subject = label or type(make_optimizer()).__name__

    def reports_steps() -> None:
        optimizer = make_optimizer()
        for number, batch in enumerate(batches, start=1):
            report = optimizer.step(batch)
            assert isinstance(report, StepReport), f"step() returned {type(report).__name__}"
            assert report.step == number, f"step {number} reported step={report.step}"
            assert report.losses, "a step must report at least one loss"

    def deterministic() -> None:
        reports = []
        for _ in range(2):
            optimizer = make_optimizer()
            with _scrambled_global_rngs():
                reports.append([optimizer.step(b) for b in batches])
        assert_same(reports[1], reports[0], path="second run's reports")

    def exact_resume() -> None:
        original = make_optimizer()
        for batch in batches[:-1]:
            original.step(batch)
        state = copy.deepcopy(original.state_dict())
        resumed = make_optimizer()
        resumed.load_state_dict(state)
        with _scrambled_global_rngs():
            expected = original.step(batches[-1])
        with _scrambled_global_rngs():
            actual = resumed.step(batches[-1])
        assert_same(actual, expected, path="report after resume")
        assert_same(resumed.state_dict(), original.state_dict(), path="state after resume")

    def rejects_bad_batches() -> None:
        optimizer = make_optimizer()
        optimizer.step(batches[0])
        before = copy.deepcopy(optimizer.state_dict())
        for index, bad in enumerate([object(), *invalid_batches]):
            _expect_genarch_error(functools.partial(optimizer.step, bad), f"bad batch {index}")
        assert_same(optimizer.state_dict(), before, path="state after refused batches")

    checks = [reports_steps, deterministic, exact_resume, rejects_bad_batches]
    return [Check("Optimizer", c.__name__, subject, c) for c in checks]


# --------------------------------------------------------------- FeatureExtractor


def feature_extractor_checks(
    extractor: FeatureExtractor[Any],
    examples: Sequence[Any],
    *,
    invalid_items: Sequence[Any] = (),
    atol: float = 1e-5,
    label: str | None = None,
) -> list[Check]:
    """Checks for a :class:`~genarch.protocols.FeatureExtractor` (fit it first if it needs fitting)."""
    subject = _label(extractor, label)
    items = list(examples)

    def shape_and_dtype() -> None:
        features = extractor.extract(items)
        assert isinstance(features, torch.Tensor), f"extract returned {type(features).__name__}"
        assert tuple(features.shape) == (len(items), extractor.dim), (
            f"expected shape {(len(items), extractor.dim)}, got {tuple(features.shape)}"
        )
        assert features.dtype == torch.float32, f"expected float32, got {features.dtype}"
        assert bool(torch.isfinite(features).all()), "features contain NaN or infinity"

    def deterministic() -> None:
        with _scrambled_global_rngs():
            first = extractor.extract(items)
        with _scrambled_global_rngs():
            second = extractor.extract(items)
        assert_same(second, first, path="second extraction")

    def batch_matches_single() -> None:
        single = torch.cat([extractor.extract([item]) for item in items])
        assert_same(extractor.extract(items), single, atol=atol, path="batch vs single")

    def empty_batch() -> None:
        features = extractor.extract([])
        assert tuple(features.shape) == (0, extractor.dim), f"got {tuple(features.shape)}"

    def rejects_wrong_items() -> None:
        _expect_genarch_error(lambda: extractor.extract([object()]), "extract([object()])")
        for index, bad in enumerate(invalid_items):
            _expect_genarch_error(
                functools.partial(extractor.extract, [bad]), f"invalid item {index}"
            )

    def save_load_roundtrip() -> None:
        assert_same(_roundtrip(extractor).extract(items), extractor.extract(items), path="loaded")

    def config_roundtrip() -> None:
        _config_roundtrip(extractor)

    checks = [
        shape_and_dtype,
        deterministic,
        batch_matches_single,
        empty_batch,
        rejects_wrong_items,
    ]
    if _supports_persistence(extractor):
        checks.append(save_load_roundtrip)
    if _supports_config(extractor):
        checks.append(config_roundtrip)
    return [Check("FeatureExtractor", c.__name__, subject, c) for c in checks]


# ------------------------------------------------------------------- FeedbackLoop


def feedback_loop_checks(
    make_loop: Callable[[], FeedbackLoop],
    examples: Sequence[Any],
    *,
    label: str | None = None,
) -> list[Check]:
    """Checks for a :class:`~genarch.protocols.FeedbackLoop`.

    Args:
        make_loop: builds a fresh, empty loop.
        examples: feedback records of every kind the loop supports.
    """
    subject = label or type(make_loop()).__name__

    def record_then_get() -> None:
        loop = make_loop()
        ids = [loop.record(feedback) for feedback in examples]
        assert all(isinstance(i, str) and i for i in ids), "record() must return a non-empty str id"
        assert len(set(ids)) == len(ids), "record() returned duplicate ids"
        for feedback_id, feedback in zip(ids, examples, strict=True):
            stored = loop.get(feedback_id)
            assert isinstance(stored, StoredFeedback), f"get() returned {type(stored).__name__}"
            assert stored.id == feedback_id
            assert_same(stored.feedback, feedback, path=f"get({feedback_id!r}).feedback")

    def query_in_order_and_by_kind() -> None:
        loop = make_loop()
        for feedback in examples:
            loop.record(feedback)
        everything = loop.query()
        assert_same([s.feedback for s in everything], list(examples), path="query()")
        for kind in {f.kind for f in examples}:
            expected = [f for f in examples if f.kind == kind]
            assert_same(
                [s.feedback for s in loop.query(kind=kind)], expected, path=f"query({kind})"
            )
        assert len(loop.query(limit=1)) == min(1, len(examples)), "query(limit=1)"

    def preferences_include_recorded_pairs() -> None:
        loop = make_loop()
        for feedback in examples:
            loop.record(feedback)
        pairs = loop.preferences()
        for feedback in examples:
            if feedback.kind == "preference":
                assert any(
                    p.prompt == feedback.prompt
                    and p.chosen == feedback.chosen
                    and p.rejected == feedback.rejected
                    for p in pairs
                ), f"preference for {feedback.prompt!r} missing from preferences()"

    def unknown_id_is_not_found() -> None:
        loop = make_loop()
        try:
            loop.get("no-such-feedback")
        except NotFoundError:
            return
        except Exception as error:
            raise AssertionError(
                f"get(unknown) raised {type(error).__name__}, not NotFoundError"
            ) from error
        raise AssertionError("get(unknown) returned instead of raising NotFoundError")

    def rejects_wrong_feedback() -> None:
        loop = make_loop()
        _expect_genarch_error(lambda: loop.record(object()), "record(object())")  # type: ignore[arg-type]

    checks = [
        record_then_get,
        query_in_order_and_by_kind,
        preferences_include_recorded_pairs,
        unknown_id_is_not_found,
        rejects_wrong_feedback,
    ]
    return [Check("FeedbackLoop", c.__name__, subject, c) for c in checks]


# ----------------------------------------------------------------------- Deployer


def deployer_checks(
    deployer: Deployer,
    component: Any,
    requests: Sequence[Any],
    *,
    label: str | None = None,
) -> list[Check]:
    """Checks for a :class:`~genarch.protocols.Deployer` serving a persistable generator."""
    subject = _label(deployer, label)

    def package_lists_every_file_with_its_hash() -> None:
        with tempfile.TemporaryDirectory() as root:
            manifest = deployer.package(component, os.path.join(root, "a"), name="m", version="1")
            assert manifest.files, "the manifest lists no files"
            for relative, digest in manifest.files.items():
                path = os.path.join(root, "a", relative)
                assert os.path.isfile(path), f"manifest lists {relative}, which was not written"
                assert sha256_file(path) == digest.sha256, f"{relative}: hash does not match"

    def endpoint_matches_component() -> None:
        with tempfile.TemporaryDirectory() as root:
            deployer.package(component, os.path.join(root, "a"), name="m", version="1")
            endpoint = deployer.deploy(os.path.join(root, "a"))
            try:
                for request in requests:
                    assert_same(
                        endpoint.invoke(request), component.generate(request), path="invoke"
                    )
            finally:
                endpoint.close()

    def refuses_tampered_artifacts() -> None:
        with tempfile.TemporaryDirectory() as root:
            manifest = deployer.package(component, os.path.join(root, "a"), name="m", version="1")
            victim = os.path.join(root, "a", sorted(manifest.files)[0])
            with open(victim, "ab") as handle:
                handle.write(b"\0tampered")
            try:
                deployer.deploy(os.path.join(root, "a")).close()
            except IntegrityError:
                return
            raise AssertionError("deploy() accepted an artefact whose file was modified")

    checks = [
        package_lists_every_file_with_its_hash,
        endpoint_matches_component,
        refuses_tampered_artifacts,
    ]
    return [Check("Deployer", c.__name__, subject, c) for c in checks]


# -------------------------------------------------------------------- VectorStore


def vector_store_checks(
    make_store: Callable[[int], VectorStore],
    *,
    dim: int = 8,
    label: str | None = None,
) -> list[Check]:
    """Checks for a :class:`~genarch.protocols.VectorStore`; ``make_store(dim)`` builds an empty one."""
    subject = label or type(make_store(dim)).__name__
    rng = torch.Generator().manual_seed(0)
    vectors = torch.nn.functional.normalize(torch.randn(20, dim, generator=rng), dim=1)
    ids = [f"v{i}" for i in range(20)]
    metadata: list[dict[str, Any]] = [{"group": "even" if i % 2 == 0 else "odd"} for i in range(20)]

    def filled() -> VectorStore:
        store = make_store(dim)
        store.upsert(ids, vectors, metadata)
        return store

    def finds_each_vector_first() -> None:
        store = filled()
        assert len(store) == 20, f"len() is {len(store)} after 20 upserts"
        results = store.search(vectors, k=3)
        assert len(results) == 20
        for i, hits in enumerate(results):
            assert hits, f"query {i} gave no hits"
            assert isinstance(hits[0], Hit), f"query {i} gave {type(hits[0]).__name__}, not Hit"
            assert hits[0].id == ids[i], f"query {i}: nearest is {hits[0].id}, expected {ids[i]}"
            scores = [h.score for h in hits]
            assert scores == sorted(scores, reverse=True), f"query {i}: hits not best first"

    def upsert_replaces() -> None:
        store = filled()
        store.upsert(["v0"], -vectors[:1], [{"group": "even"}])
        assert len(store) == 20, "upserting an existing id must not add an entry"
        assert store.search(-vectors[:1], k=1)[0][0].id == "v0"

    def delete_removes_and_unknown_fails() -> None:
        store = filled()
        store.delete(["v3"])
        assert len(store) == 19
        assert all(h.id != "v3" for h in store.search(vectors[3:4], k=19)[0]), "deleted id found"
        try:
            store.delete(["no-such-id"])
        except NotFoundError:
            return
        raise AssertionError("delete() of an unknown id must raise NotFoundError")

    def filter_cannot_be_escaped() -> None:
        store = filled()
        for hits in store.search(vectors, k=20, where={"group": "even"}):
            assert all(h.metadata.get("group") == "even" for h in hits), "filter leaked"

    def k_larger_than_store() -> None:
        assert len(filled().search(vectors[:1], k=100)[0]) == 20

    def empty_store_returns_nothing() -> None:
        assert make_store(dim).search(vectors[:2], k=5) == [[], []]

    def rejects_bad_vectors() -> None:
        store = filled()
        _expect_genarch_error(lambda: store.search(torch.randn(1, dim + 1), k=1), "wrong dim query")
        nan = torch.full((1, dim), float("nan"))
        _expect_genarch_error(lambda: store.search(nan, k=1), "NaN query")
        _expect_genarch_error(lambda: store.upsert(["x"], nan), "NaN vector")
        _expect_genarch_error(lambda: store.search(vectors[:1], k=0), "k=0")

    checks = [
        finds_each_vector_first,
        upsert_replaces,
        delete_removes_and_unknown_fails,
        filter_cannot_be_escaped,
        k_larger_than_store,
        empty_store_returns_nothing,
        rejects_bad_vectors,
    ]
    return [Check("VectorStore", c.__name__, subject, c) for c in checks]


# ---------------------------------------------------------------------- Retriever


def retriever_checks(
    retriever: Retriever, queries: Sequence[str], *, label: str | None = None
) -> list[Check]:
    """Checks for a :class:`~genarch.protocols.Retriever` over an indexed corpus."""
    subject = _label(retriever, label)

    def best_first_and_at_most_k() -> None:
        for query in queries:
            for k in (1, 3):
                results = retriever.retrieve(query, k)
                assert len(results) <= k, f"{query!r}: {len(results)} results for k={k}"
                assert all(
                    isinstance(r, ScoredChunk) and isinstance(r.chunk, Chunk) for r in results
                )
                scores = [r.score for r in results]
                assert scores == sorted(scores, reverse=True), f"{query!r}: not best first"

    def deterministic() -> None:
        for query in queries:
            assert_same(retriever.retrieve(query, 3), retriever.retrieve(query, 3), path=query)

    def rejects_bad_queries() -> None:
        _expect_genarch_error(lambda: retriever.retrieve(42, 3), "retrieve(42)")  # type: ignore[arg-type]
        _expect_genarch_error(lambda: retriever.retrieve(queries[0], 0), "retrieve(k=0)")

    checks = [best_first_and_at_most_k, deterministic, rejects_bad_queries]
    return [Check("Retriever", c.__name__, subject, c) for c in checks]


# ------------------------------------------------------------------ PromptTemplate


def prompt_template_checks(
    template: PromptTemplate, values: Mapping[str, object], *, label: str | None = None
) -> list[Check]:
    """Checks for a :class:`~genarch.protocols.PromptTemplate`; ``values`` fill every variable."""
    subject = _label(template, label)

    def renders_every_variable() -> None:
        assert set(values) == set(template.variables), (
            f"values {sorted(values)} do not match variables {sorted(template.variables)}"
        )
        text = template.render(values)
        assert isinstance(text, str)
        for name, value in values.items():
            assert str(value) in text, f"value of {name!r} missing from the rendered prompt"

    def values_are_inserted_literally() -> None:
        hostile = ["{0.__class__}", "{{secret}}", "{" + next(iter(values), "x") + "}", "%(x)s $x"]
        for probe in hostile:
            text = template.render(dict.fromkeys(values, probe))
            assert probe in text, f"value {probe!r} was not inserted literally"
            assert "<class" not in text, f"value {probe!r} was evaluated"

    def missing_and_unexpected_variables_fail() -> None:
        if values:
            missing = dict(itertools.islice(values.items(), len(values) - 1))
            _expect_genarch_error(lambda: template.render(missing), "a missing variable")
        _expect_genarch_error(
            lambda: template.render({**values, "surely_not_a_variable": 1}),
            "an unexpected variable",
        )

    checks = [
        renders_every_variable,
        values_are_inserted_literally,
        missing_and_unexpected_variables_fail,
    ]
    return [Check("PromptTemplate", c.__name__, subject, c) for c in checks]


# ------------------------------------------------------------------ run-everything


def check_data_processor(
    processor: DataProcessor[Any, Any], examples: Sequence[Any], **options: Any
) -> list[str]:
    """Run :func:`data_processor_checks`; raise :class:`~genarch.errors.ConformanceError` on failure."""
    return run_checks(data_processor_checks(processor, examples, **options))


def check_generator(
    generator: Generator[Any, Any], requests: Sequence[Any], **options: Any
) -> list[str]:
    """Run :func:`generator_checks`; raise :class:`~genarch.errors.ConformanceError` on failure.

    Examples:
        >>> from genarch.testing import check_generator
        >>> from genarch.errors import ConformanceError
        >>> import random
        >>> class IgnoresSeed:
        ...     def generate(self, request): return random.random()
        ...     def generate_batch(self, requests): return [self.generate(r) for r in requests]
        >>> class Request:
        ...     seed = 1
        >>> try:
        ...     check_generator(IgnoresSeed(), [Request(), Request()])
        ... except ConformanceError as error:
        ...     "seeded_determinism" in str(error)
        True
    """
    return run_checks(generator_checks(generator, requests, **options))


def check_optimizer(
    make_optimizer: Callable[[], Optimizer[Any]], batches: Sequence[Any], **options: Any
) -> list[str]:
    """Run :func:`optimizer_checks`; raise :class:`~genarch.errors.ConformanceError` on failure."""
    return run_checks(optimizer_checks(make_optimizer, batches, **options))


def check_feature_extractor(
    extractor: FeatureExtractor[Any], examples: Sequence[Any], **options: Any
) -> list[str]:
    """Run :func:`feature_extractor_checks`; raise :class:`~genarch.errors.ConformanceError` on failure."""
    return run_checks(feature_extractor_checks(extractor, examples, **options))


def check_feedback_loop(
    make_loop: Callable[[], FeedbackLoop], examples: Sequence[Any], **options: Any
) -> list[str]:
    """Run :func:`feedback_loop_checks`; raise :class:`~genarch.errors.ConformanceError` on failure."""
    return run_checks(feedback_loop_checks(make_loop, examples, **options))


def check_deployer(
    deployer: Deployer, component: Any, requests: Sequence[Any], **options: Any
) -> list[str]:
    """Run :func:`deployer_checks`; raise :class:`~genarch.errors.ConformanceError` on failure."""
    return run_checks(deployer_checks(deployer, component, requests, **options))


def check_vector_store(make_store: Callable[[int], VectorStore], **options: Any) -> list[str]:
    """Run :func:`vector_store_checks`; raise :class:`~genarch.errors.ConformanceError` on failure."""
    return run_checks(vector_store_checks(make_store, **options))


def check_retriever(retriever: Retriever, queries: Sequence[str], **options: Any) -> list[str]:
    """Run :func:`retriever_checks`; raise :class:`~genarch.errors.ConformanceError` on failure."""
    return run_checks(retriever_checks(retriever, queries, **options))


def check_prompt_template(
    template: PromptTemplate, values: Mapping[str, object], **options: Any
) -> list[str]:
    """Run :func:`prompt_template_checks`; raise :class:`~genarch.errors.ConformanceError` on failure."""
    return run_checks(prompt_template_checks(template, values, **options))
