"""Weight-only quantisation of a :class:`~genarch.models.GPT`: int8 per channel, int4 per group.

:func:`quantize` replaces every ``nn.Linear`` of the transformer blocks (and,
if asked, the output layer) by a :class:`QuantizedLinear`, which stores

* ``int8``: symmetric per-output-channel weights, ``w ≈ scale[n] * q[n, k]``
  with ``q`` in ``[-127, 127]`` and ``scale[n] = max|w[n, :]| / 127``;
* ``int4``: asymmetric weights per group of ``group_size`` input channels,
  ``w ≈ scale[n, g] * (q[n, k] - 8) + zero[n, g]`` with ``q`` in ``[0, 15]``,
  ``scale = (max - min) / 15`` and ``zero = min + 8 * scale`` (the layout of
  PyTorch's CPU int4 kernel; two values per byte when saved).

The matrix products run in PyTorch's CPU kernels for these layouts:
``torch._weight_int8pack_mm`` (int8 weights, fp32 activations) and
``torch._weight_int4pack_mm_for_cpu`` (int4 weights packed once by
``aten._convert_weight_to_int4pack_for_cpu``). With ``activations="dynamic"``
an int8 layer instead runs FBGEMM's dynamic int8 GEMM
(``quantized::linear_dynamic``): each call quantises its input per tensor
(7-bit range, safe on CPUs without VNNI) and multiplies int8 by int8. Which is
faster depends on the CPU; ``benchmarks/bench_generate.py`` measures both.

Tolerance: a quantised layer's output differs from the fp32 layer's by at most
``sum_k |x_k| * max_err(w_k)`` where ``max_err`` is half a quantisation step
(``scale / 2``); the tests check ``|y - y_fp32| <= 0.01 * |x| |w|`` per row for
int8 and ``0.1 *`` for int4, and the dynamic kernel adds the activations'
rounding (about ``|x|_max / 127`` per element).

A quantised model saves and loads through :meth:`GPT.save <genarch.models.GPT.save>`
/ :meth:`GPT.load <genarch.models.GPT.load>`: ``config.json`` gains a
``"quantization"`` field (a :class:`QuantizationConfig`) from which the load
rebuilds the quantised layers before reading ``model.safetensors`` (the int8 or
packed int4 values with their scales).

Example:
    >>> import torch
    >>> from genarch.models import GPT
    >>> torch.manual_seed(0) and None
    >>> model = GPT(vocab_size=64, context_length=16, n_layer=1, n_head=2, n_embd=64).eval()
    >>> small = quantize(GPT(model.config).eval(), scheme="int8")
    >>> type(small.blocks[0].mlp.up).__name__, small.blocks[0].mlp.up.qweight.dtype
    ('QuantizedLinear', torch.int8)
"""

from __future__ import annotations

from torch import nn

from genarch.errors import ConfigError, InvalidInputError
from genarch.models.compression.layers import (
    _ATTRIBUTE,
    INT4_GROUP_SIZES,
    QuantizationConfig,
    QuantizedLinear,
    _linear_layers,
    check_layer_fits,
    linear_kernel,
    quantization_of,
    quantized_layout,
)
from genarch.models.transformer import GPT
from genarch.validation import describe

__all__ = [
    "INT4_GROUP_SIZES",
    "QuantizationConfig",
    "QuantizedLinear",
    "linear_kernel",
    "quantization_of",
    "quantize",
    "quantized_layout",
]


def quantize(
    model: GPT,
    scheme: str = "int8",
    *,
    group_size: int | None = None,
    activations: str = "none",
    include_embeddings: bool = False,
    include_lm_head: bool = True,
) -> GPT:
    """Replace ``model``'s linear layers by :class:`QuantizedLinear` ones, in place; returns it.

    Args:
        model: a trained :class:`~genarch.models.GPT` (genarch's, or one
            imported by :func:`~genarch.models.load_hf_gpt2`), not yet quantised.
        scheme: ``"int8"`` or ``"int4"``.
        group_size: input channels per int4 scale (default 64; one of 32, 64,
            128, 256, dividing every layer's input width). Not for int8.
        activations: ``"none"`` (weight-only) or ``"dynamic"`` (int8 weights
            only: inputs quantised per call, FBGEMM's int8 GEMM).
        include_embeddings: must be False: the embedding tables are lookups of
            one row per token, so quantising them would shrink the file but not
            the decoding time, and is not implemented.
        include_lm_head: quantise the output layer too (with tied embeddings
            it gets its own quantised copy; the token table stays fp32).

    Returns:
        ``model``, now in eval mode, its config carrying the
        :class:`QuantizationConfig` (:func:`quantization_of`).

    Raises:
        InvalidInputError: not a GPT, already quantised, an unknown scheme or
            activation mode, a bad group size, or ``include_embeddings=True``.
    """
    if not isinstance(model, GPT):
        raise InvalidInputError(f"quantize expected a GPT model, got {describe(model)}")
    if quantization_of(model) is not None:
        raise InvalidInputError("the model is already quantised; quantise the fp32 model")
    if scheme not in ("int8", "int4"):
        raise InvalidInputError(
            f"scheme must be 'int8' or 'int4' (8 or 4 bits), got {describe(scheme)}"
        )
    if include_embeddings:
        raise InvalidInputError(
            "include_embeddings=True is not supported: embedding tables are read one row "
            "per token, so int8 tables would not speed decoding up; pass False"
        )
    if scheme == "int4" and group_size is None:
        group_size = 64
    if group_size is not None and (
        isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1
    ):
        raise InvalidInputError(f"group_size must be a positive int, got {describe(group_size)}")
    try:
        config = QuantizationConfig(
            scheme=scheme,
            group_size=group_size,
            activations=activations,
            lm_head=include_lm_head,
        )
    except ConfigError as error:
        raise InvalidInputError(f"quantize: {error}") from None
    targets = _linear_layers(model, config)
    for name, layer in targets.items():  # check every layer before changing any
        if not isinstance(layer, nn.Linear):
            raise InvalidInputError(f"{name} is a {type(layer).__name__}, not an nn.Linear")
        check_layer_fits(layer.in_features, config, name + ".in_features")
    for name, layer in targets.items():
        assert isinstance(layer, nn.Linear)
        model.set_submodule(name, QuantizedLinear.from_linear(layer, config))
    setattr(model, _ATTRIBUTE, config)
    return model.eval()
