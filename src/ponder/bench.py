"""``ponder bench``: every method on one task, same model size and budget, over seeds -> one honest table.

    ponder bench running-sum --methods nocot,cot,colar,colar-rl,coconut,codi,icot --seeds 3 --out bench/rs

Per seed: make the task's data (or take a data directory), train each method from the same tiny preset
and budget (latent methods continue from that seed's CoT model, CoLaR-RL from its CoLaR model, as each
paper does), evaluate on the test split through the shared ``evaluate`` (CoLaR at every speed), and
write to ``--out``: ``results.json`` (a row per method and speed: mean, std, min and max accuracy over
seeds, reasoning length, latency, train time), ``results.md`` and ``pareto.png``. Every finished run (a
model directory and its ``eval_<method>.json``) is reused unless ``--force``. The quickstart uses the
same ``run_method``.
"""

from __future__ import annotations

import json
import shlex
import statistics
import sys
import time
from pathlib import Path

from ponder.data.records import atomic_write_text, read_records, resolve_split
from ponder.data.tasks import TASKS, make_splits, write_splits
from ponder.errors import PonderError
from ponder.evaluation.evaluate import evaluate, read_report, write_report
from ponder.evaluation.plot import plot_tradeoff

# Where each method starts: the CoT model of the same seed for methods that compress or replace its
# reasoning (as in their papers), the CoLaR model for its RL stage.
START = {"nocot": "tiny", "cot": "tiny", "colar": "cot", "colar-rl": "colar", "coconut": "cot", "codi": "cot",
         "icot": "cot"}
ALL_METHODS = tuple(START)

# Budgets: data sizes and per-method training options (optimizer steps of batch 32 unless said). The
# methods that continue from CoT all get the same number of steps on top of it.
BUDGETS = {
    "default": {
        "data": {"n_train": 4000, "n_val": 100, "n_test": 300},
        "train": {
            "cot": {"max_steps": 1200, "lr": 5e-4}, "nocot": {"max_steps": 1200, "lr": 5e-4},
            **{m: {"max_steps": 1500, "lr": 1e-3} for m in ("colar", "coconut", "codi", "icot")},
            "colar-rl": {"max_steps": 100, "lr": 2e-5, "batch_size": 16, "group_size": 8, "speeds": "2",
                         "latent_temperature": 0.2, "length_penalty": "per-step"},
        },
        # Per task: the data's difficulty and each curriculum fitted to the chain (1500 steps of batch 32
        # on 4000 examples are 12 epochs). arith and graph-hop (3x longer sequences) get fewer steps so that
        # one seed of every method fits a 2-core session; every latent method still gets the same steps.
        "tasks": {
            "running-sum": {"data": {"difficulty": 6}, "train": {
                "colar": {"max_compression": 4},
                "coconut": {"max_stage": 6, "thoughts_per_step": 1, "epochs_per_stage": 1.5},
                "codi": {"num_thoughts": 6}, "icot": {"remove_per_epoch": 1}}},
            "arith": {"data": {"difficulty": 3}, "train": {
                "cot": {"max_steps": 1500, "lr": 1e-3}, "nocot": {"max_steps": 1500, "lr": 1e-3},
                "colar": {"max_steps": 600},
                "coconut": {"max_steps": 600, "max_stage": 3, "thoughts_per_step": 2, "epochs_per_stage": 1.2},
                "codi": {"max_steps": 600, "num_thoughts": 6}, "icot": {"max_steps": 600, "remove_per_epoch": 5},
                "colar-rl": {"max_steps": 60}}},
            "graph-hop": {"data": {"difficulty": 3}, "train": {
                "cot": {"max_steps": 800, "lr": 1e-3}, "nocot": {"max_steps": 800, "lr": 1e-3},
                "colar": {"max_steps": 600, "max_compression": 3},
                "coconut": {"max_steps": 600, "max_stage": 3, "thoughts_per_step": 1, "epochs_per_stage": 1.2},
                "codi": {"max_steps": 600, "num_thoughts": 3}, "icot": {"max_steps": 600, "remove_per_epoch": 1},
                "colar-rl": {"max_steps": 60}}},
        },
    },
    # A few steps of everything: checks the pipeline end to end (tests), says nothing about accuracy.
    "smoke": {
        "data": {"n_train": 64, "n_val": 4, "n_test": 8},
        "train": {**{m: {"max_steps": 2, "batch_size": 8} for m in ALL_METHODS},
                  "colar": {"max_steps": 2, "batch_size": 8, "max_compression": 2},
                  "colar-rl": {"max_steps": 2, "batch_size": 4, "group_size": 2, "speeds": "2", "max_latent_steps": 4,
                               "max_new_tokens": 8}},
        "eval": {"max_new_tokens": 12, "max_latent_steps": 6},
        "tasks": {"running-sum": {"data": {"difficulty": 3}}},
    },
}


def budget_for(name: str, task: str) -> dict:
    if name not in BUDGETS:
        raise PonderError(f"--budget must be one of {', '.join(BUDGETS)}, got '{name}'")
    b = BUDGETS[name]
    over = b.get("tasks", {}).get(task, {})
    train = {m: {**kw, **over.get("train", {}).get(m, {})} for m, kw in b["train"].items()}
    return {"data": {**b["data"], **over.get("data", {})}, "train": train, "eval": b.get("eval", {})}


def parse_methods(text: str) -> list[str]:
    """Methods, and exit policies on a token reasoner's model: ``cot+convergence``, ``cot+budget:32``,
    ``cot+confidence:threshold=0.9`` (see ``exit_config``)."""
    methods = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in methods if m.partition("+")[0] not in START]
    if not methods or unknown:
        raise PonderError(f"--methods: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(ALL_METHODS)} "
                          "(and exit policies such as cot+convergence, cot+budget:32)")
    for m in methods:
        exit_config(m)  # a bad policy spec fails here, before any training
    return methods


def exit_config(method: str):
    """The ``ExitConfig`` of ``base+policy[:N][:key=value...]`` (N: the budget), or None for a plain method."""
    from ponder.arguments import ExitConfig
    from ponder.options import options_of

    base, plus, spec = method.partition("+")
    if not plus:
        return None
    if START.get(base) is None or base in ("nocot", "colar", "colar-rl", "coconut", "codi"):
        raise PonderError(f"--methods {method}: exit policies end token reasoning (cot, icot), not {base}'s")
    policy, *args = spec.split(":")
    kinds = {o.name: o.base for o in options_of(ExitConfig, "Exit") if o.name != "exit"}  # the CLI's own types
    options = {}
    for arg in args:
        key, eq, value = arg.partition("=")
        key, value = (key, value) if eq else ("budget", arg)
        if key not in kinds:
            raise PonderError(f"--methods {method}: unknown exit option '{key}'")
        try:
            options[key] = kinds[key](value)
        except ValueError:
            raise PonderError(f"--methods {method}: {key} must be {kinds[key].__name__}, got '{value}'") from None
    return ExitConfig(exit=policy, **options)


def parse_seeds(text: str) -> list[int]:
    """``3`` means seeds 0, 1, 2; ``0,4`` means exactly those."""
    try:
        values = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise PonderError(f"--seeds must be a count (3) or a list (0,4), got '{text}'") from None
    if "," not in str(text):
        if len(values) != 1 or values[0] < 1:
            raise PonderError(f"--seeds must be a count >= 1 or a list, got '{text}'")
        return list(range(values[0]))
    return values


def with_prerequisites(methods: list[str]) -> list[str]:
    """The methods in training order, each preceded by the model it starts from (an exit policy by the
    model it decodes)."""
    order: list[str] = []

    def add(m):
        if "+" in m:
            add(m.partition("+")[0])
        elif START[m] in START:
            add(START[m])
        if m not in order:
            order.append(m)

    for m in methods:
        add(m)
    return order


def run_method(method: str, data, init: str, out_dir: Path, report_path: Path, test_path: Path, train_options: dict,
               seed: int, force: bool = False, eval_options: dict | None = None) -> dict:
    """Train ``method`` and evaluate it on ``test_path`` (every speed of a latent model); reuse a finished run."""
    from ponder.methods.train import train

    if report_path.exists() and (out_dir / "ponder.json").exists() and not force:
        return read_report(report_path)
    t0 = time.perf_counter()
    model, _ = train(method, data, init, out_dir, seed=seed, save_steps=10**9, **train_options)
    seconds = round(time.perf_counter() - t0, 1)
    st = model.settings
    speeds = list(range(1, st.max_compression + 1)) if st.reasoning == "latent" else [None]
    report = evaluate(model, read_records(test_path), speeds=speeds, model_path=str(out_dir), data_path=str(test_path),
                      **(eval_options or {}))
    report["settings"]["train_seconds"] = seconds
    report["settings"]["train"] = {"init": init, **train_options}
    write_report(report, report_path)
    return report


def run_exit(method: str, model_dir: Path, report_path: Path, test_path: Path, force: bool = False,
             eval_options: dict | None = None) -> dict:
    """Evaluate ``model_dir`` with the exit policy of ``method`` (``cot+convergence``); reuse a finished report."""
    from ponder.model.io import load_model

    if report_path.exists() and not force:
        return read_report(report_path)
    report = evaluate(load_model(model_dir), read_records(test_path), model_path=str(model_dir),
                      data_path=str(test_path), exit=exit_config(method), **(eval_options or {}))
    write_report(report, report_path)
    return report


def run_bench(task: str, methods: list[str], seeds: list[int], out, budget: str = "default", force: bool = False,
              console=None) -> dict:
    out = Path(out)
    is_builtin = task in TASKS
    if not is_builtin and not Path(task).is_dir():
        raise PonderError(f"TASK must be a built-in task ({', '.join(TASKS)}) or a data directory, got '{task}'")
    name = task if is_builtin else Path(task).name
    spec = budget_for(budget, name)
    say = console.print if console else print
    order = with_prerequisites(methods)
    runs = []
    for seed in seeds:
        work = out / "runs" / f"seed{seed}"
        data = work / "data"
        if not is_builtin:
            data = Path(task)
        elif force or not (data / "test.jsonl").exists():
            write_splits(make_splits(task, seed=seed, **spec["data"]), data)
        test = resolve_split(data, "test")
        for i, method in enumerate(order):
            base = method.partition("+")[0]
            start = base if "+" in method else START[method]
            init = start if start not in START else str(work / start)
            say(f"[bold]bench {name}[/bold] · seed {seed} · {method} ({i + 1}/{len(order)}): "
                + ("decoding the model with the exit policy" if "+" in method else f"training from {start}, then evaluating")
                if console else f"bench {name} seed {seed}: {method}")
            if "+" in method:  # an exit policy: no training, the base model decoded with it
                report = run_exit(method, work / base, work / f"eval_{method}.json", test, force, spec["eval"])
            else:
                report = run_method(method, data, init, work / method, work / f"eval_{method}.json", test,
                                    spec["train"].get(method, {}), seed, force=force, eval_options=spec["eval"])
            if method in methods:
                for row in report["results"]:
                    runs.append({**row, "seed": seed, "train_seconds": report["settings"].get("train_seconds")})
    rows = aggregate(runs)
    results = {"settings": {"task": name, "methods": methods, "seeds": seeds, "budget": budget, "budget_spec": spec,
                            "command": "ponder " + " ".join(shlex.quote(a) for a in sys.argv[1:])
                            if Path(sys.argv[0]).name == "ponder" else None},
               "results": rows, "runs": runs}
    atomic_write_text(out / "results.json", json.dumps(results, indent=1) + "\n")
    atomic_write_text(out / "results.md", markdown(results))
    plot_tradeoff(rows, out / "pareto.png", title=f"{name}: accuracy vs reasoning length ({len(seeds)} seed(s))",
                  frontier=True)
    if console:
        from ponder.evaluation.tables import rich_table

        console.print(rich_table(rows, title=f"bench {name}, seeds {seeds}"))
        console.print(f"-> {out / 'results.md'}, {out / 'pareto.png'}")
    return results


def aggregate(runs: list[dict]) -> list[dict]:
    """One row per (method, speed): means over seeds, accuracy's std / min / max."""
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((r["method"], r["speed"]), []).append(r)
    rows = []
    for (method, speed), rs in groups.items():
        acc = [r["accuracy"] for r in rs]
        mean = lambda k: statistics.fmean(r[k] for r in rs) if all(r.get(k) is not None for r in rs) else None  # noqa: E731
        rows.append({
            "method": method, "speed": speed, "seeds": len(rs), "accuracy": statistics.fmean(acc),
            "accuracy_std": statistics.stdev(acc) if len(acc) > 1 else 0.0, "accuracy_min": min(acc),
            "accuracy_max": max(acc), "mean_reasoning_length": mean("mean_reasoning_length"),
            "latency_s_mean": mean("latency_s_mean"), "questions_per_s": mean("questions_per_s"),
            "mean_probe_tokens": mean("mean_probe_tokens"), "mean_passes": mean("mean_passes"),
            "train_seconds": mean("train_seconds"),
        })
    return rows


def markdown(results: dict) -> str:
    s = results["settings"]
    lines = [f"# ponder bench: {s['task']}", "",
             f"Methods {', '.join(s['methods'])}; seeds {s['seeds']}; budget `{s['budget']}` (in results.json)."]
    if s.get("command"):
        lines += ["", f"Command: `{s['command']}`"]
    lines += ["", "| method | speed | accuracy (mean ± std) | [min, max] | reasoning length | latency (s) | train (s) |",
              "|---|---|---|---|---|---|---|"]
    for r in results["results"]:
        speed = "-" if r["speed"] is None else r["speed"]
        train = "-" if r["train_seconds"] is None else f"{r['train_seconds']:.0f}"
        lines.append(f"| {r['method']} | {speed} | {100 * r['accuracy']:.1f}% ± {100 * r['accuracy_std']:.1f} | "
                     f"[{100 * r['accuracy_min']:.1f}, {100 * r['accuracy_max']:.1f}] | {r['mean_reasoning_length']:.2f} | "
                     f"{r['latency_s_mean']:.4f} | {train} |")
    lines += ["", "Reasoning length: tokens (CoT, iCoT), latent steps (CoLaR), continuous thoughts (Coconut, CODI). "
              "Train time is the method's own run; methods that start from CoT add CoT's.", "", "![pareto](pareto.png)", ""]
    return "\n".join(lines)
