"""Perplexity of outputs under any scoring model.

``perplexity = exp(-log p(text) / n)``, where ``log p(text)`` is what the
model's :meth:`~genarch.protocols.ScoringGenerator.log_prob` returns (the sum
over the scored tokens, in nats) and ``n`` is how many tokens that sum covers,
which only the caller knows for their model, so it is passed as
``scored_tokens``. For genarch's :class:`~genarch.models.TextGenerator` that is
``len(generator.tokenizer.encode(text)) - 1`` (the first token is context).
Lower is better; a model that knows nothing scores about its vocabulary size.

The output is scored on its own, not conditioned on the prompt. To measure a
model on held-out *token streams* use :func:`genarch.models.evaluate_loss`
instead; this evaluator scores generated *texts*, one by one, with any
:class:`~genarch.protocols.ScoringGenerator`.

Limits: perplexities of models with different tokenisers are not comparable;
a model bound (such as a VAE's ELBO) gives an upper bound of the perplexity.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from genarch.errors import InvalidInputError
from genarch.evaluation._text import output_text
from genarch.protocols import ScoringGenerator
from genarch.schemas import Evaluation
from genarch.validation import describe

__all__ = ["Perplexity"]


class Perplexity:
    """Per-output perplexity under ``model``, and corpus perplexity over many outputs.

    It has no settings (so no config): the model and the token counter are all it needs.

    Args:
        model: any :class:`~genarch.protocols.ScoringGenerator` of texts.
        scored_tokens: how many tokens ``model.log_prob([text])`` sums over.

    ``evaluate(request, output)`` reads only the output (a ``str`` or
    :class:`~genarch.schemas.TextResult`). Scores: ``perplexity`` (lower is
    better), ``log_prob`` (nats) and ``tokens``.

    Examples:
        >>> import math, torch
        >>> class Uniform:  # every character after the first has probability 1/4
        ...     def log_prob(self, samples):
        ...         return torch.tensor([(len(s) - 1) * math.log(0.25) for s in samples], dtype=torch.float64)
        >>> perplexity = Perplexity(Uniform(), scored_tokens=lambda text: len(text) - 1)
        >>> round(perplexity.evaluate(None, "abcd").scores["perplexity"], 9)
        4.0
    """

    def __init__(
        self,
        model: ScoringGenerator[str],
        scored_tokens: Callable[[str], int],
    ) -> None:
        if not callable(getattr(model, "log_prob", None)):
            raise InvalidInputError(
                f"Perplexity expected model with a log_prob method, got {describe(model)}"
            )
        if not callable(scored_tokens):
            raise InvalidInputError(
                f"Perplexity expected scored_tokens as a callable, got {describe(scored_tokens)}"
            )
        self.model = model
        self.scored_tokens = scored_tokens

    def _score(self, texts: Sequence[str], where: str) -> list[tuple[float, int]]:
        counts = []
        for index, text in enumerate(texts):
            count = self.scored_tokens(text)
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise InvalidInputError(
                    f"{where}: output {index} has {count!r} scored tokens; perplexity needs "
                    "at least one (a text of one token or less cannot be scored)"
                )
            counts.append(count)
        scores = self.model.log_prob(list(texts))
        if not isinstance(scores, torch.Tensor) or tuple(scores.shape) != (len(texts),):
            raise InvalidInputError(
                f"{where}: model.log_prob returned {describe(scores)}, "
                f"expected a tensor of shape ({len(texts)},)"
            )
        values = [float(v) for v in scores.detach().double().cpu()]
        for index, value in enumerate(values):
            if not math.isfinite(value):
                raise InvalidInputError(f"{where}: model.log_prob gave {value} for output {index}")
        return list(zip(values, counts, strict=True))

    def evaluate(self, request: Any, result: Any) -> Evaluation:
        """The perplexity of ``result``'s text under the model (``request`` is not read).

        Raises:
            InvalidInputError: ``result`` is not a str or TextResult, it has no
                scored token, or the model refuses it.
        """
        text = output_text(result, "Perplexity.evaluate")
        ((log_prob, count),) = self._score([text], "Perplexity.evaluate")
        return Evaluation(
            scores={
                "perplexity": math.exp(-log_prob / count),
                "log_prob": log_prob,
                "tokens": float(count),
            }
        )

    def corpus_perplexity(self, outputs: Sequence[Any]) -> float:
        """``exp(-sum log p / sum n)`` over all outputs: the per-token perplexity of the set.

        This, not the mean of per-output perplexities, is the perplexity of a
        corpus (the mean over-weights short texts).

        Raises:
            InvalidInputError: ``outputs`` is not a non-empty sequence of str or
                TextResult, or one has no scored token.
        """
        if isinstance(outputs, str | bytes) or not isinstance(outputs, Sequence) or not outputs:
            raise InvalidInputError(
                "Perplexity.corpus_perplexity expected outputs as a non-empty sequence, "
                f"got {describe(outputs)}"
            )
        texts = [
            output_text(o, "Perplexity.corpus_perplexity", f"outputs[{i}]")
            for i, o in enumerate(outputs)
        ]
        scored = self._score(texts, "Perplexity.corpus_perplexity")
        return math.exp(-sum(lp for lp, _ in scored) / sum(n for _, n in scored))
