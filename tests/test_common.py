"""Every registered component runs the conformance kit and keeps the shared contracts.

scikit-learn's ``sklearn/tests/test_common.py`` habit: the components are
*discovered* from :func:`genarch.registry.builtin_registry`, so a component is
checked the day it is registered, and a copy of the config or persistence
shell that drifted cannot hide. For each one:

* the :mod:`genarch.testing` kit of its protocol;
* ``type(c).from_config(c.config)`` has an equal config (and so does the JSON dump);
* ``Cls(config, field=...)`` — a config *and* keyword fields — raises ``ConfigError``
  instead of silently dropping one of them;
* a persistable one loads back computing the same thing, and still loads the
  complete previous copy after a save that crashed between its two renames.

How to build a small, valid instance is written once, in :data:`CASES`,
keyed by registry name. A newly registered component with no entry fails
every test here, saying to add one.
"""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import torch

from genarch.errors import ConfigError, GenarchError, IntegrityError, MissingDependencyError
from genarch.registry import builtin_registry
from genarch.schemas import Chunk, Document, ImageRequest, TabularRequest, TextRequest
from genarch.testing import (
    Check,
    assert_same,
    data_processor_checks,
    feature_extractor_checks,
    generator_checks,
    retriever_checks,
    run_checks,
    tokenizer_checks,
    vector_store_checks,
)

REGISTRY = builtin_registry()

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models run fastest on one thread


def component(name: str) -> type[Any]:
    """The class registered under ``name`` (what a saved pipeline would get)."""
    return REGISTRY.resolve(name)


# ------------------------------------------------------------------- inputs

DOCUMENTS = [
    Document(id="a", text="Hello   world.  Write to ada@example.com about the café.\n"),
    Document(id="b", text="<p>Some <b>bold</b> text &amp; a <a href='x'>link</a>.</p>"),
    Document(id="c", text="The quick brown fox jumps over the lazy dog. " * 3),
    Document(id="d", text="The quick brown fox jumped over the lazy dog. " * 3),
    Document(id="e", text=""),
]
TEXTS = ["How do I open a file?", "with open(path) as f:", "", "Ünïcode ✓", "sort a list"]
TOKENIZER_TEXTS = ["hello world", "héllo 世界 🙂", "  spaces\tand\nnewlines ", "<|endoftext|>"]
IMAGES = torch.randint(0, 17, (4, 1, 8, 8), generator=torch.Generator().manual_seed(0)).float()
TEXT_REQUESTS = [
    TextRequest(prompt="hello", max_new_tokens=4, seed=1),
    TextRequest(prompt="héllo", max_new_tokens=3, seed=2, temperature=0.8),
]


def image_requests(num_classes: int) -> list[ImageRequest]:
    label = 3 if num_classes else None
    return [ImageRequest(num_samples=2, seed=0), ImageRequest(num_samples=1, label=label, seed=1)]


def invalid_image_requests(num_classes: int) -> list[ImageRequest]:
    return [ImageRequest(label=num_classes)] if num_classes else [ImageRequest(label=0)]


@cache
def chunks() -> tuple[Chunk, ...]:
    return tuple(component("genarch.Chunker")(max_tokens=12, overlap_tokens=3).process(DOCUMENTS))


def byte_tokenizer() -> Any:
    return component("genarch.ByteTokenizer")(special_tokens=("<|endoftext|>",))


def bpe_tokenizer() -> Any:
    from genarch.data import BPETrainer

    corpus = [d.text for d in DOCUMENTS] + ["low lower lowest newer newest"] * 10
    return BPETrainer(vocab_size=300, special_tokens=("<|endoftext|>",)).train(corpus)


def tiny_gpt() -> Any:
    torch.manual_seed(0)
    return component("genarch.GPT")(
        vocab_size=257, context_length=32, n_layer=1, n_head=2, n_embd=16
    )


def grounded_prompts() -> list[TextRequest]:
    from genarch.orchestration import Source, build_prompt

    sources = [Source(number=i + 1, chunk=c, score=1.0) for i, c in enumerate(chunks()[:3])]
    return [
        TextRequest(prompt=build_prompt(question, sources), seed=seed)
        for seed, question in enumerate(["Who jumps over the dog?", "What is bold?"])
    ]


@cache  # the pretrained checkpoint takes a while to verify and load; nothing here changes it
def minilm() -> Any:
    from genarch.features import find_minilm_directory

    try:
        find_minilm_directory()
    except GenarchError as error:
        pytest.skip(f"all-MiniLM-L6-v2 is not installed: {error}")
    return component("genarch.MiniLMEncoder")()


def vector_store(name: str) -> Callable[[], Any]:
    def make() -> Any:
        try:
            store = component(name)(dim=8)
        except MissingDependencyError as error:
            pytest.skip(str(error))
        vectors = torch.nn.functional.normalize(
            torch.randn(6, 8, generator=torch.Generator().manual_seed(0)), dim=1
        )
        store.upsert([f"v{i}" for i in range(6)], vectors, [{"i": i} for i in range(6)])
        return store

    return make


# ------------------------------------------------------------- what to run


def process_documents(processor: Any) -> list[Any]:
    return list(processor.process(DOCUMENTS))


def extract_texts(extractor: Any) -> Any:
    return extractor.extract(TEXTS)


def generate_images(generator: Any) -> Any:
    return generator.generate(ImageRequest(num_samples=2, seed=0))


def encode_texts(tokenizer: Any) -> list[list[int]]:
    return [tokenizer.encode(text) for text in TOKENIZER_TEXTS]


def gpt_logits(gpt: Any) -> Any:
    gpt.eval()
    with torch.no_grad():
        return gpt(torch.arange(10).unsqueeze(0))


def nearest_vectors(store: Any) -> Any:
    return store.search(torch.eye(8)[:3], k=3)


def processor_kit(processor: Any) -> list[Check]:
    return data_processor_checks(processor, DOCUMENTS, invalid_items=["not a document"])


def extractor_kit(extractor: Any) -> list[Check]:
    return feature_extractor_checks(extractor, TEXTS, invalid_items=[None])


def image_generator_kit(num_classes: int) -> Callable[[Any], list[Check]]:
    def kit(generator: Any) -> list[Check]:
        return generator_checks(
            generator,
            image_requests(num_classes),
            invalid_requests=invalid_image_requests(num_classes),
        )

    return kit


def tokenizer_kit(tokenizer: Any) -> list[Check]:
    return tokenizer_checks(tokenizer, TOKENIZER_TEXTS)


def vector_store_kit(store: Any) -> list[Check]:
    return vector_store_checks(lambda dim: type(store)(dim=dim), label=type(store).__name__)


def text_generator_kit(gpt: Any) -> list[Check]:
    from genarch.models import TextGenerator

    # a GPT is the network; the protocol it serves is TextGenerator's Generator
    generator = TextGenerator(gpt, byte_tokenizer())
    return generator_checks(
        generator, TEXT_REQUESTS, invalid_requests=[TextRequest(prompt="")], label="GPT"
    )


# ------------------------------------------------------------------ the table


@dataclass(frozen=True)
class Case:
    """How to test one registered component.

    Attributes:
        make: builds a small, valid instance, fitted or indexed when it must be.
        kit: the conformance checks of its protocol, for an instance.
        probe: what the instance computes, compared after save/load (every
            persistable component needs one).
        configurable: it has the config shell (``config``, ``from_config``);
            ``False`` only for components built from objects, not a config.
    """

    make: Callable[[], Any]
    kit: Callable[[Any], list[Check]]
    probe: Callable[[Any], Any] | None = None
    configurable: bool = True


def simple(name: str, **fields: Any) -> Callable[[], Any]:
    return lambda: component(name)(**fields)


def seeded(name: str, **fields: Any) -> Callable[[], Any]:
    def make() -> Any:
        torch.manual_seed(0)
        return component(name)(**fields)

    return make


def pipeline() -> Any:
    return component("genarch.Pipeline")(
        [component("genarch.TextCleaner")(), component("genarch.QualityFilter")()]
    )


def fitted_bayesian_network() -> Any:
    """A two-variable network fitted to a few rows (Dirichlet prior: every cell positive)."""
    network = component("genarch.BayesianNetwork")(
        variables=[
            {"name": "weather", "states": ["sun", "rain"]},
            {"name": "mood", "states": ["glad", "glum"], "parents": ["weather"]},
        ],
        estimator="dirichlet",
    )
    rows = [("sun", "glad"), ("sun", "glad"), ("sun", "glum"), ("rain", "glum")]
    return network.fit([{"weather": w, "mood": m} for w, m in rows])


def tabular_generator_kit(network: Any) -> list[Check]:
    return generator_checks(
        network,
        [TabularRequest(num_rows=3, seed=0), TabularRequest(evidence={"mood": "glum"}, seed=1)],
        invalid_requests=[TabularRequest(evidence={"mood": "meh"})],
    )


def generate_rows(network: Any) -> Any:
    return network.generate(TabularRequest(num_rows=5, evidence={"weather": "rain"}, seed=0))


def fitted_synthesizer() -> Any:
    """A synthesizer fitted to a numeric and a categorical column."""
    import numpy as np

    age = np.random.default_rng(0).integers(18, 90, 200)
    table = {"age": age, "smoker": np.where(age > 50, "yes", "no")}
    return component("genarch.TabularSynthesizer")(bins=3).fit(table)


def synthesizer_kit(synthesizer: Any) -> list[Check]:
    return generator_checks(
        synthesizer,
        [TabularRequest(num_rows=3, seed=0), TabularRequest(evidence={"smoker": "yes"}, seed=1)],
        invalid_requests=[TabularRequest(evidence={"smoker": "maybe"})],
    )


def synthetic_rows(synthesizer: Any) -> Any:
    # lists: assert_same cannot compare numpy object arrays
    return {name: column.tolist() for name, column in synthesizer.sample(5, seed=0).items()}


def tiny_diffusion() -> Any:
    from genarch.models import DDIMSampler, NoiseSchedule

    torch.manual_seed(0)
    return component("genarch.Diffusion")(
        num_classes=0,
        width=8,
        schedule=NoiseSchedule(num_timesteps=10),
        sampler=DDIMSampler(steps=2),
    )


CASES: dict[str, Case] = {
    # data
    "genarch.ByteTokenizer": Case(byte_tokenizer, tokenizer_kit, encode_texts),
    "genarch.Chunker": Case(
        simple("genarch.Chunker", max_tokens=12, overlap_tokens=3), processor_kit
    ),
    "genarch.ExactDeduplicator": Case(simple("genarch.ExactDeduplicator"), processor_kit),
    "genarch.HtmlToText": Case(simple("genarch.HtmlToText"), processor_kit),
    "genarch.ImageNormalizer": Case(
        simple("genarch.ImageNormalizer", low=0, high=16),
        lambda normalizer: data_processor_checks(normalizer, [IMAGES, IMAGES[:2]]),
        lambda normalizer: list(normalizer.process([IMAGES])),
    ),
    "genarch.NearDeduplicator": Case(simple("genarch.NearDeduplicator"), processor_kit),
    "genarch.PiiRedactor": Case(simple("genarch.PiiRedactor"), processor_kit),
    "genarch.QualityFilter": Case(simple("genarch.QualityFilter"), processor_kit),
    "genarch.TextCleaner": Case(simple("genarch.TextCleaner"), processor_kit),
    "genarch.TiktokenTokenizer": Case(
        bpe_tokenizer, tokenizer_kit, encode_texts, configurable=False
    ),
    "genarch.Tokenize": Case(
        lambda: component("genarch.Tokenize")(byte_tokenizer(), append_special="<|endoftext|>"),
        processor_kit,
        process_documents,
    ),
    # features
    "genarch.ContrastiveSentenceEncoder": Case(
        simple("genarch.ContrastiveSentenceEncoder", dim=16, width=16, buckets=1 << 10, seed=1),
        extractor_kit,
        extract_texts,
    ),
    "genarch.GPTMeanPooledEncoder": Case(
        lambda: component("genarch.GPTMeanPooledEncoder")(tiny_gpt(), byte_tokenizer()),
        extractor_kit,
        extract_texts,
    ),
    "genarch.HashingVectorizer": Case(simple("genarch.HashingVectorizer", dim=64), extractor_kit),
    "genarch.MiniLMEncoder": Case(minilm, extractor_kit),
    "genarch.TfidfVectorizer": Case(
        lambda: component("genarch.TfidfVectorizer")().fit(TEXTS), extractor_kit, extract_texts
    ),
    # models (the GAN and diffusion model unconditional, the VAE conditional: the
    # kit checks both ways of stating conditions)
    "genarch.BayesianNetwork": Case(fitted_bayesian_network, tabular_generator_kit, generate_rows),
    "genarch.Diffusion": Case(
        tiny_diffusion,
        image_generator_kit(0),
        generate_images,
    ),
    "genarch.GAN": Case(
        seeded("genarch.GAN", num_classes=0, latent_dim=8, width=4),
        image_generator_kit(0),
        generate_images,
    ),
    "genarch.GPT": Case(tiny_gpt, text_generator_kit, gpt_logits),
    "genarch.VAE": Case(
        seeded("genarch.VAE", num_classes=10, latent_dim=4, width=4, hidden=16),
        image_generator_kit(10),
        generate_images,
    ),
    # orchestration
    "genarch.BM25Retriever": Case(
        lambda: component("genarch.BM25Retriever")(stopwords=()).fit(chunks()),
        lambda retriever: retriever_checks(retriever, ["quick fox", "bold text", "café"]),
    ),
    "genarch.ExactVectorStore": Case(
        vector_store("genarch.ExactVectorStore"),
        vector_store_kit,
        nearest_vectors,
    ),
    "genarch.ExtractiveGenerator": Case(
        simple("genarch.ExtractiveGenerator"),
        lambda generator: generator_checks(
            generator,
            grounded_prompts(),
            invalid_requests=[TextRequest(prompt="no sources here", seed=0)],
        ),
    ),
    "genarch.FaissVectorStore": Case(
        vector_store("genarch.FaissVectorStore"),
        vector_store_kit,
        nearest_vectors,
    ),
    # privacy
    "genarch.TabularSynthesizer": Case(fitted_synthesizer, synthesizer_kit, synthetic_rows),
    # the pipeline itself
    "genarch.Pipeline": Case(pipeline, processor_kit, process_documents, configurable=False),
}
"""Registry name → how to build and check it. Add an entry when you register a component."""

NAMES = sorted(REGISTRY)


def case_for(name: str) -> Case:
    if name not in CASES:
        pytest.fail(
            f"{name} is registered but tests/test_common.py has no Case for it: add one to "
            "CASES saying how to build a small, valid instance and which kit checks it",
            pytrace=False,
        )
    return CASES[name]


def build(name: str) -> Any:
    instance = case_for(name).make()
    assert isinstance(instance, component(name)), f"the Case for {name} built {instance!r}"
    return instance


def is_persistable(instance: Any) -> bool:
    return callable(getattr(instance, "save", None)) and callable(
        getattr(type(instance), "load", None)
    )


def persistable(name: str) -> tuple[Any, Callable[[Any], Any]]:
    """An instance and its probe, or skip when the component is not persistable."""
    instance = build(name)
    if not is_persistable(instance):
        pytest.skip(f"{name} is not persistable")
    probe = case_for(name).probe
    assert probe is not None, f"{name} can be saved: give its Case a probe to compare after load"
    return instance, probe


def configured(name: str) -> Any:
    """An instance with the config shell, or skip where its Case says it has none."""
    instance = build(name)
    has_shell = hasattr(instance, "config") and callable(
        getattr(type(instance), "from_config", None)
    )
    if not case_for(name).configurable:
        assert not has_shell, f"{name} has config/from_config: mark its Case configurable"
        pytest.skip(f"{name} is built from objects, not from a config")
    assert has_shell, f"{name} lacks config/from_config (the genarch.configured.Configured shell)"
    return instance


# ------------------------------------------------------------------ the tests


def test_every_registered_component_has_a_case() -> None:
    missing = sorted(set(REGISTRY) - set(CASES))
    assert not missing, f"add a Case to tests/test_common.py for: {missing}"


def test_every_case_names_a_registered_component() -> None:
    stale = sorted(set(CASES) - set(REGISTRY))
    assert not stale, f"Cases for components that are not registered: {stale}"


@pytest.mark.parametrize("name", NAMES)
def test_component_conforms_to_its_protocol(name: str) -> None:
    instance = build(name)
    checks = case_for(name).kit(instance)
    assert checks, f"the kit for {name} has no checks"
    run_checks(checks)


@pytest.mark.parametrize("name", NAMES)
def test_from_config_gives_an_equal_config(name: str) -> None:
    instance = configured(name)
    cls = type(instance)
    assert cls.from_config(instance.config).config == instance.config
    dumped = instance.config.model_dump(mode="json")
    assert cls.from_config(dumped).config == instance.config


@pytest.mark.parametrize("name", NAMES)
def test_a_config_and_keyword_fields_together_are_refused(name: str) -> None:
    instance = configured(name)
    cls = type(instance)
    if "config" not in inspect.signature(cls).parameters:
        pytest.skip(f"{name} is built from objects; its config describes them")
    config = instance.config
    field = next(iter(type(config).model_fields))
    with pytest.raises(ConfigError):
        cls(config, **{field: getattr(config, field)})


@pytest.mark.parametrize("name", NAMES)
def test_save_then_load_computes_the_same(name: str, tmp_path: Path) -> None:
    instance, probe = persistable(name)
    instance.save(tmp_path / "saved")
    loaded = type(instance).load(tmp_path / "saved")
    assert type(loaded) is type(instance)
    assert_same(probe(loaded), probe(instance), path=f"{name} after load")
    if case_for(name).configurable:
        assert loaded.config == instance.config


class SimulatedCrash(BaseException):
    """The process dies: nothing after this point of the save runs."""


def save_crashing_between_the_renames(instance: Any, target: Path) -> None:
    """Save ``instance`` to ``target`` again, dying after the old copy was moved aside
    and before the new one moved in — the moment ``genarch._io.readable_directory``
    exists for."""
    replace = os.replace

    def crash_before_the_new_copy_moves_in(source: Any, destination: Any) -> None:
        moving = Path(source).name  # the complete staging directory: .<name>.<random>.tmp
        staging = moving.startswith(f".{target.name}.") and moving.endswith(".tmp")
        if staging and Path(destination) == target:
            raise SimulatedCrash
        replace(source, destination)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "replace", crash_before_the_new_copy_moves_in)  # what genarch._io calls
        try:
            instance.save(target)
        except SimulatedCrash:
            return
    pytest.fail(
        f"{type(instance).__name__}.save does not swap its directory in through "
        "genarch._io.atomic_directory (use genarch.persistence.save_component)",
        pytrace=False,
    )


@pytest.mark.parametrize("name", NAMES)
def test_a_save_interrupted_between_its_renames_loads_the_previous_copy(
    name: str, tmp_path: Path
) -> None:
    instance, probe = persistable(name)
    target = tmp_path / "saved"
    instance.save(target)
    expected = probe(instance)
    save_crashing_between_the_renames(instance, target)
    assert not target.exists(), "the crash should have struck between the two renames"
    assert list(tmp_path.glob(".saved.old-*")), "the previous copy should be left aside"

    loaded = type(instance).load(target)
    assert_same(probe(loaded), expected, path=f"{name} loaded after the crash")
    instance.save(target)  # and the next save completes the swap
    assert_same(probe(type(instance).load(target)), expected, path=f"{name} saved again")


def test_the_crash_simulation_catches_a_save_that_bypasses_the_helper(tmp_path: Path) -> None:
    class WritesInPlace:
        def save(self, directory: Path) -> None:
            directory.mkdir(parents=True, exist_ok=True)
            (directory / "state.txt").write_text("x")

    with pytest.raises(pytest.fail.Exception, match="atomic_directory"):
        save_crashing_between_the_renames(WritesInPlace(), tmp_path / "saved")


def test_an_unknown_component_fails_with_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(CASES, "genarch.TextCleaner")
    with pytest.raises(pytest.fail.Exception, match="add one to CASES"):
        case_for("genarch.TextCleaner")


def flip_one_byte(file: Path) -> bytes:
    original = file.read_bytes()
    middle = len(original) // 2
    damaged = bytes([original[middle] ^ 0x01]) if original else b"x"
    file.write_bytes(original[:middle] + damaged + original[middle + 1 :])
    return original


@pytest.mark.parametrize("name", NAMES)
def test_every_file_of_a_save_is_verified_on_load(name: str, tmp_path: Path) -> None:
    """A changed byte in any file, a missing file or an extra file is refused by name."""
    instance, probe = persistable(name)
    target = tmp_path / "saved"
    instance.save(target)
    files = sorted(p for p in target.rglob("*") if p.is_file() and p.name != "SHA256SUMS")
    assert (target / "SHA256SUMS").is_file(), f"{name}.save writes no SHA256SUMS manifest"
    for file in files:
        relative = file.relative_to(target).as_posix()
        original = flip_one_byte(file)
        with pytest.raises(IntegrityError, match=re.escape(relative)):
            type(instance).load(target)
        file.write_bytes(original)
    file = files[0]
    original = file.read_bytes()
    file.unlink()
    with pytest.raises(IntegrityError, match=f"{re.escape(file.name)} is missing"):
        type(instance).load(target)
    file.write_bytes(original)
    (target / "extra.bin").write_bytes(b"\x00")
    with pytest.raises(IntegrityError, match="extra.bin is not listed"):
        type(instance).load(target)
    (target / "extra.bin").unlink()
    assert_same(probe(type(instance).load(target)), probe(instance), path=f"{name} restored")
