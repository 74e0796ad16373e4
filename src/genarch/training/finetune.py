"""Fine-tuning: freeze parameters by name, or adapt linear layers with LoRA.

Pre-training updates every weight; fine-tuning usually updates few. Two tools:

* :func:`freeze` / :func:`unfreeze` switch ``requires_grad`` by name pattern
  (``fnmatch`` patterns such as ``"blocks.0.*"`` or ``"*.bias"``).
* :func:`apply_lora` wraps chosen ``nn.Linear`` layers in :class:`LoRALinear`:
  the original weight ``W`` is frozen and a low-rank update ``B @ A``
  (rank ``r``, scaled by ``alpha / r``) is learned instead — Hu et al., 2021,
  "LoRA: Low-Rank Adaptation of Large Language Models" (arXiv:2106.09685).
  ``B`` starts at zero, so the adapted model starts equal to the original.
  :func:`merge_lora` folds ``B @ A`` into ``W`` for inference at no extra cost;
  :func:`unmerge_lora` takes it out again; :func:`save_adapters` writes only the
  adapters (a few percent of the model) as safetensors + JSON.

Example:
    >>> import torch
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    >>> apply_lora(model, ["0"], LoRAConfig(rank=2))
    ['0']
    >>> count = count_parameters(model)
    >>> count.trainable, count.total
    (32, 122)
"""

from __future__ import annotations

import fnmatch
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, NamedTuple

import torch
from pydantic import Field
from safetensors.torch import save_file

from genarch.errors import ConfigError, IntegrityError, InvalidInputError
from genarch.persistence import open_saved, reading, save_component
from genarch.schemas import Config
from genarch.validation import describe

__all__ = [
    "LoRAConfig",
    "LoRALinear",
    "ParameterCount",
    "apply_lora",
    "count_parameters",
    "freeze",
    "load_adapters",
    "lora_state_dict",
    "merge_lora",
    "save_adapters",
    "unfreeze",
    "unmerge_lora",
]

ADAPTERS_FORMAT = "genarch.lora/1"
ADAPTERS_HEADER = "adapters.json"
ADAPTERS_WEIGHTS = "adapters.safetensors"


class ParameterCount(NamedTuple):
    """Trainable and total parameter counts of a module."""

    trainable: int
    total: int

    @property
    def fraction(self) -> float:
        """Share of the parameters that train."""
        return self.trainable / self.total if self.total else 0.0


def count_parameters(module: torch.nn.Module) -> ParameterCount:
    """Count trainable and all parameters (shared parameters once)."""
    parameters = list(module.parameters())  # deduplicated by torch
    return ParameterCount(
        sum(p.numel() for p in parameters if p.requires_grad), sum(p.numel() for p in parameters)
    )


def _set_requires_grad(
    module: torch.nn.Module, patterns: Sequence[str], value: bool, where: str
) -> list[str]:
    if isinstance(patterns, str) or not patterns:
        raise InvalidInputError(
            f"{where} expects a non-empty list of name patterns, got {patterns!r}"
        )
    names = [n for n, _ in module.named_parameters()]
    for pattern in patterns:
        if not fnmatch.filter(names, pattern):
            raise InvalidInputError(
                f"{where}: pattern {pattern!r} matches no parameter; names look like {names[:4]}"
            )
    changed = []
    for name, parameter in module.named_parameters():
        if any(fnmatch.fnmatchcase(name, p) for p in patterns):
            parameter.requires_grad_(value)
            changed.append(name)
    return changed


def freeze(module: torch.nn.Module, patterns: Sequence[str]) -> list[str]:
    """Stop the parameters whose names match any pattern from training.

    Returns:
        The names of the parameters frozen.

    Raises:
        InvalidInputError: a pattern matches nothing (almost always a typo).
    """
    return _set_requires_grad(module, patterns, False, "freeze")


def unfreeze(module: torch.nn.Module, patterns: Sequence[str]) -> list[str]:
    """Let the parameters whose names match any pattern train again (see :func:`freeze`)."""
    return _set_requires_grad(module, patterns, True, "unfreeze")


class LoRAConfig(Config):
    """LoRA settings.

    Attributes:
        rank: the rank ``r`` of the learned update.
        alpha: the update is scaled by ``alpha / rank``.
        dropout: dropout on the adapter's input during training.
    """

    rank: Annotated[int, Field(ge=1)] = 8
    alpha: Annotated[float, Field(gt=0)] = 16.0
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.0


class LoRALinear(torch.nn.Module):
    """A frozen ``nn.Linear`` plus a trainable low-rank update: ``y = W x + b + s · B A x``."""

    def __init__(self, base: torch.nn.Linear, config: LoRAConfig) -> None:
        super().__init__()
        if not isinstance(base, torch.nn.Linear):
            raise ConfigError(f"LoRA adapts nn.Linear layers, got {describe(base)}")
        self.base = base
        self.config = config
        self.scaling = config.alpha / config.rank
        for parameter in base.parameters():
            parameter.requires_grad_(False)
        device, dtype = base.weight.device, base.weight.dtype
        self.lora_a = torch.nn.Parameter(
            torch.empty(config.rank, base.in_features, device=device, dtype=dtype)
        )
        self.lora_b = torch.nn.Parameter(
            torch.zeros(base.out_features, config.rank, device=device, dtype=dtype)
        )
        torch.nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))  # as nn.Linear initialises
        self.dropout = torch.nn.Dropout(config.dropout)
        self.merged = False

    def delta_weight(self) -> torch.Tensor:
        """The update ``s · B @ A`` in the base weight's shape."""
        return (self.lora_b @ self.lora_a) * self.scaling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.base(x)
        if self.merged:
            return out
        update: torch.Tensor = self.dropout(x) @ self.lora_a.T @ self.lora_b.T
        return out + update * self.scaling

    def merge(self) -> None:
        """Fold the update into the base weight (no-op if merged)."""
        if not self.merged:
            with torch.no_grad():
                self.base.weight += self.delta_weight()
            self.merged = True

    def unmerge(self) -> None:
        """Take the update out of the base weight again (no-op if not merged)."""
        if self.merged:
            with torch.no_grad():
                self.base.weight -= self.delta_weight()
            self.merged = False


def apply_lora(
    model: torch.nn.Module, targets: Sequence[str], config: LoRAConfig | None = None
) -> list[str]:
    """Wrap the ``nn.Linear`` layers whose names match ``targets`` in :class:`LoRALinear`.

    Every other parameter of ``model`` is frozen, so only the adapters train.

    Args:
        model: changed in place.
        targets: ``fnmatch`` patterns of module names, e.g. ``["*.attn.c_attn"]``.
        config: rank, alpha and dropout.

    Returns:
        The names of the adapted layers.

    Raises:
        InvalidInputError: no ``nn.Linear`` matches a pattern.
    """
    config = config or LoRAConfig()
    if isinstance(targets, str) or not targets:
        raise InvalidInputError(f"apply_lora expects a non-empty list of patterns, got {targets!r}")
    linear = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and n]
    chosen = [n for n in linear if any(fnmatch.fnmatchcase(n, p) for p in targets)]
    for pattern in targets:
        if not any(fnmatch.fnmatchcase(n, pattern) for n in linear):
            raise InvalidInputError(
                f"apply_lora: pattern {pattern!r} matches no nn.Linear; linear layers: {linear[:6]}"
            )
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    for name in chosen:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, child, LoRALinear(getattr(parent, child), config))
    for module in model.modules():  # adapters added earlier keep training
        if isinstance(module, LoRALinear):
            module.lora_a.requires_grad_(True)
            module.lora_b.requires_grad_(True)
    return chosen


def _adapters(model: torch.nn.Module) -> dict[str, LoRALinear]:
    found = {n: m for n, m in model.named_modules() if isinstance(m, LoRALinear)}
    if not found:
        raise InvalidInputError("the model has no LoRA adapters; call apply_lora first")
    return found


def merge_lora(model: torch.nn.Module) -> None:
    """Merge every adapter into its base weight (outputs unchanged, up to rounding)."""
    for adapter in _adapters(model).values():
        adapter.merge()


def unmerge_lora(model: torch.nn.Module) -> None:
    """Undo :func:`merge_lora`."""
    for adapter in _adapters(model).values():
        adapter.unmerge()


def lora_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Only the adapter weights, by their names in the model."""
    return {
        f"{name}.{part}": getattr(adapter, part).detach().clone()
        for name, adapter in _adapters(model).items()
        for part in ("lora_a", "lora_b")
    }


def save_adapters(model: torch.nn.Module, directory: str | os.PathLike[str]) -> Path:
    """Write only the adapters: ``adapters.safetensors`` + ``adapters.json``, atomically."""
    adapters = _adapters(model)
    configs = {name: a.config.model_dump() for name, a in adapters.items()}
    save_component(
        directory,
        ADAPTERS_FORMAT,
        header={"adapters": configs},
        write_files=lambda staging: save_file(
            lora_state_dict(model), str(staging / ADAPTERS_WEIGHTS)
        ),
        header_file=ADAPTERS_HEADER,
    )
    return Path(directory)


def load_adapters(model: torch.nn.Module, directory: str | os.PathLike[str]) -> list[str]:
    """Add the adapters saved by :func:`save_adapters` to a model of the same architecture.

    Layers not yet adapted get :func:`apply_lora` with the saved settings first.
    A merged adapter is unmerged before its weights are replaced.

    Returns:
        The names of the adapted layers.

    Raises:
        NotFoundError: nothing saved at ``directory``.
        IntegrityError: the adapters do not fit this model.
    """
    saved = open_saved(directory, ADAPTERS_FORMAT, header_file=ADAPTERS_HEADER)
    tensors = saved.tensors(ADAPTERS_WEIGHTS)
    with reading(ADAPTERS_FORMAT, saved.root):
        configs = {n: LoRAConfig.parse(c) for n, c in saved.field("adapters").items()}
    modules = dict(model.named_modules())
    for name, config in configs.items():
        module = modules.get(name)
        if isinstance(module, LoRALinear):
            continue
        if not isinstance(module, torch.nn.Linear):
            raise IntegrityError(f"the adapters are for another model: no linear layer {name!r}")
        apply_lora(model, [name], config)
    adapters = _adapters(model)
    for name in configs:
        adapter = adapters[name]
        a, b = tensors.get(f"{name}.lora_a"), tensors.get(f"{name}.lora_b")
        if (
            a is None
            or b is None
            or a.shape != adapter.lora_a.shape
            or b.shape != adapter.lora_b.shape
        ):
            raise IntegrityError(f"the adapter of {name!r} does not fit this model")
        was_merged = adapter.merged
        adapter.unmerge()
        with torch.no_grad():
            adapter.lora_a.copy_(a)
            adapter.lora_b.copy_(b)
        if was_merged:
            adapter.merge()
    return list(configs)
