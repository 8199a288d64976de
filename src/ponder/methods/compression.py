"""CoLaR's compression: every ``c`` consecutive reasoning-token embeddings become one vector.

Groups never straddle the end of a row's reasoning and padding never enters a group, so a row of
length L gives ceil(L / c) groups and its last group may hold fewer than c tokens. ``sum`` scales by
1/sqrt(real tokens in the group), which keeps the norm of a sum of roughly independent embeddings at
the norm of one embedding (the paper's choice); ``mean`` divides by the count. c = 1 is the identity.
"""

from __future__ import annotations

import torch

MODES = ("sum", "mean")


def compress(embeds: torch.Tensor, lengths: torch.Tensor, c: int, mode: str = "sum") -> tuple[torch.Tensor, torch.Tensor]:
    """embeds (B, L, d) right-padded, lengths (B,) -> (compressed (B, G, d), groups per row (B,)).

    G = ceil(max(lengths) / c); slots past a row's own group count are zero.
    """
    if c < 1:
        raise ValueError(f"compression factor must be >= 1, got {c}")
    if mode not in MODES:
        raise ValueError(f"compression mode must be one of {MODES}, got {mode!r}")
    B, L, d = embeds.shape
    G = -(-int(lengths.max()) // c) if B and L else 0
    embeds = embeds[:, : G * c]
    if embeds.shape[1] < G * c:
        embeds = torch.nn.functional.pad(embeds, (0, 0, 0, G * c - embeds.shape[1]))
    real = torch.arange(G * c, device=embeds.device)[None, :] < lengths[:, None]  # (B, G*c)
    summed = (embeds * real[..., None].to(embeds.dtype)).view(B, G, c, d).sum(2)
    counts = real.view(B, G, c).sum(2)  # (B, G)
    scale = counts.clamp(min=1).to(embeds.dtype)
    scale = scale.sqrt() if mode == "sum" else scale
    out = summed / scale[..., None]
    groups = -(-lengths // c)
    return out, groups


def sample_group_tokens(ids: torch.Tensor, lengths: torch.Tensor, c: int, generator=None) -> torch.Tensor:
    """For each group, one of its real tokens drawn uniformly: the LM's label for the slot before it.

    Returns (B, G) token ids (undefined past a row's group count). With c = 1 it is ``ids`` itself.
    """
    B = ids.shape[0]
    G = -(-int(lengths.max()) // c) if B else 0
    starts = torch.arange(G, device=ids.device)[None, :] * c  # (1, G)
    sizes = (lengths[:, None] - starts).clamp(min=1, max=c)  # (B, G)
    offset = (torch.rand((B, G), generator=generator, device="cpu").to(ids.device) * sizes).long()
    idx = (starts + offset).clamp(max=max(ids.shape[1] - 1, 0))
    return ids.gather(1, idx)
