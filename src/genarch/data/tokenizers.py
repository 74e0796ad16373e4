"""Split: the tokenisers are in :mod:`genarch.data.tiktoken_tokenizer` and
:mod:`genarch.data.byte_tokenizer`, ``load_tokenizer`` in
:mod:`genarch.data.tokenizer_references`, the standard encodings in
:mod:`genarch.data.tiktoken_files`; all public names are in :mod:`genarch.data`.
"""

from genarch._deprecated import moved_module

_FILES = "genarch.data.tiktoken_files"
_TIKTOKEN = "genarch.data.tiktoken_tokenizer"

__getattr__ = moved_module(
    __name__,
    {
        "ByteTokenizer": "genarch.data.byte_tokenizer",
        "ByteTokenizerConfig": "genarch.data.byte_tokenizer",
        "TiktokenTokenizer": _TIKTOKEN,
        "StandardEncodingReference": _TIKTOKEN,
        "SavedTokenizerReference": _TIKTOKEN,
        "TokenizerReference": "genarch.data.tokenizer_references",
        "load_tokenizer": "genarch.data.tokenizer_references",
        **dict.fromkeys(
            [
                "CL100K_PATTERN",
                "GPT2_PATTERN",
                "O200K_PATTERN",
                "STANDARD_ENCODINGS",
                "StandardEncoding",
                "build_encoding",
                "load_standard_encoding",
                "read_tiktoken_file",
                "standard_encoding_cache_paths",
                "write_tiktoken_file",
            ],
            _FILES,
        ),
    },
)
