"""The contrastive sentence encoder: mined pairs, the InfoNCE objective, and training that helps."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from genarch.data import python_docs
from genarch.errors import ConfigError, IntegrityError, InvalidInputError, NotFoundError
from genarch.features import (
    ContrastiveEncoderConfig,
    ContrastiveSentenceEncoder,
    InfoNCE,
    TextPair,
    mine_pairs,
    train_on_corpus,
)
from genarch.protocols import TrainingObjective
from genarch.schemas import Document
from genarch.testing import check_feature_extractor
from genarch.training import ObjectiveOptimizer, adamw

SMALL = ContrastiveEncoderConfig(dim=32, width=32, buckets=1 << 12, seed=1)
TEXTS = ["How do I open a file?", "with open(path) as f:", "", "Ünïcode ✓", "x " * 3000]


def test_encoder_passes_the_conformance_kit() -> None:
    check_feature_extractor(ContrastiveSentenceEncoder(SMALL), TEXTS)


def test_vectors_have_unit_length_and_depend_on_the_seed() -> None:
    first = ContrastiveSentenceEncoder(SMALL).extract(TEXTS)
    assert torch.allclose(first.norm(dim=1), torch.ones(len(TEXTS)), atol=1e-5)
    assert torch.equal(ContrastiveSentenceEncoder(SMALL).extract(TEXTS), first)
    other = ContrastiveSentenceEncoder(SMALL.model_copy(update={"seed": 2})).extract(TEXTS)
    assert not torch.equal(other, first)


def test_features_are_hashed_words_bigrams_and_trigrams_within_the_table() -> None:
    encoder = ContrastiveSentenceEncoder(SMALL)
    ids = encoder.featurize(["ab cd"])
    # 2 words + 1 bigram + trigrams of "<ab>" (2) and "<cd>" (2)
    assert ids.shape == (1, 7)
    assert int(ids.min()) >= 1
    assert int(ids.max()) < SMALL.buckets
    no_subwords = ContrastiveSentenceEncoder(SMALL.model_copy(update={"char_ngrams": False}))
    assert no_subwords.featurize(["ab cd"]).shape == (1, 3)


def test_mined_pairs_follow_the_document_structure() -> None:
    doc = Document(
        id="loops",
        text="The for statement\n*****************\n\nThe for statement iterates over the items "
        "of any sequence in order. It can have an else clause that runs at the end.",
        metadata={"topic": "for-loops"},
    )
    pairs = mine_pairs([doc], min_passage_words=4)
    assert [p.query for p in pairs] == [
        "The for statement",
        "for loops",
        "The for statement iterates over the items of any sequence in order.",
    ]
    assert pairs[0].passage.startswith("The for statement iterates")
    assert pairs[2].passage == "It can have an else clause that runs at the end."
    assert {p.group for p in pairs} == {"loops"}


def test_mine_pairs_rejects_non_documents() -> None:
    with pytest.raises(InvalidInputError, match="item 0"):
        mine_pairs(["just text"])  # type: ignore[list-item]


def test_infonce_is_a_training_objective_with_a_symmetric_loss() -> None:
    encoder = ContrastiveSentenceEncoder(SMALL)
    objective = InfoNCE(encoder, temperature=0.1)
    assert isinstance(objective, TrainingObjective)
    pairs = [TextPair(f"query {i}", f"passage {i} words", f"g{i}") for i in range(4)]
    queries, passages, groups = objective.batch(pairs)
    loss = objective.loss("encoder", (queries, passages, groups))
    q, p = encoder.module(queries), encoder.module(passages)
    logits = q @ p.T / 0.1
    targets = torch.arange(4)
    expected = (
        torch.nn.functional.cross_entropy(logits, targets)
        + torch.nn.functional.cross_entropy(logits.T, targets)
    ) / 2
    assert torch.allclose(loss, expected)


def test_pairs_of_one_group_are_not_negatives_of_each_other() -> None:
    encoder = ContrastiveSentenceEncoder(SMALL)
    objective = InfoNCE(encoder)
    pairs = [TextPair("a", "b", "same"), TextPair("c", "d", "same")]
    # Two pairs of one group: no negatives at all, so the loss is exactly 0.
    assert objective.loss("encoder", objective.batch(pairs)).item() == pytest.approx(0.0, abs=1e-6)


def test_infonce_rejects_bad_batches_and_settings() -> None:
    objective = InfoNCE(ContrastiveSentenceEncoder(SMALL))
    with pytest.raises(InvalidInputError):
        objective.loss("encoder", (torch.zeros(2, 3),))  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="one player"):
        objective.loss(
            "critic", objective.batch([TextPair("a", "b", "x"), TextPair("c", "d", "y")])
        )
    with pytest.raises(InvalidInputError, match="at least two"):
        objective.batch([TextPair("a", "b", "x")])
    with pytest.raises(ConfigError):
        InfoNCE(ContrastiveSentenceEncoder(SMALL), temperature=0)
    with pytest.raises(ConfigError):
        InfoNCE("encoder")  # type: ignore[arg-type]


def test_an_objective_optimizer_step_lowers_the_loss() -> None:
    encoder = ContrastiveSentenceEncoder(SMALL)
    objective = InfoNCE(encoder)
    pairs = [TextPair(f"topic {w}", f"{w} is described here in detail", w) for w in "abcdefgh"]
    batch = objective.batch(pairs)
    optimizer = ObjectiveOptimizer(objective, optimizer=adamw(1e-2), seed=0)
    first = optimizer.step(batch).losses["encoder"]
    for _ in range(12):
        last = optimizer.step(batch).losses["encoder"]
    assert last < first / 2


def mean_reciprocal_rank(encoder: ContrastiveSentenceEncoder, pairs: list[TextPair]) -> float:
    passages = list(dict.fromkeys(p.passage for p in pairs))
    column = {text: i for i, text in enumerate(passages)}
    scores = encoder.extract([p.query for p in pairs]) @ encoder.extract(passages).T
    targets = torch.tensor([column[p.passage] for p in pairs])
    right = scores[torch.arange(len(pairs)), targets].unsqueeze(1)
    ranks = (scores > right).sum(dim=1) + 1
    return float((1.0 / ranks).mean())


def test_training_on_the_corpus_improves_retrieval() -> None:
    documents = python_docs()[:12]
    pairs = mine_pairs(documents)
    config = ContrastiveEncoderConfig(dim=64, width=64, buckets=1 << 14)
    before = mean_reciprocal_rank(ContrastiveSentenceEncoder(config), pairs)
    trained = train_on_corpus(documents, config=config, steps=40, batch_size=32, seed=0)
    after = mean_reciprocal_rank(trained, pairs)
    assert after > 2 * before, (before, after)  # about 0.076 -> 0.196


def test_training_is_reproducible_and_survives_save_load(tmp_path) -> None:
    documents = python_docs()[:4]
    first = train_on_corpus(documents, config=SMALL, steps=3, batch_size=8, seed=5)
    second = train_on_corpus(documents, config=SMALL, steps=3, batch_size=8, seed=5)
    assert torch.equal(first.extract(TEXTS), second.extract(TEXTS))
    first.save(tmp_path / "encoder")
    loaded = ContrastiveSentenceEncoder.load(tmp_path / "encoder")
    assert torch.equal(loaded.extract(TEXTS), first.extract(TEXTS))


def test_training_arguments_are_checked() -> None:
    with pytest.raises(ConfigError):
        train_on_corpus([], steps=0)
    with pytest.raises(ConfigError):
        train_on_corpus([], batch_size=1)
    with pytest.raises(InvalidInputError, match="fewer than one batch"):
        train_on_corpus([Document(id="d", text="too short")], config=SMALL)


def test_load_refuses_missing_and_foreign_files(tmp_path) -> None:
    with pytest.raises(NotFoundError):
        ContrastiveSentenceEncoder.load(tmp_path)
    ContrastiveSentenceEncoder(SMALL).save(tmp_path / "e")
    (tmp_path / "e" / "config.json").write_text('{"format": "genarch.GPT", "config": {}}')
    with pytest.raises(IntegrityError):
        ContrastiveSentenceEncoder.load(tmp_path / "e")
    ContrastiveSentenceEncoder(SMALL).save(tmp_path / "f")
    (tmp_path / "f" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(IntegrityError):
        ContrastiveSentenceEncoder.load(tmp_path / "f")


def test_load_after_a_save_interrupted_between_its_renames(
    tmp_path: Path, interrupt_between_renames: Callable[[Path], None]
) -> None:
    encoder = ContrastiveSentenceEncoder(SMALL)
    encoder.save(tmp_path / "encoder")
    interrupt_between_renames(tmp_path / "encoder")
    loaded = ContrastiveSentenceEncoder.load(tmp_path / "encoder")
    assert torch.equal(loaded.extract(TEXTS), encoder.extract(TEXTS))


def test_load_reads_a_save_of_the_previous_release(tmp_path: Path) -> None:
    # the layout ContrastiveSentenceEncoder.save wrote before genarch.persistence
    from safetensors.torch import save_file

    encoder = ContrastiveSentenceEncoder(SMALL.model_copy(update={"seed": 7}))
    document = {
        "format": "genarch.ContrastiveSentenceEncoder",
        "config": encoder.config.model_dump(mode="json"),
    }
    (tmp_path / "config.json").write_text(json.dumps(document, indent=2) + "\n")
    state = {k: v.contiguous() for k, v in encoder.module.state_dict().items()}
    save_file(state, str(tmp_path / "model.safetensors"))
    loaded = ContrastiveSentenceEncoder.load(tmp_path)
    assert loaded.config == encoder.config
    assert torch.equal(loaded.extract(TEXTS), encoder.extract(TEXTS))


def test_save_keeps_its_layout_and_format(tmp_path: Path) -> None:
    ContrastiveSentenceEncoder(SMALL).save(tmp_path / "e")
    assert {p.name for p in (tmp_path / "e").iterdir()} == {
        "config.json",
        "model.safetensors",
        "SHA256SUMS",
    }
    document = json.loads((tmp_path / "e" / "config.json").read_text())
    assert document == {
        "format": "genarch.ContrastiveSentenceEncoder",
        "config": SMALL.model_dump(mode="json"),
    }


def test_weights_of_another_shape_are_refused(tmp_path: Path) -> None:
    ContrastiveSentenceEncoder(SMALL).save(tmp_path / "e")
    ContrastiveSentenceEncoder(SMALL.model_copy(update={"dim": 16})).save(tmp_path / "other")
    (tmp_path / "other" / "model.safetensors").replace(tmp_path / "e" / "model.safetensors")
    with pytest.raises(IntegrityError, match="shape"):
        ContrastiveSentenceEncoder.load(tmp_path / "e")
