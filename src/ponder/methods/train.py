"""``train()``: data + ``--init`` + method config -> a saved model directory. The CLI and quickstart call it.

Run several processes with Accelerate, e.g.::

    accelerate launch --multi_gpu --num_processes 2 -m ponder.cli train --method cot --data data/ --init tiny --out runs/cot
"""

from __future__ import annotations

import time
from dataclasses import asdict, fields
from pathlib import Path

import torch

from ponder.arguments import DataArguments, TrainArguments
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
TRAIN_CONFIG = "train_config.yaml"  # the resolved settings of a run, saved in its model directory


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
    from transformers import TrainingArguments

    base = {f.name for f in fields(TrainingArguments)} | {"method"}
    return [f.name for f in fields(method_classes(method)[0]) if f.name not in base]


def check_options(method: str, **options):
    """(TrainArguments, DataArguments, the method's config) from ``options``, without reading data or a model:
    an unknown option, a wrong value or a missing data / init / out fails here, before anything is written."""
    own, shared, data = (set(method_options(method)), {f.name for f in fields(TrainArguments)},
                         {f.name for f in fields(DataArguments)})
    unknown = sorted(set(options) - own - shared - data)
    if unknown:
        raise PonderError(f"unknown option(s) for method {method}: {', '.join(unknown)}")
    missing = [f"--{k}" for k in ("data", "init", "out") if options.get(k) is None]
    if missing:
        raise PonderError(f"training needs {', '.join(missing)}")

    def paths(names):  # path-like values as the strings the dataclasses hold
        return {k: str(v) if k in ("data", "init", "out") else v for k, v in options.items() if k in names}

    run, data_args = TrainArguments(**paths(shared)), DataArguments(**paths(data))
    if run.batch_size < 1 or run.grad_accum < 1:
        raise PonderError("--batch-size and --grad-accum must be >= 1")
    return run, data_args, _method_config(method, run, {k: v for k, v in options.items() if k in own})


def _method_config(method: str, run: TrainArguments, method_kw: dict):
    """The method's config dataclass (a ``TrainingArguments``) for a run."""
    try:
        return method_classes(method)[0](
            output_dir=str(Path(run.out) / "checkpoints"), method=method, num_train_epochs=run.epochs,
            max_steps=run.max_steps, learning_rate=run.lr, per_device_train_batch_size=run.batch_size,
            gradient_accumulation_steps=run.grad_accum, warmup_steps=run.warmup, lr_scheduler_type=run.scheduler,
            save_strategy="steps", save_steps=run.save_steps, save_total_limit=2, logging_steps=run.logging_steps,
            seed=run.seed, data_seed=run.seed, bf16=run.bf16, report_to="none", disable_tqdm=True,
            remove_unused_columns=False, dataloader_num_workers=0, optim="adamw_torch", weight_decay=run.weight_decay,
            use_cpu=not torch.cuda.is_available(), **method_kw)
    except (TypeError, ValueError) as e:
        raise PonderError(f"bad training option: {e}") from None


def train(method: str, data, init: str, out, *, callbacks=None, **options):
    """Train ``method`` on ``data`` (a file, or a directory with train.jsonl) starting from ``init``.

    ``options``: any field of :class:`TrainArguments` and of the method's config dataclass (``method_options``);
    the defaults are those dataclasses' own. The resolved settings are saved as OUT/train_config.yaml, which
    ``ponder train --config`` reads back to repeat the run."""
    run, data_args, _ = check_options(method, data=data, init=init, out=out, **options)
    method_kw = {k: v for k, v in options.items() if k in method_options(method)}
    out = Path(run.out)
    records = data_args.records("train")
    if run.resume and not (out / "checkpoints").is_dir():
        raise PonderError(f"--resume: {out / 'checkpoints'} does not exist (nothing to resume)")
    # The tokenizer (for presets) also learns the layout's own words, so "Question:" is not 9 tokens.
    texts = [t for r in records for t in (r.question, " ".join(r.steps), r.answer)] + [
        PromptLayout().words()] * 100
    model = init_model(run.init, texts, seed=run.seed, trust_remote_code=run.trust_remote_code, revision=run.revision,
                       chat_template=run.chat_template)
    if method == "colar" and is_ponder_dir(run.init) and model.settings.method == "nocot":
        raise PonderError("--init: CoLaR continues from a CoT model (or a pretrained / tiny one), not a No-CoT model")
    # Resolved now that the model is known: a model continued from a preset keeps its preset's LR.
    if run.lr is None:
        run.lr = DEFAULT_LR.get(model.settings.init) or (LORA_LR if method_kw.get("lora_r") else PRETRAINED_LR)
    if run.bf16 is None:
        run.bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    args = _method_config(method, run, method_kw)
    trainer = method_classes(method)[1](model, args, records, callbacks=callbacks)
    t0 = time.perf_counter()
    trainer.train(resume_from_checkpoint=True if run.resume else None)
    model.settings.init = model.settings.init or run.init
    if trainer.args.should_save:
        model.save(out)
        _write_train_log(out, trainer, time.perf_counter() - t0)
        _write_train_config(out, method, data_args, run, args)
    return model, trainer


def resolved_config(method: str, data: DataArguments, run: TrainArguments, args) -> dict:
    """Every setting of a run, as ``--config`` reads it: the method, the data, the run's fields (LR resolved)
    and every field of the method's config. ``resume`` is left out: it is how a run was started, not what it trains."""
    config = {"method": method, **asdict(data), **{k: v for k, v in asdict(run).items() if k != "resume"}}
    return {**config, **{k: getattr(args, k) for k in method_options(method)}}


def _write_train_config(out: Path, method: str, data: DataArguments, run: TrainArguments, args) -> None:
    import yaml

    from ponder.data.records import atomic_write_text

    text = yaml.safe_dump(resolved_config(method, data, run, args), sort_keys=False)
    atomic_write_text(out / TRAIN_CONFIG, f"# ponder train --config {out / TRAIN_CONFIG} repeats this run\n{text}")


def _write_train_log(out: Path, trainer, seconds: float) -> None:
    import json

    from ponder.data.records import atomic_write_text

    logs = {"train_seconds": round(seconds, 2), "world_size": trainer.args.world_size,
            "global_step": trainer.state.global_step, "log_history": trainer.state.log_history}
    atomic_write_text(out / "train_log.json", json.dumps(logs, indent=1) + "\n")
