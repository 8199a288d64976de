"""Serving: ``ponder serve`` under 1, 8 and 64 concurrent OpenAI clients, against offline batched decoding.

    python benchmarks/serve/run.py --models /tmp/qs --out benchmarks/serve

``--models`` is a ``ponder quickstart --out DIR`` folder: its tiny CoT (``DIR/cot``) and CoLaR (``DIR/colar``),
made in about 4 minutes on 2 CPU cores by ``ponder quickstart --out /tmp/qs``. The questions are the
running-sum test split of the quickstart's seed (0), ``--n`` = 512 of them: those that
``ponder data make running-sum --out DIR --n-train 4000 --n-val 100 --n-test 512 --seed 0`` writes (the
first 300 are the quickstart's test set). About 4 minutes on 2 busy cores.

For each model (CoT; CoLaR at ``--speed`` 2, asked with ``extra_body={"ponder": {"speed": 2}}``):

1. offline: ``Decoder(model).generate`` over the questions in batches of ``--max-batch`` (32), greedy, as
   ``ponder eval`` decodes them: ``--repeats`` timed passes after a warm-up, and as many again after the
   server's runs; questions/s is the median. Its answers (``Generation.answer``) and reasoning lengths are
   the reference. Also each of the first ``--n1`` questions alone (batch 1), for its latency;
2. ``ponder serve --model DIR --max-batch 32`` in a subprocess; its RSS (psutil) idle, before any request
   and again after a warm-up of 8 requests;
3. for N in ``--clients`` (1, 8, 64): N asyncio clients of the official ``openai`` package
   (``AsyncOpenAI``, no retries), each sending its share of the questions one after another, streamed with
   ``stream_options.include_usage``; time to first token = until the first thinking or answer delta.
   N = 1 asks the first ``--n1`` questions, the others all ``--n``. Then 64 clients again, not streamed.
   Each run ``--server-repeats`` times (3); the run of median throughput is reported. Per run: requests/s,
   p50/p99 latency and TTFT, errors, whether each ``message.content`` (the streamed content deltas
   joined) equals the offline ``Generation.answer`` (docs/serve.md: the content is the answer as
   ``ponder ask`` prints it; ``serve/app.py`` sends ``g.answer``) and each ``usage
   .completion_tokens_details.reasoning_tokens`` the offline reasoning length, the server's RSS sampled
   every 50 ms (peak) and after 2 s idle, the CPU seconds of the client process and of the server's
   threads (event loop, engine, others), and the server's own mean latency (``/metrics``);
4. where the time goes (``--no-diagnose`` leaves it out): the 64-client streamed run against a server
   started through ``counted.py``, which counts engine steps, prefills, forward passes and the rows in
   them, and their seconds (offline's passes are counted by a hook on the model); and, when ``py-spy`` is
   on the PATH, once more under ``py-spy record --idle --threads``: seconds per thread and activity.

Every server runs with ``OMP_NUM_THREADS`` = ``--threads`` (1), and offline decodes with as many torch
threads: on 2 cores shared with other jobs, a second torch thread waits for a busy core (offline decoding
swung between 40 and 720 questions/s with 2; a server with 2 spent 50 CPU seconds spinning for 512
requests, README.md). Writes ``results.json`` and ``results.md`` to ``--out``; the load average of the
machine is recorded around each run, since other jobs slow everything, offline and served alike.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import openai
import psutil
import torch

from ponder.data.records import atomic_write_text
from ponder.data.tasks import make_splits
from ponder.errors import PonderError, run_script
from ponder.inference.decode import Decoder
from ponder.model.io import load_model

HERE = Path(__file__).resolve().parent
MB = 2**20


# -- offline -------------------------------------------------------------------------------------------
class Offline:
    """``Decoder(model).generate`` (greedy, max_new_tokens 256, max_latent_steps 64: the server's defaults) over
    the questions in batches, as ``ponder eval`` decodes them; timed twice, before and after the server's runs,
    so that a change in the machine's load between them weighs on both sides alike."""

    def __init__(self, model, questions, speed, batch):
        self.model, self.questions, self.speed, self.batch = model, questions, speed, batch
        self.decoder = Decoder(model)
        self.times, self.cpus, self.gens, self.passes = [], [], None, []

    def timed(self, repeats, warm_up=True):
        hook = self.model.register_forward_pre_hook(
            lambda m, a, kw: self.passes.append(kw["inputs_embeds"].shape[0]), with_kwargs=True)
        try:
            for i in range(repeats + warm_up):
                self.passes.clear()
                t0, c0 = time.perf_counter(), time.process_time()
                out = []
                for s in range(0, len(self.questions), self.batch):
                    out += self.decoder.generate(self.questions[s:s + self.batch], speed=self.speed)
                if i or not warm_up:
                    self.times.append(time.perf_counter() - t0)
                    self.cpus.append(time.process_time() - c0)
                self.gens = self.gens or out
                if any(a.answer != b.answer for a, b in zip(self.gens, out)):
                    raise PonderError("offline decoding is not deterministic: two passes gave different answers")
        finally:
            hook.remove()

    def single(self, n1) -> list[float]:
        """Seconds for each of the first ``n1`` questions decoded alone (batch 1)."""
        out = []
        for q, g in zip(self.questions[:n1], self.gens):
            t0 = time.perf_counter()
            one = self.decoder.generate([q], speed=self.speed)[0]
            out.append(time.perf_counter() - t0)
            if one.answer != g.answer:
                raise PonderError(f"offline: {q!r} decoded alone gives {one.answer!r}, in a batch {g.answer!r}")
        return out

    def stats(self, single) -> dict:
        n = len(self.questions)
        return {"questions_per_s": n / statistics.median(self.times), "seconds": self.times,
                "questions_per_s_runs": [n / t for t in self.times],
                "cpu_ms_per_question": 1000 * statistics.median(self.cpus) / n, "forwards": len(self.passes),
                "forward_rows": sum(self.passes), "batch1_p50_latency_s": pct(single, 50),
                "batch1_p99_latency_s": pct(single, 99), "batch1_questions_per_s": len(single) / sum(single)}


# -- the server ----------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model_dir, name, max_batch, threads, log, counts=None):
    """``ponder serve`` (through ``counted.py`` when ``counts``) on a free port, once /health answers 200."""
    port = free_port()
    ponder = ([shutil.which("ponder")] if shutil.which("ponder")
              else [sys.executable, "-c", "from ponder.cli import main; main()"])
    cmd = ([sys.executable, str(HERE / "counted.py"), str(counts)] if counts else ponder) + [
        "serve", "--model", str(model_dir), "--served-model-name", name, "--port", str(port),
        "--max-batch", str(max_batch), "--log-level", "warning"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 300:
        if proc.poll() is not None:
            raise PonderError(f"ponder serve exited with {proc.returncode} before it was healthy (log: {log.name})")
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return proc, base, time.perf_counter() - t0
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise PonderError(f"ponder serve was not healthy after 300 s (log: {log.name})")


def stop_server(proc) -> int:
    proc.send_signal(signal.SIGINT)  # a graceful shutdown
    try:
        return proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return -9


class RSSSampler:
    """The server's RSS every ``every`` seconds, in a thread, while a run lasts."""

    def __init__(self, pid, every=0.05):
        self.proc, self.every, self.samples = psutil.Process(pid), every, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.samples.append(self.proc.memory_info().rss)
            self._stop.wait(self.every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def cpu(pid) -> dict:
    """CPU seconds of each of the server's threads, by thread id."""
    return {t.id: t.user_time + t.system_time for t in psutil.Process(pid).threads()}


def cpu_split(pid, before, after) -> dict:
    """The CPU seconds a run took in the server: its main thread (uvicorn's event loop: HTTP, routing,
    planning, SSE), the engine thread (the busiest other one) and the rest (the thread pool that submits
    rows, torch's workers if any)."""
    d = {t: after[t] - before.get(t, 0.0) for t in after}
    main = d.pop(pid, 0.0)
    engine = max(d.values(), default=0.0)
    return {"loop": main, "engine": engine, "rest": sum(d.values()) - engine}


def scrape(base) -> dict:
    keep = ("ponder_rows_finished_total", "ponder_request_latency_seconds_sum", "ponder_request_latency_seconds_count",
            "ponder_time_to_first_token_seconds_sum", "ponder_time_to_first_token_seconds_count")
    out = {}
    for line in httpx.get(f"{base}/metrics", timeout=10).text.splitlines():
        name, _, value = line.partition(" ")
        if name in keep:
            out[name] = float(value)
    return out


def read_counts(path) -> dict:
    time.sleep(0.5)  # counted.py writes every 0.2 s
    return json.loads(Path(path).read_text())


# -- the clients ---------------------------------------------------------------------------------------
async def ask(client, name, question, extra, stream):
    t0 = time.perf_counter()
    ttft, content, reasoning = None, None, None
    messages = [{"role": "user", "content": question}]
    try:
        if stream:
            parts = []
            s = await client.chat.completions.create(model=name, messages=messages, stream=True,
                                                     stream_options={"include_usage": True}, extra_body=extra)
            async for chunk in s:
                for c in chunk.choices:
                    d = c.delta
                    think = getattr(d, "reasoning_content", None)
                    if ttft is None and (d.content or think):
                        ttft = time.perf_counter() - t0
                    if d.content:
                        parts.append(d.content)
                if chunk.usage is not None:
                    reasoning = chunk.usage.completion_tokens_details.reasoning_tokens
            content = "".join(parts)
        else:
            r = await client.chat.completions.create(model=name, messages=messages, extra_body=extra)
            content = r.choices[0].message.content
            reasoning = r.usage.completion_tokens_details.reasoning_tokens
        error = None
    except Exception as e:  # noqa: BLE001 - every failure is counted, none stops the run
        error = f"{type(e).__name__}: {e}"
    return {"latency": time.perf_counter() - t0, "ttft": ttft, "content": content, "reasoning": reasoning,
            "error": error}


async def clients(base, name, questions, indices, n_clients, extra, stream):
    """N clients, each asking its share of ``indices`` one after another; (wall seconds, {index: result})."""
    client = openai.AsyncOpenAI(base_url=f"{base}/v1", api_key="none", max_retries=0, timeout=300)
    results = {}

    async def worker(share):
        for i in share:
            results[i] = await ask(client, name, questions[i], extra, stream)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(indices[k::n_clients]) for k in range(n_clients)))
    wall = time.perf_counter() - t0
    await client.close()
    return wall, results


def pct(values, q):
    return float(np.percentile(values, q)) if values else None


def load_run(base, pid, name, questions, indices, n_clients, extra, stream, gens, counts=None):
    """One run of N clients: throughput, latency, TTFT, errors, answers against offline, RSS, CPU."""
    before_m, before_c = scrape(base), cpu(pid)
    before_k = read_counts(counts) if counts else None
    load0 = os.getloadavg()
    client0 = sum(os.times()[:2])
    with RSSSampler(pid) as rss:
        wall, res = asyncio.run(clients(base, name, questions, indices, n_clients, extra, stream))
    client_cpu = sum(os.times()[:2]) - client0
    after_c, after_m = cpu(pid), scrape(base)
    after_k = read_counts(counts) if counts else None
    time.sleep(2.0)
    rss_after = psutil.Process(pid).memory_info().rss
    ok = [r for r in res.values() if r["error"] is None]
    errors = [r["error"] for r in res.values() if r["error"] is not None]
    lat = [r["latency"] for r in ok]
    ttft = [r["ttft"] for r in ok if r["ttft"] is not None]
    wrong = [i for i in sorted(res) if res[i]["error"] is None and res[i]["content"] != gens[i].answer]
    wrong_len = [i for i in sorted(res) if res[i]["error"] is None and res[i]["reasoning"] != gens[i].reasoning_length]
    n = len(indices)
    d = lambda k: after_m.get(k, 0) - before_m.get(k, 0)  # noqa: E731
    mean = lambda h: d(f"{h}_sum") / d(f"{h}_count") if d(f"{h}_count") else None  # noqa: E731
    row = {"clients": n_clients, "stream": stream, "requests": n, "wall_s": wall, "requests_per_s": n / wall,
           "latency_p50_s": pct(lat, 50), "latency_p99_s": pct(lat, 99),
           "latency_mean_s": statistics.fmean(lat) if lat else None,
           "ttft_p50_s": pct(ttft, 50), "ttft_p99_s": pct(ttft, 99),
           "server_latency_mean_s": mean("ponder_request_latency_seconds"),
           "server_ttft_mean_s": mean("ponder_time_to_first_token_seconds"),
           "errors": len(errors), "error_examples": errors[:3],
           "answers_equal_offline": n - len(errors) - len(wrong), "answer_mismatches": len(wrong),
           "mismatch_examples": [{"question": questions[i], "offline": gens[i].answer, "served": res[i]["content"]}
                                 for i in wrong[:5]],
           "reasoning_length_mismatches": len(wrong_len),
           "reasoning_mismatch_examples": [{"question": questions[i], "offline": gens[i].reasoning_length,
                                            "served": res[i]["reasoning"]} for i in wrong_len[:5]],
           "rss_peak_mb": max(rss.samples) / MB, "rss_samples": len(rss.samples), "rss_after_2s_mb": rss_after / MB,
           "server_cpu_s": cpu_split(pid, before_c, after_c), "client_cpu_s": client_cpu,
           "load_before": load0, "load_after": os.getloadavg()}
    if counts:
        row["engine"] = {k: after_k[k] - before_k[k] for k in after_k if k != "time"}
    print(json.dumps({k: v for k, v in row.items() if not k.endswith("examples")}), flush=True)
    return row


def repeated(k, run) -> dict:
    """``run()`` k times: the run of median throughput, with every run's throughput, errors and mismatches
    (summed) and the highest RSS peak."""
    rows = [run() for _ in range(k)]
    out = dict(sorted(rows, key=lambda x: x["requests_per_s"])[len(rows) // 2])
    out.update(repeats=k, requests_per_s_runs=[x["requests_per_s"] for x in rows],
               errors_all_runs=sum(x["errors"] for x in rows),
               answer_mismatches_all_runs=sum(x["answer_mismatches"] for x in rows),
               reasoning_length_mismatches_all_runs=sum(x["reasoning_length_mismatches"] for x in rows),
               rss_peak_mb=max(x["rss_peak_mb"] for x in rows), rss_after_2s_mb=rows[-1]["rss_after_2s_mb"],
               rss_after_2s_mb_runs=[x["rss_after_2s_mb"] for x in rows])
    return out


def warm_up(base, name, questions, extra):
    asyncio.run(clients(base, name, questions, list(range(8)), 8, extra, True))


# -- one model -------------------------------------------------------------------------------------------
def bench_model(label, model_dir, speed, questions, truths, args, logs):
    extra = {"ponder": {"speed": speed}} if speed is not None else None
    load0 = os.getloadavg()
    off = Offline(load_model(model_dir).eval(), questions, speed, args.max_batch)
    off.timed(args.repeats)
    single = off.single(args.n1)
    gens = off.gens

    with open(logs / f"{label}.log", "w") as log:
        proc, base, startup = start_server(model_dir, label, args.max_batch, args.threads, log)
        try:
            time.sleep(1.0)
            idle = psutil.Process(proc.pid).memory_info().rss / MB
            warm_up(base, label, questions, extra)
            time.sleep(2.0)
            idle_warm = psutil.Process(proc.pid).memory_info().rss / MB
            runs = []
            every = list(range(len(questions)))
            for n, stream in [(n, True) for n in args.clients] + [(max(args.clients), False)]:
                runs.append(repeated(args.server_repeats, lambda: load_run(
                    base, proc.pid, label, questions, every[: args.n1] if n == 1 else every, n, extra, stream, gens)))
        finally:
            code = stop_server(proc)
    off.timed(args.repeats, warm_up=False)  # again, after the server's runs
    result = {"model": label, "dir": str(model_dir), "speed": speed,
              "offline": {"questions": len(questions), "batch": args.max_batch, **off.stats(single),
                          "reasoning_length_mean": statistics.fmean(g.reasoning_length for g in gens),
                          "accuracy": statistics.fmean(g.answer == t for g, t in zip(gens, truths)),
                          "load_before": load0, "load_after": os.getloadavg()}}
    print(json.dumps({"model": label, "offline": result["offline"]}), flush=True)
    del off
    result["server"] = {"startup_s": startup, "rss_idle_mb": idle, "rss_idle_warm_mb": idle_warm, "exit_code": code,
                        "runs": runs}

    if args.diagnose:
        counts = Path(tempfile.mkdtemp()) / "counts.json"
        with open(logs / f"{label}-instrumented.log", "w") as log:
            proc, base, _ = start_server(model_dir, label, args.max_batch, args.threads, log, counts=counts)
            try:
                warm_up(base, label, questions, extra)
                result["diagnose"] = load_run(base, proc.pid, label, questions, list(range(len(questions))),
                                              max(args.clients), extra, True, gens, counts=counts)
            finally:
                stop_server(proc)
        if shutil.which("py-spy"):
            result["profile"] = profile_run(model_dir, label, questions, extra, args, logs)
    return result


# -- where the time goes: py-spy -------------------------------------------------------------------------
RATE = 200  # py-spy samples per second
CATEGORIES = (  # (thread, a frame in the stack, category): the first match wins
    ("engine", "Engine._forward", "engine: forward passes"),
    ("engine", "Engine._admit", "engine: prefill (padding, merging the cache)"),
    ("engine", ".emit (ponder/inference/engine.py", "engine: handing events to the event loop"),
    ("engine", "Engine.step", "engine: step bookkeeping (choosing tokens, stop checks, rows leaving)"),
    ("engine", "", "engine: idle (no row to run)"),
    ("loop", "EpollSelector.select", "event loop: idle (waiting for the network)"),
    ("loop", "PromptLayout", "event loop: tokenizing the prompt (plan_chat)"),
    ("loop", "Server.stream", "event loop: making SSE chunks"),
    ("loop", "h11", "event loop: HTTP (uvicorn, h11, sockets)"),
    ("loop", "selector_events", "event loop: HTTP (uvicorn, h11, sockets)"),
    ("loop", "starlette", "event loop: fastapi / starlette / pydantic"),
    ("loop", "fastapi", "event loop: fastapi / starlette / pydantic"),
    ("loop", "pydantic", "event loop: fastapi / starlette / pydantic"),
    ("loop", "", "event loop: other (asyncio, ...)"),
    ("pool", ".submit (ponder/", "thread pool: submitting rows (tokenizing the prompt again)"),
)


def categorize(line: str):
    stack, _, n = line.rpartition(" ")
    head = stack.split(";", 1)[0]
    thread = "engine" if "ponder-engine" in head else "loop" if "MainThread" in head else "pool"
    for t, frame, name in CATEGORIES:
        if t == thread and frame in stack:
            return name, int(n)
    return None, int(n)  # an idle pool thread


def profile_run(model_dir, label, questions, extra, args, logs) -> dict:
    """The 64-client streamed run once more, sampled by ``py-spy record --idle --threads`` (--nonblocking: the
    server is not paused): seconds of each thread by what it was doing, for the ~1 s before the run, the run
    and the moment after it."""
    raw = logs / f"{label}-py-spy.txt"
    with open(logs / f"{label}-profiled.log", "w") as log:
        proc, base, _ = start_server(model_dir, label, args.max_batch, args.threads, log)
        try:
            warm_up(base, label, questions, extra)
            spy = subprocess.Popen([shutil.which("py-spy"), "record", "--pid", str(proc.pid), "--rate", str(RATE),
                                    "--nonblocking", "--threads", "--idle", "--format", "raw", "-o", str(raw)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)  # py-spy attaches
            n = max(args.clients)
            wall, res = asyncio.run(clients(base, label, questions, list(range(len(questions))), n, extra, True))
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
        finally:
            stop_server(proc)
    seconds: dict[str, float] = {}
    for line in raw.read_text().splitlines() if raw.exists() else []:
        name, k = categorize(line)
        if name:
            seconds[name] = seconds.get(name, 0.0) + k / RATE
    out = {"clients": n, "requests": len(res), "wall_s": wall, "requests_per_s": len(res) / wall,
           "errors": sum(r["error"] is not None for r in res.values()), "rate_hz": RATE,
           "seconds": dict(sorted(seconds.items()))}
    print(json.dumps({"model": label, "profile": out}), flush=True)
    return out


def acceptance(r) -> dict:
    """Issue 20's targets, at the largest number of clients, streamed."""
    top = max((x for x in r["server"]["runs"] if x["stream"]), key=lambda x: x["clients"])
    off = r["offline"]["questions_per_s"]
    idle = r["server"]["rss_idle_mb"]
    last_after = r["server"]["runs"][-1]["rss_after_2s_mb"]
    errors = top.get("errors_all_runs", top["errors"])
    wrong = top.get("answer_mismatches_all_runs", top["answer_mismatches"])
    return {"clients": top["clients"], "requests": top["requests"], "runs": top.get("repeats", 1),
            "no_error": errors == 0, "answers_equal_offline": wrong == 0 and errors == 0,
            "throughput_ratio": top["requests_per_s"] / off,
            "throughput_at_least_0.8_offline": top["requests_per_s"] >= 0.8 * off,
            "rss_after_over_idle": last_after / idle, "rss_after_within_10pct_of_idle": last_after <= 1.1 * idle,
            "rss_after_over_idle_warm": last_after / r["server"]["rss_idle_warm_mb"],
            "errors_every_run": sum(x.get("errors_all_runs", x["errors"]) for x in r["server"]["runs"]),
            "answer_mismatches_every_run": sum(x.get("answer_mismatches_all_runs", x["answer_mismatches"])
                                               for x in r["server"]["runs"])}


def commit() -> str:
    root = HERE.parents[1]
    r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=root)
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], capture_output=True, text=True,
                           cwd=root).stdout
    return r.stdout.strip() + (" with uncommitted changes in src/" if dirty.strip() else "")


def machine() -> dict:
    name = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")), platform.processor())
    return {"cpu": name, "cores": len(os.sched_getaffinity(0)), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "python": platform.python_version(), "openai": openai.__version__,
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1)}


def markdown(out, command) -> str:
    m = out["machine"]
    ms = lambda v: "-" if v is None else f"{1000 * v:.1f}"  # noqa: E731
    yn = lambda b: "yes" if b else "**no**"  # noqa: E731
    lines = ["# ponder serve benchmark (generated by run.py)", "", f"Command: `{command}`", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB; torch {m['torch']} with "
             f"{m['torch_threads']} thread(s) offline and in the server, Python {m['python']}, openai {m['openai']}; "
             f"commit {out['commit']}. "
             f"Load average (1 min) {out['load_start'][0]:.2f} at the start, {out['load_end'][0]:.2f} at the end; "
             f"{out['total_s']:.0f} s in all.", "",
             "## Offline (`Decoder.generate`, greedy)", "",
             "| model | questions | batch | questions/s (min–max) | CPU ms / question | forward passes | rows / pass "
             "| batch 1: p50 latency (ms) | batch 1: questions/s | accuracy | mean reasoning length | load before, after |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in out["models"]:
        o = r["offline"]
        speed = "" if r["speed"] is None else f" (speed {r['speed']})"
        lines.append(f"| {r['model']}{speed} "
                     f"| {o['questions']} | {o['batch']} | {o['questions_per_s']:.1f} ({min(o['questions_per_s_runs']):.0f}–"
                     f"{max(o['questions_per_s_runs']):.0f}) | {o['cpu_ms_per_question']:.2f} "
                     f"| {o['forwards']} | {o['forward_rows'] / max(1, o['forwards']):.1f} | {ms(o['batch1_p50_latency_s'])} "
                     f"| {o['batch1_questions_per_s']:.1f} | {100 * o['accuracy']:.1f}% | {o['reasoning_length_mean']:.2f} "
                     f"| {o['load_before'][0]:.2f}, {o['load_after'][0]:.2f} |")
    lines += ["", "## Served (`ponder serve --max-batch 32`, N clients of the `openai` package)", "",
              "| model | clients | stream | runs × requests | requests/s | × offline | p50 latency (ms) | p99 latency (ms) "
              "| p50 TTFT (ms) | p99 TTFT (ms) | server: latency, mean (ms) | server: TTFT, mean (ms) | errors "
              "| answers = offline | reasoning length = offline |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    runs = lambda r: r["server"]["runs"] + ([r["diagnose"]] if "diagnose" in r else [])  # noqa: E731
    for r in out["models"]:
        off = r["offline"]["questions_per_s"]
        for x in runs(r):
            k = x.get("repeats", 1)
            total, errors = k * x["requests"], x.get("errors_all_runs", x["errors"])
            wrong = x.get("answer_mismatches_all_runs", x["answer_mismatches"])
            wrong_len = x.get("reasoning_length_mismatches_all_runs", x["reasoning_length_mismatches"])
            spread = x.get("requests_per_s_runs", [x["requests_per_s"]])
            spread = f" ({min(spread):.0f}–{max(spread):.0f})" if len(spread) > 1 else ""
            lines.append(
                f"| {r['model']} | {x['clients']}{' (instrumented)' if 'engine' in x else ''} | "
                f"{'yes' if x['stream'] else 'no'} | {k} × {x['requests']} | {x['requests_per_s']:.1f}{spread} | "
                f"{x['requests_per_s'] / off:.2f} | {ms(x['latency_p50_s'])} | {ms(x['latency_p99_s'])} | "
                f"{ms(x['ttft_p50_s'])} | {ms(x['ttft_p99_s'])} | {ms(x['server_latency_mean_s'])} | "
                f"{ms(x.get('server_ttft_mean_s'))} | {errors} | "
                f"{total - errors - wrong}/{total} | {total - errors - wrong_len}/{total} |")
    lines += ["", "requests/s: the median run (min–max of the runs); latencies and CPU: that run; errors and "
                  "equality: every run. Latency and TTFT are the client's (from sending the request); the server's "
                  "(`/metrics`) run from the row's submission to its last token and to its first delta.", ""]
    lines += ["", "## Memory and CPU", "",
              "Server RSS (MB): idle before any request / after an 8-request warm-up: " + "; ".join(
                  f"{r['model']} {r['server']['rss_idle_mb']:.0f} / {r['server']['rss_idle_warm_mb']:.0f}"
                  for r in out["models"]) + ".", "",
              "| model | clients | stream | peak RSS (MB) | RSS 2 s after (MB) | CPU ms / request: client "
              "| server event loop | server engine thread | server other threads | load before | load after |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in out["models"]:
        for x in runs(r):
            c, n = x["server_cpu_s"], x["requests"]
            lines.append(f"| {r['model']} | {x['clients']}{' (instrumented)' if 'engine' in x else ''} | "
                         f"{'yes' if x['stream'] else 'no'} | {x['rss_peak_mb']:.0f} | {x['rss_after_2s_mb']:.0f} | "
                         f"{1000 * x['client_cpu_s'] / n:.2f} | {1000 * c['loop'] / n:.2f} | {1000 * c['engine'] / n:.2f} | "
                         f"{1000 * c['rest'] / n:.2f} | {x['load_before'][0]:.2f} | {x['load_after'][0]:.2f} |")
    lines += ["", "## Acceptance (issue 20: 64 clients × 8 requests, streamed)", "",
              "| model | no error | answers = offline | throughput / offline | ≥ 0.8 | RSS 2 s after / idle (warm idle) "
              "| within 10% |", "|---|---|---|---|---|---|---|"]
    for r in out["models"]:
        a = r["acceptance"]
        lines.append(f"| {r['model']} | {yn(a['no_error'])} | {yn(a['answers_equal_offline'])} | {a['throughput_ratio']:.2f} "
                     f"| {yn(a['throughput_at_least_0.8_offline'])} | {a['rss_after_over_idle']:.3f} "
                     f"({a['rss_after_over_idle_warm']:.3f}) | {yn(a['rss_after_within_10pct_of_idle'])} |")
    diag = [r for r in out["models"] if "diagnose" in r]
    if diag:
        lines += ["", "## Where the time goes", "",
                  "Engine counters (`counted.py`, 64 clients, streamed) against offline:", "",
                  "| model | wall s | engine in step s | in forward s | ms / forward | forward passes | rows / pass "
                  "| prefill passes | rows / prefill | offline passes | offline ms / pass |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in diag:
            e, x, o = r["diagnose"]["engine"], r["diagnose"], r["offline"]
            lines.append(f"| {r['model']} | {x['wall_s']:.2f} | {e['step_s']:.2f} | {e['forward_s']:.2f} | "
                         f"{1000 * e['forward_s'] / max(1, e['forwards']):.2f} | {e['forwards']} | "
                         f"{e['forward_rows'] / max(1, e['forwards']):.1f} | {e['prefills']} | "
                         f"{e['prefill_rows'] / max(1, e['prefills']):.1f} | {o['forwards']} | "
                         f"{1000 * o['questions'] / o['questions_per_s'] / max(1, o['forwards']):.2f} |")
    prof = [r for r in out["models"] if r.get("profile")]
    if prof:
        names = sorted({k for r in prof for k in r["profile"]["seconds"]})
        lines += ["", f"py-spy (`record --idle --threads --nonblocking`, {RATE} Hz), 64 clients, streamed: seconds "
                      "per thread and activity, over the run and about 1 s before it:", "",
                  "| activity | " + " | ".join(f"{r['model']} ({r['profile']['wall_s']:.2f} s run, "
                                               f"{r['profile']['requests_per_s']:.0f} req/s)" for r in prof) + " |",
                  "|---|" + "---|" * len(prof)]
        for k in names:
            lines.append(f"| {k} | " + " | ".join(f"{r['profile']['seconds'].get(k, 0.0):.2f}" for r in prof) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="/tmp/qs", help="a `ponder quickstart --out DIR` folder (cot/, colar/)")
    ap.add_argument("--out", default=str(HERE))
    ap.add_argument("--n", type=int, default=512, help="questions (64 clients x 8)")
    ap.add_argument("--n1", type=int, default=128, help="questions asked by the single client")
    ap.add_argument("--clients", default="1,8,64")
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--speed", type=int, default=2, help="CoLaR's speed")
    ap.add_argument("--repeats", type=int, default=3, help="timed offline passes (after one warm-up)")
    ap.add_argument("--server-repeats", type=int, default=3, help="runs of each number of clients (the median is shown)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads, offline and in the server (OMP_NUM_THREADS): on 2 shared cores one is left "
                         "for the server's event loop and the clients")
    ap.add_argument("--only", default="cot,colar", help="which models")
    ap.add_argument("--no-diagnose", dest="diagnose", action="store_false")
    args = ap.parse_args(argv)
    args.clients = [int(c) for c in args.clients.split(",")]
    models = Path(args.models)
    for m in args.only.split(","):
        if not (models / m / "config.json").is_file():
            sys.exit(f"error: {models / m}: no model; make them with `ponder quickstart --out {models}`")
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    test = make_splits("running-sum", 4000, 100, args.n, seed=0)["test"]
    questions, truths = [r.question for r in test], [r.answer for r in test]
    out_dir = Path(args.out)
    logs = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    command = "python benchmarks/serve/run.py " + " ".join(sys.argv[1:] if argv is None else argv)
    out = {"command": command, "machine": machine(), "load_start": os.getloadavg(), "commit": commit(),
           "models": []}
    t0 = time.perf_counter()
    for m in args.only.split(","):
        r = bench_model(m, models / m, args.speed if m == "colar" else None, questions, truths, args,
                        logs)
        r["acceptance"] = acceptance(r)
        out["models"].append(r)
    out["load_end"], out["total_s"], out["server_logs"] = os.getloadavg(), time.perf_counter() - t0, str(logs)
    atomic_write_text(out_dir / "results.json", json.dumps(out, indent=1) + "\n")
    md = markdown(out, command)
    atomic_write_text(out_dir / "results.md", md)
    print(md)


if __name__ == "__main__":
    run_script(main)
