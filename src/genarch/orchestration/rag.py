"""Retrieval-augmented generation with citations: retrieve → augment → generate.

:class:`RAG` answers a question from the chunks a
:class:`~genarch.protocols.Retriever` finds, with any text generator:

1. **Retrieve** the top ``k`` chunks; they become numbered
   :class:`~genarch.orchestration.citations.Source`\\ s.
2. **Decide whether there is anything to answer from.** No chunks, a best score
   under ``min_score``, or too few of the question's content words in the
   sources (``min_coverage``) gives a
   :class:`~genarch.orchestration.citations.NotFound` result — a typed
   outcome, not a magic string in the answer text.
3. **Augment**: :func:`~genarch.orchestration.grounded_prompt.build_prompt`
   fences each source and the question in tags, after instructions that say
   the sources are data, not instructions; tag look-alikes inside them are
   neutralised (see :mod:`genarch.orchestration.grounded_prompt`).
4. **Generate** with either a
   :class:`~genarch.orchestration.citations.GroundedGenerator` (typed: it
   returns statements with exact citations, like
   :class:`~genarch.orchestration.extractive.ExtractiveGenerator`) or any
   ``Generator[TextRequest, TextResult]``, whose ``[n]`` markers are turned
   into citations (:func:`~genarch.orchestration.citations.parse_answer`).

Every citation names the source number, chunk id and document id and a
character span ``start``/``end`` into the *document*, so
``document.text[c.start:c.end] == c.quote`` can be checked.

:class:`RAG` is a chain step (``run`` / ``run_traced``), so
``run_chain(rag, question)`` returns the result with a trace of the retrieval
and generation.

The records and citation matching live in :mod:`genarch.orchestration.citations`,
the prompt in :mod:`genarch.orchestration.grounded_prompt`, and
:func:`~genarch.orchestration.quickstart.quickstart_answers` (BM25 + extractive
answers, no model) in :mod:`genarch.orchestration.quickstart`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Self

from pydantic import BaseModel, Field

from genarch._deprecated import moved_module
from genarch.configured import Configured
from genarch.errors import ConfigError, InvalidInputError
from genarch.orchestration.chains import FunctionStep, call_step
from genarch.orchestration.citations import (
    Answer,
    GroundedGenerator,
    NotFound,
    Source,
    Statement,
    answer_text,
    parse_answer,
    term_coverage,
)
from genarch.orchestration.grounded_prompt import NOT_FOUND_MARKER, build_prompt
from genarch.orchestration.token_budget import TokenBudget
from genarch.orchestration.tracing import Tracer
from genarch.protocols import Generator, Retriever, Tokenizer
from genarch.schemas import Config, ScoredChunk, TextRequest, TextResult
from genarch.validation import describe

__all__ = ["RAG", "RAGConfig"]


_MOVED = {  # names that lived here until the module was split: they warn, then forward
    **dict.fromkeys(
        (
            *("Answer", "Citation", "GroundedGenerator", "NotFound", "NotFoundReason"),
            *("RAGResult", "Source", "Statement", "answer_text", "content_terms"),
            *("format_result", "locate", "parse_answer", "term_coverage"),
        ),
        "genarch.orchestration.citations",
    ),
    **dict.fromkeys(
        ("INSTRUCTIONS", "NOT_FOUND_MARKER", "build_prompt", "neutralise", "parse_prompt"),
        "genarch.orchestration.grounded_prompt",
    ),
    "quickstart_answers": "genarch.orchestration.quickstart",
}
__getattr__ = moved_module(__name__, _MOVED)


class RAGConfig(Config):
    """Settings of :class:`RAG`.

    Attributes:
        k: how many chunks to retrieve.
        min_score: below this best retrieval score, the answer is
            :class:`~genarch.orchestration.citations.NotFound` (``None``: no threshold; scores are on the
            retriever's own scale).
        min_coverage: the fraction of the question's content words that must
            appear in the sources (0 disables the check).
        max_prompt_tokens: with a tokenizer, the lowest-ranked sources are
            dropped until the prompt fits this many tokens.
        max_new_tokens, temperature, seed: the :class:`~genarch.schemas.TextRequest`
            sent to a text generator (greedy and seeded by default: repeatable).
        grounded: use a grounded generator's ``compose`` when the generator
            has one (exact citations); ``False`` always uses the prompt.
    """

    k: Annotated[int, Field(ge=1)] = 4
    min_score: float | None = None
    min_coverage: Annotated[float, Field(ge=0.0, le=1.0)] = 0.6
    max_prompt_tokens: Annotated[int, Field(ge=1)] | None = None
    max_new_tokens: Annotated[int, Field(ge=1)] = 256
    temperature: Annotated[float, Field(ge=0.0)] = 0.0
    seed: int | None = 0
    grounded: bool = True


# ------------------------------------------------------------------ the pipeline


class RAG(Configured[RAGConfig]):
    """Answers questions from retrieved sources, with citations (see the module docs).

    Args:
        retriever: finds chunks for a question.
        generator: a :class:`~genarch.orchestration.citations.GroundedGenerator` or
            any ``Generator[TextRequest, TextResult]``.
        config: see :class:`RAGConfig`; keyword fields are shorthand.
        tokenizer: the generator's tokeniser, to keep the prompt within
            ``max_prompt_tokens``.
        name: the step's name in traces.

    Raises:
        InvalidInputError: the retriever or generator lacks the needed methods.
        ConfigError: bad settings, or both a config and keyword fields.

    Examples:
        >>> from genarch.orchestration.extractive import ExtractiveGenerator
        >>> from genarch.schemas import Chunk, Document, ScoredChunk
        >>> docs = [Document(id="sets", text="A set is an unordered collection. Sets have no duplicates.")]
        >>> chunks = [Chunk(id="sets#0", document_id="sets", text=docs[0].text, start=0, end=len(docs[0].text))]
        >>> class Everything:  # a retriever that returns every chunk
        ...     def retrieve(self, query, k):
        ...         return [ScoredChunk(chunk=c, score=1.0) for c in chunks[:k]]
        >>> rag = RAG(Everything(), ExtractiveGenerator())
        >>> result = rag.run("Are duplicates allowed in a set?")
        >>> result.text
        'Sets have no duplicates. [1]'
        >>> c = result.citations[0]
        >>> docs[0].text[c.start:c.end]
        'Sets have no duplicates.'
        >>> rag.run("Who painted the Mona Lisa?").reason
        'low_coverage'
    """

    def __init__(
        self,
        retriever: Retriever,
        generator: Generator[TextRequest, TextResult] | GroundedGenerator,
        config: RAGConfig | Mapping[str, Any] | None = None,
        *,
        tokenizer: Tokenizer | None = None,
        name: str = "rag",
        **fields: Any,
    ) -> None:
        if not isinstance(retriever, Retriever):
            raise InvalidInputError(
                f"RAG expected a Retriever (retrieve(query, k)), got {describe(retriever)}"
            )
        if not isinstance(generator, GroundedGenerator | Generator):
            raise InvalidInputError(
                f"RAG expected a Generator[TextRequest, TextResult] or a GroundedGenerator, "
                f"got {describe(generator)}"
            )
        if tokenizer is not None and not isinstance(tokenizer, Tokenizer):
            raise InvalidInputError(f"RAG expected a Tokenizer, got {describe(tokenizer)}")
        Configured.__init__(self, config, **fields)
        self.retriever = retriever
        self.generator = generator
        self.tokenizer = tokenizer
        self.name = name
        self.input_type: Any = str
        self.output_type: Any = Answer | NotFound

    @classmethod
    def from_config(cls, config: BaseModel | Mapping[str, Any]) -> Self:
        """Not available: a RAG also needs a retriever and a generator.

        Raises:
            ConfigError: always; build it with ``RAG(retriever, generator, config)``.
        """
        raise ConfigError(
            "RAG needs a retriever and a generator besides its config; "
            "build it with RAG(retriever, generator, config)"
        )

    def with_config(self, **changes: Any) -> Self:
        """A copy with some settings changed (same retriever and generator)."""
        config = RAGConfig.coerce({**self._config.model_dump(), **changes})
        return type(self)(
            self.retriever, self.generator, config, tokenizer=self.tokenizer, name=self.name
        )

    # -- steps ----------------------------------------------------------------

    def retrieve(self, question: str) -> list[Source]:
        """The numbered sources for ``question`` (repeated chunks dropped)."""
        found = self.retriever.retrieve(question, self._config.k)
        sources: list[Source] = []
        seen: set[str] = set()
        for item in found:
            if not isinstance(item, ScoredChunk):
                raise InvalidInputError(
                    f"the retriever returned {describe(item)}, not a ScoredChunk"
                )
            if item.chunk.id not in seen:
                seen.add(item.chunk.id)
                sources.append(Source(number=len(sources) + 1, chunk=item.chunk, score=item.score))
        return sources

    def _within_budget(self, question: str, sources: list[Source]) -> list[Source]:
        limit = self._config.max_prompt_tokens
        if self.tokenizer is None or limit is None:
            return sources
        budget = TokenBudget(self.tokenizer, limit)
        kept = list(sources)
        while kept and not budget.fits(build_prompt(question, kept)):
            kept.pop()
        if not kept:
            raise InvalidInputError(
                f"RAG: the question with even one source needs "
                f"{budget.count(build_prompt(question, sources[:1]))} tokens, more than "
                f"max_prompt_tokens={limit}; allow more tokens or retrieve smaller chunks"
            )
        return kept

    def _low_confidence(self, question: str, sources: list[Source]) -> NotFound | None:
        config = self._config
        if not sources:
            return NotFound(
                question=question, reason="no_results", detail="retrieval found nothing"
            )
        best = max(source.score for source in sources)
        coverage = term_coverage(question, [source.chunk.text for source in sources])
        facts: dict[str, Any] = {
            "best_score": best,
            "coverage": coverage,
            "sources": tuple(sources),
        }
        if config.min_score is not None and best < config.min_score:
            detail = f"the best retrieval score {best:.4g} is under min_score={config.min_score}"
            return NotFound(question=question, reason="low_score", detail=detail, **facts)
        if coverage < config.min_coverage:
            detail = (
                f"only {coverage:.0%} of the question's content words are in the sources "
                f"(min_coverage={config.min_coverage:.0%})"
            )
            return NotFound(question=question, reason="low_coverage", detail=detail, **facts)
        return None

    def run(self, question: str) -> Answer | NotFound:
        """Answer ``question`` (see :func:`~genarch.orchestration.chains.run_chain` for a trace).

        Raises:
            InvalidInputError: ``question`` is not a non-empty string.
        """
        return self.run_traced(question, Tracer(), None)

    def run_traced(self, question: str, tracer: Tracer, parent: int | None) -> Answer | NotFound:
        """:meth:`run`, recording the retrieve and generate steps in ``tracer``."""
        if not isinstance(question, str) or not question.strip():
            raise InvalidInputError(f"RAG expected a non-empty question, got {describe(question)}")
        sources = call_step(FunctionStep("retrieve", self.retrieve), question, tracer, parent)
        declined = self._low_confidence(question, sources)
        if declined is not None:
            return declined
        sources = self._within_budget(question, sources)
        generator = self.generator
        if self._config.grounded and isinstance(generator, GroundedGenerator):

            def compose(inputs: tuple[str, list[Source]]) -> list[Statement]:
                return generator.compose(*inputs)

            statements = call_step(
                FunctionStep("compose", compose), (question, sources), tracer, parent
            )
            prompt = None
            raw = answer_text(statements)
        else:
            assert isinstance(generator, Generator)
            prompt = build_prompt(question, sources)
            request = TextRequest(
                prompt=prompt,
                max_new_tokens=self._config.max_new_tokens,
                temperature=self._config.temperature,
                seed=self._config.seed,
            )
            result = call_step(
                FunctionStep("generate", generator.generate), request, tracer, parent
            )
            if not isinstance(result, TextResult):
                raise InvalidInputError(
                    f"the generator returned {describe(result)}, not a TextResult"
                )
            raw = result.text.strip()
            if raw.startswith(NOT_FOUND_MARKER):
                return NotFound(
                    question=question,
                    reason="declined",
                    detail="the generator replied that the sources do not contain the answer",
                    sources=tuple(sources),
                )
            statements = parse_answer(raw, sources)
        if not statements:
            return NotFound(
                question=question,
                reason="no_support",
                detail="no sentence of the sources supports an answer",
                sources=tuple(sources),
            )
        return Answer(
            question=question,
            text=raw,
            statements=tuple(statements),
            sources=tuple(sources),
            prompt=prompt,
        )

    def __repr__(self) -> str:
        return f"RAG({type(self.retriever).__name__}, {type(self.generator).__name__}, k={self._config.k})"
