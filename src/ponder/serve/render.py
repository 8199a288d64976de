"""What a client sees of a row: the answer, the thinking as text, usage, and the same pieces as stream deltas.

The thinking of a token reasoner is its thinking tokens decoded; a latent model's (CoLaR, Coconut, CODI)
is each latent step peeked as the LM's top token at that step, ``[7][3][9]``. A streamed choice's deltas
join to exactly the text of the same request unstreamed: each channel decodes all its tokens so far and
sends what is new, holding back whatever may still change (a partial character, a tail that could start a
stop string, trailing spaces, an answer prefix ``Answer:`` not yet complete), and the final ``done`` sends
the rest of the finished answer.
"""

from __future__ import annotations

from ponder.inference.engine import Generation
from ponder.serve.protocol import PonderInfo


def latent_text(tok, top_ids: list[int]) -> str:
    """One latent step as text: its top token, bracketed."""
    return f"[{tok.decode([top_ids[0]]).strip()}]" if top_ids else "[]"


def reasoning_text(model, g: Generation) -> str | None:
    st, tok = model.settings, model.tokenizer
    if st.reasoning == "tokens":
        return tok.decode(g.token_ids[:g.thinking_tokens], skip_special_tokens=False)
    if st.reasoning in ("latent", "thoughts"):
        return "".join(latent_text(tok, ids) for ids in g.latent_top_ids)
    return None


def latent_steps(model, g: Generation) -> int:
    return g.reasoning_length if model.settings.reasoning in ("latent", "thoughts") else 0


def reasoning_tokens(model, g: Generation) -> int:
    return g.thinking_tokens if model.settings.reasoning == "tokens" else latent_steps(model, g)


def completion_tokens(model, g: Generation) -> int:
    """Every token decoded after the prompt (a token reasoner's thinking included) and every latent step."""
    return len(g.token_ids) + latent_steps(model, g)


def info(model, g: Generation, exit_label: str, raw: bool) -> PonderInfo:
    return PonderInfo(speed=g.speed, exit=exit_label, exit_reason=None if raw else g.exit_reason,
                      thinking_tokens=g.thinking_tokens, latent_steps=0 if raw else latent_steps(model, g),
                      probe_tokens=g.probe_tokens, latency_s=round(g.latency_s, 6))


def answer_ids(model, g: Generation, raw: bool) -> list[int]:
    """The decoded tokens of the answer (a token reasoner's after its end of thinking)."""
    if raw or model.settings.reasoning != "tokens":
        return g.token_ids
    n = g.thinking_tokens
    return g.token_ids[n + 1:] if len(g.token_ids) > n else []


def chat_logprobs(model, g: Generation) -> dict:
    """OpenAI's chat ``logprobs.content``: the answer tokens, each with its own logprob."""
    tok, ids = model.tokenizer, answer_ids(model, g, raw=False)
    lps = g.token_logprobs[len(g.token_ids) - len(ids):] if g.token_logprobs else []
    out = []
    for i, lp in zip(ids, lps):
        text = tok.decode([i])
        out.append({"token": text, "logprob": lp, "bytes": list(text.encode("utf-8")), "top_logprobs": []})
    return {"content": out}


def completion_logprobs(model, g: Generation, offset: int = 0) -> dict:
    """The legacy completions ``logprobs``: tokens, token_logprobs, text_offset (top_logprobs: null)."""
    tok = model.tokenizer
    tokens = [tok.decode([i]) for i in g.token_ids]
    offsets, at = [], offset
    for t in tokens:
        offsets.append(at)
        at += len(t)
    return {"tokens": tokens, "token_logprobs": list(g.token_logprobs), "text_offset": offsets, "top_logprobs": None}


# -- streaming -------------------------------------------------------------------------------------------
class Channel:
    """One growing text (thinking, answer or completion) sent as deltas. ``view(text)`` is the part of the
    decoded text that can be shown for sure; ``finish(final)`` sends the rest of the finished text."""

    def __init__(self, decode, view=lambda text: text):
        self.decode, self.view = decode, view
        self.ids: list[int] = []
        self.sent = ""

    def add(self, ids: list[int]) -> str:
        self.ids.extend(ids)
        text = self.decode(self.ids)
        if text.endswith("\ufffd"):  # half of a character: wait for the rest of its bytes
            return ""
        return self._send(self.view(text))

    def add_text(self, text: str) -> str:
        return self._send(self.sent + text)

    def finish(self, final: str) -> str:
        return self._send(final)

    def _send(self, visible: str) -> str:
        if len(visible) > len(self.sent) and visible.startswith(self.sent):
            delta, self.sent = visible[len(self.sent):], visible
            return delta
        return ""


def _cut_stops(text: str, stops: list[str]) -> str:
    """The text before the first stop string, less a tail that may still become one."""
    hits = [text.find(s) for s in stops if s in text]
    if hits:
        return text[:min(hits)]
    for s in stops:
        for k in range(min(len(s) - 1, len(text)), 0, -1):
            if text.endswith(s[:k]):
                text = text[:-k]
                break
    return text


def answer_view(prefixes: list[str], stops: list[str]):
    """What of a row's answer text is already sure, as ``parse_answer`` will give it: cut at a stop string,
    stripped, without the answer prefix (``Answer:``, or an exit policy's cue) once it is complete."""
    prefixes = [p.strip() for p in prefixes if p and p.strip()]

    def view(text: str) -> str:
        text = _cut_stops(text, stops).lstrip()
        for p in prefixes:
            if text.startswith(p):
                text = text[len(p):].lstrip()
                break
            if p.startswith(text):
                return ""  # could still be the prefix
        return text.rstrip()

    return view


def text_view(stops: list[str]):
    return lambda text: _cut_stops(text, stops)


def answer_prefixes(model, exit) -> list[str]:
    layout = model.settings.layout
    prefixes = [layout.answer_template.partition("{answer}")[0]]
    if exit is not None:
        from ponder.inference.exits import answer_cue

        prefixes.append(answer_cue(exit, layout))
    return prefixes
