"""LocalDeployer: package → verify → load → serve, on real components and real files."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from deploy.components import text_generator, tfidf, vae, vector_store, with_text_generator
from genarch import Deployer, Document, ImageRequest, Pipeline, TextRequest, TrainingReport
from genarch.data import QualityFilter, TextCleaner
from genarch.deploy import (
    LocalDeployer,
    RetrievalRequest,
    VectorSearchRequest,
    artifact_digest,
    serve,
)
from genarch.errors import (
    IntegrityError,
    InvalidInputError,
    NotFoundError,
    RegistryError,
)
from genarch.testing import assert_same, deployer_checks, parametrize_with_checks

pytestmark = pytest.mark.usefixtures("one_thread")

DEPLOYER = LocalDeployer()
TEXT = [
    TextRequest(prompt="hi", max_new_tokens=4, seed=1),
    TextRequest(prompt="héllo", max_new_tokens=3, seed=2, temperature=0.8),
]
IMAGES = [ImageRequest(num_samples=2, seed=0), ImageRequest(num_samples=1, label=3, seed=1)]
BATCHES = [["open a file"], ["sort a list", "read", ""]]


def test_local_deployer_is_a_deployer() -> None:
    assert isinstance(DEPLOYER, Deployer)


@parametrize_with_checks(
    [
        *deployer_checks(
            DEPLOYER, text_generator(), TEXT, registry=with_text_generator(), label="text"
        ),
        *deployer_checks(DEPLOYER, vae(), IMAGES, label="vae"),
        *deployer_checks(DEPLOYER, tfidf(), BATCHES, label="tfidf"),
    ]
)
def test_local_deployer_passes_the_kit(check) -> None:
    check()


# ------------------------------------------------------------------ round trips


def package(component: object, root: Path, **options: object) -> Path:
    target = root / "artefact"
    DEPLOYER.package(component, target, name="m", version="1", **options)  # type: ignore[arg-type]
    return target


def test_text_generator_round_trip(tmp_path: Path) -> None:
    generator = text_generator()
    registry = with_text_generator()
    target = package(generator, tmp_path, registry=registry)
    with DEPLOYER.deploy(target, registry) as endpoint:
        assert endpoint.invoke_batch(TEXT) == generator.generate_batch(TEXT)
        assert endpoint.health().name == "m"
        assert endpoint.health().digest == artifact_digest(target)


def test_text_generator_needs_a_registry_that_names_it(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="TextGenerator"):
        DEPLOYER.package(text_generator(), tmp_path / "a", name="m", version="1")
    target = package(text_generator(), tmp_path, registry=with_text_generator())
    with pytest.raises(RegistryError, match="genarch.TextGenerator.*registry="):
        DEPLOYER.load(target)  # the default registry does not hold it


def test_vae_round_trip(tmp_path: Path) -> None:
    model = vae()
    loaded = DEPLOYER.load(package(model, tmp_path))
    assert_same([loaded.generate(r) for r in IMAGES], [model.generate(r) for r in IMAGES])


def test_feature_extractor_round_trip(tmp_path: Path) -> None:
    extractor = tfidf()
    with DEPLOYER.deploy(package(extractor, tmp_path)) as endpoint:
        assert torch.equal(endpoint.invoke(["read a file"]), extractor.extract(["read a file"]))


def test_vector_store_round_trip_with_its_index(tmp_path: Path) -> None:
    store = vector_store()
    queries = torch.eye(8)[:3]
    with DEPLOYER.deploy(package(store, tmp_path)) as endpoint:
        assert len(DEPLOYER.load(tmp_path / "artefact")) == 6
        answer = endpoint.invoke(VectorSearchRequest(queries=queries, k=2, where={"i": 1}))
        assert answer == store.search(queries, 2, where={"i": 1})


def test_serve_refuses_a_component_it_cannot_call() -> None:
    with pytest.raises(InvalidInputError, match="Generator, FeatureExtractor"):
        serve(object())


def test_an_endpoint_refuses_the_wrong_request_record_and_keeps_serving() -> None:
    with serve(vector_store()) as endpoint:
        with pytest.raises(InvalidInputError, match="VectorSearchRequest"):
            endpoint.invoke(RetrievalRequest(query="x"))
        assert endpoint.invoke(VectorSearchRequest(queries=torch.eye(8)[:1], k=1))
        assert (endpoint.health().requests, endpoint.health().failures) == (2, 1)


# ------------------------------------------------------------------ tampering


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return package(vae(), tmp_path_factory.mktemp("pristine"))


def every_file(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def fresh_copy(pristine: Path, tmp_path: Path) -> Path:
    target = tmp_path / "artefact"
    shutil.copytree(pristine, target)
    return target


def refused_naming(target: Path, culprit: str) -> None:
    for action in (DEPLOYER.verify, DEPLOYER.load, DEPLOYER.deploy):
        with pytest.raises(IntegrityError) as caught:
            action(target)
        assert culprit in str(caught.value), (culprit, str(caught.value))


def test_the_artefact_holds_the_expected_files(pristine: Path) -> None:
    files = every_file(pristine)
    assert {"manifest.json", "README.md", "SHA256SUMS", "component/model.safetensors"} <= set(files)
    manifest = json.loads((pristine / "manifest.json").read_text())
    assert set(manifest["files"]) == set(files) - {"manifest.json", "SHA256SUMS"}
    assert manifest["component"] == "genarch.VAE"
    assert {"torch_version", "python_version", "parameters"} <= set(manifest["metadata"])
    assert manifest["metadata"]["parameters"] == sum(p.numel() for p in vae().parameters())


@pytest.mark.parametrize("position", ["start", "middle", "end"])
def test_one_flipped_byte_in_any_file_is_refused_naming_the_file(
    pristine: Path, tmp_path: Path, position: str
) -> None:
    for index, name in enumerate(every_file(pristine)):
        target = fresh_copy(pristine, tmp_path / str(index))
        data = bytearray((target / name).read_bytes())
        at = {"start": 0, "middle": len(data) // 2, "end": len(data) - 1}[position]
        data[at] ^= 0x01
        (target / name).write_bytes(bytes(data))
        refused_naming(target, name)


def test_a_missing_file_is_refused_naming_it(pristine: Path, tmp_path: Path) -> None:
    for index, name in enumerate(every_file(pristine)):
        target = fresh_copy(pristine, tmp_path / str(index))
        os.remove(target / name)
        refused_naming(target, name)


@pytest.mark.parametrize("name", ["extra.bin", "component/extra.json", ".hidden", "README.md.bak"])
def test_an_extra_file_is_refused_naming_it(pristine: Path, tmp_path: Path, name: str) -> None:
    target = fresh_copy(pristine, tmp_path)
    (target / name).write_text("{}")
    refused_naming(target, name)


def test_a_symbolic_link_is_refused(pristine: Path, tmp_path: Path) -> None:
    target = fresh_copy(pristine, tmp_path)
    os.replace(target / "README.md", tmp_path / "card.md")
    os.symlink(tmp_path / "card.md", target / "README.md")
    refused_naming(target, "README.md")


def test_rewriting_both_lists_is_caught_only_by_an_anchored_digest(
    pristine: Path, tmp_path: Path
) -> None:
    target = fresh_copy(pristine, tmp_path)
    digest = artifact_digest(target)
    other = package(tfidf(), tmp_path / "other")
    shutil.rmtree(target)
    shutil.copytree(other, target)  # a consistent artefact, but not the one recorded
    DEPLOYER.verify(target)
    with pytest.raises(IntegrityError, match="registered"):
        DEPLOYER.verify(target, digest=digest)


def test_nothing_there_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        DEPLOYER.verify(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(NotFoundError):
        DEPLOYER.deploy(tmp_path / "empty")


# ------------------------------------------------------------------ inputs


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"name": "../up"}, "name must be"),
        ({"version": "1/2"}, "version must be"),
        ({"name": "a@b"}, "name must be"),
        ({"lineage": "a trace"}, "lineage must be"),
        ({"training": {"steps": 3}}, "training must be"),
        ({"evaluation": {"fid": "low"}}, "evaluation must map"),
        ({"intended_use": 3}, "intended_use"),
    ],
)
def test_package_validates_its_arguments(tmp_path: Path, options: dict, match: str) -> None:
    arguments = {"name": "m", "version": "1", **options}
    with pytest.raises(InvalidInputError, match=match):
        DEPLOYER.package(vae(), tmp_path / "a", **arguments)
    assert not (tmp_path / "a").exists()


def test_package_refuses_a_component_that_cannot_save(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="component must be Persistable"):
        DEPLOYER.package(object(), tmp_path / "a", name="m", version="1")  # type: ignore[arg-type]


# ------------------------------------------------------------------ the model card


def lineage_run() -> Pipeline:
    documents = [
        Document(id="a", text="Enough words to pass the quality filter in this corpus."),
        Document(id="b", text="no"),
    ]
    run = Pipeline([TextCleaner(), QualityFilter()]).run(documents)
    run.collect()
    return run


def front_matter(card: str) -> dict:
    yaml = pytest.importorskip("yaml")
    head, _, _ = card.removeprefix("---\n").partition("\n---\n")
    return yaml.safe_load(head)


def test_the_model_card_has_the_lineage_training_and_evaluation_given(tmp_path: Path) -> None:
    report = TrainingReport(steps=100, train_loss=(2.5, 1.25), eval_loss=((100, 1.5),))
    target = package(
        vae(),
        tmp_path,
        lineage=lineage_run().trace,
        training=report,
        evaluation={"elbo": -12.5},
        intended_use="Drawing digits for a demo.",
        limitations="8x8 digits only.",
        license="mit",
    )
    card = (target / "README.md").read_text()
    meta = front_matter(card)
    assert meta["library_name"] == "genarch"
    assert meta["license"] == "mit"
    assert meta["metrics"] == ["elbo"]
    assert meta["model_name"] == "m"
    training_data = card.split("## Training data")[1].split("## ")[0]
    assert "2 items in, 1 out" in training_data
    assert "too_short 1" in training_data
    assert "TextCleaner" in training_data
    assert "QualityFilter" in training_data
    assert "| final training loss | 1.25 |" in card
    assert "| elbo | -12.5 |" in card
    assert "Drawing digits for a demo." in card
    assert "8x8 digits only." in card
    assert f"{sum(p.numel() for p in vae().parameters()):,} parameters" in card


def test_a_model_card_without_lineage_says_it_was_not_documented(tmp_path: Path) -> None:
    card = (package(tfidf(), tmp_path) / "README.md").read_text()
    assert front_matter(card)["tags"] == ["genarch", "TfidfVectorizer"]
    for section in ("Intended use", "Training data", "Evaluation", "Limitations"):
        assert "Not documented" in card.split(f"## {section}")[1].split("## ")[0]
    assert "not a torch module" in card
