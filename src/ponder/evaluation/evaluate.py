"""``evaluate()``: a model on records, at one or several speeds -> a report.

Report schema (shared by every method, ``summary.json`` and ``ponder bench``)::

    {"settings": {...}, "results": [{"method", "speed", "accuracy", "mean_reasoning_length",
     "latency_s_mean", "questions_per_s", ...}, ...], "predictions": [...]}

``latency_s_mean`` is the mean wall time from a question's batch going in to its answer coming out
(so it depends on ``batch_size``, recorded in settings); ``questions_per_s`` is questions / total time.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from ponder import __version__
from ponder.data.records import Record, atomic_write_text
from ponder.errors import PonderError
from ponder.evaluation.answers import check_scoring, extract_answer, score_answer
from ponder.evaluation.metrics import mean_over_seeds, summarise
from ponder.inference.decode import Decoder
from ponder.inference.engine import check_speed
from ponder.model.positions import fit_decoding_budget


def evaluate(model, records: list[Record], speeds=(None,), samples: int = 1, batch_size: int = 32,
             temperature: float = 0.0, latent_temperature: float = 0.0, max_new_tokens: int = 256,
             max_latent_steps: int = 64, seed: int = 0, model_path: str | None = None, data_path: str | None = None,
             progress=None, scoring: str = "ponder", exit=None, top_p: float = 1.0, sample_stop: bool = False,
             seeds: int = 1) -> dict:
    """``scoring``: the rule that judges an answer (``answers.SCORINGS``: ponder's own, lm-evaluation-harness
    GSM8K's strict or flexible match, or the last ``\\boxed{}``); the report's settings name it.
    ``exit``: an ``ExitConfig`` whose policy ends the thinking early; rows are then named ``cot+<policy>``
    and carry the probes' cost (probe tokens, forward passes).
    ``top_p``, ``sample_stop`` (a latent chain's end drawn from the LM) and ``seeds`` (runs with seeds
    ``seed .. seed + seeds - 1``; each row then holds their mean, ``accuracy_std`` and ``accuracy_per_seed``)
    express sampled protocols such as the official CoLaR evaluation; the settings name the protocol."""
    check_scoring(scoring)
    if samples < 1:
        raise PonderError(f"--samples must be >= 1, got {samples}")
    if seeds < 1:
        raise PonderError(f"--seeds must be >= 1, got {seeds}")
    if seeds > 1 and temperature == 0 and latent_temperature == 0 and not sample_stop:
        raise PonderError("--seeds > 1 needs sampling (--temperature, --latent-temperature or --sample-stop): "
                          "greedy runs are identical")
    if batch_size < 1:
        raise PonderError(f"--batch-size must be >= 1, got {batch_size}")
    if samples > 1 and temperature == 0 and latent_temperature == 0:
        raise PonderError("--samples > 1 needs --temperature > 0 (or --latent-temperature > 0): greedy samples are identical")
    st = model.settings
    speeds = [check_speed(st, s) for s in speeds]
    exit = exit if exit is not None and exit.exit != "none" else None
    method = st.method + (f"+{exit.label}" if exit else "")
    # A model with a position table (GPT-2) gets a decoding budget that ends inside it (a warning says so).
    max_new_tokens, max_latent_steps = fit_decoding_budget(model, [r.question for r in records], speeds, max_new_tokens,
                                                           max_latent_steps, exit=exit)
    cot_length = sum(len(model.settings.layout.reasoning_ids(model.tokenizer, r.steps)) for r in records) / max(len(records), 1)
    decoders = [Decoder(model, max_new_tokens=max_new_tokens, max_latent_steps=max_latent_steps, temperature=temperature,
                        latent_temperature=latent_temperature, seed=seed + k, exit=exit, top_p=top_p,
                        sample_stop=sample_stop) for k in range(seeds)]
    results, predictions = [], []
    model.eval()
    if records:
        # One untimed full batch first: on CPU the first call at a batch size pays seconds of one-time
        # kernel set-up, which would otherwise land in the first batch's latency.
        Decoder(model, max_new_tokens=max_new_tokens, max_latent_steps=max_latent_steps).generate(
            [r.question for r in records[:batch_size]], speed=speeds[0])
    for speed in speeds:
        per_seed = []
        for k, decoder in enumerate(decoders):
            preds, wall = _run(decoder, records, speed, samples, batch_size, scoring, method, progress)
            if seeds > 1:
                for p in preds:
                    p["seed"] = seed + k
            per_seed.append(summarise(preds, method, speed, wall,
                                      cot_length=cot_length if st.reasoning in ("latent", "thoughts") else None))
            predictions += preds
        results.append(per_seed[0] if seeds == 1 else mean_over_seeds(per_seed))
    settings = {
        "model": model_path, "data": data_path, "method": st.method, "speeds": speeds, "samples": samples,
        "batch_size": batch_size, "temperature": temperature, "latent_temperature": latent_temperature,
        "top_p": top_p, "sample_stop": sample_stop, "seeds": seeds,
        "protocol": protocol(temperature, top_p, latent_temperature, sample_stop, seeds, st.reasoning),
        "max_new_tokens": max_new_tokens, "max_latent_steps": max_latent_steps, "seed": seed,
        "device": str(model.device), "decoding": model.decoding_mode,
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "cot_reference_length": cot_length, "scoring": scoring,
        "exit": None if exit is None else asdict(exit), "ponder_version": __version__,
    }
    return {"settings": settings, "results": results, "predictions": predictions}


def protocol(temperature, top_p, latent_temperature, sample_stop, seeds, reasoning) -> str:
    """The decoding protocol in words, so that two reports say whether their numbers can stand side by side."""
    parts = []
    if reasoning == "latent":
        parts.append(f"latents {'at T=' + str(latent_temperature) if latent_temperature > 0 else 'mean'}")
        parts.append(f"end of thinking {'sampled' if sample_stop else 'argmax'}")
    parts.append("answer greedy" if temperature <= 0 else f"answer T={temperature}" + (f" top-p {top_p}" if top_p < 1 else ""))
    parts.append(f"{seeds} seed{'s' * (seeds > 1)}")
    return ", ".join(parts)


def _run(decoder, records, speed, samples, batch_size, scoring, method, progress) -> tuple[list[dict], float]:
    """One pass over ``records`` at ``speed`` -> the predictions and the wall time they took."""
    preds, t0 = [], time.perf_counter()
    for start in range(0, len(records), batch_size):
        chunk = records[start:start + batch_size]
        runs = [decoder.generate([r.question for r in chunk], speed=speed) for _ in range(samples)]
        for i, r in enumerate(chunk):
            gens = [run[i] for run in runs]
            correct = [score_answer(scoring, g.answer, g.text, r.answer) for g in gens]
            # The answers that maj@K votes on: those the rule read (the decoder's own under 'ponder').
            read = [g.answer if scoring == "ponder" else extract_answer(scoring, g.text) for g in gens]
            first = gens[0]
            preds.append({
                "method": method, "speed": speed, "question": r.question, "reference": r.answer,
                "prediction": first.answer, "text": first.text, "correct": correct[0], "any_correct": any(correct),
                "reasoning_length": first.reasoning_length, "wall_s": first.wall_s,
                "probe_tokens": first.probe_tokens, "passes": first.main_passes + first.probe_passes,
                "exit_reason": first.exit_reason,
                "samples": [{"answer": voted, "correct": c, "reasoning_length": g.reasoning_length}
                            for g, c, voted in zip(gens, correct, read)],
            })
            if scoring != "ponder":  # what the rule read in the text, beside the decoder's answer
                preds[-1]["scored_answer"] = read[0]
        if progress:
            progress(len(chunk))
    return preds, time.perf_counter() - t0


def write_report(report: dict, path) -> None:
    atomic_write_text(Path(path), json.dumps(report, indent=1, default=str) + "\n")


REQUIRED_ROW_KEYS = ("method", "speed", "accuracy", "mean_reasoning_length", "latency_s_mean", "questions_per_s")


def read_report(path) -> dict:
    path = Path(path)
    try:
        report = json.loads(path.read_text())
    except FileNotFoundError:
        raise PonderError(f"{path}: no such report") from None
    except json.JSONDecodeError as e:
        raise PonderError(f"{path}:{e.lineno}: invalid JSON: {e.msg}") from None
    except IsADirectoryError:
        raise PonderError(f"{path}: is a directory, expected a report file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise PonderError(f"{path}: cannot read: {e}") from None
    if not isinstance(report, dict) or not isinstance(report.get("results"), list):
        raise PonderError(f"{path}: not a ponder report (no 'results' list)")
    for i, row in enumerate(report["results"]):
        if not isinstance(row, dict):
            raise PonderError(f"{path}: results[{i}] is not an object")
        missing = [k for k in REQUIRED_ROW_KEYS if k not in row]
        if missing:
            raise PonderError(f"{path}: results[{i}] lacks {', '.join(missing)}")
    return report
