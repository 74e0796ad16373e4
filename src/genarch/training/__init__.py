"""The training & optimisation layer: objectives, optimizers, the trainer, fine-tuning.

* :class:`LanguageModeling` — a reusable :class:`~genarch.protocols.TrainingObjective`.
* :class:`ObjectiveOptimizer` — one update of every player of an objective
  (the :class:`~genarch.protocols.Optimizer` protocol), with :func:`adamw` / :func:`sgd`.
* :class:`Trainer` — the same protocol plus :meth:`Trainer.fit`: schedules,
  clipping, accumulation, evaluation, early stopping, checkpoints with exact
  resume, DDP under ``torchrun``.
* :func:`freeze`, :func:`apply_lora` and friends — fine-tuning.
"""

from genarch.training.checkpoint import CheckpointManager, load_checkpoint, save_checkpoint
from genarch.training.data import IndexedData, token_blocks
from genarch.training.finetune import (
    LoRAConfig,
    LoRALinear,
    ParameterCount,
    apply_lora,
    count_parameters,
    freeze,
    load_adapters,
    lora_state_dict,
    merge_lora,
    save_adapters,
    unfreeze,
    unmerge_lora,
)
from genarch.training.objectives import (
    LanguageModeling,
    MeasuredLoss,
    MeasuringObjective,
    next_token_loss,
)
from genarch.training.optimizer import (
    ObjectiveOptimizer,
    OptimizerConfig,
    adamw,
    parameter_groups,
    sgd,
    split_batch,
)
from genarch.training.schedules import Schedule, lr_factor
from genarch.training.trainer import EvalReport, Trainer, TrainerConfig

__all__ = [
    "CheckpointManager",
    "EvalReport",
    "IndexedData",
    "LanguageModeling",
    "LoRAConfig",
    "LoRALinear",
    "MeasuredLoss",
    "MeasuringObjective",
    "ObjectiveOptimizer",
    "OptimizerConfig",
    "ParameterCount",
    "Schedule",
    "Trainer",
    "TrainerConfig",
    "adamw",
    "apply_lora",
    "count_parameters",
    "freeze",
    "load_adapters",
    "load_checkpoint",
    "lora_state_dict",
    "lr_factor",
    "merge_lora",
    "next_token_loss",
    "parameter_groups",
    "save_adapters",
    "save_checkpoint",
    "sgd",
    "split_batch",
    "token_blocks",
    "unfreeze",
    "unmerge_lora",
]
