"""The data-processing layer: turn raw text and images into clean training data.

Every processor here implements :class:`~genarch.protocols.DataProcessor`.
"""

from genarch.data.bpe import BPETrainer, BPETrainerConfig
from genarch.data.byte_tokenizer import ByteTokenizer, ByteTokenizerConfig
from genarch.data.chunking import Chunker, ChunkerConfig, count_word_pieces
from genarch.data.datasets import (
    Split,
    load_text_files,
    python_docs,
    quickstart_corpus,
    train_validation_split,
)
from genarch.data.dedup import (
    DuplicateCluster,
    DuplicateMatch,
    DuplicateReport,
    ExactDeduplicator,
    ExactDeduplicatorConfig,
    NearDeduplicator,
    NearDeduplicatorConfig,
    normalize_for_matching,
)
from genarch.data.digits import DigitSplits, LabelledData, load_digits
from genarch.data.html import HtmlToText, HtmlToTextConfig, html_to_text
from genarch.data.images import ImageNormalizer, ImageNormalizerConfig
from genarch.data.minhash import LshParameters, MinHasher, lsh_parameters
from genarch.data.pii_detection import PII_TYPES, PiiSpan, PiiType, find_pii, iban_checksum_ok
from genarch.data.pii_redaction import (
    PiiRedactor,
    PiiRedactorConfig,
    Redaction,
    deanonymize,
    redact_pii,
)
from genarch.data.point_clouds import swiss_roll, two_moons
from genarch.data.quality import (
    QualityFilter,
    QualityFilterConfig,
    QualityMeasures,
    QualityVerdict,
    measure_quality,
)
from genarch.data.report import DataReport
from genarch.data.text import TextCleaner, TextCleanerConfig, clean_text
from genarch.data.tiktoken_files import (
    STANDARD_ENCODINGS,
    load_standard_encoding,
    standard_encoding_cache_paths,
)
from genarch.data.tiktoken_tokenizer import TiktokenTokenizer
from genarch.data.token_corpus import TokenDataset, TokenFileInfo, pack_blocks, write_token_file
from genarch.data.tokenize_stage import Tokenize, TokenizeConfig, TokenizedDocument
from genarch.data.tokenizer_references import load_tokenizer

__all__ = [
    "PII_TYPES",
    "STANDARD_ENCODINGS",
    "BPETrainer",
    "BPETrainerConfig",
    "ByteTokenizer",
    "ByteTokenizerConfig",
    "Chunker",
    "ChunkerConfig",
    "DataReport",
    "DigitSplits",
    "DuplicateCluster",
    "DuplicateMatch",
    "DuplicateReport",
    "ExactDeduplicator",
    "ExactDeduplicatorConfig",
    "HtmlToText",
    "HtmlToTextConfig",
    "ImageNormalizer",
    "ImageNormalizerConfig",
    "LabelledData",
    "LshParameters",
    "MinHasher",
    "NearDeduplicator",
    "NearDeduplicatorConfig",
    "PiiRedactor",
    "PiiRedactorConfig",
    "PiiSpan",
    "PiiType",
    "QualityFilter",
    "QualityFilterConfig",
    "QualityMeasures",
    "QualityVerdict",
    "Redaction",
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
    "deanonymize",
    "find_pii",
    "html_to_text",
    "iban_checksum_ok",
    "load_digits",
    "load_standard_encoding",
    "load_text_files",
    "load_tokenizer",
    "lsh_parameters",
    "measure_quality",
    "normalize_for_matching",
    "pack_blocks",
    "python_docs",
    "quickstart_corpus",
    "redact_pii",
    "standard_encoding_cache_paths",
    "swiss_roll",
    "train_validation_split",
    "two_moons",
    "write_token_file",
]
