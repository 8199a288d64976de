"""Exit policies (inference/exits.py) on a scripted model with hand-set probabilities (exact), on real
decoding (probes leave the main continuation unchanged; batched equals one-by-one), on a tiny Qwen3
reasoner end to end, and their bad input."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from transformers import DynamicCache

from conftest import tiny_model
from ponder.arguments import ExitConfig
from ponder.errors import PonderError
from ponder.inference.decode import Decoder
from ponder.model.io import PonderSettings, load_model
from ponder.model.tokenizer import build_tokenizer

WORDS = ["a", "b", "c", "d", "e", "f", "g", "h", "Wait", "Answer", "3", "4", "5", "6", "7", "maybe"]


class Scripted(torch.nn.Module):
    """A stand-in for a PonderModel whose next-token distribution is a function of the tokens it has seen.

    Token ids go through the "embedding" as one float each and are kept in a real DynamicCache as keys, so
    the decoder's cache handling (crop included) is exercised as with a transformer. ``thought(n)`` gives
    the n-th thinking token as (word, probability, runner-up word); ``answer(n)`` the answer a probe made
    after n thinking tokens reads, as (words, probability of each)."""

    def __init__(self, thought, answer, own_end: int = 40):
        super().__init__()
        texts = [" " + " ".join(WORDS)] * 50 + ["Question: Speed: Answer:"] * 50
        self.tokenizer = build_tokenizer(texts, vocab_size=400)
        self.settings = PonderSettings(method="cot")
        self.thought, self.answer, self.own_end = thought, answer, own_end
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        lay, tok = self.settings.layout, self.tokenizer
        self.start, self.end = lay.think_ids(tok)
        self.cue = lay._ids(tok, "Answer:")

    @property
    def device(self):
        return torch.device("cpu")

    def id(self, word):
        ids = self.tokenizer(" " + word, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1, word
        return ids[0]

    def embed(self, ids):
        return ids.float()[..., None]

    def forward(self, inputs_embeds=None, attention_mask=None, past_key_values=None, **kw):
        keys, _ = past_key_values.update(inputs_embeds[:, None], inputs_embeds[:, None], 0)
        V = len(self.tokenizer)
        logits = torch.full((keys.shape[0], 1, V), -math.inf)
        for b in range(keys.shape[0]):
            seen = keys[b, 0, :, 0][attention_mask[b].bool()].long().tolist()
            for token, p in self.next(seen):
                logits[b, 0, token] = math.log(p)
        return SimpleNamespace(logits=logits, hidden=None, latent_mean=None, latent_log_std=None)

    def next(self, seen):
        eos = self.tokenizer.eos_token_id
        think = seen[seen.index(self.start) + 1:]
        if self.end not in think:
            n = len(think)
            if n >= self.own_end:
                return [(self.end, 1.0)]
            word, p, other = self.thought(n)
            return [(self.id(word), p), (self.id(other), 1 - p)] if p < 1 else [(self.id(word), 1.0)]
        n = think.index(self.end)
        after = think[n + 1:]
        if len(after) < len(self.cue):  # "Answer:" after the end of thinking, whoever ended it
            return [(self.cue[len(after)], 1.0)]
        words, p = self.answer(n)
        written = after[len(self.cue):]
        if len(written) < len(words):
            rest = 1 - p
            return [(self.id(words[len(written)]), p)] + ([(self.id("maybe"), rest)] if rest > 0 else [])
        return [(eos, 1.0)]


def run(model, config, questions=("q",), max_new_tokens=60):
    return Decoder(model, max_new_tokens=max_new_tokens, exit=config).generate(list(questions))


def letters(n):
    return ("a", 1.0, "b")


def test_convergence_stops_exactly_after_patience_equal_answers():
    answers = {2: "3", 4: "5", 6: "5", 8: "5", 10: "5"}
    m = Scripted(letters, lambda n: ([answers.get(n, "7")], 1.0))
    g = run(m, ExitConfig(exit="convergence", probe_every=2, patience=3))[0]
    assert g.probe_answers == ["3", "5", "5", "5"] and g.exit_reason == "convergence"
    assert g.reasoning_length == 8 and g.answer == "5"
    # patience 4 needs one more equal answer: not before
    g = run(m, ExitConfig(exit="convergence", probe_every=2, patience=4))[0]
    assert g.probe_answers == ["3", "5", "5", "5", "5"] and g.reasoning_length == 10


def test_a_hedge_word_blocks_the_convergence_stop():
    m = Scripted(letters, lambda n: (["5", "maybe"], 1.0), own_end=12)
    g = run(m, ExitConfig(exit="convergence", probe_every=2, patience=2, hedges="maybe"))[0]
    assert g.exit_reason == "model" and g.reasoning_length == 12 and len(g.probe_answers) == 5
    g = run(m, ExitConfig(exit="convergence", probe_every=2, patience=2, hedges="hmm"))[0]
    assert g.exit_reason == "convergence" and g.reasoning_length == 4


def marked(n):
    """A thought of letters with "Wait" at 3, 6, 9, ...: the thought boundaries where DEER probes."""
    return ("Wait", 1.0, "b") if n % 3 == 0 and n else ("a", 1.0, "b")


def test_confidence_stops_at_the_first_probe_above_threshold():
    conf = {3: 0.5, 6: 0.9, 9: 0.97, 12: 0.99}
    m = Scripted(marked, lambda n: (["5", "6"], conf.get(n, 0.2)))
    g = run(m, ExitConfig(exit="confidence", threshold=0.95))[0]
    assert g.exit_reason == "confidence" and g.reasoning_length == 9 and len(g.probe_answers) == 3
    assert g.text.split("</think>")[0].count("Wait") == 2  # the third "Wait" was never written
    g = run(m, ExitConfig(exit="confidence", threshold=0.95, max_probes=2))[0]
    assert g.exit_reason == "model" and len(g.probe_answers) == 2 and g.reasoning_length == 40


def test_budget_never_exceeds_n_thinking_tokens():
    m = Scripted(letters, lambda n: (["5"], 1.0), own_end=20)
    for n in (0, 1, 7):
        g = run(m, ExitConfig(exit="budget", budget=n))[0]
        assert g.reasoning_length == n and g.exit_reason == "budget" and g.answer == "5" and g.probe_tokens == 0
    g = run(m, ExitConfig(exit="budget", budget=30))[0]
    assert g.reasoning_length == 20 and g.exit_reason == "model"
    g = run(m, ExitConfig(exit="budget", budget=30, wait=1))[0]  # s1: its own end becomes "Wait" once
    assert g.reasoning_length > 20 and " Wait" in g.text.split("</think>")[0]


def test_nowait_never_emits_a_suppressed_token():
    m = Scripted(lambda n: ("Wait", 0.9, "c") if n % 2 else ("a", 1.0, "b"), lambda n: (["5"], 1.0), own_end=10)
    assert "Wait" in run(m, None)[0].text
    g = run(m, ExitConfig(exit="nowait"))[0]
    assert "Wait" not in g.text and g.text.split("</think>")[0].count("c") == 5


def test_trim_stops_after_m_agreeing_thoughts_and_guards_underthinking():
    answers = {3: "4", 6: "5", 9: "5", 12: "5", 15: "5"}
    m = Scripted(marked, lambda n: ([answers.get(n, "7")], 1.0))
    g = run(m, ExitConfig(exit="trim", agree=2))[0]
    assert g.probe_answers == ["4", "5", "5", "5"] and g.exit_reason == "trim" and g.reasoning_length == 12
    m = Scripted(marked, lambda n: ([str(3 + n % 5)], 1.0))  # never agrees
    g = run(m, ExitConfig(exit="trim", agree=2, budget=12, max_thoughts=2))[0]
    assert g.exit_reason == "guard" and g.reasoning_length == 9  # past 6 tokens and more than 2 thoughts


def test_policies_keep_rows_independent():
    """Two rows exit at different steps in one batch exactly as each does alone."""
    answers = {2: "3", 4: "5", 6: "5", 8: "5"}
    m = Scripted(letters, lambda n: ([answers.get(n, "7")], 1.0))
    cfg = ExitConfig(exit="convergence", probe_every=2, patience=2)
    alone = run(m, cfg)[0]
    b = Decoder(m, max_new_tokens=60, exit=cfg).generate(["q", "a longer question"])
    assert [g.token_ids for g in b] == [alone.token_ids, alone.token_ids]


# -- real decoding ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cot(rs_records):
    return tiny_model(rs_records["train"], seed=1)


def questions(rs_records):
    return [r.question for r in rs_records["test"][:6]]


def test_probes_leave_the_main_continuation_unchanged(cot, rs_records):
    qs = questions(rs_records)
    plain = Decoder(cot, max_new_tokens=24).generate(qs)
    never = Decoder(cot, max_new_tokens=24, exit=ExitConfig(exit="convergence", probe_every=3, patience=10**6)).generate(qs)
    assert [g.token_ids for g in never] == [g.token_ids for g in plain]
    assert all(g.probe_tokens > 0 for g in never)  # the probes did run
    uncached = Decoder(cot, max_new_tokens=24, use_cache=False,
                       exit=ExitConfig(exit="convergence", probe_every=3, patience=10**6)).generate(qs)
    assert [g.token_ids for g in uncached] == [g.token_ids for g in plain]


@pytest.mark.parametrize("config", [ExitConfig(exit="budget", budget=3), ExitConfig(exit="convergence", probe_every=2,
                                                                                    patience=2)])
def test_batched_equals_one_by_one_with_policies(cot, rs_records, config):
    qs = questions(rs_records)
    dec = Decoder(cot, max_new_tokens=24, exit=config)
    batched = dec.generate(qs)
    alone = [dec.generate([q])[0] for q in qs]
    assert [g.token_ids for g in batched] == [g.token_ids for g in alone]
    assert [g.probe_answers for g in batched] == [g.probe_answers for g in alone]


@pytest.mark.parametrize("policy", ["none", "budget", "convergence", "confidence", "trim", "nowait"])
def test_qwen3_reasoner_runs_every_policy(reasoner_dir, policy):
    model = load_model(reasoner_dir, chat_template=None, reasoner=True)
    cfg = ExitConfig(exit=policy, budget=4 if policy == "budget" else None, probe_every=2, markers="a,e,i")
    gens = Decoder(model, max_new_tokens=10, exit=cfg).generate(["3 4", "5 6 7"])
    assert len(gens) == 2 and all(len(g.token_ids) <= 10 for g in gens)
    if policy == "budget":
        assert all(g.reasoning_length <= 4 for g in gens)
    if policy in ("convergence", "confidence", "trim"):
        assert all(g.main_passes > 0 for g in gens)


def test_bad_exit_configs_are_one_clear_line(colar_dir):
    with pytest.raises(PonderError, match="--exit must be one of"):
        ExitConfig(exit="early")
    with pytest.raises(PonderError, match="--budget must be >= 0"):
        ExitConfig(exit="budget", budget=-1)
    with pytest.raises(PonderError, match="needs --budget"):
        ExitConfig(exit="budget")
    for t in (0, 1.5):
        with pytest.raises(PonderError, match=r"--threshold must be in \(0, 1\]"):
            ExitConfig(exit="confidence", threshold=t)
    with pytest.raises(PonderError, match="latent vectors.*--speed"):
        Decoder(load_model(colar_dir[0]), exit=ExitConfig(exit="convergence"))
