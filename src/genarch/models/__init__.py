"""The generative-model layer: models behind the :class:`~genarch.protocols.Generator` protocol.

Text: :class:`GPT` (a decoder-only transformer, :mod:`genarch.models.transformer`)
and :class:`TextGenerator` (its decoding engine, :mod:`genarch.models.generation`);
:func:`load_hf_gpt2` reads Hugging Face GPT-2 checkpoints; :func:`evaluate_loss`
measures loss and perplexity on held-out tokens (:mod:`genarch.models.perplexity`).

Images and latents: :class:`VAE`, :class:`GAN` and :class:`Diffusion` (with the
swappable, stateless :class:`DDPMSampler` and :class:`DDIMSampler`), each with
its training objective; :mod:`genarch.models.image_eval` scores generated
digits honestly (a classifier, digits FID, class accuracy, diversity), and
:mod:`genarch.models.pictures` writes PNG grids (needs Pillow).

Tables: :class:`BayesianNetwork` (:mod:`genarch.models.bayes`), a discrete
Bayesian network with exact inference, sampling, parameter and structure
learning (:func:`hill_climb`, :func:`chow_liu`) and BIF read/write.
"""

from genarch.models.bayes import (
    CPDAG,
    BayesianNetwork,
    BayesianNetworkConfig,
    DiscreteVariable,
    Distribution,
    MapAssignment,
    chow_liu,
    format_bif,
    hill_climb,
    parse_bif,
    random_network,
    read_bif,
    structural_hamming_distance,
    to_cpdag,
    write_bif,
)
from genarch.models.diffusion import (
    DDIMSampler,
    DDPMSampler,
    Diffusion,
    DiffusionConfig,
    DiffusionObjective,
    DiffusionRequest,
    NoiseSchedule,
    UNetDenoiser,
    guided_noise,
    quickstart_images,
    sample,
)
from genarch.models.gan import GAN, GANConfig, GANObjective
from genarch.models.generation import (
    IncrementalDetokenizer,
    PrefixCache,
    PrefixCacheStats,
    SpeculativeGenerator,
    SpeculativeResult,
    SpeculativeStats,
    TextDecodingSession,
    TextGenerator,
)
from genarch.models.hf_gpt2 import config_from_hf_gpt2, load_hf_gpt2
from genarch.models.image_eval import (
    DigitClassifier,
    DigitScores,
    DigitsEvaluator,
    classifier_accuracy,
    frechet_distance,
    train_digit_classifier,
)
from genarch.models.ngram import Interpolation, NGramLM
from genarch.models.perplexity import LossReport, evaluate_loss
from genarch.models.transformer import GPT, GPTConfig, KVCache
from genarch.models.vae import VAE, VAEConfig, VAEObjective

__all__ = [
    "CPDAG",
    "GAN",
    "GPT",
    "VAE",
    "BayesianNetwork",
    "BayesianNetworkConfig",
    "DDIMSampler",
    "DDPMSampler",
    "Diffusion",
    "DiffusionConfig",
    "DiffusionObjective",
    "DiffusionRequest",
    "DigitClassifier",
    "DigitScores",
    "DigitsEvaluator",
    "DiscreteVariable",
    "Distribution",
    "GANConfig",
    "GANObjective",
    "GPTConfig",
    "IncrementalDetokenizer",
    "Interpolation",
    "KVCache",
    "LossReport",
    "MapAssignment",
    "NGramLM",
    "NoiseSchedule",
    "PrefixCache",
    "PrefixCacheStats",
    "SpeculativeGenerator",
    "SpeculativeResult",
    "SpeculativeStats",
    "TextDecodingSession",
    "TextGenerator",
    "UNetDenoiser",
    "VAEConfig",
    "VAEObjective",
    "chow_liu",
    "classifier_accuracy",
    "config_from_hf_gpt2",
    "evaluate_loss",
    "format_bif",
    "frechet_distance",
    "guided_noise",
    "hill_climb",
    "load_hf_gpt2",
    "parse_bif",
    "quickstart_images",
    "random_network",
    "read_bif",
    "sample",
    "structural_hamming_distance",
    "to_cpdag",
    "train_digit_classifier",
    "write_bif",
]
