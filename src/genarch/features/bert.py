"""BERT, the encoder network of the pretrained sentence encoders (inference only, plain PyTorch).

BERT (Devlin et al., 2019, "BERT: Pre-training of Deep Bidirectional
Transformers for Language Understanding") maps token ids to contextual hidden
states with a stack of post-LN transformer encoder layers.
:class:`~genarch.features.minilm.MiniLMEncoder` pools them into sentence
embeddings (Reimers & Gurevych, 2019, "Sentence-BERT"; Wang et al., 2020,
"MiniLM"). :meth:`BertModel.load_hf_state` reads the weights of a Hugging Face
``BertModel``, so ``transformers`` is never imported at run time.

Why this model family lives in :mod:`genarch.features` and not in
:mod:`genarch.models`: the layers import downwards only (data → features →
models → orchestration), and the feature extractor that runs this network
(:class:`~genarch.features.minilm.MiniLMEncoder`) is in the features layer, so
the network must be in that layer or below. It is also not a generative model
(it satisfies no ``Generator`` protocol): here it only turns texts into
features. It still has a file of its own, one file per model family, apart
from the checkpoint reader and the extractor in :mod:`genarch.features.minilm`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import torch
import torch.nn.functional as F  # noqa: N812 - the usual torch spelling
from pydantic import Field
from torch import Tensor, nn

from genarch.configured import Configured
from genarch.errors import ConfigError, IntegrityError
from genarch.schemas import Config

__all__ = ["BertConfig", "BertModel"]


class BertConfig(Config):
    """The shape of a BERT encoder (the fields of a Hugging Face ``config.json`` that matter).

    Attributes:
        vocab_size: rows of the token embedding table.
        hidden_size: width of the hidden states.
        num_hidden_layers: number of encoder layers.
        num_attention_heads: heads per layer; must divide ``hidden_size``.
        intermediate_size: hidden width of each layer's feed-forward network.
        max_position_embeddings: the longest sequence the model reads.
        type_vocab_size: number of segment (token type) embeddings.
        layer_norm_eps: epsilon of every LayerNorm.
    """

    vocab_size: Annotated[int, Field(ge=1)] = 30522
    hidden_size: Annotated[int, Field(ge=1)] = 384
    num_hidden_layers: Annotated[int, Field(ge=1)] = 6
    num_attention_heads: Annotated[int, Field(ge=1)] = 12
    intermediate_size: Annotated[int, Field(ge=1)] = 1536
    max_position_embeddings: Annotated[int, Field(ge=2)] = 512
    type_vocab_size: Annotated[int, Field(ge=1)] = 2
    layer_norm_eps: Annotated[float, Field(gt=0)] = 1e-12


class _Embeddings(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.words = nn.Embedding(config.vocab_size, config.hidden_size)
        self.positions = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_types = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, input_ids: Tensor) -> Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        # One segment only, so every token has token type 0.
        x = self.words(input_ids) + self.token_types.weight[0] + self.positions(positions)
        return self.norm(x)  # type: ignore[no-any-return]


class _Layer(nn.Module):
    """One post-LN encoder layer: ``x = LN(x + attention(x)); x = LN(x + FFN(x))``."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        width = config.hidden_size
        self.heads = config.num_attention_heads
        self.qkv = nn.Linear(width, 3 * width)  # query, key and value in one matmul
        self.attention_out = nn.Linear(width, width)
        self.attention_norm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.ffn_in = nn.Linear(width, config.intermediate_size)
        self.ffn_out = nn.Linear(config.intermediate_size, width)
        self.ffn_norm = nn.LayerNorm(width, eps=config.layer_norm_eps)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        B, T, C = x.shape  # noqa: N806
        qkv = self.qkv(x).view(B, T, 3, self.heads, C // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, nh, T, hs)
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, nh, T, hs)
        attended = attended.transpose(1, 2).reshape(B, T, C)
        x = self.attention_norm(x + self.attention_out(attended))
        return self.ffn_norm(x + self.ffn_out(F.gelu(self.ffn_in(x))))  # type: ignore[no-any-return]


class BertModel(nn.Module, Configured[BertConfig]):
    """A BERT encoder: token ids and an attention mask to contextual hidden states.

    Inference only (no dropout); GELU is the exact (erf) form, as in BERT.

    Args:
        config: the shape of the model; keyword fields are shorthand.

    Raises:
        ConfigError: ``hidden_size`` is not a multiple of ``num_attention_heads``,
            or both a config and keyword fields were given.

    Examples:
        >>> torch.manual_seed(0) and None
        >>> model = BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
        ...                              num_attention_heads=2, intermediate_size=32))
        >>> ids = torch.tensor([[2, 7, 9, 3], [2, 5, 3, 0]])
        >>> model(ids, torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])).shape
        torch.Size([2, 4, 16])
    """

    def __init__(self, config: BertConfig | Mapping[str, Any] | None = None, **fields: Any) -> None:
        nn.Module.__init__(self)
        Configured.__init__(self, config, **fields)
        config = self.config
        if config.hidden_size % config.num_attention_heads:
            raise ConfigError(
                f"hidden_size ({config.hidden_size}) must be divisible by "
                f"num_attention_heads ({config.num_attention_heads})"
            )
        self.embeddings = _Embeddings(config)
        self.layers = nn.ModuleList(_Layer(config) for _ in range(config.num_hidden_layers))

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Hidden states ``(B, T, hidden_size)``; padding (mask 0) is never attended to."""
        x: Tensor = self.embeddings(input_ids)  # (B, T, C)
        # (B, 1, 1, T): which keys each query may see; None (faster) when nothing is padding
        mask = None if bool(attention_mask.all()) else attention_mask.bool()[:, None, None, :]
        for layer in self.layers:
            x = layer(x, mask)
        return x

    def load_hf_state(self, state: Mapping[str, Tensor], *, where: str) -> None:
        """Copy a Hugging Face ``BertModel`` state dict into this model, checking every tensor.

        The pooler and the ``position_ids`` buffer are not needed and are ignored.

        Raises:
            IntegrityError: a tensor is missing, unexpected or of the wrong shape or dtype.
        """
        names = {
            "embeddings.words.weight": "embeddings.word_embeddings.weight",
            "embeddings.positions.weight": "embeddings.position_embeddings.weight",
            "embeddings.token_types.weight": "embeddings.token_type_embeddings.weight",
            "embeddings.norm.weight": "embeddings.LayerNorm.weight",
            "embeddings.norm.bias": "embeddings.LayerNorm.bias",
        }
        parts = {
            "attention_out": "attention.output.dense",
            "attention_norm": "attention.output.LayerNorm",
            "ffn_in": "intermediate.dense",
            "ffn_out": "output.dense",
            "ffn_norm": "output.LayerNorm",
        }
        for index in range(len(self.layers)):
            for ours, theirs in parts.items():
                for kind in ("weight", "bias"):
                    names[f"layers.{index}.{ours}.{kind}"] = (
                        f"encoder.layer.{index}.{theirs}.{kind}"
                    )
        fused = {  # our qkv = their query, key and value stacked
            f"layers.{i}.qkv.{kind}": [
                f"encoder.layer.{i}.attention.self.{p}.{kind}" for p in ("query", "key", "value")
            ]
            for i in range(len(self.layers))
            for kind in ("weight", "bias")
        }
        ignored = {"embeddings.position_ids"}
        prefix = "bert." if any(k.startswith("bert.") for k in state) else ""
        expected = self.state_dict()
        sources = {ours: [theirs] for ours, theirs in names.items()} | fused
        wanted = [t for group in sources.values() for t in group]
        if missing := sorted(t for t in wanted if prefix + t not in state):
            raise IntegrityError(f"{where} lacks tensors {missing[:5]} for this BertConfig")
        used = {prefix + t for t in wanted}
        extra = sorted(
            k
            for k in state
            if k not in used
            and not k.startswith(f"{prefix}pooler.")
            and k.removeprefix(prefix) not in ignored
        )
        if extra:
            raise IntegrityError(f"{where} has tensors a BERT encoder does not: {extra[:5]}")
        with torch.no_grad():
            for ours, group in sources.items():
                parts_ = [state[prefix + t] for t in group]
                if not all(p.is_floating_point() for p in parts_):
                    raise IntegrityError(f"{where}: {group[0]} is not a float tensor")
                tensor = torch.cat(parts_) if len(parts_) > 1 else parts_[0]
                if tensor.shape != expected[ours].shape:
                    raise IntegrityError(
                        f"{where}: {', '.join(group)} have shape {tuple(tensor.shape)} together, "
                        f"the config needs {tuple(expected[ours].shape)}"
                    )
                expected[ours].copy_(tensor)
