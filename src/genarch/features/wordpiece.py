"""A WordPiece tokenizer that reads BERT's ``vocab.txt`` and gives BERT's token ids.

WordPiece (Schuster & Nakajima, 2012; Wu et al., 2016, "Google's Neural Machine
Translation System") is the sub-word scheme of BERT (Devlin et al., 2019) and of
the sentence-transformers models built on it. Tokenising a text takes three steps,
done here exactly as Hugging Face's ``tokenizers`` ``BertNormalizer`` +
``BertPreTokenizer`` + ``WordPiece`` model do it, so the ids match the ones the
checkpoint was trained with:

1. **Normalise.** Drop NUL, U+FFFD and control/format characters (tab, newline
   and carriage return excepted); turn every whitespace character into a space;
   put spaces around CJK ideographs (so each becomes a word of its own); if
   lower-casing: decompose (NFD), drop the combining marks (accents) and
   lower-case character by character.
2. **Pre-tokenise.** Split on whitespace, and split every punctuation character
   (ASCII symbols and Unicode's punctuation) into a word of its own.
3. **WordPiece.** Cut each word greedily into the longest vocabulary entry from
   the left, then the longest ``##``-prefixed continuation, and so on. A word
   that cannot be cut this way, or is longer than ``max_word_chars`` characters,
   becomes ``[UNK]`` as a whole.

Which character is a control, whitespace, a CJK ideograph or punctuation, and
how it decomposes and lower-cases, is read from tables measured from the
``tokenizers`` library itself (:mod:`genarch.features._bert_unicode`, made by
``scripts/make_bert_unicode_table.py``), not from Python's ``unicodedata``: the
library's Unicode data is older than Python's and differs from it (a character
it does not know, such as U+1FA77, is an ordinary character there, so its word
becomes ``[UNK]``; its CJK ranges read ``0x2B920`` where BERT's Python code reads
``0x2B820``, see :data:`CJK_RANGES`), and Python's own tables change with its
version. So the ids are the same as sentence-transformers' for every string, on
every Python.

Special tokens written in the text (``[CLS]``, ``[SEP]``, ``[MASK]``, ...) are
kept as those tokens, as the ``tokenizers`` library does. An encoded sequence is
``[CLS] pieces... [SEP]``, truncated so that it holds at most ``max_length``
ids; a batch is padded on the right with ``[PAD]`` and carries an attention mask.

WordPiece is lossy (it lower-cases and drops accents), so :meth:`decode` gives
a readable approximation and this class is *not* a
:class:`~genarch.protocols.Tokenizer`, whose contract is an exact round trip.
"""

from __future__ import annotations

import bisect
import functools
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from genarch.errors import ConfigError, IntegrityError, InvalidInputError, NotFoundError
from genarch.features import _bert_unicode as _table
from genarch.validation import describe

__all__ = ["EncodedBatch", "WordPieceTokenizer", "basic_tokenize"]

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")

# What each character is, as the peer sees it (see _bert_unicode): runs of code
# points that are not ordinary word characters, searched by their first code point.
_RANGE_STARTS = [start for start, _, _ in _table.CLASS_RANGES]
_HANGUL_FIRST, _HANGUL_LAST = 0xAC00, 0xD7A3  # syllables: decomposed by Unicode's algorithm
# The peer's CJK ideographs (BertNormalizer's is_chinese_char). These are the
# ranges of Python's BasicTokenizer except that one reads 0x2B920 where the
# other reads 0x2B820; the table holds what the peer does, so they are
# documented here and checked by the tests rather than used.
CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B920, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)


@functools.lru_cache(maxsize=8192)
def _char_class(char: str) -> int:
    code = ord(char)
    index = bisect.bisect_right(_RANGE_STARTS, code) - 1
    if index >= 0:
        _, last, kind = _table.CLASS_RANGES[index]
        if code <= last:
            return kind
    return _table.WORD


def _is_punctuation(char: str) -> bool:
    return _char_class(char) == _table.PUNCT


def _decompose(char: str) -> str:
    """The canonical decomposition (NFD) of one character, as the peer computes it."""
    code = ord(char)
    if _HANGUL_FIRST <= code <= _HANGUL_LAST:
        index = code - _HANGUL_FIRST
        lead, vowel, tail = index // 588, (index % 588) // 28, index % 28
        jamo = chr(0x1100 + lead) + chr(0x1161 + vowel)
        return jamo + chr(0x11A7 + tail) if tail else jamo
    return _table.DECOMPOSITIONS.get(char, char)


def _reorder(chars: list[str]) -> list[str]:
    """Canonical ordering: each run of combining characters sorted (stably) by class."""
    combining = _table.COMBINING
    out: list[str] = []
    run: list[str] = []
    for char in chars:
        if char in combining:
            run.append(char)
            continue
        if run:
            out.extend(sorted(run, key=combining.__getitem__) if len(run) > 1 else run)
            run = []
        out.append(char)
    if run:
        out.extend(sorted(run, key=combining.__getitem__) if len(run) > 1 else run)
    return out


def _normalize(text: str, lowercase: bool) -> str:
    """Step 1 of the module docstring: clean, space out CJK, strip accents, lower-case."""
    if text.isascii():  # the fast path: only control characters and case to handle
        if not text.isprintable():
            text = "".join(
                " " if ch in "\t\n\r" else ch for ch in text if ch.isprintable() or ch in "\t\n\r"
            )
        return text.lower() if lowercase else text
    out = []
    for char in text:
        kind = _char_class(char)
        if kind == _table.WORD or kind == _table.PUNCT:
            out.append(char)
        elif kind == _table.SPACE:
            out.append(" ")
        elif kind == _table.CJK:
            out.append(f" {char} ")
        # DROP (control and format characters, NUL, U+FFFD): nothing
    if not lowercase:
        return "".join(out)
    # NFD, drop the non-spacing marks, lower-case: each decomposed character's
    # result is in the table, and the decomposition is put in canonical order first.
    decomposed = [part for char in "".join(out) for part in _decompose(char)]
    if any(char in _table.COMBINING for char in decomposed):
        decomposed = _reorder(decomposed)
    lowered = _table.LOWERED
    return "".join([lowered.get(char, char) for char in decomposed])


def _split_punctuation(word: str) -> list[str]:
    if word.isascii() and word.isalnum():
        return [word]
    pieces: list[str] = []
    start = 0
    for index, char in enumerate(word):
        if _is_punctuation(char):
            if index > start:
                pieces.append(word[start:index])
            pieces.append(char)
            start = index + 1
    if start < len(word):
        pieces.append(word[start:])
    return pieces


def basic_tokenize(text: str, *, lowercase: bool = True) -> list[str]:
    """Steps 1 and 2: normalise ``text`` and split it into words and punctuation marks.

    Examples:
        >>> basic_tokenize("Héllo, WORLD! 北京")
        ['hello', ',', 'world', '!', '北', '京']
    """
    words: list[str] = []
    for word in _normalize(text, lowercase).split(" "):  # all whitespace is " " by now
        if not word:
            continue
        words.extend(_split_punctuation(word))
    return words


@dataclass(frozen=True)
class EncodedBatch:
    """Token ids of a batch of texts, padded on the right.

    Attributes:
        input_ids: ``(B, T)`` int64 ids; ``T`` is the longest sequence in the batch.
        attention_mask: ``(B, T)`` int64, 1 for real tokens and 0 for padding.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor


class WordPieceTokenizer:
    """BERT's tokenizer: basic tokenisation, then greedy longest-match WordPiece.

    Args:
        vocab: the vocabulary, token to id (ids ``0..len-1``); see :meth:`from_file`.
        lowercase: lower-case and strip accents (the ``uncased`` BERT models).
        max_length: the most ids an encoded sequence holds, ``[CLS]`` and ``[SEP]``
            included; longer texts are truncated.
        max_word_chars: words longer than this become ``[UNK]``.

    Raises:
        ConfigError: the vocabulary lacks a special token, its ids are not
            ``0..len-1``, or a length is smaller than it can be.

    Examples:
        >>> vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "##aff", "##able", "!"]
        >>> tokenizer = WordPieceTokenizer({token: i for i, token in enumerate(vocab)})
        >>> tokenizer.tokenize("Unaffable!")
        ['un', '##aff', '##able', '!']
        >>> tokenizer.encode("Unaffable!")
        [2, 5, 6, 7, 8, 3]
        >>> batch = tokenizer.encode_batch(["un", "unaffable"])
        >>> batch.input_ids.tolist(), batch.attention_mask.tolist()
        ([[2, 5, 3, 0, 0], [2, 5, 6, 7, 3]], [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    """

    def __init__(
        self,
        vocab: Mapping[str, int],
        *,
        lowercase: bool = True,
        max_length: int = 512,
        max_word_chars: int = 100,
    ) -> None:
        if not isinstance(vocab, Mapping) or not vocab:
            raise ConfigError(
                f"vocab must be a non-empty mapping of token to id, got {describe(vocab)}"
            )
        if sorted(vocab.values()) != list(range(len(vocab))):
            raise ConfigError(f"vocab ids must be exactly 0..{len(vocab) - 1}, each used once")
        if missing := [token for token in SPECIAL_TOKENS if token not in vocab]:
            raise ConfigError(f"vocab lacks the special token(s) {missing}")
        if not (isinstance(max_length, int) and max_length >= 2):
            raise ConfigError(
                f"max_length must be an int >= 2 (room for [CLS] and [SEP]), got {max_length!r}"
            )
        if not (isinstance(max_word_chars, int) and max_word_chars >= 1):
            raise ConfigError(f"max_word_chars must be an int >= 1, got {max_word_chars!r}")
        self.vocab: dict[str, int] = dict(vocab)
        self.lowercase = lowercase
        self.max_length = max_length
        self.max_word_chars = max_word_chars
        self._tokens = [""] * len(self.vocab)
        for token, index in self.vocab.items():
            self._tokens[index] = token
        self.pad_id, self.unk_id, self.cls_id, self.sep_id = (
            self.vocab[t] for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]")
        )
        specials = sorted((t for t in self.vocab if t in SPECIAL_TOKENS), key=len, reverse=True)
        self._special_pattern = re.compile("(" + "|".join(map(re.escape, specials)) + ")")
        # Word -> ids. Words repeat a lot (Zipf), so this makes encoding several times
        # faster; it is bounded and only ever holds pure functions' results.
        self._word_cache: dict[str, tuple[int, ...]] = {}

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], **options: int | bool) -> WordPieceTokenizer:
        """Read a BERT ``vocab.txt`` (one token per line; the line number is the id).

        Args:
            path: the vocabulary file.
            **options: ``lowercase``, ``max_length``, ``max_word_chars`` (see the class).

        Raises:
            NotFoundError: the file does not exist.
            IntegrityError: the file is not UTF-8 or repeats a token.
        """
        file = Path(path)
        if not file.is_file():
            raise NotFoundError(f"no WordPiece vocabulary at {file}")
        try:
            lines = file.read_text(encoding="utf-8").split("\n")
        except UnicodeDecodeError as error:
            raise IntegrityError(f"{file} is not UTF-8: {error}") from None
        if lines and lines[-1] == "":
            lines.pop()
        vocab = {line.rstrip("\r"): index for index, line in enumerate(lines)}
        if len(vocab) != len(lines):
            raise IntegrityError(f"{file} lists some token more than once")
        return cls(vocab, **options)  # type: ignore[arg-type]

    @property
    def vocab_size(self) -> int:
        """Number of tokens in the vocabulary."""
        return len(self.vocab)

    # ------------------------------------------------------------- tokenising

    def _word_ids(self, word: str) -> tuple[int, ...]:
        cached = self._word_cache.get(word)
        if cached is not None:
            return cached
        ids: tuple[int, ...]
        if len(word) > self.max_word_chars:
            ids = (self.unk_id,)
        else:
            found: list[int] = []
            start = 0
            while start < len(word):
                end = len(word)
                while end > start:
                    piece = word[start:end] if start == 0 else "##" + word[start:end]
                    index = self.vocab.get(piece)
                    if index is not None:
                        found.append(index)
                        break
                    end -= 1
                else:  # no piece fits: the whole word is unknown
                    found = [self.unk_id]
                    break
                start = end
            ids = tuple(found)
        if len(self._word_cache) < 1 << 18:
            self._word_cache[word] = ids
        return ids

    def _text_ids(self, text: str) -> list[int]:
        ids: list[int] = []
        for index, part in enumerate(self._special_pattern.split(text)):
            if index % 2:  # a special token written in the text
                ids.append(self.vocab[part])
                continue
            for word in basic_tokenize(part, lowercase=self.lowercase):
                ids.extend(self._word_ids(word))
        return ids

    def _check_text(self, text: object, where: str) -> str:
        if not isinstance(text, str):
            raise InvalidInputError(f"{where} expected a str, got {describe(text)}")
        return text

    def tokenize(self, text: str) -> list[str]:
        """The WordPiece tokens of ``text``, without ``[CLS]``/``[SEP]`` and not truncated.

        Raises:
            InvalidInputError: ``text`` is not a string.
        """
        text = self._check_text(text, "WordPieceTokenizer.tokenize")
        return [self._tokens[i] for i in self._text_ids(text)]

    def encode(self, text: str, *, max_length: int | None = None) -> list[int]:
        """``[CLS]`` + the ids of ``text`` + ``[SEP]``, at most ``max_length`` ids in all.

        Args:
            text: the text.
            max_length: overrides the tokenizer's ``max_length`` for this call.

        Raises:
            InvalidInputError: ``text`` is not a string or ``max_length < 2``.
        """
        text = self._check_text(text, "WordPieceTokenizer.encode")
        limit = self._limit(max_length)
        return [self.cls_id, *self._text_ids(text)[: limit - 2], self.sep_id]

    def _limit(self, max_length: int | None) -> int:
        if max_length is None:
            return self.max_length
        if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 2:
            raise InvalidInputError(f"max_length must be an int >= 2, got {describe(max_length)}")
        return max_length

    def encode_batch(self, texts: Sequence[str], *, max_length: int | None = None) -> EncodedBatch:
        """Encode every text and pad the batch on the right to its longest sequence.

        Raises:
            InvalidInputError: ``texts`` is not a sequence of strings, or is empty.
        """
        if isinstance(texts, str) or not isinstance(texts, Sequence):
            raise InvalidInputError(
                f"WordPieceTokenizer.encode_batch expected a list of str, got {describe(texts)}"
            )
        if not texts:
            raise InvalidInputError("WordPieceTokenizer.encode_batch needs at least one text")
        limit = self._limit(max_length)
        rows = []
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise InvalidInputError(
                    f"WordPieceTokenizer.encode_batch expected str items, but item {index} is {describe(text)}"
                )
            rows.append([self.cls_id, *self._text_ids(text)[: limit - 2], self.sep_id])
        width = max(map(len, rows))
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.int64)
        mask = torch.zeros((len(rows), width), dtype=torch.int64)
        for row, sequence in enumerate(rows):
            ids[row, : len(sequence)] = torch.tensor(sequence, dtype=torch.int64)
            mask[row, : len(sequence)] = 1
        return EncodedBatch(input_ids=ids, attention_mask=mask)

    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = True) -> str:
        """A readable text for ``ids``: pieces joined, ``##`` continuations glued on.

        Lossy: case, accents and the spacing around punctuation are not restored.

        Raises:
            InvalidInputError: an id outside ``range(vocab_size)``.
        """
        words: list[str] = []
        for index in ids:
            if not isinstance(index, int) or not 0 <= index < len(self._tokens):
                raise InvalidInputError(f"token id {index!r} is outside range({len(self._tokens)})")
            token = self._tokens[index]
            if skip_special_tokens and token in SPECIAL_TOKENS:
                continue
            if token.startswith("##") and words:
                words[-1] += token[2:]
            else:
                words.append(token)
        return " ".join(words)

    def __repr__(self) -> str:
        return (
            f"WordPieceTokenizer(vocab_size={self.vocab_size}, lowercase={self.lowercase}, "
            f"max_length={self.max_length})"
        )
