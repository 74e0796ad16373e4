"""Checks for the model layer: :class:`~genarch.protocols.Generator` and its capabilities.

Besides the core contract (seeded determinism, no state between calls, batch
equals single, bad requests refused) the checks for the optional capabilities
run when the generator has them: persistence and config round trips,
streaming (:class:`~genarch.protocols.StreamingGenerator`), a latent space
(:class:`~genarch.protocols.LatentGenerator`) and conditioning
(:class:`~genarch.protocols.ConditionalGenerator`, where ``conditions`` is
always present and ``{}`` means unconditional).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from genarch.protocols import Generator
from genarch.testing._compare import assert_same
from genarch.testing._kit import (
    Check,
    assert_config_roundtrip,
    expect_genarch_error,
    is_seeded,
    label_of,
    require,
    run_checks,
    saved_and_loaded,
    scrambled_global_rngs,
    supports_config,
    supports_persistence,
)

__all__ = ["check_generator", "generator_checks"]


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
    subject = label_of(generator, label)
    seeded = [r for r in requests if is_seeded(r)]

    def has_the_methods() -> None:
        require(
            isinstance(generator, Generator),
            f"expected generate() and generate_batch(), {type(generator).__name__} lacks one",
        )

    def seeded_determinism() -> None:
        require(seeded, "expected at least one request with a seed, got none")
        for request in seeded:
            with scrambled_global_rngs():
                first = generator.generate(request)
            with scrambled_global_rngs():
                second = generator.generate(request)
            assert_same(second, first, path="same seeded request, second call")

    def no_state_between_calls() -> None:
        require(seeded, "expected at least one request with a seed, got none")
        first = generator.generate(seeded[0])
        for request in requests[1:]:
            generator.generate(request)
        assert_same(generator.generate(seeded[0]), first, path="after other requests")

    def batch_matches_single() -> None:
        batch = list(generator.generate_batch(list(seeded)))
        single = [generator.generate(r) for r in seeded]
        assert_same(batch, single, atol=atol, path="generate_batch vs generate")

    def empty_batch() -> None:
        results = generator.generate_batch([])
        require(
            len(results) == 0, f"expected generate_batch([]) to return nothing, got {results!r}"
        )

    def rejects_wrong_request_type() -> None:
        expect_genarch_error(lambda: generator.generate(object()), "generate(object())")
        expect_genarch_error(
            lambda: generator.generate_batch([object()]), "generate_batch([object()])"
        )

    def rejects_invalid_requests() -> None:
        for index, bad in enumerate(invalid_requests):
            expect_genarch_error(
                functools.partial(generator.generate, bad), f"invalid request {index}"
            )

    def save_load_roundtrip() -> None:
        loaded = saved_and_loaded(generator)
        for request in seeded:
            assert_same(loaded.generate(request), generator.generate(request), path="loaded")

    def config_roundtrip() -> None:
        assert_config_roundtrip(generator)

    def stream_matches_generate() -> None:
        stream = generator.stream  # type: ignore[attr-defined]
        for request in seeded:
            pieces = list(stream(request))
            assert_same(list(stream(request)), pieces, path="second stream")
            result = generator.generate(request)
            if hasattr(result, "text") and all(isinstance(p, str) for p in pieces):
                streamed = "".join(pieces)
                require(
                    streamed == result.text,
                    f"expected the streamed pieces to join to the generated text "
                    f"{result.text!r}, got {streamed!r}",
                )

    def session_matches_generate() -> None:
        # Two rows for more requests: requests join as rows free up, mid-decoding.
        session = generator.open_session(2)  # type: ignore[attr-defined]
        waiting = list(seeded)
        rows: dict[int, Any] = {}
        pieces: dict[int, list[Any]] = {}
        results: dict[int, Any] = {}
        for _ in range(100_000):
            while waiting and session.free_rows > 0:
                request = waiting.pop(0)
                rows[session.join(request)] = request
            if not waiting and session.active_rows == 0:
                break
            for update in session.step():
                require(update.row in rows, f"expected updates for joined rows, got {update.row}")
                pieces.setdefault(update.row, []).append(update.piece)
                if update.result is not None:
                    results[update.row] = update.result
        else:
            raise AssertionError("expected the session to finish its rows within 100,000 steps")
        require(len(results) == len(rows), f"expected {len(rows)} results, got {len(results)}")
        for row, request in rows.items():
            assert_same(results[row], generator.generate(request), atol=atol, path="session row")
            text = getattr(results[row], "text", None)
            if isinstance(text, str) and all(isinstance(p, str) for p in pieces[row]):
                require(
                    "".join(pieces[row]) == text,
                    f"expected a row's pieces to join to its text {text!r}, got {pieces[row]!r}",
                )
        first = session.join(seeded[0])
        session.join(seeded[-1])
        expect_genarch_error(lambda: session.join(seeded[0]), "join with no free row")
        session.cancel(first)
        require(session.active_rows == 1, f"expected 1 row after a cancel, {session.active_rows}")
        session.close()
        require(session.active_rows == 0, "expected close() to drop every row")

    def latent_space() -> None:
        shape = tuple(generator.latent_shape)  # type: ignore[attr-defined]
        z = torch.randn((2, *shape), generator=torch.Generator().manual_seed(0))
        decoded = generator.decode(z)  # type: ignore[attr-defined]
        assert_same(generator.decode(z), decoded, path="decode twice")  # type: ignore[attr-defined]
        require(decoded.shape[0] == 2, f"expected decode to keep 2 latents, got {decoded.shape[0]}")
        encoded = generator.encode(decoded)  # type: ignore[attr-defined]
        require(
            tuple(encoded.shape) == (2, *shape),
            f"expected encode to give shape {(2, *shape)}, got {tuple(encoded.shape)}",
        )
        path = generator.interpolate(z[0], z[1], 5)  # type: ignore[attr-defined]
        require(
            tuple(path.shape) == (5, *shape),
            f"expected interpolate to give shape {(5, *shape)}, got {tuple(path.shape)}",
        )
        assert_same(path[0], z[0], atol=1e-5, path="interpolate start")
        assert_same(path[-1], z[1], atol=1e-5, path="interpolate end")

    def conditions_are_described() -> None:
        conditions = generator.conditions  # type: ignore[attr-defined]
        require(
            isinstance(conditions, Mapping),
            f"expected conditions to be a mapping, got {type(conditions).__name__}",
        )
        for name, values in conditions.items():
            require(isinstance(name, str), f"expected condition names to be str, got {name!r}")
            require(
                isinstance(values, Sequence) and not isinstance(values, str) and len(values) > 0,
                f"expected condition {name!r} to list the values it accepts, got {values!r}",
            )
            for value in values:
                require(
                    isinstance(value, str),
                    f"expected the values of condition {name!r} to be str, got {value!r}",
                )

    def unconditional_has_empty_conditions() -> None:
        conditions = generator.conditions  # type: ignore[attr-defined]
        require(
            isinstance(conditions, Mapping) and len(conditions) == 0,
            f"expected an unconditional generator's conditions to be an empty mapping ({{}}), "
            f"got {conditions!r}",
        )

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
    if supports_persistence(generator):
        checks.append(save_load_roundtrip)
    if supports_config(generator):
        checks.append(config_roundtrip)
    if callable(getattr(generator, "stream", None)):
        checks.append(stream_matches_generate)
    if callable(getattr(generator, "open_session", None)):
        checks.append(session_matches_generate)
    if all(callable(getattr(generator, m, None)) for m in ("encode", "decode", "interpolate")):
        checks.append(latent_space)
    if hasattr(generator, "conditions"):  # conditional-capable: {} means unconditional
        if getattr(generator, "conditions", None):
            checks.append(conditions_are_described)
        else:
            checks.append(unconditional_has_empty_conditions)
    return [Check("Generator", c.__name__, subject, c) for c in checks]


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
