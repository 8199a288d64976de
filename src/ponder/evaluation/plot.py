"""The trade-off at a glance: accuracy against mean reasoning length, one marker per results row."""

from __future__ import annotations

from ponder.data.records import atomic_path


def pareto_front(rows: list[dict]) -> list[dict]:
    """The rows no other row beats on both accuracy (higher) and reasoning length (shorter)."""
    front, best = [], -1.0
    for r in sorted(rows, key=lambda r: (r["mean_reasoning_length"], -r["accuracy"])):
        if r["accuracy"] > best:
            front.append(r)
            best = r["accuracy"]
    return front


def plot_tradeoff(rows: list[dict], path, title: str = "accuracy vs reasoning length", frontier: bool = False) -> None:
    """``frontier``: also draw the Pareto front; rows with ``accuracy_std`` get error bars (spread over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    by_method: dict[str, list[dict]] = {}
    for r in rows:
        by_method.setdefault(r["method"], []).append(r)
    markers = ["s", "^", "o", "D", "v", "P", "X", "*"]
    for i, (method, rs) in enumerate(by_method.items()):
        rs = sorted(rs, key=lambda r: r["mean_reasoning_length"])
        xs, ys = [r["mean_reasoning_length"] for r in rs], [100 * r["accuracy"] for r in rs]
        # Single-point baselines are drawn big and on top, so a curve passing through them never hides them.
        single = len(rs) == 1
        errs = [100 * r.get("accuracy_std", 0.0) for r in rs]
        ax.errorbar(xs, ys, yerr=errs if any(errs) else None, marker=markers[i % len(markers)], label=method,
                    linestyle="none" if single else "-", markersize=10 if single else 6, zorder=3 if single else 2,
                    alpha=0.85, capsize=3)
        for r, x, y in zip(rs, xs, ys):
            if not single and r.get("speed") is not None:
                ax.annotate(f"c={r['speed']}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    if frontier:
        front = pareto_front(rows)
        ax.step([r["mean_reasoning_length"] for r in front], [100 * r["accuracy"] for r in front], where="post",
                color="grey", linestyle="--", linewidth=1, zorder=1, label="Pareto front")
    ax.set_xlabel("mean reasoning length (tokens or latent steps)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
