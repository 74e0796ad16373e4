"""Preference optimisation: the batch, the papers' formulas, the frozen reference, the kit, training."""

from __future__ import annotations

import math
import random

import pytest
import torch

from genarch.data import ByteTokenizer
from genarch.errors import ConfigError, InvalidInputError
from genarch.feedback.preference import (
    PreferenceBatch,
    PreferenceOptimization,
    freeze_reference,
    preference_batch,
    sequence_log_probs,
)
from genarch.models import GPT
from genarch.schemas import OutputRef, Preference
from genarch.testing import check_optimizer
from genarch.training import ObjectiveOptimizer, Trainer, adamw

TOKENIZER = ByteTokenizer()


def tiny_lm(seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Embedding(256, 8), torch.nn.Linear(8, 256))
    return model.to(dtype)


def tiny_gpt(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(vocab_size=256, context_length=32, n_layer=1, n_head=2, n_embd=32)


def pairs(count: int, seed: int) -> list[Preference]:
    """The synthetic preference: a response that ends with a period beats the same one without."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    out = []
    for _ in range(count):
        prompt = "".join(rng.choices(letters, k=3)) + ":"
        body = "".join(rng.choices(letters, k=4))
        out.append(
            Preference(prompt=prompt, chosen=body + ".", rejected=body + rng.choice(letters))
        )
    return out


def perturbed(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """A policy that differs from its reference, so the log-ratios are not all zero."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            noise = torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype)
            parameter.add_(0.3 * noise)
    return model


# ------------------------------------------------------------------------------ the batch


def test_preference_batch_masks_only_the_response_tokens():
    batch = preference_batch(
        [Preference(prompt="ab", chosen="cde", rejected="f")], TOKENIZER, max_len=16, pad_id=0
    )
    assert batch.chosen.tolist() == [[97, 98, 99, 100, 101]]
    assert batch.chosen_mask.tolist() == [[False, False, True, True, True]]
    assert batch.rejected.tolist() == [[97, 98, 102, 0, 0]]
    assert batch.rejected_mask.tolist() == [[False, False, True, False, False]]


def test_preference_batch_truncates_the_prompt_first_then_the_response():
    long_prompt = Preference(prompt="0123456789", chosen="abc", rejected="xy")
    batch = preference_batch([long_prompt], TOKENIZER, max_len=5)
    assert TOKENIZER.decode(batch.chosen[0].tolist()) == "89abc"
    assert batch.chosen_mask[0].tolist() == [False, False, True, True, True]
    long_answer = Preference(prompt="p", chosen="abcdefgh", rejected="x")
    batch = preference_batch([long_answer], TOKENIZER, max_len=4)
    assert TOKENIZER.decode(batch.chosen[0].tolist()) == "pabc"


@pytest.mark.parametrize(
    ("items", "max_len", "named"),
    [
        ([], 8, "preferences is empty"),
        (["not a preference"], 8, "preferences[0]"),
        (
            [
                Preference(
                    prompt="p", chosen=OutputRef(uri="x", media_type="image/png"), rejected="r"
                )
            ],
            8,
            "preferences[0].chosen",
        ),
        ([Preference(prompt="p", chosen="a", rejected="b")], 1, "max_len"),
    ],
)
def test_preference_batch_refuses_bad_input_naming_it(items, max_len, named):
    with pytest.raises(InvalidInputError, match=named.replace("[", r"\[").replace("]", r"\]")):
        preference_batch(items, TOKENIZER, max_len=max_len)


def test_a_batch_checks_its_fields_and_round_trips_through_a_dict():
    batch = preference_batch(pairs(3, seed=0), TOKENIZER, max_len=16)
    assert PreferenceBatch.of(dict(batch)).chosen is batch.chosen
    with pytest.raises(InvalidInputError, match="rejected_mask"):
        PreferenceBatch(batch.chosen, batch.chosen_mask, batch.rejected, batch.rejected_mask.int())
    with pytest.raises(InvalidInputError, match="chosen_mask: row 0 has no response token"):
        PreferenceBatch(
            batch.chosen, torch.zeros_like(batch.chosen_mask), batch.rejected, batch.rejected_mask
        )
    with pytest.raises(InvalidInputError, match="keys"):
        PreferenceBatch.of({"chosen": batch.chosen})


# ----------------------------------------------------------------------- the formulas


def independent_log_prob(model: torch.nn.Module, ids: list[int], mask: list[bool]) -> float:
    """Σ log p(token | prefix) over response tokens, one prefix at a time."""
    total = 0.0
    with torch.no_grad():
        for t in range(1, len(ids)):
            if mask[t]:
                logits = model(torch.tensor([ids[:t]]))[0, -1].double()
                total += float(logits.log_softmax(-1)[ids[t]])
    return total


def test_sequence_log_probs_sum_the_response_tokens_only():
    model = tiny_lm(dtype=torch.float64)
    batch = preference_batch(pairs(4, seed=1), TOKENIZER, max_len=16)
    got = sequence_log_probs(model, batch.rejected, batch.rejected_mask)
    expected = [
        independent_log_prob(model, ids, mask)
        for ids, mask in zip(batch.rejected.tolist(), batch.rejected_mask.tolist(), strict=True)
    ]
    assert got.dtype == torch.float64
    assert got.tolist() == pytest.approx(expected, abs=1e-9)


def paper_loss(loss: str, h: float, beta: float, eps: float) -> float:
    """The papers' per-pair losses, written out with math.* (h: the log-ratio difference)."""

    def log_sigmoid(x: float) -> float:
        return -math.log1p(math.exp(-x))

    if loss == "dpo":  # Rafailov et al. 2023, eq. 7
        return -log_sigmoid(beta * h)
    if loss == "cdpo":  # Mitchell 2023: labels flipped with probability eps
        return -(1 - eps) * log_sigmoid(beta * h) - eps * log_sigmoid(-beta * h)
    return (h - 1 / (2 * beta)) ** 2  # Azar et al. 2023, eq. 17 with tau = beta


@pytest.mark.parametrize(
    ("loss", "beta", "eps"),
    [("dpo", 0.1, 0.0), ("dpo", 2.0, 0.0), ("cdpo", 0.5, 0.2), ("ipo", 0.3, 0.0)],
)
def test_losses_equal_the_papers_formulas_on_the_same_log_probabilities(loss, beta, eps):
    policy = perturbed(tiny_lm(dtype=torch.float64), seed=3)
    reference = tiny_lm(dtype=torch.float64)
    objective = PreferenceOptimization(policy, reference, loss=loss, beta=beta, label_smoothing=eps)
    batch = preference_batch(pairs(6, seed=2), TOKENIZER, max_len=16)
    policy.eval()
    per_pair = []
    for i in range(batch.num_pairs):
        logp = {
            (who, side): independent_log_prob(
                model, getattr(batch, side)[i].tolist(), getattr(batch, f"{side}_mask")[i].tolist()
            )
            for who, model in (("policy", policy), ("reference", reference))
            for side in ("chosen", "rejected")
        }
        h = (logp["policy", "chosen"] - logp["reference", "chosen"]) - (
            logp["policy", "rejected"] - logp["reference", "rejected"]
        )
        per_pair.append(paper_loss(loss, h, beta, eps))
    assert abs(max(per_pair) - min(per_pair)) > 1e-3  # the pairs really differ
    got = float(objective.loss("policy", batch).detach())
    assert got == pytest.approx(sum(per_pair) / len(per_pair), abs=1e-6)


def test_metrics_report_rewards_and_the_kl_estimate_over_chosen_tokens():
    policy, reference = (
        perturbed(tiny_lm(dtype=torch.float64), seed=5),
        tiny_lm(dtype=torch.float64),
    )
    objective = PreferenceOptimization(policy, reference, beta=0.5)
    batch = preference_batch(pairs(5, seed=4), TOKENIZER, max_len=16)
    metrics = objective.metrics(batch)
    ratios, rewards, tokens = [], [], 0
    for i in range(batch.num_pairs):
        row = {}
        for side in ("chosen", "rejected"):
            ids, mask = getattr(batch, side)[i].tolist(), getattr(batch, f"{side}_mask")[i].tolist()
            row[side] = independent_log_prob(policy, ids, mask) - independent_log_prob(
                reference, ids, mask
            )
        ratios.append(row["chosen"])
        tokens += int(batch.chosen_mask[i].sum())
        rewards.append((0.5 * row["chosen"], 0.5 * row["rejected"]))
    assert metrics["kl"] == pytest.approx(sum(ratios) / tokens, abs=1e-9)
    assert metrics["reward_margin"] == pytest.approx(
        sum(c - r for c, r in rewards) / len(rewards), abs=1e-9
    )
    assert metrics["reward_accuracy"] == sum(c > r for c, r in rewards) / len(rewards)


def test_kl_and_margin_are_zero_before_training():
    policy = tiny_gpt()
    objective = PreferenceOptimization(policy, freeze_reference(policy))
    metrics = objective.metrics(preference_batch(pairs(4, seed=0), TOKENIZER, max_len=32))
    assert (metrics["kl"], metrics["reward_margin"], metrics["reward_accuracy"]) == (0.0, 0.0, 0.5)
    assert metrics["loss"] == pytest.approx(math.log(2))


# ---------------------------------------------------------------------- the reference


def test_the_reference_is_frozen_and_never_updated():
    policy = tiny_gpt()
    reference = GPT(policy.config)
    reference.load_state_dict(policy.state_dict())
    reference.train()
    objective = PreferenceOptimization(policy, reference, beta=0.5)
    assert not reference.training
    assert not any(p.requires_grad for p in reference.parameters())
    assert set(objective.players()) == {"policy"}
    before = {k: v.clone() for k, v in reference.state_dict().items()}
    optimizer = ObjectiveOptimizer(objective, optimizer=adamw(0.05))
    batch = preference_batch(pairs(8, seed=0), TOKENIZER, max_len=32)
    reports = [optimizer.step(batch) for _ in range(3)]
    assert reports[-1].metrics["policy/kl"] != 0.0  # the policy moved ...
    after = reference.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # ... the reference did not
    assert all(p.grad is None for p in reference.parameters())


def test_an_unfrozen_reference_is_refused():
    policy = tiny_gpt()
    objective = PreferenceOptimization(policy, freeze_reference(policy))
    batch = preference_batch(pairs(2, seed=0), TOKENIZER, max_len=32)
    objective.reference.train()
    with pytest.raises(ConfigError, match="frozen"):
        objective.loss("policy", batch)
    objective.reference.eval()
    next(objective.reference.parameters()).requires_grad_(True)
    with pytest.raises(ConfigError, match="frozen"):
        objective.loss("policy", batch)


def test_the_policy_cannot_be_its_own_reference():
    policy = tiny_gpt()
    with pytest.raises(ConfigError, match="same module"):
        PreferenceOptimization(policy, policy)
    sharing = torch.nn.Sequential(policy.wte)
    with pytest.raises(ConfigError, match="share"):
        PreferenceOptimization(policy, sharing)


@pytest.mark.parametrize(
    "fields",
    [{"loss": "cdpo"}, {"loss": "dpo", "label_smoothing": 0.1}, {"beta": 0.0}, {"loss": "kto"}],
)
def test_inconsistent_configs_are_config_errors(fields):
    policy = tiny_lm()
    with pytest.raises(ConfigError):
        PreferenceOptimization(policy, freeze_reference(policy), **fields)


# ------------------------------------------------------------------ the optimizer kit

KIT_BATCHES = [preference_batch(pairs(4, seed=s), TOKENIZER, max_len=16) for s in range(3)]
BAD_BATCHES = [
    {"chosen": KIT_BATCHES[0].chosen},
    torch.zeros(4, 8, dtype=torch.long),
    PreferenceBatch(
        KIT_BATCHES[0].chosen + 300,  # ids outside the vocabulary
        KIT_BATCHES[0].chosen_mask,
        KIT_BATCHES[0].rejected,
        KIT_BATCHES[0].rejected_mask,
    ),
]


@pytest.mark.parametrize("loss", ["dpo", "cdpo", "ipo"])
def test_objective_optimizer_passes_the_optimizer_kit(loss):
    def make() -> ObjectiveOptimizer[PreferenceBatch]:
        policy = tiny_gpt(seed=1)
        smoothing = 0.1 if loss == "cdpo" else 0.0
        objective = PreferenceOptimization(
            policy, freeze_reference(policy), loss=loss, beta=0.5, label_smoothing=smoothing
        )
        return ObjectiveOptimizer(objective, optimizer=adamw(0.01), seed=3)

    check_optimizer(make, KIT_BATCHES, invalid_batches=BAD_BATCHES, label=f"{loss}-objective")


def test_trainer_passes_the_optimizer_kit_with_accumulation():
    def make() -> Trainer:
        policy = tiny_gpt(seed=2)
        objective = PreferenceOptimization(policy, freeze_reference(policy), beta=0.5)
        return Trainer(objective, batch_size=4, accumulation_steps=2, progress=False, max_steps=10)

    check_optimizer(make, KIT_BATCHES, invalid_batches=BAD_BATCHES, label="dpo-trainer")


def test_trainer_fit_logs_the_preference_metrics_every_step(tmp_path):
    policy = tiny_gpt()
    objective = PreferenceOptimization(policy, freeze_reference(policy), beta=0.5)
    data = preference_batch(pairs(16, seed=0), TOKENIZER, max_len=32)
    trainer = Trainer(
        objective, batch_size=8, max_steps=3, progress=False, checkpoint_dir=str(tmp_path / "run")
    )
    reports = []
    trainer.fit(data, eval_data=data, on_step_end=[reports.append])
    keys = {"kl", "reward_chosen", "reward_rejected", "reward_margin", "reward_accuracy"}
    assert all({f"policy/{k}" for k in keys} <= set(r.metrics) for r in reports)
    logged = (tmp_path / "run" / "metrics.jsonl").read_text()
    assert logged.count('"policy/kl"') == 3


# ------------------------------------------------------------------------ real training


def test_dpo_raises_held_out_preference_accuracy(one_thread):
    """A tiny GPT learns "end the answer with a period" from pairs, and it generalises."""
    policy = tiny_gpt(seed=3)
    objective = PreferenceOptimization(policy, freeze_reference(policy), beta=0.5)
    train = preference_batch(pairs(64, seed=10), TOKENIZER, max_len=32)
    held_out = preference_batch(pairs(64, seed=11), TOKENIZER, max_len=32)

    def prefers_chosen() -> float:  # the policy's own log-probabilities, no reference
        policy.eval()
        with torch.no_grad():
            chosen = sequence_log_probs(policy, held_out.chosen, held_out.chosen_mask)
            rejected = sequence_log_probs(policy, held_out.rejected, held_out.rejected_mask)
        return float((chosen > rejected).float().mean())

    before, before_metrics = prefers_chosen(), objective.metrics(held_out)
    trainer = Trainer(objective, batch_size=16, max_steps=30, progress=False, seed=0,
                      optimizer={"learning_rate": 3e-3})  # fmt: skip
    trainer.fit(train)
    after, after_metrics = prefers_chosen(), objective.metrics(held_out)
    assert before < 0.6, before  # measured: 0.44
    assert after > 0.95, after  # measured: 1.0
    assert before_metrics["reward_accuracy"] == 0.5
    assert after_metrics["reward_accuracy"] > 0.95, after_metrics
    assert abs(after_metrics["kl"]) > 0.05, after_metrics  # it moved (DPO lowers chosen too: < 0)
