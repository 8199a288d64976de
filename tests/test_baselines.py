"""Coconut, CODI and iCoT: their schedules by hand, thought slots in the batch, the unroll, the decoder for
continuous thoughts, and each method trained, saved, loaded and evaluated."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import TrainerCallback

from conftest import tiny_model
from ponder.errors import PonderError
from ponder.inference.decode import Decoder
from ponder.inference.engine import check_speed
from ponder.methods.batch import Pieces, build_batch
from ponder.methods.coconut import coconut_layout, coconut_stage
from ponder.methods.icot import icot_remove, icot_removed, offset_probs
from ponder.methods.thoughts import unroll
from ponder.methods.train import train
from ponder.model.io import load_model
from ponder.prompt import THINK_END, THINK_START

# -- schedules -----------------------------------------------------------------------------------------


def test_coconut_stage_schedule():
    assert [coconut_stage(e, 1.0, 3) for e in (0.0, 0.99, 1.0, 2.5, 3.0, 7.2)] == [0, 0, 1, 2, 3, 3]
    assert [coconut_stage(e, 0.5, 2) for e in (0.0, 0.49, 0.5, 1.2)] == [0, 0, 1, 2]
    assert coconut_stage(5.0, 2.0, 0) == 0  # max_stage 0: plain CoT without speed marker


def test_coconut_layout_replaces_the_first_steps():
    steps = ["s1", "s2", "s3", "s4", "s5"]
    assert coconut_layout(steps, 0, 1, 3) == (0, steps)
    assert coconut_layout(steps, 1, 1, 3) == (1, ["s2", "s3", "s4", "s5"])
    assert coconut_layout(steps, 2, 2, 3) == (4, ["s3", "s4", "s5"])
    assert coconut_layout(steps, 3, 2, 3) == (6, [])  # last stage: every remaining language step is removed too
    assert coconut_layout(["s1"], 2, 1, 3) == (2, [])  # k thoughts even when the chain is shorter
    assert coconut_layout(["s1"], 3, 1, 3) == (3, [])


def test_icot_removal_schedule_and_tokens():
    assert [icot_removed(e, 8) for e in (0.0, 0.124, 0.125, 0.5, 1.0, 2.3)] == [0, 0, 1, 4, 8, 18]
    assert [icot_removed(e, 2) for e in (0.0, 0.49, 0.5, 1.5, 3.0)] == [0, 0, 1, 3, 6]
    tokens = [11, 12, 13, 14, 15, 16]
    assert icot_remove(tokens, 0) == tokens
    assert icot_remove(tokens, 3) == [14, 15, 16]
    assert icot_remove(tokens, 3, offset=2) == [16]
    assert icot_remove(tokens, 8) == [] and icot_remove(tokens, 5, offset=4) == []


def test_icot_offset_distribution():
    off = offset_probs(0.0)
    assert off[0] == 1.0 and off[1:].sum() == 0.0  # smoothing off: always o = 0
    p = offset_probs(4.0)
    assert p.sum().item() == pytest.approx(1.0)
    assert (p[1] / p[0]).item() == pytest.approx(math.exp(-4.0))
    assert (p[3] / p[2]).item() == pytest.approx(math.exp(-4.0))


# -- the batch with thought slots ----------------------------------------------------------------------


def _ids(model, r):
    tok, lay = model.tokenizer, model.settings.layout
    return lay.question_ids(tok, r.question), lay.reasoning_ids(tok, r.steps), lay.answer_ids(tok, r.answer)


def test_build_batch_thought_slots_by_hand(rs_records):
    model = tiny_model(rs_records["train"], method="coconut")
    tok = model.tokenizer
    think = tok.convert_tokens_to_ids(THINK_START)
    r0, r1 = rs_records["train"][0], rs_records["train"][1]
    q0, s0, a0 = _ids(model, r0)
    q1, s1, a1 = _ids(model, r1)
    q1 = q1 + q1[1:3]  # a longer question: the slots of the two rows sit at different indices
    rest0 = s0[2:]
    b = build_batch(model, Pieces([q0, q1], [rest0, s1], [a0, a1]), [], think, thoughts=[2, 0])
    P = len(q0) + 1
    n0 = P + 2 + len(rest0) + len(a0)
    # reasoning slots hold id 0 too (at c = 1 their inputs are the token embeddings)
    assert b["input_ids"][0, :n0].tolist() == q0 + [think, 0, 0] + [0] * len(rest0) + a0
    assert torch.equal(b["inputs_embeds"][0, P + 2: P + 2 + len(rest0)], model.embed(torch.tensor(rest0)))
    assert b["attention_mask"][0].tolist() == [1] * n0 + [0] * (b["input_ids"].shape[1] - n0)
    assert b["position_ids"][0, :n0].tolist() == list(range(n0))
    # <think> and the first slot predict nothing; the last slot predicts the first remaining token
    assert b["labels"][0, :n0].tolist() == [-100] * (P + 1) + rest0 + a0 + [-100]
    assert b["thought_mask"][0].nonzero().flatten().tolist() == [P, P + 1]
    assert torch.equal(b["inputs_embeds"][0, P], model.embed(torch.tensor(0)))  # a placeholder until unrolled
    assert not b["thought_mask"][1].any()
    # a row without thoughts is exactly the plain batch's row
    plain = build_batch(model, Pieces([q1], [s1], [a1]), [], think)
    n1 = int(plain["attention_mask"].sum())
    for key in ("input_ids", "inputs_embeds", "position_ids", "labels", "latent_mask"):
        assert torch.equal(b[key][1, :n1], plain[key][0]), key


def test_build_batch_no_thoughts_is_unchanged(rs_records):
    model = tiny_model(rs_records["train"])
    tok, lay = model.tokenizer, model.settings.layout
    recs = rs_records["train"][:3]
    pieces = Pieces(*[list(x) for x in zip(*[_ids(model, r) for r in recs])])
    a = build_batch(model, pieces, lay.speed_ids(tok, 1), tok.convert_tokens_to_ids(THINK_START))
    b = build_batch(model, pieces, lay.speed_ids(tok, 1), tok.convert_tokens_to_ids(THINK_START), thoughts=[0, 0, 0])
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert not a["thought_mask"].any()


# -- the unroll ------------------------------------------------------------------------------------------


def _thought_model(records, method, n=3, seed=0):
    m = tiny_model(records, seed=seed, method=method)
    if method == "codi":
        m.add_latent_head()
    m.settings.num_thoughts = n
    return m


@pytest.mark.parametrize("method", ["coconut", "codi"])
def test_unroll_feeds_each_slot_the_previous_hidden_state(rs_records, method):
    model = _thought_model(rs_records["train"], method)
    think = model.tokenizer.convert_tokens_to_ids(THINK_START)
    recs = rs_records["train"][:3]
    ids = [_ids(model, r) for r in recs]
    qs = [ids[0][0], ids[1][0] + ids[1][0][1:4], ids[2][0]]
    counts = [3, 1, 0]
    b = build_batch(model, Pieces(qs, [i[1][2:] for i in ids], [i[2] for i in ids]), [], think, thoughts=counts)
    placeholders = b["inputs_embeds"]
    out = unroll(model, model, b)
    # Manual recomputation, row by row, like decoding: run the prefix, feed thought_input(last hidden), repeat.
    for row, (q, n) in enumerate(zip(qs, counts)):
        prefix = model.embed(torch.tensor([q + [think]]))
        for j in range(n):
            h = model(inputs_embeds=prefix).hidden[:, -1]
            x = model.thought_input(h)
            assert torch.allclose(b["inputs_embeds"][row, len(q) + 1 + j], x[0], atol=1e-5), (row, j)
            prefix = torch.cat([prefix, x[:, None]], 1)
    P = len(qs[0]) + 1
    if method == "coconut":  # Coconut's thought is the hidden state itself
        assert torch.allclose(b["inputs_embeds"][0, P + 1], out.hidden[0, P], atol=1e-5)
    assert not torch.allclose(b["inputs_embeds"][0, P], placeholders[0, P])
    # the final pass is the one the loss sees
    full = model(inputs_embeds=b["inputs_embeds"], attention_mask=b["attention_mask"], position_ids=b["position_ids"])
    assert torch.allclose(out.logits, full.logits, atol=1e-5)
    # thoughts are written out of place and never detached: the third thought depends on the question's inputs
    g = torch.autograd.grad(b["inputs_embeds"][0, P + 2].sum(), placeholders)[0]
    assert g[0, :P].abs().sum() > 0 and g[1:].abs().sum() == 0


# -- the decoder for continuous thoughts ----------------------------------------------------------------


def _questions(rs_records, n=5):
    qs = [r.question for r in rs_records["test"][:n]]
    return [q if i % 2 else q + " 1 2" for i, q in enumerate(qs)]


@pytest.mark.parametrize("method", ["coconut", "codi"])
def test_thought_decoding_cache_batching_and_training_layout_agree(rs_records, method):
    model = _thought_model(rs_records["train"], method, n=3, seed=1)
    qs = _questions(rs_records)
    cached = Decoder(model, max_new_tokens=6).generate(qs)
    uncached = Decoder(model, max_new_tokens=6, use_cache=False).generate(qs)
    for a, b in zip(cached, uncached):
        assert a.token_ids == b.token_ids and a.reasoning_length == 3
        assert torch.allclose(a.latents, b.latents, atol=1e-5)
    for q, a in zip(qs, cached):
        s = Decoder(model, max_new_tokens=6).generate([q])[0]
        assert s.token_ids == a.token_ids
        assert torch.allclose(s.latents, a.latents, atol=1e-5)
    # the thoughts at inference are the ones the training unroll computes for the same prompt
    tok, lay = model.tokenizer, model.settings.layout
    b = build_batch(model, Pieces([lay.question_ids(tok, qs[0])], [[]], [lay.answer_ids(tok, "1")]), [],
                    tok.convert_tokens_to_ids(THINK_START), thoughts=[3])
    unroll(model, model, b)
    assert torch.allclose(b["inputs_embeds"][0][b["thought_mask"][0]], cached[0].latents, atol=1e-5)


def test_thoughts_model_takes_no_speed(rs_records):
    model = _thought_model(rs_records["train"], "coconut")
    assert check_speed(model.settings, None) is None
    for bad in (1, "2", "auto"):
        with pytest.raises(PonderError, match="--speed: a coconut model thinks in a fixed number of continuous"):
            Decoder(model).generate(["1 2 3"], speed=bad)
    assert check_speed(tiny_model(rs_records["train"], method="icot").settings, None) == 1  # iCoT: CoT's prompt


# -- training each method --------------------------------------------------------------------------------


def _losses(trainer):
    return [h["loss"] for h in trainer.state.log_history if "loss" in h]


class _AdamSteps(TrainerCallback):
    """Records AdamW's step count of one parameter after each optimizer step."""

    def __init__(self):
        self.steps = []

    def on_step_end(self, args, state, control, optimizer=None, **kw):
        p = optimizer.param_groups[0]["params"][0]
        self.steps.append(int(optimizer.state[p]["step"]))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, rs_dir):
    root = tmp_path_factory.mktemp("baselines")
    common = dict(max_steps=24, batch_size=16, lr=3e-3, logging_steps=4, save_steps=10**9)
    adam = _AdamSteps()
    runs = {
        # 400 examples / 16 = 25 steps per epoch: stages 0, 1, 2 for 8 steps each (epoch 0.32 after step 8)
        "coconut": train("coconut", rs_dir, "tiny", root / "coconut", epochs_per_stage=0.31, max_stage=2,
                         reset_optimizer=True, callbacks=[adam], **common)[1],
        "codi": train("codi", rs_dir, "tiny", root / "codi", num_thoughts=2, **common)[1],
        "icot": train("icot", rs_dir, "tiny", root / "icot", remove_per_epoch=4, **common)[1],
    }
    return root, runs, adam.steps


@pytest.mark.parametrize("method", ["coconut", "codi", "icot"])
def test_method_trains_saves_and_evaluates(trained, rs_dir, method):
    from ponder.data.records import read_records
    from ponder.evaluation.evaluate import evaluate

    root, runs, _ = trained
    losses = _losses(runs[method])
    assert losses[-1] < 0.6 * losses[0], losses
    m = load_model(root / method)
    assert m.settings.method == method
    report = evaluate(m, read_records(rs_dir / "test.jsonl")[:8], speeds=[None], max_new_tokens=12)
    row = report["results"][0]
    assert row["method"] == method and row["n"] == 8
    lengths = {p["reasoning_length"] for p in report["predictions"]}
    if method == "coconut":
        assert m.settings.num_thoughts == 2 and lengths == {2} and "compression_vs_cot" in row
    elif method == "codi":
        assert m.settings.num_thoughts == 2 and lengths == {2} and m.latent_head is not None
    else:
        assert m.settings.reasoning == "tokens" and row["speed"] == 1


def test_coconut_curriculum_and_optimizer_reset(trained):
    _, runs, adam_steps = trained
    stages = [h["stage"] for h in runs["coconut"].state.log_history if "stage" in h]
    assert stages[0] == 0 and stages[-1] == 2 and stages == sorted(stages)
    # the stage moves at epochs 0.31 and 0.62 (steps 8 -> 9 and 16 -> 17): AdamW's step count restarts
    assert adam_steps == list(range(1, 9)) * 3


def test_icot_removes_more_as_epochs_pass(trained):
    _, runs, _ = trained
    removed = [h["removed"] for h in runs["icot"].state.log_history if "removed" in h]
    assert removed[0] < 1 and removed[-1] >= 3 and removed == sorted(removed)


def test_icot_batch_removes_the_scheduled_tokens(tmp_path, rs_records):
    from ponder.methods.icot import ICoTConfig, ICoTTrainer
    from ponder.methods.trainer import RecordCollator

    recs = rs_records["train"][:64]
    for smoothing in (0.0, 0.7):
        model = tiny_model(recs)
        args = ICoTConfig(output_dir=str(tmp_path), remove_per_epoch=2, removal_smoothing=smoothing, use_cpu=True,
                          report_to="none", per_device_train_batch_size=64)
        trainer = ICoTTrainer(model, args, recs)
        trainer.state.epoch = 1.25  # floor(1.25 x 2) = 2 tokens removed, plus the offset
        inputs = RecordCollator(model, 1024)(recs)
        b = trainer.make_batch(inputs, 1, 1, 1, torch.Generator().manual_seed(0))
        end = model.tokenizer.convert_tokens_to_ids(THINK_END)
        cut = []
        for row, full in enumerate(inputs["pieces"].reasoning):
            P = len(inputs["pieces"].questions[row]) + len(model.settings.layout.speed_ids(model.tokenizer, 1)) + 1
            labels = b["labels"][row].tolist()  # what follows <think>: the kept reasoning, then </think>
            kept = labels[P - 1: labels.index(end)]
            assert kept == full[len(full) - len(kept):]  # a suffix of the chain: tokens go from the front
            cut.append(len(full) - len(kept))
        if smoothing == 0:
            assert set(cut) == {2}
        else:  # P(o >= 1) = exp(-0.7) ~ 0.5; chains are 4 tokens long here
            assert min(cut) == 2 and max(cut) > 2 and cut.count(2) > 16


def test_cli_trains_and_evaluates_a_thoughts_model(tmp_path, rs_dir):
    import json

    from ponder.cli import main

    out, report = tmp_path / "m", tmp_path / "r.json"
    main(["train", "--method", "codi", "--data", str(rs_dir), "--init", "tiny", "--out", str(out), "--max-steps", "2",
          "--batch-size", "8", "--num-thoughts", "3", "--distill-weight", "2"])
    main(["eval", "--model", str(out), "--data", str(rs_dir), "--n", "4", "--max-new-tokens", "8",
          "--report", str(report)])
    rep = json.loads(report.read_text())
    assert rep["results"][0]["method"] == "codi" and rep["results"][0]["mean_reasoning_length"] == 3
    with pytest.raises(SystemExit) as e:
        main(["eval", "--model", str(out), "--data", str(rs_dir), "--n", "2", "--speeds", "2"])
    assert e.value.code == 2
