"""Compiled decoding gives the eager decoder's tokens and latents: the whole-step loop over a static cache
(``inference/static.py``), which takes a batch submitted at once, and the compiled pass under the engine's
step, which takes the rest (sampling, exit policies, rows joining a running batch).

Rows finish at different steps (different prompt lengths and token budgets): the whole-step loop masks the
done ones in their slots, the engine's step drops them (the compiled pass sees the batch shrink).
"""

from __future__ import annotations

import copy

import pytest
import torch

from conftest import tiny_model
from ponder.inference.decode import Decoder
from ponder.inference.engine import Engine, Request
from ponder.model.io import load_model

QUESTIONS = ["3 4 5", "1 2", "7 7 1 9", "9", "2 8 6"]


def both(model):
    """(eager, compiled) twins sharing nothing: the compiled one is a deep copy, so eager stays eager."""
    twin = copy.deepcopy(model)
    twin.compile_decoding()
    return model, twin


def ragged(model, speed=None, **kw):
    """A batch whose rows stop at different steps: budgets 3..11 tokens. A compiled model decodes it with
    the whole-step loop (asserted), unless ``kw`` asks for what only the engine's step does."""
    reqs = [Request(question=q, speed=speed, max_new_tokens=3 + 2 * i, **kw) for i, q in enumerate(QUESTIONS)]
    engine = Engine(model, max_batch=len(reqs))
    got = engine.run(reqs)
    assert engine.static_runs == (model.decoding_mode == "compiled" and not kw)
    return got


def assert_same(eager, compiled):
    for e, c in zip(eager, compiled):
        assert c.token_ids == e.token_ids and c.reasoning_length == e.reasoning_length
        assert c.main_passes == e.main_passes
        if e.latents is not None:
            assert (c.latents - e.latents).abs().max() <= 1e-5


@pytest.fixture(scope="module")
def colar(colar_dir):
    return both(load_model(colar_dir[0]).eval())


def test_compiled_cot_equals_eager(rs_records):
    eager, compiled = both(tiny_model(rs_records["train"], seed=2))
    got = ragged(compiled)
    assert len({len(g.token_ids) for g in got}) > 1  # rows did finish at different steps
    assert_same(ragged(eager), got)
    assert compiled.decoding_mode == "compiled" and eager.decoding_mode == "eager"


@pytest.mark.parametrize("speed", [1, 2])
def test_compiled_colar_equals_eager(colar, speed):
    eager, compiled = colar
    want = ragged(eager, speed)
    assert any(g.reasoning_length > 0 for g in want)
    assert_same(want, ragged(compiled, speed))


def test_whole_step_loop_checking_done_every_k_steps_changes_nothing(colar):
    """check_every = 4 runs up to 3 masked steps after the last row is done: the outputs stay the same."""
    from ponder.inference import static

    eager, compiled = colar
    engine = Engine(compiled, max_batch=len(QUESTIONS))
    rows = [engine.submit(Request(question=q, speed=2, max_new_tokens=3 + 2 * i)) for i, q in enumerate(QUESTIONS)]
    engine.queue = []
    static.run(engine, rows, check_every=4)
    want = ragged(eager, 2)
    for r, w in zip(rows, want):
        assert r.out == w.token_ids and r.steps == w.reasoning_length and r.passes == w.main_passes


def test_whole_step_cache_grows_on_demand_and_changes_nothing(rs_records, monkeypatch):
    """The static cache starts at the prompt plus 32 columns and doubles when a row needs more: long CoT
    outputs (an untrained model rarely says <eos>) make it grow, with the eager decoder's tokens."""
    from ponder.inference import static

    eager, compiled = both(tiny_model(rs_records["train"], seed=2))
    grown, real = [], static.grow
    monkeypatch.setattr(static, "grow", lambda *a: grown.append(a[-1]) or real(*a))
    reqs = lambda: [Request(question=q, max_new_tokens=30 + 15 * i) for i, q in enumerate(QUESTIONS)]  # noqa: E731
    want = Engine(eager, max_batch=len(QUESTIONS)).run(reqs())
    assert max(len(g.token_ids) for g in want) > 40
    assert_same(want, Engine(compiled, max_batch=len(QUESTIONS)).run(reqs()))
    assert grown


@pytest.mark.parametrize("kw", [dict(temperature=0.7, seed=3), dict(stop=["9"]), dict(logprobs=True)])
def test_what_the_whole_step_loop_does_not_take_goes_through_the_compiled_step(colar, kw):
    """Sampling, stop strings and logprobs take the engine's step (with the compiled pass), same results."""
    eager, compiled = colar
    assert_same(ragged(eager, 2, **kw), ragged(compiled, 2, **kw))


@pytest.mark.parametrize("method", ["coconut", "codi"])
def test_compiled_continuous_thoughts_equal_eager(rs_records, method):
    """Coconut feeds the hidden state back; CODI projects it through its latent head (thought_input)."""
    model = tiny_model(rs_records["train"], seed=5, method=method)
    model.settings.num_thoughts = 3
    if method == "codi":
        model.add_latent_head()
        model.settings.embed_std = 0.7
    eager, compiled = both(model)
    assert_same(ragged(eager), ragged(compiled))


def test_compiled_body_is_not_used_for_training(rs_records):
    """Only decoding passes without gradients take the compiled pass; a pass with gradients (training) goes
    through the eager module, to the same logits and the same weights."""
    model = tiny_model(rs_records["train"], seed=1)
    model.compile_decoding()
    calls, compiled = [], model.__dict__["_compiled"]
    model.__dict__["_compiled"] = lambda **kw: calls.append(1) or compiled(**kw)
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        decoded = model(input_ids=ids, last_only=True).logits
    assert calls == [1]
    model.train()
    out = model(input_ids=ids, last_only=True)
    assert calls == [1]
    out.logits.sum().backward()
    assert all(p.grad is not None for p in model.lm.parameters() if p.requires_grad)
    assert torch.allclose(out.logits, decoded, atol=1e-5)
    assert not any("_compiled" in k or "_orig_mod" in k for k in model.state_dict())


def test_decoder_compile_flag(rs_records):
    model = tiny_model(rs_records["train"], seed=3)
    Decoder(model, max_new_tokens=2, compile=True)
    assert model.decoding_mode == "compiled"


def test_each_model_compiles_its_own_copy_of_the_code(rs_records):
    """Dynamo keeps graphs and its recompile limit per code object: two models must not share one, or a
    process decoding with several models falls back to eager (the pass) or fails (the fullgraph step)."""
    from ponder.inference import static

    a, b = (tiny_model(rs_records["train"], seed=s) for s in (1, 2))
    for m in (a, b):
        m.compile_decoding()
        static.compiled_step(m)
    for key in ("_compiled", "_static_step"):
        fa, fb = (m.__dict__[key]._torchdynamo_orig_callable for m in (a, b))
        assert fa.__code__ is not fb.__code__
    assert a.__dict__["_compiled"]._torchdynamo_orig_callable.__self__ is a
