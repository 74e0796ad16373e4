"""Answers from your documents in one call, with no download.

:func:`quickstart_answers` chains the pieces a first RAG needs: a
:class:`~genarch.data.Chunker`, a
:class:`~genarch.orchestration.bm25.BM25Retriever` that indexes each chunk
with its topic's title (:class:`~genarch.orchestration.retrievers.TitledRetriever`)
and counts operator symbols such as ``^`` or ``**`` as words, a
:class:`~genarch.orchestration.rag.RAG` and the
:class:`~genarch.orchestration.extractive.ExtractiveGenerator`. When the
``embeddings`` extra is installed (``pip install "genarch[embeddings]"``),
retrieval fuses that BM25 with the all-MiniLM-L6-v2 sentence encoder
(:func:`~genarch.features.load_minilm`) over every chunk (hybrid retrieval), and the
generator scores candidate sentences with the same encoder too, adds a small prior for
the sentences of the topic whose title is closest to the question, and
declines when no sentence scores well enough (words and meaning together);
without it, answers are chosen by the words they share with the question. It is what ``genarch quickstart``
runs; render its results with
:func:`~genarch.orchestration.citations.format_result`.

Give ``generator=`` any ``Generator[TextRequest, TextResult]`` to write the
answers with a language model instead, for example
:class:`~genarch.deploy.OpenAICompatibleGenerator` in front of an
OpenAI-compatible server (``genarch quickstart --llm-url``). Retrieval, the
"not in the sources" checks and the citations stay the same: the model gets
the fenced prompt of :func:`~genarch.orchestration.grounded_prompt.build_prompt`
and its ``[n]`` markers become citations.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Literal, TypeVar

from genarch.data import Chunker
from genarch.errors import InvalidInputError, MissingDependencyError
from genarch.features.query_adapter import QueryAdapter
from genarch.orchestration.answer_gate import AnswerGate
from genarch.orchestration.bm25 import BM25Retriever
from genarch.orchestration.citations import Answer, GroundedGenerator, NotFound
from genarch.orchestration.extractive import ExtractiveGenerator
from genarch.orchestration.rag import RAG
from genarch.orchestration.retrievers import (
    DenseRetriever,
    HybridRetriever,
    TitledRetriever,
    document_titles,
)
from genarch.orchestration.vectorstore import ExactVectorStore
from genarch.protocols import FeatureExtractor, Generator, Retriever
from genarch.schemas import Document, TextRequest, TextResult
from genarch.validation import describe

#: what writes the answers: the extractive generator, or any text generator.
AnswerWriter = GroundedGenerator | Generator[TextRequest, TextResult]

__all__ = [
    "ADAPTED_HYBRID_WEIGHTS",
    "ADAPTER_FIT",
    "GATE_FIT",
    "HYBRID_WEIGHTS",
    "LEXICAL_MIN_COVERAGE",
    "LEXICAL_SETTINGS",
    "OPERATOR_TOKEN_PATTERN",
    "PROMPT_K",
    "QUICKSTART_CHUNK_TOKENS",
    "QUICKSTART_K",
    "SEMANTIC_MIN_COVERAGE",
    "SEMANTIC_SETTINGS",
    "python_docs_adapter",
    "python_docs_gate",
    "quickstart_answers",
    "quickstart_chunker",
    "quickstart_rag",
]

logger = logging.getLogger(__name__)

#: BM25's tokens: words of two or more characters, and operator symbols
#: (``**``, ``//``, ``<<``, ``>>`` and one-character ones such as ``^`` or ``&``),
#: which questions about Python often hinge on. A symbol inside a longer run of
#: symbols (a heading's ``~~~~`` or ``****`` underline, ``<<=``) is not one.
OPERATOR_TOKEN_PATTERN = (
    r"(?u)\b\w\w+\b|(?<![-+*/%@&|^~<>=])(?:\*\*|//|<<|>>|[-+*/%@&|^~<>])(?![-+*/%@&|^~<>=])"
)

#: The semantic answer selection's settings, chosen on the calibration half
#: (odd ids) of ``load_questions(name="rag")`` by ``benchmarks/eval_rag.py
#: --calibrate``: for each ``k``, ``semantic_weight``, ``title_weight`` and
#: coverage of a small grid, the lowest ``min_confidence`` that declines at
#: least 90% of its unanswerable questions; of those, the setting with the most
#: right answers there. The held-out half (even ids) shows how they generalise.
#: Only the 24 sentences with the most words of the question are embedded
#: (``shortlist``), each with its topic's title in front (``title_in_context``)
#: and, under a signature line, with that line (``heading_scope="block"``).
#: ``rank_penalty`` (0.005 of score per place in the retrieved order: of two
#: nearly equal sentences, the better-ranked chunk's) was chosen on the same half
#: among 0, 0.005, 0.01 and 0.02 once retrieval was hybrid.
#: :data:`SEMANTIC_MIN_COVERAGE` was re-chosen by the same rule on the
#: calibration half together with the first batch of questions written
#: independently of this code ("fresh_2"), which ask as users do: longer, in
#: their own words. The decline threshold ``min_confidence`` (0.48) is the
#: same rule's on the 72 unanswerable questions of the batches up to
#: "fresh_5" (``benchmarks/fit_query_adapter.py``, with the question adapter
#: in place; the adapter only ranks, and whether to decline is decided on
#: MiniLM's own similarities either way): it declines 66 of them (0.44, the
#: threshold before, 61) and 34 of their 226 answerable questions. With a
#: ``gate`` (``quickstart_rag(gate=...)``), the gate decides instead.
SEMANTIC_SETTINGS = {
    "semantic_weight": 0.7,
    "title_weight": 0.1,
    "rank_penalty": 0.005,
    "shortlist": 24,
    "title_in_context": True,
    "heading_scope": "block",
    "min_confidence": 0.48,
}

#: How the packaged question adapter was fitted (:func:`~genarch.features.fit_query_adapter`'s
#: settings; ``benchmarks/fit_query_adapter.py`` fits and tests it).
ADAPTER_FIT = {"rank": 32, "steps": 150, "temperature": 0.05, "l2": 0.01, "learning_rate": 0.01}

#: The file of the packaged question adapter (in ``genarch/orchestration/data``).
PYTHON_DOCS_ADAPTER = "python_docs_query_adapter.safetensors"

#: How the packaged answer gate was fitted (:func:`~genarch.orchestration.answer_gate.fit_answer_gate`'s
#: settings; ``benchmarks/fit_query_adapter.py`` fits and tests it with the adapter,
#: its threshold chosen holding out one batch of questions at a time: ``groups``).
GATE_FIT = {"decline_goal": 0.9, "l2": 0.01}

#: The file of the packaged answer gate (in ``genarch/orchestration/data``).
PYTHON_DOCS_GATE = "python_docs_answer_gate.json"

#: With a sentence encoder, the share of the question's content words the
#: retrieved chunks must hold (RAG's ``min_coverage``): none. A question that
#: describes the user's situation brings words the documentation never uses,
#: and the sentence scores' ``min_confidence`` declines what the sources do not
#: answer (0.6, 0.5, 0.4, 0.3 and 0 were compared; 0 declined the fewest
#: answerable questions and as many unanswerable ones).
SEMANTIC_MIN_COVERAGE = 0.0

#: The answer selection's settings without a sentence encoder: a signature
#: line describes the sentences indented under it, as with one.
LEXICAL_SETTINGS = {"heading_scope": "block"}

#: The quickstart's chunk size in tokens (chunks overlap by an eighth of it).
QUICKSTART_CHUNK_TOKENS = 128


def quickstart_chunker(max_tokens: int = QUICKSTART_CHUNK_TOKENS) -> Chunker:
    """The :class:`~genarch.data.Chunker` :func:`quickstart_rag` cuts documents with.

    Raises:
        ConfigError: ``max_tokens`` is not a positive int.

    Examples:
        >>> chunker = quickstart_chunker()
        >>> chunker.config.max_tokens, chunker.config.overlap_tokens
        (128, 16)
    """
    return Chunker(max_tokens=max_tokens, overlap_tokens=max_tokens // 8)


#: How many chunks the quickstart's assistant reads per question (chosen with
#: :data:`SEMANTIC_SETTINGS`).
QUICKSTART_K = 12

#: How many chunks go into the prompt when a ``generator`` writes the answers:
#: 8 chunks of 128 tokens fit a 4,096-token context with the instructions.
PROMPT_K = 8

#: Without a sentence encoder, the share of the question's content words the
#: retrieved chunks must hold, or the assistant declines (RAG's ``min_coverage``;
#: with an encoder, see :data:`SEMANTIC_MIN_COVERAGE`).
#: Chosen on the calibration half: with stemmed retrieval and k=12, 0.6 declined
#: only 3 of its 10 unanswerable questions, 0.7 six, at the same accuracy.
LEXICAL_MIN_COVERAGE = 0.7

#: With a sentence encoder, chunks are ranked by reciprocal-rank fusion
#: (:class:`~genarch.orchestration.retrievers.HybridRetriever`) of the titled BM25
#: and the encoder over every titled chunk, BM25's ranks counting twice the
#: encoder's. BM25 finds the questions that hinge on a symbol or a rare name
#: (``^``, ``__getattr__``), the encoder those put in other words than the
#: documentation's. Measured by ``benchmarks/eval_rag.py``: the answer's passage
#: is among the 12 chunks read for all of the set's first 106 answerable
#: questions, against 99 with BM25 alone. Equal weights lost a right answer on
#: the calibration half.
HYBRID_WEIGHTS = (2.0, 1.0)

#: With a question adapter, the two rankings count equally: the adapter moves
#: the encoder's question vectors too, and its ranking deserves the same vote.
#: Measured by ``benchmarks/fit_query_adapter.py --cross-validate`` (27 batches
#: left out one at a time, an adapter fitted on the others; change this
#: constant to compare): 427 right answers of 821 against 422 with BM25
#: counting twice, 237 declines of 269 unanswerable questions against 236; on
#: the test batches of ``benchmarks/eval_rag.py``, 113 of 207 against 110.
ADAPTED_HYBRID_WEIGHTS = (1.0, 1.0)

Encoder = FeatureExtractor[str] | Literal["minilm", "none"]
Retrieval = Literal["auto", "bm25", "hybrid"]
Adapter = QueryAdapter | Literal["python-docs"] | None
Gate = AnswerGate | Literal["python-docs"] | None
Learned = TypeVar("Learned", QueryAdapter, AnswerGate)


def python_docs_adapter(encoder: FeatureExtractor[str] | None = None) -> QueryAdapter:
    """The question adapter fitted on the Python-documentation question set.

    A :class:`~genarch.features.QueryAdapter` for all-MiniLM-L6-v2, learned
    from the labelled questions of ``load_questions(name="rag")`` that
    ``benchmarks/fit_query_adapter.py`` trains on (:data:`ADAPTER_FIT`): with
    it, questions about Python's documentation find the sentences that answer
    them more often. It was fitted on that documentation only.

    Args:
        encoder: all-MiniLM-L6-v2 (default :func:`~genarch.features.load_minilm`),
            possibly behind a :class:`~genarch.features.CachedExtractor`.

    Raises:
        MissingDependencyError: no ``encoder`` and the ``embeddings`` extra is
            not installed.
        InvalidInputError: ``encoder`` is not all-MiniLM-L6-v2 as shipped.
    """
    return _packaged(PYTHON_DOCS_ADAPTER, encoder, QueryAdapter.load)


def python_docs_gate(encoder: FeatureExtractor[str] | None = None) -> AnswerGate:
    """The answer gate fitted on the Python-documentation question set.

    An :class:`~genarch.orchestration.answer_gate.AnswerGate` for
    all-MiniLM-L6-v2's confidences with :data:`SEMANTIC_SETTINGS`, learned
    from the labelled questions of ``load_questions(name="rag")`` that
    ``benchmarks/fit_query_adapter.py`` trains on (:data:`GATE_FIT`), with the
    packaged question adapter in place. Bind the documents it answers from
    with ``.with_corpus(documents)`` (:func:`quickstart_rag` does).

    Args:
        encoder: all-MiniLM-L6-v2 (default :func:`~genarch.features.load_minilm`),
            possibly behind a :class:`~genarch.features.CachedExtractor`.

    Raises:
        MissingDependencyError: no ``encoder`` and the ``embeddings`` extra is
            not installed.
        InvalidInputError: ``encoder`` is not all-MiniLM-L6-v2 as shipped.
    """
    return _packaged(PYTHON_DOCS_GATE, encoder, AnswerGate.load)


def _packaged(
    file: str,
    encoder: FeatureExtractor[str] | None,
    load: Callable[[Path, FeatureExtractor[str]], Learned],
) -> Learned:
    """``load(path, encoder)`` of the package's data ``file``, on MiniLM by default."""
    if encoder is None:
        from genarch.features import load_minilm

        encoder = load_minilm()
    resource = resources.files("genarch.orchestration").joinpath("data", file)
    with resources.as_file(resource) as path:
        return load(path, encoder)


def quickstart_answers(
    documents: Sequence[Document],
    questions: Sequence[str],
    *,
    k: int | None = None,
    max_tokens: int = QUICKSTART_CHUNK_TOKENS,
    generator: AnswerWriter | None = None,
    encoder: Encoder = "minilm",
    retrieval: Retrieval = "auto",
    adapter: Adapter = None,
    gate: Gate = None,
) -> list[Answer | NotFound]:
    """Answer ``questions`` from ``documents`` with hybrid (or BM25) retrieval and
    extractive answers.

    No download: the documents are chunked (:class:`~genarch.data.Chunker`),
    indexed with BM25 (and, with a sentence encoder, embedded), and each answer
    is the best sentences of the retrieved chunks, with exact citations (see
    :func:`quickstart_rag`). With ``generator``, that generator writes the
    answers (see the module docs).

    Raises:
        InvalidInputError: bad documents, questions, encoder or retrieval.
        MissingDependencyError: see :func:`quickstart_rag`.

    Examples:
        >>> from genarch.data import python_docs
        >>> docs = [d for d in python_docs() if d.id in {"break", "continue", "pass"}]
        >>> [result] = quickstart_answers(docs, ["Which statement is a null operation?"], encoder="none")
        >>> result.kind, result.citations[0].document_id
        ('answer', 'pass')
    """
    if not isinstance(documents, list | tuple):
        raise InvalidInputError(
            f"quickstart_answers expected a list of Documents, got {describe(documents)}"
        )
    if not isinstance(questions, list | tuple):
        raise InvalidInputError(
            f"quickstart_answers expected a list of questions, got {describe(questions)}"
        )
    rag = quickstart_rag(
        documents,
        k=k,
        max_tokens=max_tokens,
        generator=generator,
        encoder=encoder,
        retrieval=retrieval,
        adapter=adapter,
        gate=gate,
    )
    return [rag.run(question) for question in questions]


def _sentence_encoder(encoder: Encoder, *, required: bool = False) -> FeatureExtractor[str] | None:
    """The encoder to score sentences with: given, MiniLM when installed, or none
    (unless ``required``: then a missing ``embeddings`` extra raises)."""
    if encoder == "none":
        return None
    if encoder == "minilm":
        from genarch.features import load_minilm

        try:
            return load_minilm()
        except MissingDependencyError:
            if required:
                raise
            logger.info("the embeddings extra is not installed: answers are chosen by words only")
            return None
    if isinstance(encoder, str) or not callable(getattr(encoder, "extract", None)):
        raise InvalidInputError(
            "quickstart_rag expected encoder to be 'minilm', 'none' or a FeatureExtractor[str], "
            f"got {describe(encoder)}"
        )
    return encoder


def quickstart_rag(
    documents: Sequence[Document],
    *,
    k: int | None = None,
    max_tokens: int = QUICKSTART_CHUNK_TOKENS,
    generator: AnswerWriter | None = None,
    encoder: Encoder = "minilm",
    retrieval: Retrieval = "auto",
    adapter: Adapter = None,
    gate: Gate = None,
) -> RAG:
    """The assistant :func:`quickstart_answers` asks: chunked, indexed, ready to ``run``.

    Retrieval is BM25 over the chunks with their topic's title in front
    (:class:`~genarch.orchestration.retrievers.TitledRetriever`), every word
    kept (Python keywords such as ``with`` matter), operator symbols counted
    (:data:`OPERATOR_TOKEN_PATTERN`) and word forms folded
    (:func:`~genarch.orchestration.citations.light_stem`: "float" finds
    "Floating"). With a sentence encoder, it is fused with the encoder's
    ranking of every titled chunk (:data:`HYBRID_WEIGHTS`; with an adapter, :data:`ADAPTED_HYBRID_WEIGHTS`); building that
    index embeds every chunk once (20-30 s for Python's documentation on 2
    idle CPU cores). Answers are extracted from the ``k`` retrieved chunks; with a
    sentence encoder, by :data:`SEMANTIC_SETTINGS`,
    with the topic titles as the generator's ``titles`` (the title prior);
    without one, by the words they share with the question, declining under
    :data:`LEXICAL_MIN_COVERAGE`.

    Args:
        documents: what to answer from.
        k: how many chunks to retrieve per question (default:
            :data:`QUICKSTART_K` for the extractive answers, :data:`PROMPT_K`
            when ``generator`` writes them).
        max_tokens: the chunk size (:func:`quickstart_chunker`).
        generator: writes the answers (default: a new
            :class:`~genarch.orchestration.extractive.ExtractiveGenerator`;
            ``encoder`` then only ranks chunks).
        encoder: scores the candidate sentences by meaning and ranks chunks
            with BM25: ``"minilm"`` (all-MiniLM-L6-v2 when the ``embeddings``
            extra is installed, else words only), ``"none"`` (words only), or
            any ``FeatureExtractor[str]``.
        retrieval: ``"auto"`` (hybrid with a sentence encoder, BM25 without
            one), ``"bm25"`` (no corpus embedding: faster to build) or
            ``"hybrid"`` (needs a sentence encoder).
        adapter: embeds the questions, for hybrid retrieval and for ranking the
            candidate sentences (a :class:`~genarch.features.QueryAdapter` on
            ``encoder``; chunks and sentences keep the encoder's vectors, and
            whether to decline is still decided on the encoder's own
            similarities): ``"python-docs"`` (:func:`python_docs_adapter`, for
            Python's documentation), your own adapter, or ``None`` (the
            encoder's own vectors). With ``generator``, it serves hybrid
            retrieval only.
        gate: decides whether the extractive answers decline, instead of
            ``min_confidence`` (an
            :class:`~genarch.orchestration.answer_gate.AnswerGate`, bound to
            ``documents`` here): ``"python-docs"`` (:func:`python_docs_gate`,
            for Python's documentation with all-MiniLM-L6-v2, fitted with
            ``adapter="python-docs"`` and the default retrieval, ``k`` and
            chunks: other settings change the confidences it reads), your own
            gate, or ``None`` (``min_confidence``). Needs a sentence encoder
            and no ``generator``.

    Raises:
        InvalidInputError: bad documents, encoder, retrieval or adapter,
            ``"hybrid"`` or an adapter with ``encoder="none"``, an adapter of
            another dimension than the encoder, ``"python-docs"`` with an
            encoder other than all-MiniLM-L6-v2, a gate without a sentence
            encoder or with a ``generator``, or a generator without
            ``generate``/``compose``.
        MissingDependencyError: ``"hybrid"`` with ``"minilm"`` and no
            ``embeddings`` extra installed.
    """
    if not isinstance(documents, list | tuple):
        raise InvalidInputError(
            f"quickstart_rag expected a list of Documents, got {describe(documents)}"
        )
    if retrieval not in ("auto", "bm25", "hybrid"):
        raise InvalidInputError(
            f"quickstart_rag expected retrieval 'auto', 'bm25' or 'hybrid', got {describe(retrieval)}"
        )
    if retrieval == "hybrid" and encoder == "none":
        raise InvalidInputError(
            "quickstart_rag: retrieval='hybrid' needs a sentence encoder, got encoder='none'"
        )
    if adapter is not None and not (adapter == "python-docs" or isinstance(adapter, QueryAdapter)):
        raise InvalidInputError(
            f"quickstart_rag expected adapter 'python-docs', a QueryAdapter or None, got {describe(adapter)}"
        )
    if gate is not None and not (gate == "python-docs" or isinstance(gate, AnswerGate)):
        raise InvalidInputError(
            f"quickstart_rag expected gate 'python-docs', an AnswerGate or None, got {describe(gate)}"
        )
    if gate is not None and (encoder == "none" or generator is not None):
        raise InvalidInputError(
            "quickstart_rag: a gate decides whether the extractive answers decline on the "
            "sentence encoder's confidences, so it needs a sentence encoder and no generator, "
            f"got encoder={describe(encoder)} and generator={describe(generator)}"
        )
    if adapter is not None and encoder == "none":
        raise InvalidInputError(
            "quickstart_rag: an adapter moves the sentence encoder's question vectors, "
            "so it needs a sentence encoder, got encoder='none'"
        )
    sentence_encoder = _sentence_encoder(
        encoder, required=retrieval == "hybrid" or adapter is not None or gate is not None
    )
    questions: QueryAdapter | None = None
    if adapter == "python-docs":
        assert sentence_encoder is not None  # required above
        questions = python_docs_adapter(sentence_encoder)
    elif isinstance(adapter, QueryAdapter):
        assert sentence_encoder is not None
        if adapter.dim != sentence_encoder.dim:
            raise InvalidInputError(
                f"quickstart_rag: the adapter gives {adapter.dim}-dim question vectors, "
                f"the encoder {sentence_encoder.dim}-dim ones"
            )
        questions = adapter
    decides: AnswerGate | None = None  # resolved before the corpus is indexed
    if gate is not None:
        assert sentence_encoder is not None  # required above
        if isinstance(gate, AnswerGate):
            gate.check_encoder(sentence_encoder)  # the packaged one is checked on loading
        decides = python_docs_gate(sentence_encoder) if gate == "python-docs" else gate
        decides = decides.with_corpus(documents)
    chunks = list(quickstart_chunker(max_tokens).process(documents))
    bm25 = BM25Retriever(stopwords=(), token_pattern=OPERATOR_TOKEN_PATTERN, stem=True)
    titles = document_titles(documents)
    retriever: Retriever = TitledRetriever(bm25, titles).fit(chunks)
    if sentence_encoder is not None and retrieval != "bm25":
        store = ExactVectorStore(dim=sentence_encoder.dim, metric="cosine")
        dense = TitledRetriever(
            DenseRetriever(sentence_encoder, store, query_extractor=questions), titles
        ).fit(chunks)
        weights = HYBRID_WEIGHTS if questions is None else ADAPTED_HYBRID_WEIGHTS
        retriever = HybridRetriever([retriever, dense], weights=weights)
    if k is None:
        k = QUICKSTART_K if generator is None else PROMPT_K
    if generator is None:
        if sentence_encoder is None:
            return RAG(
                retriever,
                ExtractiveGenerator(LEXICAL_SETTINGS),
                k=k,
                min_coverage=LEXICAL_MIN_COVERAGE,
            )
        generator = ExtractiveGenerator(
            SEMANTIC_SETTINGS,
            encoder=sentence_encoder,
            question_encoder=questions,
            titles=titles,
            gate=decides,
        )
        return RAG(retriever, generator, k=k, min_coverage=SEMANTIC_MIN_COVERAGE)
    return RAG(retriever, generator, k=k)
