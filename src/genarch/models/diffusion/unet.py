"""The denoiser: a small U-Net with timestep and class embeddings, and its residual block.

:class:`UNetDenoiser` predicts the noise ε in a noisy image ``x_t`` given the
timestep ``t`` and, optionally, a class label; it is a
:class:`~genarch.models.diffusion.sampling.Denoiser`, so the samplers and
:class:`~genarch.models.diffusion.model.DiffusionObjective` take it (or any
other denoiser) unchanged.

References:
    Ronneberger, Fischer, Brox, "U-Net: Convolutional Networks for Biomedical
    Image Segmentation", 2015.
    Ho, Jain, Abbeel, "Denoising Diffusion Probabilistic Models", 2020 (the
    timestep embedding and residual blocks).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["ResBlock", "UNetDenoiser", "sinusoidal_embedding"]


def sinusoidal_embedding(values: Tensor, dim: int) -> Tensor:
    """Transformer-style sinusoidal features of ``values`` (N,) -> (N, dim)."""
    half = dim // 2
    frequencies = torch.exp(-math.log(10_000.0) * torch.arange(half, dtype=torch.float32) / half)
    angles = values.float()[:, None] * frequencies[None, :]  # (N, half)
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, with an embedding added in between, plus a skip.

    The embedding (a timestep and/or class vector) shifts every channel, which
    is how a denoiser learns what noise level and class it is looking at.

    Args:
        in_channels: channels in.
        out_channels: channels out.
        embed_dim: size of the embedding input (0: no embedding).
    """

    def __init__(self, in_channels: int, out_channels: int, embed_dim: int = 0) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(min(8, in_channels), in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.embed = nn.Linear(embed_dim, out_channels) if embed_dim else None
        self.norm2 = nn.GroupNorm(min(8, out_channels), out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = (
            nn.Conv2d(in_channels, out_channels, 1)
            if in_channels != out_channels
            else nn.Identity()
        )

    def forward(self, x: Tensor, embedding: Tensor | None = None) -> Tensor:
        h = self.conv1(nn.functional.silu(self.norm1(x)))  # (N, out, H, W)
        if self.embed is not None and embedding is not None:
            h = h + self.embed(embedding)[:, :, None, None]
        h = self.conv2(nn.functional.silu(self.norm2(h)))
        out: Tensor = h + self.skip(x)
        return out


class UNetDenoiser(nn.Module):
    """A two-level U-Net for small images with timestep and class embeddings.

    ``(N, C, S, S)`` → ResBlock at S → downsample to S/2 → two ResBlocks →
    upsample to S, concatenate the skip → ResBlock → ``(N, C, S, S)``.

    Args:
        channels: image channels.
        image_size: S (even).
        width: channels of the first level (the second has twice as many).
        num_classes: classes (0: unconditional); the embedding has one more
            row, the "null" class used for classifier-free guidance.
    """

    def __init__(self, channels: int, image_size: int, width: int, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.data_shape = (channels, image_size, image_size)
        self.width = width
        embed = 4 * width
        self.time_mlp = nn.Sequential(nn.Linear(width, embed), nn.SiLU(), nn.Linear(embed, embed))
        self.class_embed = nn.Embedding(num_classes + 1, embed) if num_classes else None
        self.stem = nn.Conv2d(channels, width, 3, padding=1)
        self.down = ResBlock(width, width, embed)
        self.downsample = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1)
        self.middle1 = ResBlock(2 * width, 2 * width, embed)
        self.middle2 = ResBlock(2 * width, 2 * width, embed)
        self.upsample = nn.Conv2d(2 * width, width, 3, padding=1)
        self.up = ResBlock(2 * width, width, embed)
        self.head = nn.Sequential(
            nn.GroupNorm(8, width), nn.SiLU(), nn.Conv2d(width, channels, 3, padding=1)
        )

    def forward(self, x: Tensor, t: Tensor, labels: Tensor | None = None) -> Tensor:
        e = self.time_mlp(sinusoidal_embedding(t, self.width))  # (N, 4w)
        if self.class_embed is not None:
            if labels is None:  # no label: the null class
                labels = torch.full((x.shape[0],), self.num_classes, dtype=torch.long)
            e = e + self.class_embed(labels)
        e = nn.functional.silu(e)
        skip = self.down(self.stem(x), e)  # (N, w, S, S)
        h = self.downsample(skip)  # (N, 2w, S/2, S/2)
        h = self.middle2(self.middle1(h, e), e)
        h = self.upsample(
            nn.functional.interpolate(h, scale_factor=2.0, mode="nearest")
        )  # (N, w, S, S)
        h = self.up(torch.cat([h, skip], dim=1), e)
        out: Tensor = self.head(h)  # (N, C, S, S)
        return out
