"""`ponder serve` (serve/): real uvicorn servers on free localhost ports, asked with the official ``openai``
client (and raw HTTP where a client would refuse to send the request).

The models are tiny and untrained but chaotic (a random untied output layer, the end of thinking and <eos>
made likelier): rows think for different lengths, CoLaR chains differ by speed, and any slip of the batch,
the cache or the text deltas would change the tokens. The server's answers are compared with the one-shot
``Decoder`` (what `ponder ask` and `eval` run), greedy, streaming and not, while requests share the batch."""

from __future__ import annotations

import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import MISSING, fields

import httpx
import openai
import pytest
import torch
import typer
import uvicorn

from conftest import tiny_model
from ponder.arguments import ExitConfig, ModelArguments, ServeArguments
from ponder.cli import app as cli_app
from ponder.inference.decode import Decoder
from ponder.inference.engine import Engine, Request
from ponder.serve.app import create_app
from ponder.serve.render import Channel, answer_view

QUESTIONS = ["3 4 5", "1 2 3 4", "9 9 1 2", "5 5", "7 1 8 2"]
MAX_TOKENS = 24


def chaotic(records, method: str):
    model = tiny_model(records, seed=1, method=method)
    if method == "colar":
        model.settings.max_compression = 3
        model.add_latent_head()
        model.settings.embed_std = model.measure_embed_std()
    head = model.lm.get_output_embeddings()
    w = torch.randn(head.weight.shape, generator=torch.Generator().manual_seed(0)) * 0.5
    tok = model.tokenizer
    w[model.settings.layout.think_ids(tok)[1]] *= 2.5  # rows end their thinking after a few steps, not all alike
    w[tok.eos_token_id] *= 3.5
    head.weight = torch.nn.Parameter(w)
    return model.eval()


class Live:
    """``create_app`` under a real uvicorn server in a thread, on a free port."""

    def __init__(self, model, name: str, **args):
        self.app = create_app(model, ServeArguments(**args), name)
        self.server = self.app.state.server
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(self.app, log_level="warning", timeout_graceful_shutdown=args.get("shutdown_timeout", 30))
        self.uvicorn = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.uvicorn.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.time() + 30
        while not self.uvicorn.started:
            assert self.thread.is_alive() and time.time() < deadline, "server did not start"
            time.sleep(0.01)

    def client(self, key: str = "none", **kw) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url + "/v1", api_key=key, max_retries=0, timeout=60, **kw)

    def post(self, path: str, body, key: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        content = body if isinstance(body, (str, bytes)) else json.dumps(body)
        return httpx.post(self.url + path, content=content, headers=headers, timeout=60)

    def stop(self):
        self.uvicorn.should_exit = True
        self.thread.join(30)


def wait_for(check, timeout=10.0):
    deadline = time.time() + timeout
    while not check():
        assert time.time() < deadline, "timed out"
        time.sleep(0.01)


@pytest.fixture(scope="module")
def cot(rs_records):
    return chaotic(rs_records["train"], "cot")


@pytest.fixture(scope="module")
def colar(rs_records):
    return chaotic(rs_records["train"], "colar")


@pytest.fixture(scope="module")
def cot_server(cot):
    live = Live(cot, "tiny-cot", max_batch=4)  # 5 questions at once: one waits, then joins the batch
    yield live
    live.stop()


@pytest.fixture(scope="module")
def colar_server(colar):
    live = Live(colar, "tiny-colar", max_batch=8)
    yield live
    live.stop()


def ask(client, model, question, stream, **kw):
    """(content, reasoning, finish_reason, usage, ponder) of one chat request, streamed or not."""
    messages = [{"role": "user", "content": question}]
    if not stream:
        r = client.chat.completions.create(model=model, messages=messages, **kw)
        c = r.choices[0]
        assert c.message.reasoning_content == c.message.reasoning
        return c.message.content, c.message.reasoning, c.finish_reason, r.usage, r.ponder
    content, reasoning, finish, usage, info = "", "", None, None, None
    for chunk in client.chat.completions.create(model=model, messages=messages, stream=True,
                                                stream_options={"include_usage": True}, **kw):
        if chunk.usage is not None:
            usage, info = chunk.usage, chunk.ponder
        for c in chunk.choices:
            d = c.delta.model_dump()
            assert d.get("reasoning_content") == d.get("reasoning")
            content += d.get("content") or ""
            reasoning += d.get("reasoning") or ""
            finish = c.finish_reason or finish
    return content, reasoning or None, finish, usage, info


def expected_reasoning(model, g):
    tok = model.tokenizer
    if model.settings.reasoning == "tokens":
        return tok.decode(g.token_ids[:g.thinking_tokens], skip_special_tokens=False)
    return "".join(f"[{tok.decode([ids[0]]).strip()}]" for ids in g.latent_top_ids)


def check_same(model, got, g):
    content, reasoning, finish, usage, info = got
    assert content == g.answer
    assert reasoning == expected_reasoning(model, g)
    assert usage.completion_tokens_details.reasoning_tokens == g.reasoning_length
    latent = g.reasoning_length if model.settings.reasoning == "latent" else 0
    assert usage.completion_tokens == len(g.token_ids) + latent
    assert usage.prompt_tokens == g.prompt_tokens
    assert finish == ("stop" if g.ended else "length")
    assert info["latent_steps"] == latent and info["exit_reason"] == g.exit_reason


# -- the same answers as the offline decoder --------------------------------------------------------------
@pytest.mark.parametrize("stream", [False, True])
def test_cot_greedy_chat_equals_the_decoder(cot, cot_server, stream):
    expected = Decoder(cot, max_new_tokens=MAX_TOKENS).generate(QUESTIONS)
    assert len({g.reasoning_length for g in expected}) > 2  # rows think for different lengths
    client = cot_server.client()
    with ThreadPoolExecutor(len(QUESTIONS)) as pool:  # all at once: they share (and queue for) the batch
        got = list(pool.map(lambda q: ask(client, "tiny-cot", q, stream, max_tokens=MAX_TOKENS, temperature=0),
                            QUESTIONS))
    for r, g in zip(got, expected):
        check_same(cot, r, g)
    assert cot_server.server.outstanding == 0


@pytest.mark.parametrize("stream", [False, True])
def test_colar_at_two_speeds_equals_the_decoder(colar, colar_server, stream):
    client = colar_server.client()
    jobs = [(q, s) for s in (1, 3) for q in QUESTIONS]
    expected = {s: Decoder(colar, max_new_tokens=MAX_TOKENS).generate(QUESTIONS, speed=s) for s in (1, 3)}
    assert [g.reasoning_length for g in expected[1]] != [g.reasoning_length for g in expected[3]]
    with ThreadPoolExecutor(len(jobs)) as pool:
        got = list(pool.map(lambda j: ask(client, "tiny-colar", j[0], stream, max_tokens=MAX_TOKENS,
                                          extra_body={"ponder": {"speed": j[1]}}), jobs))
    for (q, s), r in zip(jobs, got):
        g = expected[s][QUESTIONS.index(q)]
        check_same(colar, r, g)
        assert r[4]["speed"] == s


def test_completions_continue_the_prompt_as_plain_text(cot, cot_server):
    prompt = "Question: 3 4 5\n"
    ids = cot.tokenizer(prompt)["input_ids"]
    g = Engine(cot).run([Request(prompt_ids=ids, max_new_tokens=12, logprobs=True)])[0]
    client = cot_server.client()
    r = client.completions.create(model="tiny-cot", prompt=prompt, max_tokens=12, logprobs=1)
    assert r.choices[0].text == g.answer and r.usage.prompt_tokens == len(ids)
    assert r.usage.completion_tokens == len(g.token_ids) and r.usage.completion_tokens_details.reasoning_tokens == 0
    assert r.choices[0].logprobs.token_logprobs == pytest.approx(g.token_logprobs)
    text = "".join(c.choices[0].text for c in client.completions.create(model="tiny-cot", prompt=prompt, max_tokens=12,
                                                                        stream=True))
    assert text == g.answer
    echo = client.completions.create(model="tiny-cot", prompt=[ids, ids[:-1]], max_tokens=3, echo=True)
    assert [c.index for c in echo.choices] == [0, 1] and echo.choices[0].text.startswith(cot.tokenizer.decode(ids))


def test_stop_strings_n_and_seeds(cot, cot_server):
    client = cot_server.client()
    q = QUESTIONS[0]
    full = Decoder(cot, max_new_tokens=MAX_TOKENS).generate([q])[0]
    answer_text = cot.tokenizer.decode(full.token_ids[full.thinking_tokens + 1:], skip_special_tokens=True)
    stop = answer_text.strip()[2:4]
    assert stop and stop in answer_text
    g = Engine(cot).run([Request(question=q, max_new_tokens=MAX_TOKENS, stop=[stop])])[0]
    assert g.stop == stop
    for stream in (False, True):
        content, _, finish, _, _ = ask(client, "tiny-cot", q, stream, max_tokens=MAX_TOKENS, stop=stop)
        assert content == g.answer and finish == "stop"
    # n choices, seeds seed + i: choice i is the single request with seed + i.
    kw = dict(model="tiny-cot", messages=[{"role": "user", "content": q}], max_tokens=MAX_TOKENS, temperature=1.5)
    many = client.chat.completions.create(n=3, seed=7, **kw)
    singles = [client.chat.completions.create(seed=7 + i, **kw).choices[0].message.content for i in range(3)]
    assert [c.message.content for c in many.choices] == singles
    assert len(set(singles)) > 1
    streamed = ["", "", ""]
    for chunk in client.chat.completions.create(n=3, seed=7, stream=True, **kw):
        for c in chunk.choices:
            streamed[c.index] += c.delta.content or ""
    assert streamed == singles


def test_thinking_budget_effort_and_exit_policy(cot, colar, cot_server, colar_server):
    client = cot_server.client()
    q = next(q for q, g in zip(QUESTIONS, Decoder(cot, max_new_tokens=MAX_TOKENS).generate(QUESTIONS))
             if g.reasoning_length > 3)
    g = Decoder(cot, max_new_tokens=MAX_TOKENS, exit=ExitConfig(exit="budget", budget=2)).generate([q])[0]
    for stream in (False, True):
        got = ask(client, "tiny-cot", q, stream, max_tokens=MAX_TOKENS, extra_body={"thinking_token_budget": 2})
        check_same(cot, got, g)
        assert got[4]["exit"] == "budget:2" and got[4]["exit_reason"] == g.exit_reason == "budget"
    got = ask(client, "tiny-cot", q, False, max_tokens=MAX_TOKENS, extra_body={"ponder": {"exit": "budget", "budget": 2}})
    check_same(cot, got, g)
    plain = Decoder(cot, max_new_tokens=MAX_TOKENS).generate([q])[0]
    check_same(cot, ask(client, "tiny-cot", q, False, max_tokens=MAX_TOKENS, reasoning_effort="low"), plain)
    # CoLaR: the budget is the most latent steps.
    q = next(q for q, g in zip(QUESTIONS, Decoder(colar, max_new_tokens=MAX_TOKENS).generate(QUESTIONS)) if g.reasoning_length > 2)
    g = Decoder(colar, max_new_tokens=MAX_TOKENS, max_latent_steps=2).generate([q])[0]
    got = ask(colar_server.client(), "tiny-colar", q, True, max_tokens=MAX_TOKENS, extra_body={"thinking_token_budget": 2})
    check_same(colar, got, g)
    assert g.reasoning_length == 2


@pytest.mark.parametrize("policy", [dict(exit="budget", budget=3), dict(exit="convergence", probe_every=2, patience=2,
                                                                         probe_tokens=6)], ids=["budget", "convergence"])
def test_a_hugging_face_reasoner_with_an_exit_policy(qwen3, policy):
    """Forced exits write the reasoner's cue 'Final Answer:', which the answer (streamed too) leaves out."""
    live = Live(qwen3, "qwen3")
    try:
        qs = ["3 4", "5 6 7"]
        expected = Decoder(qwen3, max_new_tokens=MAX_TOKENS, exit=ExitConfig(**policy)).generate(qs)
        assert any(g.exit_reason == policy["exit"] for g in expected)
        for stream in (False, True):
            for q, g in zip(qs, expected):
                got = ask(live.client(), "qwen3", q, stream, max_tokens=MAX_TOKENS, extra_body={"ponder": policy})
                check_same(qwen3, got, g)
                assert got[4]["probe_tokens"] == g.probe_tokens
    finally:
        live.stop()


def test_chat_logprobs_models_health_and_metrics(cot, cot_server):
    client = cot_server.client()
    r = client.chat.completions.create(model="tiny-cot", messages=[{"role": "user", "content": "1 2"}],
                                       max_tokens=MAX_TOKENS, logprobs=True)
    g = Engine(cot).run([Request(question="1 2", max_new_tokens=MAX_TOKENS, logprobs=True)])[0]
    answer = g.token_ids[g.thinking_tokens + 1:]
    assert [t.logprob for t in r.choices[0].logprobs.content] == pytest.approx(g.token_logprobs[len(g.token_ids) - len(answer):])
    models = client.models.list()
    assert [m.id for m in models.data] == ["tiny-cot"] and models.data[0].ponder["method"] == "cot"
    assert httpx.get(cot_server.url + "/health").json() == {"status": "ok"}
    text = httpx.get(cot_server.url + "/metrics").text
    for name in ("ponder_requests_total{path=\"/v1/chat/completions\",status=\"200\"}", "ponder_queue_depth 0",
                 "ponder_running_rows 0", "ponder_prompt_tokens_total", "ponder_reasoning_tokens_total",
                 "ponder_answer_tokens_total", "ponder_latent_steps_total", "ponder_probe_tokens_total",
                 "ponder_request_latency_seconds_bucket{le=\"+Inf\"}", "ponder_time_to_first_token_seconds_count"):
        assert name in text, name


# -- bad requests: a 4xx with OpenAI's error JSON, and the server goes on -----------------------------------
GOOD = {"model": "tiny-cot", "messages": [{"role": "user", "content": "3 4"}], "max_tokens": 4}
BAD = [
    ("/v1/chat/completions", '{"model": "tiny-cot", "messages": [', 400, None, "invalid_json"),
    ("/v1/chat/completions", "[1, 2]", 400, None, "invalid_json"),
    ("/v1/chat/completions", {**GOOD, "temperature": "hot"}, 400, "temperature", "invalid_type"),
    ("/v1/chat/completions", {**GOOD, "messages": "3 4"}, 400, "messages", "invalid_type"),
    ("/v1/chat/completions", {**GOOD, "model": "gpt-4o"}, 404, "model", "model_not_found"),
    ("/v1/chat/completions", {**GOOD, "max_tokens": 0}, 400, "max_tokens", "invalid_value"),
    ("/v1/chat/completions", {**GOOD, "max_tokens": -5}, 400, "max_tokens", "invalid_value"),
    ("/v1/chat/completions", {**GOOD, "max_completion_tokens": 0}, 400, "max_completion_tokens", "invalid_value"),
    ("/v1/chat/completions", {**GOOD, "max_tokens": 5000}, 400, "max_tokens", "context_length_exceeded"),
    ("/v1/chat/completions", {**GOOD, "ponder": {"speed": 2}}, 400, "ponder.speed", "invalid_value"),
    ("/v1/chat/completions", {**GOOD, "ponder": {"sped": 2}}, 400, "ponder.sped", "unknown_parameter"),
    ("/v1/chat/completions", {**GOOD, "ponder": {"exit": "psychic"}}, 400, "ponder.exit", "invalid_value"),
    ("/v1/chat/completions", {**GOOD, "ponder": {"exit": "budget"}}, 400, "ponder.exit", "invalid_value"),
    ("/v1/chat/completions", {**GOOD, "reasoning_effort": "extreme"}, 400, "reasoning_effort", "invalid_value"),
    ("/v1/chat/completions", {**GOOD, "messages": [{"role": "user", "content": "1 " * 2100}]}, 400, "messages",
     "context_length_exceeded"),
    ("/v1/chat/completions", {**GOOD, "messages": [{"role": "system", "content": "be brief"},
                                                   {"role": "user", "content": "3 4"}]}, 400, "messages",
     "unsupported_value"),
    ("/v1/chat/completions", {**GOOD, "n": 0}, 400, "n", "invalid_value"),
    ("/v1/chat/completions", {**GOOD, "top_p": 0}, 400, "top_p", "invalid_value"),
    ("/v1/chat/completions", {"messages": GOOD["messages"]}, 400, "model", "missing_required_parameter"),
    ("/v1/completions", {"model": "tiny-cot", "prompt": ""}, 400, "prompt", "invalid_value"),
    ("/v1/completions", {"model": "tiny-cot", "prompt": [99999]}, 400, "prompt", "invalid_value"),
    ("/v1/completions", {"model": "tiny-cot", "prompt": "1 2", "ponder": {"speed": 1}}, 400, "ponder.speed",
     "unsupported_value"),
    ("/v1/nothing", GOOD, 404, None, "not_found"),
]


@pytest.mark.parametrize("path, body, status, param, code", BAD, ids=[f"{b[2]}-{b[4]}-{i}" for i, b in enumerate(BAD)])
def test_bad_request_is_an_openai_error_and_the_server_goes_on(cot_server, path, body, status, param, code):
    r = cot_server.post(path, body)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert (error["param"], error["code"], error["type"]) == (param, code, "invalid_request_error")
    ok = cot_server.post("/v1/chat/completions", GOOD)
    assert ok.status_code == 200 and ok.json()["choices"][0]["finish_reason"] in ("stop", "length")


def test_bad_request_through_the_openai_client(cot_server):
    client = cot_server.client()
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="tiny-cot", messages=GOOD["messages"], max_tokens=0)
    assert e.value.status_code == 400 and e.value.body["param"] == "max_tokens"
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=GOOD["messages"])


# -- a small, guarded server: 401, 429, a client that goes away, shutdown ----------------------------------
@pytest.fixture(scope="module")
def runaway(rs_records):
    """A chaotic CoT that never writes <eos> (its logit is 0, below the best of 500 random ones): a row that
    runs until max_tokens, long enough to be caught mid-decoding however fast the machine."""
    model = chaotic(rs_records["train"], "cot")
    with torch.no_grad():
        model.lm.get_output_embeddings().weight[model.tokenizer.eos_token_id] = 0
    return model


@pytest.fixture(scope="module")
def guarded(runaway):
    live = Live(runaway, "tiny-cot", max_batch=1, max_queue=0, api_key="sesame")
    yield live
    live.stop()


def test_api_key(guarded):
    r = guarded.post("/v1/chat/completions", GOOD)
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        guarded.client("wrong").chat.completions.create(model="tiny-cot", messages=GOOD["messages"], max_tokens=2)
    assert guarded.client("sesame").chat.completions.create(model="tiny-cot", messages=GOOD["messages"],
                                                            max_tokens=2).choices[0].finish_reason
    assert httpx.get(guarded.url + "/health").status_code == 200  # health and metrics stay open


def test_full_queue_is_429_with_retry_after(guarded):
    server, client = guarded.server, guarded.client("sesame")
    with ThreadPoolExecutor(1) as pool:
        with server.runner.lock:  # the engine is frozen: the first request holds the one place
            first = pool.submit(client.chat.completions.create, model="tiny-cot", messages=GOOD["messages"],
                                max_tokens=3)
            wait_for(lambda: server.outstanding == 1)
            with pytest.raises(openai.RateLimitError) as e:
                client.chat.completions.create(model="tiny-cot", messages=GOOD["messages"], max_tokens=3)
            assert e.value.status_code == 429 and e.value.response.headers["retry-after"] == "1"
            assert e.value.body["code"] == "rate_limit_exceeded"
        assert first.result().choices[0].finish_reason
    assert client.chat.completions.create(model="tiny-cot", messages=GOOD["messages"], max_tokens=3).choices


def test_a_client_that_disconnects_mid_stream_frees_its_row(guarded):
    server, client = guarded.server, guarded.client("sesame")
    finished, cancelled = server.metrics.rows_finished, server.metrics.rows_cancelled
    stream = client.chat.completions.create(model="tiny-cot", messages=GOOD["messages"], max_tokens=1500, stream=True)
    for chunk in stream:
        if chunk.choices and (chunk.choices[0].delta.model_dump().get("reasoning") or chunk.choices[0].delta.content):
            break  # the row is decoding
    with server.runner.lock:
        assert server.engine.running == 1
        stream.close()
        wait_for(lambda: server.metrics.rows_cancelled == cancelled + 1)
    wait_for(lambda: server.engine.running == 0 and not server.engine.busy)
    assert server.metrics.rows_finished == finished and server.outstanding == 0
    assert client.chat.completions.create(model="tiny-cot", messages=GOOD["messages"], max_tokens=2).choices


def test_a_client_that_gives_up_waiting_frees_its_row(guarded):
    server = guarded.server
    cancelled = server.metrics.rows_cancelled
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(guarded.url + "/v1/chat/completions", json={**GOOD, "max_tokens": 1500},
                   headers={"Authorization": "Bearer sesame"}, timeout=httpx.Timeout(60, read=0.5))
    wait_for(lambda: server.metrics.rows_cancelled == cancelled + 1)
    wait_for(lambda: server.engine.running == 0 and not server.engine.busy and server.outstanding == 0)


def test_a_failing_step_is_a_500_and_the_engine_goes_on(cot_server, monkeypatch):
    engine, calls = cot_server.server.engine, []
    real = engine.step

    def step():
        calls.append(1)
        if len(calls) == 2:  # after the prefill
            raise RuntimeError("boom")
        real()

    monkeypatch.setattr(engine, "step", step)
    r = cot_server.post("/v1/chat/completions", GOOD)
    assert r.status_code == 500, r.text
    error = r.json()["error"]
    assert (error["type"], error["code"]) == ("server_error", "engine_error") and "boom" in error["message"]
    monkeypatch.undo()
    wait_for(lambda: not engine.busy and cot_server.server.outstanding == 0)
    assert cot_server.post("/v1/chat/completions", GOOD).status_code == 200


def test_shutdown_cancels_running_rows_and_stops_the_engine(runaway):
    live = Live(runaway, "tiny-cot", shutdown_timeout=1)
    stream = live.client().chat.completions.create(model="tiny-cot", messages=GOOD["messages"], max_tokens=1500,
                                                   stream=True)
    next(iter(stream))
    wait_for(lambda: live.server.engine.running == 1)
    live.stop()
    assert not live.thread.is_alive() and not live.server.runner._thread.is_alive()
    assert live.server.engine.running == 0 and not live.server.engine.busy
    stream.close()


def test_ponder_serve_command_loads_the_model_and_runs_uvicorn(cot, tmp_path, monkeypatch, capsys):
    """`ponder serve --model DIR ...` wires its options to the model, the app and uvicorn (uvicorn.run stubbed:
    the servers above are the real thing); bad server options are one line."""
    from test_cli_errors import assert_one_line_error, run_cli

    cot.save(tmp_path / "m")
    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    code, _, err = run_cli(capsys, "serve", "--model", tmp_path / "m", "--device", "cpu", "--port", 8123, "--max-batch",
                           3, "--api-key", "k", "--shutdown-timeout", 5)
    assert code == 0, err
    (app, kw), = calls
    assert kw == {"host": "127.0.0.1", "port": 8123, "log_level": "info", "timeout_graceful_shutdown": 5}
    server = app.state.server
    assert server.model_name == str(tmp_path / "m") and server.engine.max_batch == 3 and server.api_key == "k"
    assert server.model.settings.method == "cot"
    code, _, err = run_cli(capsys, "serve", "--model", tmp_path / "m", "--max-queue", -1)
    assert_one_line_error(code, err, "--max-queue must be >= 0, got -1")
    assert len(calls) == 1


# -- pieces ------------------------------------------------------------------------------------------------
def test_stream_deltas_hold_back_what_may_still_change():
    view = answer_view(["Answer: "], ["##"])
    c = Channel(lambda ids: "".join(ids), view)
    sent = [c.add([t]) for t in ["An", "swer", ": 4", "2 ", "#", "x", " 7#", "#", "9"]]
    assert sent == ["", "", "4", "2", "", " #x", " 7", "", ""]
    assert c.sent == "42 #x 7"
    c = Channel(lambda ids: "".join(ids), answer_view(["Answer:"], []))
    assert c.add(["Ans"]) == "" and c.add(["wered"]) == "Answered"  # not the prefix after all
    c = Channel(lambda ids: "".join(ids))
    assert c.add(["a\ufffd"]) == "" and c.add(["b"]) == "a\ufffdb" and c.finish("a\ufffdbc") == "c"


def test_every_serve_field_is_an_option():
    params = {p.name: p for p in typer.main.get_command(cli_app).commands["serve"].params
              if p.name not in ("config", "help")}
    classes = (ServeArguments, ModelArguments)
    assert sorted(params) == sorted(f.name for c in classes for f in fields(c))
    for f in (f for c in classes for f in fields(c)):
        if f.default is not MISSING:
            assert params[f.name].default == f.default, f.name
