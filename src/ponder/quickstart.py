"""``ponder quickstart``: the built-in default end to end, on 2 CPU cores in a few minutes.

    ponder quickstart --out ponder-quickstart

Makes running-sum data, trains a tiny CoT model, a tiny No-CoT model and CoLaR (continuing from the
CoT model), evaluates each on the test split (CoLaR at every speed), and writes to ``--out``: the models,
each evaluation report, ``summary.json`` (all result rows, the report row schema), ``summary.md`` and
``tradeoff.png``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ponder.bench import run_method
from ponder.data.records import atomic_write_text
from ponder.data.tasks import make_splits, write_splits
from ponder.evaluation.plot import plot_tradeoff
from ponder.evaluation.tables import markdown_table, rich_table

# Budgets measured on 2 CPU cores (see README). The tiny model learns CoT after a seed-dependent plateau
# (about 400 steps for seed 0 here); CoLaR needed ~3000 steps on top of it for c = 2 above 90%.
DATA = {"task": "running-sum", "n_train": 4000, "n_val": 100, "n_test": 300}
TRAIN = {
    "cot": {"max_steps": 700, "batch_size": 32, "lr": 5e-4},
    "nocot": {"max_steps": 400, "batch_size": 32, "lr": 5e-4},
    "colar": {"max_steps": 3000, "batch_size": 32, "lr": 1e-3, "max_compression": 4},
}


def run_quickstart(out, seed: int = 0, console=None, train_budgets: dict | None = None, data: dict | None = None) -> dict:
    out = Path(out)
    budgets = {**TRAIN, **(train_budgets or {})}
    spec = {**DATA, **(data or {})}
    say = console.print if console else print
    t_start = time.perf_counter()
    splits = make_splits(spec["task"], spec["n_train"], spec["n_val"], spec["n_test"], seed=seed)
    write_splits(splits, out / "data")
    rows, timings = [], {}
    for method, init in (("cot", "tiny"), ("nocot", "tiny"), ("colar", str(out / "cot"))):
        if method not in budgets:
            continue
        say(f"[bold]training {method}[/bold]" if console else f"training {method}")
        report = run_method(method, out / "data", init, out / method, out / f"eval_{method}.json",
                            out / "data" / "test.jsonl", budgets[method], seed, force=True)
        timings[f"train_{method}_s"] = report["settings"]["train_seconds"]
        rows += report["results"]
    total = round(time.perf_counter() - t_start, 1)
    summary = {"settings": {"task": spec, "seed": seed, "train": budgets, "timings_s": timings, "total_s": total},
               "results": rows}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")
    atomic_write_text(out / "summary.md", f"# ponder quickstart ({spec['task']}, seed {seed}, {total} s)\n\n"
                      + markdown_table(rows) + "\nreasoning length: tokens for CoT, latent steps for CoLaR.\n")
    plot_tradeoff(rows, out / "tradeoff.png", title=f"{spec['task']}: accuracy vs reasoning length")
    if console:
        console.print(rich_table(rows, title=f"quickstart: {spec['task']} test set"))
        console.print(f"done in {total} s -> {out}/summary.md, {out}/tradeoff.png")
    return summary
