"""A learned "not in the sources" decision for the extractive assistant.

An :class:`~genarch.orchestration.extractive.ExtractiveGenerator` with an
encoder declines when its best candidate sentence scores under one threshold
(``min_confidence``). That one number has to answer two questions at once:
does some sentence match the question, and is the question about something
the corpus knows at all? "How do I read a CSV file?", asked of Python's
language reference, matches a sentence about files fairly well; what gives it
away is that "csv" is in no topic. And a long question that describes a
situation scores lower than a short one, because less of it is in any one
sentence.

:class:`AnswerGate` decides with a logistic regression over what the
assistant already knows (:data:`GATE_FEATURES`):

* ``confidence``: the best candidate sentence's score
  (:meth:`~genarch.orchestration.extractive.ExtractiveGenerator.confidence`);
* ``terms``: how many content terms the question has (stemmed, as the
  sentences are scored);
* ``unknown_terms``: how many of them are in no document of the corpus;
* ``mean_rarity`` and ``max_rarity``: the mean and the largest *rarity* of
  its terms, ``log((N + 1) / (df + 1)) / log(N + 1)`` for a term in ``df``
  of the corpus's ``N`` documents (0: in every document, 1: in none), so the
  same weights read a corpus of any size.

The term counts come from the corpus (:class:`CorpusTerms`), so a gate is
bound to the documents it answers from (:meth:`AnswerGate.with_corpus`); the
weights are not. :func:`fit_answer_gate` learns them from
:class:`GateExample`\\ s (a question, its confidence, whether the corpus
answers it: see
:func:`~genarch.orchestration.rag_evaluation.gate_examples`) and chooses the
decision threshold *out of fold*: the highest probability threshold that
declines ``decline_goal`` of the unanswerable examples when each example is
scored by a model that did not see it. A threshold chosen on the examples
the model was fitted on would decline fewer of the questions it has not seen.

The file format is one JSON file (:meth:`AnswerGate.save`, written
atomically) holding the weights, the threshold and the fingerprint of the
encoder whose confidences it was fitted on; :meth:`AnswerGate.load` refuses
another encoder.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Annotated, Any

import torch
from pydantic import Field

from genarch._io import atomic_write_text
from genarch.errors import IntegrityError, InvalidInputError, NotFoundError
from genarch.features.embedding_cache import encoder_fingerprint
from genarch.orchestration.extractive import _terms
from genarch.schemas import Document, Record
from genarch.validation import (
    checked_items,
    checked_texts,
    describe,
    require_count,
    require_text,
)

__all__ = [
    "GATE_FEATURES",
    "AnswerGate",
    "CorpusTerms",
    "GateExample",
    "fit_answer_gate",
]

FORMAT = "genarch.answer_gate/1"

#: What the gate reads, in the order of its weights (see the module docs).
GATE_FEATURES = ("confidence", "terms", "unknown_terms", "mean_rarity", "max_rarity")

PathLike = str | os.PathLike[str]
#: a fitted logistic model: weights, bias, and the features' mean and scale
_Model = tuple[list[float], float, list[float], list[float]]


class CorpusTerms:
    """In how many documents of a corpus each term occurs: what the gate's rarity
    features are counted from.

    Terms are what the extractive assistant compares questions and sentences
    by: content words folded by
    :func:`~genarch.orchestration.citations.light_stem`, and operator symbols.

    Args:
        documents: the corpus (Documents or their texts).

    Raises:
        InvalidInputError: ``documents`` is not a list of Documents or str, or is empty.

    Examples:
        >>> terms = CorpusTerms(["The while loop repeats.", "A for loop iterates."])
        >>> terms.documents, terms.frequency("loops"), terms.frequency("csv")
        (2, 2, 0)
    """

    def __init__(self, documents: Sequence[Document | str]) -> None:
        texts = [
            item.text if isinstance(item, Document) else item
            for item in checked_items(documents, (Document, str), "CorpusTerms")
        ]
        if not texts:
            raise InvalidInputError("CorpusTerms expected at least one document, got none")
        self.documents = len(texts)
        self._frequency: Counter[str] = Counter()
        for text in texts:
            self._frequency.update(_terms(text))

    def frequency(self, word: str) -> int:
        """In how many documents ``word`` occurs, folded as the assistant folds it
        (0 for a stop word, which is no term).

        Raises:
            InvalidInputError: ``word`` is not a str.
        """
        folded = _terms(require_text(word, "CorpusTerms.frequency", name="word"))
        return min((self._frequency[t] for t in folded), default=0)

    def rarity(self, word: str) -> float:
        """``log((N + 1) / (df + 1)) / log(N + 1)`` of ``word`` in the corpus's ``N``
        documents (see :meth:`frequency`): 0.0 in every document, 1.0 in none.

        Raises:
            InvalidInputError: ``word`` is not a str.
        """
        return self._rarity(self.frequency(word))

    def _rarity(self, frequency: int) -> float:
        scale = math.log(self.documents + 1)
        return math.log((self.documents + 1) / (frequency + 1)) / scale

    def question_features(self, question: str) -> tuple[float, float, float, float]:
        """``(terms, unknown_terms, mean_rarity, max_rarity)`` of ``question``
        (zeros for a question with no content term).

        Raises:
            InvalidInputError: ``question`` is not a str.
        """
        terms = _terms(require_text(question, "CorpusTerms", name="question"))
        if not terms:
            return (0.0, 0.0, 0.0, 0.0)
        rarities = [self._rarity(self._frequency[t]) for t in terms]
        unknown = sum(self._frequency[t] == 0 for t in terms)
        return (float(len(terms)), float(unknown), sum(rarities) / len(terms), max(rarities))


class GateExample(Record):
    """One labelled question for :func:`fit_answer_gate`.

    Attributes:
        question: the question as asked.
        confidence: the assistant's best sentence score for it (``None``:
            nothing could be scored; such a question is declined whatever
            the gate says, so it is not learned from).
        answerable: whether the corpus answers it.
    """

    question: Annotated[str, Field(min_length=1)]
    confidence: Annotated[float, Field(allow_inf_nan=False)] | None
    answerable: bool


class AnswerGate:
    """Whether the extractive assistant answers or says "not in the sources".

    ``probability`` is the logistic model's probability that the corpus does
    not answer the question; the gate declines at or above ``threshold``.

    Args:
        weights: one per :data:`GATE_FEATURES`, for the standardised features.
        bias: the model's intercept.
        mean, scale: what each feature is standardised by (``(x - mean) / scale``).
        threshold: the probability at or above which it declines (0-1).
        corpus: the term counts of the documents it answers from (bind them
            with :meth:`with_corpus`; deciding needs them).
        encoder_fingerprint: the fingerprint of the encoder whose confidences
            it was fitted on (``None``: unknown), checked by :meth:`load`.

    Raises:
        InvalidInputError: a weight, mean or scale per feature is missing, a
            scale is not positive, or the threshold is outside 0-1.

    Examples:
        >>> gate = AnswerGate(
        ...     weights=[-2.0, 0.0, 1.0, 0.0, 0.0], bias=0.0, mean=[0.5, 0, 0, 0, 0],
        ...     scale=[0.1, 1, 1, 1, 1], threshold=0.5,
        ... ).with_corpus(["The while loop repeats a block."])
        >>> gate.declines("How does a while loop repeat?", confidence=0.7)
        False
        >>> gate.declines("How do I read a csv file?", confidence=0.45)
        True
    """

    def __init__(
        self,
        *,
        weights: Sequence[float],
        bias: float,
        mean: Sequence[float],
        scale: Sequence[float],
        threshold: float,
        corpus: CorpusTerms | None = None,
        encoder_fingerprint: str | None = None,
    ) -> None:
        n = len(GATE_FEATURES)
        values = {}
        for name, given in (("weights", weights), ("mean", mean), ("scale", scale)):
            numbers = list(given) if isinstance(given, list | tuple) else None
            if (
                numbers is None
                or len(numbers) != n
                or not all(_is_number(x) and math.isfinite(x) for x in numbers)
            ):
                raise InvalidInputError(
                    f"AnswerGate expected {name} to be {n} finite numbers (one per feature "
                    f"{', '.join(GATE_FEATURES)}), got {describe(given)}"
                )
            values[name] = [float(x) for x in numbers]
        if not all(s > 0 for s in values["scale"]):
            raise InvalidInputError(f"AnswerGate expected every scale > 0, got {values['scale']}")
        if not (_is_number(bias) and math.isfinite(bias)):
            raise InvalidInputError(
                f"AnswerGate expected bias to be a number, got {describe(bias)}"
            )
        if not (_is_number(threshold) and 0.0 <= threshold <= 1.0):
            raise InvalidInputError(
                f"AnswerGate expected threshold to be a probability (0-1), got {describe(threshold)}"
            )
        if encoder_fingerprint is not None and not isinstance(encoder_fingerprint, str):
            raise InvalidInputError(
                "AnswerGate expected encoder_fingerprint to be a str or None, got "
                f"{describe(encoder_fingerprint)}"
            )
        if corpus is not None and not isinstance(corpus, CorpusTerms):
            raise InvalidInputError(
                f"AnswerGate expected corpus to be CorpusTerms or None, got {describe(corpus)}"
            )
        self.weights, self.mean, self.scale = values["weights"], values["mean"], values["scale"]
        self.bias = float(bias)
        self.threshold = float(threshold)
        self.corpus = corpus
        self.encoder_fingerprint = encoder_fingerprint

    def with_corpus(self, documents: Sequence[Document | str] | CorpusTerms) -> AnswerGate:
        """The same gate, counting terms in ``documents`` (what it answers from).

        Raises:
            InvalidInputError: see :class:`CorpusTerms`.
        """
        corpus = documents if isinstance(documents, CorpusTerms) else CorpusTerms(documents)
        return AnswerGate(**{**self._fields(), "corpus": corpus})

    def _model(self) -> _Model:
        return (self.weights, self.bias, self.mean, self.scale)

    def _fields(self) -> dict[str, Any]:
        return {
            "weights": self.weights,
            "bias": self.bias,
            "mean": self.mean,
            "scale": self.scale,
            "threshold": self.threshold,
            "corpus": self.corpus,
            "encoder_fingerprint": self.encoder_fingerprint,
        }

    def features(self, question: str, confidence: float) -> tuple[float, ...]:
        """:data:`GATE_FEATURES` of ``question`` with its best sentence score ``confidence``.

        Raises:
            InvalidInputError: no corpus bound, or bad arguments.
        """
        question = require_text(question, "AnswerGate", name="question")
        if not (_is_number(confidence) and math.isfinite(confidence)):
            raise InvalidInputError(
                f"AnswerGate expected confidence to be a number, got {describe(confidence)}"
            )
        if self.corpus is None:
            raise InvalidInputError(
                "AnswerGate has no corpus to count the question's terms in: "
                "bind the documents it answers from with gate.with_corpus(documents)"
            )
        return (float(confidence), *self.corpus.question_features(question))

    def probability(self, question: str, confidence: float) -> float:
        """The probability that the corpus does not answer ``question``.

        Raises:
            InvalidInputError: see :meth:`features`.
        """
        return _probabilities(self._model(), [self.features(question, confidence)])[0]

    def declines(self, question: str, confidence: float | None) -> bool:
        """Whether to say "not in the sources" (always, when ``confidence`` is ``None``).

        Raises:
            InvalidInputError: see :meth:`features`.
        """
        if confidence is None:
            require_text(question, "AnswerGate", name="question")
            return True
        return self.probability(question, confidence) >= self.threshold

    def save(self, path: PathLike) -> None:
        """Write the gate (not its corpus) to ``path``: one JSON file, atomically."""
        content = {
            "format": FORMAT,
            "features": list(GATE_FEATURES),
            **{k: v for k, v in self._fields().items() if k != "corpus"},
        }
        atomic_write_text(path, json.dumps(content, indent=1) + "\n")

    @classmethod
    def load(cls, path: PathLike, encoder: object | None = None) -> AnswerGate:
        """The gate saved at ``path`` (bind its corpus with :meth:`with_corpus`).

        Args:
            path: a file :meth:`save` wrote.
            encoder: the sentence encoder the assistant scores with; when given
                and the file records the encoder the gate was fitted on, it must
                be that one.

        Raises:
            NotFoundError: no file at ``path``.
            IntegrityError: the file is not an answer gate.
            InvalidInputError: ``encoder`` is not the one the gate was fitted on.
        """
        if not os.path.isfile(path):
            raise NotFoundError(f"no answer gate at {path}")
        try:
            with open(path, encoding="utf-8") as handle:
                content = json.load(handle)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise IntegrityError(f"{path} is not a JSON file: {error}") from None
        if (
            not isinstance(content, dict)
            or content.get("format") != FORMAT
            or content.get("features") != list(GATE_FEATURES)
        ):
            found = content.get("format") if isinstance(content, dict) else describe(content)
            raise IntegrityError(
                f"{path} is not an answer gate (expected format {FORMAT!r} with features "
                f"{list(GATE_FEATURES)}, got {found!r})"
            )
        try:
            gate = cls(
                weights=content["weights"],
                bias=content["bias"],
                mean=content["mean"],
                scale=content["scale"],
                threshold=content["threshold"],
                encoder_fingerprint=content.get("encoder_fingerprint"),
            )
        except (KeyError, InvalidInputError) as error:
            raise IntegrityError(f"{path} is not a valid answer gate: {error}") from None
        if encoder is not None:
            gate.check_encoder(encoder)
        return gate

    def check_encoder(self, encoder: object) -> None:
        """Refuse ``encoder`` unless the gate was fitted on its confidences (or the
        gate does not record which encoder it was fitted on).

        Raises:
            InvalidInputError: another encoder, or not a FeatureExtractor.
        """
        fitted_on = self.encoder_fingerprint
        if fitted_on is not None and fitted_on != encoder_fingerprint(encoder):
            raise InvalidInputError(
                f"the answer gate was fitted on another encoder's confidences "
                f"(fingerprint {fitted_on[:12]}…), not on {describe(encoder)}'s"
            )


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _probabilities(model: _Model, rows: Iterable[Sequence[float]]) -> list[float]:
    """The logistic model's probabilities of the feature ``rows``."""
    weights, bias, mean, scale = model
    x = torch.tensor([list(r) for r in rows], dtype=torch.float64)
    z = (x - torch.tensor(mean, dtype=torch.float64)) / torch.tensor(scale, dtype=torch.float64)
    logits = z @ torch.tensor(weights, dtype=torch.float64) + bias
    probabilities: list[float] = torch.sigmoid(logits).tolist()
    return probabilities


def _fit_logistic(x: torch.Tensor, y: torch.Tensor, *, l2: float, steps: int) -> _Model:
    """Weights, bias, mean and scale of an L2-regularised logistic regression of ``y`` on ``x``
    (a feature that does not vary is scaled by 1, so it cannot blow up elsewhere)."""
    mean = x.mean(dim=0)
    spread = x.std(dim=0, unbiased=False)
    scale = torch.where(spread > 1e-9, spread, torch.ones_like(spread))
    z = (x - mean) / scale
    weights = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weights, bias], max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = (
            torch.nn.functional.binary_cross_entropy_with_logits(z @ weights + bias, y)
            + l2 * weights.square().sum()
        )
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    optimizer.step(closure)  # type: ignore[no-untyped-call]
    return weights.detach().tolist(), float(bias.detach()), mean.tolist(), scale.tolist()


def fit_answer_gate(
    examples: Sequence[GateExample],
    documents: Sequence[Document | str] | CorpusTerms,
    *,
    decline_goal: float = 0.9,
    folds: int = 5,
    groups: Sequence[str] | None = None,
    l2: float = 0.01,
    steps: int = 200,
    encoder: object | None = None,
) -> AnswerGate:
    """Learn an :class:`AnswerGate` from labelled questions, its threshold chosen out of fold.

    The examples are split into ``folds`` parts (by position: example ``i``
    in part ``i % folds``), or by ``groups``; each part is scored by a model
    fitted on the others, and the threshold is the highest probability that
    declines at least ``decline_goal`` of the unanswerable examples so scored
    (those with no confidence count as declined). The gate returned is
    fitted on every example, with that threshold, bound to ``documents``.

    Questions written together (by one person, in one sitting) resemble each
    other more than they resemble the next person's: give each its group
    (``groups``), and every group is held out in turn, so the threshold is
    chosen for questions from someone new. Held out at random, the gate
    would look surer of new questions than it is, and decline fewer.

    Args:
        examples: answerable and unanswerable questions with the assistant's
            confidences (:func:`~genarch.orchestration.rag_evaluation.gate_examples`).
        documents: the corpus the questions were asked of.
        decline_goal: the share of unanswerable questions to decline, in (0, 1].
        folds: how many parts to choose the threshold out of fold with (≥ 2;
            ``groups`` replaces it).
        groups: one name per example: the parts to hold out instead of
            ``folds`` (at least two different names).
        l2: the weight of the squared weights in the loss.
        steps: L-BFGS iterations.
        encoder: the encoder the confidences were computed with (its
            fingerprint is saved with the gate; ``None``: not recorded).

    When the examples with no confidence already make up ``decline_goal``, the
    threshold is 1.0: only a certainty declines.

    Raises:
        InvalidInputError: an item that is not a GateExample, a part whose
            others hold no answerable or no unanswerable example with a
            confidence, ``groups`` that do not name one group per example or
            name only one, an ``encoder`` that is not a FeatureExtractor, or a
            setting out of range.
    """
    items = list(checked_items(examples, GateExample, "fit_answer_gate"))
    folds = require_count(folds, "fit_answer_gate", "folds", minimum=2)
    steps = require_count(steps, "fit_answer_gate", "steps")
    if not (_is_number(decline_goal) and 0.0 < decline_goal <= 1.0):
        raise InvalidInputError(
            f"fit_answer_gate expected decline_goal in (0, 1], got {describe(decline_goal)}"
        )
    if not (_is_number(l2) and l2 >= 0):
        raise InvalidInputError(f"fit_answer_gate expected l2 >= 0, got {describe(l2)}")
    if encoder is not None and not callable(getattr(encoder, "extract", None)):
        raise InvalidInputError(
            "fit_answer_gate expected encoder to be the FeatureExtractor the confidences "
            f"were computed with, or None, got {describe(encoder)}"
        )
    corpus = documents if isinstance(documents, CorpusTerms) else CorpusTerms(documents)
    if groups is None:
        parts = [i % folds for i in range(len(items))]
    else:
        names = checked_texts(groups, "fit_answer_gate groups")
        if len(names) != len(items) or len(set(names)) < 2:
            raise InvalidInputError(
                f"fit_answer_gate expected groups to name the group of each of the "
                f"{len(items)} examples, at least two groups, got {len(names)} names of "
                f"{len(set(names))} groups"
            )
        number = {name: n for n, name in enumerate(dict.fromkeys(names))}
        parts = [number[name] for name in names]
    scored = [(e, p) for e, p in zip(items, parts, strict=True) if e.confidence is not None]
    x = torch.tensor(
        [(e.confidence, *corpus.question_features(e.question)) for e, _ in scored],
        dtype=torch.float64,
    )
    y = torch.tensor([0.0 if e.answerable else 1.0 for e, _ in scored], dtype=torch.float64)
    part = torch.tensor([p for _, p in scored], dtype=torch.long)
    if set(y.tolist()) != {0.0, 1.0}:
        raise InvalidInputError(
            "fit_answer_gate needs answerable and unanswerable examples with a confidence, got "
            f"{int((y == 0.0).sum())} answerable and {int((y == 1.0).sum())} unanswerable"
        )
    unanswerable = sum(not e.answerable for e in items)
    already = sum(not e.answerable and e.confidence is None for e in items)
    needed = math.ceil(decline_goal * unanswerable - 1e-9) - already
    threshold = 1.0  # nothing more to decline: only a certainty declines
    if needed > 0:
        for fold in sorted(set(part.tolist())):
            kinds = set(y[part != fold].tolist())
            if kinds != {0.0, 1.0}:
                held = f"group {list(number)[fold]!r}" if groups is not None else f"fold {fold}"
                missing = " or ".join(
                    kind
                    for kind, label in (("answerable", 0.0), ("unanswerable", 1.0))
                    if label not in kinds
                )
                raise InvalidInputError(
                    f"fit_answer_gate: outside {held} there is no {missing} example with a "
                    "confidence, so no model can score it; each part held out needs both "
                    "kinds in the others (more examples, or other groups)"
                )
        held_out = torch.zeros(len(scored), dtype=torch.float64)
        for fold in sorted(set(part.tolist())):
            model = _fit_logistic(x[part != fold], y[part != fold], l2=l2, steps=steps)
            held_out[part == fold] = torch.tensor(
                _probabilities(model, x[part == fold].tolist()), dtype=torch.float64
            )
        threshold = sorted(held_out[y == 1.0].tolist(), reverse=True)[needed - 1]
    weights, bias, mean, scale = _fit_logistic(x, y, l2=l2, steps=steps)
    return AnswerGate(
        weights=weights,
        bias=bias,
        mean=mean,
        scale=scale,
        threshold=threshold,
        corpus=corpus,
        encoder_fingerprint=None if encoder is None else encoder_fingerprint(encoder),
    )
