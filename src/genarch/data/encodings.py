"""Moved to :mod:`genarch.data.tiktoken_files` (standard tiktoken encodings, ``.tiktoken`` files)."""

from genarch._deprecated import moved_module

__getattr__ = moved_module(__name__, "genarch.data.tiktoken_files")
