"""Tiny models and objectives shared by the training tests (and their subprocess workers)."""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from genarch.errors import InvalidInputError

VOCAB, WIDTH, BLOCK = 16, 16, 8


class TinyLM(nn.Module):
    """Embedding -> causal running mean -> MLP with dropout -> logits; enough to learn."""

    def __init__(self, vocab: int = VOCAB, width: int = WIDTH, dropout: float = 0.1) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, width)
        self.norm = nn.LayerNorm(width)
        self.mix = nn.Linear(width, width)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(width, vocab)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.tok(idx)  # (B, T, C)
        steps = torch.arange(1, idx.shape[1] + 1, device=idx.device).view(1, -1, 1)
        x = x + x.cumsum(1) / steps  # causal: position t sees tokens <= t
        x = x + self.drop(torch.relu(self.mix(self.norm(x))))
        return self.head(x)  # (B, T, V)


def seeded(seed: int, build):  # type: ignore[no-untyped-def]
    """Build a model from a fixed seed without touching the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def lm_data(rows: int = 64, seed: int = 0) -> torch.Tensor:
    """(rows, BLOCK + 1) token rows of a learnable pattern: counting modulo VOCAB."""
    generator = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, VOCAB, (rows, 1), generator=generator)
    return (starts + torch.arange(BLOCK + 1)) % VOCAB


# ------------------------------------------------------------------ two players: a GAN


class TinyGAN:
    """Generator maps noise to 2-D points; the discriminator tells them from real ones."""

    def __init__(self) -> None:
        self.generator = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
        self.discriminator = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 1))

    def players(self) -> Mapping[str, nn.Module]:
        return {"discriminator": self.discriminator, "generator": self.generator}

    def loss(self, player: str, batch: torch.Tensor) -> torch.Tensor:
        if not isinstance(batch, torch.Tensor) or batch.ndim != 2 or batch.shape[1] != 2:
            raise InvalidInputError(f"TinyGAN expects (B, 2) points, got {type(batch).__name__}")
        noise = torch.randn(batch.shape[0], 4)  # seeded per step by the optimizer
        fake = self.generator(noise)
        if player == "discriminator":
            real_logits = self.discriminator(batch)
            fake_logits = self.discriminator(fake.detach())
            return F.binary_cross_entropy_with_logits(
                real_logits, torch.ones_like(real_logits)
            ) + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
        fake_logits = self.discriminator(fake)
        return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def gan_data(rows: int = 32, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(rows, 2, generator=generator) * 0.1 + torch.tensor([2.0, -1.0])


# ------------------------------------------------- DPO with a frozen reference model


def sequence_logprob(model: nn.Module, rows: torch.Tensor) -> torch.Tensor:
    """Sum of log p(token_t | tokens_<t) over each (T + 1)-token row: shape (B,)."""
    logits = model(rows[:, :-1])
    logp = torch.log_softmax(logits.float(), dim=-1)
    return logp.gather(-1, rows[:, 1:].unsqueeze(-1)).squeeze(-1).sum(-1)


class TinyDPO:
    """Direct preference optimisation (Rafailov et al., 2023) of a policy against a frozen copy."""

    def __init__(self, policy: nn.Module, beta: float = 0.5) -> None:
        self.policy = policy
        self.reference = copy.deepcopy(policy).requires_grad_(False).eval()
        self.beta = beta

    def players(self) -> Mapping[str, nn.Module]:
        return {"policy": self.policy}  # the reference is not a player: it never updates

    def loss(self, player: str, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        if not isinstance(batch, Mapping) or set(batch) != {"chosen", "rejected"}:
            raise InvalidInputError("TinyDPO expects {'chosen': ids, 'rejected': ids}")
        with torch.no_grad():
            ref_margin = sequence_logprob(self.reference, batch["chosen"]) - sequence_logprob(
                self.reference, batch["rejected"]
            )
        margin = sequence_logprob(self.policy, batch["chosen"]) - sequence_logprob(
            self.policy, batch["rejected"]
        )
        return -F.logsigmoid(self.beta * (margin - ref_margin)).mean()


def dpo_data(rows: int = 16, seed: int = 0) -> dict[str, torch.Tensor]:
    chosen = lm_data(rows, seed)
    rejected = torch.randint(0, VOCAB, chosen.shape, generator=torch.Generator().manual_seed(seed))
    return {"chosen": chosen, "rejected": rejected}
