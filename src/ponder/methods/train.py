"""``train()``: data + ``--init`` + method config -> a saved model directory. The CLI and quickstart call it.

Run several processes with Accelerate, e.g.::

    accelerate launch --multi_gpu --num_processes 2 -m ponder.cli train --method cot --data data/ --init tiny --out runs/cot
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from ponder.data.records import read_records, resolve_split
from ponder.errors import PonderError
from ponder.model.io import init_model, is_ponder_dir
from ponder.prompt import PromptLayout

# method -> (module, config class, trainer class); each method lives in its own module under methods/.
METHODS = {
    "nocot": ("trainer", "CoTConfig", "CoTTrainer"),
    "cot": ("trainer", "CoTConfig", "CoTTrainer"),
    "colar": ("colar", "CoLaRConfig", "CoLaRTrainer"),
    "coconut": ("coconut", "CoconutConfig", "CoconutTrainer"),
    "codi": ("codi", "CODIConfig", "CODITrainer"),
    "icot": ("icot", "ICoTConfig", "ICoTTrainer"),
    "colar-rl": ("colar_rl", "CoLaRRLConfig", "CoLaRRLTrainer"),
}

# Learning rates that worked for each starting point: from scratch a tiny model wants a large one.
DEFAULT_LR = {"tiny": 5e-4, "small": 4e-4, "base": 3e-4}
PRETRAINED_LR, LORA_LR = 2e-5, 2e-4


def method_classes(method: str):
    """(config class, trainer class) of a method."""
    import importlib

    if method not in METHODS:
        raise PonderError(f"--method must be one of {', '.join(METHODS)}, got '{method}'")
    module, config, trainer = METHODS[method]
    mod = importlib.import_module(f"ponder.methods.{module}")
    return getattr(mod, config), getattr(mod, trainer)


def method_options(method: str) -> list[str]:
    """The options a method's config adds to ``TrainingArguments`` (what the CLI passes on for it)."""
    from dataclasses import fields

    from transformers import TrainingArguments

    base = {f.name for f in fields(TrainingArguments)} | {"method"}
    return [f.name for f in fields(method_classes(method)[0]) if f.name not in base]


def train(method: str, data, init: str, out, *, epochs: float = 3.0, max_steps: int = -1, lr: float | None = None,
          batch_size: int = 32, grad_accum: int = 1, warmup: float = 0.05, scheduler: str = "cosine",
          save_steps: int = 500, seed: int = 0, weight_decay: float = 0.0, resume: bool = False, bf16: bool | None = None,
          data_format: str | None = None, trust_remote_code: bool = False, callbacks=None, logging_steps: int = 10,
          **method_options):
    """Train ``method`` on ``data`` (a file, or a directory with train.jsonl) starting from ``init``."""
    out = Path(out)
    cfg_cls, trainer_cls = method_classes(method)
    records = read_records(resolve_split(data, "train"), fmt=data_format)
    if resume and not (out / "checkpoints").is_dir():
        raise PonderError(f"--resume: {out / 'checkpoints'} does not exist (nothing to resume)")
    if batch_size < 1 or grad_accum < 1:
        raise PonderError("--batch-size and --grad-accum must be >= 1")
    if bf16 is None:
        bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    # The tokenizer (for presets) also learns the layout's own words, so "Question:" is not 9 tokens.
    texts = [t for r in records for t in (r.question, " ".join(r.steps), r.answer)] + [
        "\n".join(f"{v}" for v in PromptLayout().to_dict().values())] * 100
    model = init_model(init, texts, seed=seed, trust_remote_code=trust_remote_code)
    if lr is None:  # a model continued from a preset (e.g. CoLaR on a tiny CoT model) keeps its preset's LR
        lr = DEFAULT_LR.get(model.settings.init) or (LORA_LR if method_options.get("lora_r") else PRETRAINED_LR)
    if method == "colar" and is_ponder_dir(init) and model.settings.method == "nocot":
        raise PonderError("--init: CoLaR continues from a CoT model (or a pretrained / tiny one), not a No-CoT model")
    try:
        args = cfg_cls(
            output_dir=str(out / "checkpoints"), method=method, num_train_epochs=epochs, max_steps=max_steps,
            learning_rate=lr, per_device_train_batch_size=batch_size, gradient_accumulation_steps=grad_accum,
            warmup_steps=warmup, lr_scheduler_type=scheduler, save_strategy="steps", save_steps=save_steps,
            save_total_limit=2, logging_steps=logging_steps, seed=seed, data_seed=seed, bf16=bf16, report_to="none",
            disable_tqdm=True, remove_unused_columns=False, dataloader_num_workers=0, optim="adamw_torch",
            weight_decay=weight_decay, use_cpu=not torch.cuda.is_available(), **method_options)
    except TypeError as e:
        raise PonderError(f"bad training option: {e}") from None
    trainer = trainer_cls(model, args, records, callbacks=callbacks)
    t0 = time.perf_counter()
    trainer.train(resume_from_checkpoint=True if resume else None)
    model.settings.init = model.settings.init or init
    if trainer.args.should_save:
        model.save(out)
        _write_train_log(out, trainer, time.perf_counter() - t0)
    return model, trainer


def _write_train_log(out: Path, trainer, seconds: float) -> None:
    import json

    from ponder.data.records import atomic_write_text

    logs = {"train_seconds": round(seconds, 2), "world_size": trainer.args.world_size,
            "global_step": trainer.state.global_step, "log_history": trainer.state.log_history}
    atomic_write_text(out / "train_log.json", json.dumps(logs, indent=1) + "\n")
