"""Fully sharded data parallelism (FSDP2) for the trainer, on CPUs (gloo) or GPUs.

Under ``torchrun`` the trainer's default data parallelism keeps a whole copy
of every parameter, gradient and optimizer moment on each process and
averages the gradients with one ``all_reduce``
(:mod:`genarch.training.optimizer`). :func:`shard` instead splits each of
them across the processes with PyTorch's ``fully_shard`` (FSDP2): a process
holds ``1/world`` of the weights and of AdamW's moments, gathers a layer's
full weights just before it runs and scatters the gradients back, reduced,
after its backward pass. Memory per process falls roughly with the number of
processes; the arithmetic is the same, so a run gives the same losses as one
process with the same global batch (up to float rounding in the reductions).

Use it by sharding the model before the trainer is built; nothing else
changes::

    dist.init_process_group("gloo")  # "nccl" on GPUs
    model = shard(build_model())      # every process builds it, rank 0's weights win
    Trainer(LanguageModeling(model), ...).fit(data)

:class:`~genarch.training.ObjectiveOptimizer` sees sharded parameters
(``DTensor``\\ s) and then only averages the loss (the gradients arrive
averaged), and its ``state_dict`` gathers the full weights and optimizer
moments, keyed by parameter name, so checkpoints hold ordinary tensors
(safetensors), load into an unsharded model, and resume a sharded run
exactly. FSDP2 on CPUs with the gloo backend works in the PyTorch this
package pins (2.13): ``tests/training/test_fsdp.py`` trains on two CPU
processes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from genarch.errors import InvalidInputError
from genarch.validation import describe

__all__ = ["full_state", "is_sharded", "load_full_state", "shard"]


def shard(module: nn.Module, *, layers: Iterable[nn.Module] | None = None) -> nn.Module:
    """Shard ``module``'s parameters across the processes of the default group (FSDP2).

    Every process must call it with the same model; rank 0's parameters and
    buffers are broadcast first, so the processes start equal whatever their
    seeds. Each of ``layers`` becomes its own unit (its weights are gathered
    only while it runs), then the rest of ``module``.

    Args:
        module: the model, unsharded, on this process's device.
        layers: the units to shard one by one (default: every element of every
            ``nn.ModuleList`` in ``module``, such as a GPT's blocks).

    Returns:
        ``module`` itself, now sharded.

    Raises:
        InvalidInputError: ``module`` is not an ``nn.Module``, is already
            sharded, or ``torch.distributed`` is not initialised.
    """
    if not isinstance(module, nn.Module):
        raise InvalidInputError(f"shard expected an nn.Module, got {describe(module)}")
    if not (dist.is_available() and dist.is_initialized()):
        raise InvalidInputError(
            "shard needs torch.distributed: start the processes with torchrun and call "
            "torch.distributed.init_process_group first"
        )
    if is_sharded(module):
        raise InvalidInputError(f"{type(module).__name__} is already sharded")
    from torch.distributed.fsdp import fully_shard

    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor.data, src=0)
    units = list(layers) if layers is not None else _repeated_layers(module)
    for unit in units:
        if not isinstance(unit, nn.Module):
            raise InvalidInputError(f"shard: layers must be nn.Modules, got {describe(unit)}")
        fully_shard(unit)
    fully_shard(module)
    return module


def _repeated_layers(module: nn.Module) -> list[nn.Module]:
    return [layer for m in module.modules() if isinstance(m, nn.ModuleList) for layer in m]


def is_sharded(module: nn.Module) -> bool:
    """Whether any parameter of ``module`` is a sharded ``DTensor``."""
    from torch.distributed.tensor import DTensor

    return any(isinstance(p, DTensor) for p in module.parameters())


def full_state(module: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict[str, Any], Any]:
    """``(weights, optimizer state)`` of a sharded module, gathered in full on every process.

    The weights are ordinary tensors keyed as in the unsharded model's
    ``state_dict``; the optimizer state is keyed by parameter name.
    """
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        get_optimizer_state_dict,
    )

    options = StateDictOptions(full_state_dict=True)
    weights = get_model_state_dict(module, options=options)
    moments = get_optimizer_state_dict(module, optimizer, options=options)
    full = {k: v.detach().clone() for k, v in weights.items() if isinstance(v, torch.Tensor)}
    return full, moments


def load_full_state(
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    weights: Mapping[str, Any],
    moments: Any,
) -> None:
    """Load what :func:`full_state` returned into a sharded module and its optimizer."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    options = StateDictOptions(full_state_dict=True)
    set_model_state_dict(module, dict(weights), options=options)
    set_optimizer_state_dict(module, optimizer, moments, options=options)
