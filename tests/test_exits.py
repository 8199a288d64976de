"""Exit policies (inference/exits.py): exact on a scripted model with hand-set probabilities, exact on real
decoding (probes leave the main continuation unchanged; batched equals one-by-one while rows probe and exit
at different steps), end to end on a tiny Qwen3 reasoner, and their bad input as one-line errors."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from conftest import tiny_model
from ponder.arguments import ExitConfig
from ponder.errors import PonderError
from ponder.inference.decode import Decoder
from ponder.inference.exits import load_verifier
from ponder.model.io import PonderSettings
from ponder.model.tokenizer import build_tokenizer

WORDS = ["a", "b", "c", "d", "Wait", "3", "4", "5", "6", "7", "maybe", "hmm"]


class Scripted(torch.nn.Module):
    """A stand-in for a PonderModel whose next-token distribution is a function of the tokens it has seen.

    Token ids enter the "embedding" as one float each and are kept as keys of a real ``DynamicCache``, so the
    decoder's cache handling (probes' crop included) and attention mask work as with a transformer: the
    tokens a row has seen are its unmasked keys. The n-th thinking token is ``thought(n)`` = (word,
    probability, runner-up); after ``own_end`` thinking tokens the model ends its thinking itself. After an
    end of thinking (its own, forced or a probe's) it writes the cue "Answer:", then ``answer(n)`` = (words,
    probability of each) for a thinking of n tokens, then <eos>."""

    def __init__(self, thought, answer, own_end: int = 40):
        super().__init__()
        self.tokenizer = build_tokenizer([" " + " ".join(WORDS)] * 50 + ["Question: Speed: Answer:"] * 50, 300)
        self.settings = PonderSettings(method="cot")
        self.thought, self.answer, self.own_end = thought, answer, own_end
        self.start, self.end = self.settings.layout.think_ids(self.tokenizer)
        self.cue = self.settings.layout._ids(self.tokenizer, "Answer:")
        self.calls = 0

    @property
    def device(self):
        return torch.device("cpu")

    def id(self, word):
        ids = self.tokenizer(word if word == "\n" else " " + word, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1, word
        return ids[0]

    def embed(self, ids):
        return ids.float()[..., None]

    def get_input_embeddings(self):  # no position table: positions are unbounded, like a rotary model's
        return None

    def forward(self, inputs_embeds=None, attention_mask=None, past_key_values=None, **kw):
        self.calls += 1
        keys, _ = past_key_values.update(inputs_embeds[:, None], inputs_embeds[:, None], 0)
        logits = torch.full((keys.shape[0], 1, len(self.tokenizer)), -math.inf)
        for b in range(keys.shape[0]):
            seen = keys[b, 0, :, 0][attention_mask[b].bool()].long().tolist()
            for token, p in self.next(seen):
                logits[b, 0, token] = math.log(p)
        return SimpleNamespace(logits=logits, hidden=None, latent_mean=None, latent_log_std=None)

    def next(self, seen):
        think = seen[seen.index(self.start) + 1:]
        if self.end not in think:
            n = len(think)
            if n >= self.own_end:
                return [(self.end, 1.0)]
            word, p, other = self.thought(n)
            return [(self.id(word), p)] + ([(self.id(other), 1 - p)] if p < 1 else [])
        n = think.index(self.end)
        after = think[n + 1:]
        if len(after) < len(self.cue):
            return [(self.cue[len(after)], 1.0)]
        words, p = self.answer(n)
        probs = p if isinstance(p, list) else [p] * len(words)
        written = len(after) - len(self.cue)
        if written < len(words):
            q = probs[written]
            return [(self.id(words[written]), q)] + ([(self.id("d"), 1 - q)] if q < 1 else [])
        return [(self.tokenizer.eos_token_id, 1.0)]


def run(model, config, questions=("q",), max_new_tokens=60):
    return Decoder(model, max_new_tokens=max_new_tokens, exit=config).generate(list(questions))


def letters(n):
    return ("a", 1.0, "b")


def marked(n):
    """Thoughts of letters with "Wait" at 3, 6, 9, ...: the thought boundaries of DEER and TrimR."""
    return ("Wait", 1.0, "b") if n % 3 == 0 and n else ("a", 1.0, "b")


def thinking_text(g):
    return g.text.split("</think>")[0]


# -- convergence (Dynasor-CoT) -------------------------------------------------------------------------------
def test_convergence_stops_exactly_after_patience_equal_answers():
    answers = {2: "3", 4: "5", 6: "5", 8: "5", 10: "5"}
    m = Scripted(letters, lambda n: ([answers.get(n, "7")], 1.0))
    g = run(m, ExitConfig(exit="convergence", probe_every=2, patience=3))[0]
    assert g.probe_answers == ["3", "5", "5", "5"] and g.exit_reason == "convergence" and g.exit_probe == 3
    assert g.thinking_tokens == g.reasoning_length == 8 and g.answer == "5"
    # the accounting: each probe feeds </think> + "Answer:" and decodes the answer and <eos>, one pass each
    cue = 1 + len(m.cue)
    assert (g.probe_tokens, g.probe_passes) == (4 * (cue + 2), 4 * 2)
    assert g.main_passes == 1 + len(g.token_ids) and 0 < g.latency_s <= g.wall_s
    # patience 4 needs one more equal answer: not before
    g = run(m, ExitConfig(exit="convergence", probe_every=2, patience=4))[0]
    assert g.probe_answers == ["3", "5", "5", "5", "5"] and g.reasoning_length == 10
    # equal but empty answers never settle it
    g = run(Scripted(letters, lambda n: ([], 1.0), own_end=12), ExitConfig(exit="convergence", probe_every=2,
                                                                          patience=2))[0]
    assert g.probe_answers == [""] * 5 and g.exit_reason == "model" and g.reasoning_length == 12


def test_a_hedge_word_blocks_the_convergence_stop():
    # at 4 thinking tokens the probe answers "5", then hedges on the next line
    m = Scripted(letters, lambda n: (["5", "\n", "hmm"] if n == 4 else ["5"], 1.0), own_end=12)
    g = run(m, ExitConfig(exit="convergence", probe_every=2, patience=2))[0]  # the default hedges hold "hmm"
    assert g.probe_answers == ["5", "5", "5", "5"] and g.reasoning_length == 8  # not at 4, nor at 6
    assert g.exit_reason == "convergence" and g.exit_probe == 3
    g = run(m, ExitConfig(exit="convergence", probe_every=2, patience=2, hedges="okay"))[0]
    assert g.reasoning_length == 4
    # a hedge in every probe: it never stops
    m = Scripted(letters, lambda n: (["5", "maybe"], 1.0), own_end=12)
    g = run(m, ExitConfig(exit="convergence", probe_every=2, patience=2, hedges="maybe"))[0]
    assert g.exit_reason == "model" and g.reasoning_length == 12 and len(g.probe_answers) == 5
    # whole words only: "may" is not in "maybe"
    g = run(m, ExitConfig(exit="convergence", probe_every=2, patience=2, hedges="may"))[0]
    assert g.exit_reason == "convergence" and g.reasoning_length == 4


# -- confidence (DEER) ---------------------------------------------------------------------------------------
def test_confidence_stops_at_the_first_probe_above_threshold():
    conf = {3: 0.5, 6: 0.9, 9: 0.97, 12: 0.99}
    m = Scripted(marked, lambda n: (["5", "6"], conf.get(n, 0.2)))
    g = run(m, ExitConfig(exit="confidence", threshold=0.95))[0]
    assert g.exit_reason == "confidence" and g.reasoning_length == 9 and g.exit_probe == 2
    assert g.probe_confidences == pytest.approx([0.5, 0.9, 0.97])
    assert thinking_text(g).count("Wait") == 2  # the third "Wait" was never written
    g = run(m, ExitConfig(exit="confidence", threshold=0.89))[0]
    assert g.reasoning_length == 6 and g.exit_probe == 1  # a lower threshold: the second probe
    g = run(m, ExitConfig(exit="confidence", threshold=0.95, max_probes=2))[0]
    assert g.exit_reason == "model" and len(g.probe_answers) == 2 and g.reasoning_length == 40


def test_confidence_is_the_mean_after_the_first_answer_token():
    # a doubtful first token (0.3), then sure ones: DEER's confidence ignores the first
    m = Scripted(marked, lambda n: (["5", "6", "7"], [0.3, 1.0, 0.96] if n == 6 else [1.0, 0.5, 0.5]))
    g = run(m, ExitConfig(exit="confidence", threshold=0.95))[0]
    assert g.probe_confidences == pytest.approx([0.5, 0.98]) and g.reasoning_length == 6
    one = run(Scripted(marked, lambda n: (["5"], 0.96 if n == 6 else 0.55)), ExitConfig(exit="confidence"))[0]
    assert one.probe_confidences == pytest.approx([0.55, 0.96]) and one.reasoning_length == 6


# -- budget (s1) ------------------------------------------------------------------------------------------------
def test_budget_never_exceeds_n_thinking_tokens():
    m = Scripted(letters, lambda n: (["5"], 1.0), own_end=20)
    for n in (0, 1, 7, 19):
        g = run(m, ExitConfig(exit="budget", budget=n))[0]
        assert g.reasoning_length == n and g.exit_reason == "budget" and g.answer == "5"
        assert g.probe_tokens == g.probe_passes == 0
    g = run(m, ExitConfig(exit="budget", budget=0))[0]
    assert g.text.startswith("</think>Answer:") and g.thinking_tokens == 0
    for n in (20, 30):
        g = run(m, ExitConfig(exit="budget", budget=n))[0]
        assert g.reasoning_length == 20 and g.exit_reason == "model"


def test_budget_wait_extends_the_thinking_s1_style():
    m = Scripted(letters, lambda n: (["5"], 1.0), own_end=20)
    g = run(m, ExitConfig(exit="budget", budget=30, wait=1))[0]  # its own end becomes " Wait", once
    assert g.reasoning_length == 21 and thinking_text(g).endswith(" Wait") and g.exit_reason == "model"
    g = run(m, ExitConfig(exit="budget", budget=30, wait=3))[0]  # each " Wait" is one more thinking token here
    assert g.reasoning_length == 23 and thinking_text(g).count("Wait") == 3
    g = run(m, ExitConfig(exit="budget", budget=22, wait=5))[0]  # the budget still caps it
    assert g.reasoning_length == 22 and thinking_text(g).count("Wait") == 2


# -- nowait -------------------------------------------------------------------------------------------------------
def test_nowait_never_emits_a_suppressed_token():
    thought = lambda n: ("Wait", 0.9, "c") if n % 2 else ("a", 1.0, "b")  # noqa: E731
    m = Scripted(thought, lambda n: (["5"], 1.0), own_end=10)
    assert thinking_text(run(m, None)[0]).count("Wait") == 5
    g = run(m, ExitConfig(exit="nowait"))[0]
    assert "Wait" not in g.text and thinking_text(g).count("c") == 5 and g.reasoning_length == 10
    assert m.id("Wait") not in g.token_ids and g.answer == "5"
    g = run(m, ExitConfig(exit="nowait", suppress="hmm"))[0]  # only the words listed
    assert thinking_text(g).count("Wait") == 5
    assert run(m, "nowait")[0].token_ids == run(m, ExitConfig(exit="nowait"))[0].token_ids  # a name will do


# -- trim (TrimR) -------------------------------------------------------------------------------------------------
def test_trim_stops_after_m_agreeing_thoughts():
    answers = {3: "4", 6: "5", 9: "5", 12: "5", 15: "5"}  # then 7, 6, 7, 6, ...
    m = Scripted(marked, lambda n: ([answers.get(n, "6" if n % 2 else "7")], 1.0))
    g = run(m, ExitConfig(exit="trim", agree=2))[0]
    assert g.probe_answers == ["4", "5", "5", "5"] and g.exit_reason == "trim" and g.reasoning_length == 12
    assert g.exit_probe == 3 and thinking_text(g).count("Wait") == 3
    g = run(m, ExitConfig(exit="trim", agree=1))[0]
    assert g.probe_answers == ["4", "5", "5"] and g.reasoning_length == 9
    g = run(m, ExitConfig(exit="trim", agree=4))[0]  # 5 agrees only 3 times in a row: never
    assert g.exit_reason == "model" and g.reasoning_length == 40


def test_trim_under_thinking_guard():
    m = Scripted(marked, lambda n: ([str(3 + n % 5)], 1.0))  # answers 6, 4, 7, 5, ...: never two alike in a row
    g = run(m, ExitConfig(exit="trim", agree=2, budget=12, max_thoughts=2))[0]
    assert g.exit_reason == "trim-guard" and g.reasoning_length == 9  # past 6 tokens with 3 > 2 thoughts
    g = run(m, ExitConfig(exit="trim", agree=2, budget=40, max_thoughts=2))[0]
    assert g.exit_reason == "trim-guard" and g.reasoning_length == 21  # the first boundary past 20 tokens
    g = run(m, ExitConfig(exit="trim", agree=2, budget=12, max_thoughts=20))[0]
    assert g.exit_reason == "model"


def test_scripted_rows_probe_and_exit_independently():
    """Rows whose thinking differs probe and exit at different steps in one batch, exactly as each alone."""
    answers = {2: "3", 4: "5", 6: "5", 8: "5"}
    m = Scripted(letters, lambda n: ([answers.get(n, "7")], 1.0))
    cfg = ExitConfig(exit="convergence", probe_every=2, patience=2)
    alone = run(m, cfg)[0]
    short = Scripted(letters, lambda n: ([answers.get(n, "7")], 1.0), own_end=5)
    batch = run(m, cfg, ["q", "a longer question"])
    assert [g.token_ids for g in batch] == [alone.token_ids] * 2
    assert [g.probe_answers for g in batch] == [alone.probe_answers] * 2
    assert run(short, cfg)[0].exit_reason == "model"


# -- real decoding ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cot(rs_records):
    """A tiny untrained CoT transformer made chaotic: a random untied output layer, so that rows write different
    tokens, probe different answers and exit at different steps (an untrained tied model repeats one token).
    Exactness needs no training, and a chaotic model turns any slip of the cache or the mask into other tokens."""
    model = tiny_model(rs_records["train"], seed=1)
    head = model.lm.get_output_embeddings()
    head.weight = torch.nn.Parameter(torch.randn(head.weight.shape, generator=torch.Generator().manual_seed(0)) * 0.5)
    return model


def questions(rs_records, n=6):
    qs = [r.question for r in rs_records["test"][:n]]
    return [q if i % 2 else q + " 1 2" for i, q in enumerate(qs)]  # different lengths: left padding happens


def frequent_markers(model, gens, k=4):
    """Markers that rows meet at different steps: the texts of a few tokens the plain decoding writes."""
    texts = [model.tokenizer.decode([t]) for g in gens for t in g.token_ids]
    texts = [t for t in texts if t.strip() and "," not in t and "\\" not in t]
    return ",".join(sorted(set(texts), key=lambda t: (-texts.count(t), t))[:k])


def test_none_is_todays_decoder(cot, rs_records):
    qs = questions(rs_records)
    dec = Decoder(cot, max_new_tokens=16, exit=ExitConfig())
    assert dec.controller is None
    plain = Decoder(cot, max_new_tokens=16).generate(qs)
    assert [g.token_ids for g in dec.generate(qs)] == [g.token_ids for g in plain]
    assert all(g.exit_reason in ("model", "length") and g.probe_tokens == 0 for g in plain)
    assert all(g.main_passes == len(g.token_ids) + g.ended for g in plain)


@pytest.mark.parametrize("use_cache", [True, False])
def test_probes_leave_the_main_continuation_unchanged(cot, rs_records, use_cache):
    """Policies that probe all along but can never fire decode exactly what ``none`` decodes."""
    qs = questions(rs_records)
    plain = Decoder(cot, max_new_tokens=20).generate(qs)
    never = [ExitConfig(exit="convergence", probe_every=2, patience=10**6, probe_tokens=3),
             ExitConfig(exit="trim", markers=frequent_markers(cot, plain), agree=10**6, max_thoughts=10**6,
                        probe_tokens=3)]
    for cfg in never:
        gens = Decoder(cot, max_new_tokens=20, exit=cfg, use_cache=use_cache).generate(qs)
        assert [g.token_ids for g in gens] == [g.token_ids for g in plain]
        assert sum(len(g.probe_answers) for g in gens) > 10 and all(g.exit_reason == "length" for g in gens)
        assert [g.main_passes for g in gens] == [g.main_passes for g in plain]


def test_a_probe_reads_what_a_forced_exit_writes(cot, rs_records):
    """Greedy, a probe's answer is the answer the row writes when the policy exits there: same cache, same cue."""
    qs = questions(rs_records)
    cue = 1 + len(cot.settings.layout._ids(cot.tokenizer, "Answer:"))
    cfg = ExitConfig(exit="convergence", probe_every=3, patience=1, hedges="", probe_tokens=8)
    gens = Decoder(cot, max_new_tokens=3 + cue + 8, exit=cfg).generate(qs)  # the answer: as long as a probe
    assert all(g.exit_reason == "convergence" and g.thinking_tokens == 3 and g.probe_answers[0] for g in gens)
    first_line = lambda t: next(line.strip() for line in t.splitlines() if line.strip())  # noqa: E731
    assert [first_line(g.answer) for g in gens] == [g.probe_answers[-1] for g in gens]
    # and the probe's confidence is the one transformers' greedy generate gives on the same tokens, alone
    tok, lay = cot.tokenizer, cot.settings.layout
    for q, g in zip(qs, gens):
        ids = lay.generation_prompt(tok, q, 1, think=True) + g.token_ids[:3 + cue]
        ref = cot.lm.generate(torch.tensor([ids]), max_new_tokens=8, do_sample=False, output_scores=True,
                              return_dict_in_generate=True, pad_token_id=tok.pad_token_id)
        new = ref.sequences[0, len(ids):].tolist()
        probs = [float(torch.softmax(x[0].float(), -1).max()) for x in ref.scores][: new.index(tok.eos_token_id)
                                                                                    if tok.eos_token_id in new else 8]
        assert g.probe_confidences == [pytest.approx(sum(probs[1:]) / len(probs[1:]), abs=1e-5)]


@pytest.mark.parametrize("policy", ["convergence", "confidence", "trim", "budget"])
def test_batched_equals_one_by_one_with_policies(cot, rs_records, policy):
    """Rows probe and exit at different steps, a subset of the batch at a time, as each alone."""
    qs = questions(rs_records)
    markers = frequent_markers(cot, Decoder(cot, max_new_tokens=24).generate(qs))
    config = {"convergence": ExitConfig(exit="convergence", probe_every=2, patience=2, hedges="", probe_tokens=4),
              "confidence": ExitConfig(exit="confidence", markers=markers, threshold=0.85, probe_tokens=4),
              "trim": ExitConfig(exit="trim", markers=markers, agree=1, probe_tokens=4),
              "budget": ExitConfig(exit="budget", budget=3)}[policy]
    dec = Decoder(cot, max_new_tokens=24, exit=config)
    batched = dec.generate(qs)
    alone = [dec.generate([q])[0] for q in qs]
    for b, a in zip(batched, alone):
        assert (b.token_ids, b.probe_answers, b.exit_reason) == (a.token_ids, a.probe_answers, a.exit_reason)
        assert (b.probe_tokens, b.probe_passes, b.main_passes) == (a.probe_tokens, a.probe_passes, a.main_passes)
        assert b.probe_confidences == pytest.approx(a.probe_confidences, abs=1e-5)
    if policy != "budget":  # the point: rows that exit at different steps
        assert len({(g.exit_reason, g.thinking_tokens) for g in batched}) > 1


# -- a Hugging Face reasoner (tiny random Qwen3 with a chat template) --------------------------------------------
@pytest.mark.parametrize("policy", ["none", "budget", "budget0", "convergence", "confidence", "trim", "nowait"])
def test_qwen3_reasoner_runs_every_policy(qwen3, policy):
    qs, tok = ["3 4", "5 6 7"], qwen3.tokenizer
    plain = Decoder(qwen3, max_new_tokens=24).generate(qs)
    words = frequent_markers(qwen3, plain)
    config = {"none": ExitConfig(), "budget": ExitConfig(exit="budget", budget=4),
              "budget0": ExitConfig(exit="budget", budget=0),
              "convergence": ExitConfig(exit="convergence", probe_every=2, patience=2, probe_tokens=6),
              "confidence": ExitConfig(exit="confidence", markers=words, max_probes=4, probe_tokens=6),
              "trim": ExitConfig(exit="trim", markers=words, agree=1, probe_tokens=6),
              "nowait": ExitConfig(exit="nowait", suppress=words)}[policy]
    gens = Decoder(qwen3, max_new_tokens=24, exit=config).generate(qs)
    for g in gens:
        assert len(g.token_ids) <= 24 and g.main_passes == len(g.token_ids) + g.ended
        assert g.exit_reason in ("model", "length", "eos", config.exit, "trim-guard")
        assert g.probe_tokens >= g.probe_passes >= len(g.probe_answers)  # a probe: >= 1 pass, cue + answer tokens
        if g.exit_reason == config.exit:  # a forced exit writes </think> and the reasoner's cue
            assert g.text[len(thinking_text(g)):].startswith("</think>Final Answer:")
    if config.exit == "budget":
        assert all(g.thinking_tokens <= config.budget for g in gens)
        assert any(g.exit_reason == "budget" and g.thinking_tokens == config.budget for g in gens)
    if config.exit in ("convergence", "confidence", "trim"):
        assert all(g.probe_answers and g.probe_passes > 0 for g in gens)
    if config.exit == "nowait":  # the words were written without it, never with it
        said = lambda gens: [tok.decode([t]) for g in gens for t in g.token_ids]  # noqa: E731
        assert set(words.split(",")) & set(said(plain)) and not set(words.split(",")) & set(said(gens))
    if config.exit == "none":
        assert [g.token_ids for g in gens] == [g.token_ids for g in plain]


def test_trim_with_another_model_as_verifier(qwen3, reasoner_dir):
    qs = ["3 4", "5 6 7"]
    markers = frequent_markers(qwen3, Decoder(qwen3, max_new_tokens=24).generate(qs))
    cfg = ExitConfig(exit="trim", markers=markers, agree=1, verifier=str(reasoner_dir), probe_tokens=6)
    gens = Decoder(qwen3, max_new_tokens=24, exit=cfg).generate(qs)
    assert all(g.probe_answers and g.probe_tokens > g.probe_passes > 0 for g in gens)
    # the verifier reads a batch exactly as one by one, and as transformers' greedy generate
    v = load_verifier(str(reasoner_dir), "cpu")
    qs, thoughts = ["3 4", "5 6 7 8 9"], ["Let me add", "That is 7. Wait, check: 3 + 4"]
    batch = v.ask(qs, thoughts, cfg)
    alone = [v.ask([q], [t], cfg)[0] for q, t in zip(qs, thoughts)]
    assert [p.text for p in batch] == [p.text for p in alone] and [p.tokens for p in batch] == [p.tokens for p in alone]
    assert [p.probs for p in batch] == [pytest.approx(p.probs, abs=1e-5) for p in alone]
    m, tok, lay = v.model, v.model.tokenizer, v.model.settings.layout
    prompt = lay.generation_prompt(tok, qs[1], 1, think=True) + lay._ids(tok, thoughts[1]) + \
        [lay.think_ids(tok)[1]] + lay._ids(tok, "Final Answer:")
    ref = m.lm.generate(torch.tensor([prompt]), max_new_tokens=cfg.probe_tokens, do_sample=False, output_scores=True,
                        return_dict_in_generate=True, pad_token_id=tok.pad_token_id)
    ref_probs = [float(torch.softmax(x[0].float(), -1).max()) for x in ref.scores]
    assert len(batch[1].probs) == cfg.probe_tokens - (tok.eos_token_id in ref.sequences[0, len(prompt):].tolist())
    assert batch[1].probs == pytest.approx(ref_probs[: len(batch[1].probs)], abs=1e-5)
    assert batch[1].text == tok.decode(ref.sequences[0, len(prompt):len(prompt) + len(batch[1].probs)],
                                       skip_special_tokens=True)


# -- bad input ------------------------------------------------------------------------------------------------------
def test_bad_exit_configs_are_one_clear_line():
    cases = [(dict(exit="early"), "--exit must be one of none, budget"),
             (dict(exit="budget", budget=-1), "--budget must be >= 0, got -1"),
             (dict(exit="budget"), "--exit budget needs --budget N"),
             (dict(exit="confidence", threshold=0), r"--threshold must be in \(0, 1\], got 0"),
             (dict(exit="confidence", threshold=1.5), r"--threshold must be in \(0, 1\], got 1.5"),
             (dict(exit="convergence", patience=0), "--patience must be >= 1"),
             (dict(exit="convergence", verifier="x"), "--verifier is for --exit trim"),
             (dict(exit="confidence", markers=","), "needs at least one word in --markers")]
    for kwargs, message in cases:
        with pytest.raises(PonderError, match=message) as e:
            ExitConfig(**kwargs)
        assert "\n" not in str(e.value)
    ExitConfig(exit="confidence", threshold=1.0)  # the bounds: (0, 1]


@pytest.mark.parametrize("method,says", [("colar", "thinks in latents.*use --speed"),
                                         ("coconut", "thinks a fixed number of continuous thoughts.*cot, icot and"),
                                         ("nocot", "does not think")])
def test_an_exit_policy_on_a_model_without_thinking_tokens(rs_records, method, says):
    model = tiny_model(rs_records["train"][:20], method=method)
    with pytest.raises(PonderError, match=f"--exit: a {method} model {says}"):
        Decoder(model, exit=ExitConfig(exit="convergence"))
    Decoder(model, exit=ExitConfig())  # none is fine for every model


def test_a_verifier_that_is_not_a_model(cot, tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    for path in (tmp_path, tmp_path / "notes.txt"):
        with pytest.raises(PonderError, match="--verifier: .*not a model directory|--verifier: .*no such model") as e:
            Decoder(cot, exit=ExitConfig(exit="trim", verifier=str(path)))
        assert "\n" not in str(e.value)
