"""GRPO: the paper's formula, group-relative advantages, the kit, and a real run that learns."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest
import torch

from genarch.errors import ConfigError, InvalidInputError
from genarch.feedback import (
    GRPO,
    GRPOBatch,
    freeze_reference,
    grpo_advantages,
    grpo_batch,
    grpo_losses,
)
from genarch.models import GPT, TextGenerator
from genarch.testing import check_optimizer
from genarch.training import ObjectiveOptimizer, adamw


class Letters:
    """A character tokenizer over eight symbols: a small vocabulary keeps the real run fast."""

    alphabet = "abcdefg."

    @property
    def vocab_size(self) -> int:
        return len(self.alphabet)

    def encode(self, text: str) -> list[int]:
        return [self.alphabet.index(c) for c in text]

    def decode(self, token_ids: Sequence[int]) -> str:
        return "".join(self.alphabet[i] for i in token_ids)


TOKENIZER = Letters()
PROMPTS = ["ab", "cde", "f.", "gag"]


def tiny_gpt(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(vocab_size=8, context_length=16, n_layer=1, n_head=2, n_embd=16)


def share_of_a(text: str) -> float:
    """The verifiable reward: the share of the completion's characters that are 'a'."""
    return text.count("a") / len(text)


# ------------------------------------------------------------------------ the formula


def paper_objective(logp, old, ref, mask, adv, eps, beta):
    """DeepSeekMath eq. 3 with eq. 4's KL, written out with Python floats (float64)."""
    total = 0.0
    for i, row in enumerate(mask):
        terms = []
        for t, scored in enumerate(row):
            if not scored:
                continue
            rho = math.exp(logp[i][t] - old[i][t])
            clipped = min(max(rho, 1 - eps), 1 + eps)
            surrogate = min(rho * adv[i], clipped * adv[i])
            ref_over_pi = math.exp(ref[i][t] - logp[i][t])
            kl = ref_over_pi - math.log(ref_over_pi) - 1
            terms.append(surrogate - beta * kl)
        total += sum(terms) / len(terms)
    return total / len(mask)


def test_loss_equals_the_papers_formula_on_hand_made_log_probs():
    generator = torch.Generator().manual_seed(0)
    shape = (6, 5)
    logp = -torch.rand(shape, generator=generator, dtype=torch.float64) * 3
    old = logp + 0.4 * torch.randn(shape, generator=generator, dtype=torch.float64)
    ref = logp + 0.5 * torch.randn(shape, generator=generator, dtype=torch.float64)
    mask = torch.rand(shape, generator=generator) < 0.7
    mask[:, 0] = True
    adv = torch.randn(6, generator=generator, dtype=torch.float64)
    terms = grpo_losses(logp, old, ref, mask, adv, clip_eps=0.2, beta=0.04)
    expected = -paper_objective(
        logp.tolist(), old.tolist(), ref.tolist(), mask.tolist(), adv.tolist(), 0.2, 0.04
    )
    assert terms.losses.dtype == torch.float64
    assert float(terms.losses.mean()) == pytest.approx(expected, abs=1e-6)
    assert bool(terms.clipped.any())  # both cases exercised
    assert not bool(terms.clipped.all())
    assert bool((terms.kl >= 0).all())


def test_objective_loss_equals_the_formula_on_the_models_log_probs():
    policy = tiny_gpt(1).double()
    reference = freeze_reference(tiny_gpt(2).double())
    batch = grpo_batch(policy, PROMPTS[:2], share_of_a, 3, tokenizer=TOKENIZER, max_new_tokens=4)
    with torch.no_grad():  # move the policy away from π_old so that ratio ≠ 1
        for parameter in policy.parameters():
            parameter.add_(0.2 * torch.randn_like(parameter))
    objective = GRPO(policy, reference, clip_eps=0.1, beta=0.3)

    def per_token(model):
        with torch.no_grad():
            log_probs = model(batch.ids[:, :-1]).log_softmax(-1)
        return log_probs.gather(2, batch.ids[:, 1:, None])[..., 0].tolist()

    expected = -paper_objective(
        per_token(policy),
        batch.old_log_probs[:, 1:].double().tolist(),
        per_token(reference),
        batch.mask[:, 1:].tolist(),
        batch.advantages.double().tolist(),
        0.1,
        0.3,
    )
    assert float(objective.loss("policy", batch).detach()) == pytest.approx(expected, abs=1e-6)


def test_advantages_sum_to_zero_in_each_group_and_are_normalised():
    rewards = torch.tensor([1.0, 0.0, 0.5, 2.0, 2.0, 2.0, 0.0, 3.0, 1.0])
    advantages = grpo_advantages(rewards, 3)
    assert advantages.reshape(3, 3).sum(dim=1).abs().max() < 1e-6
    assert advantages[3:6].tolist() == [0.0, 0.0, 0.0]  # equal rewards: no signal
    assert float(advantages[:3].std()) == pytest.approx(1.0, abs=1e-3)


def test_first_step_with_ratio_one_is_the_plain_policy_gradient():
    policy = tiny_gpt(3)
    batch = grpo_batch(policy, PROMPTS, share_of_a, 4, tokenizer=TOKENIZER, max_new_tokens=5)
    objective = GRPO(policy, freeze_reference(policy), beta=0.5)
    loss = objective.loss("policy", batch)
    grads = torch.autograd.grad(loss, list(policy.parameters()))
    # ratio = 1 and π = π_ref: the loss is -mean(A) = 0 and its gradient is
    # -mean_i A_i / |o_i| Σ_t ∇ log π(o_i,t): REINFORCE with the group baseline.
    logits = policy(batch.ids[:, :-1])
    log_probs = logits.log_softmax(-1).gather(2, batch.ids[:, 1:, None])[..., 0]
    mask = batch.mask[:, 1:].float()
    reinforce = -((log_probs * mask).sum(1) / mask.sum(1) * batch.advantages).mean()
    expected = torch.autograd.grad(reinforce, list(policy.parameters()))
    assert abs(float(loss.detach())) < 1e-6
    for got, want in zip(grads, expected, strict=True):
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)
    metrics = objective.measured_loss("policy", batch).metrics
    assert metrics["kl"] == pytest.approx(0.0, abs=1e-6)
    assert metrics["clip_fraction"] == 0.0
    assert metrics["ratio_mean"] == pytest.approx(1.0, abs=1e-6)


# ------------------------------------------------------------------------ batch and kit


def test_grpo_batch_is_seeded_and_masks_only_the_completion():
    policy = tiny_gpt(4)
    first = grpo_batch(policy, PROMPTS, share_of_a, 3, tokenizer=TOKENIZER, max_new_tokens=4)
    again = grpo_batch(policy, PROMPTS, share_of_a, 3, tokenizer=TOKENIZER, max_new_tokens=4)
    other = grpo_batch(
        policy, PROMPTS, share_of_a, 3, tokenizer=TOKENIZER, max_new_tokens=4, seed=1
    )
    assert torch.equal(first.ids, again.ids)
    assert not torch.equal(first.ids, other.ids)
    assert first.mask.sum(dim=1).tolist() == [4] * 12
    assert first.mask[0].tolist() == [False, False, True, True, True, True, False]
    assert bool((first.old_log_probs[first.mask] < 0).all())
    assert bool((first.old_log_probs[~first.mask] == 0).all())


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"group_size": 1}, "group_size"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"prompts": []}, "prompts"),
        ({"prompts": ["ab", ""]}, "prompts[1]"),
        ({"reward_fn": lambda text: float("nan")}, "reward of completion 0"),
        ({"tokenizer": None}, "tokenizer"),
    ],
)
def test_grpo_batch_rejects_bad_input_naming_it(kwargs, names):
    arguments = {
        "prompts": PROMPTS,
        "reward_fn": share_of_a,
        "group_size": 2,
        "tokenizer": TOKENIZER,
        "max_new_tokens": 4,
        **kwargs,
    }
    with pytest.raises(InvalidInputError, match=names.replace("[", r"\[")):
        grpo_batch(tiny_gpt(), **arguments)


def test_grpo_refuses_a_shared_reference_and_a_malformed_batch():
    policy = tiny_gpt()
    with pytest.raises(ConfigError, match="same module"):
        GRPO(policy, policy)
    objective = GRPO(policy, freeze_reference(policy))
    batch = grpo_batch(policy, PROMPTS, share_of_a, 2, tokenizer=TOKENIZER, max_new_tokens=3)
    with pytest.raises(InvalidInputError, match="GRPOBatch.advantages"):
        objective.loss("policy", {**batch, "advantages": batch.advantages[:2]})
    with pytest.raises(InvalidInputError, match="one player"):
        objective.loss("reference", batch)


KIT_BATCHES = [
    grpo_batch(tiny_gpt(5), PROMPTS, share_of_a, 2, tokenizer=TOKENIZER, max_new_tokens=3, seed=s)
    for s in range(3)
]
BAD_BATCHES = [
    {"ids": KIT_BATCHES[0].ids},
    {**KIT_BATCHES[0], "ids": KIT_BATCHES[0].ids + 100},  # ids outside the vocabulary
    {**KIT_BATCHES[0], "mask": KIT_BATCHES[0].mask.float()},
]


def test_grpo_passes_the_optimizer_kit():
    def make() -> ObjectiveOptimizer[GRPOBatch]:
        policy = tiny_gpt(seed=6)
        objective = GRPO(policy, freeze_reference(policy), beta=0.1)
        return ObjectiveOptimizer(objective, optimizer=adamw(0.01), seed=3)

    check_optimizer(make, KIT_BATCHES, invalid_batches=BAD_BATCHES, label="grpo-objective")


# ------------------------------------------------------------------------ real training


def mean_reward(policy: GPT, seed: int) -> float:
    batch = grpo_batch(
        policy, PROMPTS, share_of_a, 8, tokenizer=TOKENIZER, max_new_tokens=6, seed=seed
    )
    return float(batch.rewards.mean())


def test_grpo_raises_the_verifiable_reward(one_thread):
    """A tiny GPT learns to write 'a's: the held-out mean reward rises from ≈ 1/8."""
    policy = tiny_gpt(seed=7)
    objective = GRPO(policy, freeze_reference(policy), beta=0.04)
    optimizer = ObjectiveOptimizer(objective, optimizer=adamw(0.01), seed=0)
    before = mean_reward(policy, seed=10_000)
    logged = []
    for step in range(30):
        batch = grpo_batch(
            policy, PROMPTS, share_of_a, 8, tokenizer=TOKENIZER, max_new_tokens=6, seed=step
        )
        for _ in range(2):  # two updates per sampled batch: ratio leaves 1, clipping acts
            logged.append(optimizer.step(batch).metrics)
    after = mean_reward(policy, seed=10_000)
    assert before < 0.2, before  # measured 0.099 (1/8 would be chance)
    assert after > 0.6, after  # measured 0.974
    assert all(
        {"policy/reward_mean", "policy/kl", "policy/clip_fraction"} <= set(m) for m in logged
    )
    assert logged[-1]["policy/kl"] > 0.0


def test_grpo_batch_from_a_text_generator_equals_the_bare_model_with_its_tokenizer():
    policy = tiny_gpt(8)
    bare = grpo_batch(policy, PROMPTS, share_of_a, 2, tokenizer=TOKENIZER, max_new_tokens=3)
    wrapped = grpo_batch(TextGenerator(policy, TOKENIZER), PROMPTS, share_of_a, 2, max_new_tokens=3)
    assert all(torch.equal(bare[key], wrapped[key]) for key in bare)
