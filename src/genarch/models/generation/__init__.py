"""Text generation with a :class:`~genarch.models.transformer.GPT`, in four parts.

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
  characters and possible stop strings.
"""

from genarch.models.generation.detokenizer import IncrementalDetokenizer
from genarch.models.generation.generator import TextGenerator

__all__ = ["IncrementalDetokenizer", "TextGenerator"]
