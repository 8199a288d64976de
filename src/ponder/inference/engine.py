"""The decoding engine: one batch of rows, one ``transformers`` KV cache, advanced one forward pass at a time.

Every method decodes here -- ``ponder eval`` and ``ask`` through ``Decoder.generate`` (all rows submitted at
once, stepped until done), ``ponder serve`` by stepping it forever while requests come and go -- so their
numbers are measured by the same loop. A row's life:

1. *prefill*: its prompt (question, speed marker, ``<think>``; No-CoT's also ends with ``</think>``) is run
   with the other rows admitted at the same step, left-padded, then merged into the running batch's cache
   (padded on the left to a common length: positions are explicit, padding is masked);
2. *latent* (CoLaR): latent head -> sample at temperature tau (tau = 0: the mean) -> x ``embed_std`` -> next
   input embedding, until its LM predicts ``</think>`` (or draws it, ``sample_stop``) or ``max_latent_steps``;
   *thoughts* (Coconut, CODI): exactly ``num_thoughts`` steps of ``model.thought_input(last hidden state)``;
   then ``</think>`` is fed;
3. *tokens*: the answer (a CoT model's thinking first) is decoded token by token from the same cache, greedy
   or sampled (temperature, top-p), an exit policy (``inference/exits.py``) possibly ending the thinking.

Each step every running row feeds exactly one input embedding, whatever its phase, so rows in different
phases share one forward pass; a row leaves the batch as soon as it is finished (``<eos>``, a stop string,
``max_new_tokens``) or cancelled -- before the next pass, which would compute logits nobody reads.
``use_cache=False`` re-encodes the whole prefix at every step: slower, only there to prove the cache exact.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from transformers import DynamicCache

from ponder.errors import PonderError
from ponder.inference import static
from ponder.model.latent_head import LatentHead


@dataclass
class Generation:
    question: str
    speed: int | str | None
    text: str  # everything decoded as text after the prompt (CoT: reasoning, </think>, answer)
    answer: str  # extracted answer
    reasoning_length: int  # tokens between the separators, or latent steps / continuous thoughts
    wall_s: float  # wall time of the call that produced it (its batch; a served row: its own latency)
    token_ids: list[int] = field(default_factory=list)  # the decoded tokens, up to (without) <eos>
    ended: bool = True  # <eos> was decoded (False: cut by max_new_tokens or a stop string)
    latents: torch.Tensor | None = None  # (steps, d) input embeddings of the latent steps
    latent_top_ids: list[list[int]] = field(default_factory=list)  # LM's top tokens at each latent step
    # What it cost and why it stopped (exit policies: inference/exits.py). Probes are real cost, counted apart.
    thinking_tokens: int = 0  # thinking tokens kept (token reasoners: reasoning_length; 0 for the others)
    probe_tokens: int = 0  # tokens probes fed (cue) and decoded for this row
    main_passes: int = 0  # forward passes of the main generation this row took part in (prefill included)
    probe_passes: int = 0  # forward passes of its probes (a verifier's included)
    exit_reason: str | None = None  # model (ended its thinking itself), length, eos, or the policy that ended it
    exit_probe: int | None = None  # index in probe_answers of the probe that decided the exit
    probe_answers: list[str] = field(default_factory=list)
    probe_confidences: list[float] = field(default_factory=list)  # DEER's confidence of each probe
    latency_s: float = 0.0  # from submission (a call's start) to this row's last token (probes included)
    token_logprobs: list[float] = field(default_factory=list)  # log p of each token_ids entry (logprobs=True)
    stop: str | None = None  # the stop string that ended it (cut from text and answer)
    prompt_tokens: int = 0

    @property
    def finish_reason(self) -> str:
        """OpenAI's: ``stop`` (``<eos>`` or a stop string) or ``length``."""
        return "stop" if self.ended or self.stop is not None else "length"


@dataclass
class Request:
    """One row to decode. ``question`` is asked through the model's prompt layout (chat template, speed
    marker, ``<think>``); ``prompt_ids`` instead is continued as it is, as plain tokens (no thinking phase)."""

    question: str | None = None
    prompt_ids: list[int] | None = None
    speed: int | str | None = None
    max_new_tokens: int = 256
    max_latent_steps: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    latent_temperature: float = 0.0
    sample_stop: bool = False  # a latent chain ends with probability p(</think>) per step (RL, CoLaR's eval)
    seed: int | None = None  # its own generator; None: the engine's shared one
    stop: list[str] = field(default_factory=list)
    exit: object = None  # an ExitConfig (or a policy name) for a token reasoner's thinking
    logprobs: bool = False
    on_event: Callable | None = None  # called with each Event, from the thread that steps the engine


@dataclass
class Event:
    """What a step did to a row: ``think`` / ``answer`` tokens, a ``latent`` step (its nearest tokens, top
    first), ``done`` (with the Generation) or ``error`` (with the exception)."""

    kind: str
    token_ids: list[int] = field(default_factory=list)
    generation: Generation | None = None
    error: Exception | None = None


def check_speed(settings, speed) -> int | str | None:
    """Validate a requested speed against a model: a clear error for 0, too large, or text."""
    if settings.reasoning == "none":
        return None
    if settings.reasoning == "thoughts":
        if speed not in (None, ""):
            raise PonderError(f"--speed: a {settings.method} model thinks in a fixed number of continuous thoughts "
                              f"and takes no speed, got '{speed}'")
        return None
    if settings.reasoning == "tokens":
        if speed not in (None, 1, "1"):
            raise PonderError(f"--speed: a {settings.method} model thinks in tokens at speed 1 only, got '{speed}'")
        return 1
    if speed is None:
        return 1
    if str(speed) == "auto":
        return "auto"
    try:
        c = int(str(speed))
    except ValueError:
        raise PonderError(f"--speed must be an integer in 1..{settings.max_compression} or 'auto', got '{speed}'") from None
    if not 1 <= c <= settings.max_compression:
        raise PonderError(f"--speed must be in 1..{settings.max_compression} for this model (or 'auto'), got {c}")
    return c


def check_request(model, r: Request) -> None:
    """Bad settings fail at submission, one line naming the parameter, before any work."""
    if (r.question is None) == (r.prompt_ids is None):
        raise PonderError("a request needs a question or prompt_ids (not both)")
    if r.prompt_ids is not None and not r.prompt_ids:
        raise PonderError("prompt: empty")
    if r.max_new_tokens < 1:
        raise PonderError(f"--max-new-tokens must be >= 1, got {r.max_new_tokens}")
    if r.max_latent_steps < 0:
        raise PonderError(f"--max-latent-steps must be >= 0, got {r.max_latent_steps}")
    if r.temperature < 0 or r.latent_temperature < 0:
        raise PonderError("temperatures must be >= 0")
    if not 0 < r.top_p <= 1:
        raise PonderError(f"--top-p must be in (0, 1], got {r.top_p}")


class Handle:
    """What the submitter holds of a row: ``cancel()``; the row reports through ``request.on_event``."""

    def __init__(self, request: Request):
        self.request, self.t0 = request, time.perf_counter()
        self.cancelled, self.on_done = False, None  # on_done: Engine.run's collector

    def cancel(self):
        """Leave the batch at the next step (e.g. the client went away)."""
        self.cancelled = True

    def emit(self, kind: str, **kw):
        if self.request.on_event is not None:
            self.request.on_event(Event(kind, **kw))


class Row(Handle):
    """One running sequence: its request, phase, position and everything decoded so far."""

    def __init__(self, engine: Engine, request: Request, controller):
        super().__init__(request)
        m, st, r = engine.model, engine.model.settings, request
        self.raw = r.prompt_ids is not None
        self.speed = None if self.raw else check_speed(st, r.speed)
        self.prompt = list(r.prompt_ids) if self.raw else st.layout.generation_prompt(
            m.tokenizer, r.question, self.speed, think=st.reasoning != "none")
        self.phase = "tokens" if self.raw or st.reasoning in ("none", "tokens") else st.reasoning
        self.reasoner = not self.raw and st.reasoning == "tokens"  # a token reasoner: thinking, then its answer
        self.stretch = self.speed if (st.latent_positions == "stretched" and isinstance(self.speed, int)) else 1
        self.generator = engine.generator if r.seed is None else torch.Generator(m.device).manual_seed(r.seed)
        self.controller = controller
        self.policy_row = controller.new_row(r.question) if controller else None
        self.last_pos, self.steps, self.passes = 0, 0, 1  # passes: the prefill is one
        self.out: list[int] = []  # tokens decoded (without <eos>)
        self.answer_start = None if self.reasoner else 0  # where the answer starts in ``out`` (None: thinking)
        self.logprobs: list[float] = []
        self.latents: list[torch.Tensor] = []
        self.top_ids: list[list[int]] = []
        self.ended, self.stop, self.finished_now, self.latency = False, None, False, 0.0


class Engine:
    def __init__(self, model, max_batch: int = 64, seed: int = 0, use_cache: bool = True, generator=None):
        """``max_batch``: rows decoded together (more wait, and join as rows leave). ``generator``: the one
        shared by requests without a seed (``Decoder`` passes its own, so its calls continue one stream)."""
        if max_batch < 1:
            raise PonderError(f"--max-batch must be >= 1, got {max_batch}")
        self.model, self.tok, self.max_batch, self.use_cache = model, model.tokenizer, max_batch, use_cache
        self.generator = generator or torch.Generator(device=model.device).manual_seed(seed)
        st = model.settings
        self.think_end = st.layout.think_ids(self.tok)[1]
        self.eos, self.pad = self.tok.eos_token_id, self.tok.pad_token_id
        self.queue: list[Row] = []
        self.rows: list[Row] = []  # the running batch, in the order of the cache's batch dimension
        self._controllers: dict[tuple, object] = {}
        self._lock = threading.Lock()  # submit() may come from another thread than step()
        self.cache = self.mask = self.embeds = self.positions = None
        self.logits = self.mean = self.log_std = self.hidden = None
        self.whole_step = True  # False: batches take the engine's step even where static.py could (benchmarks)
        self.static_runs = 0  # batches the whole-step loop decoded (static.py)

    # -- the queue -----------------------------------------------------------------------------------
    def submit(self, request: Request, controller=None) -> Row:
        """Queue a request (checked now: a bad one raises here). ``controller``: an ``ExitController`` shared
        with other rows (``Decoder``); by default one is made from ``request.exit``."""
        check_request(self.model, request)
        if controller is None and request.exit is not None and request.prompt_ids is None:
            controller = self._controller(request.exit, request.max_new_tokens)
        row = Row(self, request, controller)
        self._check_positions(row, controller)
        with self._lock:
            self.queue.append(row)
        return row

    def _controller(self, exit, max_new_tokens: int):
        """One controller per policy setting, shared by the rows that ask for it: rows keep their own state,
        and building one may scan the vocabulary (NoWait, the markers of confidence and trim)."""
        from ponder.inference.exits import ExitController, make_policy

        key = (repr(exit), max_new_tokens)
        if key not in self._controllers:
            policy = make_policy(exit, self.model, max_new_tokens)
            self._controllers[key] = ExitController(policy, self.model) if policy else None
        return self._controllers[key]

    def abort(self, error: Exception | None = None) -> None:
        """Drop every running and waiting row (each gets an ``error`` event when ``error`` is given) and the
        batch state: after a failed step nothing in it can be trusted."""
        with self._lock:
            rows, self.queue = self.rows + self.queue, []
        self.rows = []
        self.cache = self.mask = self.embeds = self.positions = None
        self.logits = self.mean = self.log_std = self.hidden = None
        for r in rows:
            r.cancel()
            if error is not None:
                r.emit("error", error=error)

    def _check_positions(self, row: Row, controller):
        """A model with a position table (GPT-2): a row that could decode past its end is a one-line error now."""
        from ponder.model.positions import check_positions, decoding_positions, position_limit, probe_reserve

        if position_limit(self.model) is None:
            return
        r, exit = row.request, controller.policy.config if controller else None
        need = len(row.prompt) + r.max_new_tokens if row.raw else decoding_positions(
            self.model.settings, len(row.prompt), row.speed, r.max_new_tokens, r.max_latent_steps)
        check_positions(self.model, need + probe_reserve(self.model, exit), "decoding this question",
                        "lower --max-new-tokens or --max-latent-steps")

    @property
    def waiting(self) -> int:
        return len(self.queue)

    @property
    def running(self) -> int:
        return len(self.rows)

    @property
    def busy(self) -> bool:
        return bool(self.queue or self.rows)

    def run(self, requests: list[Request], controller=None) -> list[Generation]:
        """Decode ``requests`` to the end (rows already running go on alongside); results in order."""
        _sync(self.model.device)
        t0 = time.perf_counter()
        rows = [self.submit(r, controller) for r in requests]
        results: dict[int, Generation] = {}
        for row in rows:  # collect through the rows themselves, not their requests' callbacks
            row.on_done, row.t0 = results.__setitem__, t0
        with self._lock:  # a batch alone in a compiled engine: the whole-step loop (static.py) decodes it
            whole = len(self.queue) == len(rows) and static.takes(self, rows)
            if whole:
                self.queue = []
        if whole:
            static.run(self, rows)
            self.static_runs += 1
            for r in rows:
                self._finish(r)
        while any(id(r) not in results for r in rows):
            self.step()
        wall = time.perf_counter() - t0
        for g in results.values():
            g.wall_s = wall
        return [results[id(r)] for r in rows]

    # -- one step --------------------------------------------------------------------------------------
    @torch.no_grad()
    def step(self) -> None:
        """Admit waiting rows (their prefill is this step's pass), or advance every running row by one input."""
        self._leave([r for r in self.rows if r.cancelled])
        if self._admit():
            return
        if not self.rows:
            return
        parts = self._advance()  # [(row objects, their next input embeddings)]
        self._leave([r for r in self.rows if r.finished_now])
        if not self.rows:
            return
        x = self._assemble(parts)
        for r in self.rows:
            r.passes += 1
        pos = torch.tensor([[r.last_pos] for r in self.rows], device=x.device)
        self._forward(x[:, None], torch.ones_like(pos), pos, latent=any(r.phase == "latent" for r in self.rows))

    def _assemble(self, parts):
        """The batch's input embeddings, in the order of the (remaining) rows."""
        if len(parts) == 1 and len(parts[0][0]) == len(self.rows):  # one phase, nobody left: as it is
            return parts[0][1]
        where = {id(r): i for i, r in enumerate(self.rows)}
        first = parts[0][1]
        x = first.new_empty(len(self.rows), first.shape[-1])
        for rows, e in parts:
            x[torch.tensor([where[id(r)] for r in rows], device=x.device)] = e.to(x.dtype)
        return x

    def _admit(self) -> bool:
        with self._lock:
            n = max(0, self.max_batch - len(self.rows))
            new, self.queue = self.queue[:n], self.queue[n:]
        new = [r for r in new if not r.cancelled]
        if not new:
            return False
        m = self.model
        ids, mask, positions = prompt_batch(new, self.pad, m.device)
        old = self._state()
        self.cache = DynamicCache() if self.use_cache else None
        self.mask = self.embeds = self.positions = None
        self._forward(m.embed(ids), mask, positions, latent=m.settings.reasoning == "latent")
        if old is not None:
            self._merge(old)
        self.rows = (old["rows"] if old else []) + new
        return True

    def _state(self):
        if not self.rows:
            return None
        return {"rows": self.rows, "cache": self.cache, "mask": self.mask, "embeds": self.embeds,
                "positions": self.positions, "logits": self.logits, "mean": self.mean, "log_std": self.log_std,
                "hidden": self.hidden}

    def _merge(self, old):
        """Put the running rows (``old``) before the just-prefilled ones: both padded on the left to one length."""
        T = max(old["mask"].shape[1], self.mask.shape[1])

        def lpad(t, dim, n):  # n zero columns before dimension ``dim``
            if n == 0:
                return t
            shape = list(t.shape)
            shape[dim] = n
            return torch.cat([t.new_zeros(shape), t], dim)

        a, b = T - old["mask"].shape[1], T - self.mask.shape[1]
        if self.use_cache:
            for lo, ln in zip(old["cache"].layers, self.cache.layers):
                ln.keys = torch.cat([lpad(lo.keys, 2, a), lpad(ln.keys, 2, b)], 0)
                ln.values = torch.cat([lpad(lo.values, 2, a), lpad(ln.values, 2, b)], 0)
        else:
            self.embeds = torch.cat([lpad(old["embeds"], 1, a), lpad(self.embeds, 1, b)], 0)
            self.positions = torch.cat([lpad(old["positions"], 1, a), lpad(self.positions, 1, b)], 0)
        self.mask = torch.cat([lpad(old["mask"], 1, a), lpad(self.mask, 1, b)], 0)
        for k in ("logits", "mean", "log_std", "hidden"):
            mine, theirs = getattr(self, k), old[k]
            if mine is None and theirs is None:
                continue
            # The latent head ran for one group only: the other has no row in the latent phase to read it.
            mine = torch.zeros_like(theirs[:1]).expand(len(self.mask) - len(theirs), -1) if mine is None else mine
            theirs = torch.zeros_like(mine[:1]).expand(len(old["rows"]), -1) if theirs is None else theirs
            setattr(self, k, torch.cat([theirs, mine], 0))

    def _leave(self, rows: list[Row]):
        """Finished or cancelled rows leave the batch now; columns no remaining row attends to go with them."""
        if not rows:
            return
        gone = {id(r) for r in rows}
        keep = [i for i, r in enumerate(self.rows) if id(r) not in gone]
        for r in rows:
            if not r.cancelled:
                self._finish(r)
        self.rows = [self.rows[i] for i in keep]
        if not keep:
            self.cache = self.mask = self.embeds = self.positions = None
            self.logits = self.mean = self.log_std = self.hidden = None
            return
        idx = torch.tensor(keep, device=self.mask.device)
        self.mask = self.mask[idx]
        first = int(self.mask.any(0).long().argmax())  # leading columns that are padding for every row
        self.mask = self.mask[:, first:]
        if self.use_cache:
            for layer in self.cache.layers:
                layer.keys, layer.values = layer.keys[idx, :, first:], layer.values[idx, :, first:]
        else:
            self.embeds, self.positions = self.embeds[idx, first:], self.positions[idx, first:]
        for k in ("logits", "mean", "log_std", "hidden"):
            if getattr(self, k) is not None:
                setattr(self, k, getattr(self, k)[idx])

    # -- deciding each row's next input ---------------------------------------------------------------
    def _advance(self) -> list[tuple[list[Row], torch.Tensor]]:
        """Each running row's next input embedding, from the last pass's outputs, grouped as (rows, (n, d)
        embeddings); ``last_pos`` moves on. Rows finished now are flagged ``finished_now`` and feed nothing."""
        m, st, device = self.model, self.model.settings, self.model.device
        parts, ending = [], []
        for r in self.rows:
            r.finished_now = False
        by_phase = {p: [i for i, r in enumerate(self.rows) if r.phase == p] for p in ("latent", "thoughts", "tokens")}

        if by_phase["latent"]:
            idx = by_phase["latent"]
            rows, logits = [self.rows[i] for i in idx], self.logits[idx]
            ends = self._latent_ends(rows, logits)
            go = [k for k in range(len(idx)) if not ends[k]]
            if go:
                z = self._group_sample(
                    [rows[k] for k in go], lambda g, ks, t: LatentHead.sample(
                        self.mean[[idx[k] for k in ks]], self.log_std[[idx[k] for k in ks]], t, g),
                    lambda r: r.request.latent_temperature, go) * st.embed_std
                tops = logits[go].topk(3, -1).indices.tolist()
                for j, k in enumerate(go):
                    r = rows[k]
                    r.latents.append(z[j].float())
                    r.top_ids.append(tops[j])
                    r.steps += 1
                    r.last_pos += r.stretch
                    r.emit("latent", token_ids=tops[j])
                parts.append(([rows[k] for k in go], z))
            ending += [rows[k] for k in range(len(idx)) if ends[k]]

        if by_phase["thoughts"]:
            idx = by_phase["thoughts"]
            go = [i for i in idx if self.rows[i].steps < (st.num_thoughts or 0)]
            if go:
                x = m.thought_input(self.hidden[go])
                tops = self.logits[go].topk(3, -1).indices.tolist()
                for j, i in enumerate(go):
                    r = self.rows[i]
                    r.latents.append(x[j].float())
                    r.top_ids.append(tops[j])
                    r.steps += 1
                    r.last_pos += 1
                    r.emit("latent", token_ids=tops[j])
                parts.append(([self.rows[i] for i in go], x))
            ending += [self.rows[i] for i in idx if i not in go]

        if ending:  # their thinking is over (rows that hit max_latent_steps are made to end it): </think>
            for r in ending:
                r.phase = "tokens"
                r.last_pos += 1
            parts.append((ending, m.embed(torch.full((len(ending),), self.think_end, device=device))))

        if by_phase["tokens"]:
            idx = by_phase["tokens"]
            tokens = self._choose_tokens(idx)
            for i, t in zip(idx, tokens):
                self._write(self.rows[i], t)
            feed = [self.rows[i] for i in idx if not self.rows[i].finished_now]
            if feed:
                for r in feed:
                    r.last_pos += 1
                parts.append((feed, m.embed(torch.tensor([r.out[-1] for r in feed], device=device))))
        return parts

    def _latent_ends(self, rows: list[Row], logits) -> list[bool]:
        """A latent chain ends when the LM predicts </think> (or draws it: ``sample_stop``) or at its limit."""
        greedy = (logits.argmax(-1) == self.think_end).tolist()
        ends = [g or r.steps >= r.request.max_latent_steps for r, g in zip(rows, greedy)]
        sampled = [k for k, r in enumerate(rows) if r.request.sample_stop and r.steps < r.request.max_latent_steps]
        if sampled:
            p_end = torch.softmax(logits[sampled], -1)[:, self.think_end]
            draws = self._group_sample([rows[k] for k in sampled], lambda g, ks, t: torch.rand(
                len(ks), generator=g, device=logits.device), lambda r: 1.0, sampled)
            for j, k in enumerate(sampled):
                ends[k] = bool(draws[j] < p_end[j])
        return ends

    def _group_sample(self, rows: list[Row], draw, temperature, keys) -> torch.Tensor:
        """Random draws for ``rows``, one call per (generator, temperature) group, in batch order: rows that
        share the engine's generator draw together, as a one-shot batch always has."""
        groups: dict[tuple, list[int]] = {}
        for j, r in enumerate(rows):
            groups.setdefault((id(r.generator), temperature(r)), []).append(j)
        parts = {}
        for (_, t), js in groups.items():
            out = draw(rows[js[0]].generator, [keys[j] for j in js], t)
            parts.update({j: out[n] for n, j in enumerate(js)})
        return torch.stack([parts[j] for j in range(len(rows))])

    def _choose_tokens(self, idx: list[int]) -> list[int]:
        """The token each row in ``idx`` writes: sampled (greedy, temperature, top-p), then its exit policy's say."""
        rows = [self.rows[i] for i in idx]
        groups: dict[int, list[int]] = {}
        for j, r in enumerate(rows):
            if r.controller is not None:
                groups.setdefault(id(r.controller), []).append(j)
        every = len(idx) == len(self.rows)
        logits = self.logits if every and not groups else self.logits[idx]  # indexing copies: masks write
        for js in groups.values():
            logits[js] = rows[js[0]].controller.mask_logits(logits[js])
        tokens = logits.argmax(-1)
        hot = [j for j, r in enumerate(rows) if r.request.temperature > 0]
        if hot:
            sampled = self._group_sample([rows[j] for j in hot], lambda g, js, t: _sample(logits[js], *t, g),
                                         lambda r: (r.request.temperature, r.request.top_p), hot)
            tokens[hot] = sampled
        chosen = tokens.tolist()
        pos = torch.tensor([r.last_pos for r in self.rows], device=self.logits.device) if groups else None
        for js in groups.values():
            ctl = rows[js[0]].controller
            got = ctl.choose([rows[j].policy_row for j in js], [chosen[j] for j in js], lambda local, cue: self._probe(
                [idx[js[k]] for k in local], pos, cue, ctl.policy.config.probe_tokens, ctl.probe_finished))
            for j, t in zip(js, got):
                chosen[j] = t
        if any(r.request.logprobs for r in rows):
            lp = torch.log_softmax(self.logits[idx].float(), -1)
            for j, (r, t) in enumerate(zip(rows, chosen)):
                if r.request.logprobs:
                    r.logprobs.append(float(lp[j, t]))
        return chosen

    def _write(self, r: Row, token: int):
        """Append ``token`` to row ``r``; flag it finished at <eos>, a stop string or its token limit."""
        if token == self.eos:
            r.ended, r.finished_now = True, True
            if r.request.logprobs:
                r.logprobs.pop()
            return
        r.out.append(token)
        if r.answer_start is None:  # a token reasoner's thinking
            if token == self.think_end:
                r.answer_start = len(r.out)
            else:
                r.emit("think", token_ids=[token])
        else:
            r.emit("answer", token_ids=[token])
        if r.request.stop and r.answer_start is not None:
            text = self.tok.decode(r.out[r.answer_start:], skip_special_tokens=True)
            hit = [s for s in r.request.stop if s and s in text]
            if hit:
                r.stop, r.finished_now = min(hit, key=text.find), True
                return
        if len(r.out) >= r.request.max_new_tokens:
            r.finished_now = True

    # -- the forward pass and probes -------------------------------------------------------------------
    def _forward(self, embeds, mask, positions, latent: bool):
        """One pass over new inputs; keeps the last position's logits, latent head and hidden state."""
        cat = lambda a, b: b if a is None else torch.cat([a, b], 1)  # noqa: E731
        self.mask = cat(self.mask, mask)
        if self.use_cache:
            out = self.model(inputs_embeds=embeds, attention_mask=self.mask, position_ids=positions,
                             past_key_values=self.cache, use_cache=True, last_only=True, latent=latent)
        else:
            self.embeds, self.positions = cat(self.embeds, embeds), cat(self.positions, positions)
            out = self.model(inputs_embeds=self.embeds, attention_mask=self.mask, position_ids=self.positions,
                             last_only=True, latent=latent)
        last = lambda t: None if t is None else t[:, -1]  # noqa: E731
        self.hidden = last(out.hidden)  # the last-layer hidden state: a continuous thought's source
        self.logits, self.mean, self.log_std = last(out.logits).float(), last(out.latent_mean), last(out.latent_log_std)

    def _probe(self, rows: list[int], last_pos, cue: list[int], max_tokens: int, finished) -> list[tuple]:
        """Ask batch rows ``rows`` for their current answer without disturbing them: feed ``cue`` (the end of
        thinking and the answer cue) after each row's last token, decode greedily until ``finished(ids)`` or
        ``max_tokens``, then crop the cache and restore the state, so the main generation goes on exactly as
        if nothing had happened. The other rows ride along masked. -> (ids, probs, cue length) per row."""
        B, device = last_pos.shape[0], last_pos.device
        kept = (self.mask, self.embeds, self.positions, self.hidden, self.logits, self.mean, self.log_std)
        length = self.mask.shape[1]

        def on(alive):
            m = torch.zeros(B, 1, dtype=torch.long, device=device)
            m[alive] = 1
            return m

        pos = last_pos[:, None] + torch.arange(1, len(cue) + 1, device=device)
        cue_ids = torch.tensor(cue, device=device).expand(B, -1)
        self._forward(self.model.embed(cue_ids), on(rows).expand(-1, len(cue)), pos, latent=False)
        out, alive, last = {b: ([], []) for b in rows}, list(rows), pos[:, -1]
        for i in range(max_tokens):
            conf, token = torch.softmax(self.logits, -1).max(-1)
            tokens, confs = token.tolist(), conf.tolist()
            for b in alive:
                out[b][0].append(tokens[b])
                out[b][1].append(confs[b])
            alive = [b for b in alive if not finished(out[b][0])]
            if not alive or i == max_tokens - 1:
                break
            last = last + 1
            self._forward(self.model.embed(token[:, None]), on(alive), last[:, None], latent=False)
        if self.use_cache:  # crop(-n) drops the last n positions (transformers 5 refuses a positive length here)
            self.cache.crop(-(self.cache.get_seq_length() - length))
        self.mask, self.embeds, self.positions, self.hidden, self.logits, self.mean, self.log_std = kept
        return [(*out[b], len(cue)) for b in rows]

    # -- results ---------------------------------------------------------------------------------------
    def _finish(self, r: Row):
        _sync(self.model.device)
        r.latency = time.perf_counter() - r.t0
        st, tok, seq = self.model.settings, self.tok, r.out
        thinking, answer = 0, seq
        if r.reasoner:
            if r.answer_start is not None:
                reasoning, answer = seq[: r.answer_start - 1], seq[r.answer_start:]
            else:
                reasoning, answer = seq, None
            length = thinking = len(reasoning)
        else:
            length = r.steps
        text = tok.decode(seq, skip_special_tokens=False)
        answer_text = tok.decode(answer, skip_special_tokens=True) if answer is not None else None
        if r.stop is not None:
            answer_text = answer_text[: answer_text.find(r.stop)]
            text = text[: text.rfind(r.stop)] if r.stop in text else text
        ctl, prow = r.controller, r.policy_row
        if r.raw:
            parsed = answer_text
        else:
            parsed = "" if answer is None else (ctl.answer(prow, answer_text) if ctl else st.layout.parse_answer(answer_text))
        reason = "model" if answer is not None or st.reasoning != "tokens" else "eos" if r.ended else "length"
        g = Generation(
            question=r.request.question if not r.raw else tok.decode(r.prompt), speed=r.speed, text=text,
            answer=parsed, reasoning_length=length, wall_s=r.latency, token_ids=seq, ended=r.ended,
            latents=torch.stack(r.latents).cpu() if r.latents else None, latent_top_ids=r.top_ids,
            thinking_tokens=thinking, main_passes=r.passes,
            exit_reason=(prow.exit_reason if prow and prow.exit_reason else None if r.raw else reason),
            probe_tokens=sum(p.tokens for p in prow.probes) if prow else 0,
            probe_passes=sum(p.passes for p in prow.probes) if prow else 0,
            exit_probe=prow.exit_probe if prow else None, probe_answers=prow.answers if prow else [],
            probe_confidences=[p.confidence for p in prow.probes] if prow else [],
            latency_s=r.latency, token_logprobs=r.logprobs, stop=r.stop, prompt_tokens=len(r.prompt))
        if r.on_done:
            r.on_done(id(r), g)
        r.emit("done", generation=g)


def _sample(logits, temperature: float, top_p: float, generator):
    """Tokens drawn at ``temperature`` from the smallest set of tokens whose probability reaches ``top_p``."""
    probs = torch.softmax(logits / temperature, -1)
    if top_p < 1:
        sorted_p, order = probs.sort(-1, descending=True)
        drop = sorted_p.cumsum(-1) - sorted_p >= top_p  # tokens after the nucleus is already full
        sorted_p[drop] = 0
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def left_pad(prompts: list[list[int]], pad: int, device):
    """A batch of prompts padded on the left (ids, attention mask, positions counting real tokens only), so
    every row's next token is decoded at the same column."""
    T = max(map(len, prompts))
    ids = torch.tensor([[pad] * (T - len(p)) + p for p in prompts], device=device)
    mask = torch.tensor([[0] * (T - len(p)) + [1] * len(p) for p in prompts], device=device)
    return ids, mask, (mask.cumsum(-1) - 1).clamp(min=0)


def prompt_batch(rows: list[Row], pad: int, device):
    """The rows' prompts, left-padded (``left_pad``); each row's ``last_pos`` becomes its last prompt position."""
    ids, mask, positions = left_pad([r.prompt for r in rows], pad, device)
    for r, p in zip(rows, positions[:, -1].tolist()):
        r.last_pos = p
    return ids, mask, positions


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
