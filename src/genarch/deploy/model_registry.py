"""A model registry on a local directory: content-addressed artefacts, versions,
aliases, promotion, rollback and an append-only audit log.

Layout under ``root``::

    artifacts/<digest>/                  a copy of each artefact, by the SHA-256 of its manifest.json
    models/<name>/versions/<v>.json      a ModelVersion: name, version, digest, who, when
    models/<name>/aliases/<alias>.json   {"version": ..., "history": [earlier versions]}
    audit.jsonl                          one AuditEntry per line: who, when, action, from -> to
    .lock                                the lock every change holds

Concurrency: every change (register, promote, rollback) is a read-modify-write
done while holding an exclusive ``fcntl.flock`` on ``.lock``, so two processes
promoting at once are serialised — neither's update is lost and the audit log
is in the order the changes happened. Every file is replaced atomically
(written to a temporary sibling, fsynced, renamed), so readers need no lock
and never see half a file; the audit log is appended with one write per line
and fsynced before the change returns. A line torn by a crash mid-append is
cut off by the next append (it described a change that never completed: the
alias file is written only after the line). Locks are advisory and POSIX-only
(``fcntl``); every process must go through this class.

References: ``"name@alias"`` or ``"name@version"``. An alias and a version of
one model can never share a name (both are refused), so a reference is never
ambiguous.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import getpass
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import ValidationError

from genarch._io import atomic_directory, atomic_write_text, readable_directory
from genarch.deploy.artifacts import LocalDeployer, _verify, artifact_digest, check_name
from genarch.deploy.endpoints import LocalEndpoint
from genarch.deploy.records import AuditEntry, ModelVersion
from genarch.errors import IntegrityError, InvalidInputError, NotFoundError
from genarch.registry import Registry
from genarch.schemas import ArtifactManifest
from genarch.validation import describe

__all__ = ["ModelRegistry", "VerifiedComponent", "load_verified"]

PathLike = str | os.PathLike[str]


def _current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (containers)
        return f"uid:{os.getuid()}"


class ModelRegistry:
    """Registered artefacts under ``root``, their versions and aliases (see the module docstring).

    Args:
        root: the registry's directory (created on the first change).
        user: who the audit log names for changes (default: the login name).

    Examples:
        >>> import tempfile
        >>> from genarch.features import TfidfVectorizer
        >>> from genarch.deploy import LocalDeployer
        >>> folder = tempfile.mkdtemp()
        >>> for version, texts in (("1.0.0", ["a b", "b c"]), ("1.1.0", ["a b c", "c d"])):
        ...     _ = LocalDeployer().package(TfidfVectorizer().fit(texts), f"{folder}/{version}",
        ...                                 name="tfidf", version=version)
        >>> registry = ModelRegistry(f"{folder}/registry", user="ada")
        >>> [registry.register(f"{folder}/{v}").version for v in ("1.0.0", "1.1.0")]
        ['1.0.0', '1.1.0']
        >>> _ = registry.promote("tfidf", "1.0.0", "production")
        >>> _ = registry.promote("tfidf", "1.1.0", "production")
        >>> registry.rollback("tfidf", "production").to_version
        '1.0.0'
        >>> with registry.deploy("tfidf@production") as endpoint:
        ...     endpoint.health().version
        '1.0.0'
        >>> [(e.action, e.from_version, e.to_version) for e in registry.audit_log()][2:]
        [('promote', None, '1.0.0'), ('promote', '1.0.0', '1.1.0'), ('rollback', '1.1.0', '1.0.0')]
    """

    def __init__(self, root: PathLike, *, user: str | None = None) -> None:
        if not isinstance(root, str | os.PathLike):
            raise InvalidInputError(f"ModelRegistry: root must be a path, got {describe(root)}")
        if user is not None and (not isinstance(user, str) or not user.strip()):
            raise InvalidInputError(f"ModelRegistry: user must be a non-empty string, got {user!r}")
        self.root = Path(root)
        self.user = user
        self._deployer = LocalDeployer()

    def __repr__(self) -> str:
        return f"ModelRegistry({str(self.root)!r})"

    # ------------------------------------------------------------------ paths

    def _model_dir(self, name: str) -> Path:
        return self.root / "models" / check_name(name, "name")

    def _version_file(self, name: str, version: str) -> Path:
        return self._model_dir(name) / "versions" / f"{check_name(version, 'version')}.json"

    def _alias_file(self, name: str, alias: str) -> Path:
        return self._model_dir(name) / "aliases" / f"{check_name(alias, 'alias')}.json"

    def _artifact_dir(self, digest: str) -> Path:
        return self.root / "artifacts" / digest

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    # ------------------------------------------------------------- reading

    def _read_json(self, path: Path) -> Any:
        try:
            return json.loads(path.read_text("utf-8"))
        except FileNotFoundError:
            raise
        except (OSError, ValueError) as error:
            raise IntegrityError(f"the registry file {str(path)!r} is corrupt: {error}") from None

    def _version(self, name: str, version: str) -> ModelVersion | None:
        path = self._version_file(name, version)
        try:
            document = self._read_json(path)
        except FileNotFoundError:
            return None
        try:
            return ModelVersion.model_validate(document)
        except ValidationError as error:
            raise IntegrityError(f"the registry file {str(path)!r} is corrupt: {error}") from None

    def _alias(self, name: str, alias: str) -> tuple[str | None, list[str]]:
        path = self._alias_file(name, alias)
        try:
            document = self._read_json(path)
        except FileNotFoundError:
            return None, []
        if (
            not isinstance(document, dict)
            or not isinstance(document.get("version"), str)
            or not isinstance(document.get("history"), list)
            or not all(isinstance(v, str) for v in document["history"])
        ):
            raise IntegrityError(f"the registry file {str(path)!r} is not an alias record")
        return document["version"], list(document["history"])

    def models(self) -> list[str]:
        """The names of the registered models, sorted."""
        folder = self.root / "models"
        return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []

    def versions(self, name: str) -> list[ModelVersion]:
        """The registered versions of ``name``, oldest first (empty for an unknown model)."""
        folder = self._model_dir(name) / "versions"
        if not folder.is_dir():
            return []
        found = [self._version(name, p.stem) for p in folder.glob("*.json")]
        return sorted((v for v in found if v is not None), key=lambda v: v.registered_at)

    def aliases(self, name: str) -> dict[str, str]:
        """Each alias of ``name`` and the version it points to."""
        folder = self._model_dir(name) / "aliases"
        if not folder.is_dir():
            return {}
        pairs = {p.stem: self._alias(name, p.stem)[0] for p in sorted(folder.glob("*.json"))}
        return {alias: version for alias, version in pairs.items() if version is not None}

    def history(self, name: str, alias: str) -> list[str]:
        """The versions ``alias`` pointed to before, oldest first (what rollback walks back)."""
        return self._alias(name, alias)[1]

    def audit_log(self) -> list[AuditEntry]:
        """Every audit entry, in the order the changes happened.

        Raises:
            IntegrityError: a complete line is not a valid entry (naming the line).
        """
        path = self.root / "audit.jsonl"
        if not path.is_file():
            return []
        entries = []
        lines = path.read_bytes().split(b"\n")
        for number, line in enumerate(lines[:-1], 1):  # the part after the last "\n" is torn
            try:
                entries.append(AuditEntry.model_validate_json(line))
            except ValidationError as error:
                raise IntegrityError(
                    f"{str(path)!r} line {number} is not an entry: {error}"
                ) from None
        return entries

    def resolve(self, reference: str) -> ModelVersion:
        """The version ``"name@alias"`` or ``"name@version"`` refers to.

        Raises:
            InvalidInputError: the reference is not ``name@alias`` or ``name@version``.
            NotFoundError: no such model, alias or version.
        """
        if not isinstance(reference, str) or reference.count("@") != 1:
            raise InvalidInputError(
                f"a model reference is 'name@alias' or 'name@version', got {describe(reference)}"
            )
        name, _, tag = reference.partition("@")
        version, _ = self._alias(name, check_name(tag, "alias or version"))
        found = self._version(name, version if version is not None else tag)
        if found is None:
            known = [v.version for v in self.versions(name)] + sorted(self.aliases(name))
            raise NotFoundError(f"no model {reference!r} in {str(self.root)!r}; {name} has {known}")
        return found

    def path(self, reference: str) -> Path:
        """The directory of the artefact ``reference`` resolves to (not verified)."""
        return self._artifact_dir(self.resolve(reference).digest)

    # ----------------------------------------------------------- deploying

    def verify(self, reference: str) -> ArtifactManifest:
        """Verify the artefact ``reference`` resolves to, against its registered digest.

        Raises:
            IntegrityError: a file or the manifest differs from what was registered.
        """
        version = self.resolve(reference)
        return self._deployer.verify(self._artifact_dir(version.digest), digest=version.digest)

    def load(self, reference: str, registry: Registry | None = None) -> Any:
        """Resolve, verify and rebuild the component (see :meth:`LocalDeployer.load`)."""
        version = self.resolve(reference)
        return self._deployer.load(
            self._artifact_dir(version.digest), registry, digest=version.digest
        )

    def deploy(self, reference: str, registry: Registry | None = None) -> LocalEndpoint[Any, Any]:
        """Resolve, verify, load and serve ``"name@production"`` or ``"name@1.2.0"``.

        Raises:
            NotFoundError: the reference resolves to nothing.
            IntegrityError: the stored artefact differs from what was registered.
        """
        version = self.resolve(reference)
        return self._deployer.deploy(
            self._artifact_dir(version.digest), registry, digest=version.digest
        )

    # ------------------------------------------------------------- changes

    def _append_audit(self, entry: AuditEntry) -> None:
        """Append one line and fsync it (the caller holds the lock)."""
        path = self.root / "audit.jsonl"
        line = entry.model_dump_json().encode("utf-8") + b"\n"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":  # a line torn by a crash
                whole = os.pread(fd, size, 0)
                os.ftruncate(fd, whole.rfind(b"\n") + 1)  # cut it off (0 when it is the only one)
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def _entry(
        self, action: str, name: str, to_version: str, digest: str, **fields: Any
    ) -> AuditEntry:
        return AuditEntry(
            time=_dt.datetime.now(_dt.UTC),
            who=self.user or _current_user(),
            action=action,
            model=name,
            to_version=to_version,
            digest=digest,
            **fields,
        )

    def register(self, directory: PathLike) -> ModelVersion:
        """Verify the artefact in ``directory`` and store a copy under its name and version.

        Registering the same artefact again is a no-op that returns the
        existing entry (no copy, no audit line).

        Raises:
            NotFoundError: no artefact in ``directory``.
            IntegrityError: the artefact fails verification.
            InvalidInputError: its name@version is already registered with
                other content, or its version is the name of an alias.
        """
        source, manifest, digest = _verify(directory, None)
        name = check_name(manifest.name, "the manifest's name")
        version = check_name(manifest.version, "the manifest's version")
        with self._locked():
            existing = self._version(name, version)
            if existing is not None and existing.digest != digest:
                raise InvalidInputError(
                    f"{name}@{version} is already registered with other content "
                    f"(digest {existing.digest[:12]}, this one {digest[:12]}); "
                    "package it under a new version"
                )
            if existing is None and self._alias_file(name, version).exists():
                raise InvalidInputError(
                    f"{name} has an alias called {version!r}; a version may not share its name"
                )
            target = self._artifact_dir(digest)
            if readable_directory(target) is None or not self._intact(target, digest):
                with atomic_directory(target) as staging:
                    shutil.copytree(source, staging, dirs_exist_ok=True, symlinks=True)
                _verify(target, digest)
            if existing is not None:
                return existing
            record = ModelVersion(
                name=name,
                version=version,
                digest=digest,
                component=manifest.component,
                registered_at=_dt.datetime.now(_dt.UTC),
                registered_by=self.user or _current_user(),
            )
            self._version_file(name, version).parent.mkdir(parents=True, exist_ok=True)
            self._append_audit(self._entry("register", name, version, digest))
            atomic_write_text(self._version_file(name, version), record.model_dump_json(indent=2))
            return record

    @staticmethod
    def _intact(target: Path, digest: str) -> bool:
        try:
            _verify(target, digest)
        except (IntegrityError, NotFoundError):
            return False
        return True

    def _move_alias(
        self,
        action: str,
        name: str,
        alias: str,
        version: str,
        history: list[str],
        before: str | None,
    ) -> AuditEntry:
        """Write the alias record and its audit line (the caller holds the lock)."""
        record = self._version(name, version)
        if record is None:
            raise NotFoundError(f"{name}@{version} is not registered in {str(self.root)!r}")
        entry = self._entry(action, name, version, record.digest, alias=alias, from_version=before)
        self._append_audit(entry)  # first: a crash after it leaves a line for a change not made,
        path = self._alias_file(name, alias)  # never a change without its line
        path.parent.mkdir(parents=True, exist_ok=True)
        document = {"model": name, "alias": alias, "version": version, "history": history}
        atomic_write_text(path, json.dumps(document, indent=2) + "\n")
        return entry

    def promote(self, name: str, version: str, alias: str) -> AuditEntry | None:
        """Point ``alias`` of ``name`` at ``version``; the version it pointed to joins its history.

        Returns the audit entry, or ``None`` when the alias already points
        there (nothing changes, nothing is logged).

        Raises:
            NotFoundError: ``name@version`` is not registered.
            InvalidInputError: a bad name, or ``alias`` is the name of a version.
        """
        check_name(alias, "alias")
        with self._locked():
            if self._version(name, version) is None:
                raise NotFoundError(f"{name}@{version} is not registered in {str(self.root)!r}")
            if self._version(name, alias) is not None:
                raise InvalidInputError(
                    f"{name} has a version called {alias!r}; an alias may not share its name"
                )
            current, history = self._alias(name, alias)
            if current == version:
                return None
            if current is not None:
                history.append(current)
            return self._move_alias("promote", name, alias, version, history, current)

    def rollback(self, name: str, alias: str) -> AuditEntry:
        """Point ``alias`` back at the version it pointed to before the last promotion.

        Raises:
            NotFoundError: ``name`` has no such alias.
            InvalidInputError: the alias has no earlier version.
        """
        with self._locked():
            current, history = self._alias(name, alias)
            if current is None:
                raise NotFoundError(f"{name} has no alias {alias!r} in {str(self.root)!r}")
            if not history:
                raise InvalidInputError(
                    f"{name}@{alias} has no earlier version to roll back to (it is {current})"
                )
            previous = history.pop()
            return self._move_alias("rollback", name, alias, previous, history, current)


class VerifiedComponent(NamedTuple):
    """What :func:`load_verified` loaded: the component, its model name and version key."""

    component: Any
    name: str
    #: ``name@version:digest12``, what a server reports as its model version.
    version: str


def load_verified(
    reference: PathLike, components: Registry, *, registry_root: PathLike | None = None
) -> VerifiedComponent:
    """Load an artefact directory or a ``name@alias`` reference, every file verified first.

    This is what ``genarch serve`` and the Ray Serve deployment
    (:mod:`genarch.distributed.serving`) load a model with.

    Args:
        reference: an artefact directory, or ``"name@alias"``/``"name@version"``
            of the registry at ``registry_root``.
        components: the registry that names the component classes (for a
            :class:`~genarch.models.TextGenerator`, one that registers it).
        registry_root: the :class:`ModelRegistry` root for a ``name@alias`` reference.

    Raises:
        InvalidInputError: ``reference`` is neither.
        IntegrityError: a file changed, is missing or is extra.
        NotFoundError: the reference names no registered model.
    """
    if Path(reference).is_dir():
        deployer = LocalDeployer()
        digest = artifact_digest(reference)
        manifest = deployer.verify(reference, digest=digest)
        component = deployer.load(reference, components, digest=digest)
        return VerifiedComponent(
            component, manifest.name, f"{manifest.name}@{manifest.version}:{digest[:12]}"
        )
    if "@" not in str(reference) or registry_root is None:
        raise InvalidInputError(
            f"{str(reference)!r} is neither an artefact directory nor a 'name@alias' reference "
            "with a registry root (genarch serve --registry ROOT)"
        )
    registry = ModelRegistry(registry_root)
    version = registry.resolve(str(reference))
    component = registry.load(str(reference), components)
    return VerifiedComponent(
        component, version.name, f"{version.name}@{version.version}:{version.digest[:12]}"
    )
