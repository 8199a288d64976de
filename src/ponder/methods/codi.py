"""CODI (arXiv 2502.21074): continuous chain of thought through self-distillation.

One model plays two roles in every batch. The teacher reads the CoT sequence (question, ``<think>``, the
reasoning as tokens, ``</think>``, answer) and is trained on it with cross-entropy. The student reads the
question, ``<think>``, ``num_thoughts`` continuous thoughts (its last hidden state fed back through a
learned projection, ``thoughts.py``), ``</think>`` and the answer, and is trained on the answer. Why it
works: the two sequences end with the same answer, and at the token just before the answer value (the
last token of the answer template's prefix, "Answer:") the teacher's hidden states already summarise its
reasoning; an L1 loss pulls the student's hidden states there, at every layer, towards the (detached)
teacher's, so the thoughts must carry what the written reasoning carried. Each layer's distance is divided
by the teacher's std at that layer, and the layers are averaged (as the CODI code does).

Unlike Coconut, there is no curriculum: the student thinks ``num_thoughts`` thoughts from the first step.
The projection is the latent head's mean output x ``embed_std`` (saved and loaded with the latent head).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ponder.errors import PonderError
from ponder.methods.batch import Pieces
from ponder.methods.thoughts import unroll
from ponder.methods.trainer import CoTConfig, CoTTrainer


@dataclass
class CODIConfig(CoTConfig):
    method: str = field(default="codi", metadata={"help": "Always 'codi'."})
    num_thoughts: int = field(default=6, metadata={
        "help": "Continuous thoughts of the student, at training and inference (the paper: 6)."})
    distill_weight: float = field(default=1.0, metadata={
        "help": "Weight of the hidden-state distillation loss (the paper's gamma; its released GSM8K scripts use "
                "20 with a smooth-L1 distance, 1 is the neutral choice for the plain L1 used here)."})
    teacher_weight: float = field(default=1.0, metadata={"help": "Weight of the teacher's CoT cross-entropy (alpha)."})

    def __post_init__(self):
        self.method = "codi"
        if self.num_thoughts < 1:
            raise PonderError(f"--num-thoughts must be >= 1, got {self.num_thoughts}")
        if self.distill_weight < 0 or self.teacher_weight < 0:
            raise PonderError("--distill-weight and --teacher-weight must be >= 0")
        super().__post_init__()


def answer_prefix_length(tokenizer, layout, answer_ids: list[int]) -> int:
    """How many tokens of ``answer_ids`` (``</think>`` + the answer piece + <eos>) after ``</think>`` belong to
    the template's prefix ("Answer:"): the distillation token is ``</think>`` + this many."""
    prefix = layout.answer_template.partition("{answer}")[0].rstrip()
    ids = layout._ids(tokenizer, prefix)
    k = 0
    while k < len(ids) and k + 1 < len(answer_ids) and answer_ids[k + 1] == ids[k]:
        k += 1
    return k


def distillation_loss(student: tuple, teacher: tuple, s_at: torch.Tensor, t_at: torch.Tensor) -> torch.Tensor:
    """Mean over layers of L1(student, teacher) / std(teacher) at one index per row (teacher detached)."""
    rows = torch.arange(s_at.shape[0], device=s_at.device)
    total = 0.0
    for s, t in zip(student, teacher):
        hs, ht = s[rows, s_at].float(), t[rows, t_at].detach().float()
        total = total + (hs - ht).abs().mean() / ht.std().clamp(min=1e-6)
    return total / len(student)


class CODITrainer(CoTTrainer):
    def __init__(self, model, args: CODIConfig, train_dataset, **kw):
        model.settings.method = "codi"
        model.add_latent_head()
        model.settings.num_thoughts = args.num_thoughts
        super().__init__(model, args, train_dataset, **kw)

    def speed(self):
        return None  # question + <think>: no speed marker, for the teacher and the student alike

    def positions_used(self, model, args, r):
        """The longer of the teacher's sequence (the reasoning as tokens) and the student's (its thoughts)."""
        q, n, a = self.piece_lengths(model, r)
        return q + self.speed_length(model, None) + max(n, args.num_thoughts) + a

    def make_batch(self, inputs, speed, c, stretch, generator, pieces=None, thoughts=None):
        p: Pieces = inputs["pieces"]
        tok, lay = self.ponder.tokenizer, self.ponder.settings.layout
        teacher = super().make_batch(inputs, speed, 1, 1, generator)
        student = super().make_batch(inputs, speed, 1, 1, generator, pieces=Pieces(p.questions, [[]] * len(p), p.answers),
                                     thoughts=[self.args.num_thoughts] * len(p))
        end = lay.think_ids(tok)[1]
        k = torch.tensor([answer_prefix_length(tok, lay, a) for a in p.answers], device=teacher["input_ids"].device)
        at = lambda b: (b["input_ids"] == end).long().argmax(1) + k  # noqa: E731
        return {"teacher": teacher, "student": student, "teacher_at": at(teacher), "student_at": at(student)}

    def run_model(self, model, batch):
        t = batch["teacher"]
        teacher = model(inputs_embeds=t["inputs_embeds"], attention_mask=t["attention_mask"],
                        position_ids=t["position_ids"], all_hidden=True)
        student = unroll(model, self.ponder, batch["student"], all_hidden=True)
        return teacher, student

    def method_losses(self, batch, out):
        teacher, student = out
        losses = super().method_losses(batch["student"], student)  # ce_loss: the student's answer
        losses["teacher_loss"] = super().method_losses(batch["teacher"], teacher)["ce_loss"]
        losses["distill_loss"] = distillation_loss(student.hidden_states, teacher.hidden_states,
                                                   batch["student_at"], batch["teacher_at"])
        return losses

    def combine(self, losses):
        a = self.args
        return losses["ce_loss"] + a.teacher_weight * losses["teacher_loss"] + a.distill_weight * losses["distill_loss"]
