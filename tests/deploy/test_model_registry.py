"""ModelRegistry: content-addressed registration, aliases, promotion, rollback, audit log."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from deploy.components import tfidf
from genarch.deploy import LocalDeployer, ModelRegistry, artifact_digest
from genarch.errors import IntegrityError, InvalidInputError, NotFoundError

CORPORA = {
    "1.0.0": ("open a file", "sort a list"),
    "1.1.0": ("open a file", "sort a list", "read a file"),
    "2.0.0": ("parse json", "write csv"),
    "2.1.0": ("parse json", "write csv", "zip files"),
}


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("artefacts")
    made = {}
    for version, texts in CORPORA.items():
        made[version] = root / version
        LocalDeployer().package(tfidf(texts), made[version], name="search", version=version)
    return made


@pytest.fixture
def registry(tmp_path: Path, artefacts: dict[str, Path]) -> ModelRegistry:
    registry = ModelRegistry(tmp_path / "registry", user="ada")
    for directory in artefacts.values():
        registry.register(directory)
    return registry


def test_register_stores_a_verified_copy_by_content_address(
    registry: ModelRegistry, artefacts: dict[str, Path]
) -> None:
    digest = artifact_digest(artefacts["1.0.0"])
    assert registry.resolve("search@1.0.0").digest == digest
    assert registry.path("search@1.0.0") == registry.root / "artifacts" / digest
    assert registry.models() == ["search"]
    assert [v.version for v in registry.versions("search")] == list(CORPORA)
    assert registry.versions("search")[0].registered_by == "ada"


def test_registering_the_same_artefact_twice_is_a_no_op(
    registry: ModelRegistry, artefacts: dict[str, Path]
) -> None:
    before = registry.audit_log()
    again = registry.register(artefacts["1.0.0"])
    assert again == registry.resolve("search@1.0.0")
    assert registry.audit_log() == before


def test_a_version_registered_with_other_content_is_refused(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    LocalDeployer().package(tfidf(("other",)), tmp_path / "x", name="search", version="1.0.0")
    with pytest.raises(InvalidInputError, match=r"search@1.0.0 is already registered"):
        registry.register(tmp_path / "x")


def test_a_tampered_artefact_is_not_registered(tmp_path: Path, artefacts: dict[str, Path]) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(artefacts["1.0.0"], copy)
    (copy / "README.md").write_text("edited")
    registry = ModelRegistry(tmp_path / "registry")
    with pytest.raises(IntegrityError, match="README.md"):
        registry.register(copy)
    assert registry.models() == []


def test_promote_and_rollback_move_the_alias_and_keep_history(registry: ModelRegistry) -> None:
    registry.promote("search", "1.0.0", "production")
    registry.promote("search", "1.1.0", "production")
    registry.promote("search", "2.0.0", "staging")
    assert registry.aliases("search") == {"production": "1.1.0", "staging": "2.0.0"}
    assert registry.history("search", "production") == ["1.0.0"]
    entry = registry.rollback("search", "production")
    assert (entry.from_version, entry.to_version, entry.who) == ("1.1.0", "1.0.0", "ada")
    assert registry.resolve("search@production").version == "1.0.0"
    with pytest.raises(InvalidInputError, match="no earlier version"):
        registry.rollback("search", "production")
    actions = [(e.action, e.alias, e.from_version, e.to_version) for e in registry.audit_log()]
    assert actions[len(CORPORA) :] == [
        ("promote", "production", None, "1.0.0"),
        ("promote", "production", "1.0.0", "1.1.0"),
        ("promote", "staging", None, "2.0.0"),
        ("rollback", "production", "1.1.0", "1.0.0"),
    ]


def test_promoting_to_the_version_it_points_to_changes_nothing(registry: ModelRegistry) -> None:
    registry.promote("search", "1.0.0", "production")
    lines = len(registry.audit_log())
    assert registry.promote("search", "1.0.0", "production") is None
    assert len(registry.audit_log()) == lines
    assert registry.history("search", "production") == []


def test_deploy_resolves_aliases_and_versions(registry: ModelRegistry) -> None:
    registry.promote("search", "2.0.0", "production")
    for reference, version in (("search@production", "2.0.0"), ("search@1.1.0", "1.1.0")):
        with registry.deploy(reference) as endpoint:
            assert endpoint.health().version == version
            expected = tfidf(CORPORA[version]).extract(["parse a file"])
            assert endpoint.invoke(["parse a file"]).tolist() == expected.tolist()


@pytest.mark.parametrize(
    ("reference", "error"),
    [
        ("search", InvalidInputError),
        ("search@a@b", InvalidInputError),
        ("search@../x", InvalidInputError),
        ("search@canary", NotFoundError),
        ("other@1.0.0", NotFoundError),
    ],
)
def test_bad_references_are_refused(registry: ModelRegistry, reference: str, error: type) -> None:
    with pytest.raises(error):
        registry.deploy(reference)


def test_aliases_and_versions_never_share_a_name(registry: ModelRegistry) -> None:
    with pytest.raises(InvalidInputError, match="version called '1.0.0'"):
        registry.promote("search", "1.1.0", "1.0.0")
    with pytest.raises(NotFoundError):
        registry.promote("search", "9.9.9", "production")


def test_a_stored_artefact_changed_after_registration_is_refused(
    registry: ModelRegistry,
) -> None:
    stored = registry.path("search@1.0.0")
    (stored / "component" / "tfidf.json").write_text("{}")
    with pytest.raises(IntegrityError, match="component/tfidf.json"):
        registry.deploy("search@1.0.0")


def test_a_stored_artefact_replaced_consistently_is_refused_by_its_digest(
    registry: ModelRegistry, artefacts: dict[str, Path]
) -> None:
    stored = registry.path("search@1.0.0")
    shutil.rmtree(stored)
    shutil.copytree(artefacts["2.0.0"], stored)  # every file matches its lists, but not the record
    with pytest.raises(IntegrityError, match="registered"):
        registry.deploy("search@1.0.0")


def test_a_torn_audit_line_is_cut_off_by_the_next_append(registry: ModelRegistry) -> None:
    with open(registry.root / "audit.jsonl", "ab") as log:
        log.write(b'{"time": "2025-01-01T00:00:00Z", "who": "crash')  # killed mid-write
    assert len(registry.audit_log()) == len(CORPORA)  # the torn line is not an entry
    registry.promote("search", "1.0.0", "production")
    assert [e.action for e in registry.audit_log()][-1] == "promote"
    assert (registry.root / "audit.jsonl").read_bytes().count(b"crash") == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_two_processes_promoting_at_once_leave_a_consistent_registry(
    registry: ModelRegistry,
) -> None:
    rounds = 25
    plans = [["1.0.0", "1.1.0"], ["2.0.0", "2.1.0"]]
    children = []
    for plan in plans:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 1
            try:
                mine = ModelRegistry(registry.root, user=f"worker-{plan[0]}")
                for i in range(rounds):
                    mine.promote("search", plan[i % 2], "production")
                code = 0
            finally:
                os._exit(code)
        children.append(pid)
    for pid in children:
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status), "a child was killed"
        assert os.WEXITSTATUS(status) == 0, "a child failed"
    promotions = [e for e in registry.audit_log() if e.action == "promote"]  # every line parses
    assert len(promotions) == rounds * len(plans), "a promotion was lost or logged twice"
    current = registry.aliases("search")["production"]
    assert current in {v for plan in plans for v in plan}
    # replaying the log gives exactly the alias file: no update was lost or interleaved
    assert promotions[-1].to_version == current
    assert registry.history("search", "production") == [e.to_version for e in promotions[:-1]]
    assert [e.from_version for e in promotions[1:]] == [e.to_version for e in promotions[:-1]]
    with registry.deploy("search@production") as endpoint:
        assert endpoint.health().version == current
