"""Quantisation of a :class:`~genarch.models.GPT`: int8 per channel, int4 per group.

:func:`quantize` replaces every ``nn.Linear`` of the transformer blocks (and,
if asked, the output layer) by a :class:`QuantizedLinear`, which stores

* ``int8``: symmetric per-output-channel weights, ``w ≈ scale[n] * q[n, k]``
  with ``q`` in ``[-127, 127]`` and ``scale[n] = max|w[n, :]| / 127``;
* ``int4``: 4-bit values ``q`` in ``[0, 15]`` (two per byte) per group of
  ``group_size`` input channels, ``w ≈ scale[n] * (multiplier[n, g] * (q - 8)
  + offset[n, g])``: each group's 16 levels sit on its row's int8 grid
  (``scale[n] = max|w[n, :]| / 127``), ``multiplier`` (1 to 17) apart and
  centred by ``offset`` (an int8), the multiplier chosen per group for the
  least squared error. Every int4 weight is therefore an int8 value exactly,
  and the group scales cost 2 bytes per group (4.25 bits per weight at group 64,
  plus one fp32 scale per row). Its error is that of free fp32 group scales
  or lower (measured relative RMS error 0.116 against 0.118 for asymmetric
  fp32 scales on heavy-tailed Student-t weights, 0.087 against 0.090 on
  Gaussian ones, group 64).

Which kernel runs (``activations``):

* ``"dynamic"``: FBGEMM's int8 x int8 GEMM on the int8 values (for int4,
  widened once when the kernel is made, so the product uses exactly the stored
  weights). Each call quantises its input per row: a row is divided by its
  largest magnitude and rounded to a fixed step (8 bits with VNNI, about 7 without;
  :mod:`genarch._int8`), so every row keeps its own precision and a row's
  result does not depend on the other rows of its batch — a request gets the
  same tokens alone and batched with others.
* ``"none"`` (weight-only, fp32 activations): ``torch._weight_int8pack_mm``
  for int8 and ``torch._weight_int4pack_mm_for_cpu`` (weights packed once by
  ``aten._convert_weight_to_int4pack_for_cpu``) for int4.

Measured on the benchmark machine (AMD EPYC with AVX-512 VNNI and BF16, no
AMX; PyTorch 2.13, 2 threads, shared with other jobs at load average 0.4):
``python benchmarks/bench_generate.py --quick --only-kernels`` times all the
matrix products of one decoding step of its model (6 blocks 384 wide and a
384 x 8192 output layer), in microseconds at batch 1 / batch 8: fp32
``F.linear`` 2605 / 4017, int8 dynamic (FBGEMM) 620 / 1899, int4 dynamic 616 /
1902, ``_weight_int8pack_mm`` 8061 / 51039, ``_weight_int4pack_mm_for_cpu``
12413 / 99894. A scratch timing of the other candidates at batch 1 (load
average 0.7) gave FBGEMM fp16 weights 775, bf16 ``F.linear`` 3335 and
``aten._dyn_quant_matmul_4bit`` (a reference loop on x86; its KleidiAI kernels
are for Arm) 28570, against 505 for FBGEMM int8 and 1420 for fp32. No kernel
here reads 4-bit weights faster than FBGEMM reads 8-bit ones on this CPU, so int4 is
the *stored* format (file and download size, a quarter of fp32 and about half
of int8) and ``activations="dynamic"`` runs it at int8 speed. Run-time memory
is then the saved int4 buffers plus FBGEMM's packed int8 copy (about 1.5 bytes
per weight; int8 dynamic holds about 2, fp32 4):
:meth:`QuantizedLinear.runtime_bytes` says how much.

Tolerance: a quantised layer's output differs from the fp32 layer's by at most
``sum_k |x_k| * max_err(w_k)`` where ``max_err`` is half a quantisation step;
the tests check ``|y - y_fp32| <= 0.01 * |x| |w|`` per row for int8 and
``0.1 *`` for int4, that a kernel multiplies exactly the stored weights
(weight-only) or adds only the input's rounding (``|x|_max / 127`` per element,
dynamic), and that rows of a batch keep their own precision.

A quantised model saves and loads through :meth:`GPT.save <genarch.models.GPT.save>`
/ :meth:`GPT.load <genarch.models.GPT.load>`: ``config.json`` gains a
``"quantization"`` field (a :class:`QuantizationConfig`) from which the load
rebuilds the quantised layers before reading ``model.safetensors`` (the int8 or
packed int4 values with their scales); kernels are packed on first use.

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
        activations: ``"none"`` (weight-only: PyTorch's packed int8/int4
            kernels) or ``"dynamic"`` (inputs quantised to int8 per call,
            FBGEMM's int8 GEMM; the fastest on x86, see the module docstring).
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
