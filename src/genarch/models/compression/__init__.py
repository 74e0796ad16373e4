"""Model compression: weight-only quantisation and pruning of a :class:`~genarch.models.GPT`.

* :func:`quantize` — int8 (per channel) or int4 (per group) weights for every
  linear layer, run by FBGEMM's dynamic int8 GEMM (``activations="dynamic"``,
  the fastest on x86) or PyTorch's weight-only kernels, saved and loaded with
  the model (:mod:`genarch.models.compression.quantize`).
* :func:`prune_magnitude` — unstructured magnitude pruning (zeros in place;
  smaller files once compressed, no faster matmuls), :func:`sparsity` reports it.
* :func:`prune_structured` — removes whole attention heads and MLP channels,
  returning a smaller model with a smaller config (faster, and it saves and
  loads as any GPT); :func:`recover` fine-tunes a pruned model briefly.

Prune first, then quantise (:func:`quantize` accepts a pruned model).
"""

from genarch.models.compression.prune import (
    PruningMasks,
    SparsityReport,
    prune_magnitude,
    prune_structured,
    recover,
    sparsity,
)
from genarch.models.compression.quantize import (
    QuantizationConfig,
    QuantizedLinear,
    quantization_of,
    quantize,
)

__all__ = [
    "PruningMasks",
    "QuantizationConfig",
    "QuantizedLinear",
    "SparsityReport",
    "prune_magnitude",
    "prune_structured",
    "quantization_of",
    "quantize",
    "recover",
    "sparsity",
]
