"""CoLaR's compression: every ``c`` consecutive reasoning-token embeddings become one vector.

Groups never straddle the end of a row's reasoning and padding never enters a group, so a row of
length L gives ceil(L / c) groups and its last group may hold fewer than c tokens. ``sum`` scales by
1/sqrt(real tokens in the group), which keeps the norm of a sum of roughly independent embeddings at
the norm of one embedding (the paper's choice); ``mean`` divides by the count. c = 1 is the identity.

A sum forgets the order inside its group: e(a) + e(b) = e(b) + e(a). Where the reasoning cannot tell
the order apart from context (running sums mod 10: when a group's second digit adds 5, the pair
{x, x + 5} fits both orders), the latent chain then picks up the wrong state half the time. ``ordered``
weights the j-th of n real tokens by (n + j) / n (from 1 up to almost 2), scaled to the norm of one
embedding like ``sum``: the later, newer token weighs more, so the order survives the compression, while
every token keeps at least half the weight of any other (a steeper ramp, (j + 1) / n, starved the early
tokens: on running-sum it lost c = 4 altogether, benchmarks/colar_tradeoff).
"""

from __future__ import annotations

import torch

MODES = ("sum", "mean", "ordered")


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
    weights = real.to(embeds.dtype).view(B, G, c)
    counts = weights.sum(2)  # (B, G) real tokens per group
    if mode == "ordered":
        n = counts.clamp(min=1)[..., None]
        weights = (n + weights.cumsum(2) - 1) * weights / n  # (n + j) / n on real tokens, 0 on padding
    summed = (embeds.reshape(B, G, c, d) * weights[..., None]).sum(2)
    # sum, ordered: divide by the weights' norm (sqrt(count) for sum), the norm of one embedding for roughly
    # independent embeddings. Every real token weighs >= 1, so clamping at 1 only touches empty groups.
    scale = (counts if mode == "mean" else weights.pow(2).sum(2).sqrt()).clamp(min=1)
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
