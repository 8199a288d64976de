"""Whole-step decoding: a fixed batch of greedy rows, a pre-allocated KV cache, one compiled step function.

Why: a small model's decoding step costs Python, kernel launches and a host sync per step more than it costs
matmuls (benchmarks/decode). Here a step -- the transformer pass, the latent head, and every row's choice of
its next input (a latent, a continuous thought, ``</think>``, a token, or nothing once it is done) -- is
tensor code with no branch on data and no host sync, over a ``transformers.StaticCache`` whose shape changes
only when it doubles (``grow``), so ``torch.compile`` captures it whole (``fullgraph``; on CUDA ``mode="reduce-overhead"``: one
CUDA graph per step). A row that is done keeps its slot, masked: its outputs are no longer written. The loop
asks "are all rows done?" every ``check_every`` steps (each ask is a host sync), so up to
``check_every - 1`` steps may run after the last row is done.

The engine (``engine.py``) runs this for the batches it can take: rows submitted together to an idle engine
(``Decoder.generate``, i.e. ``eval``, ``ask``, ``bench``) of a ``lean`` model in compiled mode, greedy,
without an exit policy, stop strings, logprobs or per-token events. It mirrors the engine's ``_advance``
rule by rule, and hands its rows back to the engine's ``_finish``, so a ``Generation`` is built by one piece
of code whichever loop decoded it. Everything else (sampling, exit policies, rows joining a running batch in
``ponder serve``) takes the engine's step.
"""

from __future__ import annotations

import torch
from transformers import StaticCache

from ponder.model.io import compile_own

LATENT, THOUGHTS, TOKENS = 0, 1, 2
PHASE = {"latent": LATENT, "thoughts": THOUGHTS, "tokens": TOKENS}
BUCKET = 32  # cache lengths are multiples of this (then doubled on demand: grow), so batches share graphs


def takes(engine, rows) -> bool:
    """Whether the whole-step loop can decode ``rows`` exactly as the engine's step would."""
    m = engine.model
    return (engine.whole_step and getattr(m, "decoding_mode", None) == "compiled" and m.lean and engine.use_cache
            and not engine.rows and bool(rows)
            and all(r.controller is None and r.request.temperature == 0 and r.request.latent_temperature == 0
                    and not r.request.sample_stop and not r.request.stop and not r.request.logprobs
                    and r.request.on_event is None and not r.cancelled for r in rows))


class State:
    """Per-row tensors the step reads and advances (all (B,) but the buffers)."""

    names = ("phase", "steps", "n_out", "last_pos", "done", "ended", "passes")

    def __init__(self, rows, device, dims):
        B, lat, new, d = dims
        t = lambda v, dt=torch.long: torch.tensor(v, dtype=dt, device=device)  # noqa: E731
        self.phase = t([PHASE[r.phase] for r in rows])
        self.steps, self.n_out = t([0] * B), t([0] * B)
        self.last_pos = t([r.last_pos for r in rows])
        self.done, self.ended = t([False] * B, torch.bool), t([False] * B, torch.bool)
        self.passes = t([1] * B)  # the prefill
        self.stretch = t([r.stretch for r in rows])
        self.max_latent = t([r.request.max_latent_steps for r in rows])
        self.max_new = t([r.request.max_new_tokens for r in rows])
        # Outputs, written in place at each row's own index (a done row's writes are masked).
        self.out = torch.zeros(B, new, dtype=torch.long, device=device)
        self.latents = torch.zeros(B, lat, d, device=device)
        self.tops = torch.zeros(B, lat, 3, dtype=torch.long, device=device)
        if device.type == "cuda":  # written in place inside the graph: CUDA graphs need their addresses fixed
            for t in (self.out, self.latents, self.tops):
                torch._dynamo.mark_static_address(t)

    def values(self):
        return tuple(getattr(self, k) for k in self.names)

    def set(self, values):
        for k, v in zip(self.names, values):
            setattr(self, k, v)


def decide(model, consts, s: State, logits, mean, hidden):
    """Every row's next input from the last pass (the engine's ``_advance`` for greedy rows, as tensors):
    -> (input embeddings (B, d), the advanced per-row state). Done rows change nothing."""
    think_end, eos, embed_std, num_thoughts = consts
    phase, steps, n_out, last_pos, done, ended, passes = s.values()
    B = logits.shape[0]
    rows = torch.arange(B, device=logits.device)
    active = ~done
    greedy = logits.argmax(-1)
    top3 = logits.topk(3, -1).indices

    latent = active & (phase == LATENT)
    go_latent = latent & (greedy != think_end) & (steps < s.max_latent)
    thoughts = active & (phase == THOUGHTS)
    go_thought = thoughts & (steps < num_thoughts)
    ending = (latent & ~go_latent) | (thoughts & ~go_thought)  # </think> is fed next
    tokens = active & (phase == TOKENS)
    eos_now = tokens & (greedy == eos)
    write = tokens & ~eos_now

    # The latent step's input: the head's mean (greedy) times the embedding scale; a thought's: thought_input.
    z = hidden.new_zeros(hidden.shape[0], s.latents.shape[-1])
    if mean is not None:
        z = mean * embed_std
    if num_thoughts > 0:
        z = torch.where(go_thought[:, None], model.thought_input(hidden).to(z.dtype), z)
    stepping = go_latent | go_thought
    at = steps.clamp(max=s.latents.shape[1] - 1)
    s.latents[rows, at] = torch.where(stepping[:, None], z.to(s.latents.dtype), s.latents[rows, at])
    s.tops[rows, at] = torch.where(stepping[:, None], top3, s.tops[rows, at])
    col = n_out.clamp(max=s.out.shape[1] - 1)
    s.out[rows, col] = torch.where(write, greedy, s.out[rows, col])

    n_out = n_out + write.long()
    done_now = eos_now | (write & (n_out >= s.max_new))
    feed_token = write & ~done_now
    ids = torch.where(feed_token, greedy, torch.full_like(greedy, think_end))
    x = model.embed(ids)
    x = torch.where(stepping[:, None], z.to(x.dtype), x)
    last_pos = last_pos + torch.where(go_latent, s.stretch, 0) + (go_thought | ending | feed_token).long()
    phase = torch.where(ending, TOKENS, phase)
    steps = steps + stepping.long()
    done = done | done_now
    ended = ended | eos_now
    passes = passes + (~done).long()  # the rows still running take part in the next pass
    return x, (phase, steps, n_out, last_pos, done, ended, passes)


def fused_step(model, cache, mask, consts, s: State, x):
    """One whole step: the pass over each row's input, then every row's next input from its outputs."""
    col = cache.layers[0].cumulative_length.view(1)
    mask.index_fill_(1, col, 1)  # this step's column, for every row (a done row's is never read)
    logits, hidden, mean = pass_(model, cache, mask, x[:, None], s.last_pos[:, None])
    return decide(model, consts, s, logits, mean, hidden)


def pass_(model, cache, mask, embeds, positions, lean=None):
    """The lean pass (last position) and the latent head: -> (logits (B, V) float, hidden (B, d), mean)."""
    logits, hidden = (lean or model._lean_pass)(inputs_embeds=embeds, attention_mask=mask, position_ids=positions,
                                                past_key_values=cache, use_cache=True)
    hidden = hidden[:, -1]
    mean = model.latent_head(hidden)[0] if model.latent_head is not None else None
    return logits[:, -1].float(), hidden, mean


def bucket(n: int) -> int:
    return -(-n // BUCKET) * BUCKET


def allocate(model, B: int, length: int, device):
    """An empty static cache of ``length`` columns and its (B, length) attention mask."""
    mask = torch.zeros(B, length, dtype=torch.long, device=device)
    if device.type == "cuda":
        torch._dynamo.mark_static_address(mask)
    return StaticCache(config=model.config, max_cache_len=length), mask


def grow(model, cache, mask, length: int):
    """The cache and mask copied into ``length`` columns. Why not allocate the worst case at once: every step
    attends over the whole static length, and budgets (256 tokens, 64 latents) are mostly unused -- a cache
    sized for them made the quickstart's evaluation slower than eager; doubling on demand costs a copy and,
    for each new length, one recompile (then lengths are dynamic) or, on CUDA, one more graph."""
    new, new_mask = allocate(model, mask.shape[0], length, mask.device)
    new_mask[:, : mask.shape[1]] = mask
    for old, layer in zip(cache.layers, new.layers):
        layer.lazy_initialization(old.keys, old.values)
        layer.keys[:, :, : old.keys.shape[2]] = old.keys
        layer.values[:, :, : old.values.shape[2]] = old.values
        layer.cumulative_length.copy_(old.cumulative_length)
    return new, new_mask


def compiled_step(model):
    """The model's compiled whole step, made once, on its own copy of the code (``compile_own``): compiling
    takes seconds, and a second batch size or cache length one recompile (then both are dynamic)."""
    if model.__dict__.get("_static_step") is None:
        mode = "reduce-overhead" if model.device.type == "cuda" else None
        model.__dict__["_static_step"] = compile_own(fused_step, fullgraph=True, mode=mode)
    return model.__dict__["_static_step"]


@torch.no_grad()
def run(engine, rows, check_every: int | None = None) -> None:
    """Decode ``rows`` (already made by the engine: prompts, phases, positions) to the end, then fill each
    row's ``out``, ``steps``, ``latents``, ``top_ids``, ``ended`` and ``passes`` as the engine's step does."""
    from ponder.inference.engine import prompt_batch

    m, st, device = engine.model, engine.model.settings, engine.model.device
    if check_every is None:
        check_every = 8 if device.type == "cuda" else 1  # a host sync costs ~nothing on a CPU
    num_thoughts = (st.num_thoughts or 0) if st.reasoning == "thoughts" else 0
    lat = max(1, num_thoughts, *(r.request.max_latent_steps for r in rows))
    new = max(r.request.max_new_tokens for r in rows)
    ids, pmask, positions = prompt_batch(rows, engine.pad, device)
    T, B = ids.shape[1], len(rows)
    steps_bound = (lat if st.reasoning in ("latent", "thoughts") else 0) + 1 + new
    cache, mask = allocate(m, B, bucket(T + min(steps_bound, BUCKET)), device)
    mask[:, :T] = pmask
    s = State(rows, device, (B, lat, new, m.embed(ids[:1, :1]).shape[-1]))
    consts = (engine.think_end, engine.eos, float(st.embed_std or 1.0), num_thoughts)

    # The prefill, into the same static cache, through the model's compiled pass (dynamic shapes: prompt
    # lengths vary from batch to batch).
    logits, hidden, mean = pass_(m, cache, mask[:, :T], m.embed(ids), positions, lean=m.__dict__["_compiled"])
    x, values = decide(m, consts, s, logits, mean, hidden)
    s.set(values)
    step = compiled_step(m)
    for i in range(steps_bound):
        if i % check_every == 0 and bool(s.done.all()):
            break
        if T + i == mask.shape[1]:  # the cache is full (step i writes column T + i): twice the room
            cache, mask = grow(m, cache, mask, min(2 * mask.shape[1], bucket(T + steps_bound)))
        x, values = step(m, cache, mask, consts, s, x)
        s.set(values)

    steps, n_out = s.steps.tolist(), s.n_out.tolist()
    ended, passes = s.ended.tolist(), s.passes.tolist()
    out, tops = s.out.tolist(), s.tops.tolist()
    for b, r in enumerate(rows):
        r.out, r.steps, r.ended, r.passes = out[b][: n_out[b]], steps[b], ended[b], passes[b]
        r.latents = list(s.latents[b, : steps[b]].float())
        r.top_ids = tops[b][: steps[b]]
        if r.reasoner and engine.think_end in r.out:
            r.answer_start = r.out.index(engine.think_end) + 1
