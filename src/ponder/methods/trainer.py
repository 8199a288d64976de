"""The shared trainer: ``transformers.Trainer`` with ponder's batches, checkpoints and progress bar.

``CoTConfig`` / ``CoTTrainer`` train ``cot`` (loss on steps and answer) and ``nocot`` (loss on the
answer alone). CoLaR (``colar.py``) subclasses both. Everything Trainer gives is kept: gradient
accumulation, LR schedule with warm-up, seeds, checkpoints every ``save_steps`` with ``--resume``,
bf16, and several processes through ``accelerate launch``.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from torch.nn import functional as F
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_callback import PrinterCallback

from ponder.data.records import Record
from ponder.errors import PonderError
from ponder.methods.batch import Pieces, build_batch


@dataclass
class CoTConfig(TrainingArguments):
    """Supervised training on reasoning records. All ``TrainingArguments`` fields apply as usual."""

    method: str = field(default="cot", metadata={"help": "'cot': loss on steps + answer; 'nocot': on the answer alone."})
    lora_r: int = field(default=0, metadata={"help": "LoRA rank through peft; 0 trains every weight."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling numerator (alpha / r)."})
    max_length: int = field(default=1024, metadata={
        "help": "Examples whose training sequence spans more positions than this are skipped (its tokens; "
                "CoLaR's stretched latent positions count: up to c - 1 more)."})
    partial_thoughts: float = field(default=0.0, metadata={
        "help": "Share of examples (drawn per batch) whose reasoning is cut after a random number of its steps, "
                "the answer unchanged: teaches a model to answer from unfinished thinking, which budget forcing "
                "and the probes of exit policies ask of it (benchmarks/exits)."})

    def __post_init__(self):
        if type(self) is CoTConfig and self.method not in ("cot", "nocot"):  # subclasses set their own
            raise PonderError(f"--method must be 'cot' or 'nocot' for CoTConfig, got '{self.method}'")
        if self.lora_r < 0:
            raise PonderError(f"--lora-r must be >= 0, got {self.lora_r}")
        if not 0 <= self.partial_thoughts <= 1:
            raise PonderError(f"--partial-thoughts must be in [0, 1], got {self.partial_thoughts}")
        super().__post_init__()


class RecordCollator:
    """Tokenizes records into prompt-layout pieces; the speed marker is added later, per batch."""

    def __init__(self, model, max_length: int, partial_thoughts: float = 0.0, seed: int = 0):
        self.tok, self.layout, self.max_length = model.tokenizer, model.settings.layout, max_length
        self.partial, self.rng = partial_thoughts, random.Random(seed)

    def steps(self, r: Record) -> list[str]:
        """The record's steps, or (a share ``partial_thoughts`` of the time) its first k of them, k < n."""
        if self.partial and len(r.steps) > 1 and self.rng.random() < self.partial:
            return r.steps[: self.rng.randrange(len(r.steps))]
        return r.steps

    def __call__(self, records: list[Record]) -> dict:
        q = [self.layout.question_ids(self.tok, r.question) for r in records]
        s = [self.layout.reasoning_ids(self.tok, self.steps(r)) for r in records]
        a = [self.layout.answer_ids(self.tok, r.answer) for r in records]
        return {"pieces": Pieces(q, s, a), "records": records}


class RichProgress(TrainerCallback):
    """A rich progress bar with the loss and examples per second (main process only)."""

    def __init__(self, description: str = "train", keys: tuple[str, ...] = ()):
        self.description, self.keys, self.progress, self.task = description, keys, None, None

    def on_train_begin(self, args, state, control, **kw):
        if state.is_world_process_zero:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(bar_width=24), MofNCompleteColumn(),
                                     TextColumn("{task.fields[stats]}"), TimeRemainingColumn(), transient=False)
            self.progress.start()
            self.task = self.progress.add_task(self.description, total=state.max_steps, completed=state.global_step,
                                               stats="")
            self.t0, self.step0 = time.perf_counter(), state.global_step

    def on_step_end(self, args, state, control, **kw):
        if self.progress:
            self.progress.update(self.task, completed=state.global_step)

    def on_log(self, args, state, control, logs=None, **kw):
        if self.progress and logs and "loss" in logs:
            per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
            rate = (state.global_step - self.step0) * per_step / max(time.perf_counter() - self.t0, 1e-9)
            extra = " ".join(f"{k.removesuffix('_loss')}={v:.3g}" for k, v in logs.items()
                             if (k.endswith("_loss") and k != "ce_loss") or k in self.keys)
            self.progress.update(self.task, stats=f"loss={logs['loss']:.4f} {extra} {rate:.0f} ex/s")

    def on_train_end(self, args, state, control, **kw):
        if self.progress:
            self.progress.stop()
            self.progress = None


class StopAfter(TrainerCallback):
    """Ends training after a given step, as if interrupted (used to test --resume)."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kw):
        if state.global_step >= self.step:
            raise KeyboardInterrupt(f"stopped after step {self.step}")


class CoTTrainer(Trainer):
    """Trains a :class:`~ponder.model.io.PonderModel` on records with the shared batch builder."""

    progress_keys: tuple[str, ...] = ()  # logged metrics the progress bar shows besides the losses

    def __init__(self, model, args: CoTConfig, train_dataset: list[Record], callbacks=None, **kw):
        model.settings.method = args.method
        self.ponder = model  # the unwrapped model, whatever Trainer wraps it in
        self._metrics: dict[str, list[float]] = {}
        self._micro = (-1, 0)
        spans = [(self.positions_used(model, args, r), r) for r in train_dataset]
        dataset = [r for n, r in spans if n <= args.max_length]
        if not dataset:
            raise PonderError(f"no training example fits in --max-length {args.max_length} positions")
        self.check_position_table(model, args, dataset, [n for n, _ in spans if n <= args.max_length])
        if args.lora_r:
            self._apply_lora(model, args)
        super().__init__(model=model, args=args, train_dataset=dataset, data_collator=RecordCollator(
            model, args.max_length, getattr(args, "partial_thoughts", 0.0), args.seed),
                         callbacks=[RichProgress(args.method, self.progress_keys), *(callbacks or [])], **kw)
        self.remove_callback(PrinterCallback)  # the progress bar shows the logs

    # -- positions: --max-length and a bounded position table (model/positions.py) --------------------
    @staticmethod
    def piece_lengths(model, r: Record) -> tuple[int, int, int]:
        """Tokens of (question, reasoning, answer) of a record; the answer's count starts with ``</think>``."""
        lay, tok = model.settings.layout, model.tokenizer
        return (len(lay.question_ids(tok, r.question)), len(lay.reasoning_ids(tok, r.steps)),
                len(lay.answer_ids(tok, r.answer)))

    @staticmethod
    def speed_length(model, speed) -> int:
        """Tokens of the speed marker followed by ``<think>``."""
        return len(model.settings.layout.speed_ids(model.tokenizer, speed)) + 1

    def positions_used(self, model, args, r: Record) -> int:
        """The positions the record's training sequence spans (what ``--max-length`` counts): CoT's are its
        tokens (question, speed 1, ``<think>``, reasoning, answer); No-CoT has no speed and no reasoning."""
        q, n, a = self.piece_lengths(model, r)
        think = args.method != "nocot"
        return q + self.speed_length(model, 1 if think else None) + (n if think else 0) + a

    def layout_note(self, args) -> str:
        """How this method lays an example out, for the error that names a too long one."""
        return ""

    def check_position_table(self, model, args, dataset: list[Record], spans: list[int]) -> None:
        """Before any step: the longest kept example (``spans``: each one's ``positions_used``) must fit the
        model's position table, if it has one."""
        from ponder.model.positions import check_positions, position_limit

        limit = position_limit(model)
        if limit is None or not spans or max(spans) <= limit:
            return
        over = sum(n > limit for n in spans)
        check_positions(model, max(spans), f"the longest training example{self.layout_note(args)}",
                        f"pass --max-length {limit} to skip the {over} example(s) longer than that")

    @staticmethod
    def _apply_lora(model, args):
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError:
            raise PonderError("--lora-r needs peft: pip install 'ponder[peft]'") from None
        from transformers.pytorch_utils import Conv1D

        # New special tokens (<think>, </think>) need trainable embeddings, hence trainable_token_indices.
        # "all-linear": every nn.Linear and GPT-2's Conv1D (its fused c_attn, c_proj, c_fc), the output layer
        # excepted. Conv1D stores its weight transposed (fan_in_fan_out); peft would guess it with a warning.
        conv1d = any(isinstance(m, Conv1D) for m in model.lm.modules())
        cfg = LoraConfig(r=args.lora_r, lora_alpha=args.lora_alpha, target_modules="all-linear", fan_in_fan_out=conv1d,
                         modules_to_save=None, trainable_token_indices=_new_token_ids(model), task_type="CAUSAL_LM")
        model.lm = get_peft_model(model.lm, cfg)

    # -- the method ----------------------------------------------------------------------------------
    def speed(self) -> int | str | None:
        """The speed marker for this batch: CoT is CoLaR's c = 1, No-CoT has none."""
        return 1 if self.args.method == "cot" else None

    def compression(self, speed) -> tuple[int, int]:
        """(c, position stretch) for a speed marker."""
        return 1, 1

    def _next_micro(self) -> int:
        """The index of this micro-batch within the optimizer step (0, 1, ... under gradient accumulation)."""
        step = self.state.global_step
        micro = self._micro[1] + 1 if self._micro[0] == step else 0
        self._micro = (step, micro)
        return micro

    def _generator(self) -> torch.Generator:
        """Randomness keyed by (seed, step, micro-batch), so a resumed run draws what the original drew."""
        micro = self._next_micro()
        return torch.Generator().manual_seed((self.args.seed * 1_000_003 + self.state.global_step) * 64 + micro)

    def method_losses(self, batch, out) -> dict[str, torch.Tensor]:
        logits = out.logits.float()
        ce = F.cross_entropy(logits.view(-1, logits.shape[-1]), batch["labels"].view(-1), ignore_index=-100)
        return {"ce_loss": ce}

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        speed = self.speed()
        c, stretch = self.compression(speed)
        gen = self._generator()
        batch = self.make_batch(inputs, speed, c, stretch, gen)
        out = self.run_model(model, batch)
        losses = self.method_losses(batch, out)
        loss = self.combine(losses) + _touch_latent_outputs(out)
        for k, v in {**losses, **self.extra_metrics(speed, c, losses)}.items():
            self._metrics.setdefault(k, []).append(float(v.detach()) if torch.is_tensor(v) else float(v))
        return (loss, out) if return_outputs else loss

    def make_batch(self, inputs, speed, c: int, stretch: int, generator, pieces: Pieces | None = None,
                   thoughts: list[int] | None = None) -> dict:
        """The step's batch from the collator's output (methods may alter ``pieces`` or add ``thoughts``)."""
        tok, lay = self.ponder.tokenizer, self.ponder.settings.layout
        return build_batch(self.ponder, inputs["pieces"] if pieces is None else pieces, lay.speed_ids(tok, speed),
                           lay.think_ids(tok)[0], c=c, stretch=stretch,
                           think=self.args.method != "nocot", mode=getattr(self.args, "compression", "sum"),
                           generator=generator, thoughts=thoughts)

    def run_model(self, model, batch):
        """The forward pass(es) of a step; continuous-thought methods unroll their thoughts here."""
        return model(inputs_embeds=batch["inputs_embeds"], attention_mask=batch["attention_mask"],
                     position_ids=batch["position_ids"])

    def reset_optimizer_state(self) -> None:
        """Forget the optimizer's moments (Coconut and iCoT reset them when their curriculum moves on)."""
        opt = getattr(self.optimizer, "optimizer", self.optimizer)
        if opt is not None:
            opt.state.clear()

    def extra_metrics(self, speed, c: int, losses: dict) -> dict:
        return {}

    def combine(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        return losses["ce_loss"]

    def log(self, logs, start_time=None):
        if "loss" in logs:
            logs.update({k: round(sum(v) / len(v), 6) for k, v in self._metrics.items() if v})
            self._metrics = {}
        super().log(logs, start_time)

    # -- checkpoints are ponder model directories ----------------------------------------------------
    def train(self, resume_from_checkpoint=None, **kw):
        """``resume_from_checkpoint=True`` resumes from the newest *usable* checkpoint: one a crash left
        incomplete or unreadable is skipped with a one-line warning."""
        if resume_from_checkpoint is True:
            resume_from_checkpoint = last_usable_checkpoint(self.args.output_dir, warn=self.args.process_index == 0)
        return super().train(resume_from_checkpoint=resume_from_checkpoint, **kw)

    def _save_checkpoint(self, model, trial):
        """Trainer's checkpoint (model, optimizer, scheduler, RNG and trainer state), written into a staging
        directory and renamed into place once complete, so a crash mid-save never leaves a half checkpoint."""
        from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints

        run_dir = Path(self._get_output_dir(trial=trial))
        name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        staging = run_dir / f".{name}.partial"  # one name for every process: each writes its RNG state there
        if self.args.should_save:
            shutil.rmtree(staging, ignore_errors=True)  # left by a crash
        self.accelerator.wait_for_everyone()
        self._get_output_dir = lambda trial=None: str(staging)
        try:
            super()._save_checkpoint(model, trial)
        finally:
            del self._get_output_dir  # the class's own again
        self.accelerator.wait_for_everyone()
        if self.args.should_save:
            final = run_dir / name
            if final.exists():  # e.g. an unusable checkpoint of this step, skipped by --resume
                old = run_dir / f".{name}.old-{os.getpid()}"
                os.replace(final, old)
                shutil.rmtree(old, ignore_errors=True)
            os.replace(staging / name, final)
            os.utime(final)  # rotation goes by modification time
            shutil.rmtree(staging, ignore_errors=True)
            if self.state.best_model_checkpoint and str(staging) in self.state.best_model_checkpoint:
                self.state.best_model_checkpoint = self.state.best_model_checkpoint.replace(str(staging), str(run_dir))
            rotate_checkpoints(output_dir=str(run_dir), save_total_limit=self.args.save_total_limit,
                               best_model_checkpoint=self.state.best_model_checkpoint, use_mtime=True)
        self.accelerator.wait_for_everyone()

    def save_model(self, output_dir=None, _internal_call=False):
        super().save_model(output_dir, _internal_call)
        if _internal_call:  # a checkpoint: the other processes write their RNG states into this directory
            self.accelerator.wait_for_everyone()  # next, which must come after the model's directory swap

    def _save(self, output_dir=None, state_dict=None):
        if self.args.should_save:
            self.ponder.save(output_dir or self.args.output_dir)

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        from ponder.model.io import load_model

        if self.args.lora_r:
            raise PonderError("--resume is not supported with --lora-r yet: checkpoints hold merged weights")
        saved = load_model(resume_from_checkpoint)
        self.ponder.lm.load_state_dict(saved.lm.state_dict())
        if self.ponder.latent_head is not None and saved.latent_head is not None:
            self.ponder.latent_head.load_state_dict(saved.latent_head.state_dict())
        self.ponder.settings = saved.settings


def checkpoint_problem(path: Path) -> str | None:
    """Why a checkpoint directory cannot be resumed from (None: it can). Cheap checks that catch what a
    crash during a save leaves: missing files, truncated safetensors / torch files, cut JSON."""
    if not (path / "trainer_state.json").is_file():
        return "incomplete (no trainer_state.json)"
    if not list(path.glob("*.safetensors")):
        return "incomplete (no model weights)"
    for f in sorted(path.iterdir()):
        try:
            if f.suffix == ".json":
                json.loads(f.read_text())
            elif f.suffix == ".safetensors":
                with safe_open(str(f), framework="pt"):
                    pass
            elif f.suffix in (".pt", ".pth", ".bin"):
                with zipfile.ZipFile(f):  # torch.save's format: a truncated file has no central directory
                    pass
        except (ValueError, OSError, SafetensorError, zipfile.BadZipFile, UnicodeDecodeError) as e:
            return f"{f.name} is truncated or corrupt ({type(e).__name__})"
    return None


def last_usable_checkpoint(folder, warn: bool = True) -> str:
    """The newest ``checkpoint-N`` in ``folder`` that ``checkpoint_problem`` finds nothing wrong with; each
    newer one is skipped with a one-line warning on stderr."""
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    pattern = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")
    found = sorted((int(m.group(1)), d) for d in Path(folder).iterdir()
                   if (m := pattern.match(d.name)) and d.is_dir())
    for _, d in reversed(found):
        problem = checkpoint_problem(d)
        if problem is None:
            return str(d)
        if warn:
            print(f"warning: --resume: skipping {d}: {problem}", file=sys.stderr, flush=True)
    raise PonderError(f"--resume: no usable checkpoint in {folder}" + (f" ({len(found)} unusable)" if found else ""))


def _touch_latent_outputs(out) -> torch.Tensor | float:
    """0 x the latent head's outputs. Under DDP (find_unused_parameters) every forward output counts as
    used, so a head output the loss ignores (the log-std under an MSE loss, CODI's projection) would leave
    its parameters without gradients and stall the next step; a zero-weighted term gives them a zero one."""
    outs = out if isinstance(out, tuple) else (out,)
    return sum(0.0 * t.float().sum() for o in outs for t in (o.latent_mean, o.latent_log_std) if t is not None)


def _new_token_ids(model) -> list[int]:
    return list(model.settings.layout.think_ids(model.tokenizer))
