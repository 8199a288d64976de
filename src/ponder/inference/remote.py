"""Exit policies in front of an engine that already scales: vLLM, SGLang, or another ``ponder serve``.

``RemoteEngine`` has the ``Engine``'s interface (``submit`` a ``Request``, events, ``cancel``, ``run``) but
decodes through an OpenAI-compatible ``/v1/completions`` endpoint, so ``ponder serve --upstream URL`` puts
ponder's exit policies in front of a vLLM fleet with prefix caching. Per row:

* the thinking is requested in chunks of ``probe_every`` tokens (prompt sent as token ids, ``return_token_ids``
  and ``logprobs`` asked, as vLLM offers them); each returned token goes through the *same*
  ``ExitController.choose`` as in-process decoding, so policies decide exactly as they do there;
* a probe is one short greedy completion request -- prompt, thinking so far, ``</think>`` and the answer
  cue -- whose ``logprobs`` give DEER's confidence;
* when the policy ends the thinking (or forces " Wait"), the rest of the chunk is dropped and the next
  request continues from the forced tokens: up to one chunk per row is decoded upstream and never used
  (the price of not stepping the upstream token by token). NoWait sends its words as ``logit_bias`` -100.
* the answer is requested after ``</think>`` with the request's stop strings.

With the upstream serving the same weights greedily, a row gets the tokens in-process decoding gives (the
test runs one ``ponder serve`` in front of another). Main passes are not visible from here: ``main_passes``
counts upstream requests.
"""

from __future__ import annotations

import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from ponder.errors import PonderError
from ponder.inference.engine import Engine, Generation, Handle, Request, check_request


class RemoteRow(Handle):
    def __init__(self, request: Request, controller):
        super().__init__(request)
        self.controller = controller


class RemoteEngine:
    def __init__(self, model, url: str, upstream_model: str | None = None, api_key: str | None = None,
                 max_batch: int = 64, timeout: float = 600.0):
        """``model``: the reasoner's front (``model.io.load_front``: tokenizer, layout, config). ``url``: the
        upstream's base (``http://host:8000/v1``). ``upstream_model``: its model name (default: the first of
        its ``/v1/models``). ``max_batch``: rows in flight at once (the upstream batches them)."""
        import httpx

        if model.settings.reasoning != "tokens":
            raise PonderError(f"--upstream: a {model.settings.method} model thinks in latents, which no OpenAI "
                              "endpoint can feed back; serve it in-process (without --upstream)")
        self.model, self.tok = model, model.tokenizer
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)
        self.upstream_model = upstream_model or self._first_model()
        self.think_end = model.settings.layout.think_ids(self.tok)[1]
        self.pool = ThreadPoolExecutor(max_batch, thread_name_prefix="ponder-upstream")
        self.max_batch = max_batch
        self._lock = threading.Lock()
        self._running = 0
        self._submitted = 0
        self._controllers: dict[tuple, object] = {}
        self._live: set[RemoteRow] = set()

    def _first_model(self) -> str:
        try:
            models = self.http.get("/models").raise_for_status().json()["data"]
        except Exception as e:  # noqa: BLE001 - unreachable, refused, not OpenAI: one line
            raise PonderError(f"--upstream {self.url}: cannot list its models ({type(e).__name__}: {e})") from None
        if not models:
            raise PonderError(f"--upstream {self.url}: serves no model")
        return models[0]["id"]

    # -- the Engine's interface ----------------------------------------------------------------------------
    @property
    def waiting(self) -> int:
        with self._lock:
            return max(0, self._submitted - self._running)

    @property
    def running(self) -> int:
        with self._lock:
            return self._running

    busy = False  # nothing to step here: rows run in the pool

    def step(self) -> None:
        pass

    _controller = Engine._controller  # one per policy setting, as in-process

    def abort(self, error: Exception | None = None) -> None:
        """Cancel every row in flight: each stops before its next upstream request."""
        with self._lock:
            rows = list(self._live)
        for r in rows:
            r.cancel()

    def submit(self, request: Request, controller=None, on_done=None) -> RemoteRow:
        """``on_done(row key, Generation or the exception it failed with)``: ``run``'s collector."""
        check_request(self.model, request)
        if controller is None and request.exit is not None and request.prompt_ids is None:
            controller = self._controller(request.exit, request.max_new_tokens)
        row = RemoteRow(request, controller)
        row.on_done = on_done
        with self._lock:
            self._submitted += 1
            self._live.add(row)
        self.pool.submit(self._run, row)
        return row

    def run(self, requests: list[Request], controller=None) -> list[Generation]:
        results: dict[int, Generation | Exception] = {}
        done = threading.Semaphore(0)
        collect = lambda key, g: (results.__setitem__(key, g), done.release())  # noqa: E731
        rows = [self.submit(r, controller, collect) for r in requests]
        for _ in rows:
            done.acquire()
        failed = next((g for g in results.values() if isinstance(g, Exception)), None)
        if failed is not None:
            raise failed
        return [results[id(r)] for r in rows]

    # -- one row -----------------------------------------------------------------------------------------
    def _run(self, row: RemoteRow):
        with self._lock:
            self._running += 1
        try:
            g = self._decode(row)
        except Exception as e:  # noqa: BLE001 - the row fails, the engine goes on
            if row.on_done:
                row.on_done(id(row), e)
            row.emit("error", error=e)
            return
        finally:
            with self._lock:
                self._running -= 1
                self._submitted -= 1
                self._live.discard(row)
        if g is None:  # cancelled
            return
        if row.on_done:
            row.on_done(id(row), g)
        row.emit("done", generation=g)

    def _complete(self, prompt: list[int], max_tokens: int, greedy: bool, r: Request, stop=(), bias=None) -> dict:
        body = {"model": self.upstream_model, "prompt": prompt, "max_tokens": max_tokens, "logprobs": 1,
                "return_token_ids": True, "temperature": 0.0 if greedy else r.temperature}
        if not greedy:
            body.update(top_p=r.top_p, seed=r.seed)
        if stop:
            body["stop"] = list(stop)
        if bias:
            body["logit_bias"] = {str(i): -100 for i in bias}
        try:
            reply = self.http.post("/completions", json=body)
        except Exception as e:  # noqa: BLE001
            raise PonderError(f"upstream {self.url}: {type(e).__name__}: {e}") from None
        if reply.status_code != 200:
            raise PonderError(f"upstream {self.url}: HTTP {reply.status_code}: {reply.text[:300]}")
        c = reply.json()["choices"][0]
        ids = c.get("token_ids")
        if ids is None:  # an upstream without return_token_ids: its text, tokenized here
            ids = self.tok(c["text"], add_special_tokens=False)["input_ids"]
        lps = ((c.get("logprobs") or {}).get("token_logprobs") or [0.0] * len(ids))[: len(ids)]
        eos = c.get("finish_reason") == "stop" and not c.get("stop_reason")
        return {"ids": list(ids), "logprobs": list(lps), "eos": eos, "stop": c.get("stop_reason"), "text": c["text"]}

    def _decode(self, row: RemoteRow) -> Generation | None:
        r, tok, lay, ctl = row.request, self.tok, self.model.settings.layout, row.controller
        prompt = list(r.prompt_ids) if r.prompt_ids is not None else lay.generation_prompt(tok, r.question, 1, think=True)
        raw, out, lps, calls = r.prompt_ids is not None, [], [], 0
        prow = ctl.new_row(r.question) if ctl else None
        bias = list(ctl.suppressed) if ctl else None
        answer_start = 0 if raw else None
        ended = stop = None
        probes = lambda local, cue: [self._probe(prompt + out, cue, ctl, r)]  # noqa: E731 - one row here
        while answer_start is None and len(out) < r.max_new_tokens:  # the thinking, in chunks
            if row.cancelled:
                return None
            size = ctl.policy.config.probe_every if ctl else r.max_new_tokens
            got = self._complete(prompt + out, min(size, r.max_new_tokens - len(out)), r.temperature <= 0, r, bias=bias)
            calls += 1
            candidates = got["ids"] + ([tok.eos_token_id] if got["eos"] else [])
            if not candidates:
                break
            for k, t in enumerate(candidates):
                chosen = ctl.choose([prow], [t], probes)[0] if ctl else t
                if chosen == tok.eos_token_id:
                    ended = True
                    break
                out.append(chosen)
                lps.append(got["logprobs"][k] if chosen == t and k < len(got["logprobs"]) else 0.0)
                if chosen == self.think_end:
                    answer_start = len(out)
                    if chosen == t and not r.stop:  # the model's own end: the chunk's rest is its answer
                        rest = got["ids"][k + 1:r.max_new_tokens - len(out) + k + 1]
                        out += rest
                        lps += got["logprobs"][k + 1:k + 1 + len(rest)]
                        ended = got["eos"] and k + 1 + len(rest) == len(got["ids"])
                        if rest:
                            row.emit("answer", token_ids=rest)
                else:
                    row.emit("think", token_ids=[chosen])
                if chosen != t or answer_start is not None or len(out) >= r.max_new_tokens:
                    break  # the policy took over, or the thinking is over: the rest of the chunk is dropped
            while prow is not None and prow.queue and len(out) < r.max_new_tokens:  # forced tokens
                t = ctl.choose([prow], [tok.eos_token_id], probes)[0]
                out.append(t)
                lps.append(0.0)
                if t == self.think_end:
                    answer_start = len(out)
            if ended:
                break
        if not ended and answer_start is not None and len(out) < r.max_new_tokens:  # the answer
            if row.cancelled:
                return None
            got = self._complete(prompt + out, r.max_new_tokens - len(out), r.temperature <= 0, r, stop=r.stop)
            calls += 1
            out += got["ids"]
            lps += got["logprobs"]
            ended, stop = got["eos"], got["stop"]
            row.emit("answer", token_ids=got["ids"])
        return self._generation(row, prompt, out, lps, answer_start, bool(ended), stop, calls, prow)

    def _probe(self, prefix: list[int], cue: list[int], ctl, r: Request) -> tuple:
        got = self._complete(prefix + cue, ctl.policy.config.probe_tokens, True, r)
        ids, probs = got["ids"], [math.exp(x) for x in got["logprobs"]]
        if got["eos"]:  # read_probe wants the stop token a read ended with
            ids, probs = ids + [self.tok.eos_token_id], probs + [1.0]
        return ids, probs, len(cue)

    def _generation(self, row, prompt, out, lps, answer_start, ended, stop, calls, prow) -> Generation:
        r, tok, lay, ctl = row.request, self.tok, self.model.settings.layout, row.controller
        raw = r.prompt_ids is not None
        answer = out[answer_start:] if answer_start is not None else None
        thinking = 0 if raw else (answer_start - 1 if answer_start is not None else len(out))
        answer_text = tok.decode(answer, skip_special_tokens=True) if answer is not None else None
        if stop is not None and answer_text is not None and stop in answer_text:
            answer_text = answer_text[: answer_text.find(stop)]
        if raw:
            parsed = answer_text
        else:
            parsed = "" if answer is None else (ctl.answer(prow, answer_text) if ctl else lay.parse_answer(answer_text))
        reason = "model" if answer is not None else "eos" if ended else "length"
        latency = time.perf_counter() - row.t0
        return Generation(
            question=r.question if not raw else tok.decode(prompt), speed=None if raw else 1,
            text=tok.decode(out, skip_special_tokens=False), answer=parsed, reasoning_length=thinking,
            wall_s=latency, token_ids=out, ended=ended, thinking_tokens=thinking, main_passes=calls,
            exit_reason=(prow.exit_reason if prow and prow.exit_reason else None if raw else reason),
            probe_tokens=sum(p.tokens for p in prow.probes) if prow else 0,
            probe_passes=sum(p.passes for p in prow.probes) if prow else 0,
            exit_probe=prow.exit_probe if prow else None, probe_answers=prow.answers if prow else [],
            probe_confidences=[p.confidence for p in prow.probes] if prow else [], latency_s=latency,
            token_logprobs=lps if r.logprobs else [], stop=stop, prompt_tokens=len(prompt))
