"""The ``ponder`` command line.

    ponder quickstart                                   # the main job on the built-in default
    ponder data make running-sum --out data/rs          # built-in task -> train/val/test JSONL
    ponder data show data/rs/train.jsonl                # examples and stats of any supported file
    ponder train cot --data data/rs --init tiny --out runs/cot      # ponder train cot --help: its options
    ponder train --config recipes/cpu/quickstart-cot.yaml --max-steps 100
    ponder eval --model runs/cot --data data/rs/test.jsonl --report runs/cot/eval.json
    ponder ask --model runs/cot "3 1 4 1 5 9"
    ponder bench running-sum --methods nocot,cot,colar --seeds 2 --out bench/rs

Bad input ends with one line naming the file, line or option, and exit code 2 (``--debug``: traceback).
Several processes: ``accelerate launch --multi_gpu --num_processes N -m ponder.cli train ...``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from ponder.arguments import (AskArguments, BenchArguments, DataArguments, EvalArguments, ExitConfig, ModelArguments,
                              ServeArguments)
from ponder.errors import PonderError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="ponder: make language-model reasoning fast (CoT, No-CoT, CoLaR).")
data_app = typer.Typer(no_args_is_help=True, help="Make and inspect reasoning data.")
app.add_typer(data_app, name="data")
console = Console()
err_console = Console(stderr=True)


def _speeds(text: Optional[str]):
    if text is None:
        return None
    items = [s.strip() for s in text.split(",") if s.strip()]
    if not items:
        raise PonderError(f"--speeds: expected a comma-separated list like 1,2,3 or auto, got '{text}'")
    return items


# -- data -------------------------------------------------------------------------------------------
@data_app.command("make")
def data_make(
    task: str = typer.Argument(..., help="running-sum, arith, graph-hop, overthink, running-product, carry-add or permutation"),
    out: Path = typer.Option(..., "--out", help="Directory for train/val/test.jsonl"),
    n_train: int = typer.Option(5000, "--n-train"),
    n_val: int = typer.Option(200, "--n-val"),
    n_test: int = typer.Option(500, "--n-test"),
    seed: int = typer.Option(0, "--seed"),
    difficulty: Optional[int] = typer.Option(None, "--difficulty", help="digits / max steps / hops (task default if unset)"),
    recheck_rate: Optional[float] = typer.Option(None, "--recheck-rate", help="overthink: probability of each further re-check (0.6)"),
    mistake_rate: Optional[float] = typer.Option(None, "--mistake-rate", help="overthink: probability of a wrong first attempt (0.2)"),
    max_rechecks: Optional[int] = typer.Option(None, "--max-rechecks", help="overthink: most re-checks (3)"),
):
    """Write a built-in task's splits (same seed -> byte-identical files)."""
    from ponder.data.tasks import make_splits, write_splits

    options = {k: v for k, v in (("recheck_rate", recheck_rate), ("mistake_rate", mistake_rate),
                                 ("max_rechecks", max_rechecks)) if v is not None}
    paths = write_splits(make_splits(task, n_train, n_val, n_test, seed, difficulty, **options), out)
    for split, p in paths.items():
        console.print(f"{split:5s} -> {p}")


@data_app.command("show")
def data_show(
    file: Path = typer.Argument(..., help="A data file (qsa JSON/JSONL, GSM8K JSONL, iCoT text)"),
    n: int = typer.Option(3, "--n", help="Examples to print"),
    fmt: Optional[str] = typer.Option(None, "--format", help="qsa-json, qsa-jsonl, gsm8k, icot (default: detect)"),
    steps: str = typer.Option("lines", "--steps", help="GSM8K steps: 'lines' or 'equations'"),
):
    """Print examples and stats: count, mean steps, mean characters, answer types."""
    from collections import Counter

    from ponder.data.records import read_records
    from ponder.evaluation.answers import answer_type

    records = read_records(file, fmt=fmt, steps=steps)
    for r in records[:n]:
        console.print(f"[bold]Q:[/bold] {r.question}\n[bold]steps:[/bold] {r.steps}\n[bold]A:[/bold] {r.answer}\n")
    k = len(records)
    types = Counter(answer_type(r.answer) for r in records)
    console.print(f"examples: {k}   mean steps: {sum(len(r.steps) for r in records) / k:.2f}   "
                  f"mean characters (question / reasoning / answer): {sum(len(r.question) for r in records) / k:.1f} / "
                  f"{sum(len(' '.join(r.steps)) for r in records) / k:.1f} / {sum(len(r.answer) for r in records) / k:.1f}   "
                  f"answer types: {dict(types)}")


# -- train ------------------------------------------------------------------------------------------
# One command per method, generated from TrainArguments + the method's config dataclass (options.py), so
# `ponder train colar --help` shows the shared options and CoLaR's only, and recipes use the same keys.
TRAIN_HELP = """Train a model with a reasoning method and save it as one model directory.

    ponder train METHOD --data D --init tiny --out runs/m [options]    (ponder train METHOD --help: its options)
    ponder train --config recipe.yaml [--any-option value ...]          (the recipe names the method)

Methods: {methods}. The older spelling `ponder train --method METHOD ...` works too."""


@app.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []},
             add_help_option=False, help="Train a model with a reasoning method (ponder train METHOD --help).")
def train(ctx: typer.Context):
    from ponder.methods.train import METHODS

    args = list(ctx.args)
    method, args = _train_method(args)
    if method is None:
        if args and args[0] not in ("--help", "-h"):
            raise PonderError(f"name a method first: ponder train {{{'|'.join(METHODS)}}} ... "
                              "(or --config FILE with a 'method' key)")
        console.print(TRAIN_HELP.format(methods=", ".join(METHODS)), markup=False, highlight=False)
        return
    command = typer.main.get_command(_train_app(method))
    command.main(args=args, prog_name=f"ponder train {method}", standalone_mode=True)


def _train_method(args: list[str]):
    """(method, remaining args) from `train METHOD ...`, `train --method METHOD ...` or a config's `method` key."""
    from ponder.methods.train import METHODS
    from ponder.options import read_yaml

    def known(m, where):
        if m not in METHODS:
            raise PonderError(f"{where} must be one of {', '.join(METHODS)}, got '{m}'")
        return m

    if args and not args[0].startswith("-"):
        return known(args[0], "METHOD"), args[1:]
    for i, a in enumerate(args):
        if a == "--method" and i + 1 < len(args):
            return known(args[i + 1], "--method"), args[:i] + args[i + 2:]
        if a.startswith("--method="):
            return known(a.split("=", 1)[1], "--method"), args[:i] + args[i + 1:]
    for i, a in enumerate(args):
        path = args[i + 1] if a == "--config" and i + 1 < len(args) else a.split("=", 1)[1] if a.startswith("--config=") else None
        if path is not None and "--help" not in args:
            method = read_yaml(path).get("method")
            if method is None:
                raise PonderError(f"{path}: no 'method' key: name the method, e.g. ponder train cot --config {path}")
            return known(method, f"{path}: key 'method'"), args
    return None, args


def train_options(method: str):
    """The `ponder train METHOD` options: the shared run options, then the method's own config fields."""
    from ponder.arguments import DataArguments, TrainArguments
    from ponder.methods.train import method_classes, method_options
    from ponder.options import options_of

    shared = set(method_options("cot"))  # CoTConfig's fields: every method has them
    own = [n for n in method_options(method) if n not in shared]
    config = method_classes(method)[0]
    return (options_of(DataArguments, "Data") + options_of(TrainArguments, "Training") + options_of(config, "Training", [n for n in method_options(method) if n in shared])
            + options_of(config, f"{method} options", own))


def _train_app(method: str) -> typer.Typer:
    from ponder.methods.train import train as run_train
    from ponder.options import add_command

    def run(data, init, out, **options):
        run_train(method, data, init, out, **options)
        console.print(f"saved {out}")

    sub = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    add_command(sub, method, train_options(method), run, f"Train a {method} model and save it as one model directory.",
                fixed={"method": method})
    return sub


# -- eval -------------------------------------------------------------------------------------------
def eval_cmd(**values):
    from ponder.evaluation.answers import check_scoring
    from ponder.evaluation.evaluate import evaluate, read_report, write_report
    from ponder.evaluation.plot import plot_tradeoff
    from ponder.evaluation.tables import rich_table
    from ponder.options import build

    a, model_args, data_args = build(EvalArguments, values), build(ModelArguments, values), build(DataArguments, values)
    if a.n is not None and a.n < 1:
        raise PonderError(f"--n must be >= 1, got {a.n}")
    check_scoring(a.scoring)
    others = [read_report(Path(p)) for p in a.compare or []]
    records = data_args.records("test")[:a.n]
    data_name = data_args.data
    m = model_args.load()
    speed_list = _speeds(a.speeds) or _default_speeds(m)
    result = evaluate(m, records, speeds=speed_list, samples=a.samples, batch_size=a.batch_size,
                      temperature=a.temperature, latent_temperature=a.latent_temperature, top_p=a.top_p,
                      sample_stop=a.sample_stop, seeds=a.seeds,
                      max_new_tokens=a.max_new_tokens, max_latent_steps=a.max_latent_steps, seed=a.seed,
                      model_path=model_args.model, data_path=data_name, scoring=a.scoring, exit=build(ExitConfig, values))
    rows = [r for o in others for r in o["results"]] + result["results"]
    console.print(rich_table(rows, title=f"{model_args.model} on {data_name} ({len(records)} questions)"))
    if a.report:
        write_report(result, Path(a.report))
        console.print(f"report -> {a.report}")
    if a.plot:
        plot_tradeoff(rows, Path(a.plot))
        console.print(f"plot -> {a.plot}")


def _default_speeds(model):
    st = model.settings
    return list(range(1, st.max_compression + 1)) if st.reasoning == "latent" else [None]


# -- ask --------------------------------------------------------------------------------------------
def ask(**values):
    from rich.markup import escape

    from ponder.inference.decode import Decoder
    from ponder.inference.engine import check_speed
    from ponder.inference.peek import peek as peek_steps
    from ponder.model.positions import fit_decoding_budget
    from ponder.options import build

    a = build(AskArguments, values)
    m = build(ModelArguments, values).load()
    policy = build(ExitConfig, values)
    # A model with a position table (GPT-2) gets a decoding budget that ends inside it (a warning says so).
    speed = check_speed(m.settings, a.speed)
    max_new_tokens, max_latent_steps = fit_decoding_budget(m, [a.question], [speed], a.max_new_tokens,
                                                           a.max_latent_steps, exit=policy)
    g = Decoder(m, temperature=a.temperature, latent_temperature=a.latent_temperature, top_p=a.top_p,
                max_new_tokens=max_new_tokens,
                max_latent_steps=max_latent_steps, exit=policy).generate([a.question], speed=speed)[0]
    if m.settings.reasoning == "tokens":
        think_end = m.settings.layout.think_end
        console.print(f"[bold]reasoning[/bold] ({g.reasoning_length} tokens): {escape(g.text.split(think_end)[0])}")
    elif m.settings.reasoning in ("latent", "thoughts"):
        console.print(f"[bold]reasoning[/bold]: {g.reasoning_length} latent steps at speed {g.speed}"
                      if m.settings.reasoning == "latent" else f"[bold]reasoning[/bold]: {g.reasoning_length} continuous thoughts")
        if a.peek:
            for s in peek_steps(m, g):
                console.print(f"  step {s['step']:>2}  lm: {' | '.join(map(repr, s['lm']))}   "
                              f"nearest: {' | '.join(map(repr, s['cosine']))}")
    if a.show_probes and policy.exit != "none":
        console.print(f"[bold]exit[/bold]: {g.exit_reason} after {g.reasoning_length} thinking tokens; "
                      f"{len(g.probe_answers)} probe(s), {g.probe_tokens} probe tokens, "
                      f"{g.main_passes} + {g.probe_passes} forward passes")
        for i, answer in enumerate(g.probe_answers, 1):
            console.print(f"  probe {i}: {escape(repr(answer))}")
    console.print(f"[bold]answer[/bold]: {escape(g.answer)}   ({g.wall_s * 1000:.1f} ms)")


# -- bench ------------------------------------------------------------------------------------------
def bench(task, methods, seeds, budget, out, force):
    from ponder.bench import parse_methods, parse_seeds, run_bench

    run_bench(task, parse_methods(methods), parse_seeds(seeds), Path(out), budget=budget, force=force, console=console)


# -- serve ------------------------------------------------------------------------------------------
def serve(**values):
    from ponder.options import build
    from ponder.serve.app import run_server

    run_server(build(ServeArguments, values), build(ModelArguments, values))


def _register():
    from ponder.options import add_command, options_of

    add_command(app, "eval", options_of(ModelArguments, "Model") + options_of(DataArguments, "Data")
                + options_of(EvalArguments, "Evaluation") + options_of(ExitConfig, "Exit policy"), eval_cmd,
                "Accuracy, pass@K, reasoning length and latency; a table, a JSON report and an optional plot.")
    add_command(app, "ask", options_of(AskArguments, "Options") + options_of(ModelArguments, "Model")
                + options_of(ExitConfig, "Exit policy"), ask, "Print the model's reasoning and answer for one question.",
                config=False)
    add_command(app, "bench", options_of(BenchArguments, "Options"), bench,
                "Train and evaluate several methods on one task, same model size and budget; one table and one plot.")
    add_command(app, "serve", options_of(ModelArguments, "Model") + options_of(ServeArguments, "Server"), serve,
                "Serve a model behind an OpenAI-compatible API (docs/serve.md): chat and completions, streaming, "
                "thinking speed, budget and exit policy per request.")


_register()


# -- quickstart -------------------------------------------------------------------------------------
@app.command()
def quickstart(
    out: Path = typer.Option(Path("ponder-quickstart"), "--out", help="Report folder"),
    seed: int = typer.Option(0, "--seed"),
):
    """Built-in default end to end: data, CoT / No-CoT / CoLaR tiny models, evaluation, table and plot."""
    from ponder.quickstart import run_quickstart

    run_quickstart(out, seed=seed, console=console)


def main(argv: Optional[list] = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    try:
        app(args=argv, prog_name="ponder")
    except SystemExit as e:
        # A finished command exits 0 in click's standalone mode; returning instead lets main() be called
        # from Python (tests, notebooks) several times. Usage errors still exit 2, as click's do.
        if e.code not in (0, None):
            raise
    except PonderError as e:
        if debug:
            raise
        err_console.print(f"error: {e}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
