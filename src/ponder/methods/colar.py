"""CoLaR SFT (arXiv 2505.16552): compressed latent reasoning with a thinking speed.

Per optimizer step a compression factor c is drawn (from 1..max_compression, or the ``compressions``
list) and written into the prompt as the speed marker (``auto`` with probability ``auto_prob``: then
the model learns to pick a pace without being told). The reasoning embeddings are compressed in groups
of c (``compression.py``) and the model learns two things at once (``batch.py`` lays out the sequence):

* the LM loss: at each latent slot, a token drawn from the *next* group (so the LM keeps reading the
  reasoning through the compressed inputs) and ``</think>`` after the last one, then the answer;
* the latent head loss: the next compressed embedding, in units of the embedding std: the Gaussian's NLL by
  default (its 1/std^2 weighting sharpens the mean where the head is sure, and RL needs a trained std),
  or MSE on the mean.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import torch

from ponder.errors import PonderError
from ponder.methods.compression import MODES
from ponder.methods.trainer import CoTConfig, CoTTrainer
from ponder.model.latent_head import STYLES, LatentHead

LATENT_LOSSES = ("nll", "mse", "mse-sample")

POSITION_MODES = ("contiguous", "stretched")


def parse_compressions(text: str | None, max_compression: int) -> list[int]:
    if not text:
        return list(range(1, max_compression + 1))
    try:
        values = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise PonderError(f"--compressions must be a comma-separated list of integers, got '{text}'") from None
    if not values or any(v < 1 for v in values):
        raise PonderError(f"--compressions must list integers >= 1, got '{text}'")
    return sorted(set(values))


@dataclass
class CoLaRConfig(CoTConfig):
    method: str = field(default="colar", metadata={"help": "Always 'colar'."})
    max_compression: int = field(default=5, metadata={"help": "c is drawn from 1..max_compression per step."})
    compressions: str | None = field(default=None, metadata={"help": "Comma list of c values, instead of 1..max."})
    auto_prob: float = field(default=0.0, metadata={"help": "Probability that the marker says 'auto' instead of c."})
    speed_curriculum: float = field(default=0.0, metadata={
        "help": "Fraction of the steps over which the speeds come in one at a time, smallest first (equal "
                "stages; then all speeds); 0 draws from every speed from the first step."})
    compression: str = field(default="sum", metadata={
        "help": "'sum' (sum / sqrt(count), the paper), 'mean', or 'ordered' (weights (n + j) / n over the group, "
                "so the order inside a group survives; see compression.py)."})
    latent_loss: str = field(default="nll", metadata={
        "help": "'nll' of the Gaussian (trains the std that RL samples with, and weighs each dimension by it), "
                "'mse' on the mean only (the std stays untrained), or 'mse-sample': MSE of a reparameterised "
                "sample mean + std * noise, as the official CoLaR code (trains the std towards 0)."})
    latent_head: str = field(default="ponder", metadata={
        "help": "'ponder' (GELU MLP, clamped log-std) or 'official' (the CoLaR code's head: MLP -> LayerNorm, "
                "unclamped log-std); both of the model's hidden width, see model/latent_head.py."})
    ce_weight: float = field(default=1.0, metadata={"help": "Weight of the LM's next-token loss."})
    latent_weight: float = field(default=1.0, metadata={"help": "Weight of the latent head loss."})
    latent_positions: str = field(default="stretched", metadata={
        "help": "'contiguous': one position per latent step (paper); 'stretched': latent k sits at P + k*c, "
                "keeping the distances learned during CoT."})

    def __post_init__(self):
        self.method = "colar"
        self.speeds = parse_compressions(self.compressions, self.max_compression)
        if self.max_compression < 1:
            raise PonderError(f"--max-compression must be >= 1, got {self.max_compression}")
        if not 0.0 <= self.speed_curriculum <= 1.0:
            raise PonderError(f"--speed-curriculum must be in [0, 1], got {self.speed_curriculum}")
        if not 0.0 <= self.auto_prob <= 1.0:
            raise PonderError(f"--auto-prob must be in [0, 1], got {self.auto_prob}")
        if self.compression not in MODES:
            raise PonderError(f"--compression must be one of {', '.join(MODES)}, got '{self.compression}'")
        if self.latent_loss not in LATENT_LOSSES:
            raise PonderError(f"--latent-loss must be one of {', '.join(LATENT_LOSSES)}, got '{self.latent_loss}'")
        if self.latent_head not in STYLES:
            raise PonderError(f"--latent-head must be one of {', '.join(STYLES)}, got '{self.latent_head}'")
        if self.latent_positions not in POSITION_MODES:
            raise PonderError(f"--latent-positions must be one of {', '.join(POSITION_MODES)}, got '{self.latent_positions}'")
        super().__post_init__()


class CoLaRTrainer(CoTTrainer):
    def __init__(self, model, args: CoLaRConfig, train_dataset, **kw):
        have = model.latent_head.config.get("style", "ponder") if model.latent_head is not None else None
        if have not in (None, args.latent_head):
            raise PonderError(f"--latent-head {args.latent_head}: the --init model already has a '{have}' latent "
                              f"head, which training would keep; start from a model without one (e.g. a CoT model)")
        model.add_latent_head(args.latent_head)
        st = model.settings
        st.max_compression = max(args.speeds)
        st.latent_positions = args.latent_positions
        self._auto_c: int | None = None
        super().__init__(model, args, train_dataset, **kw)

    def positions_used(self, model, args, r):
        """The most positions the record spans at any c this run may draw: m = ceil(n / c) latent slots, each
        advancing the position by c when ``stretched`` (so up to c - 1 more positions than CoT's tokens);
        ``auto`` lays them contiguously (batch.py)."""
        q, n, a = self.piece_lengths(model, r)
        stretched = args.latent_positions == "stretched"
        spans = [q + self.speed_length(model, c) + -(-n // c) * (c if stretched else 1) + a for c in args.speeds]
        if args.auto_prob > 0:
            spans.append(q + self.speed_length(model, "auto") + -(-n // min(args.speeds)) + a)
        return max(spans)

    def layout_note(self, args):
        return (f" (stretched latent positions: c up to {max(args.speeds)} per latent step)"
                if args.latent_positions == "stretched" and max(args.speeds) > 1 else "")

    def speeds_now(self) -> list[int]:
        """The speeds this step may draw. Under ``speed_curriculum`` the larger c come in one at a time, so a
        small model first learns the latent head where its targets are easy (a function of the step alone,
        so every process and a resumed run draw alike)."""
        speeds, span = self.args.speeds, self.args.speed_curriculum * self.state.max_steps
        if span <= 0 or self.state.global_step >= span:
            return speeds
        return speeds[:1 + int(self.state.global_step * len(speeds) // span)]

    def speed(self):
        rng = random.Random((self.args.seed * 1_000_003 + self.state.global_step) * 7 + 1)
        c = rng.choice(self.speeds_now())
        self._auto_c = c
        return "auto" if rng.random() < self.args.auto_prob else c

    def compression(self, speed):
        # 'auto' still compresses by the drawn c, but positions cannot depend on a pace the model is not
        # told: auto uses contiguous positions, at training and inference alike.
        c = self._auto_c
        stretch = c if (self.args.latent_positions == "stretched" and speed != "auto") else 1
        return c, stretch

    def method_losses(self, batch, out):
        losses = super().method_losses(batch, out)
        mask = batch["latent_mask"]
        # The scale is re-measured every step (embeddings trained from scratch grow) and saved with the
        # model, so inference multiplies the head's output by the scale its targets were divided by.
        std = self.ponder.measure_embed_std()
        self.ponder.settings.embed_std = std
        target = batch["latent_targets"][mask].float() / std
        mean, log_std = out.latent_mean[mask].float(), out.latent_log_std[mask].float()
        if target.numel() == 0:
            losses["latent_loss"] = mean.sum() * 0.0
        elif self.args.latent_loss == "mse":
            losses["latent_loss"] = (mean - target).pow(2).mean()
        elif self.args.latent_loss == "mse-sample":
            sample = mean + log_std.exp() * torch.randn_like(mean)
            losses["latent_loss"] = (sample - target).pow(2).mean()
        else:
            losses["latent_loss"] = -LatentHead.log_prob(target, mean, log_std).mean() / target.shape[-1]
        return losses

    def extra_metrics(self, speed, c, losses):
        # Per-c latent loss: a falling mean can hide a c whose latent head never learns.
        return {"speed": c, f"latent_loss_c{c}": losses["latent_loss"]}

    def combine(self, losses):
        return self.args.ce_weight * losses["ce_loss"] + self.args.latent_weight * losses["latent_loss"]

