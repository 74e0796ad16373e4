"""One protocol serves every family: the fakes pass the conformance kit."""

from __future__ import annotations

import torch

from fakes import (
    BigramLM,
    CharHistogram,
    DirectoryDeployer,
    ExactVectorStore,
    IndependentTabular,
    InMemoryFeedback,
    KeywordRetriever,
    LinearLatentImages,
    PreferenceBatch,
    SlotTemplate,
    dpo_optimizer,
    gan_optimizer,
    reopen_feedback,
)
from genarch import (
    Chunk,
    Correction,
    Generator,
    ImageRequest,
    LatentGenerator,
    Optimizer,
    Preference,
    Rating,
    StreamingGenerator,
    TabularRequest,
    TextRequest,
)
from genarch.testing import (
    deployer_checks,
    feature_extractor_checks,
    feedback_loop_checks,
    generator_checks,
    optimizer_checks,
    parametrize_with_checks,
    prompt_template_checks,
    retriever_checks,
    vector_store_checks,
)

LM = BigramLM.fit("the quick brown fox jumps over the lazy dog. " * 20)
TEXT_REQUESTS = [
    TextRequest(prompt="the", max_new_tokens=12, seed=1),
    TextRequest(prompt="a fox", max_new_tokens=5, temperature=0.7, seed=2),
    TextRequest(prompt="dog", max_new_tokens=3, temperature=0.0, seed=3),
]
TABLE = IndependentTabular(
    {"weather": {"sun": 0.7, "rain": 0.3}, "traffic": {"light": 0.6, "heavy": 0.4}}
)
GAN_BATCHES = [
    3 + 0.5 * torch.randn(16, 1, generator=torch.Generator().manual_seed(i)) for i in range(4)
]
DPO_BATCHES = [
    PreferenceBatch(
        chosen=torch.randn(8, 4, generator=torch.Generator().manual_seed(i)) + 1,
        rejected=torch.randn(8, 4, generator=torch.Generator().manual_seed(100 + i)),
    )
    for i in range(4)
]
FEEDBACK = [
    Rating(prompt="2+2?", output="4", score=1.0),
    Correction(prompt="capital of France?", output="Lyon", corrected="Paris"),
    Preference(prompt="greet", chosen="Hello!", rejected="go away"),
]
CHUNKS = [
    Chunk(id=f"c{i}", document_id="d", text=t, start=0, end=len(t))
    for i, t in enumerate(["python lists are mutable", "tuples are immutable", "dicts map keys"])
]


@parametrize_with_checks(
    [
        generator_checks(
            LM,
            TEXT_REQUESTS,
            invalid_requests=[TextRequest(prompt=""), TextRequest(prompt="ünïcode")],
            label="text-lm",
        ),
        generator_checks(
            LinearLatentImages(),
            [ImageRequest(num_samples=2, seed=1), ImageRequest(num_samples=1, label=2, seed=5)],
            invalid_requests=[ImageRequest(label=7)],
            label="latent-images",
        ),
        generator_checks(
            TABLE,
            [
                TabularRequest(num_rows=5, seed=1),
                TabularRequest(evidence={"weather": "rain"}, seed=2),
            ],
            invalid_requests=[
                TabularRequest(evidence={"colour": "red"}),
                TabularRequest(evidence={"weather": "snow"}),
            ],
            label="tabular",
        ),
        optimizer_checks(
            gan_optimizer, GAN_BATCHES, invalid_batches=[torch.ones(4, 3)], label="gan-step"
        ),
        optimizer_checks(dpo_optimizer, DPO_BATCHES, label="dpo-step"),
        feature_extractor_checks(CharHistogram(), ["abc", "hello world", ""]),
        feedback_loop_checks(InMemoryFeedback, FEEDBACK, reopen=reopen_feedback),
        deployer_checks(DirectoryDeployer(), LM, TEXT_REQUESTS),
        vector_store_checks(ExactVectorStore),
        retriever_checks(KeywordRetriever(CHUNKS), ["are lists mutable", "keys"]),
        prompt_template_checks(SlotTemplate("Q: [[question]]\nA:"), {"question": "why?"}),
    ]
)
def test_fakes_conform(check):
    check()


def test_one_generator_protocol_serves_text_images_and_tables():
    assert isinstance(LM, Generator)
    assert isinstance(LM, StreamingGenerator)
    assert isinstance(LinearLatentImages(), Generator)
    assert isinstance(LinearLatentImages(), LatentGenerator)
    assert isinstance(TABLE, Generator)
    assert not isinstance(TABLE, LatentGenerator)


def test_one_optimizer_protocol_serves_two_players_and_a_frozen_reference():
    gan, dpo = gan_optimizer(), dpo_optimizer()
    assert isinstance(gan, Optimizer)
    assert isinstance(dpo, Optimizer)
    assert set(gan.step(GAN_BATCHES[0]).losses) == {"discriminator", "generator"}
    reference_before = {k: v.clone() for k, v in dpo.objective.reference.state_dict().items()}
    for batch in DPO_BATCHES:
        dpo.step(batch)
    for key, value in dpo.objective.reference.state_dict().items():
        assert torch.equal(value, reference_before[key]), "the frozen reference model changed"


def test_gan_step_really_trains_the_generator_towards_the_data():
    optimizer = gan_optimizer()
    noise = torch.randn(512, 2, generator=torch.Generator().manual_seed(0))
    before = optimizer.objective.generator(noise).mean().item()
    for i in range(300):
        optimizer.step(3 + 0.5 * torch.randn(64, 1, generator=torch.Generator().manual_seed(i)))
    after = optimizer.objective.generator(noise).mean().item()
    assert abs(after - 3) < abs(before - 3) / 2


def test_dpo_step_raises_the_margin_of_chosen_over_rejected():
    optimizer = dpo_optimizer()
    policy = optimizer.objective.policy
    batch = DPO_BATCHES[0]

    def margin() -> float:
        return float((policy(batch.chosen) - policy(batch.rejected)).mean().detach())

    before = margin()
    for _ in range(50):
        for b in DPO_BATCHES:
            optimizer.step(b)
    assert margin() > before + 0.5
