"""Metrics over a list of predictions; one row of the report schema."""

from __future__ import annotations

import statistics


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summarise(predictions: list[dict], method: str, speed, total_wall_s: float, cot_length: float | None = None) -> dict:
    """A results row. ``predictions`` hold ``correct`` (first sample), ``any_correct`` (pass@K),
    ``reasoning_length`` and ``wall_s`` per question."""
    n = len(predictions)
    lengths = [p["reasoning_length"] for p in predictions]
    row = {
        "method": method,
        "speed": speed,
        "n": n,
        "accuracy": sum(p["correct"] for p in predictions) / n if n else float("nan"),
        "pass_at_k": sum(p["any_correct"] for p in predictions) / n if n else float("nan"),
        "k": len(predictions[0]["samples"]) if n else 0,
        "mean_reasoning_length": statistics.fmean(lengths) if n else float("nan"),
        "p50_reasoning_length": percentile(lengths, 0.5),
        "p90_reasoning_length": percentile(lengths, 0.9),
        "latency_s_mean": statistics.fmean(p["wall_s"] for p in predictions) if n else float("nan"),
        "questions_per_s": n / total_wall_s if total_wall_s > 0 else float("nan"),
    }
    if cot_length:
        row["compression_vs_cot"] = row["mean_reasoning_length"] / cot_length
    return row
