"""CoLaR: compression by hand, the training layout, latent decoding (cache, batching, save/load), speeds."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from conftest import tiny_model
from ponder.errors import PonderError
from ponder.inference.decode import Decoder
from ponder.methods.batch import Pieces, build_batch
from ponder.methods.compression import compress, sample_group_tokens
from ponder.model.io import load_model
from ponder.prompt import THINK_END, THINK_START

# -- compression ---------------------------------------------------------------------------------------


def _ragged():
    # rows of length 5, 2 and 0 (all padding); d = 1 so every value is checkable by hand
    e = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0], [10.0, 20.0, 99.0, 99.0, 99.0], [99.0] * 5])[..., None]
    return e, torch.tensor([5, 2, 0])


def test_compress_sum_by_hand_on_ragged_rows():
    e, lengths = _ragged()
    out, groups = compress(e, lengths, c=2, mode="sum")
    assert groups.tolist() == [3, 1, 0]
    s2 = 2 ** 0.5
    expected = torch.tensor([[3 / s2, 7 / s2, 5.0], [30 / s2, 0.0, 0.0], [0.0, 0.0, 0.0]])
    assert torch.allclose(out[..., 0], expected)  # padding (99) never enters; the last group holds 1 token


def test_compress_mean_and_group_larger_than_row():
    e, lengths = _ragged()
    out, groups = compress(e, lengths, c=3, mode="mean")
    assert groups.tolist() == [2, 1, 0]
    assert torch.allclose(out[..., 0], torch.tensor([[2.0, 4.5], [15.0, 0.0], [0.0, 0.0]]))


def test_compress_ordered_by_hand_keeps_the_order_a_sum_loses():
    e, lengths = _ragged()
    out, groups = compress(e, lengths, c=2, mode="ordered")
    assert groups.tolist() == [3, 1, 0]
    n2 = (1 + 1.5 ** 2) ** 0.5  # weights (1, 3/2) scaled to unit norm
    expected = torch.tensor([[(1 + 3) / n2, (3 + 6) / n2, 5.0], [(10 + 30) / n2, 0.0, 0.0], [0.0, 0.0, 0.0]])
    assert torch.allclose(out[..., 0], expected)  # padding never enters; a 1-token group is its token
    out3, _ = compress(e, lengths, c=3, mode="ordered")  # weights (1, 4/3, 5/3), then (1, 3/2)
    w = torch.tensor([1, 4 / 3, 5 / 3])
    assert torch.allclose(out3[0, :, 0], torch.tensor([(w * torch.tensor([1.0, 2, 3])).sum() / w.norm(), (4 + 7.5) / n2]))
    pair = torch.randn(1, 2, 8)
    swapped = pair.flip(1)
    two = torch.tensor([2])
    assert torch.allclose(compress(pair, two, 2, "sum")[0], compress(swapped, two, 2, "sum")[0])
    assert not torch.allclose(compress(pair, two, 2, "ordered")[0], compress(swapped, two, 2, "ordered")[0])


@pytest.mark.parametrize("mode", ["sum", "mean", "ordered"])
def test_compress_c1_is_identity(mode):
    e = torch.randn(3, 6, 4)
    lengths = torch.tensor([6, 3, 1])
    out, groups = compress(e, lengths, c=1, mode=mode)
    assert groups.tolist() == [6, 3, 1]
    for b, n in enumerate(lengths.tolist()):
        assert torch.equal(out[b, :n], e[b, :n])


def test_compress_rejects_bad_factor():
    with pytest.raises(ValueError):
        compress(torch.zeros(1, 2, 3), torch.tensor([2]), c=0)


def test_group_labels_come_from_their_group():
    ids = torch.arange(100, 110)[None].repeat(2, 1)
    lengths = torch.tensor([10, 7])
    for seed in range(5):
        lab = sample_group_tokens(ids, lengths, 3, torch.Generator().manual_seed(seed))
        for b, n in enumerate(lengths.tolist()):
            for g in range(-(-n // 3)):
                assert 100 + 3 * g <= lab[b, g] < 100 + min(3 * g + 3, n)
    assert torch.equal(sample_group_tokens(ids, lengths, 1)[0], ids[0])


def test_stretched_positions_and_labels_in_the_batch(rs_records):
    model = tiny_model(rs_records["train"], method="colar")
    model.add_latent_head()
    tok, lay = model.tokenizer, model.settings.layout
    r = rs_records["train"][0]  # 4 digits -> reasoning of 4 tokens -> 2 groups at c = 2
    pieces = Pieces([lay.question_ids(tok, r.question)], [lay.reasoning_ids(tok, r.steps)], [lay.answer_ids(tok, r.answer)])
    reasoning = pieces.reasoning[0]
    assert len(reasoning) == 4
    b = build_batch(model, pieces, lay.speed_ids(tok, 2), tok.convert_tokens_to_ids(THINK_START), c=2, stretch=2)
    P = len(lay.prompt_ids(tok, r.question, 2))
    pos = b["position_ids"][0].tolist()
    # slot g where its group's last token sat in CoT: (P-1) + (g+1)*c; </think> right after the last slot
    assert pos[:P] == list(range(P)) and pos[P:P + 2] == [P + 1, P + 3] and pos[P + 2] == P + 4
    labels = b["labels"][0].tolist()
    assert labels[P - 1] in reasoning[0:2] and labels[P] in reasoning[2:4]
    assert labels[P + 1] == tok.convert_tokens_to_ids(THINK_END)
    emb = model.embed(torch.tensor([reasoning]))[0]
    assert torch.allclose(b["inputs_embeds"][0, P], (emb[0] + emb[1]) / 2 ** 0.5, atol=1e-6)
    assert b["latent_mask"][0].nonzero().flatten().tolist() == [P - 1, P]  # predicts groups 0 and 1
    assert torch.allclose(b["latent_targets"][0, P], (emb[2] + emb[3]) / 2 ** 0.5, atol=1e-6)


def test_ordered_compression_reaches_the_batch_inputs_and_targets(rs_records):
    model = tiny_model(rs_records["train"], method="colar")
    model.add_latent_head()
    tok, lay = model.tokenizer, model.settings.layout
    r = rs_records["train"][0]
    pieces = Pieces([lay.question_ids(tok, r.question)], [lay.reasoning_ids(tok, r.steps)], [lay.answer_ids(tok, r.answer)])
    b = build_batch(model, pieces, lay.speed_ids(tok, 2), tok.convert_tokens_to_ids(THINK_START), c=2, mode="ordered")
    P = len(lay.prompt_ids(tok, r.question, 2))
    emb = model.embed(torch.tensor([pieces.reasoning[0]]))[0]
    n2 = (1 + 1.5 ** 2) ** 0.5
    assert torch.allclose(b["inputs_embeds"][0, P], (emb[0] + 1.5 * emb[1]) / n2, atol=1e-6)
    assert torch.allclose(b["latent_targets"][0, P], (emb[2] + 1.5 * emb[3]) / n2, atol=1e-6)


# -- a trained tiny CoLaR model ------------------------------------------------------------------------


def test_tiny_colar_trains_from_scratch_and_latent_loss_falls(colar_dir):
    out, logs = colar_dir
    assert logs[-1]["latent_loss"] < 0.7 * logs[0]["latent_loss"]
    m = load_model(out)
    assert m.settings.method == "colar" and m.settings.max_compression == 3 and m.latent_head is not None
    assert m.settings.embed_std > 0


def _questions(rs_dir, n=6):
    from ponder.data.records import read_records

    qs = [r.question for r in read_records(rs_dir / "test.jsonl")[:n]]
    return [q if i % 2 else q + " 3 1" for i, q in enumerate(qs)]  # ragged prompts, varied chain lengths


@pytest.mark.parametrize("speed", [1, 2, "auto"])
def test_latent_decoding_cache_equals_reencoding(colar_dir, rs_dir, speed):
    m = load_model(colar_dir[0])
    qs = _questions(rs_dir)
    a = Decoder(m, max_latent_steps=8, max_new_tokens=8).generate(qs, speed=speed)
    b = Decoder(m, max_latent_steps=8, max_new_tokens=8, use_cache=False).generate(qs, speed=speed)
    for x, y in zip(a, b):
        assert x.reasoning_length == y.reasoning_length and x.token_ids == y.token_ids
        assert torch.allclose(x.latents, y.latents, atol=1e-5)


def test_latent_batched_equals_one_by_one(colar_dir, rs_dir):
    m = load_model(colar_dir[0])
    qs = _questions(rs_dir)
    batched = Decoder(m, max_latent_steps=8, max_new_tokens=8).generate(qs, speed=2)
    for q, b in zip(qs, batched):
        s = Decoder(m, max_latent_steps=8, max_new_tokens=8).generate([q], speed=2)[0]
        assert s.reasoning_length == b.reasoning_length and s.token_ids == b.token_ids
        assert torch.allclose(s.latents, b.latents, atol=1e-5)


def test_save_load_keeps_latent_head_and_outputs(colar_dir, rs_dir, tmp_path):
    m = load_model(colar_dir[0])
    m.save(tmp_path / "copy")
    m2 = load_model(tmp_path / "copy")
    for k, v in m.latent_head.state_dict().items():
        assert torch.equal(v, m2.latent_head.state_dict()[k])
    qs = _questions(rs_dir, 3)
    a = Decoder(m, max_latent_steps=8).generate(qs, speed=2)
    b = Decoder(m2, max_latent_steps=8).generate(qs, speed=2)
    assert [g.token_ids for g in a] == [g.token_ids for g in b]
    assert all(torch.equal(x.latents, y.latents) for x, y in zip(a, b))


def test_official_head_and_sample_mse_train_save_and_reload(colar_dir, rs_dir, tmp_path):
    """--latent-head official (MLP -> LayerNorm, unclamped) with --latent-loss mse-sample: the
    head's style is saved in ponder.json and reloaded as that style, with identical latents."""
    from ponder.methods.train import train
    from ponder.model.latent_head import LatentHead

    out = tmp_path / "official"
    _, trainer = train("colar", rs_dir / "train.jsonl", "tiny", out, max_steps=4, batch_size=8,
                       logging_steps=1, save_steps=1000, max_compression=2, latent_head="official",
                       latent_loss="mse-sample")
    assert all(h["latent_loss"] > 0 for h in trainer.state.log_history if "latent_loss" in h)
    m = load_model(out)
    head = m.latent_head
    assert head.config == {"hidden_size": 128, "embed_size": 128, "inner_size": 128, "style": "official"}
    assert isinstance(head.mlp[-1], torch.nn.LayerNorm) and not head.clamp
    assert load_model(colar_dir[0]).latent_head.clamp  # models saved before the option stay 'ponder'
    a = Decoder(m, max_latent_steps=6, max_new_tokens=4).generate(_questions(rs_dir, 3), speed=2)
    b = Decoder(load_model(out), max_latent_steps=6, max_new_tokens=4).generate(_questions(rs_dir, 3), speed=2)
    assert all(torch.equal(x.latents, y.latents) for x, y in zip(a, b))
    with pytest.raises(ValueError, match="style"):
        LatentHead(8, 8, style="paper")
    with pytest.raises(PonderError, match="already has a 'ponder' latent head"):
        train("colar", rs_dir / "train.jsonl", str(colar_dir[0]), tmp_path / "x", max_steps=1, latent_head="official")
    assert not (tmp_path / "x").exists()


def test_speed_curriculum_brings_the_speeds_in_one_at_a_time(rs_dir, tmp_path):
    """--speed-curriculum 0.5 over 8 steps and c in 1..4: steps 0..3 fall in four stages (c <= 1, 2, 3, 4),
    then every speed; 0 keeps the uniform draw of every speed from the first step."""
    from ponder.methods.train import train

    def drawn(curriculum):
        _, tr = train("colar", rs_dir / "train.jsonl", "tiny", tmp_path / f"cur{curriculum}", max_steps=8,
                      batch_size=4, logging_steps=1, save_steps=1000, max_compression=4,
                      speed_curriculum=curriculum)
        return [int(h["speed"]) for h in tr.state.log_history if "speed" in h]

    cur, flat = drawn(0.5), drawn(0.0)
    assert len(cur) == 8 and cur[0] == 1 and all(c <= k + 1 for k, c in enumerate(cur[:4]))
    assert max(flat[:4]) > 1  # the uniform draw reaches past c = 1 at once (fixed seed)
    with pytest.raises(PonderError, match="--speed-curriculum must be in"):
        from ponder.methods.colar import CoLaRConfig
        CoLaRConfig(output_dir="/tmp/x", speed_curriculum=1.5)


@pytest.mark.parametrize("option,value", [("latent_head", "paper"), ("latent_loss", "l1")])
def test_bad_latent_options_name_the_flag(option, value):
    from ponder.methods.colar import CoLaRConfig

    with pytest.raises(PonderError, match=f"--{option.replace('_', '-')} must be one of"):
        CoLaRConfig(output_dir="/tmp/x", **{option: value})


def test_max_latent_steps_is_respected(colar_dir, rs_dir):
    m = load_model(colar_dir[0])
    for n in (0, 1, 2):
        gens = Decoder(m, max_latent_steps=n).generate(_questions(rs_dir), speed=1)
        assert max(g.reasoning_length for g in gens) <= n


def test_untrained_model_stops_exactly_at_max_latent_steps(rs_records):
    m = tiny_model(rs_records["train"], method="colar")
    m.add_latent_head()
    m.settings.max_compression = 3
    gens = Decoder(m, max_latent_steps=5, max_new_tokens=3).generate([r.question for r in rs_records["test"][:3]], speed=3)
    assert [g.reasoning_length for g in gens] == [5, 5, 5]


def test_latent_head_runs_only_where_a_latent_may_follow(rs_records):
    # Prefill + each latent step may be followed by a latent; </think> and answer tokens never are, so a
    # latent step costs what a token step costs (benchmarks/colar_latency).
    m = tiny_model(rs_records["train"], method="colar")
    m.add_latent_head()
    m.settings.max_compression = 2
    calls = []
    m.latent_head.register_forward_hook(lambda *_: calls.append(1))
    gens = Decoder(m, max_latent_steps=4, max_new_tokens=3).generate([rs_records["test"][0].question], speed=2)
    assert gens[0].reasoning_length == 4 and len(gens[0].token_ids) == 3
    assert len(calls) == 1 + 4


def test_sampled_latents_are_reproducible_and_differ_from_the_mean(colar_dir, rs_dir):
    m = load_model(colar_dir[0])
    qs = _questions(rs_dir, 2)
    a = Decoder(m, latent_temperature=1.0, seed=1).generate(qs, speed=1)
    b = Decoder(m, latent_temperature=1.0, seed=1).generate(qs, speed=1)
    mean = Decoder(m).generate(qs, speed=1)
    assert all(torch.equal(x.latents, y.latents) for x, y in zip(a, b))
    assert not torch.equal(a[0].latents[:1], mean[0].latents[:1])


@pytest.mark.parametrize("bad", [0, 4, "fast", "-1"])
def test_wrong_speed_is_a_clear_error(colar_dir, bad):
    m = load_model(colar_dir[0])
    with pytest.raises(PonderError, match="--speed"):
        Decoder(m).generate(["1 2 3 4"], speed=bad)


def test_cli_wrong_speed_exits_2(colar_dir):
    proc = subprocess.run([sys.executable, "-m", "ponder.cli", "ask", "--model", str(colar_dir[0]), "--speed", "9", "1 2"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "--speed must be in 1..3" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_peek_and_eval_over_speeds(colar_dir, rs_dir, tmp_path):
    from ponder.cli import main

    main(["ask", "--model", str(colar_dir[0]), "--speed", "2", "--peek", "1 2 3 4"])
    main(["eval", "--model", str(colar_dir[0]), "--data", str(rs_dir), "--n", "8", "--speeds", "1,2,3",
          "--report", str(tmp_path / "r.json")])
    import json

    rows = json.loads((tmp_path / "r.json").read_text())["results"]
    assert [(r["method"], r["speed"]) for r in rows] == [("colar", 1), ("colar", 2), ("colar", 3)]
    assert all("compression_vs_cot" in r for r in rows)
