"""Moved to :mod:`genarch.orchestration.rag_evaluation` (one of three modules called ``evaluation``)."""

from genarch._deprecated import moved_module

__getattr__ = moved_module(__name__, "genarch.orchestration.rag_evaluation")
