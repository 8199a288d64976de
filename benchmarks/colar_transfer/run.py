"""CoLaR settings that transfer (issue #23, item 2): choose on selection tasks, confirm on the others.

    OMP_NUM_THREADS=1 python benchmarks/colar_transfer/run.py --stage selection --seeds 0,1 --work runs/transfer
    OMP_NUM_THREADS=1 python benchmarks/colar_transfer/run.py --stage confirmation --seeds 0,1 --work runs/transfer

The protocol, fixed in this file before any run:

* Tasks are split once into SELECTION tasks (running-sum, running-product), where CoLaR settings may be
  compared, and CONFIRMATION tasks (carry-add, permutation), which only ever see the one setting chosen on
  the selection tasks (``--stage confirmation`` refuses ``--settings``; it takes the chosen setting from
  results.json by ``choose()``, or ``--setting NAME`` when a person has chosen, and says so in the rows).
* Data: each task at its default difficulty, 4000 / 100 / 300 questions, data seed 0 (the commands of
  tasks.md). Per task and training seed S: one CoT model (``recipes/cpu/quickstart-cot.yaml``, --seed S)
  and one No-CoT model (quickstart-nocot, the floor); a CoT model below 90% (the tiny model's seed-dependent
  plateau) is trained again with 1200 steps (COT_LONG) and that one is the task and seed's CoT model (its
  rows say so; if that one is below 90% too, the seed gets no CoLaR run); every CoLaR setting of that task and seed continues
  from that same CoT model. Models already in ``--work`` are reused (delete a folder to redo it), so a
  CoT model is trained once per task and seed whatever the number of settings.
* CoLaR: the quickstart's budget (``ponder.quickstart.TRAIN["colar"]``: 3000 steps, batch 32, LR 1e-3,
  c drawn from 1..4, stretched positions, sum compression, NLL latent loss) with each SETTINGS entry's
  changes on top; evaluated greedily on the 300 test questions at c = 1..4.
* Per run, the rows go to ``results.json`` beside this script as soon as the run is evaluated (a re-run
  replaces its own rows only), and ``results.md`` is rewritten: accuracy at each c per task / setting /
  seed, mean latent steps over CoT's mean reasoning length (the acceptance asks <= 55% at c = 2), whether
  the latent loss fell for every c (``train_log.json``: mean of the first 5 vs the last 5 logged values of
  ``latent_loss_c{c}``), the No-CoT floor, and the acceptance check per task and setting (mean over seeds).
* ``choose()``: among the settings run on every selection task and seed, the highest mean c = 2 accuracy
  over those (task, seed) pairs; ties by the mean over c = 2..4, then the earlier (cheaper) SETTINGS entry. The quickstart constraint (running-sum,
  seed 0 is exactly the quickstart: CoLaR c = 2 not below 88.7%) is reported beside it.

``--settings`` runs a subset of SETTINGS (cheapest first: the compressions, then LR / steps); ``--tasks`` a
subset of the stage's tasks. ``--report-only`` rewrites results.md from results.json and trains nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from ponder.bench import run_method
from ponder.data.records import atomic_write_text, read_records
from ponder.data.tasks import make_splits, write_splits
from ponder.errors import run_script
from ponder.evaluation.evaluate import evaluate, write_report
from ponder.quickstart import TRAIN

HERE = Path(__file__).parent
RESULTS = HERE / "results.json"

SELECTION = ("running-sum", "running-product")
CONFIRMATION = ("carry-add", "permutation")
DATA = {"n_train": 4000, "n_val": 100, "n_test": 300}  # data seed 0, default difficulty (tasks.md)
DATA_SEED = 0
SPEEDS = (1, 2, 3, 4)
SEEDS = (0, 1)  # the protocol's training seeds (at least two); coverage lists what is missing of them
COT = {"max_steps": 700, "batch_size": 32, "lr": 5e-4}  # recipes/cpu/quickstart-cot.yaml
NOCOT = {"max_steps": 400, "batch_size": 32, "lr": 5e-4}  # recipes/cpu/quickstart-nocot.yaml
# The quickstart's CoLaR budget, with the compression the protocol started from (the default then: sum).
COLAR = {**TRAIN["colar"], "logging_steps": 10, "compression": "sum"}

# Candidate settings, cheapest first: each is COLAR with these options changed.
SETTINGS = {
    "sum": {},  # the defaults when the protocol was fixed (the paper's compression)
    "mean": {"compression": "mean"},
    "ordered": {"compression": "ordered"},
    "contiguous": {"latent_positions": "contiguous"},
    "sum-lr5e-4": {"lr": 5e-4},
    "sum-6000": {"max_steps": 6000},
    "mse": {"latent_loss": "mse"},
    "official": {"latent_head": "official", "latent_loss": "mse-sample"},  # the CoLaR code's head and loss
    "sum-lw2": {"latent_weight": 2.0},  # loss weights: the latent loss counted twice
    "curriculum": {"speed_curriculum": 0.5},  # c = 1, then 1..2, 1..3 over the first half; then 1..4
}
QUICKSTART_C2 = 266 / 300  # 88.7%, the floor for the quickstart's CoLaR c = 2 (running-sum, seed 0)
COT_OK = 0.9  # a CoT model below this is trained again with COT_LONG (same seed); CoLaR starts from that one
COT_LONG = {**COT, "max_steps": 1200}  # colar_tradeoff's running-sum CoT budget (seeds 0, 1 at 100% there)


def data_dir(work: Path, task: str) -> Path:
    data = work / task / "data"
    if not (data / "test.jsonl").exists():
        write_splits(make_splits(task, seed=DATA_SEED, **DATA), data)
    return data


def train_eval(method: str, data: Path, init: str, out: Path, report: Path, options: dict, seed: int) -> tuple[dict, bool]:
    """Train and evaluate, reusing a finished model (and its report). Returns (report, trained now)."""
    if report.exists() and (out / "ponder.json").exists():
        return json.loads(report.read_text()), False
    if (out / "ponder.json").exists():  # a model made elsewhere (e.g. tasks.md's runs): evaluate only
        from ponder.model.io import load_model

        model = load_model(out)
        speeds = list(range(1, model.settings.max_compression + 1)) if model.settings.reasoning == "latent" else [None]
        rep = evaluate(model, read_records(data / "test.jsonl"), speeds=speeds, model_path=str(out),
                       data_path=str(data / "test.jsonl"))
        log = out / "train_log.json"
        rep["settings"]["train_seconds"] = json.loads(log.read_text()).get("train_seconds") if log.exists() else None
        write_report(rep, report)
        return rep, False
    return run_method(method, data, init, out, report, data / "test.jsonl", options, seed), True


def latent_loss(model_dir: Path, k: int = 5) -> dict:
    """Per c: mean of the first k and last k logged latent losses, and whether it fell."""
    history = json.loads((model_dir / "train_log.json").read_text())["log_history"]
    by_c: dict[str, list[float]] = {}
    for h in history:
        for key, v in h.items():
            if key.startswith("latent_loss_c"):
                by_c.setdefault(key.removeprefix("latent_loss_c"), []).append(v)
    out = {}
    for c, vs in sorted(by_c.items()):
        first, last = statistics.mean(vs[:k]), statistics.mean(vs[-k:])
        out[c] = {"first": round(first, 4), "last": round(last, 4), "fell": last < first, "logged": len(vs)}
    return out


def rows_of(report: dict, stage: str, task: str, seed: int, method: str, setting: str | None, extra: dict) -> list[dict]:
    rows = []
    for r in report["results"]:
        row = {"stage": stage, "task": task, "seed": seed, "method": method, "setting": setting, "speed": r["speed"],
               "accuracy": r["accuracy"], "mean_reasoning_length": r["mean_reasoning_length"],
               "train_seconds": report["settings"].get("train_seconds"), **extra}
        if "latent_loss" in extra and r["speed"] is not None:
            row["latent_loss"] = extra["latent_loss"].get(str(r["speed"]))
        rows.append(row)
    return rows


def key(row: dict) -> tuple:
    return row["task"], row["seed"], row["method"], row["setting"]


def save(new_rows: list[dict]) -> list[dict]:
    """Append a run's rows to results.json (replacing that run's old rows) and rewrite results.md."""
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"protocol": protocol(), "rows": []}
    keys = {key(r) for r in new_rows}
    data["rows"] = [r for r in data["rows"] if key(r) not in keys] + new_rows
    data["protocol"] = protocol()
    atomic_write_text(RESULTS, json.dumps(data, indent=1) + "\n")
    write_md(data["rows"])
    return data["rows"]


def protocol() -> dict:
    return {"selection": list(SELECTION), "confirmation": list(CONFIRMATION), "data": {**DATA, "seed": DATA_SEED},
            "cot": COT, "nocot": NOCOT, "colar": COLAR, "settings": SETTINGS, "speeds": list(SPEEDS)}


def choose(rows: list[dict], seeds: list[int] | None = None) -> tuple[str | None, dict]:
    """The setting with the best mean c = 2 accuracy over every selection task and seed it was run on, among
    settings run on all the (task, seed) pairs that any setting covers; ties by mean over c = 2..4."""
    sel = [r for r in rows if r["method"] == "colar" and r["stage"] == "selection"]
    pairs = {(r["task"], r["seed"]) for r in sel if seeds is None or r["seed"] in seeds}
    scores = {}
    for s in sorted({r["setting"] for r in sel}):
        acc = {(r["task"], r["seed"], r["speed"]): r["accuracy"] for r in sel if r["setting"] == s}
        if not all((t, sd, 2) in acc for t, sd in pairs):
            continue
        c2 = statistics.mean(acc[(t, sd, 2)] for t, sd in pairs)
        rest = statistics.mean(acc[(t, sd, c)] for t, sd in pairs for c in (2, 3, 4))
        qs = acc.get(("running-sum", 0, 2))
        scores[s] = {"c2": c2, "c2to4": rest, "quickstart_c2": qs,
                     "quickstart_ok": None if qs is None else qs >= QUICKSTART_C2}
    if not scores:
        return None, {}
    best = max(scores, key=lambda s: (round(scores[s]["c2"], 6), round(scores[s]["c2to4"], 6), -list(SETTINGS).index(s)))
    return best, scores


def pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def write_md(rows: list[dict]) -> None:
    lines = ["# CoLaR transfer: results (generated by run.py; README.md says what was run and what not)", "",
             f"Selection tasks: {', '.join(SELECTION)}. Confirmation tasks: {', '.join(CONFIRMATION)}. "
             f"CoLaR budget: {COLAR['max_steps']} steps, batch {COLAR['batch_size']}, LR {COLAR['lr']}, c in 1..4, "
             "from the CoT model of the same task and seed. Accuracy on 300 test questions, greedy. "
             "`len/CoT` = mean latent steps at c over CoT's mean reasoning length (same task and seed). "
             "`loss fell` = latent loss, mean of the last 5 logged values below the first 5, for c = 1/2/3/4.", ""]
    for task in (*SELECTION, *CONFIRMATION):
        trs = [r for r in rows if r["task"] == task]
        if not trs:
            continue
        lines += [f"## {task} ({'selection' if task in SELECTION else 'confirmation'})", "",
                  "| model | seed | c=1 | c=2 | c=3 | c=4 | len/CoT at c=2 (c=3, c=4) | loss fell (c=1/2/3/4) | train s |",
                  "|---|---|---|---|---|---|---|---|---|"]
        cot_len = {r["seed"]: r["mean_reasoning_length"] for r in trs if r["method"] == "cot"}
        runs: dict[tuple, list[dict]] = {}
        for r in trs:
            runs.setdefault((r["method"], r["setting"], r["seed"]), []).append(r)
        order = ["cot", "nocot", "colar"]
        names = list(SETTINGS)
        for (method, setting, seed), rs in sorted(runs.items(), key=lambda kv: (
                order.index(kv[0][0]), names.index(kv[0][1]) if kv[0][1] in names else 99, kv[0][2])):
            by = {r["speed"]: r for r in rs}
            if method != "colar":
                r = rs[0]
                note = (f"; {r['cot_options']['max_steps']} steps, the quickstart recipe's gave {pct(r['quickstart_cot_accuracy'])}"
                        if r.get("cot_options") else "")
                lines.append(f"| {method} | {seed} | {pct(r['accuracy'])} (length {r['mean_reasoning_length']:.2f}{note}) "
                             f"| | | | | | {r['train_seconds'] or '-'} |")
                continue
            L = cot_len.get(seed)
            ratio = " (".join(
                [f"{by[2]['mean_reasoning_length'] / L:.0%}" if L and 2 in by else "-",
                 ", ".join(f"{by[c]['mean_reasoning_length'] / L:.0%}" if L and c in by else "-" for c in (3, 4)) + ")"])
            fell = "/".join("-" if not by.get(c, {}).get("latent_loss") else
                            ("yes" if by[c]["latent_loss"]["fell"] else "**no**") for c in SPEEDS)
            lines.append(f"| colar `{setting}` | {seed} | " + " | ".join(pct(by.get(c, {}).get("accuracy")) for c in SPEEDS)
                         + f" | {ratio} | {fell} | {rs[0]['train_seconds']} |")
        lines += ["", *acceptance_lines(trs), ""]
    lines += coverage_lines(rows)
    best, scores = choose(rows)
    if scores:
        done = {(r["task"], r["seed"]) for r in rows if r["method"] == "colar" and r["setting"] == best}
        full = all((t, sd) in done for t in SELECTION for sd in SEEDS)
        lines += ["## Selection", "", "| setting | mean c=2 over selection tasks and seeds | mean c=2..4 | running-sum seed 0 c=2 (quickstart, >= 88.7%) |",
                  "|---|---|---|---|"]
        for s, v in sorted(scores.items(), key=lambda kv: -kv[1]["c2"]):
            lines.append(f"| `{s}`{(' (chosen)' if full else ' (leading so far)') if s == best else ''} | {pct(v['c2'])} | {pct(v['c2to4'])} | "
                         f"{pct(v['quickstart_c2'])} |")
        lines.append("")
    atomic_write_text(HERE / "results.md", "\n".join(lines) + "\n")


def coverage_lines(rows: list[dict]) -> list[str]:
    """What was run and what was not: per stage, each setting's (task, seed) pairs present and missing."""
    out = ["## Coverage (what was run, what was not)", ""]
    seeds = sorted(set(SEEDS) | {r["seed"] for r in rows})
    for stage, tasks in (("selection", SELECTION), ("confirmation", CONFIRMATION)):
        col = [r for r in rows if r["method"] == "colar" and r["stage"] == stage]
        if not col:
            out.append(f"- {stage}: no CoLaR run yet ({', '.join(tasks)})")
            continue
        for s in [s for s in SETTINGS if any(r["setting"] == s for r in col)]:
            have = sorted({(r["task"], r["seed"]) for r in col if r["setting"] == s})
            miss = [(t, sd) for t in tasks for sd in seeds if (t, sd) not in have]
            out.append(f"- {stage}, `{s}`: run on {', '.join(f'{t} seed {sd}' for t, sd in have)}"
                       + (f"; not run on {', '.join(f'{t} seed {sd}' for t, sd in miss)}" if miss else ""))
        unrun = [s for s in SETTINGS if not any(r["setting"] == s for r in col)]
        if stage == "selection" and unrun:
            out.append(f"- selection: settings defined but not run: {', '.join(f'`{s}`' for s in unrun)}")
    return out + [""]


def acceptance_lines(trs: list[dict]) -> list[str]:
    """Per setting, means over the seeds that have both CoT and the CoLaR run: the issue's acceptance."""
    out = []
    cot = {r["seed"]: r for r in trs if r["method"] == "cot"}
    nocot = {r["seed"]: r for r in trs if r["method"] == "nocot"}
    for setting in [s for s in SETTINGS if any(r["setting"] == s for r in trs)]:
        col = [r for r in trs if r["method"] == "colar" and r["setting"] == setting and r["seed"] in cot]
        seeds = sorted({r["seed"] for r in col})
        if not seeds:
            continue
        acc = {(r["seed"], r["speed"]): r for r in col}
        if not all((s, 2) in acc for s in seeds):
            continue
        gap = statistics.mean(cot[s]["accuracy"] - acc[(s, 2)]["accuracy"] for s in seeds)
        ratio = statistics.mean(acc[(s, 2)]["mean_reasoning_length"] / cot[s]["mean_reasoning_length"] for s in seeds)
        above = all(acc[(s, c)]["accuracy"] > nocot[s]["accuracy"] for s in seeds for c in SPEEDS
                    if s in nocot and (s, c) in acc) if any(s in nocot for s in seeds) else None
        fell = all(acc[(s, c)].get("latent_loss", {}).get("fell", False) for s in seeds for c in SPEEDS if (s, c) in acc)
        ok = gap <= 0.03 and ratio <= 0.55 and above and fell
        out.append(f"- `{setting}`, seeds {','.join(map(str, seeds))}: c=2 is {100 * gap:.1f} points below CoT (<= 3: "
                   f"{'yes' if gap <= 0.03 else 'no'}), at {ratio:.0%} of CoT's length (<= 55%: {'yes' if ratio <= 0.55 else 'no'}); "
                   f"every c above No-CoT: {'-' if above is None else 'yes' if above else 'no'}; latent loss fell for every c: "
                   f"{'yes' if fell else 'no'} -> acceptance {'met' if ok else 'not met'}")
    return out


def run_task(stage: str, task: str, seed: int, settings: list[str], work: Path, chosen_by: str | None = None) -> None:
    data = data_dir(work, task)
    run = work / task / f"seed{seed}"
    for method, options in (("cot", COT), ("nocot", NOCOT)):
        rep, trained = train_eval(method, data, "tiny", run / method, run / f"eval_{method}.json", options, seed)
        if method == "cot" and rep["results"][0]["accuracy"] < COT_OK:
            # The tiny model's seed-dependent plateau (benchmarks/quickstart): the same recipe, longer.
            first = rep["results"][0]["accuracy"]
            print(f"{task} seed {seed} cot: {pct(first)} < {pct(COT_OK)}: training it again with {COT_LONG}", flush=True)
            rep, trained = train_eval(method, data, "tiny", run / "cot-long", run / "eval_cot-long.json", COT_LONG, seed)
            save(rows_of(rep, stage, task, seed, method, None, {"cot_options": COT_LONG, "quickstart_cot_accuracy": first}))
        else:
            save(rows_of(rep, stage, task, seed, method, None, {}))
        print(f"{task} seed {seed} {method}: {pct(rep['results'][0]['accuracy'])}{' (trained)' if trained else ''}", flush=True)
    cot_dir = run / "cot-long" if (run / "eval_cot-long.json").exists() else run / "cot"
    cot_acc = json.loads((run / f"eval_{cot_dir.name}.json").read_text())["results"][0]["accuracy"]
    if cot_acc < COT_OK:
        # Compressing a chain the model never learned tests nothing: no CoLaR for this task and seed.
        print(f"{task} seed {seed}: CoT at {pct(cot_acc)} (< {pct(COT_OK)}) even with {COT_LONG['max_steps']} steps: "
              "no CoLaR run for this seed (try another seed)", flush=True)
        return
    for s in settings:
        t0 = time.time()
        name = f"colar-{s}"
        rep, trained = train_eval("colar", data, str(cot_dir), run / name, run / f"eval_{name}.json",
                                  {**COLAR, **SETTINGS[s]}, seed)
        extra = {"latent_loss": latent_loss(run / name), "options": {**COLAR, **SETTINGS[s]}, "init": cot_dir.name}
        if chosen_by:
            extra["chosen_by"] = chosen_by
        save(rows_of(rep, stage, task, seed, "colar", s, extra))
        accs = " / ".join(pct(r["accuracy"]) for r in rep["results"])
        print(f"{task} seed {seed} colar {s}: c=1..4 {accs} ({time.time() - t0:.0f} s)", flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--stage", choices=("selection", "confirmation"), default="selection")
    p.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    p.add_argument("--tasks", default=None, help="a subset of the stage's tasks (comma list)")
    p.add_argument("--settings", default="sum,mean,ordered", help="selection only: SETTINGS to compare (comma list)")
    p.add_argument("--setting", default=None, help="confirmation only: the setting, if not the one choose() picks")
    p.add_argument("--work", default="runs/transfer")
    p.add_argument("--report-only", action="store_true")
    a = p.parse_args(argv)
    rows = json.loads(RESULTS.read_text())["rows"] if RESULTS.exists() else []
    if a.report_only:
        write_md(rows)
        return 0
    seeds = [int(s) for s in a.seeds.split(",")]
    stage_tasks = SELECTION if a.stage == "selection" else CONFIRMATION
    tasks = [t.strip() for t in a.tasks.split(",")] if a.tasks else list(stage_tasks)
    if bad := [t for t in tasks if t not in stage_tasks]:
        p.error(f"--tasks {','.join(bad)}: not {a.stage} tasks ({', '.join(stage_tasks)})")
    if a.stage == "selection":
        settings = [s.strip() for s in a.settings.split(",")]
        if bad := [s for s in settings if s not in SETTINGS]:
            p.error(f"--settings: unknown {', '.join(bad)} (known: {', '.join(SETTINGS)})")
        chosen_by = None
    else:
        best, scores = choose(rows)
        setting = a.setting or best
        if setting not in SETTINGS:
            p.error("no setting chosen yet: run the selection stage first (or name one with --setting)")
        settings = [setting]
        chosen_by = "--setting (by hand)" if a.setting else f"choose() on the selection rows: {json.dumps(scores)}"
        print(f"confirmation with setting '{setting}' ({chosen_by})", flush=True)
    work = Path(a.work)
    # Seed-major: a first complete comparison of every setting on every task comes from the first seed.
    for seed in seeds:
        for task in tasks:
            run_task(a.stage, task, seed, settings, work, chosen_by)
    return 0


if __name__ == "__main__":
    run_script(main)
