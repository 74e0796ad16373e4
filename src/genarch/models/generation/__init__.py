"""Text generation with a :class:`~genarch.models.transformer.GPT`, in these parts.

* :mod:`~genarch.models.generation.generator` — :class:`TextGenerator`, the
  decoding engine: a model and a tokenizer behind genarch's
  :class:`~genarch.protocols.Generator` protocol (``TextRequest`` ->
  ``TextResult``), with streaming (:class:`~genarch.protocols.StreamingGenerator`)
  and scoring (:class:`~genarch.protocols.ScoringGenerator`);
* :mod:`~genarch.models.generation.sampling` — how one token per row is drawn
  from the logits (penalties, temperature, top-k, top-p, min-p, seeded draws);
* :mod:`~genarch.models.generation.rows` — what each request has produced so
  far and why it stopped;
* :mod:`~genarch.models.generation.detokenizer` — :class:`IncrementalDetokenizer`,
  which turns token ids into text as they arrive, holding back incomplete
  characters and possible stop strings;
* :mod:`~genarch.models.generation.prefix_cache` — :class:`PrefixCache`, which
  reuses the keys and values of prompt prefixes shared across requests;
* :mod:`~genarch.models.generation.session` — :class:`TextDecodingSession`,
  continuous batching: requests join a running batch between steps and leave
  it as they finish;
* :mod:`~genarch.models.generation.speculative` — :class:`SpeculativeGenerator`,
  a small draft model proposing tokens that the target verifies in one pass.
"""

from genarch.models.generation.detokenizer import IncrementalDetokenizer
from genarch.models.generation.generator import TextGenerator
from genarch.models.generation.prefix_cache import PrefixCache, PrefixCacheStats
from genarch.models.generation.session import TextDecodingSession
from genarch.models.generation.speculative import (
    SpeculativeGenerator,
    SpeculativeResult,
    SpeculativeStats,
)

__all__ = [
    "IncrementalDetokenizer",
    "PrefixCache",
    "PrefixCacheStats",
    "SpeculativeGenerator",
    "SpeculativeResult",
    "SpeculativeStats",
    "TextDecodingSession",
    "TextGenerator",
]
