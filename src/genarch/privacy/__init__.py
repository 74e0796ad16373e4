"""Privacy: private synthetic tables, their evaluation, and k-anonymity checks.

* :class:`TabularSynthesizer` (:mod:`~genarch.privacy.synthesizer`) learns a
  Bayesian network from a table and samples synthetic tables like it; with
  ``structure="privbayes", epsilon=...`` it is ε-differentially private
  (:mod:`~genarch.privacy.privbayes`, Zhang et al. 2017).
* :func:`evaluate_synthetic` (:mod:`~genarch.privacy.evaluation`) measures what
  a synthetic table keeps (marginals, associations, classifier accuracy) and
  what it leaks (distance to closest record, a membership-inference attack).
* :func:`k_anonymity` and the generalisation helpers (:mod:`~genarch.privacy.k_anonymity`).
* :class:`DPTrainer` (:mod:`~genarch.privacy.dp_sgd`) trains any one-player
  objective with DP-SGD through Opacus (``pip install "genarch[privacy]"``),
  reporting ε at δ from Opacus's accountant.

PII redaction of text stays in :mod:`genarch.data`.
"""

from genarch.privacy.discretize import ColumnCoding
from genarch.privacy.dp_sgd import DPConfig, DPTrainer, DPTrainingReport, unsupported_layers
from genarch.privacy.evaluation import SyntheticDataReport, evaluate_synthetic
from genarch.privacy.k_anonymity import (
    EquivalenceClass,
    KAnonymityReport,
    generalize_numeric,
    k_anonymity,
    suppress_rare_values,
    suppress_small_classes,
)
from genarch.privacy.privbayes import PrivacyAccount
from genarch.privacy.synthesizer import TabularSynthesizer, TabularSynthesizerConfig

__all__ = [
    "ColumnCoding",
    "DPConfig",
    "DPTrainer",
    "DPTrainingReport",
    "EquivalenceClass",
    "KAnonymityReport",
    "PrivacyAccount",
    "SyntheticDataReport",
    "TabularSynthesizer",
    "TabularSynthesizerConfig",
    "evaluate_synthetic",
    "generalize_numeric",
    "k_anonymity",
    "suppress_rare_values",
    "suppress_small_classes",
    "unsupported_layers",
]
