"""Exit policies against full CoT and CoLaR on the over-thinking task (issue 19's benchmark).

    python benchmarks/exits/run.py --work runs/exits --out benchmarks/exits

Makes the ``overthink`` data (seed 0: 4000 train, 100 val, 300 test questions), trains a tiny CoT model
with ``recipes/cpu/overthink-cot.yaml`` and CoLaR on the same data from it (reused from ``--work`` when
there), then decodes the 300 test questions at batch 32 and the first ``--n1`` at batch 1 with: full CoT,
every exit policy (``--policies``, in ``ponder bench``'s ``cot+policy[:options]`` spelling), a budget sweep,
and CoLaR at each speed. Per row: accuracy, thinking tokens (CoLaR: latent steps), probe tokens, forward
passes (main + probe), latency. Where a policy loses a question that full CoT gets right, it says why:
the thinking had stated only a wrong answer when it stopped ("before the correction"), or not. Writes
``results.json``, ``results.md`` and ``pareto.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Probes here decode at most 4 tokens (the answers are one digit); convergence probes every 8 tokens (the
# task's traces are ~65 tokens, where Dynasor-CoT's 32 would allow two probes).
POLICIES = ("cot+budget:16,cot+budget:32,cot+convergence:probe_every=8:probe_tokens=4,cot+confidence:probe_tokens=4,"
            "cot+confidence:threshold=0.99:probe_tokens=4,cot+confidence:threshold=0.999:probe_tokens=4,"
            "cot+trim:probe_tokens=4,cot+trim:agree=1:probe_tokens=4,cot+nowait")


def main():
    from ponder.bench import exit_config
    from ponder.data.records import atomic_write_text, read_records
    from ponder.data.tasks import make_splits, write_splits
    from ponder.errors import PonderError
    from ponder.evaluation.evaluate import evaluate
    from ponder.evaluation.overthinking import stated_answers
    from ponder.evaluation.plot import plot_tradeoff
    from ponder.methods.train import train
    from ponder.model.io import is_ponder_dir, load_model
    from ponder.options import read_config

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, required=True, help="Folder for the data and the two models")
    p.add_argument("--out", type=Path, required=True, help="Folder for results.json, results.md, pareto.png")
    p.add_argument("--policies", default=POLICIES, help="Comma list of cot+policy specs")
    p.add_argument("--n", type=int, default=300, help="Test questions decoded at batch 32")
    p.add_argument("--n1", type=int, default=60, help="Of those, the first N1 decoded one at a time (batch 1)")
    p.add_argument("--recipe", default="overthink-cot-partial.yaml", help="The CoT recipe, in recipes/cpu/")
    p.add_argument("--colar-steps", type=int, default=1500, help="CoLaR's training steps (0: no CoLaR rows)")
    a = p.parse_args()
    if a.n1 < 1:
        raise PonderError(f"--n1 must be >= 1, got {a.n1}")
    from ponder.bench import parse_methods

    policies = parse_methods(a.policies)
    data = a.work / "data"
    if not (data / "test.jsonl").exists():
        write_splits(make_splits("overthink", 4000, 100, 300, seed=0), data)
    recipe = ROOT / "recipes" / "cpu" / a.recipe
    from ponder.cli import train_options

    cot_options = read_config(recipe, train_options("cot"), fixed={"method": "cot"})
    if not is_ponder_dir(a.work / "cot"):
        train("cot", data, "tiny", a.work / "cot", **{k: v for k, v in cot_options.items()
                                                      if k not in ("data", "init", "out")}, save_steps=10**9)
    if a.colar_steps and not is_ponder_dir(a.work / "colar"):
        train("colar", data, str(a.work / "cot"), a.work / "colar", max_steps=a.colar_steps, lr=1e-3,
              max_compression=4, seed=0, save_steps=10**9)
    test = read_records(data / "test.jsonl")[: a.n]
    cot, colar = load_model(a.work / "cot"), load_model(a.work / "colar") if a.colar_steps else None

    def run(method, records, batch_size):
        model = colar if method == "colar" else cot
        speeds = [1, 2, 3, 4] if method == "colar" else [None]
        t0 = time.perf_counter()
        report = evaluate(model, records, speeds=speeds, batch_size=batch_size, max_new_tokens=160,
                          exit=exit_config(method))
        return report, time.perf_counter() - t0

    methods = ["cot", *policies] + (["colar"] if a.colar_steps else [])
    rows, rows1, failures = [], [], {}
    full = None
    for method in methods:
        report, seconds = run(method, test, 32)
        preds = report["predictions"]
        if method == "cot":
            full = preds
        for row in report["results"]:  # rows named by the full spec: two confidence settings are two rows
            rows.append({**row, "method": method, "seconds": round(seconds, 2)})
        if "+" in method:
            failures[method] = why_lost(full, preds, stated_answers)
        report1, _ = run(method, test[: a.n1], 1)
        rows1 += [{**row, "method": method} for row in report1["results"]]
        print(f"{method}: {report['results'][0]['accuracy']:.3f}", file=sys.stderr)
    base = rows[0]["mean_reasoning_length"]
    for r in rows:
        r["thinking_cut"] = 1 - r["mean_reasoning_length"] / base if base else None
    command = "python benchmarks/exits/run.py " + " ".join(shlex.quote(x) for x in sys.argv[1:])
    results = {"settings": {"command": command, "task": "overthink", "data_seed": 0, "n_test": len(test),
                            "n_batch1": a.n1, "cot_recipe": str(recipe.relative_to(ROOT)), "cot_options": cot_options,
                            "colar": {"max_steps": a.colar_steps, "lr": 1e-3, "max_compression": 4},
                            "max_new_tokens": 160},
               "batch32": rows, "batch1": rows1, "lost": failures}
    a.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(a.out / "results.json", json.dumps(results, indent=1) + "\n")
    atomic_write_text(a.out / "results.md", markdown(results))
    plot_tradeoff(rows, a.out / "pareto.png", title="overthink: accuracy vs thinking length (batch 32)", frontier=True)
    print(markdown(results))


def why_lost(full: list[dict], preds: list[dict], stated) -> dict:
    """Questions full CoT answers right and the policy wrong, and why: "before the correction" when the
    thinking it kept had stated only wrong answers (it stopped between a mistake and its fix)."""
    lost = [(f, q) for f, q in zip(full, preds) if f["correct"] and not q["correct"]]
    early = 0
    for _, q in lost:
        thinking = q["text"].split("</think>")[0]
        said = [s.value for s in stated(thinking)]
        early += bool(said) and q["reference"] not in said
    return {"lost": len(lost), "before_the_correction": early, "other": len(lost) - early,
            "gained": sum(1 for f, q in zip(full, preds) if q["correct"] and not f["correct"])}


def markdown(results: dict) -> str:
    s = results["settings"]
    by1 = {(r["method"], r["speed"]): r for r in results["batch1"]}
    lines = [f"# Exit policies on the over-thinking task", "", f"Command: `{s['command']}`", "",
             f"{s['n_test']} test questions of `overthink` (seed {s['data_seed']}); tiny CoT from `{s['cot_recipe']}`, "
             f"CoLaR from it ({s['colar']['max_steps']} steps). Batch 32 over all questions; batch 1 over the first "
             f"{s['n_batch1']}. Thinking: tokens before `</think>` (CoLaR: latent steps). Passes: forward passes per "
             "question, main and probe. Latency: mean seconds per question's batch, probes included.", "",
             "| method | speed | accuracy | thinking | cut vs CoT | probe tokens | passes | latency b32 (s) | "
             "latency b1 (s) | accuracy b1 |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results["batch32"]:
        r1 = by1.get((r["method"], r["speed"]), {})
        speed = "-" if r["speed"] is None else r["speed"]
        cut = "-" if r.get("thinking_cut") is None else f"{100 * r['thinking_cut']:.0f}%"
        lines.append(f"| {r['method']} | {speed} | {100 * r['accuracy']:.1f}% | {r['mean_reasoning_length']:.1f} | {cut} | "
                     f"{r.get('mean_probe_tokens', 0):.1f} | {r.get('mean_passes', 0):.1f} | {r['latency_s_mean']:.4f} | "
                     f"{r1.get('latency_s_mean', float('nan')):.4f} | {100 * r1.get('accuracy', float('nan')):.1f}% |")
    lines += ["", "Questions full CoT gets right and the policy loses (batch 32):", "",
              "| policy | lost | stopped before the correction | other | gained |", "|---|---|---|---|---|"]
    for m, f in results["lost"].items():
        lines.append(f"| {m} | {f['lost']} | {f['before_the_correction']} | {f['other']} | {f['gained']} |")
    lines += ["", "![pareto](pareto.png)", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    from ponder.errors import run_script

    run_script(main)
