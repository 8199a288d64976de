"""Results rows as a rich table (terminal) or a Markdown table (reports, README)."""

from __future__ import annotations

COLUMNS = [
    ("method", "method", "{}"),
    ("speed", "speed", "{}"),
    ("accuracy", "accuracy", "{:.1%}"),
    ("mean_reasoning_length", "reasoning length", "{:.2f}"),
    ("latency_s_mean", "latency (s)", "{:.4f}"),
    ("questions_per_s", "questions/s", "{:.1f}"),
]
# Shown when a row holds K > 1 samples per question (eval --samples K).
SAMPLE_COLUMNS = [
    ("sample_accuracy", "mean of K", "{:.1%}"),
    ("majority_accuracy", "maj@K", "{:.1%}"),
    ("pass_at_k", "pass@K", "{:.1%}"),
]


# Shown when a row used an exit policy (its probes are real cost).
EXIT_COLUMNS = [
    ("mean_probe_tokens", "probe tokens", "{:.1f}"),
    ("mean_passes", "passes", "{:.1f}"),
]


# Shown when a row is the mean of runs with several seeds (eval --seeds N).
SEED_COLUMNS = [
    ("accuracy_std", "accuracy std", "{:.1%}"),
    ("seeds", "seeds", "{}"),
]


def columns(rows: list[dict]) -> list[tuple]:
    return (COLUMNS + (SEED_COLUMNS if any("accuracy_std" in r for r in rows) else []) + (SAMPLE_COLUMNS if any((r.get("k") or 1) > 1 for r in rows) else [])
            + (EXIT_COLUMNS if any("+" in str(r.get("method")) for r in rows) else []))


def _cell(row, key, fmt):
    value = row.get(key)
    if value is None:
        return "-"
    try:
        return fmt.format(value)
    except (ValueError, TypeError):
        return str(value)


def rich_table(rows: list[dict], title: str | None = None):
    from rich.table import Table

    table = Table(title=title)
    cols = columns(rows)
    for _, header, _ in cols:
        table.add_column(header, justify="left" if header == "method" else "right")
    for row in rows:
        table.add_row(*(_cell(row, k, f) for k, _, f in cols))
    return table


def markdown_table(rows: list[dict]) -> str:
    cols = columns(rows)
    lines = ["| " + " | ".join(h for _, h, _ in cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_cell(r, k, f) for k, _, f in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"
