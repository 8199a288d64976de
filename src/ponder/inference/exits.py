"""Exit policies: make an explicit reasoner think less, with no training.

While a row of the batch thinks (between ``<think>`` and ``</think>``), a policy watches it and may end the
thinking early: the row's next tokens are then forced to the end of thinking (and an answer cue), and the
answer is decoded from the same KV cache. Rows exit independently. Where a policy needs the model's
current answer it *probes*: the decoder appends ``</think>`` and the answer cue to the cache, decodes a few
tokens greedily, and crops the cache back (``Decoder._probe``), so the main continuation is exactly what
it would have been -- a policy that never fires gives token for token what ``none`` gives.

    from ponder.arguments import ExitConfig
    from ponder.inference.decode import Decoder
    gens = Decoder(model, exit=ExitConfig(exit="convergence")).generate(questions)
    gens[0].thinking_tokens, gens[0].probe_tokens, gens[0].exit_reason, gens[0].probe_answers

Policies (``ExitConfig`` documents each parameter):

* ``budget`` -- s1 budget forcing (Muennighoff et al. 2025): at most N thinking tokens, then the end of
  thinking is forced; ``wait`` K turns the model's own first K ends of thinking into "Wait" instead.
* ``convergence`` -- Dynasor-CoT (Fu et al. 2025): probe every ``probe_every`` thinking tokens; stop when
  the last ``patience`` answers are equal, non-empty, and no probe text hedges.
* ``confidence`` -- DEER (Yang et al. 2025): probe where the next token opens a new thought (a reflection
  marker such as "Wait"); confidence = mean probability of the probe's answer tokens after the first (the
  first alone for a one-token answer); stop at ``threshold``, at most ``max_probes`` probes.
* ``trim`` -- TrimR-style (Lin et al. 2025): at each thought boundary a verifier gives the answer the
  thinking has reached; stop after ``agree`` consecutive thoughts agree; under-thinking guard: past half
  the budget with more than ``max_thoughts`` thoughts, stop. The verifier is the reasoner itself (a probe)
  or another model, asked the question and the thinking so far through its own prompt layout.
* ``nowait`` -- NoWait (Wang et al. 2025): the reflection markers' tokens get -inf logits throughout.

Probes are real cost: their tokens and forward passes are counted per row, and the batch's wall time
includes them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import torch

from ponder.arguments import ExitConfig
from ponder.errors import PonderError


@dataclass
class RowState:
    """One question's thinking, as the controller sees it, and its accounting."""

    thinking: bool = True
    thinking_tokens: int = 0  # kept: written while thinking, before the end of thinking
    tokens: list[int] = field(default_factory=list)  # what it has thought so far
    queue: list[int] = field(default_factory=list)  # forced tokens still to write
    waits: int = 0
    probes: int = 0
    probe_tokens: int = 0
    probe_passes: int = 0
    probe_answers: list[str] = field(default_factory=list)
    probe_texts: list[str] = field(default_factory=list)
    confidences: list[float] = field(default_factory=list)
    thoughts: int = 0
    streak: int = 0  # trim: consecutive agreeing thoughts
    exit_reason: str = "none"  # model (wrote </think> itself), budget, convergence, confidence, trim, guard, length
    exit_step: int | None = None  # thinking tokens when it exited


@dataclass
class Probe:
    """What a probe read: the answer, its text, and the greedy tokens' probabilities."""

    answer: str
    text: str
    probs: list[float]
    tokens: int  # tokens fed and decoded (cue + answer)
    passes: int

    @property
    def confidence(self) -> float:
        p = self.probs[1:] or self.probs[:1]
        return sum(p) / len(p) if p else 0.0


def check_model(model) -> None:
    """Exit policies end a span of thinking *tokens*: say what works instead for the other methods."""
    st = model.settings
    if st.reasoning == "latent":
        raise PonderError(f"--exit: a {st.method} model thinks in latent vectors, not tokens; choose its thinking "
                          "speed with --speed instead")
    if st.reasoning == "thoughts":
        raise PonderError(f"--exit: a {st.method} model thinks a fixed number of continuous thoughts; there is no "
                          "token span to end early")
    if st.reasoning == "none":
        raise PonderError("--exit: a nocot model does not think; exit policies are for cot, icot and Hugging Face "
                          "reasoners")


def _token_ids_holding(tokenizer, words: list[str], lower: bool = False) -> list[int]:
    """Every vocabulary id whose text holds one of ``words`` (NoWait suppresses all spellings of "Wait")."""
    vocab = range(len(tokenizer))
    texts = tokenizer.batch_decode([[i] for i in vocab])
    norm = (lambda t: t.lower()) if lower else (lambda t: t)  # noqa: E731
    return [i for i, t in zip(vocab, texts) if any(norm(w) in norm(t) for w in words)]


class ExitController:
    """Per-row policy state for one ``Decoder.generate`` call; the decoder asks it, each step, which token
    each row writes (see ``choose``) and lets it probe through ``Decoder._probe``."""

    def __init__(self, config: ExitConfig, model, questions: list[str], max_new_tokens: int):
        check_model(model)
        self.config, self.model, self.questions = config, model, questions
        tok, lay = model.tokenizer, model.settings.layout
        self.tok, self.layout = tok, lay
        self.think_end = lay.think_ids(tok)[1]
        cue = config.answer_cue if config.answer_cue is not None else (
            lay.answer_template.partition("{answer}")[0].strip() or "Final Answer:")
        self.cue_ids = [self.think_end] + lay._ids(tok, cue)
        self.wait_ids = lay._ids(tok, " Wait")
        markers = config.words("markers")
        self.marker_ids = set(_token_ids_holding(tok, markers)) if config.exit in ("confidence", "trim", "nowait") else set()
        self.marker_ids.discard(self.think_end)
        self.suppressed = sorted(self.marker_ids) if config.exit == "nowait" else []
        self.budget = config.budget if config.budget is not None else max_new_tokens
        self.hedges = [h.lower() for h in config.words("hedges")]
        self.rows = [RowState() for _ in questions]
        self.verifier = load_verifier(config.verifier) if config.exit == "trim" and config.verifier else None

    # -- the decoder's hooks ---------------------------------------------------------------------------
    def mask_logits(self, logits: torch.Tensor) -> torch.Tensor:
        if self.suppressed:
            logits[:, self.suppressed] = float("-inf")
        return logits

    def choose(self, candidates: torch.Tensor, done: torch.Tensor, probe) -> torch.Tensor:
        """The token each row writes this step: its forced queue's head, an end of thinking a policy decides
        now, or the model's own candidate. ``probe(rows)`` -> a ``Probe`` per row (batched, cache restored)."""
        cand = candidates.tolist()
        live = [b for b, r in enumerate(self.rows) if r.thinking and not r.queue and not bool(done[b])]
        asks = [b for b in live if self._wants_probe(b, cand[b])]
        results = dict(zip(asks, probe(asks))) if asks else {}
        out = list(cand)
        for b, r in enumerate(self.rows):
            if bool(done[b]):
                continue
            if not r.queue and r.thinking:
                self._decide(b, cand[b], results.get(b))
            if r.queue:
                out[b] = r.queue.pop(0)
            if r.thinking:
                if out[b] == self.think_end:
                    r.thinking = False
                    r.exit_step = r.thinking_tokens
                else:
                    r.thinking_tokens += 1
                    r.tokens.append(out[b])
        return torch.tensor(out, dtype=candidates.dtype, device=candidates.device)

    # -- the policies ----------------------------------------------------------------------------------
    def _wants_probe(self, b: int, token: int) -> bool:
        c, r = self.config, self.rows[b]
        if c.exit == "convergence":
            return r.thinking_tokens > 0 and r.thinking_tokens % c.probe_every == 0 and token != self.think_end
        if c.exit == "confidence":
            return token in self.marker_ids and r.probes < c.max_probes
        if c.exit == "trim":
            return token in self.marker_ids and self.verifier is None
        return False

    def _decide(self, b: int, token: int, result: Probe | None) -> None:
        c, r = self.config, self.rows[b]
        if result is not None:
            r.probes += 1
            r.probe_tokens += result.tokens
            r.probe_passes += result.passes
            r.probe_answers.append(result.answer)
            r.probe_texts.append(result.text)
            r.confidences.append(result.confidence)
        if token == self.think_end:
            if c.exit == "budget" and r.waits < c.wait:  # s1: think longer instead of stopping
                r.waits += 1
                r.queue = list(self.wait_ids)
            else:
                r.exit_reason = "model"
            return
        if c.exit == "budget" and r.thinking_tokens >= c.budget:
            self._exit(b, "budget")
        elif c.exit == "convergence" and result is not None:
            last = r.probe_answers[-c.patience:]
            settled = len(last) == c.patience and last[0] and all(a == last[0] for a in last)
            hedged = any(h in t.lower() for t in r.probe_texts[-c.patience:] for h in self.hedges)
            if settled and not hedged:
                self._exit(b, "convergence")
        elif c.exit == "confidence" and result is not None and result.answer and result.confidence >= c.threshold:
            self._exit(b, "confidence")
        elif c.exit == "trim" and token in self.marker_ids:
            self._trim(b, result)

    def _trim(self, b: int, result: Probe | None) -> None:
        c, r = self.config, self.rows[b]
        if result is None:  # another model verifies: it reads the question and the thinking so far
            result = self.verifier.ask(self.questions[b], self.tok.decode(r.tokens, skip_special_tokens=True))
            r.probes += 1
            r.probe_tokens += result.tokens
            r.probe_passes += result.passes
            r.probe_answers.append(result.answer)
        r.thoughts += 1
        answers = r.probe_answers
        r.streak = r.streak + 1 if len(answers) > 1 and answers[-1] and answers[-1] == answers[-2] else 0
        if r.streak >= c.agree:
            self._exit(b, "trim")
        elif r.thinking_tokens > self.budget / 2 and r.thoughts > c.max_thoughts:
            self._exit(b, "guard")

    def _exit(self, b: int, reason: str) -> None:
        r = self.rows[b]
        r.exit_reason, r.queue = reason, list(self.cue_ids)

    # -- results ---------------------------------------------------------------------------------------
    def parse_probe(self, ids: list[int], probs: list[float], fed: int, passes: int) -> Probe:
        eos = self.tok.eos_token_id
        ids = ids[: ids.index(eos)] if eos in ids else ids
        text = self.tok.decode(ids, skip_special_tokens=True)
        return Probe(self.layout.parse_answer(text), text, probs[: len(ids)], fed + len(ids), passes)


@functools.lru_cache(maxsize=2)
def load_verifier(path: str) -> "Verifier":
    """Loaded once per path, not per batch."""
    return Verifier(path)


class Verifier:
    """TrimR's separate judge: another model asked the question with the thinking so far, then the cue."""

    def __init__(self, path: str):
        from ponder.arguments import ModelArguments

        try:
            self.model = ModelArguments(model=path).load()
        except PonderError as e:
            raise PonderError(f"--verifier: {e}") from None
        self.model.eval()

    @torch.no_grad()
    def ask(self, question: str, thinking: str) -> Probe:
        m, tok, lay = self.model, self.model.tokenizer, self.model.settings.layout
        cue = lay.answer_template.partition("{answer}")[0].strip() or "Final Answer:"
        ids = (lay.generation_prompt(tok, question, 1 if lay.speed_template else None, think=True)
               + lay._ids(tok, thinking) + [lay.think_ids(tok)[1]] + lay._ids(tok, cue))
        x = torch.tensor([ids], device=m.device)
        out, probs = [], []
        for _ in range(8):  # no cache: a few short re-encodings
            logits = m(input_ids=x, last_only=True, latent=False).logits[0, -1].float()
            p = torch.softmax(logits, -1)
            t = int(p.argmax())
            if t == tok.eos_token_id:
                break
            out.append(t)
            probs.append(float(p[t]))
            x = torch.cat([x, torch.tensor([[t]], device=m.device)], 1)
        text = tok.decode(out, skip_special_tokens=True)
        return Probe(lay.parse_answer(text), text, probs, len(ids) + len(out), len(out) + 1)
