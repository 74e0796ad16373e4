"""Deprecated: moved to :mod:`genarch.models.perplexity` (loss and perplexity of a language model)."""

from genarch._deprecated import moved_module

__getattr__ = moved_module(__name__, "genarch.models.perplexity")
