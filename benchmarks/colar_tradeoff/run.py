"""CoLaR trade-off: CoT vs No-CoT vs CoLaR at every speed, both latent position modes, several seeds.

    python benchmarks/colar_tradeoff/run.py --tasks running-sum,arith --seeds 0,1 --work runs/tradeoff

Per task and seed: make the data; train a tiny CoT model and a tiny No-CoT model with the same budget;
train CoLaR on top of the CoT model (stretched and, on running-sum, contiguous positions; with the paper's
``sum`` compression and with ``ordered``); evaluate all on the test split (CoLaR at c = 1..C). Results
(mean and spread over seeds, per-c latent-loss check, the running-sum order check, train times) go to
``results.json`` and ``results.md`` beside this script, plots to ``<task>.png``. Finished runs in
``--work`` are reused (delete the folder to start over). ``--positions`` / ``--compressions`` train only
those CoLaR variants: the rows of the other variants and seeds (and of tasks not in ``--tasks``) are kept
from the existing ``results.json``, each task with the commands that made its rows.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from ponder.bench import run_method
from ponder.data.records import atomic_write_text
from ponder.data.tasks import make_splits, write_splits
from ponder.errors import run_script
from ponder.evaluation.plot import plot_tradeoff
from ponder.methods.colar import POSITION_MODES
from ponder.methods.compression import MODES

HERE = Path(__file__).parent

# Same model size (tiny) for every method of a task; budgets in optimizer steps of batch 32.
# Both latent position modes on running-sum; arith (longer sequences) only the default (stretched) and
# at difficulty 3, to fit the CPU budget of one session (2 cores). Both compressions on both tasks: the
# paper's order-blind 'sum' and 'ordered' (methods/compression.py says why).
TASKS = {
    "running-sum": {"data": {"n_train": 4000, "n_val": 100, "n_test": 300, "difficulty": 6},
                    "cot": {"max_steps": 1200, "lr": 5e-4},
                    "colar": {"max_steps": 10000, "lr": 1e-3, "latent_loss": "nll"},
                    "speeds": [1, 2, 3, 4], "positions": ["stretched", "contiguous"], "compressions": ["sum", "ordered"]},
    "arith": {"data": {"n_train": 4000, "n_val": 100, "n_test": 300, "difficulty": 3},
              "cot": {"max_steps": 1500, "lr": 1e-3}, "colar": {"max_steps": 3000, "lr": 1e-3, "latent_loss": "nll"},
              "speeds": [1, 2, 3, 4, 5], "positions": ["stretched"], "compressions": ["sum", "ordered"]},
}


REUSE_ONLY = False  # --reuse-only: aggregate the finished runs, train nothing


def bench_task(task: str, seed: int, work: Path, modes: list[str] | None = None,
               compressions: list[str] | None = None) -> list[dict]:
    spec = TASKS[task]
    work = work / task / f"seed{seed}"
    data = work / "data"
    if not (data / "test.jsonl").exists():
        write_splits(make_splits(task, seed=seed, **spec["data"]), data)
    common = {"batch_size": 32, "logging_steps": 50}
    runs = [("cot", "cot", "tiny", spec["cot"], None, None), ("nocot", "nocot", "tiny", spec["cot"], None, None)]
    runs += [("colar", f"colar_{p}" + ("" if comp == "sum" else f"_{comp}"), str(work / "cot"),
              {**spec["colar"], "max_compression": max(spec["speeds"]), "latent_positions": p, "compression": comp}, p, comp)
             for comp in compressions or spec["compressions"] for p in modes or spec["positions"]]
    rows = []
    for method, name, init, options, positions, comp in runs:
        report_path = work / f"eval_{name}.json"
        if REUSE_ONLY and not report_path.exists():
            continue
        report = run_method(method, data, init, work / name, report_path, data / "test.jsonl", {**common, **options}, seed)
        latent = _latent_loss_by_c(json.loads((work / name / "train_log.json").read_text())["log_history"]) \
            if method == "colar" else None
        rows += _tag(report, task, seed, positions, comp, latent)
    return rows


def _latent_loss_by_c(history) -> dict:
    """First and last logged latent loss for each c: it must fall for every c, not only c = 1."""
    out = {}
    for h in history:
        for k, v in h.items():
            if k.startswith("latent_loss_c"):
                out.setdefault(k.removeprefix("latent_loss_c"), []).append(v)
    return {c: {"first": vs[0], "last": vs[-1]} for c, vs in sorted(out.items())}


def _tag(report, task, seed, positions, compression, latent=None):
    rows = []
    for r in report["results"]:
        row = {k: r[k] for k in ("method", "speed", "accuracy", "mean_reasoning_length", "latency_s_mean",
                                 "questions_per_s")}
        row.update(task=task, seed=seed, positions=positions, compression=compression,
                   train_seconds=report["settings"].get("train_seconds"))
        if latent and r["speed"] is not None:
            row["latent_loss"] = latent.get(str(r["speed"]))
        if task == "running-sum" and r["speed"] == 2:
            row["order_check"] = _order_check([p for p in report["predictions"] if p["speed"] == 2])
        rows.append(row)
    return rows


def _order_check(predictions: list[dict]) -> dict:
    """Running-sum at c = 2: accuracy on questions where a latent step's pair of sums fits both orders.

    A pair group (s_2k-1, s_2k) holds {x, x + 5} when its second digit d_2k is 5, and then both orders are
    consistent with the question; only a later group is at risk (the first sum is the first digit). A
    compression that forgets the order inside a group fails there first."""
    split = {"ambiguous": [], "rest": []}
    for p in predictions:
        digits = p["question"].split()
        risky = any(digits[i] == "5" for i in range(3, len(digits), 2))
        split["ambiguous" if risky else "rest"].append(bool(p["correct"]))
    return {k: {"n": len(v), "accuracy": sum(v) / max(len(v), 1)} for k, v in split.items()}


def variant(row: dict) -> tuple:
    """(method, positions, compression); rows made before compressions were compared are CoLaR's 'sum'."""
    comp = row.get("compression") or ("sum" if row["method"] == "colar" else None)
    return row["method"], row["positions"], comp


def label(method, positions, compression) -> str:
    return "-".join([method] + [v for v in (positions, compression) if v not in (None, "sum")])


def _order(row: dict, tasks: list[str]) -> tuple:
    """Tables in task order, then CoT, No-CoT and each CoLaR variant as TASKS lists them, then seeds (a
    stable sort: a run's speeds keep their order)."""
    method, positions, comp = variant(row)
    spec = TASKS[row["task"]]
    return (tasks.index(row["task"]), ("cot", "nocot", "colar").index(method),
            spec["compressions"].index(comp) if comp else -1, spec["positions"].index(positions) if positions else -1,
            row["seed"])


def aggregate(rows: list[dict]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["task"], *variant(r), r["speed"]), []).append(r)
    out = []
    for (task, method, positions, comp, speed), rs in groups.items():
        acc = [r["accuracy"] for r in rs]
        out.append({
            "task": task, "method": label(method, positions, comp), "speed": speed,
            "seeds": sorted(r["seed"] for r in rs), "accuracy": statistics.fmean(acc),
            "accuracy_min": min(acc), "accuracy_max": max(acc),
            "mean_reasoning_length": statistics.fmean(r["mean_reasoning_length"] for r in rs),
            "latency_s_mean": statistics.fmean(r["latency_s_mean"] for r in rs),
            "questions_per_s": statistics.fmean(r["questions_per_s"] for r in rs),
        })
    return out


def markdown(agg: list[dict], rows: list[dict], commands: dict[str, list[str]]) -> str:
    listed = [f"- {t}: " + "; then ".join(f"`{c}`" for c in cs) for t, cs in commands.items()]
    lines = ["# CoLaR trade-off benchmark", "", "Commands:", "", *listed, "",
             "Tiny Llama (4 layers, d = 128, about 1M parameters) from scratch per task and seed; CoLaR continues "
             "from the CoT model (its budget comes on top of CoT's); No-CoT gets CoT's budget; batch 32; budgets in `config` of "
             "results.json. Final checkpoints (cosine LR decay). Accuracy is the mean over seeds with [min, max]; reasoning length "
             "is tokens (CoT) or latent steps (CoLaR). Latency is each run's own evaluation (batch 32) under whatever load the "
             "machine had then: rows made in different sessions are not comparable; `benchmarks/colar_latency` times "
             "CoT and CoLaR side by side.", ""]
    for task in dict.fromkeys(r["task"] for r in agg):
        lines += [f"## {task}", "", "| method | speed | seeds | accuracy (mean [min, max]) | reasoning length | latency (s) |",
                  "|---|---|---|---|---|---|"]
        for r in [r for r in agg if r["task"] == task]:
            lines.append(f"| {r['method']} | {r['speed'] if r['speed'] is not None else '-'} | "
                         f"{','.join(map(str, r['seeds']))} | "
                         f"{100 * r['accuracy']:.1f}% [{100 * r['accuracy_min']:.1f}, {100 * r['accuracy_max']:.1f}] | "
                         f"{r['mean_reasoning_length']:.2f} | {r['latency_s_mean']:.4f} |")
        lines += ["", f"![{task}]({task}.png)", ""]
    checks = [r for r in rows if r.get("order_check")]
    if checks:
        lines += ["## Running-sum at c = 2: questions whose pair of sums fits both orders", "",
                  "A later group holds {x, x + 5} when its second digit is 5 (4th or 6th digit here): a compression that forgets "
                  "the order inside a group must guess there (`_order_check`). Rows made before this check have no entry.", "",
                  "| positions | compression | seed | ambiguous: n | accuracy | rest: n | accuracy |", "|---|---|---|---|---|---|---|"]
        for r in checks:
            a, rest = r["order_check"]["ambiguous"], r["order_check"]["rest"]
            lines.append(f"| {r['positions']} | {variant(r)[2]} | {r['seed']} | {a['n']} | {100 * a['accuracy']:.1f}% | "
                         f"{rest['n']} | {100 * rest['accuracy']:.1f}% |")
        lines.append("")
    lines += ["## Latent head loss per c (first -> last logged value, each seed)", "",
              "| task | positions | compression | seed | c | first | last |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        if r.get("latent_loss"):
            lines.append(f"| {r['task']} | {r['positions']} | {variant(r)[2]} | {r['seed']} | {r['speed']} | "
                         f"{r['latent_loss']['first']:.3f} | {r['latent_loss']['last']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default="running-sum,arith")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--work", default="runs/tradeoff")
    ap.add_argument("--out", default=str(HERE))
    ap.add_argument("--positions", default=None, help="latent position modes to train (default: per task)")
    ap.add_argument("--compressions", default=None, help="CoLaR compressions to train, e.g. ordered (default: per task)")
    ap.add_argument("--reuse-only", action="store_true", help="only aggregate runs already in --work")
    args = ap.parse_args(argv)
    global REUSE_ONLY
    REUSE_ONLY = args.reuse_only
    positions = args.positions.split(",") if args.positions else None
    compressions = args.compressions.split(",") if args.compressions else None
    tasks, seeds = args.tasks.split(","), [int(s) for s in args.seeds.split(",")]
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        ap.error(f"--tasks: unknown task(s) {', '.join(unknown)} (choose from {', '.join(TASKS)})")
    for flag, given, allowed in (("--positions", positions, POSITION_MODES), ("--compressions", compressions, MODES)):
        if given and set(given) - set(allowed):
            ap.error(f"{flag}: unknown {', '.join(sorted(set(given) - set(allowed)))} (choose from {', '.join(allowed)})")
    out = Path(args.out)
    command = "python benchmarks/colar_tradeoff/run.py " + " ".join(sys.argv[1:] if argv is None else argv)
    old = json.loads((out / "results.json").read_text()) if (out / "results.json").exists() else {}
    old_commands = {t: [c] if isinstance(c, str) else c for t, c in old.get("commands", {}).items()}
    new = [r for task in tasks for seed in seeds for r in bench_task(task, seed, Path(args.work), positions, compressions)]
    made = {(r["task"], r["seed"], *variant(r)) for r in new}
    # An old row stays unless this run re-made its variant for its seed (CoT and No-CoT come with every task run).
    kept = [r for r in old.get("rows", []) if (r["task"], r["seed"], *variant(r)) not in made]
    rows = kept + new
    shown = [t for t in TASKS if any(r["task"] == t for r in rows)]  # every table in TASKS order
    commands = {t: list(dict.fromkeys([c for c in old_commands.get(t, []) if any(r["task"] == t for r in kept)]
                                      + ([command] if t in tasks else []))) for t in shown}
    config = {t: TASKS[t] if t in tasks else old["config"][t] for t in shown}
    rows.sort(key=lambda r: _order(r, shown))
    agg = aggregate(rows)
    atomic_write_text(out / "results.json", json.dumps({"commands": commands, "config": config, "rows": rows,
                                                         "aggregate": agg}, indent=1) + "\n")
    atomic_write_text(out / "results.md", markdown(agg, rows, commands))
    for task in tasks:
        plot_tradeoff([r for r in agg if r["task"] == task], out / f"{task}.png", title=f"{task}: accuracy vs reasoning length")
    print((out / "results.md").read_text())


if __name__ == "__main__":
    run_script(main)
