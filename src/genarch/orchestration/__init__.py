"""The orchestration layer: prompt templates, example selection, chains, retrieval and RAG.

Every piece is explicit: templates insert values literally, chains are built
from named steps (no operator overloading, no coercion of functions or dicts),
and RAG answers carry citations into the source documents or say plainly that
the sources do not answer the question.
"""

from genarch._deprecated import renamed_names
from genarch.orchestration.answer_gate import (
    AnswerGate,
    CorpusTerms,
    GateExample,
    fit_answer_gate,
)
from genarch.orchestration.bm25 import (
    BM25Config,
    BM25Retriever,
)
from genarch.orchestration.chains import (
    Branch,
    Chain,
    ChainRun,
    CompositeStep,
    FunctionStep,
    MapOverBatch,
    Retry,
    Step,
    call_step,
    run_chain,
)
from genarch.orchestration.citations import (
    Answer,
    Citation,
    GroundedGenerator,
    NotFound,
    RAGResult,
    Source,
    Statement,
    format_result,
)
from genarch.orchestration.examples import (
    FixedExamples,
    LengthBudgetSelector,
    MMRExampleSelector,
    SimilarityExampleSelector,
)
from genarch.orchestration.extractive import (
    DeclineGate,
    ExtractiveConfig,
    ExtractiveGenerator,
)
from genarch.orchestration.faiss_store import (
    FaissVectorStore,
)
from genarch.orchestration.grounded_prompt import build_prompt, neutralise
from genarch.orchestration.quickstart import quickstart_answers
from genarch.orchestration.rag import RAG, RAGConfig
from genarch.orchestration.rag_evaluation import (
    LabelledQuestion,
    RAGReport,
    RetrievalReport,
    evaluate_rag,
    evaluate_retriever,
    format_table,
    gate_examples,
    load_questions,
    verify_questions,
)
from genarch.orchestration.reranking import (
    EmbeddingReranker,
    FunctionReranker,
    MMRRetriever,
    Reranker,
    RerankingRetriever,
)
from genarch.orchestration.retrievers import DenseRetriever, HybridRetriever
from genarch.orchestration.templates import ExampleSelector, FewShotTemplate, TextTemplate
from genarch.orchestration.token_budget import TokenBudget, count_tokens, trim_to_tokens
from genarch.orchestration.tracing import (
    Span,
    Trace,
    Tracer,
)
from genarch.orchestration.vectorstore import (
    ExactVectorStore,
    VectorStoreConfig,
)

__all__ = [
    "RAG",
    "Answer",
    "AnswerGate",
    "BM25Config",
    "BM25Retriever",
    "Branch",
    "Chain",
    "ChainRun",
    "Citation",
    "CompositeStep",
    "CorpusTerms",
    "DeclineGate",
    "DenseRetriever",
    "EmbeddingReranker",
    "ExactVectorStore",
    "ExampleSelector",
    "ExtractiveConfig",
    "ExtractiveGenerator",
    "FaissVectorStore",
    "FewShotTemplate",
    "FixedExamples",
    "FunctionReranker",
    "FunctionStep",
    "GateExample",
    "GroundedGenerator",
    "HybridRetriever",
    "LabelledQuestion",
    "LengthBudgetSelector",
    "MMRExampleSelector",
    "MMRRetriever",
    "MapOverBatch",
    "NotFound",
    "RAGConfig",
    "RAGReport",
    "RAGResult",
    "Reranker",
    "RerankingRetriever",
    "RetrievalReport",
    "Retry",
    "SimilarityExampleSelector",
    "Source",
    "Span",
    "Statement",
    "Step",
    "TextTemplate",
    "TokenBudget",
    "Trace",
    "Tracer",
    "VectorStoreConfig",
    "build_prompt",
    "call_step",
    "count_tokens",
    "evaluate_rag",
    "evaluate_retriever",
    "fit_answer_gate",
    "format_result",
    "format_table",
    "gate_examples",
    "load_questions",
    "neutralise",
    "quickstart_answers",
    "run_chain",
    "trim_to_tokens",
    "verify_questions",
]

# ``Sequence`` was renamed ``Chain`` (it shadowed ``typing.Sequence``); the old name warns.
__getattr__ = renamed_names(__name__, {"Sequence": ("genarch.orchestration.chains", "Chain")})
