"""Latency: is CoLaR at speed c really (CoT length / latent length) times faster end to end than CoT?

    python benchmarks/colar_latency/run.py --work runs/tradeoff --tasks running-sum,arith

Takes the seed-0 CoT and CoLaR (stretched) models that ``colar_tradeoff/run.py`` trained, decodes the
same test questions with the same decoder at batch 1 and batch 32, and reports the end-to-end speed-up
(prompt, reasoning and answer included) against the ideal ratio (CoT length / latent length): one latent
step costs one forward pass, like one token. The prefill, ``</think>`` and answer tokens cost the same in
both, so end to end the limit is the ratio of forward passes (counted here by a hook on the model), which
sits below the ideal ratio, the more so the shorter the chain; the table gives both. Median of
``--repeats`` timed runs over the questions after one warm-up run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from ponder.data.records import atomic_write_text, read_records
from ponder.errors import run_script
from ponder.inference.decode import Decoder
from ponder.model.io import load_model

HERE = Path(__file__).parent


def timed(model, questions, speed, batch_size, repeats):
    """(median seconds for all questions, mean reasoning length, forward passes per pass over the questions)."""
    decoder = Decoder(model, max_new_tokens=256)
    calls = []
    hook = model.register_forward_pre_hook(lambda *_: calls.append(1))
    times, lengths = [], []
    for i in range(repeats + 1):
        calls.clear()
        t0 = time.perf_counter()
        gens = []
        for s in range(0, len(questions), batch_size):
            gens += decoder.generate(questions[s:s + batch_size], speed=speed)
        if i:  # the first pass warms up
            times.append(time.perf_counter() - t0)
        lengths = [g.reasoning_length for g in gens]
    hook.remove()
    return statistics.median(times), statistics.fmean(lengths), len(calls)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="runs/tradeoff")
    ap.add_argument("--tasks", default="running-sum,arith")
    ap.add_argument("--n", type=int, default=64, help="test questions")
    ap.add_argument("--batch-sizes", default="1,32")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(HERE))
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    rows = []
    for task in args.tasks.split(","):
        base = Path(args.work) / task / "seed0"
        if not (base / "cot").is_dir() or not (base / "colar_stretched").is_dir():
            sys.exit(f"error: {base}: run benchmarks/colar_tradeoff/run.py first (no cot / colar_stretched model)")
        questions = [r.question for r in read_records(base / "data" / "test.jsonl")[: args.n]]
        cot, colar = load_model(base / "cot").eval(), load_model(base / "colar_stretched").eval()
        for bs in [int(b) for b in args.batch_sizes.split(",")]:
            t_cot, l_cot, f_cot = timed(cot, questions, None, bs, args.repeats)
            for c in range(1, colar.settings.max_compression + 1):
                t_lat, l_lat, f_lat = timed(colar, questions, c, bs, args.repeats)
                ideal = l_cot / l_lat if l_lat else float("inf")
                speedup = t_cot / t_lat
                rows.append({"task": task, "batch_size": bs, "speed": c, "n": len(questions),
                             "cot_seconds": t_cot, "colar_seconds": t_lat, "cot_length": l_cot, "latent_length": l_lat,
                             "speedup": speedup, "ideal_speedup": ideal, "speedup_over_ideal": speedup / ideal,
                             "meets_0.8_of_ideal": speedup >= 0.8 * ideal,
                             "cot_forward_passes": f_cot, "colar_forward_passes": f_lat,
                             "pass_ratio": f_cot / f_lat, "speedup_over_pass_ratio": speedup / (f_cot / f_lat)})
                print(json.dumps(rows[-1]))
    command = "python benchmarks/colar_latency/run.py " + " ".join(sys.argv[1:] if argv is None else argv)
    out = Path(args.out)
    env = {"torch": torch.__version__, "threads": torch.get_num_threads(), "device": "cpu"}
    atomic_write_text(out / "results.json", json.dumps({"command": command, "env": env, "rows": rows}, indent=1) + "\n")
    lines = ["# CoLaR latency benchmark", "", f"Command: `{command}` ({env['threads']} CPU threads, torch {env['torch']})", "",
             "Same questions, same decoder; seconds for all questions (median of passes); speed-up = CoT time / CoLaR "
             "time; ideal = CoT length / latent length; passes = forward passes of the model over all questions "
             "(prefill, reasoning, `</think>`, answer); pass ratio = CoT passes / CoLaR passes, the end-to-end limit "
             "when every pass costs the same.", "",
             "| task | batch | speed | CoT s | CoLaR s | CoT length | latent length | speed-up | ideal | speed-up / ideal "
             "| CoT passes | CoLaR passes | pass ratio | speed-up / pass ratio |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['task']} | {r['batch_size']} | {r['speed']} | {r['cot_seconds']:.3f} | {r['colar_seconds']:.3f} | "
                     f"{r['cot_length']:.2f} | {r['latent_length']:.2f} | {r['speedup']:.2f} | {r['ideal_speedup']:.2f} | "
                     f"{r['speedup_over_ideal']:.2f} | {r['cot_forward_passes']} | {r['colar_forward_passes']} | "
                     f"{r['pass_ratio']:.2f} | {r['speedup_over_pass_ratio']:.2f} |")
    atomic_write_text(out / "results.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    run_script(main)
