"""Artefacts: a component's save, a manifest and a model card, verified before use.

An artefact is a directory::

    component/      the component's own save (genarch.persistence, with its SHA256SUMS)
    README.md       the model card (genarch.deploy.model_card)
    manifest.json   an ArtifactManifest: every other file's size and SHA-256, the
                    component's registry name, genarch/torch/python versions, time
    SHA256SUMS      every file's SHA-256 (manifest.json included), sha256sum format

:class:`LocalDeployer` writes it in one :func:`~genarch._io.atomic_directory`
(built in a temporary sibling, fsynced, renamed), so a crash at any moment
leaves the previous artefact or the new one. :meth:`LocalDeployer.verify`
hashes every file and compares it with *both* lists before anything is
loaded; a file that both lists disagree with is named as changed, missing or
extra, and a file that only one list disagrees with means that list itself
was changed. The SHA-256 of ``manifest.json`` is the artefact's content
address (:func:`artifact_digest`), which
:class:`~genarch.deploy.ModelRegistry` records and checks.

Threat model: the hashes catch damage, truncation, interrupted copies and
edits. They are not a signature: whoever can rewrite the files can rewrite
both lists, unless the digest is anchored elsewhere (a registry, a deployment
config) and passed as ``digest=``. Nothing guards against a writer changing
files *between* ``verify`` and ``load``; serve from a directory only you can
write.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel

from genarch._io import (
    MANIFEST_FILE,
    atomic_directory,
    read_manifest,
    readable_directory,
    sha256_file,
)
from genarch._io import write_manifest as write_sums
from genarch._version import __version__
from genarch.data.report import DataReport
from genarch.deploy.endpoints import LocalEndpoint, serve
from genarch.deploy.model_card import count_parameters, render_model_card
from genarch.errors import (
    GenarchError,
    IntegrityError,
    InvalidInputError,
    NotFoundError,
    RegistryError,
)
from genarch.protocols import Persistable
from genarch.registry import Registry, builtin_registry
from genarch.schemas import ArtifactManifest, Evaluation, FileDigest, PipelineTrace, TrainingReport
from genarch.validation import describe

__all__ = [
    "ARTIFACT_FORMAT",
    "CARD_FILE",
    "COMPONENT_DIRECTORY",
    "MANIFEST_JSON",
    "LocalDeployer",
    "artifact_digest",
    "check_name",
]

MANIFEST_JSON = "manifest.json"
CARD_FILE = "README.md"
COMPONENT_DIRECTORY = "component"
ARTIFACT_FORMAT = "genarch.artifact/1"
"""Recorded in ``manifest.metadata["format"]``: the artefact layout and its version."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")

PathLike = str | os.PathLike[str]


def check_name(value: object, argument: str) -> str:
    """``value`` if it is a safe model name, version or alias, else :class:`InvalidInputError`.

    Safe: 1 to 128 characters, letters, digits and ``. _ + -``, starting with a
    letter or digit — so it is a file name everywhere and never holds ``@`` or ``/``.

    Examples:
        >>> check_name("1.2.0", "version")
        '1.2.0'
        >>> check_name("../etc", "name")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        genarch.errors.InvalidInputError: name must be 1-128 letters, digits or '._+-' ..., got str: '../etc'
    """
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise InvalidInputError(
            f"{argument} must be 1-128 letters, digits or '._+-' starting with a letter "
            f"or digit, got {describe(value)}"
        )
    return value


def artifact_digest(directory: PathLike) -> str:
    """The content address of the artefact in ``directory``: SHA-256 of its ``manifest.json``.

    It changes when any file changes (the manifest lists every file's SHA-256).
    This reads one file and checks nothing else; :meth:`LocalDeployer.verify` checks.

    Raises:
        NotFoundError: no ``manifest.json`` there.
    """
    root = readable_directory(directory)
    if root is None or not (root / MANIFEST_JSON).is_file():
        raise NotFoundError(f"no artefact in {str(directory)!r} ({MANIFEST_JSON} is missing)")
    return sha256_file(root / MANIFEST_JSON)


def _read_sums(path: Path) -> dict[str, str] | str:
    """The entries of a ``SHA256SUMS`` file, or the sentence saying why there are none."""
    if not path.is_file():
        return f"{MANIFEST_FILE} is missing"
    try:
        return read_manifest(path)
    except ValueError as error:
        return str(error)


class _Files:
    """The files below an artefact's root, each hashed at most once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.links: list[str] = []
        self.present: set[str] = set()
        for path in root.rglob("*"):
            relative = path.relative_to(root).as_posix()
            if path.is_symlink():
                self.links.append(relative)
            elif path.is_file():
                self.present.add(relative)
        self._digests: dict[str, str] = {}

    def sha256(self, name: str) -> str:
        if name not in self._digests:
            self._digests[name] = sha256_file(self.root / name)
        return self._digests[name]

    def matches(self, name: str, digest: FileDigest | str | None) -> bool:
        if digest is None or name not in self.present:
            return False
        if isinstance(digest, FileDigest):
            if (self.root / name).stat().st_size != digest.size:
                return False
            digest = digest.sha256
        return self.sha256(name) == digest


def _file_problems(
    files: _Files, listed: Mapping[str, FileDigest] | None, sums: dict[str, str] | None
) -> list[str]:
    """One sentence per problem, blaming the file both lists disagree with, or the list."""
    names = (files.present | set(listed or {}) | set(sums or {})) - {MANIFEST_JSON, MANIFEST_FILE}
    problems = [f"{name} is a symbolic link (artefacts hold plain files)" for name in files.links]
    for name in sorted(names):
        by_manifest = listed is None or files.matches(name, listed.get(name))
        by_sums = sums is None or files.matches(name, sums.get(name))
        if by_manifest and by_sums:
            continue
        if (not by_manifest and not by_sums) or listed is None or sums is None:
            lists = [entries for entries in (listed, sums) if entries is not None]
            if name not in files.present:
                problems.append(f"{name} is missing")
            elif not any(name in entries for entries in lists):
                problems.append(f"{name} is an extra file, not part of the artefact")
            else:
                problems.append(f"{name} was changed (its SHA-256 or size differs)")
        elif not by_manifest:
            problems.append(f"{MANIFEST_JSON} was changed: its entry for {name} is wrong")
        else:
            problems.append(f"{MANIFEST_FILE} was changed: its line for {name} is wrong")
    return problems


def _verify(directory: PathLike, digest: str | None) -> tuple[Path, ArtifactManifest, str]:
    root = readable_directory(directory)  # also the copy an interrupted package left aside
    if root is None or not any(root.iterdir()):
        raise NotFoundError(
            f"no artefact in {str(directory)!r} (the directory is missing or empty)"
        )
    files = _Files(root)
    where = f"the artefact in {str(root)!r}"
    sums_or_problem = _read_sums(root / MANIFEST_FILE)
    sums = sums_or_problem if isinstance(sums_or_problem, dict) else None
    problems = [] if sums is not None else [str(sums_or_problem)]
    manifest: ArtifactManifest | None = None
    actual = None
    if MANIFEST_JSON not in files.present:
        problems.append(f"{MANIFEST_JSON} is missing")
    else:
        actual = files.sha256(MANIFEST_JSON)
        try:
            manifest = ArtifactManifest.model_validate_json((root / MANIFEST_JSON).read_bytes())
        except (ValueError, OSError) as error:
            problems.append(f"{MANIFEST_JSON} was changed: it is not a valid manifest ({error})")
    listed = manifest.files if manifest is not None else None
    file_problems = _file_problems(files, listed, sums)
    if actual is not None and sums is not None and sums.get(MANIFEST_JSON) != actual:
        if manifest is not None and not file_problems:
            file_problems.append(
                f"{MANIFEST_JSON} does not match its line in {MANIFEST_FILE} "
                "(one of the two was changed)"
            )
        elif manifest is not None:
            file_problems.append(f"{MANIFEST_JSON} was changed (its SHA-256 differs)")
    problems += file_problems
    if digest is not None and actual is not None and actual != digest:
        problems.append(
            f"{MANIFEST_JSON} has SHA-256 {actual}, the artefact registered is {digest}"
        )
    if problems or manifest is None or actual is None:
        raise IntegrityError(f"{where} failed verification: {'; '.join(problems[:8])}")
    return root, manifest, actual


def _describe_component(component: object) -> dict[str, Any]:
    config = getattr(component, "config", None)
    return config.model_dump(mode="json") if isinstance(config, BaseModel) else {}


class LocalDeployer:
    """Packages components into verified artefacts and serves them in this process.

    Implements :class:`~genarch.protocols.Deployer`: :meth:`package` →
    :meth:`verify` → :meth:`load` → :meth:`serve`, with :meth:`deploy` doing
    the last three. Works for every persistable component whose class a
    :class:`~genarch.registry.Registry` names: genarch's registered ones
    (image generators, feature extractors, vector stores, ...) with the
    default registry, and anything else — a
    :class:`~genarch.models.TextGenerator`, your own classes — through a
    registry you pass to :meth:`package` and :meth:`load`::

        registry = builtin_registry().register("genarch.TextGenerator", TextGenerator)

    (TextGenerator is built from objects, a GPT and a tokenizer, not from a
    config, so genarch's builtin registry of configurable components does not
    hold it.)

    Examples:
        >>> import tempfile
        >>> from genarch.features import TfidfVectorizer
        >>> tfidf = TfidfVectorizer().fit(["hello world", "hello there"])
        >>> deployer, folder = LocalDeployer(), tempfile.mkdtemp() + "/tfidf"
        >>> manifest = deployer.package(tfidf, folder, name="tfidf", version="1")
        >>> manifest.component, sorted(manifest.files)
        ('genarch.TfidfVectorizer', ['README.md', 'component/SHA256SUMS', 'component/tfidf.json'])
        >>> with deployer.deploy(folder) as endpoint:
        ...     tuple(endpoint.invoke(["hello"]).shape)
        (1, 3)
    """

    def __repr__(self) -> str:
        return "LocalDeployer()"

    def package(
        self,
        component: Persistable,
        directory: PathLike,
        *,
        name: str,
        version: str,
        registry: Registry | None = None,
        intended_use: str | None = None,
        limitations: str | None = None,
        lineage: PipelineTrace | DataReport | None = None,
        training: TrainingReport | None = None,
        evaluation: Mapping[str, float] | Evaluation | None = None,
        license: str | None = None,
        datasets: tuple[str, ...] = (),
    ) -> ArtifactManifest:
        """Write ``component`` as an artefact into ``directory``, atomically replacing it.

        Args:
            component: a :class:`~genarch.protocols.Persistable` component whose
                class ``registry`` names.
            directory: where the artefact goes (created with its parents).
            name: the model's name (letters, digits, ``._+-``).
            version: its version, same characters (``"1.2.0"``).
            registry: names the component's class (default:
                :func:`~genarch.registry.builtin_registry`).
            intended_use: the model card's "Intended use" section.
            limitations: the model card's "Limitations" section.
            lineage: the data pipeline's trace or :class:`~genarch.data.DataReport`.
            training: the :class:`~genarch.schemas.TrainingReport` of its training.
            evaluation: figures to report (``{"perplexity": 12.3}``) or an
                :class:`~genarch.schemas.Evaluation`.
            license: a license identifier for the card's front matter.
            datasets: dataset names for the card's front matter.

        Returns:
            The manifest written to ``manifest.json``.

        Raises:
            InvalidInputError: a name, version or card argument is invalid, or
                the component is not persistable.
            RegistryError: ``registry`` does not name the component's class.
        """
        if not callable(getattr(component, "save", None)) or not callable(
            getattr(type(component), "load", None)
        ):
            raise InvalidInputError(
                f"package: component must be Persistable (save() and a load() classmethod), "
                f"got {describe(component)}"
            )
        check_name(name, "name")
        check_name(version, "version")
        _check_card_arguments(lineage, training, evaluation, intended_use, limitations)
        component_name = (registry or builtin_registry()).name_of(type(component))
        created_at = _dt.datetime.now(_dt.UTC)
        parameters = count_parameters(component)
        card = render_model_card(
            name=name,
            version=version,
            component=component_name,
            component_class=type(component).__name__,
            parameters=parameters,
            created_at=created_at,
            intended_use=intended_use,
            limitations=limitations,
            lineage=lineage,
            training=training,
            evaluation=evaluation,
            license=license,
            datasets=tuple(datasets),
        )
        with atomic_directory(directory) as staging:
            component.save(staging / COMPONENT_DIRECTORY)
            (staging / CARD_FILE).write_text(card, "utf-8")
            files = {
                path.relative_to(staging).as_posix(): FileDigest(
                    sha256=sha256_file(path), size=path.stat().st_size
                )
                for path in sorted(staging.rglob("*"))
                if path.is_file()
            }
            manifest = ArtifactManifest(
                name=name,
                version=version,
                component=component_name,
                config=_describe_component(component),
                files=files,
                genarch_version=__version__,
                created_at=created_at,
                metadata={
                    "format": ARTIFACT_FORMAT,
                    "torch_version": torch.__version__,
                    "python_version": platform.python_version(),
                    "parameters": parameters,
                },
            )
            (staging / MANIFEST_JSON).write_text(manifest.model_dump_json(indent=2) + "\n", "utf-8")
            write_sums(staging)
        return manifest

    def verify(self, directory: PathLike, *, digest: str | None = None) -> ArtifactManifest:
        """Check every file of the artefact in ``directory``; return its manifest.

        Nothing is loaded: the manifests are parsed and the files hashed.

        Args:
            directory: the artefact (or the complete copy an interrupted
                ``package`` left aside).
            digest: when given, ``manifest.json`` must have this SHA-256 (the
                content address a registry recorded).

        Raises:
            NotFoundError: no artefact there.
            IntegrityError: a file was changed, is missing or is extra, a list
                was changed, or the digest differs — naming each file.
        """
        return _verify(directory, digest)[1]

    def load(
        self, directory: PathLike, registry: Registry | None = None, *, digest: str | None = None
    ) -> Any:
        """Verify the artefact, then rebuild its component by its registry name.

        Args:
            directory: the artefact.
            registry: where the manifest's component name is looked up
                (default: :func:`~genarch.registry.builtin_registry`); a path
                written in a file is never imported.
            digest: as for :meth:`verify`.

        Raises:
            NotFoundError: no artefact there.
            IntegrityError: verification failed, or the component's save is
                unreadable.
            RegistryError: ``registry`` does not hold the component's name.
        """
        root, manifest, _ = _verify(directory, digest)
        return _rebuild(root, manifest, registry)

    def serve(
        self,
        component: object,
        *,
        name: str | None = None,
        version: str | None = None,
        digest: str | None = None,
    ) -> LocalEndpoint[Any, Any]:
        """An in-process endpoint over ``component`` (see :func:`genarch.deploy.serve`)."""
        return serve(component, name=name, version=version, digest=digest)

    def deploy(
        self, directory: PathLike, registry: Registry | None = None, *, digest: str | None = None
    ) -> LocalEndpoint[Any, Any]:
        """Verify, load and serve the artefact in ``directory``.

        Raises:
            NotFoundError, IntegrityError, RegistryError: as :meth:`load`.
            InvalidInputError: the component cannot be served (see :func:`~genarch.deploy.serve`).
        """
        root, manifest, actual = _verify(directory, digest)
        component = _rebuild(root, manifest, registry)
        return serve(component, name=manifest.name, version=manifest.version, digest=actual)


def _rebuild(root: Path, manifest: ArtifactManifest, registry: Registry | None) -> Any:
    registry = registry or builtin_registry()
    try:
        component_type = registry.resolve(manifest.component)
    except RegistryError as error:
        raise RegistryError(
            f"the artefact {manifest.name}@{manifest.version} holds a {manifest.component!r}: "
            f"{error} Pass load(..., registry=) with a registry that holds it."
        ) from None
    load = getattr(component_type, "load", None)
    if not callable(load):
        raise InvalidInputError(
            f"{manifest.component} ({component_type.__qualname__}) has no load(); "
            "it cannot be rebuilt from an artefact"
        )
    try:
        return load(root / COMPONENT_DIRECTORY)
    except NotFoundError as error:  # verified a moment ago: something removed it since
        raise IntegrityError(f"the artefact in {str(root)!r} is incomplete: {error}") from None
    except GenarchError:
        raise


def _check_card_arguments(
    lineage: object, training: object, evaluation: object, *texts: object
) -> None:
    if lineage is not None and not isinstance(lineage, PipelineTrace | DataReport):
        raise InvalidInputError(
            f"package: lineage must be a PipelineTrace or a DataReport, got {describe(lineage)}"
        )
    if training is not None and not isinstance(training, TrainingReport):
        raise InvalidInputError(
            f"package: training must be a TrainingReport, got {describe(training)}"
        )
    if (
        evaluation is not None
        and not isinstance(evaluation, Evaluation)
        and (
            not isinstance(evaluation, Mapping)
            or not all(
                isinstance(k, str) and isinstance(v, int | float) and not isinstance(v, bool)
                for k, v in evaluation.items()
            )
        )
    ):
        raise InvalidInputError(
            "package: evaluation must map metric names to numbers or be an Evaluation, "
            f"got {describe(evaluation)}"
        )
    for text in texts:
        if text is not None and not isinstance(text, str):
            raise InvalidInputError(
                f"package: intended_use and limitations must be text, got {describe(text)}"
            )
