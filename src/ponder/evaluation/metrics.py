"""Metrics over a list of predictions; one row of the report schema."""

from __future__ import annotations

import statistics
from collections import Counter

from ponder.evaluation.answers import answer_key


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def success_rate(prediction: dict) -> float:
    """The share of a question's K samples that are right."""
    return statistics.fmean(s["correct"] for s in prediction["samples"])


def majority_correct(samples: list[dict]) -> bool:
    """Self-consistency (maj@K): is the most frequent answer among the samples right? Empty answers do not vote;
    a tie goes to the answer sampled first."""
    keys = [answer_key(s["answer"]) for s in samples]
    counts = Counter(k for k in keys if k is not None)
    if not counts:
        return False
    top = max(counts.values())
    winner = next(i for i, k in enumerate(keys) if k is not None and counts[k] == top)
    return bool(samples[winner]["correct"])


def summarise(predictions: list[dict], method: str, speed, total_wall_s: float, cot_length: float | None = None) -> dict:
    """A results row. ``predictions`` hold ``correct`` (first sample), ``any_correct`` (pass@K),
    ``reasoning_length``, ``wall_s`` and ``samples`` (each with ``answer`` and ``correct``) per question.

    With K > 1 samples, ``accuracy`` (the first sample) is one draw; ``sample_accuracy`` averages all K, so
    two sampled models compare with far less noise, and ``majority_accuracy`` (maj@K) is what a sampler
    sharpened to its most frequent answer would score."""
    n = len(predictions)
    lengths = [p["reasoning_length"] for p in predictions]
    row = {
        "method": method,
        "speed": speed,
        "n": n,
        "accuracy": sum(p["correct"] for p in predictions) / n if n else float("nan"),
        "pass_at_k": sum(p["any_correct"] for p in predictions) / n if n else float("nan"),
        "sample_accuracy": statistics.fmean(map(success_rate, predictions)) if n else float("nan"),
        "majority_accuracy": sum(majority_correct(p["samples"]) for p in predictions) / n if n else float("nan"),
        "k": len(predictions[0]["samples"]) if n else 0,
        "mean_reasoning_length": statistics.fmean(lengths) if n else float("nan"),
        "p50_reasoning_length": percentile(lengths, 0.5),
        "p90_reasoning_length": percentile(lengths, 0.9),
        "latency_s_mean": statistics.fmean(p["wall_s"] for p in predictions) if n else float("nan"),
        "questions_per_s": n / total_wall_s if total_wall_s > 0 else float("nan"),
    }
    if n and "passes" in predictions[0]:  # the whole cost, probes included (exit policies)
        row["mean_probe_tokens"] = statistics.fmean(p["probe_tokens"] for p in predictions)
        row["mean_passes"] = statistics.fmean(p["passes"] for p in predictions)
    if cot_length:
        row["compression_vs_cot"] = row["mean_reasoning_length"] / cot_length
    return row


def mean_over_seeds(rows: list[dict]) -> dict:
    """One row from runs that differ only in their seed: every number their mean, plus the spread of the
    accuracy (``accuracy_std``: the sample standard deviation, as papers report mean +- std over seeds)."""
    out = dict(rows[0])
    for k, v in rows[0].items():
        if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "speed":
            out[k] = statistics.fmean(r[k] for r in rows)
    out["n"] = rows[0]["n"]
    out["seeds"] = len(rows)
    out["accuracy_per_seed"] = [r["accuracy"] for r in rows]
    out["accuracy_std"] = statistics.stdev(out["accuracy_per_seed"])
    return out
