"""The ``ponder`` command line.

    ponder quickstart                                   # the main job on the built-in default
    ponder data make running-sum --out data/rs          # built-in task -> train/val/test JSONL
    ponder data show data/rs/train.jsonl                # examples and stats of any supported file
    ponder train --method cot --data data/rs --init tiny --out runs/cot
    ponder eval --model runs/cot --data data/rs/test.jsonl --report runs/cot/eval.json
    ponder ask --model runs/cot "3 1 4 1 5 9"
    ponder bench running-sum --methods nocot,cot,colar --seeds 2 --out bench/rs

Bad input ends with one line naming the file, line or option, and exit code 2 (``--debug``: traceback).
Several processes: ``accelerate launch --multi_gpu --num_processes N -m ponder.cli train ...``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

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
    task: str = typer.Argument(..., help="running-sum, arith or graph-hop"),
    out: Path = typer.Option(..., "--out", help="Directory for train/val/test.jsonl"),
    n_train: int = typer.Option(5000, "--n-train"),
    n_val: int = typer.Option(200, "--n-val"),
    n_test: int = typer.Option(500, "--n-test"),
    seed: int = typer.Option(0, "--seed"),
    difficulty: Optional[int] = typer.Option(None, "--difficulty", help="digits / max steps / hops (task default if unset)"),
):
    """Write a built-in task's splits (same seed -> byte-identical files)."""
    from ponder.data.tasks import make_splits, write_splits

    paths = write_splits(make_splits(task, n_train, n_val, n_test, seed, difficulty), out)
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
@app.command()
def train(
    method: str = typer.Option(..., "--method", help="nocot, cot, colar, colar-rl, coconut, codi or icot"),
    data: Path = typer.Option(..., "--data", help="A data file, or a directory holding train.jsonl"),
    init: str = typer.Option(..., "--init", help="tiny | small | base (from scratch), or a model directory"),
    out: Path = typer.Option(..., "--out", help="Output model directory (checkpoints go in OUT/checkpoints)"),
    epochs: float = typer.Option(3.0, "--epochs"),
    max_steps: int = typer.Option(-1, "--max-steps", help="Overrides --epochs when > 0"),
    lr: Optional[float] = typer.Option(None, "--lr", help="Default: per preset (tiny 5e-4), 2e-5 pretrained, 2e-4 LoRA"),
    batch_size: int = typer.Option(32, "--batch-size", help="Per process"),
    grad_accum: int = typer.Option(1, "--grad-accum"),
    warmup: float = typer.Option(0.05, "--warmup", help="Warm-up steps (>= 1) or fraction of training (< 1)"),
    scheduler: str = typer.Option("cosine", "--scheduler", help="Any transformers LR schedule: cosine, linear, constant, ..."),
    save_steps: int = typer.Option(500, "--save-steps"),
    logging_steps: int = typer.Option(10, "--logging-steps", help="Log (and show) metrics every N steps"),
    seed: int = typer.Option(0, "--seed"),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint in OUT/checkpoints"),
    lora_r: int = typer.Option(0, "--lora-r", help="LoRA rank (needs peft); 0 = full fine-tuning"),
    lora_alpha: int = typer.Option(32, "--lora-alpha", help="LoRA scaling numerator (alpha / r)"),
    max_length: int = typer.Option(1024, "--max-length"),
    bf16: Optional[bool] = typer.Option(None, "--bf16/--no-bf16", help="Default: on when a bf16 GPU is present"),
    fmt: Optional[str] = typer.Option(None, "--format", help="Data format (default: detect)"),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code"),
    max_compression: int = typer.Option(5, "--max-compression", help="CoLaR: c drawn from 1..this"),
    compressions: Optional[str] = typer.Option(None, "--compressions", help="CoLaR: explicit list, e.g. 1,2,5"),
    auto_prob: float = typer.Option(0.0, "--auto-prob", help="CoLaR: probability of the 'auto' speed marker"),
    compression: str = typer.Option("sum", "--compression", help="CoLaR: sum (/sqrt count, the paper), mean, or ordered (weights rising over the group: keeps the order)"),
    latent_loss: str = typer.Option("nll", "--latent-loss", help="CoLaR: nll (Gaussian) or mse (mean only)"),
    ce_weight: float = typer.Option(1.0, "--ce-weight"),
    latent_weight: float = typer.Option(1.0, "--latent-weight"),
    latent_positions: str = typer.Option("stretched", "--latent-positions", help="CoLaR: stretched or contiguous"),
    group_size: int = typer.Option(8, "--group-size", help="CoLaR-RL: rollouts per question (G)"),
    speeds: str = typer.Option("1", "--speeds", help="CoLaR-RL: rollout speed, or a list with one drawn per group, e.g. 1,2,5"),
    latent_temperature: float = typer.Option(1.0, "--latent-temperature", help="CoLaR-RL: latent sampling temperature (> 0)"),
    answer_temperature: float = typer.Option(0.0, "--answer-temperature", help="CoLaR-RL: answer sampling (0 = greedy)"),
    length_penalty: str = typer.Option("none", "--length-penalty", help="CoLaR-RL: none, per-step (reward/steps) or lambda"),
    clip_eps: float = typer.Option(0.2, "--clip-eps", help="CoLaR-RL: PPO clip range"),
    kl_coef: float = typer.Option(0.0, "--kl-coef", help="CoLaR-RL: KL to the frozen starting model"),
    latent_policy: bool = typer.Option(True, "--latent-policy/--no-latent-policy", help="CoLaR-RL: train the latent log-probs"),
    latent_logprob: str = typer.Option("mean", "--latent-logprob", help="CoLaR-RL: a latent's log-density per "
                                       "dimension (mean, as the paper's code) or summed (sum)"),
    answer_policy: bool = typer.Option(True, "--answer-policy/--no-answer-policy", help="CoLaR-RL: train the answer log-probs"),
    num_iterations: int = typer.Option(1, "--num-iterations", help="CoLaR-RL: updates per rollout batch"),
    stop_policy: bool = typer.Option(True, "--stop-policy/--no-stop-policy", help="CoLaR-RL: sample and reinforce the "
                                     "end of thinking (off: it ends where </think> is the top token)"),
    max_latent_steps: int = typer.Option(64, "--max-latent-steps", help="CoLaR-RL: rollout thinking limit"),
    max_new_tokens: int = typer.Option(32, "--max-new-tokens", help="CoLaR-RL: rollout answer limit"),
    thoughts_per_step: int = typer.Option(1, "--thoughts-per-step", help="Coconut: continuous thoughts per replaced step"),
    epochs_per_stage: float = typer.Option(1.0, "--epochs-per-stage", help="Coconut: epochs per curriculum stage"),
    max_stage: int = typer.Option(3, "--max-stage", help="Coconut: last stage (steps turned into thoughts; the rest removed)"),
    reset_optimizer: bool = typer.Option(False, "--reset-optimizer", help="Coconut / iCoT: clear the optimizer state when "
                                         "the stage / removal count changes"),
    num_thoughts: int = typer.Option(6, "--num-thoughts", help="CODI: continuous thoughts (training and inference)"),
    distill_weight: float = typer.Option(1.0, "--distill-weight", help="CODI: weight of the hidden-state distillation"),
    teacher_weight: float = typer.Option(1.0, "--teacher-weight", help="CODI: weight of the teacher's CoT loss"),
    remove_per_epoch: float = typer.Option(8.0, "--remove-per-epoch", help="iCoT: reasoning tokens removed per epoch"),
    removal_smoothing: float = typer.Option(4.0, "--removal-smoothing", help="iCoT: lambda of the removal offset "
                                            "P(o) ~ exp(-lambda o); 0 = off"),
):
    """Train a model with a reasoning method and save it as one model directory."""
    from ponder.methods.train import method_options
    from ponder.methods.train import train as run

    given = dict(locals())
    options = {k: given[k] for k in method_options(method) if k in given}
    run(method, data, init, out, epochs=epochs, max_steps=max_steps, lr=lr, batch_size=batch_size, grad_accum=grad_accum,
        warmup=warmup, scheduler=scheduler, save_steps=save_steps, logging_steps=logging_steps, seed=seed, resume=resume, bf16=bf16,
        data_format=fmt, trust_remote_code=trust_remote_code, **options)
    console.print(f"saved {out}")


# -- eval -------------------------------------------------------------------------------------------
@app.command("eval")
def eval_cmd(
    model: Path = typer.Option(..., "--model"),
    data: Path = typer.Option(..., "--data", help="A data file, or a directory holding test.jsonl"),
    n: Optional[int] = typer.Option(None, "--n", help="Only the first N examples"),
    samples: int = typer.Option(1, "--samples", help="K samples per question for pass@K (needs a temperature)"),
    speeds: Optional[str] = typer.Option(None, "--speeds", "--speed", help="Thinking speeds, e.g. 1,2,3 or auto (CoLaR)"),
    report: Optional[Path] = typer.Option(None, "--report", help="Write the JSON report here"),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write the accuracy/length PNG here"),
    compare: Optional[List[Path]] = typer.Option(None, "--compare", help="Other reports to add to the table and plot"),
    batch_size: int = typer.Option(32, "--batch-size"),
    temperature: float = typer.Option(0.0, "--temperature", help="Token sampling temperature (0 = greedy)"),
    latent_temperature: float = typer.Option(0.0, "--latent-temperature", help="Latent sampling temperature (0 = mean)"),
    max_new_tokens: int = typer.Option(256, "--max-new-tokens"),
    max_latent_steps: int = typer.Option(64, "--max-latent-steps"),
    seed: int = typer.Option(0, "--seed"),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, ... (default: cuda if present)"),
    fmt: Optional[str] = typer.Option(None, "--format"),
):
    """Accuracy, pass@K, reasoning length and latency; a table, a JSON report and an optional plot."""
    from ponder.data.records import read_records, resolve_split
    from ponder.evaluation.evaluate import evaluate, read_report, write_report
    from ponder.evaluation.plot import plot_tradeoff
    from ponder.evaluation.tables import rich_table

    if n is not None and n < 1:
        raise PonderError(f"--n must be >= 1, got {n}")
    others = [read_report(p) for p in compare or []]
    data_file = resolve_split(data, "test")
    records = read_records(data_file, fmt=fmt)[:n]
    m = _load(model, device)
    speed_list = _speeds(speeds) or _default_speeds(m)
    result = evaluate(m, records, speeds=speed_list, samples=samples, batch_size=batch_size, temperature=temperature,
                      latent_temperature=latent_temperature, max_new_tokens=max_new_tokens,
                      max_latent_steps=max_latent_steps, seed=seed, model_path=str(model), data_path=str(data_file))
    rows = [r for o in others for r in o["results"]] + result["results"]
    console.print(rich_table(rows, title=f"{model} on {data_file} ({len(records)} questions)"))
    if report:
        write_report(result, report)
        console.print(f"report -> {report}")
    if plot:
        plot_tradeoff(rows, plot)
        console.print(f"plot -> {plot}")


def _load(path: Path, device: Optional[str]):
    import torch

    from ponder.model.io import load_model

    return load_model(path, device=device or ("cuda" if torch.cuda.is_available() else "cpu"))


def _default_speeds(model):
    st = model.settings
    return list(range(1, st.max_compression + 1)) if st.reasoning == "latent" else [None]


# -- ask --------------------------------------------------------------------------------------------
@app.command()
def ask(
    question: str = typer.Argument(...),
    model: Path = typer.Option(..., "--model"),
    speed: Optional[str] = typer.Option(None, "--speed", help="CoLaR thinking speed: 1..c_max or auto"),
    peek: bool = typer.Option(False, "--peek", help="Show each latent step as its nearest tokens"),
    temperature: float = typer.Option(0.0, "--temperature"),
    latent_temperature: float = typer.Option(0.0, "--latent-temperature"),
    max_latent_steps: int = typer.Option(64, "--max-latent-steps"),
    device: Optional[str] = typer.Option(None, "--device"),
):
    """Print the model's reasoning and answer for one question."""
    from ponder.inference.decode import Decoder
    from ponder.inference.peek import peek as peek_steps

    m = _load(model, device)
    g = Decoder(m, temperature=temperature, latent_temperature=latent_temperature,
                max_latent_steps=max_latent_steps).generate([question], speed=speed)[0]
    if m.settings.reasoning == "tokens":
        console.print(f"[bold]reasoning[/bold] ({g.reasoning_length} tokens): {g.text.split('</think>')[0]}")
    elif m.settings.reasoning in ("latent", "thoughts"):
        console.print(f"[bold]reasoning[/bold]: {g.reasoning_length} latent steps at speed {g.speed}"
                      if m.settings.reasoning == "latent" else f"[bold]reasoning[/bold]: {g.reasoning_length} continuous thoughts")
        if peek:
            for s in peek_steps(m, g):
                console.print(f"  step {s['step']:>2}  lm: {' | '.join(map(repr, s['lm']))}   "
                              f"nearest: {' | '.join(map(repr, s['cosine']))}")
    console.print(f"[bold]answer[/bold]: {g.answer}   ({g.wall_s * 1000:.1f} ms)")


# -- bench ------------------------------------------------------------------------------------------
@app.command()
def bench(
    task: str = typer.Argument(..., help="A built-in task (running-sum, arith, graph-hop) or a data directory"),
    methods: str = typer.Option("nocot,cot,colar,colar-rl,coconut,codi,icot", "--methods", help="Comma list of methods"),
    seeds: str = typer.Option("3", "--seeds", help="A count (3: seeds 0,1,2) or a list (0,4)"),
    budget: str = typer.Option("default", "--budget", help="Data sizes and training steps per method (default, smoke)"),
    out: Path = typer.Option(..., "--out", help="Folder for runs/, results.json, results.md, pareto.png"),
    force: bool = typer.Option(False, "--force", help="Retrain and re-evaluate finished runs"),
):
    """Train and evaluate several methods on one task, same model size and budget; one table and one plot."""
    from ponder.bench import parse_methods, parse_seeds, run_bench

    run_bench(task, parse_methods(methods), parse_seeds(seeds), out, budget=budget, force=force, console=console)


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
