"""The shared decoder: exact against transformers' generate, batched == one-by-one, cache == no cache."""

from __future__ import annotations

import torch

from conftest import tiny_model
from ponder.inference.decode import Decoder


def _questions(rs_records, n=6):
    # Different lengths, so left padding really happens.
    qs = [r.question for r in rs_records["test"][:n]]
    return [q if i % 2 else q + " 1 2" for i, q in enumerate(qs)]


def test_greedy_tokens_equal_transformers_generate(rs_records):
    model = tiny_model(rs_records["train"])
    tok, lay = model.tokenizer, model.settings.layout
    qs = _questions(rs_records)
    ours = Decoder(model, max_new_tokens=12).generate(qs, speed=1)
    prompts = [lay.generation_prompt(tok, q, 1, think=True) for q in qs]
    T = max(map(len, prompts))
    ids = torch.tensor([[tok.pad_token_id] * (T - len(p)) + p for p in prompts])
    mask = (torch.arange(T)[None, :] >= torch.tensor([T - len(p) for p in prompts])[:, None]).long()
    ref = model.lm.generate(input_ids=ids, attention_mask=mask, max_new_tokens=12, do_sample=False,
                            eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)[:, T:].tolist()
    for g, r in zip(ours, ref):
        r = r[: r.index(tok.eos_token_id)] if tok.eos_token_id in r else r
        assert g.token_ids == r


def test_batched_equals_one_by_one_with_left_padding(rs_records):
    model = tiny_model(rs_records["train"], seed=1)
    qs = _questions(rs_records)
    batched = Decoder(model, max_new_tokens=10).generate(qs, speed=1)
    for q, b in zip(qs, batched):
        single = Decoder(model, max_new_tokens=10).generate([q], speed=1)[0]
        assert single.token_ids == b.token_ids
        assert single.text == b.text


def test_cache_equals_reencoding_the_prefix(rs_records):
    model = tiny_model(rs_records["train"], seed=2)
    qs = _questions(rs_records, 3)
    cached = Decoder(model, max_new_tokens=8).generate(qs, speed=1)
    uncached = Decoder(model, max_new_tokens=8, use_cache=False).generate(qs, speed=1)
    assert [g.token_ids for g in cached] == [g.token_ids for g in uncached]


def test_sampling_is_reproducible_by_seed(rs_records):
    model = tiny_model(rs_records["train"], seed=3)
    qs = _questions(rs_records, 4)
    a = Decoder(model, max_new_tokens=8, temperature=1.0, seed=7).generate(qs, speed=1)
    b = Decoder(model, max_new_tokens=8, temperature=1.0, seed=7).generate(qs, speed=1)
    c = Decoder(model, max_new_tokens=8, temperature=1.0, seed=8).generate(qs, speed=1)
    assert [g.token_ids for g in a] == [g.token_ids for g in b]
    assert [g.token_ids for g in a] != [g.token_ids for g in c]


def test_nocot_prompt_skips_reasoning(rs_records):
    model = tiny_model(rs_records["train"], method="nocot")
    g = Decoder(model, max_new_tokens=5).generate([rs_records["test"][0].question])[0]
    assert g.reasoning_length == 0 and g.speed is None
