"""The data-processing layer: turn raw text and images into clean training data.

Every processor here implements :class:`~genarch.protocols.DataProcessor`.
"""

from genarch.data.bpe import BPETrainer, BPETrainerConfig
from genarch.data.chunking import Chunker, ChunkerConfig, count_word_pieces
from genarch.data.datasets import Split, load_text_files, python_docs, train_validation_split
from genarch.data.html import HtmlToText, HtmlToTextConfig, html_to_text
from genarch.data.images import ImageNormalizer, ImageNormalizerConfig
from genarch.data.quality import (
    QualityFilter,
    QualityFilterConfig,
    QualityMeasures,
    QualityVerdict,
    measure_quality,
)
from genarch.data.report import DataReport
from genarch.data.text import TextCleaner, TextCleanerConfig, clean_text
from genarch.data.tokenizers import (
    STANDARD_ENCODINGS,
    ByteTokenizer,
    ByteTokenizerConfig,
    TiktokenTokenizer,
    load_standard_encoding,
    load_tokenizer,
    standard_encoding_cache_paths,
)
from genarch.data.tokenize import Tokenize, TokenizeConfig, TokenizedDocument
from genarch.data.tokens import TokenDataset, TokenFileInfo, pack_blocks, write_token_file

__all__ = [
    "STANDARD_ENCODINGS",
    "BPETrainer",
    "BPETrainerConfig",
    "ByteTokenizer",
    "ByteTokenizerConfig",
    "Chunker",
    "ChunkerConfig",
    "DataReport",
    "HtmlToText",
    "HtmlToTextConfig",
    "ImageNormalizer",
    "ImageNormalizerConfig",
    "QualityFilter",
    "QualityFilterConfig",
    "QualityMeasures",
    "QualityVerdict",
    "Split",
    "TextCleaner",
    "TextCleanerConfig",
    "TiktokenTokenizer",
    "TokenDataset",
    "TokenFileInfo",
    "Tokenize",
    "TokenizeConfig",
    "TokenizedDocument",
    "clean_text",
    "count_word_pieces",
    "html_to_text",
    "load_standard_encoding",
    "load_text_files",
    "load_tokenizer",
    "measure_quality",
    "pack_blocks",
    "python_docs",
    "standard_encoding_cache_paths",
    "train_validation_split",
    "write_token_file",
]
