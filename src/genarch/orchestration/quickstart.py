"""Answers from your documents in one call, with no model and no download.

:func:`quickstart_answers` chains the pieces a first RAG needs: a
:class:`~genarch.data.Chunker`, a
:class:`~genarch.orchestration.bm25.BM25Retriever`, a
:class:`~genarch.orchestration.rag.RAG` and the
:class:`~genarch.orchestration.extractive.ExtractiveGenerator`. It is what
``genarch quickstart`` runs; render its results with
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

from collections.abc import Sequence

from genarch.data import Chunker
from genarch.errors import InvalidInputError
from genarch.orchestration.bm25 import BM25Retriever
from genarch.orchestration.citations import Answer, GroundedGenerator, NotFound
from genarch.orchestration.extractive import ExtractiveGenerator
from genarch.orchestration.rag import RAG
from genarch.protocols import Generator
from genarch.schemas import Document, TextRequest, TextResult
from genarch.validation import describe

#: what writes the answers: the extractive generator, or any text generator.
AnswerWriter = GroundedGenerator | Generator[TextRequest, TextResult]

__all__ = ["quickstart_answers", "quickstart_rag"]


def quickstart_answers(
    documents: Sequence[Document],
    questions: Sequence[str],
    *,
    k: int = 4,
    max_tokens: int = 128,
    generator: AnswerWriter | None = None,
) -> list[Answer | NotFound]:
    """Answer ``questions`` from ``documents`` with BM25 retrieval and extractive answers.

    No model, no download: the documents are chunked
    (:class:`~genarch.data.Chunker`), indexed with BM25, and each answer is the
    best-supported sentences of the retrieved chunks, with exact citations.
    With ``generator``, that generator writes the answers (see the module docs).

    Raises:
        InvalidInputError: bad documents or questions.

    Examples:
        >>> from genarch.data import python_docs
        >>> docs = [d for d in python_docs() if d.id in {"break", "continue", "pass"}]
        >>> [result] = quickstart_answers(docs, ["What does the pass statement do?"])
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
    rag = quickstart_rag(documents, k=k, max_tokens=max_tokens, generator=generator)
    return [rag.run(question) for question in questions]


def quickstart_rag(
    documents: Sequence[Document],
    *,
    k: int = 4,
    max_tokens: int = 128,
    generator: AnswerWriter | None = None,
) -> RAG:
    """The assistant :func:`quickstart_answers` asks: chunked, indexed, ready to ``run``.

    Args:
        documents: what to answer from.
        k: how many chunks to retrieve per question.
        max_tokens: the chunk size.
        generator: writes the answers (default: a new
            :class:`~genarch.orchestration.extractive.ExtractiveGenerator`).

    Raises:
        InvalidInputError: bad documents, or a generator without ``generate``/``compose``.
    """
    if not isinstance(documents, list | tuple):
        raise InvalidInputError(
            f"quickstart_rag expected a list of Documents, got {describe(documents)}"
        )
    chunks = list(Chunker(max_tokens=max_tokens, overlap_tokens=max_tokens // 8).process(documents))
    retriever = BM25Retriever(stopwords=()).fit(chunks)  # keywords such as 'with' matter here
    return RAG(retriever, ExtractiveGenerator() if generator is None else generator, k=k)
