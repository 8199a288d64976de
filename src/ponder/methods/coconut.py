"""Coconut (arXiv 2412.06769): reasoning in a continuous space through a curriculum.

The last hidden state is fed back as the next input embedding (a "continuous thought") instead of being
decoded into a token. Training starts from CoT data (ideally a CoT model) and moves through stages: at
stage k the first k reasoning steps are replaced by k x ``thoughts_per_step`` continuous thoughts, the
model being trained (cross-entropy) on the remaining steps, ``</think>`` and the answer; at the last stage
every language step is gone. Gradients flow through all the thoughts (``thoughts.py``). Why: the thoughts
are free to encode several alternative next steps at once (breadth-first search in latent space) and cost
one forward pass each instead of a whole step of tokens. Inference always thinks ``max_stage x
thoughts_per_step`` thoughts, as the paper does; the prompt has no speed marker.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ponder.errors import PonderError
from ponder.methods.batch import Pieces
from ponder.methods.thoughts import unroll
from ponder.methods.trainer import CoTConfig, CoTTrainer


def coconut_stage(epoch: float, epochs_per_stage: float, max_stage: int) -> int:
    """The curriculum stage at a (fractional) epoch: one stage every ``epochs_per_stage`` epochs, capped."""
    return min(int(epoch // epochs_per_stage), max_stage)


def coconut_layout(steps: list, stage: int, thoughts_per_step: int, max_stage: int) -> tuple[int, list]:
    """(number of continuous thoughts, remaining language steps) of one example at ``stage``.

    Stage k replaces the first k steps by k x thoughts_per_step thoughts (k thoughts even when the example
    has fewer steps, as the paper's code does); the last stage removes every remaining step too."""
    if stage >= max_stage:
        return max_stage * thoughts_per_step, []
    return stage * thoughts_per_step, list(steps[stage:])


@dataclass
class CoconutConfig(CoTConfig):
    method: str = field(default="coconut", metadata={"help": "Always 'coconut'."})
    thoughts_per_step: int = field(default=1, metadata={
        "help": "Continuous thoughts that replace one reasoning step (the paper's c; 1 for ProsQA/ProntoQA, 2 for GSM8K)."})
    epochs_per_stage: float = field(default=1.0, metadata={
        "help": "Epochs spent at each curriculum stage (may be fractional; the paper uses 3 on GSM8K, 5 on logic tasks)."})
    max_stage: int = field(default=3, metadata={
        "help": "Last stage: this many steps become thoughts and every other step is removed (paper: 3 on GSM8K)."})
    reset_optimizer: bool = field(default=False, metadata={
        "help": "Clear the optimizer's state whenever the stage changes (the paper's code does)."})

    def __post_init__(self):
        self.method = "coconut"
        if self.thoughts_per_step < 1:
            raise PonderError(f"--thoughts-per-step must be >= 1, got {self.thoughts_per_step}")
        if self.epochs_per_stage <= 0:
            raise PonderError(f"--epochs-per-stage must be > 0, got {self.epochs_per_stage}")
        if self.max_stage < 0:
            raise PonderError(f"--max-stage must be >= 0, got {self.max_stage}")
        super().__post_init__()


class CoconutTrainer(CoTTrainer):
    progress_keys = ("stage",)

    def __init__(self, model, args: CoconutConfig, train_dataset, **kw):
        model.settings.num_thoughts = args.max_stage * args.thoughts_per_step
        self._stage: int | None = None
        super().__init__(model, args, train_dataset, **kw)

    def speed(self):
        return None  # question + <think>: no speed marker

    def positions_used(self, model, args, r):
        """The most positions the record spans at any stage: its thoughts, one each, then what is left."""
        lay, tok = model.settings.layout, model.tokenizer
        q, _, a = self.piece_lengths(model, r)
        middle = max(t + len(lay.reasoning_ids(tok, rest)) for t, rest in (
            coconut_layout(r.steps, k, args.thoughts_per_step, args.max_stage) for k in range(args.max_stage + 1)))
        return q + self.speed_length(model, None) + middle + a

    def stage(self) -> int:
        a = self.args
        return coconut_stage(self.state.epoch or 0.0, a.epochs_per_stage, a.max_stage)

    def make_batch(self, inputs, speed, c, stretch, generator, pieces=None, thoughts=None):
        a, tok, lay = self.args, self.ponder.tokenizer, self.ponder.settings.layout
        k = self.stage()
        if self._stage is not None and k != self._stage and a.reset_optimizer:
            self.reset_optimizer_state()
        self._stage = k
        layouts = [coconut_layout(r.steps, k, a.thoughts_per_step, a.max_stage) for r in inputs["records"]]
        p = inputs["pieces"]
        pieces = Pieces(p.questions, [lay.reasoning_ids(tok, rest) for _, rest in layouts], p.answers)
        return super().make_batch(inputs, speed, c, stretch, generator, pieces=pieces, thoughts=[n for n, _ in layouts])

    def run_model(self, model, batch):
        return unroll(model, self.ponder, batch)

    def extra_metrics(self, speed, c, losses):
        return {"stage": self._stage}
