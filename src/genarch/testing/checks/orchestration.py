"""Checks for the orchestration layer: vector stores, retrievers and prompt templates."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from genarch.errors import NotFoundError
from genarch.protocols import PromptTemplate, Retriever, VectorStore
from genarch.schemas import Chunk, Hit, ScoredChunk
from genarch.testing._compare import assert_same
from genarch.testing._kit import (
    Check,
    expect_genarch_error,
    failure,
    label_of,
    require,
    run_checks,
)

__all__ = [
    "check_prompt_template",
    "check_retriever",
    "check_vector_store",
    "prompt_template_checks",
    "retriever_checks",
    "vector_store_checks",
]


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
        require(len(store) == 20, f"expected len() 20 after 20 upserts, got {len(store)}")
        results = store.search(vectors, k=3)
        require(len(results) == 20, f"expected 20 result lists for 20 queries, got {len(results)}")
        for i, hits in enumerate(results):
            require(hits, f"query {i}: expected hits, got none")
            require(
                isinstance(hits[0], Hit),
                f"query {i}: expected Hit results, got {type(hits[0]).__name__}",
            )
            require(hits[0].id == ids[i], f"query {i}: expected {ids[i]} nearest, got {hits[0].id}")
            scores = [h.score for h in hits]
            require(
                scores == sorted(scores, reverse=True),
                f"query {i}: expected hits best first, got scores {scores}",
            )

    def upsert_replaces() -> None:
        store = filled()
        store.upsert(["v0"], -vectors[:1], [{"group": "even"}])
        require(
            len(store) == 20,
            f"expected upserting an existing id to keep 20 entries, got {len(store)}",
        )
        nearest = store.search(-vectors[:1], k=1)[0][0].id
        require(nearest == "v0", f"expected the replaced vector v0 nearest, got {nearest}")

    def delete_removes_and_unknown_fails() -> None:
        store = filled()
        store.delete(["v3"])
        require(len(store) == 19, f"expected 19 entries after one delete, got {len(store)}")
        found = [h.id for h in store.search(vectors[3:4], k=19)[0]]
        require("v3" not in found, "expected the deleted id v3 gone, search still finds it")
        try:
            store.delete(["no-such-id"])
        except NotFoundError:
            return
        raise failure("expected delete() of an unknown id to raise NotFoundError, it returned")

    def filter_cannot_be_escaped() -> None:
        store = filled()
        for hits in store.search(vectors, k=20, where={"group": "even"}):
            leaked = [h.id for h in hits if h.metadata.get("group") != "even"]
            require(not leaked, f"expected only group 'even' with the filter, got {leaked}")

    def k_larger_than_store() -> None:
        hits = filled().search(vectors[:1], k=100)[0]
        require(len(hits) == 20, f"expected all 20 entries for k=100, got {len(hits)}")

    def empty_store_returns_nothing() -> None:
        results = make_store(dim).search(vectors[:2], k=5)
        require(results == [[], []], f"expected [[], []] from an empty store, got {results!r}")

    def rejects_bad_vectors() -> None:
        store = filled()
        expect_genarch_error(lambda: store.search(torch.randn(1, dim + 1), k=1), "wrong dim query")
        nan = torch.full((1, dim), float("nan"))
        expect_genarch_error(lambda: store.search(nan, k=1), "NaN query")
        expect_genarch_error(lambda: store.upsert(["x"], nan), "NaN vector")
        expect_genarch_error(lambda: store.search(vectors[:1], k=0), "k=0")

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
    subject = label_of(retriever, label)

    def best_first_and_at_most_k() -> None:
        for query in queries:
            for k in (1, 3):
                results = retriever.retrieve(query, k)
                require(
                    len(results) <= k,
                    f"{query!r}: expected at most {k} result(s), got {len(results)}",
                )
                for result in results:
                    require(
                        isinstance(result, ScoredChunk) and isinstance(result.chunk, Chunk),
                        f"{query!r}: expected ScoredChunk results holding a Chunk, got {result!r}",
                    )
                scores = [r.score for r in results]
                require(
                    scores == sorted(scores, reverse=True),
                    f"{query!r}: expected results best first, got scores {scores}",
                )

    def deterministic() -> None:
        for query in queries:
            assert_same(retriever.retrieve(query, 3), retriever.retrieve(query, 3), path=query)

    def rejects_bad_queries() -> None:
        expect_genarch_error(lambda: retriever.retrieve(42, 3), "retrieve(42)")  # type: ignore[arg-type]
        expect_genarch_error(lambda: retriever.retrieve(queries[0], 0), "retrieve(k=0)")

    checks = [best_first_and_at_most_k, deterministic, rejects_bad_queries]
    return [Check("Retriever", c.__name__, subject, c) for c in checks]


# ------------------------------------------------------------------ PromptTemplate


def prompt_template_checks(
    template: PromptTemplate, values: Mapping[str, object], *, label: str | None = None
) -> list[Check]:
    """Checks for a :class:`~genarch.protocols.PromptTemplate`; ``values`` fill every variable."""
    subject = label_of(template, label)

    def renders_every_variable() -> None:
        require(
            set(values) == set(template.variables),
            f"expected values for the variables {sorted(template.variables)}, "
            f"got values for {sorted(values)}",
        )
        text = template.render(values)
        require(
            isinstance(text, str), f"expected render() to return str, got {type(text).__name__}"
        )
        for name, value in values.items():
            require(
                str(value) in text,
                f"expected the value of {name!r} ({value!r}) in the rendered prompt, got {text!r}",
            )

    def values_are_inserted_literally() -> None:
        hostile = ["{0.__class__}", "{{secret}}", "{" + next(iter(values), "x") + "}", "%(x)s $x"]
        for probe in hostile:
            text = template.render(dict.fromkeys(values, probe))
            require(probe in text, f"expected the value {probe!r} inserted literally, got {text!r}")
            require("<class" not in text, f"expected {probe!r} not to be evaluated, got {text!r}")

    def missing_and_unexpected_variables_fail() -> None:
        if values:
            missing = dict(itertools.islice(values.items(), len(values) - 1))
            expect_genarch_error(lambda: template.render(missing), "a missing variable")
        expect_genarch_error(
            lambda: template.render({**values, "surely_not_a_variable": 1}),
            "an unexpected variable",
        )

    checks = [
        renders_every_variable,
        values_are_inserted_literally,
        missing_and_unexpected_variables_fail,
    ]
    return [Check("PromptTemplate", c.__name__, subject, c) for c in checks]


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
