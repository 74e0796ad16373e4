"""Byte-level BPE training that emits a :class:`tiktoken.Encoding`.

:class:`BPETrainer` learns merges the way GPT-2/GPT-4 tokenisers were built
(Sennrich et al., 2016, "Neural Machine Translation of Rare Words with Subword
Units"; Radford et al., 2019, byte-level variant): text is split into words by a
regex pre-tokeniser, each word starts as its UTF-8 bytes, and the most frequent
adjacent pair is merged into a new token until the vocabulary is full. The
result is a ranks table (``bytes -> rank``) that tiktoken encodes with at
native speed, so a trained tokeniser is a plain tiktoken ``Encoding``.

The algorithm is the efficient one, not the textbook rescan:

* words are counted once; training works on the *unique* words with their counts;
* pair counts are kept in a dict and updated incrementally — only the words that
  contain the merged pair are touched (found through a pair -> words index);
* the best pair comes from a lazy max-heap: stale entries (whose count has since
  dropped) are detected when popped and pushed back with their current count.

Ties between equally frequent pairs go to the pair whose merged bytes are
smallest (lexicographic on the two parts' bytes), so training is deterministic
and independent of dictionary order.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Annotated, Self

import regex
from pydantic import Field, model_validator

from genarch.configured import Configured
from genarch.data.tiktoken_files import CL100K_PATTERN, empty_match_problem
from genarch.data.tiktoken_tokenizer import TiktokenTokenizer
from genarch.errors import InvalidInputError
from genarch.schemas import Config, Document
from genarch.validation import describe, ensure_iterable

__all__ = [
    "BPETrainer",
    "BPETrainerConfig",
    "train_bpe_ranks",
]

logger = logging.getLogger(__name__)

_BYTES = 256


class BPETrainerConfig(Config):
    """Settings of :class:`BPETrainer`.

    Attributes:
        vocab_size: the size of the finished vocabulary, *including* the 256
            single bytes and the special tokens. Training stops earlier when no
            pair occurs ``min_frequency`` times any more.
        pattern: the regex (``regex`` module syntax) that splits text into
            words before BPE; merges never cross a word boundary.
        special_tokens: control tokens (``"<|endoftext|>"``) that get the ids
            right after the merged tokens, in this order. Their text in the
            training corpus is cut out, never learned as ordinary text.
        min_frequency: a pair must occur at least this often to be merged.
        name: the name of the produced encoding.
    """

    vocab_size: Annotated[int, Field(ge=_BYTES, le=1_000_000)] = 4096
    pattern: Annotated[str, Field(min_length=1)] = CL100K_PATTERN
    special_tokens: tuple[Annotated[str, Field(min_length=1)], ...] = ("<|endoftext|>",)
    min_frequency: Annotated[int, Field(ge=1)] = 2
    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")] = "genarch_bpe"

    @model_validator(mode="after")
    def _fits(self) -> Self:
        if len(set(self.special_tokens)) != len(self.special_tokens):
            raise ValueError(f"special_tokens must be distinct, got {self.special_tokens!r}")
        smallest = _BYTES + len(self.special_tokens)
        if self.vocab_size < smallest:
            raise ValueError(
                f"vocab_size must be at least 256 (one token per byte) + "
                f"{len(self.special_tokens)} special token(s) = {smallest}, got {self.vocab_size}"
            )
        try:
            regex.compile(self.pattern)
        except regex.error as error:
            raise ValueError(f"pattern is not a valid regex: {error}") from None
        problem = empty_match_problem(self.pattern)
        if problem is not None:
            raise ValueError(problem)
        return self


def _count_words(
    texts: Iterable[str | Document],
    pattern: regex.Pattern[str],
    specials: regex.Pattern[str] | None,
) -> tuple[Counter[bytes], int]:
    """Count pre-tokenised words (as UTF-8 bytes) over all texts; also return the text count."""
    counts: Counter[str] = Counter()
    number = 0
    for index, item in enumerate(ensure_iterable(texts, "BPETrainer.train")):
        if isinstance(item, str):
            text = item
        elif isinstance(item, Document):
            text = item.text
        else:
            raise InvalidInputError(
                f"BPETrainer.train expected texts of type str (or Documents), but item {index} "
                f"is {describe(item)}"
            )
        number += 1
        pieces = specials.split(text) if specials is not None else (text,)
        for piece in pieces:
            counts.update(pattern.findall(piece))
    encoded: Counter[bytes] = Counter()
    for word, count in counts.items():
        try:
            encoded[word.encode("utf-8")] += count
        except UnicodeEncodeError:
            raise InvalidInputError(
                f"BPETrainer.train got text that is not valid Unicode (a lone surrogate in "
                f"{word!r}); decode your data with errors='replace' or 'strict' first"
            ) from None
    return encoded, number


def train_bpe_ranks(
    word_counts: Mapping[bytes, int], num_merges: int, *, min_frequency: int = 2
) -> dict[bytes, int]:
    """Learn up to ``num_merges`` byte-pair merges from word counts.

    Args:
        word_counts: each pre-tokenised word (UTF-8 bytes) and how often it occurs.
        num_merges: the most merges to learn.
        min_frequency: stop when the best pair occurs fewer times than this.

    Returns:
        tiktoken's mergeable ranks: the 256 single bytes at ranks 0-255, then one
        token per merge in the order learned.

    Examples:
        >>> ranks = train_bpe_ranks({b"hello": 3, b"help": 2}, 3)
        >>> [token for token, rank in ranks.items() if rank >= 256]
        [b'el', b'hel', b'hell']
    """
    # Token ids during training equal final ranks: bytes first, merges appended.
    token_bytes: list[bytes] = [bytes([b]) for b in range(_BYTES)]
    words: list[list[int]] = []
    freqs: list[int] = []
    for spelling, count in word_counts.items():
        if len(spelling) > 1 and count > 0:
            words.append(list(spelling))
            freqs.append(count)

    pair_counts: dict[tuple[int, int], int] = {}
    where: dict[tuple[int, int], set[int]] = {}
    for index, (word, freq) in enumerate(zip(words, freqs, strict=True)):
        for pair in itertools.pairwise(word):
            pair_counts[pair] = pair_counts.get(pair, 0) + freq
            holders = where.get(pair)
            if holders is None:
                where[pair] = {index}
            else:
                holders.add(index)

    # Heap entries: (-count, left bytes, right bytes, pair). The bytes make ties
    # deterministic; the pair is what we merge.
    heap = [
        (-count, token_bytes[a], token_bytes[b], (a, b)) for (a, b), count in pair_counts.items()
    ]
    heapq.heapify(heap)

    known: dict[bytes, int] = {token: rank for rank, token in enumerate(token_bytes)}
    merges = 0
    while merges < num_merges:
        best: tuple[int, int] | None = None
        while heap:
            negative, _left, _right, pair = heapq.heappop(heap)
            current = pair_counts.get(pair, 0)
            if current == -negative:
                best = pair
                break
            if current > 0:  # stale: its count dropped since it was pushed
                heapq.heappush(heap, (-current, _left, _right, pair))
        if best is None or pair_counts[best] < min_frequency:
            break
        a, b = best
        merged_bytes = token_bytes[a] + token_bytes[b]
        existing = known.get(merged_bytes)
        if existing is None:
            # A new token. (Rarely, two different pairs spell the same bytes —
            # "ab"+"c" and "a"+"bc"; the second merge then reuses the first's id.)
            new = len(token_bytes)
            token_bytes.append(merged_bytes)
            known[merged_bytes] = new
            merges += 1
        else:
            new = existing
        born: dict[tuple[int, int], int] = {}
        for index in where.pop(best):
            word = words[index]
            merged = _merge(word, a, b, new)
            if merged is None:  # the index is lazy: this word no longer holds the pair
                continue
            freq = freqs[index]
            for pair in itertools.pairwise(word):
                left = pair_counts[pair] - freq
                if left:
                    pair_counts[pair] = left
                else:
                    del pair_counts[pair]
            for pair in itertools.pairwise(merged):
                pair_counts[pair] = pair_counts.get(pair, 0) + freq
                if new in pair:
                    born[pair] = born.get(pair, 0) + freq
                    holders = where.get(pair)
                    if holders is None:
                        where[pair] = {index}
                    else:
                        holders.add(index)
            words[index] = merged
        # Only pairs with the new token gained counts; every other change was a
        # decrease, which the lazy heap notices when it pops the entry.
        for pair in born:
            heapq.heappush(
                heap, (-pair_counts[pair], token_bytes[pair[0]], token_bytes[pair[1]], pair)
            )
    return {token: rank for rank, token in enumerate(token_bytes)}


def _merge(word: list[int], a: int, b: int, new: int) -> list[int] | None:
    """``word`` with every ``a b`` (left to right) replaced by ``new``; None if it has none."""
    out: list[int] = []
    i, n, found = 0, len(word) - 1, False
    while i < n:
        token = word[i]
        if token == a and word[i + 1] == b:
            out.append(new)
            i += 2
            found = True
        else:
            out.append(token)
            i += 1
    if not found:
        return None
    if i == n:  # the last token was not part of a merge
        out.append(word[n])
    return out


class BPETrainer(Configured[BPETrainerConfig]):
    """Trains a byte-level BPE tokeniser and returns it as a tiktoken encoding.

    Args:
        config: a :class:`BPETrainerConfig`; keyword arguments are shorthand for
            its fields.

    Raises:
        ConfigError: both a config and fields, or invalid fields.

    Examples:
        >>> trainer = BPETrainer(vocab_size=300, special_tokens=("<|endoftext|>",))
        >>> tokenizer = trainer.train(["low lower lowest"] * 20 + ["new newer newest"] * 20)
        >>> tokenizer.decode(tokenizer.encode("lowest newer"))
        'lowest newer'
        >>> len(tokenizer.encode("lowest")) < len("lowest".encode())
        True
    """

    def train_ranks(self, texts: Iterable[str | Document]) -> dict[bytes, int]:
        """Learn the mergeable ranks (``bytes -> rank``) from ``texts``.

        Raises:
            InvalidInputError: ``texts`` is not an iterable of str or Documents, is empty, or
                contains no text to learn from.
        """
        config = self.config
        pattern = regex.compile(config.pattern)
        specials = (
            regex.compile("|".join(regex.escape(s) for s in config.special_tokens))
            if config.special_tokens
            else None
        )
        word_counts, number = _count_words(texts, pattern, specials)
        if number == 0 or not word_counts:
            raise InvalidInputError(
                f"BPETrainer.train needs at least one non-empty text, got "
                f"{number} text(s) with no words in them"
            )
        num_merges = config.vocab_size - _BYTES - len(config.special_tokens)
        ranks = train_bpe_ranks(word_counts, num_merges, min_frequency=config.min_frequency)
        learned = len(ranks) - _BYTES
        if learned < num_merges:
            logger.info(
                "BPETrainer stopped after %d of %d merges: no pair occurs %d times any more",
                learned,
                num_merges,
                config.min_frequency,
            )
        return ranks

    def train(self, texts: Iterable[str | Document]) -> TiktokenTokenizer:
        """Learn a vocabulary from ``texts`` and return it as a tokeniser.

        The special tokens get the ids right after the learned tokens. The
        vocabulary is ``config.vocab_size`` unless the corpus ran out of pairs
        that occur ``min_frequency`` times (then it is smaller; logged at INFO).

        Raises:
            InvalidInputError: ``texts`` is not an iterable of str or Documents, is empty, or
                contains no text to learn from.
        """
        ranks = self.train_ranks(texts)
        config = self.config
        specials = {token: len(ranks) + i for i, token in enumerate(config.special_tokens)}
        return TiktokenTokenizer.from_ranks(
            ranks, pattern=config.pattern, special_tokens=specials, name=config.name
        )
