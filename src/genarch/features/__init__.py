"""The feature-extraction layer: texts to fixed-size vectors.

Every extractor here is a :class:`~genarch.protocols.FeatureExtractor` of
``str``: ``extract(texts)`` takes a list of texts and returns a float32 tensor
of shape ``(len(texts), dim)``, row ``i`` depending only on ``texts[i]``.

* lexical: :class:`HashingVectorizer` (nothing to fit) and
  :class:`TfidfVectorizer` (``fit`` learns the vocabulary and IDF weights);
* learned: :class:`MeanPooledEncoder` (mean-pooled hidden states of any
  transformer; for a genarch GPT with save/load,
  :class:`~genarch.models.gpt_embeddings.GPTMeanPooledEncoder`) and
  :class:`ContrastiveSentenceEncoder` (trained on pairs mined from your corpus
  by :func:`train_on_corpus`);
* pretrained, offline: :class:`MiniLMEncoder` via :func:`load_minilm`
  (all-MiniLM-L6-v2, verified against pinned hashes; extra ``genarch[embeddings]``),
  a BERT network (:class:`BertModel`) with BERT's :class:`WordPieceTokenizer`.
"""

from genarch._deprecated import moved_module
from genarch.features.bert import BertConfig, BertModel
from genarch.features.contrastive import (
    ContrastiveEncoderConfig,
    ContrastiveSentenceEncoder,
    InfoNCE,
    TextPair,
    mine_pairs,
    train_on_corpus,
)
from genarch.features.embedding_cache import (
    CachedExtractor,
    CacheStats,
    default_embedding_cache,
    encoder_fingerprint,
    model_fingerprint,
)
from genarch.features.lexical import (
    HashingVectorizer,
    HashingVectorizerConfig,
    TfidfVectorizer,
    TfidfVectorizerConfig,
    lexical_tokens,
    stable_hash,
)
from genarch.features.minilm import (
    ALL_MINILM_L6_V2_REVISION,
    ALL_MINILM_L6_V2_SHA256,
    MiniLMEncoder,
    MiniLMEncoderConfig,
    find_minilm_directory,
    load_minilm,
)
from genarch.features.pooled import MeanPooledEncoder
from genarch.features.query_adapter import AdapterExample, QueryAdapter, fit_query_adapter
from genarch.features.wordpiece import EncodedBatch, WordPieceTokenizer, basic_tokenize

__all__ = [
    "ALL_MINILM_L6_V2_REVISION",
    "ALL_MINILM_L6_V2_SHA256",
    "AdapterExample",
    "BertConfig",
    "BertModel",
    "CacheStats",
    "CachedExtractor",
    "ContrastiveEncoderConfig",
    "ContrastiveSentenceEncoder",
    "EncodedBatch",
    "HashingVectorizer",
    "HashingVectorizerConfig",
    "InfoNCE",
    "MeanPooledEncoder",
    "MiniLMEncoder",
    "MiniLMEncoderConfig",
    "QueryAdapter",
    "TextPair",
    "TfidfVectorizer",
    "TfidfVectorizerConfig",
    "WordPieceTokenizer",
    "basic_tokenize",
    "default_embedding_cache",
    "encoder_fingerprint",
    "find_minilm_directory",
    "fit_query_adapter",
    "lexical_tokens",
    "load_minilm",
    "mine_pairs",
    "model_fingerprint",
    "stable_hash",
    "train_on_corpus",
]

# The GPT adapter moved to the models layer (features never import models).
__getattr__ = moved_module(
    __name__,
    dict.fromkeys(
        ("GPTMeanPooledEncoder", "GPTMeanPooledEncoderConfig"), "genarch.models.gpt_embeddings"
    ),
)
