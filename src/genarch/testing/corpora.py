"""Noisy copies of text, for measuring near-duplicate detection.

A deduplicator is judged on copies whose edits are known: :func:`edit_words`
makes one. The tests and ``benchmarks/bench_dedup.py`` plant such copies in the
Python documentation and count how many a deduplicator finds.

Examples:
    >>> import random
    >>> edit_words("the cat sat on the mat", 0.0, random.Random(0), ["dog"])
    'the cat sat on the mat'
    >>> noisy = edit_words("the cat sat on the mat", 0.5, random.Random(1), ["dog"])
    >>> noisy != "the cat sat on the mat" and set(noisy.split()) <= {"the", "cat", "sat", "on", "mat", "dog"}
    True
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from genarch.errors import InvalidInputError

__all__ = ["edit_words"]


def edit_words(text: str, rate: float, rng: random.Random, words: Sequence[str]) -> str:
    """``text`` with each space-separated word edited with total probability ``rate``.

    An edited word is, with equal chance, deleted, replaced by a word drawn from
    ``words``, or followed by an inserted word drawn from ``words``.

    Args:
        text: the original.
        rate: in ``[0, 1]``; 0 returns ``text`` unchanged.
        rng: the source of randomness (seed it for a reproducible copy).
        words: the vocabulary substitutions and insertions draw from.

    Raises:
        InvalidInputError: ``rate`` outside ``[0, 1]``, or no ``words`` to draw
            from when ``rate`` is positive.
    """
    if not 0.0 <= rate <= 1.0:
        raise InvalidInputError(f"rate must be in [0, 1], got {rate!r}")
    if rate and not words:
        raise InvalidInputError("edit_words needs a non-empty vocabulary when rate > 0")
    out: list[str] = []
    for word in text.split(" "):
        roll = rng.random()
        if roll < rate / 3:
            continue
        if roll < 2 * rate / 3:
            out.append(rng.choice(words))
        elif roll < rate:
            out.extend((word, rng.choice(words)))
        else:
            out.append(word)
    return " ".join(out)
