"""Over-thinking: how much of a CoT model's greedy thinking on the overthink task comes after the answer.

    ponder data make overthink --out /tmp/ot/data --n-train 4000 --n-val 100 --n-test 300 --seed 0
    ponder train --config recipes/cpu/overthink-cot.yaml --data /tmp/ot/data --out /tmp/ot/cot   # 600 steps, lr 1e-3
    python benchmarks/exits/overthinking.py --model /tmp/ot/cot --data /tmp/ot/data

Decodes every test question greedily (one ``Decoder``, batches of ``--batch-size``) and measures, with
``ponder.evaluation.overthinking``: accuracy; thinking tokens; where the answer is first stated correctly
and the share of thinking tokens after it (overall = after / all thinking tokens; per question = the mean
of each question's share, over the questions that state it); how often the first stated answer is wrong
and, then, how often the final answer is right. The share is the most an exit policy that stops once the
answer has settled can save without changing the answer. Writes ``overthinking.json`` and ``.md`` next to
this script (``--out`` elsewhere), with the commands that made the data and the model and, from the model
directory, its training time (``train_log.json``) and settings (``train_config.yaml``).
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import Counter
from pathlib import Path

import torch

from ponder.data.records import atomic_write_text, read_records, resolve_split
from ponder.errors import PonderError, run_script
from ponder.evaluation.answers import answers_match
from ponder.evaluation.overthinking import overthinking, stated_answers, thinking_ids
from ponder.inference.decode import Decoder
from ponder.model.io import load_model

HERE = Path(__file__).parent
DATA_COMMAND = "ponder data make overthink --out /tmp/ot/data --n-train 4000 --n-val 100 --n-test 300 --seed 0"
TRAIN_COMMAND = "ponder train --config recipes/cpu/overthink-cot.yaml --data /tmp/ot/data --out /tmp/ot/cot"


def measure(model, records, batch_size: int = 32, max_new_tokens: int = 256) -> tuple[dict, list[dict]]:
    """(summary, one row per question) of greedy decoding on ``records``."""
    decoder, tok = Decoder(model, max_new_tokens=max_new_tokens), model.tokenizer
    think_end = model.settings.layout.think_end
    rows = []
    for s in range(0, len(records), batch_size):
        batch = records[s:s + batch_size]
        for r, g in zip(batch, decoder.generate([r.question for r in batch])):
            m = overthinking(tok, g.token_ids, r.answer, think_end)
            said = stated_answers(tok.decode(thinking_ids(tok, g.token_ids, think_end)))
            rows.append({"question": r.question, "answer": r.answer, "predicted": g.answer,
                         "correct": answers_match(g.answer, r.answer), "ended": g.ended,
                         "thinking_tokens": m.thinking_tokens, "statement_tokens": m.statement_tokens,
                         "tokens_after": m.tokens_after, "share_after": m.share,
                         "statements": [x.value for x in said],
                         "first_wrong": bool(said) and not answers_match(said[0].value, r.answer)})
    n = len(rows)
    stated = [r for r in rows if r["share_after"] is not None]
    first_wrong = [r for r in rows if r["first_wrong"]]
    thinking = sum(r["thinking_tokens"] for r in rows)
    summary = {
        "n": n,
        "accuracy": sum(r["correct"] for r in rows) / n,
        "mean_thinking_tokens": thinking / n,
        "ended": sum(r["ended"] for r in rows) / n,
        "stated_correctly": len(stated) / n,
        "share_after_first_correct_overall": sum(r["tokens_after"] or 0 for r in rows) / thinking if thinking else None,
        "share_after_first_correct_mean": statistics.fmean(r["share_after"] for r in stated) if stated else None,
        "mean_tokens_to_first_correct": statistics.fmean(r["statement_tokens"] for r in stated) if stated else None,
        "mean_statements": statistics.fmean(len(r["statements"]) for r in rows),
        "statements_histogram": {str(k): v for k, v in sorted(Counter(len(r["statements"]) for r in rows).items())},
        "first_statement_wrong": len(first_wrong) / n,
        "first_wrong_count": len(first_wrong),
        "final_right_when_first_wrong": (sum(r["correct"] for r in first_wrong) / len(first_wrong)) if first_wrong else None,
    }
    return summary, rows


def data_stats(records) -> dict:
    """The same counts on the reference traces themselves (what the model was trained to imitate)."""
    wrong = sum(bool(s) and not answers_match(s[0].value, r.answer)
                for r in records for s in [stated_answers(" ".join(r.steps))])
    return {"mean_statements": statistics.fmean(len(stated_answers(" ".join(r.steps))) for r in records),
            "first_statement_wrong": wrong / len(records)}


def fmt(v, pct=False):
    if v is None:
        return "n/a"
    return f"{100 * v:.1f}%" if pct else (f"{v:.2f}" if isinstance(v, float) else str(v))


def markdown(result: dict) -> str:
    s, st = result["summary"], result["settings"]
    lines = [
        "# Over-thinking on the overthink task (greedy CoT)", "",
        f"Model `{st['model']}`, test set `{st['data']}` ({s['n']} questions), {st['device']}, "
        f"max {st['max_new_tokens']} new tokens.", "",
        "Made with:", "", "```", st["data_command"], st["train_command"] + (
            f"   # {st['train_seconds']:.0f} s of training" if st.get("train_seconds") else ""),
        st["command"], "```", "", *([st["note"], ""] if st.get("note") else []),
        "| measure | value |", "|---|---|",
        f"| accuracy | {fmt(s['accuracy'], True)} |",
        f"| mean thinking tokens | {fmt(s['mean_thinking_tokens'])} |",
        f"| thinking ended by the model (not cut) | {fmt(s['ended'], True)} |",
        f"| answer stated correctly in the thinking | {fmt(s['stated_correctly'], True)} |",
        f"| mean thinking tokens up to the first correct statement | {fmt(s['mean_tokens_to_first_correct'])} |",
        f"| **share of thinking tokens after the first correct statement (all tokens)** | "
        f"**{fmt(s['share_after_first_correct_overall'], True)}** |",
        f"| same, mean per question | {fmt(s['share_after_first_correct_mean'], True)} |",
        f"| mean answer statements per question (histogram {s['statements_histogram']}) | {fmt(s['mean_statements'])} |",
        f"| first stated answer wrong | {fmt(s['first_statement_wrong'], True)} ({s['first_wrong_count']}) |",
        f"| final answer right when the first statement was wrong | {fmt(s['final_right_when_first_wrong'], True)} |",
        "", f"In the test set's own traces: {fmt(result['data']['mean_statements'])} statements per question, first "
        f"statement wrong in {fmt(result['data']['first_statement_wrong'], True)}.", "",
    ]
    return "\n".join(lines)


def main(argv=None):
    import shlex
    import sys

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="/tmp/ot/cot", help="a CoT model trained on the overthink task")
    ap.add_argument("--data", default="/tmp/ot/data", help="the data directory (its test.jsonl) or a file")
    ap.add_argument("--n", type=int, default=0, help="first N test questions (0: all)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--train-seconds", type=float, default=None,
                    help="training wall time, for the record (default: the model's train_log.json)")
    ap.add_argument("--note", default="", help="a line for the report (the machine, what else ran)")
    ap.add_argument("--data-command", default=DATA_COMMAND)
    ap.add_argument("--train-command", default=TRAIN_COMMAND)
    ap.add_argument("--out", default=str(HERE / "overthinking"), help="output path without extension (.json, .md)")
    args = ap.parse_args(argv)
    if args.n < 0 or args.batch_size < 1:
        raise PonderError(f"--n must be >= 0 and --batch-size >= 1, got {args.n} and {args.batch_size}")
    torch.manual_seed(0)
    records = read_records(resolve_split(args.data, "test"))
    records = records[: args.n] if args.n else records
    model = load_model(args.model).eval()
    train_seconds, train_config = args.train_seconds, None
    if (Path(args.model) / "train_log.json").is_file() and train_seconds is None:
        train_seconds = json.loads((Path(args.model) / "train_log.json").read_text()).get("train_seconds")
    if (Path(args.model) / "train_config.yaml").is_file():
        import yaml

        train_config = yaml.safe_load((Path(args.model) / "train_config.yaml").read_text())
    if model.settings.reasoning != "tokens":
        raise PonderError(f"--model: {args.model} is a {model.settings.method} model; this measures token thinking (CoT)")
    summary, rows = measure(model, records, args.batch_size, args.max_new_tokens)
    result = {"settings": {"model": args.model, "data": str(resolve_split(args.data, "test")),
                           "max_new_tokens": args.max_new_tokens, "batch_size": args.batch_size,
                           "device": str(model.device), "train_seconds": train_seconds, "train_config": train_config,
                           "note": args.note, "data_command": args.data_command, "train_command": args.train_command,
                           "command": "python benchmarks/exits/overthinking.py " + " ".join(map(shlex.quote, sys.argv[1:]))},
              "summary": summary, "data": data_stats(records), "examples": rows[:3] + [r for r in rows if r["first_wrong"]][:3],
              "wrong": [r for r in rows if not r["correct"]][:20]}
    out = Path(args.out)
    atomic_write_text(out.with_suffix(".json"), json.dumps(result, indent=1) + "\n")
    atomic_write_text(out.with_suffix(".md"), markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    run_script(main)
