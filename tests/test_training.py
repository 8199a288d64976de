"""Training: the batch layout, loss falls, save -> load, --resume, two processes, the CLI end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from conftest import tiny_model
from ponder.methods.batch import Pieces, build_batch
from ponder.methods.trainer import StopAfter
from ponder.methods.train import train
from ponder.model.io import load_model
from ponder.prompt import THINK_START


def _pieces(model, records):
    tok, lay = model.tokenizer, model.settings.layout
    return Pieces([lay.question_ids(tok, r.question) for r in records], [lay.reasoning_ids(tok, r.steps) for r in records],
                  [lay.answer_ids(tok, r.answer) for r in records])


def test_training_sequence_shares_tokens_with_inference_prompt(rs_records):
    model = tiny_model(rs_records["train"])
    tok, lay = model.tokenizer, model.settings.layout
    recs = rs_records["train"][:3]
    batch = build_batch(model, _pieces(model, recs), lay.speed_ids(tok, 1), tok.convert_tokens_to_ids(THINK_START))
    for b, r in enumerate(recs):
        prompt = lay.generation_prompt(tok, r.question, 1, think=True)
        full = prompt + lay.reasoning_ids(tok, r.steps) + lay.answer_ids(tok, r.answer)
        n = int(batch["attention_mask"][b].sum())
        # reasoning slots hold placeholder ids; at c = 1 their inputs are exactly the token embeddings
        P, L = len(prompt), len(lay.reasoning_ids(tok, r.steps))
        ids = batch["input_ids"][b, :n].tolist()
        assert ids[:P] == prompt and ids[P + L:] == full[P + L:]
        assert torch.equal(batch["inputs_embeds"][b, :n], model.embed(torch.tensor(full)))
        # labels are the next tokens after the prompt, nothing on the question
        labels = batch["labels"][b, :n].tolist()
        assert labels[: len(prompt) - 1] == [-100] * (len(prompt) - 1)
        assert labels[len(prompt) - 1: n - 1] == full[len(prompt): n]
        assert torch.equal(batch["position_ids"][b, :n], torch.arange(n))


def test_nocot_labels_cover_the_answer_alone(rs_records):
    model = tiny_model(rs_records["train"], method="nocot")
    tok, lay = model.tokenizer, model.settings.layout
    r = rs_records["train"][0]
    batch = build_batch(model, _pieces(model, [r]), [], tok.convert_tokens_to_ids(THINK_START), think=False)
    prompt = lay.generation_prompt(tok, r.question, None, think=False)
    answer = lay.answer_ids(tok, r.answer)
    assert batch["input_ids"][0].tolist() == prompt + answer[1:]
    assert [x for x in batch["labels"][0].tolist() if x != -100] == answer[1:]


def test_save_load_gives_same_logits(tmp_path, rs_records):
    model = tiny_model(rs_records["train"])
    model.add_latent_head()
    ids = torch.tensor([model.settings.layout.prompt_ids(model.tokenizer, rs_records["test"][0].question, 1)])
    before = model(input_ids=ids)
    model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m").eval()
    after = loaded(input_ids=ids)
    assert torch.equal(before.logits, after.logits)
    assert torch.equal(before.latent_mean, after.latent_mean)
    assert loaded.settings.to_dict() == model.settings.to_dict()
    assert not list(tmp_path.glob(".m.tmp-*"))  # the atomic save left nothing behind


def _losses(trainer):
    return {h["step"]: h["loss"] for h in trainer.state.log_history if "loss" in h}


def test_loss_falls(tmp_path, rs_dir):
    _, trainer = train("cot", rs_dir, "tiny", tmp_path / "m", max_steps=40, batch_size=16, lr=3e-3, logging_steps=5,
                       save_steps=1000)
    losses = _losses(trainer)
    assert losses[40] < 0.5 * losses[5]
    assert (tmp_path / "m" / "model.safetensors").is_file()


def test_resume_continues_with_the_same_losses(tmp_path, rs_dir):
    kw = dict(max_steps=10, batch_size=8, lr=2e-3, logging_steps=1, save_steps=4, seed=5)
    _, full = train("cot", rs_dir, "tiny", tmp_path / "full", **kw)
    with pytest.raises(KeyboardInterrupt):
        train("cot", rs_dir, "tiny", tmp_path / "cut", callbacks=[StopAfter(6)], **kw)
    assert (tmp_path / "cut" / "checkpoints" / "checkpoint-4").is_dir()
    _, resumed = train("cot", rs_dir, "tiny", tmp_path / "cut", resume=True, **kw)
    a, b = _losses(full), _losses(resumed)
    assert sorted(b) == list(range(1, 11))  # steps 1-4 come from the checkpoint's state, 5-10 are new
    for step in range(1, 11):
        assert b[step] == pytest.approx(a[step], rel=1e-5), step


@pytest.mark.parametrize("method", ["cot", "colar", "codi"])  # codi: several forward passes and an unused head output
def test_two_process_cpu_run_trains_and_saves(tmp_path, rs_dir, method):
    out = tmp_path / "ddp"
    # accelerate's --cpu alone starts one process unless MPI is set up; --multi_gpu starts torch.distributed
    # workers, which use gloo on a machine without GPUs.
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "ponder.cli", "train", "--method", method,
           "--data", str(rs_dir), "--init", "tiny", "--out", str(out), "--max-steps", "4", "--batch-size", "8"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = json.loads((out / "train_log.json").read_text())
    assert log["world_size"] == 2 and log["global_step"] == 4
    assert load_model(out).settings.method == method


def test_cli_end_to_end(tmp_path):
    from ponder.cli import main

    data, model, report = tmp_path / "d", tmp_path / "m", tmp_path / "r.json"
    main(["data", "make", "running-sum", "--out", str(data), "--n-train", "64", "--n-val", "4", "--n-test", "8",
          "--difficulty", "3"])
    main(["train", "--method", "cot", "--data", str(data), "--init", "tiny", "--out", str(model), "--max-steps", "3",
          "--batch-size", "8"])
    main(["eval", "--model", str(model), "--data", str(data), "--report", str(report), "--plot", str(tmp_path / "p.png")])
    rep = json.loads(report.read_text())
    assert set(rep) == {"settings", "results", "predictions"}
    row = rep["results"][0]
    for key in ("method", "speed", "accuracy", "mean_reasoning_length", "latency_s_mean", "questions_per_s"):
        assert key in row
    assert row["method"] == "cot" and row["n"] == 8 and len(rep["predictions"]) == 8
    assert (tmp_path / "p.png").stat().st_size > 1000
    main(["ask", "--model", str(model), "1 2 3"])


def test_partial_thoughts_cut_the_reasoning_and_keep_the_answer(rs_records):
    from ponder.errors import PonderError
    from ponder.methods.trainer import CoTConfig, RecordCollator

    model, records = tiny_model(rs_records["train"]), rs_records["train"][:50]
    full = RecordCollator(model, 1024)(records)["pieces"]
    cut = [RecordCollator(model, 1024, partial_thoughts=1.0, seed=s)(records)["pieces"] for s in (0, 0, 1)]
    assert cut[0].reasoning == cut[1].reasoning != cut[2].reasoning  # drawn, reproducibly by seed
    for f, c in zip(full.reasoning, cut[0].reasoning):
        assert len(c) < len(f) and f[:len(c)] == c  # a strict prefix of the reasoning, at a step boundary
    assert cut[0].answers == full.answers
    assert RecordCollator(model, 1024, partial_thoughts=0.0)(records)["pieces"].reasoning == full.reasoning
    with pytest.raises(PonderError, match="--partial-thoughts must be in"):
        CoTConfig(output_dir="/tmp/x", partial_thoughts=1.5)
