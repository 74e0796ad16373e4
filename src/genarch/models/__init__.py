"""The generative-model layer: models behind the :class:`~genarch.protocols.Generator` protocol.

Text: :class:`GPT` (a decoder-only transformer, :mod:`genarch.models.transformer`)
and :class:`TextGenerator` (its decoding engine, :mod:`genarch.models.generation`);
:func:`load_hf_gpt2` reads Hugging Face GPT-2 checkpoints; :func:`evaluate_loss`
measures loss and perplexity on held-out tokens.
"""

from genarch.models.evaluation import LossReport, evaluate_loss
from genarch.models.generation import IncrementalDetokenizer, TextGenerator
from genarch.models.hf_gpt2 import config_from_hf_gpt2, load_hf_gpt2
from genarch.models.transformer import GPT, GPTConfig, KVCache

__all__ = [
    "GPT",
    "GPTConfig",
    "IncrementalDetokenizer",
    "KVCache",
    "LossReport",
    "TextGenerator",
    "config_from_hf_gpt2",
    "evaluate_loss",
    "load_hf_gpt2",
]
