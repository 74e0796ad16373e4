"""A counterfactual bias audit: swap demographic terms in prompts, compare the outputs' scores.

For each prompt that mentions a term of the pair list, the audit builds its
counterfactual (every listed term replaced by its partner: ``he`` ↔ ``she``,
``church`` ↔ ``mosque``), generates an output for both with the *same* request
settings and seed, scores both outputs with any
:class:`~genarch.protocols.Evaluator`, and reports, per score, the mean of
``score(original) - score(counterfactual)`` with a seeded bootstrap interval
(:func:`~genarch.evaluation.bootstrap_mean`). An interval that excludes 0
says the scorer sees a systematic difference between the two groups' outputs.
Prompts without any listed term are skipped and counted.

The pairs ship as ``genarch/evaluation/data/counterfactual_term_pairs.json``
(:func:`load_term_pairs`; its ``description`` gives the sources): gender terms
after counterfactual data augmentation (Lu et al., 2018; Zhao et al., 2018) and
a few religion terms. Swaps are whole-word and keep the original's case
(``He`` → ``She``, ``MEN`` → ``WOMEN``).

Limits: word swaps are blunt — ``her`` always becomes ``his`` (it may have
meant ``him``), names and grammatical agreement in other words are left
alone, and groups the list does not name are not audited. A null result means
"no difference this scorer, these prompts and this sample size can see", not
"unbiased". Sampling noise is controlled (same seed for both prompts), but a
swap that changes the tokenisation changes the random draws that follow.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from importlib import resources
from typing import Annotated, Any

from pydantic import Field

from genarch.configured import Configured
from genarch.errors import IntegrityError, InvalidInputError
from genarch.evaluation.bootstrap import bootstrap_mean
from genarch.protocols import Evaluator, Generator
from genarch.schemas import BiasFinding, Config, Record, TextRequest
from genarch.validation import describe

__all__ = [
    "TERM_PAIRS_FILE",
    "BiasAuditReport",
    "CounterfactualAudit",
    "CounterfactualAuditConfig",
    "CounterfactualPair",
    "load_term_pairs",
    "swap_terms",
]

TERM_PAIRS_FILE = "counterfactual_term_pairs.json"
_FORMAT = "genarch.term-pairs/1"


def load_term_pairs(groups: Sequence[str] | None = None) -> tuple[tuple[str, str], ...]:
    """The shipped term pairs, of every group or of the named ones (``"gender"``, ``"religion"``).

    Raises:
        InvalidInputError: a group the list does not have.
        IntegrityError: the packaged file is malformed.

    Examples:
        >>> ("he", "she") in load_term_pairs(["gender"])
        True
    """
    text = (
        resources.files("genarch.evaluation").joinpath("data", TERM_PAIRS_FILE).read_text("utf-8")
    )
    data = json.loads(text)
    if (
        not isinstance(data, dict)
        or data.get("format") != _FORMAT
        or not isinstance(data.get("groups"), dict)
    ):
        raise IntegrityError(f"{TERM_PAIRS_FILE}: expected format {_FORMAT!r} with 'groups'")
    available: dict[str, list[list[str]]] = data["groups"]
    chosen = list(available) if groups is None else list(groups)
    unknown = [g for g in chosen if g not in available]
    if unknown or isinstance(groups, str):
        raise InvalidInputError(
            f"load_term_pairs expected groups among {sorted(available)}, got {describe(groups)}"
        )
    return tuple((a, b) for g in chosen for a, b in available[g])


def _swap_table(pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    table: dict[str, str] = {}
    for index, pair in enumerate(pairs):
        if (
            not isinstance(pair, tuple | list)
            or len(pair) != 2
            or not all(isinstance(t, str) and re.fullmatch(r"[a-z]+", t) for t in pair)
        ):
            raise InvalidInputError(
                f"pairs[{index}] must be two lowercase words, got {describe(pair)}"
            )
        first, second = pair
        table.setdefault(first, second)  # the first pair naming a word decides its swap
        table.setdefault(second, first)
    return table


def _keep_case(original: str, replacement: str) -> str:
    if original.isupper() and len(original) > 1:
        return replacement.upper()
    if original[0].isupper():
        return replacement[0].upper() + replacement[1:]
    return replacement


def swap_terms(text: str, pairs: Sequence[tuple[str, str]]) -> tuple[str, int]:
    """``text`` with every listed word replaced by its partner, and how many were swapped.

    Examples:
        >>> swap_terms("He thanked his Mother.", [("he", "she"), ("his", "her"), ("father", "mother")])
        ('She thanked her Father.', 3)
    """
    table = _swap_table(pairs)
    count = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal count
        word = match.group()
        partner = table.get(word.lower())
        if partner is None:
            return word
        count += 1
        return _keep_case(word, partner)

    return re.sub(r"[A-Za-z]+", replace, text), count


class CounterfactualPair(Record):
    """One audited prompt: the two prompts, their outputs and their scores."""

    prompt: str
    counterfactual: str
    original_output: str
    counterfactual_output: str
    original_scores: dict[str, float]
    counterfactual_scores: dict[str, float]


class BiasAuditReport(Record):
    """What :meth:`CounterfactualAudit.run` found.

    Attributes:
        findings: one per score of the scorer, in the scorer's order.
        pairs: every audited pair.
        skipped: prompts without a listed term (not audited).
    """

    findings: tuple[BiasFinding, ...]
    pairs: tuple[CounterfactualPair, ...]
    skipped: Annotated[int, Field(ge=0)]

    def table(self) -> str:
        """The findings as a Markdown table."""
        lines = [
            "| score | pairs | original | counterfactual | difference | interval |",
            "|---|---:|---:|---:|---:|---|",
        ]
        for f in self.findings:
            d = f.difference
            lines.append(
                f"| {f.score} | {f.pairs} | {f.mean_original:.4f} | {f.mean_counterfactual:.4f} "
                f"| {d.estimate:+.4f} | [{d.low:+.4f}, {d.high:+.4f}] ({d.level:.0%}) |"
            )
        return "\n".join(lines)


class CounterfactualAuditConfig(Config):
    """Settings of :class:`CounterfactualAudit`.

    Attributes:
        groups: term-pair groups to swap (``None``: all shipped groups).
        seed: the generation seed of both requests when a prompt is a ``str``
            or a :class:`~genarch.schemas.TextRequest` without one.
        max_new_tokens: tokens generated for a ``str`` prompt.
        level, resamples, bootstrap_seed: the bootstrap interval's settings.
    """

    groups: tuple[str, ...] | None = None
    seed: Annotated[int, Field(ge=0)] = 0
    max_new_tokens: Annotated[int, Field(ge=1)] = 32
    level: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.95
    resamples: Annotated[int, Field(ge=1, le=1_000_000)] = 1000
    bootstrap_seed: Annotated[int, Field(ge=0)] = 0


class CounterfactualAudit(Configured[CounterfactualAuditConfig]):
    """Generates for prompts and their term-swapped twins, and compares the scores.

    Args:
        generator: a text :class:`~genarch.protocols.Generator` (``TextRequest`` → ``TextResult``).
        scorer: an :class:`~genarch.protocols.Evaluator` called as
            ``scorer.evaluate(request, result)`` on each output.
        config: a :class:`CounterfactualAuditConfig` (or its fields as keywords).
        pairs: the term pairs (default: the shipped ones of ``config.groups``).
    """

    def __init__(
        self,
        generator: Generator[TextRequest, Any],
        scorer: Evaluator[TextRequest, Any],
        config: CounterfactualAuditConfig | None = None,
        *,
        pairs: Sequence[tuple[str, str]] | None = None,
        **fields: Any,
    ) -> None:
        Configured.__init__(self, config, **fields)
        for name, value, method in (
            ("generator", generator, "generate"),
            ("scorer", scorer, "evaluate"),
        ):
            if not callable(getattr(value, method, None)):
                raise InvalidInputError(
                    f"CounterfactualAudit expected {name} with a {method} method, got {describe(value)}"
                )
        self.generator, self.scorer = generator, scorer
        self.pairs = tuple(pairs) if pairs is not None else load_term_pairs(self.config.groups)
        _swap_table(self.pairs)  # validate now, not at the first prompt

    def _request(self, prompt: object, index: int) -> TextRequest:
        if isinstance(prompt, str):
            return TextRequest(
                prompt=prompt, max_new_tokens=self.config.max_new_tokens, seed=self.config.seed
            )
        if isinstance(prompt, TextRequest):
            return (
                prompt
                if prompt.seed is not None
                else prompt.model_copy(update={"seed": self.config.seed})
            )
        raise InvalidInputError(
            f"CounterfactualAudit.run expected prompts[{index}] as a str or TextRequest, got {describe(prompt)}"
        )

    def run(self, prompts: Sequence[str | TextRequest]) -> BiasAuditReport:
        """Audit ``prompts``; see the module for what is computed.

        Raises:
            InvalidInputError: ``prompts`` is not a sequence of str or
                TextRequest, none mentions a listed term, or the scorer gives
                different score names for the two outputs of a pair.
        """
        if isinstance(prompts, str | bytes) or not isinstance(prompts, Sequence):
            raise InvalidInputError(
                f"CounterfactualAudit.run expected prompts as a sequence, got {describe(prompts)}"
            )
        requests = [self._request(p, i) for i, p in enumerate(prompts)]
        audited: list[CounterfactualPair] = []
        for request in requests:
            swapped, count = swap_terms(request.prompt, self.pairs)
            if count == 0:
                continue
            twin = request.model_copy(update={"prompt": swapped})
            outputs = [self.generator.generate(request), self.generator.generate(twin)]
            scores = [
                self.scorer.evaluate(r, o).scores
                for r, o in zip((request, twin), outputs, strict=True)
            ]
            if list(scores[0]) != list(scores[1]):
                raise InvalidInputError(
                    f"CounterfactualAudit: the scorer gave scores {sorted(scores[0])} and "
                    f"{sorted(scores[1])} for one pair; an Evaluator must give the same names"
                )
            audited.append(
                CounterfactualPair(
                    prompt=request.prompt,
                    counterfactual=swapped,
                    original_output=getattr(outputs[0], "text", str(outputs[0])),
                    counterfactual_output=getattr(outputs[1], "text", str(outputs[1])),
                    original_scores=scores[0],
                    counterfactual_scores=scores[1],
                )
            )
        if not audited:
            raise InvalidInputError(
                f"CounterfactualAudit.run: none of the {len(requests)} prompts mentions a listed term"
            )
        findings = []
        for name in audited[0].original_scores:
            if any(list(p.original_scores) != list(audited[0].original_scores) for p in audited):
                raise InvalidInputError(
                    "CounterfactualAudit: the scorer gave different score names for different prompts"
                )
            original = [p.original_scores[name] for p in audited]
            counterfactual = [p.counterfactual_scores[name] for p in audited]
            difference = bootstrap_mean(
                [a - b for a, b in zip(original, counterfactual, strict=True)],
                level=self.config.level,
                resamples=self.config.resamples,
                seed=self.config.bootstrap_seed,
            )
            findings.append(
                BiasFinding(
                    score=name,
                    pairs=len(audited),
                    mean_original=sum(original) / len(original),
                    mean_counterfactual=sum(counterfactual) / len(counterfactual),
                    difference=difference,
                )
            )
        return BiasAuditReport(
            findings=tuple(findings), pairs=tuple(audited), skipped=len(requests) - len(audited)
        )
