"""CoLaR's latent head: predicts the next compressed embedding as a diagonal Gaussian.

Working in units of the embedding matrix's standard deviation (targets divided by ``embed_std``, samples
multiplied back) keeps the head's outputs O(1) for every model family, so no per-model constant is needed.
Sampling from the Gaussian (temperature > 0) is what lets RL explore different latent reasoning paths.

Two styles: ``ponder`` (two GELU layers of the model's hidden width, log-std clamped so exp() stays finite
under the NLL loss) and ``official`` (the CoLaR code's head: Linear -> GELU -> Linear -> LayerNorm, log-std
unclamped), kept so the two can be compared on the same data (benchmarks/colar_transfer). Both default to the
model's hidden width: the official code's 2048 is the hidden size of the Llama-3.2-1B it was trained with, and
a 2048-wide head on a 128-wide model would be four times the model's size.
"""

from __future__ import annotations

import math

import torch
from torch import nn


STYLES = ("ponder", "official")


class LatentHead(nn.Module):
    def __init__(self, hidden_size: int, embed_size: int, inner_size: int | None = None, style: str = "ponder"):
        super().__init__()
        if style not in STYLES:
            raise ValueError(f"latent head style must be one of {STYLES}, got {style!r}")
        inner = inner_size or hidden_size
        last = nn.LayerNorm(inner) if style == "official" else nn.GELU()
        self.mlp = nn.Sequential(nn.Linear(hidden_size, inner), nn.GELU(), nn.Linear(inner, inner), last)
        self.mean = nn.Linear(inner, embed_size)
        self.log_std = nn.Linear(inner, embed_size)
        self.clamp = style == "ponder"
        self.config = {"hidden_size": hidden_size, "embed_size": embed_size, "inner_size": inner, "style": style}

    def forward(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.mlp(hidden)
        log_std = self.log_std(h)
        # Clamp keeps exp(log_std) finite in NLL and RL ratios early in training.
        return self.mean(h), log_std.clamp(-7.0, 2.0) if self.clamp else log_std

    @staticmethod
    def sample(mean: torch.Tensor, log_std: torch.Tensor, temperature: float, generator=None) -> torch.Tensor:
        """temperature 0 returns the mean; otherwise mean + temperature * std * noise."""
        if temperature <= 0:
            return mean
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + temperature * log_std.exp() * noise

    @staticmethod
    def log_prob(x: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
        """Log-density of x under the diagonal Gaussian, summed over the last dimension."""
        z = (x - mean) / log_std.exp()
        return (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
