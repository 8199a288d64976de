"""Where can RL raise a CoLaR model's accuracy? Greedy against its own sampler, at every speed.

    python benchmarks/colar_rl/headroom.py --model runs/colar_long --data runs/tradeoff/arith/seed0/data \
        --speeds 1,2,3,4,5 --samples 16 --tau 1.0 --results headroom-arith-long

GRPO with a correctness reward mostly *sharpens* the sampler: each question's answers concentrate on the
ones it already finds most often. Sharpened all the way, the sampler answers its mode, so maj@K of the SFT
model estimates what sharpening alone can reach; a speed where maj@K is not above greedy leaves RL only
questions the samples rarely solve, which it must learn rather than sharpen. Per speed, on the same test
questions: greedy accuracy (latent tau = 0), the mean accuracy of K latent samples at ``--tau``, maj@K,
pass@K, and the questions that greedy misses but most samples solve (and the reverse). Results go to
``<--results>.json`` / ``.md`` beside this script.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ponder.data.records import atomic_write_text, read_records
from ponder.errors import run_script
from ponder.evaluation.evaluate import evaluate
from ponder.evaluation.metrics import success_rate
from ponder.model.io import load_model

HERE = Path(__file__).parent


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--data", type=Path, required=True, help="a data directory holding test.jsonl")
    ap.add_argument("--speeds", default="1,2,3,4,5")
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--tau", type=float, default=1.0, help="latent temperature of the samples")
    ap.add_argument("--results", default="headroom", help="results file name (beside this script), without suffix")
    args = ap.parse_args(argv)
    test = read_records(args.data / "test.jsonl")
    model = load_model(args.model)
    speeds = [s.strip() for s in args.speeds.split(",") if s.strip()]
    greedy = evaluate(model, test, speeds=speeds, seed=0)
    sampled = evaluate(model, test, speeds=speeds, samples=args.samples, latent_temperature=args.tau, seed=0)
    rows, n = [], len(test)
    for i, (g, s) in enumerate(zip(greedy["results"], sampled["results"])):
        g_right = [p["correct"] for p in greedy["predictions"][i * n:(i + 1) * n]]
        rate = [success_rate(p) for p in sampled["predictions"][i * n:(i + 1) * n]]
        rows.append({
            "speed": g["speed"], "greedy_accuracy": g["accuracy"], "greedy_steps": g["mean_reasoning_length"],
            "sample_accuracy": s["sample_accuracy"], "majority_accuracy": s["majority_accuracy"], "pass_at_k": s["pass_at_k"],
            "greedy_wrong_samples_mostly_right": sum(not c and r > 0.5 for c, r in zip(g_right, rate)),
            "greedy_right_samples_mostly_wrong": sum(c and r < 0.5 for c, r in zip(g_right, rate)),
            "never_right": sum(r == 0 for r in rate), "always_right": sum(r == 1 for r in rate)})
    command = "python benchmarks/colar_rl/headroom.py " + " ".join(sys.argv[1:] if argv is None else argv)
    result = {"command": command, "model": str(args.model), "test_questions": len(test), "samples": args.samples,
              "tau": args.tau, "rows": rows}
    atomic_write_text(HERE / f"{args.results}.json", json.dumps(result, indent=1) + "\n")
    atomic_write_text(HERE / f"{args.results}.md", markdown(result))
    print((HERE / f"{args.results}.md").read_text())


def markdown(r: dict) -> str:
    k = r["samples"]
    lines = ["# Headroom for RL: greedy against the model's own sampler", "", f"Command: `{r['command']}`", "",
             f"{r['test_questions']} test questions; samples: {k} per question at latent tau = {r['tau']}. "
             f"'greedy wrong, samples mostly right': questions greedy misses that more than half of the {k} samples "
             "solve (sharpening fixes these); the next column the reverse (sharpening breaks these).", "",
             f"| speed | greedy | latent steps | mean of {k} | maj@{k} | pass@{k} | greedy wrong, samples mostly right | "
             f"greedy right, samples mostly wrong | never right | always right |", "|---|---|---|---|---|---|---|---|---|---|"]
    for x in r["rows"]:
        lines.append(f"| {x['speed']} | {100 * x['greedy_accuracy']:.1f}% | {x['greedy_steps']:.2f} | "
                     f"{100 * x['sample_accuracy']:.1f}% | {100 * x['majority_accuracy']:.1f}% | {100 * x['pass_at_k']:.1f}% | "
                     f"{x['greedy_wrong_samples_mostly_right']} | {x['greedy_right_samples_mostly_wrong']} | "
                     f"{x['never_right']} | {x['always_right']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    run_script(main)
