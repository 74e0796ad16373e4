"""The feedback layer: a durable feedback store and the policy that turns feedback into pairs.

* :class:`SQLiteFeedbackStore` — a :class:`~genarch.protocols.FeedbackLoop` in
  one SQLite file, safe for several writing processes, with pseudonymised users,
  erasure and JSONL export/import.
* :func:`preference_pairs` — explicit preferences, and corrections as
  corrected-over-original pairs, for preference optimisation.
* :class:`ReviewQueue` — outputs awaiting human review (pending → approved /
  rejected / corrected), with an append-only audit trail; its corrections
  become preferences.
* :class:`PreferenceOptimization` — DPO, conservative DPO and IPO of a policy
  against a frozen reference, over a :class:`PreferenceBatch` built by
  :func:`preference_batch`.
* :class:`RewardModel` and :class:`RewardModeling` — a Bradley-Terry reward
  head on a GPT and its objective; :func:`pairwise_accuracy`; :func:`best_of_n`
  picks the best of n seeded samples by any reward.
* :class:`GRPO` — group relative policy optimisation with a verifiable reward,
  over a :class:`GRPOBatch` of seeded sampled groups built by :func:`grpo_batch`.
* :func:`win_rate`, :func:`sampled_kl` and :func:`perplexity_change` — a
  feedback round measured: the new model's held-out win rate against the base
  under a preference, its KL to the base, and held-out perplexity.
* :class:`DriftMonitor` — are recent requests still like the training data?
  Token-histogram PSI and embedding-mean shift, flagged above thresholds in a
  :class:`DriftReport`.
"""

from genarch.feedback.drift import DriftMonitor, DriftMonitorConfig, DriftReport, TokenShift
from genarch.feedback.grpo import (
    GRPO,
    GRPOBatch,
    GRPOConfig,
    GRPOTerms,
    grpo_advantages,
    grpo_batch,
    grpo_losses,
)
from genarch.feedback.loop import (
    KLEstimate,
    PerplexityChange,
    WinRate,
    perplexity_change,
    preference_from_score,
    sampled_kl,
    win_rate,
)
from genarch.feedback.pairs import preference_pairs
from genarch.feedback.preference import (
    PreferenceBatch,
    PreferenceOptimization,
    PreferenceOptimizationConfig,
    freeze_reference,
    preference_batch,
    preference_losses,
    sequence_log_probs,
)
from genarch.feedback.review import ReviewQueue, ReviewQueueConfig
from genarch.feedback.review_records import ReviewEvent, ReviewItem, ReviewPage, ReviewState
from genarch.feedback.review_schema import REVIEW_SCHEMA_VERSION
from genarch.feedback.reward import (
    BestOfN,
    RewardModel,
    RewardModelConfig,
    RewardModeling,
    best_of_n,
    candidate_seed,
    pairwise_accuracy,
)
from genarch.feedback.schema import MIGRATIONS, SCHEMA_VERSION
from genarch.feedback.sqlite_store import (
    PSEUDONYM_PREFIX,
    SQLiteFeedbackStore,
    SQLiteFeedbackStoreConfig,
)

__all__ = [
    "GRPO",
    "MIGRATIONS",
    "PSEUDONYM_PREFIX",
    "REVIEW_SCHEMA_VERSION",
    "SCHEMA_VERSION",
    "BestOfN",
    "DriftMonitor",
    "DriftMonitorConfig",
    "DriftReport",
    "GRPOBatch",
    "GRPOConfig",
    "GRPOTerms",
    "KLEstimate",
    "PerplexityChange",
    "PreferenceBatch",
    "PreferenceOptimization",
    "PreferenceOptimizationConfig",
    "ReviewEvent",
    "ReviewItem",
    "ReviewPage",
    "ReviewQueue",
    "ReviewQueueConfig",
    "ReviewState",
    "RewardModel",
    "RewardModelConfig",
    "RewardModeling",
    "SQLiteFeedbackStore",
    "SQLiteFeedbackStoreConfig",
    "TokenShift",
    "WinRate",
    "best_of_n",
    "candidate_seed",
    "freeze_reference",
    "grpo_advantages",
    "grpo_batch",
    "grpo_losses",
    "pairwise_accuracy",
    "perplexity_change",
    "preference_batch",
    "preference_from_score",
    "preference_losses",
    "preference_pairs",
    "sampled_kl",
    "sequence_log_probs",
    "win_rate",
]
