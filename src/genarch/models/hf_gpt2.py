"""Load GPT-2 checkpoints in the Hugging Face layout into :class:`~genarch.models.GPT`.

A Hugging Face GPT-2 directory holds ``config.json`` and ``model.safetensors``
(as written by ``GPT2LMHeadModel.save_pretrained``, or downloaded from the
Hub beforehand: nothing here touches the network). GPT-2 is a
:class:`~genarch.models.GPTConfig` with learned positions, LayerNorm, the tanh
GELU, biases and tied embeddings; its ``Conv1D`` layers store weights as
``(in, out)``, so they are transposed on the way in. The loaded model gives the
same logits as ``transformers``' ``GPT2LMHeadModel`` (tested to 1e-4).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from genarch.errors import ConfigError, IntegrityError, InvalidInputError, NotFoundError
from genarch.models._weights import check_saved_shapes, module_shapes, saved_shapes
from genarch.models.transformer import GPT, GPTConfig
from genarch.protocols import PathLike
from genarch.validation import describe

__all__ = ["config_from_hf_gpt2", "load_hf_gpt2"]

_ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu"}
_IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias")  # causal-mask buffers of old checkpoints
_BLOCK_NAMES = {  # Hugging Face name inside h.{i} -> genarch name inside blocks.{i}
    "ln_1": "norm1",
    "attn.c_attn": "attn.qkv",
    "attn.c_proj": "attn.proj",
    "ln_2": "norm2",
    "mlp.c_fc": "mlp.up",
    "mlp.c_proj": "mlp.down",
}
_CONV1D = {"attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"}


def config_from_hf_gpt2(hf_config: Mapping[str, Any]) -> GPTConfig:
    """Translate a Hugging Face GPT-2 ``config.json`` mapping into a :class:`GPTConfig`.

    Raises:
        ConfigError: not a mapping, a size out of :class:`GPTConfig`'s bounds, or
            a feature genarch's GPT does not have (another activation, attention
            scaled by layer index, ...).

    Example:
        >>> config = config_from_hf_gpt2(
        ...     {"model_type": "gpt2", "vocab_size": 50257, "n_positions": 1024,
        ...      "n_embd": 768, "n_layer": 12, "n_head": 12}
        ... )
        >>> config.mlp, config.context_length
        ('gelu_tanh', 1024)
    """
    if not isinstance(hf_config, Mapping):
        raise ConfigError(
            f"config_from_hf_gpt2 expected the config.json mapping, got {describe(hf_config)}"
        )
    model_type = hf_config.get("model_type", "gpt2")
    if model_type != "gpt2":
        raise ConfigError(f"expected a GPT-2 config (model_type 'gpt2'), got {model_type!r}")
    activation = hf_config.get("activation_function", "gelu_new")
    if activation not in _ACTIVATIONS:
        raise ConfigError(
            f"GPT-2 activation {activation!r} is not supported; expected one of {sorted(_ACTIVATIONS)}"
        )
    for flag, wanted in (
        ("scale_attn_weights", True),
        ("scale_attn_by_inverse_layer_idx", False),
        ("reorder_and_upcast_attn", False),
        ("add_cross_attention", False),
    ):
        if hf_config.get(flag, wanted) != wanted:
            raise ConfigError(f"GPT-2 configs with {flag}={hf_config[flag]!r} are not supported")
    try:
        return GPTConfig(
            vocab_size=hf_config["vocab_size"],
            context_length=hf_config["n_positions"],
            n_layer=hf_config["n_layer"],
            n_head=hf_config["n_head"],
            n_embd=hf_config["n_embd"],
            mlp_hidden=hf_config.get("n_inner"),
            mlp=_ACTIVATIONS[activation],
            norm_eps=hf_config.get("layer_norm_epsilon", 1e-5),
            dropout=hf_config.get("resid_pdrop", 0.0),
            tie_embeddings=hf_config.get("tie_word_embeddings", True),
            positions="learned",
            norm="layernorm",
            bias=True,
        )
    except KeyError as error:
        raise ConfigError(f"the GPT-2 config lacks the field {error.args[0]!r}") from None
    except InvalidInputError as error:
        raise ConfigError(f"the GPT-2 config does not describe a valid GPT: {error}") from None


def _genarch_name(name: str, config: GPTConfig) -> tuple[str | None, bool]:
    """genarch's name for a Hugging Face GPT-2 tensor (None: not needed) and whether
    it is stored transposed (``Conv1D`` keeps ``(in, out)``; ``nn.Linear`` wants ``(out, in)``).

    Raises:
        IntegrityError: a tensor GPT-2 does not have.
    """
    if name.endswith(_IGNORED_SUFFIXES):
        return None, False
    if name == "lm_head.weight":
        return (None if config.tie_embeddings else name), False
    inner = name.removeprefix("transformer.")
    if inner in ("wte.weight", "wpe.weight"):
        return inner, False
    if inner.startswith("ln_f."):
        return "norm_f." + inner.removeprefix("ln_f."), False
    if inner.startswith("h.") and inner.count(".") >= 3:
        _, layer, rest = inner.split(".", 2)
        module, _, kind = rest.rpartition(".")
        if module in _BLOCK_NAMES:
            return (
                f"blocks.{layer}.{_BLOCK_NAMES[module]}.{kind}",
                module in _CONV1D and kind == "weight",
            )
    raise IntegrityError(f"unexpected GPT-2 tensor {name!r}")


def _convert(hf_state: Mapping[str, Tensor], config: GPTConfig) -> dict[str, Tensor]:
    """Rename (and transpose) Hugging Face GPT-2 tensors into genarch's names."""
    state: dict[str, Tensor] = {}
    for name, tensor in hf_state.items():
        target, transposed = _genarch_name(name, config)
        if target is not None:
            state[target] = (tensor.t() if transposed else tensor).contiguous()
    return state


def _converted_shapes(
    shapes: Mapping[str, tuple[int, ...]], config: GPTConfig
) -> dict[str, tuple[int, ...]]:
    """:func:`_convert` applied to shapes alone (read from the file's header)."""
    converted: dict[str, tuple[int, ...]] = {}
    for name, shape in shapes.items():
        target, transposed = _genarch_name(name, config)
        if target is not None:
            converted[target] = tuple(reversed(shape)) if transposed else tuple(shape)
    return converted


def load_hf_gpt2(directory: PathLike, *, device: str | torch.device = "cpu") -> GPT:
    """Build a :class:`~genarch.models.GPT` from a Hugging Face GPT-2 checkpoint directory.

    Args:
        directory: holds ``config.json`` and ``model.safetensors``.
        device: where to put the model.

    Raises:
        NotFoundError: a file is missing.
        ConfigError: the config uses an unsupported GPT-2 feature.
        IntegrityError: the weights do not match the config.

    Example:
        >>> import tempfile
        >>> from genarch.errors import NotFoundError
        >>> try:
        ...     load_hf_gpt2(tempfile.mkdtemp())
        ... except NotFoundError as error:
        ...     "lacks config.json" in str(error)
        True
    """
    from safetensors.torch import load_file

    root = Path(directory)
    for file in ("config.json", "model.safetensors"):
        if not (root / file).is_file():
            raise NotFoundError(
                f"{root} lacks {file}: expected a Hugging Face GPT-2 checkpoint "
                "(config.json + model.safetensors, e.g. from save_pretrained)"
            )
    try:
        hf_config = json.loads((root / "config.json").read_text())
    except ValueError as error:
        raise IntegrityError(f"{root / 'config.json'} is not valid JSON: {error}") from None
    if not isinstance(hf_config, dict):
        raise IntegrityError(f"{root / 'config.json'} does not hold a JSON object")
    config = config_from_hf_gpt2(hf_config)
    weights = root / "model.safetensors"
    # Shapes first, from the file's header and a model on the meta device: a config
    # that does not fit its weights fails before the model is allocated.
    check_saved_shapes(
        _converted_shapes(saved_shapes(weights), config),
        module_shapes(lambda: GPT(config)),
        str(weights),
        optional=frozenset({"lm_head.weight"}) if config.tie_embeddings else frozenset(),
    )
    try:
        hf_state = load_file(str(weights))
    except Exception as error:
        raise IntegrityError(f"cannot read {weights}: {error}") from error
    model = GPT(config)
    model.load_weights(_convert(hf_state, config), where=str(weights))
    return model.to(device)
