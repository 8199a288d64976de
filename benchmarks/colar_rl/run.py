"""CoLaR-RL: does GRPO on the latent chains make an SFT CoLaR model more accurate or shorter?

    python benchmarks/colar_rl/run.py --sft runs/colar_long --data runs/tradeoff/arith/seed0/data \
        --speed 1 --work runs/rl_c1 --steps 300 --lr 3e-5 --tau 1.0 --group-size 16 --batch-size 8 \
        --samples 16 --seeds 0,1,2 --results arith-long-c1-k16

``--sft`` is a CoLaR model clearly below CoT: the seed-0 arith model of ``benchmarks/colar_tradeoff``
(make it with that benchmark's command), or the same recipe trained for 10000 steps (the README's CoLaR-RL
section gives the command and every SFT model's accuracy). For each seed, RL continues
from it at the same speed; the SFT model and every RL model are evaluated on the same test questions,
greedy (latent tau = 0, what ``ponder eval`` does by default) and sampled at the rollout temperature (what RL
optimises, and how the paper's code decodes), ``--samples`` K times per question: the mean of the K (one
draw of 300 questions moves by ~3 points; K draws and a paired difference per question see a 1-point
change), maj@K (the answer a sampler sharpened to its mode would give) and pass@K. Results (mean and
spread over seeds, each seed's paired gain over SFT with its standard error, mean latent steps) go to
``<--results>.json`` / ``.md`` beside this script. Finished runs in ``--work`` are reused.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

from ponder.data.records import atomic_write_text, read_records
from ponder.errors import run_script
from ponder.evaluation.evaluate import evaluate, read_report, write_report
from ponder.evaluation.metrics import success_rate
from ponder.methods.colar_rl import LATENT_LOGPROBS
from ponder.methods.train import train
from ponder.model.io import load_model

HERE = Path(__file__).parent


def evaluated(path: Path, model_dir: Path, test, speed, tau: float, samples: int = 1) -> dict:
    """The report of ``model_dir`` on ``test`` (reused from ``path`` when it exists)."""
    if path.exists():
        return read_report(path)
    report = evaluate(load_model(model_dir), test, speeds=[speed], latent_temperature=tau, samples=samples, seed=0,
                      model_path=str(model_dir))
    write_report(report, path)
    return report


def paired(rl: dict, sft: dict) -> dict:
    """RL minus SFT on the same questions: the mean over questions of the difference in each question's
    success rate (its K samples; 0/1 when greedy), with its standard error. Pairing removes the spread of
    question difficulty that makes two separate 300-question accuracies move by ~3 points."""
    diff = [success_rate(a) - success_rate(b) for a, b in zip(rl["predictions"], sft["predictions"])]
    return {"mean": statistics.fmean(diff), "se": statistics.stdev(diff) / math.sqrt(len(diff))}


def row(report: dict, sft: dict | None = None) -> dict:
    r = {k: report["results"][0][k] for k in ("accuracy", "sample_accuracy", "majority_accuracy", "pass_at_k", "k",
                                              "mean_reasoning_length")}
    if sft is not None:
        r["paired_vs_sft"] = paired(report, sft)
    return r


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
    ap.add_argument("--test", type=Path, default=None,
                    help="evaluate on this JSONL instead of DATA/test.jsonl (e.g. more held-out questions; RL still "
                         "trains on DATA/train.jsonl); its reports are kept apart, named after the file")
    ap.add_argument("--samples", type=int, default=16,
                    help="K latent samples per test question in the sampled evaluation (mean of K, maj@K, pass@K)")
    ap.add_argument("--results", default="results", help="results file name (beside this script), without suffix")
    args = ap.parse_args(argv)
    test_path = args.test or args.data / "test.jsonl"
    test = read_records(test_path)
    tag = f"-{args.test.stem}" if args.test else ""  # reports on another test file never overwrite these
    seeds = [int(s) for s in args.seeds.split(",")]
    rl_options = {"max_steps": args.steps, "lr": args.lr, "latent_temperature": args.tau, "group_size": args.group_size,
                  "batch_size": args.batch_size, "speeds": str(args.speed), "length_penalty": args.length_penalty,
                  "latent_logprob": args.latent_logprob, "stop_policy": args.stop_policy}
    sft = {"greedy": evaluated(args.work / f"sft_greedy{tag}.json", args.sft, test, args.speed, 0.0),
           "sampled": evaluated(args.work / f"sft_sampled_k{args.samples}{tag}.json", args.sft, test, args.speed, args.tau,
                                args.samples)}
    rows = {"sft": [{"seed": None, **{mode: row(rep) for mode, rep in sft.items()}}], "rl": []}
    for seed in seeds:
        out = args.work / f"rl_seed{seed}"
        if not (out / "ponder.json").exists():
            train("colar-rl", args.data, str(args.sft), out, seed=seed, save_steps=10**9, logging_steps=10, **rl_options)
        reports = {"greedy": evaluated(out / f"eval_greedy{tag}.json", out, test, args.speed, 0.0),
                   "sampled": evaluated(out / f"eval_sampled_k{args.samples}{tag}.json", out, test, args.speed, args.tau,
                                        args.samples)}
        rows["rl"].append({"seed": seed, **{mode: row(rep, sft[mode]) for mode, rep in reports.items()},
                           "train_seconds": json.loads((out / "train_log.json").read_text())["train_seconds"]})
    summary = {}
    for mode, key in (("greedy", "accuracy"), ("sampled", "sample_accuracy"), ("majority", "majority_accuracy")):
        source = "greedy" if mode == "greedy" else "sampled"
        acc = [r[source][key] for r in rows["rl"]]
        steps = [r[source]["mean_reasoning_length"] for r in rows["rl"]]
        sft = rows["sft"][0][source]
        summary[mode] = {
            "sft_accuracy": sft[key], "sft_steps": sft["mean_reasoning_length"],
            "rl_accuracy_mean": statistics.fmean(acc), "rl_accuracy_std": statistics.stdev(acc) if len(acc) > 1 else 0.0,
            "rl_accuracy_min": min(acc), "rl_accuracy_max": max(acc),
            "rl_steps_mean": statistics.fmean(steps), "rl_steps_std": statistics.stdev(steps) if len(steps) > 1 else 0.0,
        }
    for mode in ("greedy", "sampled"):
        summary[mode]["paired_gain_per_seed"] = [r[mode]["paired_vs_sft"] for r in rows["rl"]]
    command = "python benchmarks/colar_rl/run.py " + " ".join(sys.argv[1:] if argv is None else argv)
    result = {"command": command, "speed": args.speed, "rl": rl_options, "seeds": seeds, "test": str(test_path),
              "test_questions": len(test), "summary": summary, "runs": rows}
    atomic_write_text(HERE / f"{args.results}.json", json.dumps(result, indent=1) + "\n")
    atomic_write_text(HERE / f"{args.results}.md", markdown(result))
    print((HERE / f"{args.results}.md").read_text())


def markdown(r: dict) -> str:
    k, tau = r["runs"]["sft"][0]["sampled"]["k"], r["rl"]["latent_temperature"]
    labels = {"greedy": "greedy (tau = 0)", "sampled": f"sampled (tau = {tau}), mean of {k} per question",
              "majority": f"sampled (tau = {tau}), majority of {k} (maj@{k})"}
    pct = lambda v: f"{100 * v:.1f}%"  # noqa: E731
    gain = lambda g: f"{100 * g['mean']:+.1f} ± {100 * g['se']:.1f}"  # noqa: E731
    lines = ["# CoLaR-RL benchmark", "", f"Command: `{r['command']}`", "",
             f"RL from the SFT CoLaR model at speed {r['speed']}, seeds {r['seeds']}, {r['test_questions']} test "
             f"questions (`{r['test']}`); RL options: `{json.dumps(r['rl'])}`.", "",
             "| decoding | SFT accuracy | RL accuracy (mean ± std [min, max]) | SFT latent steps | RL latent steps (mean ± std) |",
             "|---|---|---|---|---|"]
    for mode, s in r["summary"].items():
        lines.append(f"| {labels[mode]} | {pct(s['sft_accuracy'])} | {pct(s['rl_accuracy_mean'])} ± "
                     f"{100 * s['rl_accuracy_std']:.1f} [{100 * s['rl_accuracy_min']:.1f}, {100 * s['rl_accuracy_max']:.1f}] | "
                     f"{s['sft_steps']:.2f} | {s['rl_steps_mean']:.2f} ± {s['rl_steps_std']:.2f} |")
    lines += ["", f"Per seed. Gain: RL minus SFT on the same questions, in points, ± its standard error over the "
              f"questions (sampled: each question's success rate over its {k} samples).", "",
              f"| seed | greedy | greedy gain | sampled (mean of {k}) | sampled gain | maj@{k} | pass@{k} | "
              "latent steps (greedy) | train (s) |", "|---|---|---|---|---|---|---|---|---|"]
    sft = r["runs"]["sft"][0]
    lines.append(f"| SFT | {pct(sft['greedy']['accuracy'])} | | {pct(sft['sampled']['sample_accuracy'])} | | "
                 f"{pct(sft['sampled']['majority_accuracy'])} | {pct(sft['sampled']['pass_at_k'])} | "
                 f"{sft['greedy']['mean_reasoning_length']:.2f} | |")
    for run in r["runs"]["rl"]:
        g, s = run["greedy"], run["sampled"]
        lines.append(f"| {run['seed']} | {pct(g['accuracy'])} | {gain(g['paired_vs_sft'])} | {pct(s['sample_accuracy'])} | "
                     f"{gain(s['paired_vs_sft'])} | {pct(s['majority_accuracy'])} | {pct(s['pass_at_k'])} | "
                     f"{g['mean_reasoning_length']:.2f} | {run['train_seconds']:.0f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    run_script(main)
