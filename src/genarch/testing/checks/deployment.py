"""Checks for the deployment layer: :class:`~genarch.protocols.Deployer` and
:class:`~genarch.protocols.Endpoint`.

:func:`deployer_checks` packages a component, then checks each step of
package → verify → load → serve: every file listed with its hash, ``verify``
giving back the manifest, ``load`` rebuilding a component that answers the
same, tampering (a changed byte in *every* listed file, a missing file, an
extra file) refused with :class:`~genarch.errors.IntegrityError` naming the
file, a second ``package`` replacing the first, and the deployed endpoint
keeping the :class:`~genarch.protocols.Endpoint` contract
(:func:`endpoint_checks`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from genarch._io import sha256_file
from genarch.errors import GenarchError, IntegrityError
from genarch.protocols import Deployer, Endpoint
from genarch.registry import Registry
from genarch.testing._compare import assert_same
from genarch.testing._kit import (
    Check,
    expect_genarch_error,
    failure,
    label_of,
    require,
    run_checks,
)

__all__ = ["check_deployer", "check_endpoint", "deployer_checks", "endpoint_checks"]

Answer = Callable[[Any, Any], Any]
MAX_FILES_TAMPERED = 16  # artefacts of many files: the first 16, so the check stays fast


def default_answer(component: Any, request: Any) -> Any:
    """What ``component`` gives for ``request``: ``generate`` of a generator,
    ``extract`` of a feature extractor (a request is then a batch of items)."""
    if callable(getattr(component, "generate", None)):
        return component.generate(request)
    if callable(getattr(component, "extract", None)):
        return component.extract(request)
    raise failure(
        f"cannot tell how {type(component).__name__} answers a request; "
        "pass answer=lambda component, request: ..."
    )


def endpoint_checks(
    make_endpoint: Callable[[], Endpoint[Any, Any]],
    requests: Sequence[Any],
    expected: Sequence[Any],
    *,
    label: str | None = None,
) -> list[Check]:
    """Checks for an :class:`~genarch.protocols.Endpoint`.

    Args:
        make_endpoint: builds a fresh, open endpoint (each check closes its own).
        requests: valid requests.
        expected: what the served component gives for each request.
        label: the subject shown in reports.
    """
    subject = label or "Endpoint"
    if len(expected) != len(requests):
        raise ValueError("endpoint_checks: give one expected result per request")

    def invoke_gives_what_the_component_gives() -> None:
        with make_endpoint() as endpoint:
            for index, request in enumerate(requests):
                assert_same(endpoint.invoke(request), expected[index], path=f"invoke[{index}]")

    def invoke_batch_equals_invoke() -> None:
        with make_endpoint() as endpoint:
            results = endpoint.invoke_batch(list(requests))
            require(
                len(results) == len(requests),
                f"expected invoke_batch to return {len(requests)} results, got {len(results)}",
            )
            for index, result in enumerate(results):
                assert_same(result, expected[index], path=f"invoke_batch[{index}]")

    def health_is_ready_until_closed() -> None:
        endpoint = make_endpoint()
        health = endpoint.health()
        require(health.ready is True, f"expected a new endpoint to be ready, health is {health}")
        require(
            isinstance(health.status, str) and health.status,
            f"expected health().status to be a word, got {health.status!r}",
        )
        endpoint.close()
        require(
            endpoint.health().ready is False,
            f"expected health().ready to be False after close(), got {endpoint.health()}",
        )
        endpoint.close()  # idempotent: must not raise
        expect_genarch_error(lambda: endpoint.invoke(requests[0]), "invoke after close()")
        expect_genarch_error(
            lambda: endpoint.invoke_batch(list(requests)), "invoke_batch after close()"
        )

    def context_manager_closes_on_exit() -> None:
        with make_endpoint() as endpoint:
            require(endpoint.health().ready, "expected the endpoint to be ready inside `with`")
        require(
            not endpoint.health().ready,
            "expected leaving the `with` block to close the endpoint, it is still ready",
        )

    checks = [
        invoke_gives_what_the_component_gives,
        invoke_batch_equals_invoke,
        health_is_ready_until_closed,
        context_manager_closes_on_exit,
    ]
    return [Check("Endpoint", c.__name__, subject, c) for c in checks]


def deployer_checks(
    deployer: Deployer,
    component: Any,
    requests: Sequence[Any],
    *,
    answer: Answer = default_answer,
    registry: Registry | None = None,
    label: str | None = None,
) -> list[Check]:
    """Checks for a :class:`~genarch.protocols.Deployer` of a persistable component.

    Args:
        deployer: the deployer under test.
        component: a persistable component the deployer can package and serve.
        requests: valid requests for the served endpoint.
        answer: what a component gives for a request (default: ``generate``, or
            ``extract`` for a feature extractor).
        registry: passed to ``package``, ``load`` and ``deploy`` (for a
            component genarch's builtin registry does not hold).
        label: the subject shown in reports.
    """
    subject = label_of(deployer, label)

    @contextmanager
    def packaged(version: str = "1") -> Iterator[tuple[Path, Any]]:
        with tempfile.TemporaryDirectory(prefix="genarch-deploy-check-") as root:
            target = Path(root, "artefact")
            manifest = deployer.package(
                component, target, name="m", version=version, registry=registry
            )
            yield target, manifest

    def refused(action: Callable[[], object], what: str, culprit: str) -> None:
        try:
            action()
        except IntegrityError as error:
            require(
                culprit in str(error),
                f"{what}: expected the IntegrityError to name {culprit!r}, it says: {error}",
            )
            return
        except GenarchError as error:
            raise failure(
                f"{what}: expected IntegrityError, got {type(error).__name__}: {error}"
            ) from error
        raise failure(f"{what}: expected IntegrityError naming {culprit!r}, nothing was raised")

    def package_lists_every_file_with_its_hash() -> None:
        with packaged() as (target, manifest):
            require(manifest.files, "expected the manifest to list the files, it lists none")
            for relative, digest in manifest.files.items():
                path = target / relative
                require(
                    path.is_file(),
                    f"expected {relative} (listed in the manifest) to be written, it is missing",
                )
                actual = sha256_file(path)
                require(
                    actual == digest.sha256,
                    f"{relative}: expected sha256 {digest.sha256}, got {actual}",
                )
                require(
                    path.stat().st_size == digest.size,
                    f"{relative}: expected size {digest.size}, got {path.stat().st_size}",
                )

    def verify_returns_the_packaged_manifest() -> None:
        with packaged() as (target, manifest):
            assert_same(deployer.verify(target), manifest, path="verify(directory)")

    def load_rebuilds_a_component_that_answers_the_same() -> None:
        with packaged() as (target, _):
            loaded = deployer.load(target, registry)
            for index, request in enumerate(requests):
                assert_same(
                    answer(loaded, request), answer(component, request), path=f"load[{index}]"
                )

    def refuses_a_changed_byte_in_every_file() -> None:
        with packaged() as (target, manifest):
            pristine = target.with_name("pristine")
            shutil.copytree(target, pristine)
            for relative in sorted(manifest.files)[:MAX_FILES_TAMPERED]:
                shutil.rmtree(target)
                shutil.copytree(pristine, target)
                data = bytearray((target / relative).read_bytes())
                if data:
                    data[len(data) // 2] ^= 0x01
                else:
                    data = bytearray(b"\0")
                (target / relative).write_bytes(bytes(data))
                refused(
                    lambda: deployer.verify(target), f"verify after changing {relative}", relative
                )
                refused(
                    lambda: deployer.deploy(target, registry),
                    f"deploy after changing {relative}",
                    relative,
                )

    def refuses_a_missing_file() -> None:
        with packaged() as (target, manifest):
            victim = sorted(manifest.files)[-1]
            os.remove(target / victim)
            refused(lambda: deployer.verify(target), f"verify without {victim}", victim)
            refused(lambda: deployer.load(target, registry), f"load without {victim}", victim)

    def refuses_an_extra_file() -> None:
        with packaged() as (target, _):
            (target / "extra.bin").write_bytes(b"not part of the artefact")
            refused(lambda: deployer.verify(target), "verify with extra.bin added", "extra.bin")
            refused(
                lambda: deployer.deploy(target, registry),
                "deploy with extra.bin added",
                "extra.bin",
            )

    def package_again_replaces_the_artefact() -> None:
        with packaged("1") as (target, _):
            deployer.package(component, target, name="m", version="2", registry=registry)
            version = deployer.verify(target).version
            require(version == "2", f"expected the second package to win, version is {version!r}")

    def deployed_endpoint_keeps_the_endpoint_contract() -> None:
        with packaged() as (target, _):
            expected = [answer(component, request) for request in requests]
            run_checks(
                endpoint_checks(
                    lambda: deployer.deploy(target, registry),
                    requests,
                    expected,
                    label=f"{subject} endpoint",
                )
            )

    checks = [
        package_lists_every_file_with_its_hash,
        verify_returns_the_packaged_manifest,
        load_rebuilds_a_component_that_answers_the_same,
        refuses_a_changed_byte_in_every_file,
        refuses_a_missing_file,
        refuses_an_extra_file,
        package_again_replaces_the_artefact,
        deployed_endpoint_keeps_the_endpoint_contract,
    ]
    return [Check("Deployer", c.__name__, subject, c) for c in checks]


def check_deployer(
    deployer: Deployer, component: Any, requests: Sequence[Any], **options: Any
) -> list[str]:
    """Run :func:`deployer_checks`; raise :class:`~genarch.errors.ConformanceError` on failure."""
    return run_checks(deployer_checks(deployer, component, requests, **options))


def check_endpoint(
    make_endpoint: Callable[[], Endpoint[Any, Any]],
    requests: Sequence[Any],
    expected: Sequence[Any],
    **options: Any,
) -> list[str]:
    """Run :func:`endpoint_checks`; raise :class:`~genarch.errors.ConformanceError` on failure."""
    return run_checks(endpoint_checks(make_endpoint, requests, expected, **options))
