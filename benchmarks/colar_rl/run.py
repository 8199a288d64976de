"""CoLaR-RL: does GRPO on the latent chains make an SFT CoLaR model more accurate or shorter?

    python benchmarks/colar_rl/run.py --sft runs/tradeoff/arith/seed0/colar_stretched \
        --data runs/tradeoff/arith/seed0/data --speed 2 --seeds 0,1,2 --work runs/colar_rl_nll \
        --steps 100 --lr 2e-5 --tau 1.0 --length-penalty per-step --results arith-c2-nll

``--sft`` is a CoLaR model clearly below CoT: the seed-0 arith model of ``benchmarks/colar_tradeoff``
(make it with that benchmark's command), or the same recipe trained for 10000 steps (the README's CoLaR-RL
section gives the command and every SFT model's accuracy). For each seed, RL continues
from it at the same speed; the SFT model and every RL model are evaluated on the same test questions,
greedy (latent tau = 0, what a user runs) and sampled at the rollout temperature (what RL optimises).
Results (mean and spread over seeds, accuracy and mean latent steps) go to ``<--results>.json`` / ``.md``
beside this script. Finished runs in ``--work`` are reused.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from ponder.data.records import atomic_write_text, read_records
from ponder.errors import run_script
from ponder.evaluation.evaluate import evaluate, read_report, write_report
from ponder.methods.colar_rl import LATENT_LOGPROBS
from ponder.methods.train import train
from ponder.model.io import load_model

HERE = Path(__file__).parent


def evaluated(path: Path, model_dir: Path, test, speed, tau: float) -> dict:
    if path.exists():
        return read_report(path)["results"][0]
    report = evaluate(load_model(model_dir), test, speeds=[speed], latent_temperature=tau, seed=0,
                      model_path=str(model_dir))
    write_report(report, path)
    return report["results"][0]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sft", type=Path, required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--speed", type=int, default=2)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--work", type=Path, default=Path("runs/colar_rl"))
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--tau", type=float, default=0.2, help="latent temperature of the rollouts")
    ap.add_argument("--group-size", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--length-penalty", default="none")
    ap.add_argument("--latent-logprob", default="mean", choices=LATENT_LOGPROBS)
    ap.add_argument("--stop-policy", action=argparse.BooleanOptionalAction, default=True,
                    help="sample and reinforce the end of thinking (off: chains end where </think> is the top token)")
    ap.add_argument("--results", default="results", help="results file name (beside this script), without suffix")
    args = ap.parse_args(argv)
    test = read_records(args.data / "test.jsonl")
    seeds = [int(s) for s in args.seeds.split(",")]
    rl_options = {"max_steps": args.steps, "lr": args.lr, "latent_temperature": args.tau, "group_size": args.group_size,
                  "batch_size": args.batch_size, "speeds": str(args.speed), "length_penalty": args.length_penalty,
                  "latent_logprob": args.latent_logprob, "stop_policy": args.stop_policy}
    rows = {"sft": [{"seed": None, "greedy": evaluated(args.work / "sft_greedy.json", args.sft, test, args.speed, 0.0),
                     "sampled": evaluated(args.work / "sft_sampled.json", args.sft, test, args.speed, args.tau)}]}
    rows["rl"] = []
    for seed in seeds:
        out = args.work / f"rl_seed{seed}"
        if not (out / "ponder.json").exists():
            train("colar-rl", args.data, str(args.sft), out, seed=seed, save_steps=10**9, logging_steps=10, **rl_options)
        rows["rl"].append({"seed": seed, "greedy": evaluated(out / "eval_greedy.json", out, test, args.speed, 0.0),
                           "sampled": evaluated(out / "eval_sampled.json", out, test, args.speed, args.tau),
                           "train_seconds": json.loads((out / "train_log.json").read_text())["train_seconds"]})
    summary = {}
    for mode in ("greedy", "sampled"):
        acc = [r[mode]["accuracy"] for r in rows["rl"]]
        steps = [r[mode]["mean_reasoning_length"] for r in rows["rl"]]
        sft = rows["sft"][0][mode]
        summary[mode] = {
            "sft_accuracy": sft["accuracy"], "sft_steps": sft["mean_reasoning_length"],
            "rl_accuracy_mean": statistics.fmean(acc), "rl_accuracy_std": statistics.stdev(acc) if len(acc) > 1 else 0.0,
            "rl_accuracy_min": min(acc), "rl_accuracy_max": max(acc),
            "rl_steps_mean": statistics.fmean(steps), "rl_steps_std": statistics.stdev(steps) if len(steps) > 1 else 0.0,
        }
    command = "python benchmarks/colar_rl/run.py " + " ".join(sys.argv[1:] if argv is None else argv)
    result = {"command": command, "speed": args.speed, "rl": rl_options, "seeds": seeds, "test_questions": len(test),
              "summary": summary, "runs": rows}
    atomic_write_text(HERE / f"{args.results}.json", json.dumps(result, indent=1) + "\n")
    atomic_write_text(HERE / f"{args.results}.md", markdown(result))
    print((HERE / f"{args.results}.md").read_text())


def markdown(r: dict) -> str:
    lines = ["# CoLaR-RL benchmark", "", f"Command: `{r['command']}`", "",
             f"RL from the SFT CoLaR model at speed {r['speed']}, seeds {r['seeds']}, {r['test_questions']} test "
             f"questions; RL options: `{json.dumps(r['rl'])}`.", "",
             "| decoding | SFT accuracy | RL accuracy (mean ± std [min, max]) | SFT latent steps | RL latent steps (mean ± std) |",
             "|---|---|---|---|---|"]
    for mode, s in r["summary"].items():
        label = "greedy (tau = 0)" if mode == "greedy" else f"sampled (tau = {r['rl']['latent_temperature']})"
        lines.append(f"| {label} | {100 * s['sft_accuracy']:.1f}% | {100 * s['rl_accuracy_mean']:.1f}% ± "
                     f"{100 * s['rl_accuracy_std']:.1f} [{100 * s['rl_accuracy_min']:.1f}, {100 * s['rl_accuracy_max']:.1f}] | "
                     f"{s['sft_steps']:.2f} | {s['rl_steps_mean']:.2f} ± {s['rl_steps_std']:.2f} |")
    lines += ["", "| seed | greedy accuracy | greedy steps | sampled accuracy | sampled steps | train (s) |", "|---|---|---|---|---|---|"]
    for row in r["runs"]["rl"]:
        lines.append(f"| {row['seed']} | {100 * row['greedy']['accuracy']:.1f}% | {row['greedy']['mean_reasoning_length']:.2f} | "
                     f"{100 * row['sampled']['accuracy']:.1f}% | {row['sampled']['mean_reasoning_length']:.2f} | "
                     f"{row['train_seconds']:.0f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    run_script(main)
