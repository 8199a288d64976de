"""One decoder for every method, so their latencies are measured by the same loop.

Batched with left padding and one ``transformers`` KV cache (``DynamicCache``) from question to answer:

1. prefill the prompt (question, speed marker, ``<think>``; No-CoT's also ends with ``</think>``);
2. latent methods: loop { latent head -> sample at temperature tau (tau = 0: the mean) -> x embed_std
   -> next input embedding } until a row's LM predicts ``</think>`` or ``max_latent_steps`` is reached.
   Finished rows stop advancing: they are fed a masked pad, so their cache holds nothing new;
   continuous-thought methods (Coconut, CODI): exactly ``num_thoughts`` steps, each feeding
   ``model.thought_input(last hidden state)`` as the next input embedding;
3. feed ``</think>`` and decode the answer as tokens from the same cache (greedy or sampled);
   CoT simply starts here and writes its reasoning as tokens.

``use_cache=False`` re-encodes the whole prefix at every step: slower, only there to prove the cache exact.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache

from ponder.errors import PonderError
from ponder.model.latent_head import LatentHead


@dataclass
class Generation:
    question: str
    speed: int | str | None
    text: str  # everything decoded as text after the prompt (CoT: reasoning, </think>, answer)
    answer: str  # extracted answer
    reasoning_length: int  # tokens between the separators, or latent steps / continuous thoughts
    wall_s: float  # wall time of the call that produced it (its batch)
    token_ids: list[int] = field(default_factory=list)  # the decoded tokens, up to (without) <eos>
    ended: bool = True  # <eos> was decoded (False: cut by max_new_tokens)
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
    latency_s: float = 0.0  # from the call's start to this row's last token (<= wall_s; probes included)


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


class Decoder:
    def __init__(self, model, max_new_tokens: int = 256, max_latent_steps: int = 64, temperature: float = 0.0,
                 latent_temperature: float = 0.0, seed: int = 0, use_cache: bool = True, sample_stop: bool = False,
                 exit=None):
        """``sample_stop``: a latent chain ends with probability p(``</think>``) at each step instead of when
        ``</think>`` is the LM's top token (RL rollouts: the length is then an action that can be reinforced).
        ``exit``: an ``ExitConfig`` (or a policy name) whose policy may end a token reasoner's thinking early
        (``inference/exits.py``)."""
        if max_new_tokens < 1:
            raise PonderError(f"--max-new-tokens must be >= 1, got {max_new_tokens}")
        if max_latent_steps < 0:
            raise PonderError(f"--max-latent-steps must be >= 0, got {max_latent_steps}")
        if temperature < 0 or latent_temperature < 0:
            raise PonderError("temperatures must be >= 0")
        self.model, self.tok = model, model.tokenizer
        self.max_new_tokens, self.max_latent_steps = max_new_tokens, max_latent_steps
        self.temperature, self.latent_temperature, self.use_cache = temperature, latent_temperature, use_cache
        self.sample_stop = sample_stop
        self.exit = exit
        self.policy = None
        if exit is not None:
            from ponder.inference.exits import make_policy

            self.policy = make_policy(exit, model, max_new_tokens)  # None for "none": today's loop, unchanged
        self.generator = torch.Generator(device=model.device).manual_seed(seed)

    # -- one forward step over new inputs ------------------------------------------------------------
    def _reset(self):
        self.cache = DynamicCache() if self.use_cache else None
        self.mask = self.embeds = self.positions = self.hidden = None

    def _step(self, embeds, mask, positions, latent: bool):
        """``latent``: run the latent head (only when the next input may be a CoLaR latent)."""
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
        return last(out.logits).float(), last(out.latent_mean), last(out.latent_log_std)

    def _probe(self, rows: list[int], last_pos, cue: list[int], max_tokens: int, finished) -> list[tuple]:
        """Ask ``rows`` for their current answer without disturbing them: feed ``cue`` (the end of thinking
        and the answer cue) after each row's last token, decode greedily until ``finished(ids)`` or
        ``max_tokens``, then crop the cache and restore the mask, so the main generation goes on exactly as if
        nothing had happened. The other rows ride along masked. -> (ids, probs, cue length) per row."""
        B, device = last_pos.shape[0], last_pos.device
        kept, length = (self.mask, self.embeds, self.positions, self.hidden), self.mask.shape[1]

        def on(alive):
            m = torch.zeros(B, 1, dtype=torch.long, device=device)
            m[alive] = 1
            return m

        pos = last_pos[:, None] + torch.arange(1, len(cue) + 1, device=device)
        cue_ids = torch.tensor(cue, device=device).expand(B, -1)
        logits, _, _ = self._step(self.model.embed(cue_ids), on(rows).expand(-1, len(cue)), pos, latent=False)
        out, alive, last = {b: ([], []) for b in rows}, list(rows), pos[:, -1]
        for i in range(max_tokens):
            conf, token = torch.softmax(logits, -1).max(-1)
            tokens, confs = token.tolist(), conf.tolist()
            for b in alive:
                out[b][0].append(tokens[b])
                out[b][1].append(confs[b])
            alive = [b for b in alive if not finished(out[b][0])]
            if not alive or i == max_tokens - 1:
                break
            last = last + 1
            logits, _, _ = self._step(self.model.embed(token[:, None]), on(alive), last[:, None], latent=False)
        if self.use_cache:  # crop(-n) drops the last n positions (transformers 5 refuses a positive length here)
            self.cache.crop(-(self.cache.get_seq_length() - length))
        self.mask, self.embeds, self.positions, self.hidden = kept
        return [(*out[b], len(cue)) for b in rows]

    def _next_token(self, logits):
        if self.temperature <= 0:
            return logits.argmax(-1)
        probs = torch.softmax(logits / self.temperature, -1)
        return torch.multinomial(probs, 1, generator=self.generator).squeeze(-1)

    # -- the loop ------------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, questions: list[str], speed=None) -> list[Generation]:
        model, tok, st = self.model, self.tok, self.model.settings
        speed = check_speed(st, speed)
        think_end, eos, pad = st.layout.think_ids(tok)[1], tok.eos_token_id, tok.pad_token_id
        device, B = model.device, len(questions)
        if B == 0:
            return []
        _sync(device)
        t0 = time.perf_counter()
        self._reset()
        prompts = [st.layout.generation_prompt(tok, q, speed, think=st.reasoning != "none") for q in questions]
        ids, mask, positions = left_pad(prompts, pad, device)
        logits, mean, log_std = self._step(model.embed(ids), mask, positions, latent=st.reasoning == "latent")
        fed = torch.ones(B, dtype=torch.long, device=device)  # main forward passes each row took part in
        last_pos = positions[:, -1]  # the position of the last token fed (see methods/batch.py for the layout)
        steps = torch.zeros(B, dtype=torch.long, device=device)
        latents, top_ids = [], []

        if st.reasoning == "latent":
            stretch = speed if (st.latent_positions == "stretched" and speed != "auto") else 1
            pad_embed = model.embed(torch.full((B, 1), pad, device=device))
            active = torch.ones(B, dtype=torch.bool, device=device)
            for _ in range(self.max_latent_steps):
                if self.sample_stop:
                    p_end = torch.softmax(logits, -1)[:, think_end]
                    active &= torch.rand(B, generator=self.generator, device=device) >= p_end
                else:
                    active &= logits.argmax(-1) != think_end
                if not active.any():
                    break
                z = LatentHead.sample(mean, log_std, self.latent_temperature, self.generator) * st.embed_std
                x = torch.where(active[:, None, None], z[:, None].to(pad_embed.dtype), pad_embed)
                latents.append(torch.where(active[:, None], z, torch.nan))
                top_ids.append(logits.topk(3, -1).indices)
                pos = torch.where(active, last_pos + stretch, last_pos)
                logits, mean, log_std = self._step(x, active.long()[:, None], pos[:, None], latent=True)
                steps += active.long()
                fed += active.long()
                last_pos = pos
        elif st.reasoning == "thoughts":
            # A fixed number of continuous thoughts, the same for every row: no masking needed.
            ones = torch.ones((B, 1), dtype=torch.long, device=device)
            dtype = model.lm.get_input_embeddings().weight.dtype
            for _ in range(st.num_thoughts or 0):
                x = model.thought_input(self.hidden)
                latents.append(x.float())
                top_ids.append(logits.topk(3, -1).indices)
                last_pos = last_pos + 1
                logits, _, _ = self._step(x[:, None].to(dtype), ones, last_pos[:, None], latent=False)
                steps += 1
                fed += 1

        if st.reasoning in ("latent", "thoughts"):
            # Every row now ends its thinking (rows that hit max_latent_steps are made to).
            end = torch.full((B, 1), think_end, device=device)
            logits, _, _ = self._step(model.embed(end), torch.ones_like(end), last_pos[:, None] + 1, latent=False)
            last_pos = last_pos + 1
            fed += 1

        out_ids, stamps = [], []  # stamps[i]: seconds from t0 until token i was known (a row's latency)
        done = torch.zeros(B, dtype=torch.bool, device=device)
        ctl = None
        if self.policy is not None:
            from ponder.inference.exits import ExitController

            ctl = ExitController(self.policy, model, questions)
        for i in range(self.max_new_tokens):
            token = self._next_token(ctl.mask_logits(logits) if ctl else logits)
            if ctl:  # the policy may end a row's thinking here, after probing it through the same cache
                token = ctl.choose(token, done, lambda rows, cue: self._probe(
                    rows, last_pos, cue, self.policy.config.probe_tokens, ctl.probe_finished))
            token = torch.where(done, torch.full_like(last_pos, pad), token)
            out_ids.append(token)
            was_done, done = done, done | (token == eos)
            finished = bool(done.all())  # (a sync: the stamp below is when the token was really known)
            stamps.append(time.perf_counter() - t0)
            if finished or i == self.max_new_tokens - 1:  # no forward pass whose logits nobody reads
                break
            last_pos = last_pos + (~was_done).long()
            fed += (~done).long()  # a row's own <eos> rides along in this pass, but the row no longer needs it
            logits, _, _ = self._step(model.embed(token[:, None]), (~was_done).long()[:, None], last_pos[:, None],
                                      latent=False)
        _sync(device)
        wall = time.perf_counter() - t0

        gen_ids = torch.stack(out_ids, 1).tolist()
        lat = torch.stack(latents, 1) if latents else None
        tops = torch.stack(top_ids, 1).tolist() if top_ids else None
        results = []
        for b in range(B):
            seq = gen_ids[b]
            ended = eos in seq
            seq = seq[: seq.index(eos)] if ended else seq
            thinking, answer = 0, seq
            if st.reasoning == "tokens":
                reasoning, answer = (seq[: seq.index(think_end)], seq[seq.index(think_end) + 1:]) if think_end in seq else (seq, None)
                length = thinking = len(reasoning)
            else:
                length = int(steps[b])
            text = tok.decode(seq, skip_special_tokens=False)
            answer_text = tok.decode(answer, skip_special_tokens=True) if answer is not None else None
            parsed = "" if answer is None else (ctl.answer(b, answer_text) if ctl else
                                                st.layout.parse_answer(answer_text))
            row = ctl.rows[b] if ctl else None
            reason = "model" if answer is not None or st.reasoning != "tokens" else "eos" if ended else "length"
            results.append(Generation(
                question=questions[b], speed=speed, text=text, answer=parsed, reasoning_length=length, wall_s=wall,
                token_ids=seq, ended=ended, latents=None if lat is None else lat[b, :length].cpu(),
                latent_top_ids=[] if tops is None else tops[b][:length], thinking_tokens=thinking,
                main_passes=int(fed[b]), exit_reason=(row.exit_reason if row and row.exit_reason else reason),
                probe_tokens=sum(p.tokens for p in row.probes) if row else 0,
                probe_passes=sum(p.passes for p in row.probes) if row else 0,
                exit_probe=row.exit_probe if row else None, probe_answers=row.answers if row else [],
                probe_confidences=[p.confidence for p in row.probes] if row else [],
                latency_s=stamps[min(len(seq), len(stamps) - 1)]))
        return results


def left_pad(prompts: list[list[int]], pad: int, device):
    """A batch of prompts padded on the left (ids, attention mask, positions counting real tokens only), so
    every row's next token is decoded at the same column."""
    T = max(map(len, prompts))
    ids = torch.tensor([[pad] * (T - len(p)) + p for p in prompts], device=device)
    mask = torch.tensor([[0] * (T - len(p)) + [1] * len(p) for p in prompts], device=device)
    return ids, mask, (mask.cumsum(-1) - 1).clamp(min=0)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
