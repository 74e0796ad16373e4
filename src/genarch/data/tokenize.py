"""Moved to :mod:`genarch.data.tokenize_stage` (the ``Tokenize`` pipeline stage)."""

from genarch._deprecated import moved_module

__getattr__ = moved_module(__name__, "genarch.data.tokenize_stage")
