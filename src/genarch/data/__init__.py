"""The data-processing layer: turn raw text and images into clean training data.

Every processor here implements :class:`~genarch.protocols.DataProcessor`.
"""

from genarch.data.datasets import python_docs
from genarch.data.text import TextCleaner, TextCleanerConfig, clean_text

__all__ = ["TextCleaner", "TextCleanerConfig", "clean_text", "python_docs"]
