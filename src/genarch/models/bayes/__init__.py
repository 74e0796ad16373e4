"""Discrete Bayesian networks: structure, CPTs, exact inference, sampling, learning, BIF.

:class:`BayesianNetwork` (:mod:`~genarch.models.bayes.network`) holds the DAG and
its tables; :mod:`~genarch.models.bayes.inference` does variable elimination,
MAP and sampling; :mod:`~genarch.models.bayes.learning` estimates the tables
from rows; :mod:`~genarch.models.bayes.bif` reads and writes the BIF format that
pgmpy and bnlearn exchange; :mod:`~genarch.models.bayes.structure` learns the
graph (hill climbing, Chow-Liu); :mod:`~genarch.models.bayes.cpdag` compares
graphs up to Markov equivalence (CPDAG, structural Hamming distance);
:mod:`~genarch.models.bayes.random_networks` draws seeded random networks.
"""

from genarch.models.bayes.bif import format_bif, parse_bif, read_bif, write_bif
from genarch.models.bayes.cpdag import CPDAG, structural_hamming_distance, to_cpdag
from genarch.models.bayes.network import (
    BayesianNetwork,
    BayesianNetworkConfig,
    DiscreteVariable,
    Distribution,
    MapAssignment,
)
from genarch.models.bayes.random_networks import random_network
from genarch.models.bayes.structure import chow_liu, hill_climb

__all__ = [
    "CPDAG",
    "BayesianNetwork",
    "BayesianNetworkConfig",
    "DiscreteVariable",
    "Distribution",
    "MapAssignment",
    "chow_liu",
    "format_bif",
    "hill_climb",
    "parse_bif",
    "random_network",
    "read_bif",
    "structural_hamming_distance",
    "to_cpdag",
    "write_bif",
]
