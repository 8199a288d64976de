"""Stepwise internalization, iCoT-SI (Deng, Choi & Shieber 2024, arXiv 2405.14838).

Train on CoT while removing reasoning *tokens* from the front, a few more as training goes on: at
(fractional) epoch e the first floor(e x ``remove_per_epoch``) tokens of every chain are gone, until none
is left and the model answers right after ``<think>``. Why: each removal is a small step, so the model
has time to "internalize" the removed tokens into its hidden states, instead of facing the jump from CoT
to No-CoT at once. Removal smoothing adds a random offset o >= 0 per example, P(o) ~ exp(-lambda o), so
that the next removal is already seen now and then (the paper: Delta = 8 tokens per epoch, lambda = 4).

The prompt is CoT's (speed 1) and the model stays a "tokens" model: at inference it writes whatever
reasoning it still has (ideally none) and its reasoning length is counted in tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ponder.errors import PonderError
from ponder.methods.batch import Pieces
from ponder.methods.trainer import CoTConfig, CoTTrainer

MAX_OFFSET = 100  # smoothing offsets are drawn from 0..MAX_OFFSET (the paper's code truncates at 100 too)


def icot_removed(epoch: float, remove_per_epoch: float) -> int:
    """Reasoning tokens removed from the front of every chain at a (fractional) epoch."""
    return int(math.floor(epoch * remove_per_epoch + 1e-9))


def offset_probs(smoothing: float, max_offset: int = MAX_OFFSET) -> torch.Tensor:
    """P(o) ~ exp(-smoothing x o) for o in 0..max_offset; smoothing 0 turns smoothing off (o = 0 always)."""
    if smoothing <= 0:
        p = torch.zeros(max_offset + 1, dtype=torch.float64)
        p[0] = 1.0
        return p
    p = torch.exp(-smoothing * torch.arange(max_offset + 1, dtype=torch.float64))
    return p / p.sum()


def icot_remove(tokens: list, removed: int, offset: int = 0) -> list:
    """The chain with its first ``removed + offset`` tokens removed."""
    return list(tokens[removed + offset:])


@dataclass
class ICoTConfig(CoTConfig):
    method: str = field(default="icot", metadata={"help": "Always 'icot'."})
    remove_per_epoch: float = field(default=8.0, metadata={
        "help": "Reasoning tokens removed from the front per epoch (the paper's Delta: 8). Tune it to the chain "
                "length and the number of epochs: all tokens should be gone well before training ends."})
    removal_smoothing: float = field(default=4.0, metadata={
        "help": "lambda of the removal offset distribution P(o) ~ exp(-lambda o) (the paper: 4); 0 = no smoothing."})
    reset_optimizer: bool = field(default=False, metadata={
        "help": "Clear the optimizer's state whenever the number of removed tokens changes (the paper's code can)."})

    def __post_init__(self):
        self.method = "icot"
        if self.remove_per_epoch < 0:
            raise PonderError(f"--remove-per-epoch must be >= 0, got {self.remove_per_epoch}")
        if self.removal_smoothing < 0:
            raise PonderError(f"--removal-smoothing must be >= 0, got {self.removal_smoothing}")
        super().__post_init__()


class ICoTTrainer(CoTTrainer):
    progress_keys = ("removed",)

    def __init__(self, model, args: ICoTConfig, train_dataset, **kw):
        self._removed: int | None = None
        self._probs = offset_probs(args.removal_smoothing)
        super().__init__(model, args, train_dataset, **kw)

    def speed(self):
        return 1  # CoT's prompt

    def make_batch(self, inputs, speed, c, stretch, generator, pieces=None, thoughts=None):
        n = icot_removed(self.state.epoch or 0.0, self.args.remove_per_epoch)
        if self._removed is not None and n != self._removed and self.args.reset_optimizer:
            self.reset_optimizer_state()
        self._removed = n
        p: Pieces = inputs["pieces"]
        offsets = torch.multinomial(self._probs, len(p), replacement=True, generator=generator).tolist()
        pieces = Pieces(p.questions, [icot_remove(r, n, o) for r, o in zip(p.reasoning, offsets)], p.answers)
        return super().make_batch(inputs, speed, c, stretch, generator, pieces=pieces)

    def extra_metrics(self, speed, c, losses):
        return {"removed": self._removed}
