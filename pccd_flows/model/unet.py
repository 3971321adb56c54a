"""The denoiser: a 1D U-Net over the point axis, ResNet blocks modulated by time and condition, attention where cheap.

The paper's tensor is 3 x 128 x 3; here its 3 x 3 values of each point are 9 features of a sequence of 128 points.
Atoms occupy contiguous runs of points (see the codec), so down-sampling along the point axis pools the copies of an
atom together, and self-attention at the coarse levels lets every atom see the lattice and every other atom (the
paper's "intra-data correlation") at a fraction of the cost of attention over all 128 points.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from pccd_flows.model.config import ModelConfig


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels), channels)


class ResBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float):
        super().__init__()
        self.norm1 = _norm(in_ch)
        self.conv1 = nn.Conv1d(in_ch, out_ch, 3, padding=1)
        self.film = nn.Linear(emb_dim, 2 * out_ch)  # scale and shift from time + conditions
        self.norm2 = _norm(out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv1d(out_ch, out_ch, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv1d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(F.silu(emb))[:, :, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return h + self.skip(x)


class SelfAttention(nn.Module):
    def __init__(self, channels: int, heads: int):
        super().__init__()
        self.norm = _norm(channels)
        self.attention = nn.MultiheadAttention(channels, heads, batch_first=True)
        nn.init.zeros_(self.attention.out_proj.weight)
        nn.init.zeros_(self.attention.out_proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x).transpose(1, 2)
        h, _ = self.attention(h, h, h, need_weights=False)
        return x + h.transpose(1, 2)


class Level(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, n_blocks: int, attention: bool, heads: int, dropout):
        super().__init__()
        self.blocks = nn.ModuleList(
            ResBlock(in_ch if i == 0 else out_ch, out_ch, emb_dim, dropout) for i in range(n_blocks)
        )
        self.attention = SelfAttention(out_ch, heads) if attention else None

    def forward(self, x, emb):
        for block in self.blocks:
            x = block(x, emb)
        if self.attention is not None:
            x = self.attention(x)
        return x


class ConditionEmbedding(nn.Module):
    """Elements of the three slots, band-gap class and magnetic class -> one vector added to the time embedding."""

    def __init__(self, n_element_tokens: int, n_band_gap: int, n_magnetic: int, dim: int):
        super().__init__()
        self.element = nn.Embedding(n_element_tokens, dim)
        self.slot = nn.Parameter(torch.zeros(3, dim))  # which slot an element sits in matters to the decoder
        self.band_gap = nn.Embedding(n_band_gap, dim)
        self.magnetic = nn.Embedding(n_magnetic, dim)
        self.mix = nn.Sequential(nn.Linear(3 * dim + 2 * dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, elements, band_gap, magnetic):
        slots = (self.element(elements) + self.slot[None]).flatten(1)
        return self.mix(torch.cat([slots, self.band_gap(band_gap), self.magnetic(magnetic)], dim=1))


class PointCloudUNet(nn.Module):
    def __init__(self, config: ModelConfig, n_element_tokens: int, n_band_gap: int, n_magnetic: int):
        super().__init__()
        self.config = config
        width = config.base_width
        emb_dim = 4 * width
        self.time_mlp = nn.Sequential(nn.Linear(width, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.conditions = ConditionEmbedding(n_element_tokens, n_band_gap, n_magnetic, emb_dim)
        self.stem = nn.Conv1d(config.in_features, width, 3, padding=1)

        channels = [width * m for m in config.multipliers]
        length = config.n_points
        self.down = nn.ModuleList()
        self.pool = nn.ModuleList()
        previous = width
        skips = []
        for index, ch in enumerate(channels):
            self.down.append(
                Level(previous, ch, emb_dim, config.blocks_per_level, length <= config.attention_max_length,
                      config.heads, config.dropout)
            )
            skips.append((ch, length))
            previous = ch
            if index < len(channels) - 1:
                self.pool.append(nn.Conv1d(ch, ch, 3, stride=2, padding=1))
                length //= 2
        self.middle = Level(previous, previous, emb_dim, config.blocks_per_level, True, config.heads, config.dropout)
        self.up = nn.ModuleList()
        self.unpool = nn.ModuleList()
        for index, (ch, skip_length) in enumerate(reversed(skips)):
            self.up.append(
                Level(previous + ch, ch, emb_dim, config.blocks_per_level,
                      skip_length <= config.attention_max_length, config.heads, config.dropout)
            )
            previous = ch
            if index < len(skips) - 1:
                self.unpool.append(nn.ConvTranspose1d(ch, ch, 4, stride=2, padding=1))
        self.head = nn.Sequential(_norm(previous), nn.SiLU(), nn.Conv1d(previous, config.in_features, 3, padding=1))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def forward(self, x, t, elements, band_gap, magnetic):
        """x: (B, 9, n_points) noisy features; returns the predicted noise of the same shape."""
        emb = self.time_mlp(timestep_embedding(t, self.config.base_width))
        emb = emb + self.conditions(elements, band_gap, magnetic)
        h = self.stem(x)
        skips = []
        for index, level in enumerate(self.down):
            h = level(h, emb)
            skips.append(h)
            if index < len(self.pool):
                h = self.pool[index](h)
        h = self.middle(h, emb)
        for index, level in enumerate(self.up):
            h = level(torch.cat([h, skips.pop()], dim=1), emb)
            if index < len(self.unpool):
                h = self.unpool[index](h)
        return self.head(h)
