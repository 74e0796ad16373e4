"""The conformance kit: check that an implementation keeps its protocol's promises.

Run it on your own components exactly as genarch runs it on its own::

    from genarch.testing import check_generator
    check_generator(MyModel(), [request_a, request_b], invalid_requests=[bad_request])

or get one pytest test per check with :func:`parametrize_with_checks`.
A broken contract raises :class:`~genarch.errors.ConformanceError` (never a
bare ``assert``, so ``python -O`` catches it too). The checks live in
:mod:`genarch.testing.checks`, one module per layer.
:func:`edit_words` makes noisy copies of text for measuring deduplication;
:func:`time_growth` measures how running time grows with input size.
Hypothesis strategies for genarch records live in
:mod:`genarch.testing.strategies` (imported separately: it needs hypothesis).
"""

from genarch.testing._compare import assert_same, same
from genarch.testing._kit import Check, run_checks
from genarch.testing._pytest import parametrize_with_checks
from genarch.testing._timing import time_growth
from genarch.testing.checks import (
    check_data_processor,
    check_deployer,
    check_endpoint,
    check_evaluator,
    check_feature_extractor,
    check_feedback_loop,
    check_generator,
    check_optimizer,
    check_prompt_template,
    check_retriever,
    check_tokenizer,
    check_vector_store,
    data_processor_checks,
    deployer_checks,
    endpoint_checks,
    evaluator_checks,
    feature_extractor_checks,
    feedback_loop_checks,
    generator_checks,
    optimizer_checks,
    prompt_template_checks,
    retriever_checks,
    tokenizer_checks,
    vector_store_checks,
)
from genarch.testing.corpora import edit_words

__all__ = [
    "Check",
    "assert_same",
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
    "edit_words",
    "endpoint_checks",
    "evaluator_checks",
    "feature_extractor_checks",
    "feedback_loop_checks",
    "generator_checks",
    "optimizer_checks",
    "parametrize_with_checks",
    "prompt_template_checks",
    "retriever_checks",
    "run_checks",
    "same",
    "time_growth",
    "tokenizer_checks",
    "vector_store_checks",
]
