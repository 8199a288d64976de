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
    for _, header, _ in COLUMNS:
        table.add_column(header, justify="left" if header == "method" else "right")
    for row in rows:
        table.add_row(*(_cell(row, k, f) for k, _, f in COLUMNS))
    return table


def markdown_table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(h for _, h, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cell(r, k, f) for k, _, f in COLUMNS) + " |" for r in rows]
    return "\n".join(lines) + "\n"
