"""The feedback layer: a durable feedback store and the policy that turns feedback into pairs.

* :class:`SQLiteFeedbackStore` — a :class:`~genarch.protocols.FeedbackLoop` in
  one SQLite file, safe for several writing processes, with pseudonymised users,
  erasure and JSONL export/import.
* :func:`preference_pairs` — explicit preferences, and corrections as
  corrected-over-original pairs, for preference optimisation.
"""

from genarch.feedback.pairs import preference_pairs
from genarch.feedback.schema import MIGRATIONS, SCHEMA_VERSION
from genarch.feedback.sqlite_store import (
    PSEUDONYM_PREFIX,
    SQLiteFeedbackStore,
    SQLiteFeedbackStoreConfig,
)

__all__ = [
    "MIGRATIONS",
    "PSEUDONYM_PREFIX",
    "SCHEMA_VERSION",
    "SQLiteFeedbackStore",
    "SQLiteFeedbackStoreConfig",
    "preference_pairs",
]
