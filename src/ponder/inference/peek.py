"""Peek into latent thoughts: each latent step shown as its nearest tokens.

Two views: what the LM predicted at the step (trained to be a token of the group the latent encodes),
and the tokens whose embeddings are closest (cosine) to the latent vector itself.
"""

from __future__ import annotations

import torch


def nearest_tokens(model, latents: torch.Tensor, k: int = 3) -> list[list[str]]:
    emb = model.lm.get_input_embeddings().weight.float()
    sims = torch.nn.functional.normalize(latents.float().to(emb.device), dim=-1) @ torch.nn.functional.normalize(emb, dim=-1).T
    ids = sims.topk(k, -1).indices.tolist()
    return [[model.tokenizer.decode([i]) for i in row] for row in ids]


def peek(model, generation, k: int = 3) -> list[dict]:
    """One entry per latent step: {'step', 'lm': [tokens], 'cosine': [tokens]}."""
    if generation.latents is None or generation.reasoning_length == 0:
        return []
    cos = nearest_tokens(model, generation.latents, k)
    lm = [[model.tokenizer.decode([i]) for i in row[:k]] for row in generation.latent_top_ids]
    return [{"step": i + 1, "lm": lm[i], "cosine": cos[i]} for i in range(generation.reasoning_length)]
