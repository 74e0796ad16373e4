"""Moved to :mod:`genarch.data.token_corpus` (token files, packing, ``TokenDataset``)."""

from genarch._deprecated import moved_module

__getattr__ = moved_module(__name__, "genarch.data.token_corpus")
