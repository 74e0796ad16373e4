"""A reward model: a Bradley-Terry scalar head on a genarch transformer, trained from preferences.

:class:`RewardModel` reads a sequence with a :class:`~genarch.models.GPT`'s
final hidden states, takes the state of the last non-padding token (it has
attended to the whole prompt and response) and maps it to one number through
a linear head. Under the Bradley-Terry model (Bradley & Terry 1952; as in
Ouyang et al. 2022, eq. 1) the probability that ``chosen`` beats ``rejected``
is ``sigmoid(r(chosen) - r(rejected))``, so :class:`RewardModeling` — a
:class:`~genarch.protocols.TrainingObjective` for the ordinary
:class:`~genarch.training.Trainer` — minimises ``-log sigmoid(r_chosen - r_rejected)``
over :class:`~genarch.feedback.PreferenceBatch` pairs, and
:func:`pairwise_accuracy` reports the share of held-out pairs ranked right.

:func:`best_of_n` uses any reward — this model, or a programmatic check —
to pick the best of ``n`` seeded samples of any text generator (best-of-n,
or rejection sampling when the best answers are kept as training data).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from genarch.configured import Configured
from genarch.errors import ConfigError, InvalidInputError
from genarch.feedback.preference import PreferenceBatch
from genarch.models import GPT
from genarch.persistence import load_state, open_saved, reading, save_component
from genarch.protocols import Generator, PathLike
from genarch.schemas import Config, Preference, TextRequest, TextResult
from genarch.training.objectives import MeasuredLoss
from genarch.validation import describe

__all__ = [
    "BestOfN",
    "RewardModel",
    "RewardModelConfig",
    "RewardModeling",
    "best_of_n",
    "candidate_seed",
    "pairwise_accuracy",
]

FORMAT = "genarch.reward_model/1"


class RewardModelConfig(Config):
    """The reward head's settings (the transformer keeps its own config).

    Attributes:
        head_bias: give the linear head a bias. The Bradley-Terry loss only
            sees reward differences, so a bias never changes a ranking; it
            only shifts every reward.
    """

    head_bias: bool = True


class RewardModel(nn.Module, Configured[RewardModelConfig]):
    """A scalar reward for token sequences: GPT hidden states → last non-pad token → linear.

    Args:
        base: the transformer that reads the sequences (its weights are trained too).
        config: a :class:`RewardModelConfig`; keyword arguments are shorthand for its fields.

    Raises:
        ConfigError: ``base`` is not a :class:`~genarch.models.GPT`, or an invalid config.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> base = GPT(vocab_size=256, context_length=16, n_layer=1, n_head=2, n_embd=16)
        >>> model = RewardModel(base)
        >>> ids = torch.tensor([[72, 105, 0], [72, 105, 33]])
        >>> real = torch.tensor([[True, True, False], [True, True, True]])
        >>> model(ids, real).shape
        torch.Size([2])
    """

    def __init__(
        self,
        base: GPT,
        config: RewardModelConfig | Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> None:
        nn.Module.__init__(self)
        Configured.__init__(self, config, **fields)
        if not isinstance(base, GPT):
            raise ConfigError(f"RewardModel needs a genarch GPT as its base, got {describe(base)}")
        self.base = base
        self.head = nn.Linear(base.config.n_embd, 1, bias=self.config.head_bias)
        nn.init.normal_(self.head.weight, std=0.02)
        if self.head.bias is not None:
            nn.init.zeros_(self.head.bias)

    def forward(self, ids: Tensor, real: Tensor) -> Tensor:
        """Rewards ``(B,)`` of right-padded token ids ``(B, T)``.

        Args:
            ids: token ids, padding at the end of each row.
            real: ``(B, T)`` booleans, True at the tokens that are not padding;
                the reward is read at the last True of each row.

        Raises:
            InvalidInputError: mismatched shapes, a row with no real token, or
                ids the transformer refuses.
        """
        if not isinstance(real, Tensor) or real.dtype != torch.bool or real.shape != ids.shape:
            raise InvalidInputError(
                f"real must be a bool tensor shaped like ids {tuple(ids.shape)}, got "
                f"{describe(real) if not isinstance(real, Tensor) else tuple(real.shape)}"
            )
        if not bool(real.any(dim=1).all()):
            raise InvalidInputError("every row needs at least one real (non-padding) token")
        self.base._check_ids(ids, "ids")
        hidden = self.base.hidden_states(ids)  # (B, T, C)
        positions = torch.arange(ids.shape[1], device=ids.device)
        last = (real * positions).argmax(dim=1)  # (B,) index of the last real token
        picked = hidden[torch.arange(ids.shape[0], device=ids.device), last]  # (B, C)
        return self.head(picked).squeeze(-1)  # type: ignore[no-any-return]

    def save(self, directory: PathLike) -> None:
        """Write the head (``model.safetensors``, ``config.json``) and the base in ``base/``, atomically."""
        save_component(
            directory,
            FORMAT,
            config=self.config,
            tensors=self.head.state_dict(),
            write_files=lambda staging: self.base.save(staging / "base"),
        )

    @classmethod
    def load(cls, directory: PathLike, *, device: str | torch.device = "cpu") -> Self:
        """Load a reward model written by :meth:`save`.

        Raises:
            NotFoundError: nothing is saved in ``directory``.
            IntegrityError: the files are corrupt, incomplete or of another kind.
        """
        saved = open_saved(directory, FORMAT)
        with reading(FORMAT, saved.root):  # a missing base inside the save means damage
            base = GPT.load(Path(saved.root) / "base")
        model = cls(base, saved.config(RewardModelConfig))
        load_state(model.head, saved.tensors(), f"the saved {FORMAT} in {str(saved.root)!r}")
        return model.to(device)


def _rewards(model: RewardModel, batch: PreferenceBatch) -> tuple[Tensor, Tensor]:
    """Rewards of the chosen and rejected rows; the last response token is the last real one."""
    rows = batch.num_pairs
    width = max(batch.chosen.shape[1], batch.rejected.shape[1])
    ids = torch.cat([F.pad(batch.chosen, (0, width - batch.chosen.shape[1])),
                     F.pad(batch.rejected, (0, width - batch.rejected.shape[1]))])  # fmt: skip
    masks = torch.cat([F.pad(batch.chosen_mask, (0, width - batch.chosen.shape[1])),
                       F.pad(batch.rejected_mask, (0, width - batch.rejected.shape[1]))])  # fmt: skip
    rewards = model(ids.long(), masks).float()
    return rewards[:rows], rewards[rows:]


class RewardModeling:
    """The Bradley-Terry objective: ``mean(-log sigmoid(r(chosen) - r(rejected)))``.

    One player, ``"reward_model"``. Each step also reports
    ``reward_model/accuracy`` (the share of pairs ranked right, ties one half)
    and ``reward_model/margin`` (the mean ``r_chosen - r_rejected``).

    Args:
        model: the :class:`RewardModel` to train.

    Raises:
        ConfigError: ``model`` is not a :class:`RewardModel`.
    """

    def __init__(self, model: RewardModel) -> None:
        if not isinstance(model, RewardModel):
            raise ConfigError(f"RewardModeling needs a RewardModel, got {describe(model)}")
        self.model = model

    def players(self) -> Mapping[str, nn.Module]:
        """The one player: ``{"reward_model": model}``."""
        return {"reward_model": self.model}

    def loss(self, player: str, batch: PreferenceBatch | Mapping[str, Tensor]) -> Tensor:
        """The mean Bradley-Terry loss over the batch's pairs.

        Raises:
            InvalidInputError: another player, or a batch that is not a
                :class:`~genarch.feedback.PreferenceBatch`.
        """
        return self.measured_loss(player, batch).loss

    def measured_loss(
        self, player: str, batch: PreferenceBatch | Mapping[str, Tensor]
    ) -> MeasuredLoss:
        """The loss, with the pairs' accuracy and mean margin."""
        if player != "reward_model":
            raise InvalidInputError(
                f"RewardModeling has one player, 'reward_model'; got {player!r}"
            )
        chosen, rejected = _rewards(self.model, PreferenceBatch.of(batch))
        margin = chosen - rejected
        loss = -F.logsigmoid(margin).mean()
        with torch.no_grad():
            metrics = {"accuracy": _accuracy(margin), "margin": float(margin.mean())}
        return MeasuredLoss(loss, metrics)

    def count_items(self, batch: object) -> int:
        """Pairs in a batch."""
        try:
            return PreferenceBatch.of(batch).num_pairs
        except InvalidInputError:
            return 0


def _accuracy(margin: Tensor) -> float:
    return float(((margin > 0).float() + 0.5 * (margin == 0).float()).mean())


def pairwise_accuracy(model: RewardModel, batch: PreferenceBatch | Mapping[str, Tensor]) -> float:
    """The share of pairs whose chosen response gets the higher reward (ties count one half).

    Runs in eval mode without gradients and restores the model's mode.

    Raises:
        InvalidInputError: not a :class:`RewardModel`, or not a preference batch.
    """
    if not isinstance(model, RewardModel):
        raise InvalidInputError(f"pairwise_accuracy needs a RewardModel, got {describe(model)}")
    checked = PreferenceBatch.of(batch)
    mode = model.training
    try:
        model.eval()
        with torch.no_grad():
            chosen, rejected = _rewards(model, checked)
    finally:
        model.train(mode)
    return _accuracy(chosen - rejected)


# ------------------------------------------------------------------------- best of n


@dataclass(frozen=True)
class BestOfN:
    """The ``n`` candidates for one request, their rewards, and the best.

    Attributes:
        candidates: the generator's results, in seed order.
        rewards: ``reward(candidate.text)`` for each candidate.
        best_index: the candidate with the highest reward (the first on a tie).
    """

    candidates: tuple[TextResult, ...]
    rewards: tuple[float, ...]
    best_index: int

    @property
    def best(self) -> TextResult:
        """The candidate with the highest reward."""
        return self.candidates[self.best_index]

    def preference(self, prompt: str) -> Preference | None:
        """Best over worst as a :class:`~genarch.schemas.Preference` for preference
        training (rejection sampling), or ``None`` when every candidate has the same text."""
        worst = min(range(len(self.rewards)), key=lambda i: (self.rewards[i], -i))
        chosen, rejected = self.best.text, self.candidates[worst].text
        if chosen == rejected:
            return None
        return Preference(prompt=prompt, chosen=chosen, rejected=rejected)


def candidate_seed(seed: int, index: int) -> int:
    """The seed of candidate ``index`` for a request with ``seed``: a hash, so the
    candidates of neighbouring seeds do not overlap (``seed + index`` would)."""
    digest = hashlib.sha256(f"genarch.best_of_n:{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1  # a non-negative int64


def _finite_reward(value: object, what: str) -> float:
    """``value`` as a float; an :class:`InvalidInputError` naming ``what`` unless a finite number."""
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise InvalidInputError(f"reward of {what} must be a finite number, got {describe(value)}")
    return float(value)


def best_of_n(
    generator: Generator[TextRequest, TextResult],
    request: TextRequest,
    reward: Callable[[str], float],
    n: int,
) -> BestOfN:
    """Sample ``n`` answers and keep the one that ``reward`` scores highest.

    Candidate ``i`` is ``request`` with seed :func:`candidate_seed` ``(request.seed, i)``,
    so a seeded request gives the same candidates and the same choice every
    time; a request without a seed samples afresh. The candidates are made
    with one ``generate_batch`` call.

    Args:
        generator: any text :class:`~genarch.protocols.Generator`.
        request: the request to answer (sampling, not greedy, for distinct candidates).
        reward: any callable from text to a finite float — a trained
            :class:`RewardModel` wrapped with its tokenizer, or a programmatic check.
        n: candidates to draw, at least 1.

    Raises:
        InvalidInputError: ``n`` below 1, a request that is not a ``TextRequest``,
            or a reward that is not a finite number.

    Example:
        >>> class Echo:  # a stand-in generator: the seed picks the text
        ...     def generate(self, r): return TextResult(text=str(r.seed % 7))
        ...     def generate_batch(self, rs): return [self.generate(r) for r in rs]
        >>> pick = best_of_n(Echo(), TextRequest(prompt="n?", seed=1), lambda t: float(t), n=4)
        >>> pick.best.text == max(c.text for c in pick.candidates)
        True
    """
    if not (isinstance(n, int) and not isinstance(n, bool) and n >= 1):
        raise InvalidInputError(f"n must be an int >= 1, got {n!r}")
    if not isinstance(request, TextRequest):
        raise InvalidInputError(f"request must be a TextRequest, got {describe(request)}")
    requests = [
        request.model_copy(
            update={"seed": None if request.seed is None else candidate_seed(request.seed, i)}
        )
        for i in range(n)
    ]
    candidates = tuple(generator.generate_batch(requests))
    if len(candidates) != n:
        raise InvalidInputError(
            f"the generator returned {len(candidates)} results for {n} requests"
        )
    rewards = []
    for index, candidate in enumerate(candidates):
        rewards.append(_finite_reward(reward(candidate.text), f"candidate {index}"))
    best = max(range(n), key=lambda i: (rewards[i], -i))
    return BestOfN(candidates=candidates, rewards=tuple(rewards), best_index=best)
