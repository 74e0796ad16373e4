"""Conformance checks, one module per layer.

Each ``<protocol>_checks(...)`` function returns a list of
:class:`~genarch.testing.Check`\\ s — small callables that exercise the
behaviour the protocol's docstring promises. ``check_<protocol>(...)`` runs
them all and raises :class:`~genarch.errors.ConformanceError` listing every
failure; use :func:`~genarch.testing.parametrize_with_checks` to get one
pytest test per check.

The checks call the methods: seeded determinism (with the global RNGs
scrambled between calls, so an implementation that ignores its seed is
caught), save/load round trips, batch-versus-single agreement, no state
carried between calls, and bad input raising a
:class:`~genarch.errors.GenarchError`.

One module per layer:

* :mod:`genarch.testing.checks.data` — ``DataProcessor`` and ``Tokenizer``;
* :mod:`genarch.testing.checks.features` — ``FeatureExtractor``;
* :mod:`genarch.testing.checks.generators` — ``Generator`` and its optional capabilities;
* :mod:`genarch.testing.checks.optimizers` — ``Optimizer``;
* :mod:`genarch.testing.checks.feedback` — ``FeedbackLoop``;
* :mod:`genarch.testing.checks.evaluation` — ``Evaluator``;
* :mod:`genarch.testing.checks.deployment` — ``Deployer``;
* :mod:`genarch.testing.checks.orchestration` — ``VectorStore``, ``Retriever``, ``PromptTemplate``.

The runner and the helpers every check uses are the kit core,
``genarch.testing._kit``.
"""

from genarch.testing._kit import Check, run_checks
from genarch.testing.checks.data import (
    check_data_processor,
    check_tokenizer,
    data_processor_checks,
    tokenizer_checks,
)
from genarch.testing.checks.deployment import (
    check_deployer,
    check_endpoint,
    deployer_checks,
    endpoint_checks,
)
from genarch.testing.checks.evaluation import check_evaluator, evaluator_checks
from genarch.testing.checks.features import check_feature_extractor, feature_extractor_checks
from genarch.testing.checks.feedback import check_feedback_loop, feedback_loop_checks
from genarch.testing.checks.generators import check_generator, generator_checks
from genarch.testing.checks.optimizers import check_optimizer, optimizer_checks
from genarch.testing.checks.orchestration import (
    check_prompt_template,
    check_retriever,
    check_vector_store,
    prompt_template_checks,
    retriever_checks,
    vector_store_checks,
)

__all__ = [
    "Check",
    "check_data_processor",
    "check_deployer",
    "check_endpoint",
    "check_evaluator",
    "check_feature_extractor",
    "check_feedback_loop",
    "check_generator",
    "check_optimizer",
    "check_prompt_template",
    "check_retriever",
    "check_tokenizer",
    "check_vector_store",
    "data_processor_checks",
    "deployer_checks",
    "endpoint_checks",
    "evaluator_checks",
    "feature_extractor_checks",
    "feedback_loop_checks",
    "generator_checks",
    "optimizer_checks",
    "prompt_template_checks",
    "retriever_checks",
    "run_checks",
    "tokenizer_checks",
    "vector_store_checks",
]
