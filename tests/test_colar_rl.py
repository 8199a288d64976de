"""CoLaR-RL: GRPO's pieces on hand-made numbers, the rollout layout, and real RL steps on a tiny CoLaR model."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ponder.errors import PonderError
from ponder.inference.decode import Decoder
from ponder.methods.colar_rl import (clipped_objective, gaussian_kl, group_advantages, layout_rollout,
                                     parse_length_penalty, rewards_for)
from ponder.methods.train import train
from ponder.model.io import load_model
from ponder.model.latent_head import LatentHead
from ponder.prompt import THINK_END

# -- pure pieces ---------------------------------------------------------------------------------------


def test_group_advantages_on_hand_made_groups():
    adv = group_advantages(torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 0.0]), group_size=2)
    assert adv.tolist() == [1.0, -1.0, 0.0, 0.0, 0.0, 0.0]  # equal rewards: zero advantage, not NaN
    adv = group_advantages(torch.tensor([1.0, 0.0, 0.0, 0.0]), group_size=4)
    std = math.sqrt(0.25 * 0.75)
    assert adv.tolist() == pytest.approx([0.75 / std, -0.25 / std, -0.25 / std, -0.25 / std])
    assert torch.isfinite(group_advantages(torch.full((8,), 0.3), 4)).all()
    with pytest.raises(ValueError):
        group_advantages(torch.zeros(5), 2)


def test_rewards_malformed_answers_are_zero_and_length_shaping():
    answers = ["", "   ", "abc", "1e999", "nan", "7", "7.0", None]
    r = rewards_for(answers, ["7"] * len(answers), [1] * len(answers))
    assert r.tolist() == [0, 0, 0, 0, 0, 1, 1, 0]
    steps = [4, 2, 0]
    assert rewards_for(["7", "7", "7"], ["7"] * 3, steps, "per-step").tolist() == [0.25, 0.5, 1.0]
    assert rewards_for(["7", "8", "7"], ["7"] * 3, steps, 0.1).tolist() == pytest.approx([0.6, -0.2, 1.0])
    assert parse_length_penalty("none") is None and parse_length_penalty("per-step") == "per-step"
    assert parse_length_penalty("0.05") == 0.05
    for bad in ("fast", "-1", "inf"):
        with pytest.raises(PonderError, match="--length-penalty"):
            parse_length_penalty(bad)


def test_clipped_objective_on_hand_made_numbers():
    old = torch.zeros(4)
    logp = torch.log(torch.tensor([1.5, 1.5, 0.5, 0.5]))
    adv = torch.tensor([1.0, -1.0, 1.0, -1.0])
    loss = clipped_objective(logp, old, adv, eps=0.2)
    # ratio 1.5, A=+1: clipped at 1.2; A=-1: the unclipped -1.5 is the minimum; ratio 0.5, A=+1: 0.5; A=-1: clipped 0.8
    assert loss.tolist() == pytest.approx([-1.2, 1.5, -0.5, 0.8])
    # gradient flows only where the ratio is not clipped
    logp = logp.clone().requires_grad_(True)
    clipped_objective(logp, old, adv, eps=0.2).sum().backward()
    assert logp.grad.tolist() == pytest.approx([0.0, 1.5, -0.5, 0.0])


def test_sampled_latent_log_prob_is_the_diagonal_gaussian_formula():
    g = torch.Generator().manual_seed(0)
    mean, log_std = torch.randn(3, 5, generator=g), torch.randn(3, 5, generator=g) * 0.3
    tau = 0.4
    x = LatentHead.sample(mean, log_std, tau, generator=g)
    ours = LatentHead.log_prob(x, mean, log_std + math.log(tau))
    ref = torch.distributions.Normal(mean, tau * log_std.exp()).log_prob(x).sum(-1)
    assert torch.allclose(ours, ref, atol=1e-5)
    by_hand = sum(-0.5 * ((x[0, i] - mean[0, i]) / (tau * log_std[0, i].exp())) ** 2 - log_std[0, i] - math.log(tau)
                  - 0.5 * math.log(2 * math.pi) for i in range(5))
    assert float(ours[0]) == pytest.approx(float(by_hand), abs=1e-5)


def test_gaussian_kl_matches_torch():
    g = torch.Generator().manual_seed(1)
    m1, s1, m2, s2 = (torch.randn(4, 6, generator=g) * 0.5 for _ in range(4))
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(m1, s1.exp()),
                                            torch.distributions.Normal(m2, s2.exp())).sum(-1)
    assert torch.allclose(gaussian_kl(m1, s1, m2, s2), ref, atol=1e-5)
    assert torch.allclose(gaussian_kl(m1, s1, m1, s1), torch.zeros(4), atol=1e-6)


# -- the rollout layout reproduces the decoder ----------------------------------------------------------


def test_rollout_layout_reproduces_the_decoders_latents_and_tokens(colar_dir):
    """Greedy rollouts (tau = 0) re-encoded in one teacher-forced pass: the head's mean at every latent
    slot is the latent the decoder fed, the LM's top token is </think> exactly where the chain stopped,
    and the argmax at every answer slot is the token it decoded."""
    m = load_model(colar_dir[0])
    tok, lay = m.tokenizer, m.settings.layout
    qs = ["1 2 3", "4", "5 6", "9 9 9"]
    for speed in (1, 2):
        gens = Decoder(m, max_new_tokens=16, max_latent_steps=3).generate(qs, speed=speed)
        stopped = [g.reasoning_length < 3 for g in gens]
        assert any(g.reasoning_length > 1 for g in gens) and any(stopped)
        laid = layout_rollout(m, [lay.prompt_ids(tok, q, speed) for q in qs], [g.latents for g in gens],
                              [g.token_ids + [tok.eos_token_id] * g.ended for g in gens], [speed] * len(qs), stopped)
        with torch.no_grad():
            out = m(inputs_embeds=laid["inputs_embeds"], attention_mask=laid["attention_mask"],
                    position_ids=laid["position_ids"])
        at = laid["latent_at"]
        assert int(at.sum()) == sum(g.reasoning_length for g in gens)
        assert torch.allclose(out.latent_mean[at], laid["latent_values"][at], atol=1e-5)
        t = laid["token_at"]
        assert torch.equal(out.logits.argmax(-1)[t], laid["token_values"][t])
        end = tok.convert_tokens_to_ids(THINK_END)
        assert laid["stop_at"].sum(1).tolist() == [int(s) for s in stopped]
        assert (out.logits.argmax(-1)[laid["stop_at"]] == end).all()
        assert (out.logits.argmax(-1)[at] != end).all()


def test_sampled_stop_is_reproducible_and_follows_p_end(colar_dir):
    m = load_model(colar_dir[0])
    qs = ["1 2 3", "4 5", "6 7 8"] * 8
    run = lambda seed: [g.reasoning_length for g in Decoder(m, max_latent_steps=8, sample_stop=True, seed=seed,  # noqa: E731
                                                            latent_temperature=0.5).generate(qs, speed=1)]
    assert run(1) == run(1)
    lengths = run(2)
    assert len(set(lengths)) > 1  # the same question's chains end at different steps
    greedy = [g.reasoning_length for g in Decoder(m, max_latent_steps=8).generate(qs, speed=1)]
    assert greedy == greedy[:3] * 8  # without sampling, a question always takes the same number of steps


# -- real RL steps -------------------------------------------------------------------------------------


def _rl(colar_dir, out, **kw):
    data = colar_dir[0].parent / "train.jsonl"
    opts = dict(max_steps=1, batch_size=4, group_size=8, lr=1e-3, speeds="1,2", latent_temperature=1.0,
                answer_temperature=1.0, logging_steps=1, save_steps=1000, seed=3, warmup=0)
    return train("colar-rl", data, str(colar_dir[0]), out, **{**opts, **kw})


def test_one_rl_step_changes_the_parameters_and_is_reproducible(colar_dir, tmp_path):
    before = load_model(colar_dir[0])
    _rl(colar_dir, tmp_path / "a")
    _rl(colar_dir, tmp_path / "b")
    a, b = load_model(tmp_path / "a"), load_model(tmp_path / "b")
    assert a.settings.method == "colar-rl" and a.latent_head is not None
    changed = [k for k, v in a.lm.state_dict().items() if not torch.equal(v, before.lm.state_dict()[k])]
    assert changed  # the step moved the LM
    assert any(not torch.equal(v, before.latent_head.state_dict()[k]) for k, v in a.latent_head.state_dict().items())
    for k, v in a.lm.state_dict().items():
        assert torch.equal(v, b.lm.state_dict()[k]), k  # same seed, same rollouts, same update
    for k, v in a.latent_head.state_dict().items():
        assert torch.equal(v, b.latent_head.state_dict()[k]), k


def test_rl_logs_its_metrics_and_a_kl_to_the_start(colar_dir, tmp_path):
    _, trainer = _rl(colar_dir, tmp_path / "kl", max_steps=2, kl_coef=0.5, num_iterations=2)
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logs) == 2
    for key in ("reward", "accuracy", "latent_steps", "latent_entropy", "kl", "clip_fraction"):
        assert key in logs[0], key
    assert 0.0 <= logs[0]["accuracy"] <= 1.0 and logs[0]["latent_steps"] >= 1
    assert logs[0]["kl"] == pytest.approx(0.0, abs=1e-6)  # step 1: the policy is still the reference
    assert logs[1]["kl"] > 0  # step 2 re-uses the rollout after an update: the policy has moved
    assert "reward" not in logs[1]  # ... and drew no new rollout


def test_latent_logprob_mean_is_the_sum_over_the_embedding_size(colar_dir, tmp_path):
    """The same seeded rollout, scored both ways: 'mean' is the exact log-density divided by d, action by action."""
    kw = dict(stop_policy=False, max_latent_steps=4)
    _, mean = _rl(colar_dir, tmp_path / "mean", latent_logprob="mean", **kw)
    _, total = _rl(colar_dir, tmp_path / "sum", latent_logprob="sum", **kw)
    a, b = mean._buffer[0], total._buffer[0]
    assert torch.equal(a.latent_values, b.latent_values) and a.latent_at.sum() > 0
    d = a.latent_values.shape[-1]
    assert torch.allclose(a.old_latent_logp[a.latent_at] * d, b.old_latent_logp[b.latent_at], rtol=1e-5, atol=1e-4)


def test_latent_kl_is_in_the_policy_terms_units(colar_dir, tmp_path):
    """'mean' divides the latent KL by d like the log-density; the token KL is untouched (here exactly 0)."""
    _, trainer = _rl(colar_dir, tmp_path / "kl", kl_coef=0.5, num_iterations=2, stop_policy=False, max_latent_steps=4)
    ro = trainer._buffer[0]  # step 2 of 2 iterations re-uses this rollout
    with torch.no_grad():
        now = trainer._log_probs(trainer.model, ro)
    # A reference whose Gaussian means sit 0.3 away and whose LM is the policy's: KL = 0.09 / (2 var) per dim.
    ro.ref_mean, ro.ref_log_std, ro.ref_token_logp = now["mean"] + 0.3, now["log_std"], now["token"]
    kl = {}
    for mode in ("mean", "sum"):
        trainer.args.latent_logprob = mode
        trainer._micro = (-1, 0)  # both calls are micro-batch 0 of step 2, whose rollout is the buffer's
        trainer.compute_loss(trainer.model, {"records": None})
        kl[mode] = trainer._metrics["kl"][-1]
    per_row = torch.where(ro.latent_at, (0.045 / (2 * now["log_std"]).exp()).sum(-1), 0.0).sum(-1)
    expected = (per_row / (ro.latent_at | ro.token_at).sum(-1).clamp(min=1)).mean()
    assert kl["sum"] == pytest.approx(float(expected), rel=1e-4) and kl["sum"] > 0
    assert kl["mean"] * ro.latent_values.shape[-1] == pytest.approx(kl["sum"], rel=1e-5)


@pytest.mark.parametrize("opts, match", [
    (dict(group_size=1), "--group-size"),
    (dict(latent_temperature=0.0), "--latent-temperature"),
    (dict(speeds="9"), "--speed"),
    (dict(speeds="fast"), "--speed"),
    (dict(latent_policy=False, answer_policy=False), "nothing to train"),
    (dict(latent_logprob="max"), "--latent-logprob"),
])
def test_bad_rl_options_are_clear_errors(colar_dir, tmp_path, opts, match):
    with pytest.raises(PonderError, match=match):
        _rl(colar_dir, tmp_path / "x", **opts)


@pytest.mark.parametrize("script, model_flag", [("run.py", "--sft"), ("headroom.py", "--model")])
def test_benchmark_missing_data_is_one_line_and_exit_2(tmp_path, script, model_flag):
    script = Path(__file__).parents[1] / "benchmarks" / "colar_rl" / script
    name = f"never-written-{os.getpid()}"
    r = subprocess.run([sys.executable, str(script), model_flag, str(tmp_path), "--data", str(tmp_path / "nowhere"),
                        "--results", name], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [f"error: {tmp_path / 'nowhere' / 'test.jsonl'}: no such file"]
    assert not list(script.parent.glob(f"{name}.*"))


def test_rl_needs_a_colar_model(rs_dir, tmp_path):
    train("cot", rs_dir, "tiny", tmp_path / "cot", max_steps=1, batch_size=4, save_steps=1000)
    with pytest.raises(PonderError, match="CoLaR model"):
        train("colar-rl", rs_dir, str(tmp_path / "cot"), tmp_path / "rl", max_steps=1, batch_size=4)


def test_two_process_rl_run(colar_dir, tmp_path):
    """GRPO under accelerate's DDP: each process rolls out its own questions; the update is shared."""
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "ponder.cli", "train", "--method", "colar-rl",
           "--init", str(colar_dir[0]), "--data", str(colar_dir[0].parent / "train.jsonl"), "--out", str(out),
           "--max-steps", "2", "--batch-size", "2", "--group-size", "2", "--speeds", "1,2", "--max-latent-steps", "4"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = json.loads((out / "train_log.json").read_text())
    assert log["world_size"] == 2 and log["global_step"] == 2
    assert load_model(out).settings.method == "colar-rl"


def test_rl_resume_reaches_the_same_model(colar_dir, tmp_path):
    from ponder.methods.trainer import StopAfter

    kw = dict(max_steps=4, save_steps=2, batch_size=2, group_size=4, max_latent_steps=4)
    _rl(colar_dir, tmp_path / "full", **kw)
    with pytest.raises(KeyboardInterrupt):
        _rl(colar_dir, tmp_path / "cut", callbacks=[StopAfter(3)], **kw)
    _, resumed = _rl(colar_dir, tmp_path / "cut", resume=True, **kw)
    assert resumed.state.global_step == 4
    a, b = load_model(tmp_path / "full"), load_model(tmp_path / "cut")
    for k, v in a.lm.state_dict().items():
        assert torch.allclose(v, b.lm.state_dict()[k], atol=1e-6), k
    for k, v in a.latent_head.state_dict().items():
        assert torch.allclose(v, b.latent_head.state_dict()[k], atol=1e-6), k
