"""Pruning a :class:`~genarch.models.GPT`: magnitude (unstructured) and heads/channels (structured).

* :func:`prune_magnitude` zeroes, in every linear layer of the blocks, the
  fraction ``amount`` of weights smallest in magnitude (per layer, as
  ``torch.nn.utils.prune.l1_unstructured``). The tensors keep their shapes and
  dense matmuls do the same work: it makes a model *sparse*, not faster.
  :func:`sparsity` reports the fraction of zeros honestly.
* :func:`prune_structured` removes whole attention heads (whole key/value
  groups under grouped-query attention) and MLP hidden channels, the same
  number in every block, ranked per block by the magnitude of the weights that
  read and write them (Michel et al., 2019, "Are Sixteen Heads Really Better
  than One?", use gradients; weight norms need no data). It returns a new,
  smaller :class:`~genarch.models.GPT` whose config says the new sizes
  (``n_head``, ``n_kv_head``, ``head_size``, ``mlp_hidden``), so it decodes
  faster and saves and loads as any GPT.
* :func:`recover` fine-tunes a pruned model for a few steps with
  :class:`~genarch.training.Trainer`, keeping pruned weights at zero.

Then :func:`~genarch.models.compression.quantize` the pruned model.

Example:
    >>> import torch
    >>> from genarch.models import GPT
    >>> torch.manual_seed(0) and None
    >>> model = GPT(vocab_size=64, context_length=16, n_layer=1, n_head=4, n_embd=32)
    >>> small = prune_structured(model, heads=0.5, mlp=0.25)
    >>> small.config.n_head, small.config.head_size, small.config.mlp_hidden
    (2, 8, 96)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated

import torch
from pydantic import Field
from torch import Tensor, nn

from genarch.errors import InvalidInputError
from genarch.models.transformer import GPT
from genarch.models.transformer_layers import Block
from genarch.schemas import Record, TrainingReport
from genarch.validation import describe

__all__ = [
    "PruningMasks",
    "SparsityReport",
    "prune_magnitude",
    "prune_structured",
    "recover",
    "sparsity",
]

_LINEARS = ("attn.qkv", "attn.proj", "mlp.up", "mlp.down")


class SparsityReport(Record):
    """The fraction of zero weights in a model's linear layers.

    Attributes:
        zeros: zero weights in the blocks' linear layers.
        total: weights in the blocks' linear layers.
        sparsity: ``zeros / total``.
        per_layer: each layer's own fraction of zeros, by module name.
    """

    zeros: Annotated[int, Field(ge=0)]
    total: Annotated[int, Field(ge=0)]
    sparsity: float
    per_layer: dict[str, float]


class PruningMasks:
    """The kept (True) weights of each pruned layer; :meth:`apply` zeroes the others again."""

    def __init__(self, masks: Mapping[str, Tensor]) -> None:
        self.masks = dict(masks)

    def apply(self, model: nn.Module) -> None:
        """Zero every pruned weight of ``model`` (after an optimizer step, for example)."""
        with torch.no_grad():
            for name, mask in self.masks.items():
                weight = model.get_parameter(name)
                weight.mul_(mask.to(weight.dtype))


def _check_amount(amount: object, name: str) -> float:
    if isinstance(amount, bool) or not isinstance(amount, int | float):
        raise InvalidInputError(f"{name} must be a number in [0, 1), got {describe(amount)}")
    if not (0.0 <= float(amount) < 1.0) or math.isnan(amount):
        raise InvalidInputError(f"{name} must be in [0, 1), got {amount}")
    return float(amount)


def _check_model(model: object, action: str) -> GPT:
    if not isinstance(model, GPT):
        raise InvalidInputError(f"{action} expected a GPT model, got {describe(model)}")
    if getattr(model, "quantization", None) is not None:
        raise InvalidInputError(f"{action}: prune the fp32 model first, then quantise it")
    return model


def prune_magnitude(model: GPT, amount: float) -> PruningMasks:
    """Zero the fraction ``amount`` of smallest-magnitude weights of each linear layer, in place.

    The blocks' linear layers are pruned (not the embeddings or the output
    layer). Shapes do not change, so this saves memory only in a compressed
    file and does not make dense matmuls faster.

    Args:
        model: a :class:`~genarch.models.GPT` (not quantised).
        amount: fraction of each layer's weights to zero, in ``[0, 1)``.

    Returns:
        The masks, for :func:`recover` (keeps pruned weights at zero).

    Raises:
        InvalidInputError: not a GPT, or ``amount`` outside ``[0, 1)``.
    """
    model = _check_model(model, "prune_magnitude")
    amount = _check_amount(amount, "amount")
    masks: dict[str, Tensor] = {}
    with torch.no_grad():
        for i in range(len(model.blocks)):
            for part in _LINEARS:
                name = f"blocks.{i}.{part}.weight"
                weight = model.get_parameter(name)
                count = round(amount * weight.numel())
                mask = torch.ones_like(weight, dtype=torch.bool)
                if count:
                    smallest = weight.abs().flatten().topk(count, largest=False).indices
                    mask.view(-1)[smallest] = False
                weight.mul_(mask)
                masks[name] = mask
    return PruningMasks(masks)


def sparsity(model: GPT) -> SparsityReport:
    """The fraction of exactly-zero weights in the blocks' linear layers."""
    model = _check_model(model, "sparsity")
    per_layer, zeros, total = {}, 0, 0
    for i in range(len(model.blocks)):
        for part in _LINEARS:
            weight = model.get_parameter(f"blocks.{i}.{part}.weight")
            layer_zeros = int((weight == 0).sum())
            per_layer[f"blocks.{i}.{part}"] = layer_zeros / weight.numel()
            zeros, total = zeros + layer_zeros, total + weight.numel()
    return SparsityReport(
        zeros=zeros, total=total, sparsity=zeros / total if total else 0.0, per_layer=per_layer
    )


def prune_structured(model: GPT, *, heads: float = 0.0, mlp: float = 0.0) -> GPT:
    """A smaller copy of ``model`` without its least important heads and MLP channels.

    Every block loses ``floor(heads * n_kv_head)`` key/value groups (with
    their query heads) and ``floor(mlp * hidden)`` hidden channels; each block
    keeps those whose weights have the largest norms (for a group: the norm of
    its value rows times that of its output-projection columns; for a channel:
    the norm of its up-projection row(s) times its down-projection column). At
    least one group and one channel stay. ``model`` itself is not changed.

    Args:
        model: a :class:`~genarch.models.GPT` (not quantised).
        heads: fraction of attention heads (key/value groups) to remove, in ``[0, 1)``.
        mlp: fraction of MLP hidden channels to remove, in ``[0, 1)``.

    Returns:
        A new GPT with the new sizes in its config (``head_size`` keeps the head width).

    Raises:
        InvalidInputError: not a GPT, or a fraction outside ``[0, 1)``.
    """
    model = _check_model(model, "prune_structured")
    heads = _check_amount(heads, "heads")
    mlp = _check_amount(mlp, "mlp")
    config = model.config
    hs, groups, ratio = config.head_dim, config.kv_heads, config.n_head // config.kv_heads
    hidden = config.hidden_width
    kept_groups = max(1, groups - math.floor(heads * groups))
    kept_hidden = max(1, hidden - math.floor(mlp * hidden))
    new_config = config.model_copy(
        update={
            "n_head": kept_groups * ratio,
            "n_kv_head": None if config.n_kv_head is None else kept_groups,
            "head_size": hs,
            "mlp_hidden": kept_hidden,
        }
    )
    new_config = type(config).parse(new_config.model_dump())  # validated
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for i, block in enumerate(model.blocks):
        assert isinstance(block, Block)
        prefix = f"blocks.{i}."
        _prune_attention(state, prefix + "attn.", block, kept_groups, config.n_head, hs)
        _prune_mlp(state, prefix + "mlp.", block, kept_hidden)
    with torch.device(model.wte.weight.device):
        pruned = GPT(new_config)
    pruned.load_weights(state, where="prune_structured")
    return pruned.train(model.training)


def _prune_attention(
    state: dict[str, Tensor], prefix: str, block: Block, kept: int, n_head: int, hs: int
) -> None:
    attn = block.attn
    groups = attn.n_kv_head
    ratio = n_head // groups
    if kept == groups:
        return
    qkv, proj = attn.qkv.weight.detach(), attn.proj.weight.detach()
    v_rows = qkv[(n_head + groups) * hs :].view(groups, hs, -1)  # (nkv, hs, C)
    out_cols = proj.view(proj.shape[0], n_head, hs)  # (C, nh, hs)
    score = v_rows.flatten(1).norm(dim=1) * out_cols.transpose(0, 1).reshape(
        groups, ratio * hs * proj.shape[0]
    ).norm(dim=1)
    keep = score.topk(kept).indices.sort().values  # key/value groups kept, in order
    q_heads = (keep[:, None] * ratio + torch.arange(ratio)).flatten()
    rows = torch.cat(  # query rows, then key rows, then value rows of the kept heads
        [
            _head_rows(q_heads, hs),
            n_head * hs + _head_rows(keep, hs),
            (n_head + groups) * hs + _head_rows(keep, hs),
        ]
    )
    state[prefix + "qkv.weight"] = state[prefix + "qkv.weight"][rows].clone()
    if prefix + "qkv.bias" in state:
        state[prefix + "qkv.bias"] = state[prefix + "qkv.bias"][rows].clone()
    state[prefix + "proj.weight"] = state[prefix + "proj.weight"][
        :, _head_rows(q_heads, hs)
    ].clone()


def _head_rows(heads: Tensor, hs: int) -> Tensor:
    return (heads[:, None] * hs + torch.arange(hs)).flatten()


def _prune_mlp(state: dict[str, Tensor], prefix: str, block: Block, kept: int) -> None:
    mlp = block.mlp
    up, down = mlp.up.weight.detach(), mlp.down.weight.detach()
    hidden = down.shape[1]
    if kept == hidden:
        return
    up_norm = up.view(2 if mlp.gated else 1, hidden, -1).norm(dim=2).prod(dim=0)
    keep = (up_norm * down.norm(dim=0)).topk(kept).indices.sort().values
    rows = torch.cat([keep, keep + hidden]) if mlp.gated else keep
    state[prefix + "up.weight"] = state[prefix + "up.weight"][rows].clone()
    if prefix + "up.bias" in state:
        state[prefix + "up.bias"] = state[prefix + "up.bias"][rows].clone()
    state[prefix + "down.weight"] = state[prefix + "down.weight"][:, keep].clone()


def recover(
    model: GPT,
    tokens: Tensor,
    *,
    steps: int = 100,
    batch_size: int = 8,
    block_size: int | None = None,
    learning_rate: float = 3e-4,
    masks: PruningMasks | None = None,
    seed: int = 0,
) -> TrainingReport:
    """Fine-tune a pruned model briefly on ``tokens`` (next-token loss), in place.

    Args:
        model: the pruned :class:`~genarch.models.GPT`.
        tokens: a 1-D stream of training token ids.
        steps: optimizer steps.
        batch_size: blocks per step.
        block_size: tokens per block (default: the model's context, at most 128).
        learning_rate: AdamW's learning rate (constant after a short warm-up).
        masks: from :func:`prune_magnitude`: re-applied after every step so
            pruned weights stay zero.
        seed: seeds the data order.

    Returns:
        The :class:`~genarch.schemas.TrainingReport` of the run.

    Raises:
        InvalidInputError: not a GPT, or too few tokens for one batch.
    """
    from genarch.training import LanguageModeling, Trainer, token_blocks

    model = _check_model(model, "recover")
    if not isinstance(tokens, Tensor) or tokens.ndim != 1 or tokens.is_floating_point():
        raise InvalidInputError(f"tokens must be a 1-D integer tensor, got {describe(tokens)}")
    size = block_size or min(model.config.context_length, 128)
    blocks = token_blocks(tokens, size)
    if len(blocks) < batch_size:
        raise InvalidInputError(
            f"recover needs at least {batch_size} blocks of {size + 1} tokens, got {len(blocks)}"
        )
    trainer = Trainer(
        LanguageModeling(model),
        max_steps=steps,
        batch_size=batch_size,
        optimizer={"learning_rate": learning_rate, "weight_decay": 0.0},
        schedule={"warmup_steps": max(1, steps // 10), "decay": "constant"},
        seed=seed,
        progress=False,
    )
    callbacks = [] if masks is None else [lambda _report: masks.apply(model)]
    report = trainer.fit(blocks, on_step_end=callbacks)
    model.eval()
    return report
