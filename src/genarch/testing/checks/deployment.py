"""Checks for the deployment layer: :class:`~genarch.protocols.Deployer`."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from typing import Any

from genarch._io import sha256_file
from genarch.errors import IntegrityError
from genarch.protocols import Deployer
from genarch.testing._compare import assert_same
from genarch.testing._kit import Check, failure, label_of, require, run_checks

__all__ = ["check_deployer", "deployer_checks"]


def deployer_checks(
    deployer: Deployer,
    component: Any,
    requests: Sequence[Any],
    *,
    label: str | None = None,
) -> list[Check]:
    """Checks for a :class:`~genarch.protocols.Deployer` serving a persistable generator."""
    subject = label_of(deployer, label)

    def package_lists_every_file_with_its_hash() -> None:
        with tempfile.TemporaryDirectory() as root:
            manifest = deployer.package(component, os.path.join(root, "a"), name="m", version="1")
            require(manifest.files, "expected the manifest to list the files, it lists none")
            for relative, digest in manifest.files.items():
                path = os.path.join(root, "a", relative)
                require(
                    os.path.isfile(path),
                    f"expected {relative} (listed in the manifest) to be written, it is missing",
                )
                actual = sha256_file(path)
                require(
                    actual == digest.sha256,
                    f"{relative}: expected sha256 {digest.sha256}, got {actual}",
                )

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
            raise failure(
                "expected deploy() to raise IntegrityError for an artefact whose file was "
                "modified, it deployed it"
            )

    checks = [
        package_lists_every_file_with_its_hash,
        endpoint_matches_component,
        refuses_tampered_artifacts,
    ]
    return [Check("Deployer", c.__name__, subject, c) for c in checks]


def check_deployer(
    deployer: Deployer, component: Any, requests: Sequence[Any], **options: Any
) -> list[str]:
    """Run :func:`deployer_checks`; raise :class:`~genarch.errors.ConformanceError` on failure."""
    return run_checks(deployer_checks(deployer, component, requests, **options))
