"""Exit policies: make an explicit reasoner think less (or longer), with no training.

While a row of the batch thinks (between ``<think>`` and ``</think>``), a *policy* watches it and may end
the thinking: the row's next tokens are then forced -- the end of thinking and an answer cue -- one per
step, and its answer is decoded from the same KV cache. Rows exit independently. Where a policy needs the
model's current answer it *probes*: the decoder appends the end of thinking and the cue to the cache,
decodes a few tokens greedily, reads the answer and its token probabilities, and crops the cache back
(``Engine._probe``), so the main continuation is exactly what it would have been: a policy that never
fires gives token for token what ``none`` gives. The one entry point is the shared decoder::

    from ponder.arguments import ExitConfig
    from ponder.inference.decode import Decoder

    gens = Decoder(model, max_new_tokens=512, exit=ExitConfig(exit="convergence", patience=3)).generate(questions)
    g = gens[0]
    g.thinking_tokens, g.probe_tokens, g.main_passes, g.probe_passes   # what it cost
    g.exit_reason, g.exit_probe, g.probe_answers, g.latency_s          # where and why it stopped

Policies (``ExitConfig`` documents and defaults every parameter):

* ``budget`` -- s1 budget forcing (Muennighoff et al. 2025): at most ``budget`` thinking tokens, then the
  end of thinking and the cue are forced (``budget=0`` closes the thinking at once); ``wait=K`` turns the
  model's own first K ends of thinking into " Wait" (s1's way to think longer).
* ``convergence`` -- Dynasor-CoT (Fu et al. 2025): probe every ``probe_every`` thinking tokens; stop when
  the last ``patience`` probe answers are equal and non-empty and none of their texts holds a hedge word.
* ``confidence`` -- DEER (Yang et al. 2025): probe where the model is about to open a new thought (its
  next token holds a reflection marker such as "Wait"); confidence = the mean probability of the probe's
  answer tokens after the first (the first alone for a one-token answer); stop at ``threshold`` (the
  marker is then never written); at most ``max_probes`` probes per row.
* ``trim`` -- TrimR-style (Lin et al. 2025): the thinking is split into thoughts at the markers; when a
  thought ends, a verifier gives its answer; stop once ``agree`` thoughts in a row each give the answer of
  the thought before (``agree + 1`` equal non-empty answers). Under-thinking guard: past half the budget
  (``budget``, default ``max_new_tokens``) with more than ``max_thoughts`` thoughts, stop. The verifier is
  the reasoner itself by default (a probe: it reads the whole thinking so far), or another model
  (``verifier=DIR``) asked, through its own prompt layout, the question with the thought as its thinking:
  ``<question prompt> <think> {thought} </think> {its answer cue}`` and read greedily like a probe.
* ``nowait`` -- NoWait (Wang et al. 2025): every token spelling a ``suppress`` word gets a -inf logit for
  the whole generation.

Probes are real cost: their tokens and forward passes are counted per row (``probe_tokens``,
``probe_passes``), and ``wall_s`` / ``latency_s`` include them. A probe's answer is its first line after
the cue (the layout's answer prefix stripped), its text all it decoded (up to ``<eos>`` or ``probe_tokens``
tokens): the hedge words of Dynasor-CoT may come after the answer.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field

import torch

from ponder.arguments import ExitConfig
from ponder.errors import PonderError

EXIT_REASONS = ("model", "length", "eos", "budget", "convergence", "confidence", "trim", "trim-guard")


@dataclass
class Probe:
    """What one probe read for one row."""

    answer: str  # the answer it gave (empty: none)
    text: str  # everything it decoded after the cue
    probs: list[float]  # the greedy answer tokens' probabilities (the stopping token excluded)
    tokens: int  # tokens it fed and decoded (the cue, then the answer)
    passes: int  # forward passes this row took part in

    @property
    def confidence(self) -> float:
        """DEER's: the mean probability of the answer tokens after the first (the first alone if it is all)."""
        p = self.probs[1:] or self.probs[:1]
        return sum(p) / len(p) if p else 0.0


@dataclass(eq=False)  # rows are told apart by identity: two rows may think the same
class Row:
    """One question's thinking as the controller sees it, and its accounting."""

    question: str
    thinking: bool = True
    tokens: list[int] = field(default_factory=list)  # the thinking written so far (kept tokens)
    queue: list[int] = field(default_factory=list)  # forced tokens still to write, one per step
    probes: list[Probe] = field(default_factory=list)
    exit_reason: str | None = None  # see EXIT_REASONS; None while it thinks
    exit_probe: int | None = None  # index in ``probes`` of the probe that decided the exit
    waits: int = 0  # budget: ends of thinking turned into "Wait"
    thought_start: int = 0  # trim: where the current thought began (in ``tokens``)
    thoughts: int = 0  # trim: thoughts judged
    streak: int = 0  # trim: thoughts in a row that agreed with the one before

    @property
    def answers(self) -> list[str]:
        return [p.answer for p in self.probes]


def check_model(model) -> None:
    """Exit policies end a span of thinking *tokens*; for every other method say what works instead."""
    st = model.settings
    if st.reasoning == "latent":
        raise PonderError(f"--exit: a {st.method} model thinks in latents, not tokens: use --speed to make it think "
                          "faster (exit policies are for cot, icot and Hugging Face reasoners)")
    if st.reasoning == "thoughts":
        raise PonderError(f"--exit: a {st.method} model thinks a fixed number of continuous thoughts, not tokens: "
                          "there is no thinking to end early (exit policies are for cot, icot and Hugging Face "
                          "reasoners)")
    if st.reasoning == "none":
        raise PonderError("--exit: a nocot model does not think (exit policies are for cot, icot and Hugging Face "
                          "reasoners)")


def answer_cue(config: ExitConfig, layout) -> str:
    """The text written after the end of thinking to ask for the answer."""
    if config.answer_cue is not None:
        return config.answer_cue.replace("\\n", "\n")
    return layout.answer_template.partition("{answer}")[0].strip() or "Final Answer:"


def vocabulary_ids(tokenizer, match) -> list[int]:
    """The ids whose decoded text satisfies ``match`` (a few seconds for a 150k vocabulary, once per decoder)."""
    texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
    return [i for i, t in enumerate(texts) if match(t)]


# -- the policies ------------------------------------------------------------------------------------------
class Policy:
    """Never ends the thinking; the policies below override one hook or two. Built once per ``Decoder``."""

    name = "none"

    def __init__(self, config: ExitConfig, model, max_new_tokens: int):
        self.config, self.tok = config, model.tokenizer
        self.think_end = model.settings.layout.think_ids(self.tok)[1]
        self.budget = config.budget if config.budget is not None else max_new_tokens
        self.suppressed: list[int] = []  # token ids whose logits are -inf all along

    def wants_probe(self, row: Row, token: int) -> bool:
        """Probe ``row`` before it writes ``token`` (its candidate, never the end of thinking)?"""
        return False

    def ask(self, rows: list[Row], probe) -> list[Probe]:
        """The probes' answers for ``rows``: ``probe`` asks the reasoner itself through the shared cache."""
        return probe(rows)

    def decide(self, row: Row, token: int, result: Probe | None) -> str | None:
        """The exit reason if ``row`` must stop thinking instead of writing ``token``, else None."""
        return None

    def instead_of_end(self, row: Row) -> list[int] | None:
        """Tokens to write instead of the model's own end of thinking (None: let it end)."""
        return None


class Budget(Policy):
    """s1 budget forcing: at most N thinking tokens; optionally "Wait" instead of the first K own ends."""

    name = "budget"

    def __init__(self, config, model, max_new_tokens):
        super().__init__(config, model, max_new_tokens)
        self.wait_ids = model.settings.layout._ids(self.tok, " Wait")

    def decide(self, row, token, result):
        return "budget" if len(row.tokens) >= self.budget else None

    def instead_of_end(self, row):
        if row.waits < self.config.wait and len(row.tokens) + len(self.wait_ids) <= self.budget:
            row.waits += 1
            return list(self.wait_ids)
        return None


class Convergence(Policy):
    """Dynasor-CoT: a probe every ``probe_every`` thinking tokens; stop at ``patience`` equal, unhedged answers."""

    name = "convergence"

    def __init__(self, config, model, max_new_tokens):
        super().__init__(config, model, max_new_tokens)
        words = "|".join(re.escape(h.lower()) for h in config.words("hedges"))
        self.hedge = re.compile(rf"(?<!\w)(?:{words})(?!\w)") if words else None

    def wants_probe(self, row, token):
        return len(row.tokens) > 0 and len(row.tokens) % self.config.probe_every == 0

    def decide(self, row, token, result):
        if result is None:
            return None
        last = row.probes[-self.config.patience:]
        settled = len(last) == self.config.patience and last[0].answer and all(p.answer == last[0].answer for p in last)
        hedged = self.hedge is not None and any(self.hedge.search(p.text.lower()) for p in last)
        return "convergence" if settled and not hedged else None


class Markers(Policy):
    """A policy whose probe points are thought boundaries: a candidate token that holds a reflection marker."""

    def __init__(self, config, model, max_new_tokens):
        super().__init__(config, model, max_new_tokens)
        markers = config.words("markers")
        special = set(self.tok.all_special_ids) | {self.think_end}
        self.marker_ids = {i for i in vocabulary_ids(self.tok, lambda t: any(m in t for m in markers))} - special


class Confidence(Markers):
    """DEER: at each thought boundary (at most ``max_probes``), stop when the probe's answer is confident."""

    name = "confidence"

    def wants_probe(self, row, token):
        return token in self.marker_ids and len(row.probes) < self.config.max_probes

    def decide(self, row, token, result):
        ok = result is not None and result.answer and result.confidence >= self.config.threshold
        return "confidence" if ok else None


class Trim(Markers):
    """TrimR-style: a verifier answers each finished thought; stop when ``agree`` thoughts in a row agree."""

    name = "trim"

    def __init__(self, config, model, max_new_tokens):
        super().__init__(config, model, max_new_tokens)
        self.verifier = load_verifier(config.verifier, str(model.device)) if config.verifier else None

    def wants_probe(self, row, token):  # a thought just ended (an empty one is no thought)
        return token in self.marker_ids and len(row.tokens) > row.thought_start

    def ask(self, rows, probe):
        if self.verifier is None:
            return probe(rows)
        thoughts = [self.tok.decode(r.tokens[r.thought_start:], skip_special_tokens=True) for r in rows]
        return self.verifier.ask([r.question for r in rows], thoughts, self.config)

    def decide(self, row, token, result):
        if result is None:
            return None
        row.thoughts += 1
        row.thought_start = len(row.tokens)  # the marker opens the next thought
        prev = row.answers[-2] if len(row.probes) > 1 else None
        row.streak = row.streak + 1 if result.answer and result.answer == prev else 0
        if row.streak >= self.config.agree:
            return "trim"
        if len(row.tokens) > self.budget / 2 and row.thoughts > self.config.max_thoughts:
            return "trim-guard"
        return None


class NoWait(Policy):
    """NoWait: the reflection words' tokens are never written (their logits are -inf throughout)."""

    name = "nowait"

    def __init__(self, config, model, max_new_tokens):
        super().__init__(config, model, max_new_tokens)
        bare = lambda t: t.strip(" \t\n.,;:!?\"'()").lower()  # noqa: E731
        words = {bare(w) for w in config.words("suppress")} - {""}
        special = set(self.tok.all_special_ids) | {self.think_end}
        # Every spelling: " wait", "Wait", ".wait", "WAIT," -- the word with spaces and punctuation around it.
        self.suppressed = [i for i in vocabulary_ids(self.tok, lambda t: bare(t) in words) if i not in special]


POLICIES = {p.name: p for p in (Policy, Budget, Convergence, Confidence, Trim, NoWait)}


def make_policy(config: ExitConfig | str | None, model, max_new_tokens: int) -> Policy | None:
    """The policy a ``Decoder`` runs (None for ``none``: the decoder then stays exactly today's loop)."""
    if config is None:
        return None
    if isinstance(config, str):
        config = ExitConfig(exit=config)
    if config.exit == "none":
        return None
    check_model(model)
    return POLICIES[config.exit](config, model, max_new_tokens)


# -- the controller --------------------------------------------------------------------------------------
class ExitController:
    """One policy and what it needs to force an exit (end of thinking, cue) and to read probes; each row's
    state is a ``Row`` (``new_row``) the engine keeps with it. Each step the engine hands it the sampled
    candidates of its rows and gets back the tokens they write (``choose``); probes go through
    ``Engine._probe``."""

    def __init__(self, policy: Policy, model):
        self.policy, self.tok, self.layout = policy, model.tokenizer, model.settings.layout
        self.think_end, self.eos = policy.think_end, self.tok.eos_token_id
        self.cue = answer_cue(policy.config, self.layout)
        self.cue_ids = [self.think_end] + self.layout._ids(self.tok, self.cue)
        self.suppressed = policy.suppressed  # NoWait's token ids

    def new_row(self, question: str | None) -> Row:
        return Row(question)

    def mask_logits(self, logits: torch.Tensor) -> torch.Tensor:
        if len(self.suppressed):
            if not isinstance(self.suppressed, torch.Tensor):  # once, on the logits' device
                self.suppressed = torch.tensor(self.suppressed, device=logits.device)
            logits[:, self.suppressed] = float("-inf")
        return logits

    def choose(self, rows: list[Row], candidates: list[int], probe) -> list[int]:
        """The token each row writes this step: the head of its forced queue, the start of a forced exit the
        policy decides now (after probing it if it asks), or the model's own candidate.
        ``probe(indices into rows, cue_ids)`` -> per row (ids, probs, cue length), the cache restored after."""
        live = [k for k, r in enumerate(rows) if r.thinking and not r.queue]
        asking = [k for k in live if candidates[k] != self.think_end and self.policy.wants_probe(rows[k], candidates[k])]
        results = {}
        if asking:
            index = {id(rows[k]): k for k in asking}

            def read(asked):  # the reasoner's own answers, through the shared cache
                return [self.read_probe(*o) for o in probe([index[id(r)] for r in asked], self.cue_ids)]

            results = dict(zip(asking, self.policy.ask([rows[k] for k in asking], read)))
        out = list(candidates)
        for k in live:
            row, token, result = rows[k], candidates[k], results.get(k)
            if result is not None:
                row.probes.append(result)
            if token == self.think_end:
                row.queue = self.policy.instead_of_end(row) or []
                continue
            reason = self.policy.decide(row, token, result)
            if reason:
                row.exit_reason, row.queue = reason, list(self.cue_ids)
                row.exit_probe = len(row.probes) - 1 if result is not None else None
        for k, row in enumerate(rows):
            if row.queue:
                out[k] = row.queue.pop(0)
            if row.thinking:
                if out[k] == self.think_end:
                    row.thinking = False
                    row.exit_reason = row.exit_reason or "model"
                else:
                    row.tokens.append(out[k])
        return out

    # -- probes --------------------------------------------------------------------------------------
    def probe_finished(self, ids: list[int]) -> bool:
        """A probe reads until <eos> (or ``probe_tokens``): the hedges of Dynasor-CoT may follow the answer."""
        return ids[-1] == self.eos

    def read_probe(self, ids: list[int], probs: list[float], fed: int) -> Probe:
        """``ids``: what the probe decoded (ending with its stop token if it stopped); ``fed``: the cue's length."""
        decoded = len(ids)
        if ids and self.probe_finished(ids):
            ids, probs = ids[:-1], probs[:-1]
        text = self.tok.decode(ids, skip_special_tokens=True)
        return Probe(self.parse(text), text, probs, fed + decoded, decoded)

    def parse(self, text: str) -> str:
        """A probe's answer: the text after the cue (the layout's answer prefix stripped), its first line."""
        text = self.layout.parse_answer(text)
        return next((line.strip() for line in text.splitlines() if line.strip()), "")

    def answer(self, row: Row, text: str) -> str:
        """A row's final answer from the text after its end of thinking: as without a policy, less the cue a
        forced exit wrote (the layout's own answer prefix is stripped by the layout anyway)."""
        cue = self.cue.strip()
        if row.exit_reason not in (None, "model") and cue and text.strip().startswith(cue):
            text = text.strip()[len(cue):]
        return self.layout.parse_answer(text)


# -- the verifier of trim ------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=2)
def load_verifier(path: str, device: str) -> Verifier:
    """Loaded once per path and device, not per decoder."""
    return Verifier(path, device)


class Verifier:
    """TrimR's judge when it is another model: asked the question with one thought as its thinking."""

    def __init__(self, path: str, device: str):
        from ponder.model.io import load_model

        try:
            self.model = load_model(path, device=device, chat_template=None, reasoner=True).eval()
        except PonderError as e:
            raise PonderError(f"--verifier: {e}") from None

    def ask(self, questions: list[str], thoughts: list[str], config: ExitConfig) -> list[Probe]:
        """Greedy reads through the shared engine, batched: ``<prompt> <think> thought </think> cue``."""
        from ponder.inference.engine import Engine, Request

        m, tok, lay = self.model, self.model.tokenizer, self.model.settings.layout
        reader = ExitController(Policy(config, m, 1), m)  # its own cue, end of thinking and parsing
        prompts = [lay.generation_prompt(tok, q, 1, think=True) + lay._ids(tok, t) + reader.cue_ids
                   for q, t in zip(questions, thoughts)]
        gens = Engine(m, max_batch=len(prompts)).run(
            [Request(prompt_ids=p, max_new_tokens=config.probe_tokens, logprobs=True) for p in prompts])
        eos = [tok.eos_token_id]  # read_probe wants the stop token a read ended with (its probability unused)
        return [reader.read_probe(g.token_ids + eos * g.ended, [math.exp(x) for x in g.token_logprobs] + [1.0] * g.ended,
                                  len(p)) for g, p in zip(gens, prompts)]
