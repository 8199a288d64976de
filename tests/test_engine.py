"""The engine under continuous batching: rows that join or leave mid-way decode exactly as they do alone."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import tiny_model
from ponder.errors import PonderError
from ponder.inference.decode import Decoder
from ponder.inference.engine import Engine, Request
from ponder.model.io import load_model


def staggered(engine: Engine, requests: list[Request], gap: int = 3):
    """Submit one request every ``gap`` steps while the engine runs; -> the generations, in order."""
    done = {}
    rows = []
    for k, r in enumerate(requests):
        r.on_event = (lambda k: lambda e: done.__setitem__(k, e.generation) if e.kind == "done" else None)(k)
    pending = list(requests)
    while pending or engine.busy:
        if pending:
            rows.append(engine.submit(pending.pop(0)))
        for _ in range(gap):
            engine.step()
    return [done[k] for k in range(len(requests))]


@pytest.fixture(scope="module")
def cot(rs_records):
    return tiny_model(rs_records["train"], seed=4)


@pytest.fixture(scope="module")
def colar(colar_dir):
    return load_model(colar_dir[0]).eval()


def test_rows_joining_midway_decode_as_alone(cot, rs_records):
    qs = [r.question for r in rs_records["test"][:5]]
    qs = [q + " 1 2" * (i % 3) for i, q in enumerate(qs)]  # prompts of different lengths
    got = staggered(Engine(cot, max_batch=3), [Request(question=q, max_new_tokens=9) for q in qs])
    for q, g in zip(qs, got):
        alone = Decoder(cot, max_new_tokens=9).generate([q])[0]
        assert g.token_ids == alone.token_ids and g.text == alone.text
        assert g.main_passes == alone.main_passes


@pytest.mark.parametrize("speed", [1, 2])
def test_latent_rows_in_different_phases_share_passes_exactly(colar, speed):
    qs = ["3 4 5", "1 2", "7 7 1", "9", "2 8 6"]
    got = staggered(Engine(colar, max_batch=4), [Request(question=q, speed=speed, max_new_tokens=6) for q in qs], gap=1)
    alone = [Decoder(colar, max_new_tokens=6).generate([q], speed=speed)[0] for q in qs]
    assert any(g.reasoning_length > 0 for g in alone)
    for g, a in zip(got, alone):
        assert g.token_ids == a.token_ids and g.reasoning_length == a.reasoning_length
        if a.latents is not None:
            torch.testing.assert_close(g.latents, a.latents, atol=1e-5, rtol=0)


def test_cached_engine_equals_reencoding_with_joins(colar):
    reqs = lambda: [Request(question=q, speed=2, max_new_tokens=5) for q in ("3 4 5", "1", "6 2")]  # noqa: E731
    cached = staggered(Engine(colar, max_batch=2), reqs(), gap=2)
    uncached = staggered(Engine(colar, max_batch=2, use_cache=False), reqs(), gap=2)
    for a, b in zip(cached, uncached):
        assert a.token_ids == b.token_ids
        if a.latents is not None:
            torch.testing.assert_close(a.latents, b.latents, atol=1e-5, rtol=0)


def test_cancelled_row_leaves_and_the_others_go_on(cot, rs_records):
    engine = Engine(cot)
    q = rs_records["test"][0].question
    keep = engine.submit(Request(question=q, max_new_tokens=8))
    gone = engine.submit(Request(question=q + " 1", max_new_tokens=8))
    engine.step()
    engine.step()
    gone.cancel()
    engine.step()
    assert engine.running == 1
    while engine.busy:
        engine.step()
    assert engine.running == 0 and engine.cache is None
    assert keep.out == Decoder(cot, max_new_tokens=8).generate([q])[0].token_ids


def test_stop_string_cuts_the_answer(cot, rs_records):
    q = rs_records["test"][1].question
    free = Engine(cot).run([Request(question=q, max_new_tokens=12)])[0]
    answer = cot.tokenizer.decode(free.token_ids[free.token_ids.index(cot.settings.layout.think_ids(cot.tokenizer)[1]) + 1:]
                                  if cot.settings.layout.think_ids(cot.tokenizer)[1] in free.token_ids else [])
    words = answer.split()
    if not words:
        pytest.skip("this random model wrote no answer text")
    stopped = Engine(cot).run([Request(question=q, max_new_tokens=12, stop=[words[0]])])[0]
    assert stopped.stop == words[0] and stopped.finish_reason == "stop"
    assert words[0] not in stopped.answer


def test_tiny_top_p_is_greedy_and_seeds_are_per_row(cot, rs_records):
    qs = [r.question for r in rs_records["test"][:3]]
    greedy = Decoder(cot, max_new_tokens=8).generate(qs)
    nucleus = Decoder(cot, max_new_tokens=8, temperature=1.0, top_p=1e-6).generate(qs)
    assert [g.token_ids for g in nucleus] == [g.token_ids for g in greedy]
    alone = Engine(cot).run([Request(question=qs[0], max_new_tokens=8, temperature=1.0, seed=11)])[0]
    crowd = Engine(cot).run([Request(question=q, max_new_tokens=8, temperature=1.0, seed=11 if i == 0 else None)
                             for i, q in enumerate(qs)])[0]
    assert alone.token_ids == crowd.token_ids


def test_logprobs_are_the_models(cot, rs_records):
    q = rs_records["test"][2].question
    g = Engine(cot).run([Request(question=q, max_new_tokens=6, logprobs=True)])[0]
    assert len(g.token_logprobs) == len(g.token_ids)
    prompt = cot.settings.layout.generation_prompt(cot.tokenizer, q, 1, think=True)
    with torch.no_grad():
        logits = cot.lm(torch.tensor([prompt + g.token_ids])).logits[0, len(prompt) - 1:-1].float()
    ref = torch.log_softmax(logits, -1).gather(-1, torch.tensor(g.token_ids)[:, None])[:, 0]
    assert all(math.isclose(a, b, abs_tol=1e-4) for a, b in zip(g.token_logprobs, ref.tolist()))


def test_bad_requests_fail_at_submission(cot):
    engine = Engine(cot)
    for req, msg in [(Request(question="1", max_new_tokens=0), "--max-new-tokens"),
                     (Request(question="1", top_p=0.0), "--top-p"),
                     (Request(question="1", speed=3), "--speed"),
                     (Request(), "question or prompt_ids")]:
        with pytest.raises(PonderError, match=msg):
            engine.submit(req)
    assert not engine.busy


def test_seeds_average_runs_that_differ_only_in_their_seed(colar):
    from ponder.data.records import Record
    from ponder.evaluation.evaluate import evaluate

    records = [Record(q, [], a) for q, a in (("3 4 5", "2"), ("1 2", "3"), ("7 7 1", "5"), ("2 8", "0"))]
    kw = dict(speeds=[2], latent_temperature=1.0, sample_stop=True, temperature=1.0, top_p=0.9)
    both = evaluate(colar, records, seeds=2, seed=5, **kw)
    one, two = (evaluate(colar, records, seed=s, **kw)["results"][0] for s in (5, 6))
    row = both["results"][0]
    assert row["accuracy_per_seed"] == [one["accuracy"], two["accuracy"]] and row["seeds"] == 2
    assert row["mean_reasoning_length"] == (one["mean_reasoning_length"] + two["mean_reasoning_length"]) / 2
    assert both["settings"]["protocol"] == "latents at T=1.0, end of thinking sampled, answer T=1.0 top-p 0.9, 2 seeds"
    assert [p["seed"] for p in both["predictions"]] == [5] * 4 + [6] * 4
    with pytest.raises(PonderError, match="--seeds > 1 needs sampling"):
        evaluate(colar, records, seeds=2)


def test_sampled_end_of_thinking_varies_the_length_by_seed(colar):
    runs = [Decoder(colar, sample_stop=True, seed=s, max_new_tokens=4).generate(["3 4 5 6"] * 8, speed=1) for s in (0, 0, 1)]
    lengths = [[g.reasoning_length for g in run] for run in runs]
    assert lengths[0] == lengths[1] and len(set(lengths[0] + lengths[2])) > 1


def test_abort_drops_every_row_with_an_error_event_and_the_engine_serves_on(cot, rs_records):
    engine, events = Engine(cot, max_batch=1), []
    q = rs_records["test"][0].question
    for _ in range(2):  # one running, one waiting
        engine.submit(Request(question=q, max_new_tokens=8, on_event=events.append))
    engine.step()
    engine.abort(RuntimeError("boom"))
    assert not engine.busy and engine.cache is None
    assert [e.kind for e in events if e.kind == "error"] == ["error", "error"]
    assert engine.run([Request(question=q, max_new_tokens=8)])[0].token_ids == \
        Decoder(cot, max_new_tokens=8).generate([q])[0].token_ids
