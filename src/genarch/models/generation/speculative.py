"""Speculative decoding: a small draft model proposes tokens, the target model checks them in one pass.

Decoding a small model on a CPU is bound by reading its weights once per
token, so running the target over ``k + 1`` tokens costs about as much as
over one. :class:`SpeculativeGenerator` lets a cheaper draft model propose
``k`` tokens one by one, then runs the target once over all of them and keeps
the longest prefix the target agrees with, plus one token of the target's own
(Leviathan et al., 2023, "Fast Inference from Transformers via Speculative
Decoding"; Chen et al., 2023, "Accelerating Large Language Model Decoding with
Speculative Sampling"):

* **Greedy** requests: a proposal is kept while it is the target's argmax; at
  the first disagreement the target's argmax is emitted instead; when all
  ``k`` are kept the target's next argmax comes free. The tokens are the
  target's own greedy tokens (up to float rounding of the one-pass
  verification against step-by-step decoding).
* **Sampled** requests: proposal ``d`` drawn from the draft's distribution
  ``q`` is kept with probability ``min(1, p(d) / q(d))``, where ``p`` is the
  target's; on rejection a token is drawn from ``max(0, p - q)`` normalised;
  after ``k`` acceptances a bonus token is drawn from the target's next ``p``.
  Each emitted token is then distributed exactly as the target's (the
  theorem of both papers); ``p`` and ``q`` are the distributions after the
  request's temperature, top-k, top-p and min-p.

Requests with repetition, presence or frequency penalties are decoded by the
target alone (the penalties make the distributions depend on the tokens being
verified). The acceptance rate is reported per call
(:meth:`SpeculativeGenerator.generate_with_stats`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from genarch.errors import InvalidInputError
from genarch.models.decode_step import StepFunction, decoding, step_function
from genarch.models.generation.generator import TextGenerator
from genarch.models.generation.prefix_cache import prefill
from genarch.models.generation.rows import DecodingRow, record_tokens
from genarch.models.generation.sampling import TokenSampler, argmax
from genarch.models.transformer import GPT, KVCache
from genarch.protocols import Tokenizer
from genarch.schemas import TextRequest, TextResult
from genarch.validation import describe, ensure_iterable

__all__ = ["SpeculativeGenerator", "SpeculativeResult", "SpeculativeStats"]

MAX_DRAFT_TOKENS = 64


@dataclass(frozen=True)
class SpeculativeStats:
    """How speculation went in one call.

    Attributes:
        rounds: draft-then-verify rounds (each one target pass).
        drafted: tokens the draft model proposed.
        accepted: proposals the target kept.
        emitted: tokens generated in all (accepted, corrected, bonus and the first).
        target_passes: forward passes of the target model, the prompt's included.
    """

    rounds: int = 0
    drafted: int = 0
    accepted: int = 0
    emitted: int = 0
    target_passes: int = 0

    @property
    def acceptance_rate(self) -> float:
        """``accepted / drafted`` (0 when nothing was drafted)."""
        return self.accepted / self.drafted if self.drafted else 0.0

    @property
    def tokens_per_target_pass(self) -> float:
        """Emitted tokens per forward pass of the target (1 for plain decoding)."""
        return self.emitted / self.target_passes if self.target_passes else 0.0


@dataclass(frozen=True)
class SpeculativeResult:
    """A :class:`~genarch.schemas.TextResult` and the :class:`SpeculativeStats` of its call."""

    result: TextResult
    stats: SpeculativeStats


class SpeculativeGenerator:
    """Decode with ``target``'s distribution, ``num_draft_tokens`` proposals at a time from ``draft``.

    Implements :class:`~genarch.protocols.Generator` ``[TextRequest, TextResult]``
    and :class:`~genarch.protocols.StreamingGenerator`. Requests are decoded
    one at a time (speculation pays at batch 1); ``target.prefix_cache`` and
    ``draft.prefix_cache`` serve the prompts when set.

    Args:
        target: the model whose outputs are wanted.
        draft: a smaller model with the same tokenizer (e.g. trained on the
            same data, or distilled from the target).
        num_draft_tokens: proposals per round (``k``), 1 to 64.

    Raises:
        InvalidInputError: not two TextGenerators, tokenizers that differ
            (vocabulary size, an id's text or an encoding), models on
            different devices, or ``num_draft_tokens`` out of range.

    Examples:
        >>> import torch
        >>> from genarch.models import GPT, TextGenerator
        >>> class Bytes:
        ...     vocab_size = 256
        ...     def encode(self, text): return list(text.encode())
        ...     def decode(self, ids): return bytes(ids).decode(errors="replace")
        >>> _ = torch.manual_seed(0)
        >>> target = TextGenerator(GPT(vocab_size=256, n_layer=2, n_head=2, n_embd=32), Bytes())
        >>> draft = TextGenerator(GPT(vocab_size=256, n_layer=1, n_head=2, n_embd=16), Bytes())
        >>> speculative = SpeculativeGenerator(target, draft, num_draft_tokens=4)
        >>> request = TextRequest(prompt="Hello", max_new_tokens=8, temperature=0)
        >>> out = speculative.generate_with_stats(request)
        >>> out.result == target.generate(request)  # greedy: the target's own tokens
        True
        >>> 0.0 <= out.stats.acceptance_rate <= 1.0
        True
    """

    def __init__(
        self, target: TextGenerator, draft: TextGenerator, *, num_draft_tokens: int = 4
    ) -> None:
        for name, value in (("target", target), ("draft", draft)):
            if not isinstance(value, TextGenerator):
                raise InvalidInputError(f"{name} must be a TextGenerator, got {describe(value)}")
            if value.interpolation is not None:
                raise InvalidInputError(
                    f"the {name} has an interpolation; speculative decoding verifies the model "
                    "alone, so give it a TextGenerator without one"
                )
        if (
            isinstance(num_draft_tokens, bool)
            or not isinstance(num_draft_tokens, int)
            or not 1 <= num_draft_tokens <= MAX_DRAFT_TOKENS
        ):
            raise InvalidInputError(
                f"num_draft_tokens must be an int from 1 to {MAX_DRAFT_TOKENS}, "
                f"got {num_draft_tokens!r}"
            )
        _check_same_tokenizer(target.tokenizer, draft.tokenizer)
        devices = (target.model.wte.weight.device, draft.model.wte.weight.device)
        if devices[0] != devices[1]:
            raise InvalidInputError(
                f"the target model is on {devices[0]} but the draft model on {devices[1]}; "
                "move them to one device"
            )
        self.target = target
        self.draft = draft
        self.num_draft_tokens = num_draft_tokens

    def __repr__(self) -> str:
        return (
            f"SpeculativeGenerator(target={self.target!r}, draft={self.draft!r}, "
            f"num_draft_tokens={self.num_draft_tokens})"
        )

    # -------------------------------------------------------------- generation

    def generate(
        self, request: TextRequest, *, generator: torch.Generator | None = None
    ) -> TextResult:
        """Continue ``request.prompt`` (see :meth:`TextGenerator.generate`)."""
        return self.generate_with_stats(request, generator=generator).result

    def generate_with_stats(
        self, request: TextRequest, *, generator: torch.Generator | None = None
    ) -> SpeculativeResult:
        """Continue ``request.prompt`` and report how speculation went.

        Raises:
            InvalidInputError: as :meth:`TextGenerator.generate`.
        """
        row, rng = self._start(request, generator)
        counts = _Counts()
        with self._decoding():
            for _ in self._decode(row, rng, counts):
                pass
        return SpeculativeResult(row.result(), counts.frozen())

    def generate_batch(self, requests: Sequence[TextRequest]) -> list[TextResult]:
        """``[generate(r) for r in requests]``, every request validated before any is decoded."""
        checked = list(ensure_iterable(requests, "generate_batch"))
        for request in checked:
            self.target._prepare(request)
        return [self.generate(request) for request in checked]

    def stream(
        self, request: TextRequest, *, generator: torch.Generator | None = None
    ) -> Iterator[str]:
        """Yield the generated text in pieces; joined, they equal ``generate(request).text``."""
        row, rng = self._start(request, generator)

        def pieces() -> Iterator[str]:
            steps = self._decode(row, rng, _Counts())
            while True:
                with self._decoding():
                    if next(steps, None) is None:
                        break
                if piece := row.detokenizer.ready():
                    yield piece
            if rest := row.detokenizer.flush():
                yield rest

        return pieces()

    def _start(
        self, request: TextRequest, generator: torch.Generator | None
    ) -> tuple[DecodingRow, torch.Generator]:
        prepared = self.target._prepare(request)
        return self.target._rows([prepared])[0], self.target._generators([request], generator)[0]

    @contextlib.contextmanager
    def _decoding(self) -> Iterator[None]:
        with decoding(self.target.model), decoding(self.draft.model):
            yield

    def _decode(self, row: DecodingRow, rng: torch.Generator, counts: _Counts) -> Iterator[bool]:
        """Decode one row, yielding (True) after the first token and after every round."""
        request, prompt = row.request, row.prompt_ids
        target, draft = self.target.model, self.draft.model
        context = target.config.context_length
        budget = min(request.max_new_tokens, context - len(prompt) + 1)  # tokens to emit
        if budget <= 0 or row.finish_reason is not None:
            return
        device = target.wte.weight.device
        usable = self.target.tokenizer.vocab_size
        sampler = TokenSampler([request], [rng], device)
        if sampler.penalised:  # the target alone: penalties depend on the tokens verified
            for _ in self.target._decode([row], [rng]):
                counts.emitted += 1
                counts.target_passes += 1
                yield True
            return
        top = request.logprobs

        def emit(token: int, logits: Tensor) -> bool:  # logits (1, usable); True when finished
            record_tokens(
                [row], torch.tensor([token]), logits if top is not None else None, top or 0
            )
            counts.emitted += 1
            return row.finish_reason is not None

        state = prefill(target, [prompt], budget, self.target.prefix_cache)
        counts.target_passes += 1
        logits = state.logits[:, :usable]
        if emit(int(sampler(logits, None, None)[0]), logits):
            return
        yield True
        target_cache, target_step = state.cache, step_function(target)
        draft_room = draft.config.context_length
        draft_cache: KVCache | None = None
        if len(prompt) <= draft_room:  # else the draft cannot read the prompt: target alone
            draft_cache = prefill(draft, [prompt], budget, self.draft.prefix_cache).cache
        draft_step, pending = step_function(draft), [row.token_ids[-1]]
        while True:
            length = len(prompt) + len(row.token_ids)  # committed tokens; the last is not fed yet
            k = min(self.num_draft_tokens, budget - len(row.token_ids) - 1, context - length)
            if draft_cache is None:
                k = 0
            k = max(0, min(k, draft_room - length + 1))
            proposals, drafts = self._propose(
                draft, draft_step, draft_cache, pending, k, sampler, rng
            )
            if k:
                pending = []
            fed = torch.tensor([[row.token_ids[-1], *proposals]], device=device)
            verified = target_step(fed, target_cache, None, None)[0]  # one pass, k + 1 tokens
            verified = verified.float()[:, :usable]  # (k + 1, usable)
            counts.rounds += 1
            counts.target_passes += 1
            counts.drafted += k
            accepted, finished = 0, False
            for j, (token, q) in enumerate(zip(proposals, drafts, strict=True)):
                p = verified[j : j + 1]
                keep, replacement = _verify(sampler, p, q, token, rng)
                if keep:
                    accepted += 1
                    finished = emit(token, p)
                else:
                    finished = emit(replacement, p)
                if finished or not keep:
                    break
            else:
                bonus = verified[k:]
                finished = emit(int(sampler(bonus, None, None)[0]), bonus)
            counts.accepted += accepted
            yield True
            if finished:
                return
            # Roll back what the models cached past the tokens now committed.
            target_cache.length = length + accepted
            if k:
                assert draft_cache is not None
                draft_cache.length = length + min(accepted, k - 1)
                pending = row.token_ids[draft_cache.length - len(prompt) :]
            else:
                pending.append(row.token_ids[-1])

    def _propose(
        self,
        draft: GPT,
        step: StepFunction,
        cache: KVCache | None,
        pending: list[int],
        k: int,
        sampler: TokenSampler,
        rng: torch.Generator,
    ) -> tuple[list[int], list[Tensor]]:
        """Feed ``pending`` to the draft, then let it propose ``k`` tokens: the tokens and the
        distributions ``q (1, usable)`` they were drawn from (greedy: the draft's logits)."""
        if k == 0 or cache is None:
            return [], []
        device, usable = draft.wte.weight.device, self.target.tokenizer.vocab_size
        logits = step(torch.tensor([pending], device=device), cache, None, None)[:, -1]
        proposals, drafts = [], []
        for j in range(k):
            logits = logits.float()[:, :usable]
            if sampler.greedy:
                token, q = int(argmax(logits)[0]), logits
            else:
                q = sampler.distribution(logits)
                q = q / q.sum(dim=-1, keepdim=True)
                token = int(torch.multinomial(q[0], 1, generator=rng)[0])
            proposals.append(token)
            drafts.append(q)
            if j < k - 1:
                logits = step(torch.tensor([token], device=device), cache, None, None)
        return proposals, drafts


def _verify(
    sampler: TokenSampler, p_logits: Tensor, q: Tensor, token: int, rng: torch.Generator
) -> tuple[bool, int]:
    """Keep the draft's ``token`` or not, and the token to emit instead when not.

    Greedy: kept when it is the target's argmax. Sampled: kept with probability
    ``min(1, p(token) / q(token))``, else replaced by a draw from ``max(0, p - q)``.
    """
    best = int(argmax(p_logits)[0])
    if sampler.greedy:
        return token == best, best
    p = sampler.distribution(p_logits)
    p = p / p.sum(dim=-1, keepdim=True)
    u = float(torch.rand(1, generator=rng, device=p.device)[0])
    if u * float(q[0, token]) < float(p[0, token]):
        return True, token
    residual = (p[0] - q[0]).clamp(min=0.0)
    if float(residual.sum()) <= 0.0:  # p == q up to rounding: p itself
        residual = p[0]
    return False, int(torch.multinomial(residual, 1, generator=rng)[0])


@dataclass
class _Counts:
    rounds: int = 0
    drafted: int = 0
    accepted: int = 0
    emitted: int = 0
    target_passes: int = 0

    def frozen(self) -> SpeculativeStats:
        return SpeculativeStats(
            self.rounds, self.drafted, self.accepted, self.emitted, self.target_passes
        )


def _check_same_tokenizer(target: Tokenizer, draft: Tokenizer) -> None:
    """Raise InvalidInputError unless both tokenizers map every id to the same text and
    encode a probe text alike (the same object passes at once)."""
    if target is draft:
        return
    if target.vocab_size != draft.vocab_size:
        raise InvalidInputError(
            f"the target's and the draft's tokenizers differ: vocab_size {target.vocab_size} "
            f"against {draft.vocab_size}; the draft must use the target's tokenizer"
        )
    for token in range(target.vocab_size):
        if target.decode([token]) != draft.decode([token]):
            raise InvalidInputError(
                f"the target's and the draft's tokenizers differ: id {token} is "
                f"{target.decode([token])!r} against {draft.decode([token])!r}"
            )
    probe = target.decode(list(range(min(target.vocab_size, 256))))  # text both can encode
    if list(target.encode(probe)) != list(draft.encode(probe)):
        raise InvalidInputError(
            "the target's and the draft's tokenizers differ: they encode the same text to "
            "different ids; the draft must use the target's tokenizer"
        )
