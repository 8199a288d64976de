"""``ponder bench``: method order, aggregation over seeds, the Pareto front, and a smoke run with reuse."""

from __future__ import annotations

import json

import pytest

from ponder.bench import aggregate, exit_config, parse_methods, parse_seeds, with_prerequisites
from ponder.errors import PonderError
from ponder.evaluation.plot import pareto_front


def test_methods_are_trained_after_the_models_they_start_from():
    assert with_prerequisites(["colar-rl"]) == ["cot", "colar", "colar-rl"]
    assert with_prerequisites(["nocot", "icot", "colar"]) == ["nocot", "cot", "icot", "colar"]
    assert with_prerequisites(["cot", "cot"]) == ["cot"]
    assert with_prerequisites(["cot+budget:8", "colar"]) == ["cot", "cot+budget:8", "colar"]


def test_exit_policies_as_bench_methods():
    assert exit_config("cot") is None
    assert exit_config("cot+budget:32").budget == 32 and exit_config("cot+budget:32").label == "budget:32"
    c = exit_config("cot+convergence:probe_every=4:patience=2")
    assert (c.exit, c.probe_every, c.patience) == ("convergence", 4, 2)
    assert exit_config("icot+confidence:threshold=0.9").threshold == 0.9
    for bad, needle in (("cot+early", "--exit must be one of"), ("colar+budget:3", "not colar"),
                        ("cot+convergence:nope=1", "unknown exit option 'nope'"), ("cot+budget:x", "budget must be int"),
                        ("cot+budget", "needs --budget")):
        with pytest.raises(PonderError, match=needle):
            parse_methods(f"nocot,{bad}")


def test_parse_methods_and_seeds():
    assert parse_methods("cot, colar") == ["cot", "colar"]
    assert parse_seeds("3") == [0, 1, 2] and parse_seeds("0,4") == [0, 4]
    with pytest.raises(PonderError, match="--methods: unknown magic"):
        parse_methods("cot,magic")
    for bad in ("0", "x", "1,y"):
        with pytest.raises(PonderError, match="--seeds"):
            parse_seeds(bad)


def test_aggregate_over_seeds_by_hand():
    runs = [{"method": "cot", "speed": 1, "accuracy": a, "mean_reasoning_length": n, "latency_s_mean": 0.1,
             "questions_per_s": 10.0, "train_seconds": t} for a, n, t in ((0.5, 6.0, 10.0), (0.7, 4.0, 20.0))]
    runs.append({**runs[0], "method": "nocot", "speed": None, "accuracy": 0.1})
    rows = {r["method"]: r for r in aggregate(runs)}
    cot = rows["cot"]
    assert cot["seeds"] == 2 and cot["accuracy"] == pytest.approx(0.6)
    assert cot["accuracy_std"] == pytest.approx(0.1414213, rel=1e-5)  # sample std of 0.5, 0.7
    assert (cot["accuracy_min"], cot["accuracy_max"]) == (0.5, 0.7)
    assert cot["mean_reasoning_length"] == 5.0 and cot["train_seconds"] == 15.0
    assert rows["nocot"]["accuracy_std"] == 0.0 and rows["nocot"]["speed"] is None


def test_pareto_front_by_hand():
    rows = [{"method": m, "accuracy": a, "mean_reasoning_length": n}
            for m, a, n in (("nocot", 0.1, 0.0), ("cot", 0.9, 6.0), ("c2", 0.8, 3.0), ("c3", 0.5, 3.0), ("bad", 0.7, 5.0))]
    assert [r["method"] for r in pareto_front(rows)] == ["nocot", "c2", "cot"]


def test_bench_smoke_run_writes_results_and_reuses_finished_runs(tmp_path, monkeypatch):
    from ponder import bench
    from ponder.cli import main

    out = tmp_path / "b"
    args = ["bench", "running-sum", "--methods", "nocot,colar", "--seeds", "0,1", "--budget", "smoke", "--out", str(out)]
    main(args)
    res = json.loads((out / "results.json").read_text())
    assert {(r["method"], r["speed"]) for r in res["results"]} == {("nocot", None), ("colar", 1), ("colar", 2)}
    assert all(r["seeds"] == 2 for r in res["results"])
    assert len(res["runs"]) == 6  # cot is trained (colar starts from it) but not reported
    assert (out / "runs" / "seed1" / "cot" / "ponder.json").is_file()
    assert "| colar | 2 |" in (out / "results.md").read_text()
    assert (out / "pareto.png").stat().st_size > 1000

    calls = []
    real = bench.evaluate
    monkeypatch.setattr(bench, "evaluate", lambda *a, **k: calls.append(1) or real(*a, **k))
    main(args)  # everything finished: nothing is trained or evaluated again
    assert calls == [] and json.loads((out / "results.json").read_text())["results"] == res["results"]
    main(["bench", "running-sum", "--methods", "nocot,colar", "--seeds", "1", "--budget", "smoke", "--out", str(out),
          "--force"])
    assert len(calls) == 3  # --force: cot, nocot, colar of seed 0 again
    calls.clear()
    main(["bench", "running-sum", "--methods", "cot,cot+budget:2", "--seeds", "1", "--budget", "smoke", "--out", str(out)])
    rows = {r["method"]: r for r in json.loads((out / "results.json").read_text())["results"]}
    assert len(calls) == 1 and rows["cot+budget:2"]["mean_reasoning_length"] <= 2  # the CoT model reused, decoded again
    assert "probe tokens" in (out / "results.md").read_text() or "cot+budget:2" in (out / "results.md").read_text()


def test_bench_bad_task_and_budget(tmp_path):
    from ponder.bench import run_bench

    with pytest.raises(PonderError, match="TASK"):
        run_bench("no-such-task", ["cot"], [0], tmp_path)
    with pytest.raises(PonderError, match="--budget"):
        run_bench("running-sum", ["cot"], [0], tmp_path, budget="huge")


def test_quickstart_pipeline_on_a_tiny_budget(tmp_path):
    """The README's main job end to end (budgets cut to a few steps: this checks the pipeline, not accuracy)."""
    from ponder.quickstart import run_quickstart

    few = {"max_steps": 2, "batch_size": 8}
    summary = run_quickstart(tmp_path / "qs", train_budgets={"cot": few, "nocot": few, "colar": {**few, "max_compression": 2}},
                             data={"n_train": 64, "n_val": 4, "n_test": 8})
    assert [(r["method"], r["speed"]) for r in summary["results"]] == [("cot", 1), ("nocot", None), ("colar", 1), ("colar", 2)]
    assert set(summary["settings"]["timings_s"]) == {"train_cot_s", "train_nocot_s", "train_colar_s"}
    for name in ("summary.json", "summary.md", "tradeoff.png", "eval_cot.json", "eval_colar.json", "colar/ponder.json"):
        assert (tmp_path / "qs" / name).is_file(), name
