"""The FastAPI application: OpenAI's routes over one continuous-batching ``Engine``.

    /v1/models  /v1/chat/completions  /v1/completions   (with --api-key: 'Authorization: Bearer KEY')
    /health  /metrics

A request is validated and planned (``params.py``: 400s name their parameter), admitted if the batch and
the queue have room for its rows (else 429 with Retry-After), submitted as one engine row per choice, and
answered when its rows are done -- or streamed as server-sent events while they decode. A client that goes
away cancels its rows: they leave the batch at the next step.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import time
import uuid
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ponder.errors import PonderError
from ponder.inference.engine import Engine, Generation
from ponder.inference.engine import Request as EngineRequest
from ponder.serve import render
from ponder.serve.metrics import Metrics
from ponder.serve.params import Plan, bad_value, plan_chat, plan_completion
from ponder.serve.protocol import (
    APIError, ChatChoice, ChatCompletion, ChatCompletionRequest, ChatMessageOut, Completion, CompletionChoice,
    CompletionRequest, CompletionTokensDetails, ModelCard, ModelList, PonderInfo, Usage, validation_error)
from ponder.serve.runner import EngineThread, event_sink

log = logging.getLogger("ponder.serve")
ROUTES = ("/v1/models", "/v1/chat/completions", "/v1/completions", "/health", "/metrics")


class _ClientGone(Exception):
    pass


class Job:
    """One HTTP request's rows in the engine: their events arrive in ``queue`` as (choice index, Event)."""

    def __init__(self, server: Server, plan: Plan):
        self.server, self.plan = server, plan
        self.queue: asyncio.Queue = asyncio.Queue()
        self.rows: list = []
        self.results: dict[int, Generation] = {}
        self.open = set(range(len(plan.rows)))  # rows neither finished nor released
        self.t0 = time.perf_counter()
        self.first_delta = None

    async def submit(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            for i, kw in enumerate(self.plan.rows):
                request = EngineRequest(**kw, on_event=event_sink(loop, self.queue, i))
                # off the event loop: building a row tokenizes, an exit policy may scan the vocabulary
                self.rows.append(await asyncio.to_thread(self.server.runner.submit, request))
        except PonderError as e:
            self.close()
            raise bad_value(e) from None
        except BaseException:
            self.close()
            raise

    def cancel(self) -> None:
        self.queue.put_nowait((None, None))  # wakes a waiting reader: the client is gone

    async def next(self):
        """The next (index, event); a ``done`` is recorded; ``error`` raises a 500."""
        i, event = await self.queue.get()
        if event is None:
            raise _ClientGone()
        if event.kind == "done":
            g = event.generation
            self.results[i] = g
            self._release(i)
            self.server.count_row(self.plan, g)
        elif event.kind == "error":
            self._release(i)
            raise APIError(500, f"decoding failed: {type(event.error).__name__}: {event.error}", code="engine_error")
        return i, event

    @property
    def done(self) -> bool:
        return len(self.results) == len(self.plan.rows)

    def _release(self, i: int) -> None:
        if i in self.open:
            self.open.discard(i)
            self.server.outstanding -= 1

    def close(self) -> None:
        """Cancel the rows still running or waiting and give their places back."""
        for i in sorted(self.open):
            if i < len(self.rows):
                self.rows[i].cancel()
                self.server.metrics.rows_cancelled += 1
            self._release(i)


class Server:
    """The state one app serves from: the model, its engine and thread, the admission count, metrics."""

    def __init__(self, model, args, model_name: str):
        self.model, self.args, self.model_name = model, args, model_name
        if getattr(args, "upstream", None):  # exit policies in front of vLLM / SGLang / another ponder serve
            from ponder.inference.remote import RemoteEngine

            self.engine = RemoteEngine(model, args.upstream, args.upstream_model, max_batch=args.max_batch,
                                       api_key=args.upstream_api_key or os.environ.get("UPSTREAM_API_KEY"))
        else:
            self.engine = Engine(model, max_batch=args.max_batch)
        self.runner = EngineThread(self.engine)
        self.metrics = Metrics()
        self.api_key = args.api_key or os.environ.get("PONDER_API_KEY") or None
        self.outstanding = 0  # rows admitted and not yet finished or cancelled (the event loop's count)
        self.created = int(time.time())

    # -- checks ------------------------------------------------------------------------------------
    def authorize(self, request: Request) -> None:
        if self.api_key is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip().encode(), self.api_key.encode()):
            raise APIError(401, "Incorrect API key provided: pass it as 'Authorization: Bearer KEY'.",
                           code="invalid_api_key")

    async def parse(self, request: Request, cls):
        raw = await request.body()
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise APIError(400, "We could not parse the JSON body of your request: it must be one JSON object.",
                           code="invalid_json") from None
        if not isinstance(data, dict):
            raise APIError(400, f"The request body must be a JSON object, got {type(data).__name__}.",
                           code="invalid_json")
        try:
            body = cls.model_validate(data)
        except ValidationError as e:
            raise validation_error(e) from None
        if body.model != self.model_name:
            raise APIError(404, f"The model '{body.model}' does not exist: this server serves '{self.model_name}' "
                                "(GET /v1/models).", "model", "model_not_found")
        return body

    def admit(self, plan: Plan) -> None:
        n, room = len(plan.rows), self.args.max_batch + self.args.max_queue
        if n > room:
            raise APIError(400, f"Invalid value for 'n': the server runs at most {room} rows at once "
                                f"(--max-batch {self.args.max_batch} + --max-queue {self.args.max_queue}).",
                           "n", "invalid_value")
        if self.outstanding + n > room:
            raise APIError(429, f"The server is busy: {self.outstanding} rows are running or waiting (at most "
                                f"{self.args.max_batch} running and {self.args.max_queue} waiting). Retry after a "
                                "moment.", code="rate_limit_exceeded", type="rate_limit_error",
                           headers={"Retry-After": "1"})
        self.outstanding += n

    def count_row(self, plan: Plan, g: Generation) -> None:
        m = self.model
        self.metrics.row(prompt=g.prompt_tokens, reasoning=0 if plan.raw else render.reasoning_tokens(m, g),
                         answer=len(render.answer_ids(m, g, plan.raw)),
                         latent=0 if plan.raw else render.latent_steps(m, g), probes=g.probe_tokens)
        self.metrics.latency.observe(g.latency_s)

    # -- answers -------------------------------------------------------------------------------------
    def usage(self, plan: Plan, results: list[Generation]) -> Usage:
        m = self.model
        prompt = sum(plan.prompt_tokens)
        completion = sum(render.completion_tokens(m, g) for g in results)
        reasoning = 0 if plan.raw else sum(render.reasoning_tokens(m, g) for g in results)
        return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion,
                     completion_tokens_details=CompletionTokensDetails(reasoning_tokens=reasoning))

    def summary(self, plan: Plan, results: list[Generation]) -> PonderInfo:
        """The response's ``ponder`` object: the first choice's exit reason, costs summed over the choices."""
        infos = [render.info(self.model, g, plan.exit_label, plan.raw) for g in results]
        return PonderInfo(speed=plan.speed, exit=plan.exit_label, exit_reason=infos[0].exit_reason if infos else None,
                          thinking_tokens=sum(i.thinking_tokens for i in infos),
                          latent_steps=sum(i.latent_steps for i in infos),
                          probe_tokens=sum(i.probe_tokens for i in infos),
                          latency_s=max((i.latency_s for i in infos), default=0.0))

    def chat_response(self, plan: Plan, results: list[Generation]) -> ChatCompletion:
        m, choices = self.model, []
        for i, g in enumerate(results):
            thinking = render.reasoning_text(m, g)
            choices.append(ChatChoice(
                index=i, message=ChatMessageOut(content=g.answer, reasoning_content=thinking, reasoning=thinking),
                finish_reason=g.finish_reason, logprobs=render.chat_logprobs(m, g) if plan.logprobs else None,
                ponder=render.info(m, g, plan.exit_label, plan.raw)))
        return ChatCompletion(id=f"chatcmpl-{uuid.uuid4().hex}", created=int(time.time()), model=self.model_name,
                              choices=choices, usage=self.usage(plan, results), ponder=self.summary(plan, results))

    def completion_response(self, plan: Plan, results: list[Generation]) -> Completion:
        m, choices = self.model, []
        for i, g in enumerate(results):
            echo = plan.prompt_texts[plan.prompt_of_row[i]] if plan.echo else ""
            choices.append(CompletionChoice(
                index=i, text=echo + g.answer, finish_reason=g.finish_reason, stop_reason=g.stop,
                token_ids=g.token_ids if plan.return_token_ids else None,
                logprobs=render.completion_logprobs(m, g, len(echo)) if plan.logprobs else None,
                ponder=render.info(m, g, plan.exit_label, plan.raw)))
        return Completion(id=f"cmpl-{uuid.uuid4().hex}", created=int(time.time()), model=self.model_name,
                          choices=choices, usage=self.usage(plan, results), ponder=self.summary(plan, results))

    # -- running a request -------------------------------------------------------------------------------
    async def run(self, request: Request, plan: Plan, stream: bool, include_usage: bool, chat: bool):
        self.admit(plan)
        job = Job(self, plan)
        await job.submit()
        if stream:
            return _EventStream(job, self.stream(job, include_usage, chat), media_type="text/event-stream",
                                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        watch = asyncio.create_task(_wait_disconnect(request))
        watch.add_done_callback(lambda t: t.cancelled() or job.cancel())
        try:
            while not job.done:
                await job.next()
        except _ClientGone:
            return PlainTextResponse("", status_code=499)  # nobody reads it: the client closed the connection
        finally:
            watch.cancel()
            job.close()
        results = [job.results[i] for i in range(len(plan.rows))]
        return self.chat_response(plan, results) if chat else self.completion_response(plan, results)

    async def stream(self, job: Job, include_usage: bool, chat: bool):
        m, tok, plan = self.model, self.model.tokenizer, job.plan
        rid = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"
        created, obj = int(time.time()), "chat.completion.chunk" if chat else "text_completion"
        n = len(plan.rows)
        prefixes = render.answer_prefixes(m, plan.exit)
        think = [render.Channel(lambda ids: tok.decode(ids, skip_special_tokens=False)) for _ in range(n)]
        view = render.text_view(plan.stop) if plan.raw else render.answer_view(prefixes, plan.stop)
        answer = [render.Channel(lambda ids: tok.decode(ids, skip_special_tokens=True), view) for _ in range(n)]

        def chunk(i, delta=None, finish=None, **extra):
            choice = {"index": i, "delta": delta or {}} if chat else {"index": i, "text": (delta or {}).get("content", "")}
            choice.update(logprobs=extra.pop("logprobs", None), finish_reason=finish, **extra)
            return _sse({"id": rid, "object": obj, "created": created, "model": self.model_name, "choices": [choice]})

        def delta(i, kind, text):
            if not text:
                return None
            if job.first_delta is None:
                job.first_delta = time.perf_counter() - job.t0
                self.metrics.ttft.observe(job.first_delta)
            return chunk(i, {"reasoning_content": text, "reasoning": text} if kind == "think" else {"content": text})

        try:
            for i in range(n):
                if chat:
                    yield chunk(i, {"role": "assistant", "content": ""})
                elif plan.echo:
                    yield chunk(i, {"content": plan.prompt_texts[plan.prompt_of_row[i]]})
            while not job.done:
                i, event = await job.next()
                out = None
                if event.kind == "think":
                    out = delta(i, "think", think[i].add(event.token_ids))
                elif event.kind == "latent":
                    out = delta(i, "think", think[i].add_text(render.latent_text(tok, event.token_ids)))
                elif event.kind == "answer":
                    out = delta(i, "answer", answer[i].add(event.token_ids))
                elif event.kind == "done":
                    g = event.generation
                    if m.settings.reasoning == "tokens" and not plan.raw:
                        rest = think[i].finish(render.reasoning_text(m, g) or "")
                        if rest:
                            yield delta(i, "think", rest)
                    rest = answer[i].finish(g.answer)
                    if rest:
                        yield delta(i, "answer", rest)
                    if answer[i].sent != g.answer:
                        log.warning("streamed answer %r differs from the final answer %r", answer[i].sent, g.answer)
                    lp = None
                    if plan.logprobs:
                        lp = render.completion_logprobs(m, g) if plan.raw else render.chat_logprobs(m, g)
                    out = chunk(i, finish=g.finish_reason, logprobs=lp,
                                ponder=render.info(m, g, plan.exit_label, plan.raw).model_dump())
                if out:
                    yield out
            results = [job.results[i] for i in range(n)]
            if include_usage:
                yield _sse({"id": rid, "object": obj, "created": created, "model": self.model_name, "choices": [],
                            "usage": self.usage(plan, results).model_dump(),
                            "ponder": self.summary(plan, results).model_dump()})
            yield "data: [DONE]\n\n"
        except APIError as e:
            yield _sse(e.body())
            yield "data: [DONE]\n\n"
        finally:
            job.close()  # a client gone mid-stream lands here (the generator is cancelled or closed)


class _EventStream(StreamingResponse):
    """Closes its job however the response ends: finished, client gone (even before the first event), or
    cancelled at shutdown."""

    def __init__(self, job: Job, *args, **kw):
        super().__init__(*args, **kw)
        self.job = job

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.job.close()


def _sse(payload: dict) -> str:
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n"


async def _wait_disconnect(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


class CountRequests:
    """Pure ASGI middleware (it leaves streaming and disconnects alone): requests by path and status."""

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        status = [500]

        async def counted(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, counted)
        finally:
            self.metrics.request(scope["path"] if scope["path"] in ROUTES else "other", status[0])


def create_app(model, args, model_name: str) -> FastAPI:
    """The app for ``model``; ``args``: a ``ServeArguments``. Its lifespan starts and stops the engine thread."""
    server = Server(model, args, model_name)

    @asynccontextmanager
    async def lifespan(app):
        server.runner.start()
        try:
            yield
        finally:
            server.runner.stop()  # rows still running (past --shutdown-timeout) are cancelled

    app = FastAPI(title="ponder", version=_version(), lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.server = server
    app.add_middleware(CountRequests, metrics=server.metrics)

    @app.exception_handler(APIError)
    async def api_error(request, e: APIError):
        return JSONResponse(e.body(), status_code=e.status, headers=e.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, e: StarletteHTTPException):
        return JSONResponse(APIError(e.status_code, str(e.detail), code="not_found" if e.status_code == 404 else None)
                            .body(), status_code=e.status_code, headers=getattr(e, "headers", None))

    @app.exception_handler(Exception)
    async def server_error(request, e: Exception):
        log.exception("request failed")
        return JSONResponse(APIError(500, f"internal error: {type(e).__name__}: {e}").body(), status_code=500)

    @app.get("/health")
    async def health():
        alive = server.runner._thread is not None and server.runner._thread.is_alive()
        return JSONResponse({"status": "ok" if alive else "engine stopped"}, status_code=200 if alive else 503)

    @app.get("/metrics")
    async def metrics():
        return PlainTextResponse(server.metrics.render(server.engine.waiting, server.engine.running),
                                 media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/v1/models")
    async def models(request: Request):
        server.authorize(request)
        st = model.settings
        speeds = [*range(1, st.max_compression + 1), "auto"] if st.reasoning == "latent" else []
        card = ModelCard(id=model_name, created=server.created,
                         ponder={"method": st.method, "reasoning": st.reasoning, "speeds": speeds})
        return ModelList(data=[card])

    async def complete(request: Request, schema, plan_of, chat: bool):
        server.authorize(request)
        body = await server.parse(request, schema)
        plan = plan_of(model, body, args)
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return await server.run(request, plan, body.stream, include_usage, chat=chat)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        return await complete(request, ChatCompletionRequest, plan_chat, chat=True)

    @app.post("/v1/completions")
    async def completions(request: Request):
        return await complete(request, CompletionRequest, plan_completion, chat=False)

    return app


def _version() -> str:
    from ponder import __version__

    return __version__


def run_server(args, model_args) -> None:
    """``ponder serve``: load the model, then serve it until interrupted (Ctrl-C: a graceful shutdown)."""
    import uvicorn

    check_arguments(args)
    model = model_args.load_front() if args.upstream else model_args.load()
    app = create_app(model, args, args.served_model_name or model_args.model)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level,
                timeout_graceful_shutdown=args.shutdown_timeout)


def check_arguments(args) -> None:
    for name, low in (("max_batch", 1), ("max_queue", 0), ("max_tokens", 1), ("max_latent_steps", 0),
                      ("shutdown_timeout", 0)):
        if getattr(args, name) < low:
            raise PonderError(f"--{name.replace('_', '-')} must be >= {low}, got {getattr(args, name)}")
    if not 0 <= args.port <= 65535:
        raise PonderError(f"--port must be in 0..65535, got {args.port}")
    if args.log_level not in ("critical", "error", "warning", "info", "debug", "trace"):
        raise PonderError(f"--log-level must be critical, error, warning, info or debug, got '{args.log_level}'")
