"""The training sequence of every method, built from the prompt layout's pieces.

For a compression factor c (CoT: c = 1) one row is::

    seq index : 0 .. P-1                  P .. P+m-1              P+m            P+m+1 ...
    input     : question, speed, <think>  m compressed slots      </think>       answer tokens, <eos>
    position  : 0 .. P-1                  (P-1) + (g+1)*s         (P-1)+m*s+1    +1 each
    LM label  : -100 .., token of group 0 token of group g+1      answer...      (next token)
                                          (last: </think>)
    latent    : at <think> and slot g: the compressed vector of group g+1, in units of embed_std

where s = 1 for ``contiguous`` positions (the paper) and s = c for ``stretched`` ones: slot g then sits
where the *last* token of its group sat in CoT, so the relative distances the CoT model learned (from
"the token I just read" to the next question item) still hold. With c = 1 this is exactly CoT SFT.

Continuous-thought methods (Coconut, CODI) ask for ``thoughts[b]`` slots right after ``<think>``: input
id 0 (``thought_mask`` marks them; ``methods/thoughts.py`` fills them with fed-back hidden states), label
-100 except that the last one predicts the first following token, one position each; the row's reasoning
(what is left of it) and the answer follow as above, shifted by the slots.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn.utils.rnn import pad_sequence

from ponder.methods.compression import compress, sample_group_tokens
from ponder.model.positions import check_positions


@dataclass
class Pieces:
    """A tokenized batch, before the speed is chosen: what the collator hands to the trainer."""

    questions: list[list[int]]
    reasoning: list[list[int]]
    answers: list[list[int]]

    def __len__(self):
        return len(self.questions)


def build_batch(model, pieces: Pieces, speed_ids: list[int], think_id: int, c: int = 1, stretch: int = 1,
                think: bool = True, mode: str = "sum", generator=None,
                thoughts: list[int] | None = None) -> dict[str, torch.Tensor]:
    """Returns input_ids, inputs_embeds, attention_mask, position_ids, labels (already shifted: the target of the
    prediction made *at* each index), latent_targets, latent_mask and thought_mask (``thoughts``: per-row
    number of continuous-thought slots after ``<think>``; None: none)."""
    device = model.device
    B = len(pieces)
    r_len = torch.tensor([len(r) if think else 0 for r in pieces.reasoning], device=device)
    r_ids = pad_sequence([torch.tensor(r if think else [], dtype=torch.long) for r in pieces.reasoning],
                         batch_first=True, padding_value=0).to(device)
    if r_ids.shape[1] == 0:
        r_ids = torch.zeros((B, 1), dtype=torch.long, device=device)
    compressed, groups = compress(model.embed(r_ids), r_len, c, mode)
    group_labels = sample_group_tokens(r_ids, r_len, c, generator)

    ids, pos, lab, slot, tgt_at, th = [], [], [], [], [], []
    for b in range(B):
        prompt = pieces.questions[b] + speed_ids + [think_id]
        P, m, ans = len(prompt), int(groups[b]), pieces.answers[b]
        t = thoughts[b] if thoughts else 0
        ids.append(prompt + [0] * t + [0] * m + ans)
        base = (P - 1) + t  # position (and index) of the last input before the reasoning slots
        end_pos = base + m * stretch + 1
        pos.append(list(range(P + t)) + [base + (g + 1) * stretch for g in range(m)]
                   + list(range(end_pos, end_pos + len(ans))))
        labels = ([-100] * (P - 1 + t) + group_labels[b, :m].tolist() + [ans[0] if think else -100] + ans[1:]
                  + [-100])
        lab.append(labels)
        slot.append([False] * (P + t) + [True] * m + [False] * len(ans))
        tgt_at.append([False] * (P - 1 + t) + [True] * m + [False] * (len(ans) + 1))
        th.append([False] * P + [True] * t + [False] * (m + len(ans)))

    # Trainers check their longest layout before the first step; this keeps any other caller from an
    # IndexError inside a model with a position table (GPT-2) too.
    check_positions(model, max(p[-1] for p in pos) + 1, "a training batch", "lower --max-length")

    def pad(rows, value, dtype):
        return pad_sequence([torch.tensor(r, dtype=dtype) for r in rows], batch_first=True, padding_value=value).to(device)

    input_ids = pad(ids, 0, torch.long)
    attention_mask = pad([[1] * len(r) for r in ids], 0, torch.long)
    slot_mask = pad(slot, False, torch.bool)
    latent_mask = pad(tgt_at, False, torch.bool)
    valid = torch.arange(compressed.shape[1], device=device)[None, :] < groups[:, None]
    embeds = model.embed(input_ids)
    # Slots and groups are both enumerated row by row, left to right, so masked_scatter aligns them.
    embeds = embeds.masked_scatter(slot_mask[..., None], compressed[valid].to(embeds.dtype))
    targets = torch.zeros_like(embeds)
    targets = targets.masked_scatter(latent_mask[..., None], compressed[valid].detach().to(embeds.dtype))
    return {
        "input_ids": input_ids,  # token ids, 0 at latent slots (their inputs are the compressed vectors)
        "inputs_embeds": embeds,
        "attention_mask": attention_mask,
        "position_ids": pad(pos, 0, torch.long),
        "labels": pad(lab, -100, torch.long),
        "latent_targets": targets,
        "latent_mask": latent_mask,
        "thought_mask": pad(th, False, torch.bool),  # continuous-thought slots (input id 0 until filled)
    }
