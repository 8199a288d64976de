"""Continuous thoughts at training time (Coconut, CODI): the slots of a batch filled one after another.

A continuous thought is the model's own last-layer hidden state fed back as the next input embedding
(through ``PonderModel.thought_input``: Coconut as is, CODI through a learned projection). Thought j's
input depends on every earlier thought, so the slots are filled sequentially: pass j runs the model over
the sequence up to the furthest slot j of the batch and writes ``thought_input(hidden just before slot j)``
into slot j. Writes are out of place, so the final pass's losses back-propagate through every thought, as
in Coconut (no truncation). Rows may hold their slots at different indices (questions differ in length);
causal attention makes the hidden state before a slot independent of whatever follows it in the prefix.

Cost: one prefix pass per thought plus the full pass (Coconut reuses a KV cache across passes; for the
small models and short prefixes here the recomputation is simpler and exact).
"""

from __future__ import annotations


def unroll(model, ponder, batch: dict, **forward_kw):
    """Fill ``batch['thought_mask']``'s slots of ``batch['inputs_embeds']`` and return the final pass's output.

    ``model`` is what to call (Trainer may wrap it), ``ponder`` the unwrapped PonderModel (its ``thought_input``).
    ``batch['inputs_embeds']`` is replaced by the filled embeddings; ``forward_kw`` go to the final pass."""
    embeds, mask = batch["inputs_embeds"], batch["thought_mask"]
    attn, pos = batch["attention_mask"], batch["position_ids"]
    counts = mask.sum(1)
    first = mask.long().argmax(1)  # index of each row's first slot (slots are contiguous)
    for j in range(int(counts.max()) if mask.numel() else 0):
        rows = (counts > j).nonzero().flatten()
        at = first[rows] + j  # slot j of each row that has one
        end = int(at.max())  # the prefix up to (without) the furthest slot j holds every needed hidden state
        out = model(inputs_embeds=embeds[:, :end], attention_mask=attn[:, :end], position_ids=pos[:, :end])
        x = ponder.thought_input(out.hidden[rows, at - 1])
        embeds = embeds.index_put((rows, at), x.to(embeds.dtype))
    batch["inputs_embeds"] = embeds
    return model(inputs_embeds=embeds, attention_mask=attn, position_ids=pos, **forward_kw)
