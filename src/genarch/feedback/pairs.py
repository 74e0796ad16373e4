"""Preference pairs from stored feedback: the policy, kept out of the store."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from genarch.errors import InvalidInputError
from genarch.schemas import Correction, Preference, Rating, StoredFeedback

__all__ = ["preference_pairs"]


def preference_pairs(
    records: Iterable[StoredFeedback | Rating | Correction | Preference],
) -> Iterator[Preference]:
    """The preference pairs that ``records`` state, in order.

    A :class:`~genarch.schemas.Preference` is a pair as it is; a
    :class:`~genarch.schemas.Correction` becomes *corrected over original*
    (with the correction's prompt, model, response, user, time and metadata);
    a :class:`~genarch.schemas.Rating` alone states no pair and is skipped.

    Args:
        records: feedback, bare or as a store returns it (``store.scan()``).

    Returns:
        An iterator of preferences (lazy: it reads ``records`` as it goes).

    Raises:
        InvalidInputError: an item is not feedback.

    Example:
        >>> from genarch.schemas import Correction
        >>> [pair] = preference_pairs([Correction(prompt="2+2?", output="5", corrected="4")])
        >>> (pair.chosen, pair.rejected)
        ('4', '5')
    """
    for index, record in enumerate(records):
        feedback = record.feedback if isinstance(record, StoredFeedback) else record
        if isinstance(feedback, Preference):
            yield feedback
        elif isinstance(feedback, Correction):
            shared = feedback.model_dump(exclude={"kind", "output", "corrected"})
            yield Preference(**shared, chosen=feedback.corrected, rejected=feedback.output)
        elif not isinstance(feedback, Rating):
            raise InvalidInputError(
                f"preference_pairs: item {index} is {type(record).__name__}, not feedback"
            )
