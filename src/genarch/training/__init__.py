"""The training & optimisation layer: objectives, optimizers and (soon) the trainer."""

from genarch.training.optimizer import ObjectiveOptimizer, adamw

__all__ = ["ObjectiveOptimizer", "adamw"]
