"""Evaluators: scores for generated outputs, each deterministic and documented.

Every evaluator implements :class:`~genarch.protocols.Evaluator` —
``evaluate(request, result) -> Evaluation`` — and passes
:func:`genarch.testing.check_evaluator`. What ``request`` and ``result`` are
depends on the evaluator (its docstring says); scores are higher-is-better
unless documented (perplexity, self-BLEU and the toxicity flag are lower-is-better).

* overlap with references — :class:`BLEU` (equal to ``sacrebleu``),
  :class:`RougeL` (equal to ``rouge-score``), :class:`ExactMatch` and
  :class:`TokenF1` (SQuAD);
* fluency — :class:`Perplexity` under any :class:`~genarch.protocols.ScoringGenerator`;
* diversity of a set of outputs — :class:`DistinctN`, :class:`SelfBLEU`;
* RAG — :class:`Groundedness` (groundedness and citation precision),
  :class:`AnswerRelevance` (embedding similarity);
* safety screens — :class:`LexiconToxicity` (a crude word-list flag) and
  :class:`CounterfactualAudit` (a bias audit over generated outputs, not an evaluator);
* aggregation — :class:`EvaluationReport` (table, bootstrap intervals, PNG plot),
  :func:`bootstrap_mean`.

The concept page, ``docs/concepts/evaluation.md``, gives each definition and its limits.
"""

from genarch.evaluation._text import rouge_tokens, squad_normalize, tokenize_13a
from genarch.evaluation.bias import (
    BiasAuditReport,
    CounterfactualAudit,
    CounterfactualAuditConfig,
    CounterfactualPair,
    load_term_pairs,
    swap_terms,
)
from genarch.evaluation.bleu import BLEU, BLEUConfig
from genarch.evaluation.bootstrap import bootstrap_mean
from genarch.evaluation.diversity import DistinctN, DistinctNConfig, SelfBLEU, SelfBLEUConfig
from genarch.evaluation.perplexity import Perplexity
from genarch.evaluation.qa import ExactMatch, SQuADConfig, TokenF1
from genarch.evaluation.rag import Groundedness, GroundednessConfig
from genarch.evaluation.relevance import AnswerRelevance
from genarch.evaluation.report import EvaluationReport
from genarch.evaluation.rouge import RougeL, RougeLConfig
from genarch.evaluation.toxicity import (
    LexiconToxicity,
    LexiconToxicityConfig,
    load_toxicity_lexicon,
)

__all__ = [
    "BLEU",
    "AnswerRelevance",
    "BLEUConfig",
    "BiasAuditReport",
    "CounterfactualAudit",
    "CounterfactualAuditConfig",
    "CounterfactualPair",
    "DistinctN",
    "DistinctNConfig",
    "EvaluationReport",
    "ExactMatch",
    "Groundedness",
    "GroundednessConfig",
    "LexiconToxicity",
    "LexiconToxicityConfig",
    "Perplexity",
    "RougeL",
    "RougeLConfig",
    "SQuADConfig",
    "SelfBLEU",
    "SelfBLEUConfig",
    "TokenF1",
    "bootstrap_mean",
    "load_term_pairs",
    "load_toxicity_lexicon",
    "rouge_tokens",
    "squad_normalize",
    "swap_terms",
    "tokenize_13a",
]
