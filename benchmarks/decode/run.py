"""Decoding speed: ponder's ``Decoder`` against ``transformers`` ``generate`` (CoT) and the official CoLaR loop.

    OMP_NUM_THREADS=2 python benchmarks/decode/run.py                 # CPU, 2 threads: results.json + results.md
    OMP_NUM_THREADS=2 python benchmarks/decode/run.py --compile --name compile  # + torch.compile
    python benchmarks/decode/run.py --device cuda --name cuda          # the same on a GPU (a few minutes)

What is timed, on the *same weights* and the *same prompts* (32 arith questions, prompts of 29..67 tokens
left-padded; batch 1 takes the first, 64 tokens):

* ``ponder-cot``     -- ``Decoder(cot, max_new_tokens=N).generate(questions, speed=1)``, greedy;
* ``generate``       -- ``model.lm.generate(input_ids, attention_mask, max_new_tokens=N, do_sample=False,
  eos_token_id, pad_token_id)`` on the same left-padded CoT prompts (as ``tests/test_decode.py``'s first test);
* ``ponder-colar``   -- ``Decoder(colar, max_new_tokens=N, max_latent_steps=L).generate(questions, speed=2)``;
* ``official-colar`` -- ``official_latent_generate`` below, a re-implementation of the official loop;
* ``ponder-*-compiled`` (``--compile``) -- the same ``Decoder`` in ponder's compiled mode (``Decoder(compile=
  True)``, what ``ponder eval --compile`` uses): a batch submitted at once goes through the whole-step loop
  (``inference/static.py``: static KV cache, one compiled step); no pass can be wrapped inside it, so its passes
  and positions come from its rows (``whole_step_work``) and its body is not timed apart;
* ``ponder-*-compiled-step`` (``--compile``) -- the compiled pass under the engine's step (``engine.whole_step
  = False``: what ``ponder serve --compile`` and sampled decoding use); the first call of each compiled method
  (compilation included) is reported apart.

The models are from-scratch Llamas of about 1M (``tiny`` preset: hidden 128, 4 layers) and 26M parameters
(hidden 512, 6 layers, 8 heads, MLP 2048), random weights, with a latent head (``max_compression`` 4). So that
every method does the same amount of work, the output head is redrawn (as ``tests/test_serve.py``'s
``chaotic()`` does) with the rows of ``</think>`` and ``<eos>`` set to zero: their logit is then 0 while some
other token's is positive, so neither is ever the argmax -- a CoLaR chain runs exactly ``L`` = 10 latent steps
(``max_latent_steps``), then ``</think>``, then exactly N answer tokens (N = 1 and 16); CoT decodes N tokens.
The script checks this, and that ponder and the references decode the same tokens (and latents) before timing.
Every timed call starts from the questions: ponder, ``generate`` and the official loop each build their prompts
(``layout.generation_prompt``, about 2.5 ms for 32 questions) inside the call, as the official ``latent_generate``
tokenizes its questions; only ponder also turns its output into text (``Generation.text``/``answer``, about
0.3 ms for 32 rows), the references return ids.

Timing: per (size, batch, N) group, every method is called ``--warmup`` times, then ``--repeats`` rounds, each
round calling every method once in a rotated order (interleaved, so a slow spell of the shared machine hits all
methods alike); median and spread (quartiles, min, max) of the wall time of one call. A wrapper on the base
model's ``forward`` (``lm.model``: the one ponder's lean pass, ``generate`` and the official loop all reach)
counts forward passes and positions (batch x sequence length of each pass, padding included) and accumulates
the time spent inside it: the *transformer body* (embedding lookups done by the caller and the LM head
excluded; for the compiled rows the wrapper is on the compiled pass as a whole, LM head included, because a
wrapper inside it would break the graph). Everything else --
latent head, sampling, masks, cache merging, the Python of each loop -- is the *rest*; both are given per pass.
On CUDA the body is timed in extra, synchronised rounds (a sync per pass would distort the timed ones).

Pass-count limit (issue #22): both methods pay the prompt, ``</think>`` and the answer passes, so if every pass
cost the same the speed-up could not exceed the ratio of pass counts; ``x limit`` = speed-up / pass ratio.
Here the pass counts are equal (``generate`` and the official loop also stop after the last token), so the limit
is 1 and any speed-up comes from cheaper passes: the official loop's answer phase re-feeds the whole prefix, so
positions differ (the ``pos ratio`` column).

The official CoLaR loop (``official_latent_generate``) -- ``LitCoTModelBase.latent_generate`` in
``src/models/model_base.py`` of github.com/xiaomi-research/colar, commit 4b6ae9a05da2a8a09d5356aeda3e896d53957414
(read there; re-written here from its description, not copied):

1. the question prompt (ending with the speed marker and the thinking separator) is left-padded, positions are
   the cumulative sum of the mask minus one (clamped at 0), and one full forward pass over the embedded prompt
   is run with all hidden states returned and the logits of *every* position computed;
2. then up to ``max_n_latent_forward`` times: the latent policy reads the last position of the last layer's
   hidden state and gives a diagonal Gaussian (mean, exp(log_std) x latent temperature); a reparameterised draw
   times the embedding std is the next input embedding of *every* row -- rows already done are fed too, but
   their new mask column is 0 and their position does not advance; a row's latent count grows while it is not
   done; one cached forward pass (all hidden states, full output); the next token is drawn by ``multinomial``
   from softmax(logits / eol temperature) and a row is done once it draws the thinking separator; the loop
   stops when all rows are done (a host sync per step);
3. the thinking separator's embedding is appended for every row (mask 1);
4. the answer: ``generate(inputs_embeds=<prompt, latents, separator>, attention_mask=...)`` -- which encodes
   the whole prefix again from scratch (no cache is carried over from steps 1-2), then decodes the answer.

Here it runs on ponder's latent head (the same weights), with ``transformers`` 5's argument names (``cache``),
greedy: latent temperature 0 makes the draw its mean exactly (the official ``torch.distributions.Normal``
refuses a zero scale, so the draw is written out as mean + std * noise, which is what ``rsample`` computes),
the eol temperature is 1e-6 (softmax and ``multinomial`` still run every step as in the official code, but the
draw is the argmax: ponder's greedy rule), and the answer is decoded with ``do_sample=False`` (the official
configuration samples it at top-p 0.9). Ponder instead keeps one KV cache from the prompt to the last answer
token: prompt pass, L latent passes, one ``</think>`` pass that gives the first answer token, N - 1 more.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import platform
import statistics
import sys
import time
import types
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from ponder.data.records import atomic_write_text
from ponder.data.tasks import make_splits
from ponder.inference.decode import Decoder
from ponder.model.io import PRESETS, PonderModel, PonderSettings
from ponder.model.tokenizer import build_tokenizer

HERE = Path(__file__).parent
OFFICIAL = ("github.com/xiaomi-research/colar src/models/model_base.py (LitCoTModelBase.latent_generate) "
            "@ 4b6ae9a05da2a8a09d5356aeda3e896d53957414")
SIZES = {  # name: (hidden, layers, heads, intermediate, vocab asked of the tokenizer)
    "1m": PRESETS["tiny"],
    "26m": (512, 6, 8, 2048, 512),
}
SPEED = 2  # the speed marker of the CoLaR prompts (it changes no pass count)


# -- models -------------------------------------------------------------------------------------------
def make_models(size: str, texts, device, seed: int = 0):
    """(CoT model, CoLaR model) sharing one random Llama and its latent head; </think> and <eos> never argmax."""
    hidden, layers, heads, inner, vocab = SIZES[size]
    tok = build_tokenizer(texts, vocab_size=vocab)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=inner, num_hidden_layers=layers,
                         num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=2048,
                         tie_word_embeddings=True, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id)
    torch.manual_seed(seed)
    lm = LlamaForCausalLM(config)
    for name in ("pad_token_id", "eos_token_id", "bos_token_id"):
        setattr(lm.generation_config, name, getattr(tok, name))
    colar = PonderModel(lm, tok, PonderSettings(method="colar", max_compression=4, init=f"random-{size}"))
    colar.add_latent_head()
    colar.settings.embed_std = colar.measure_embed_std()
    head = lm.get_output_embeddings()  # redrawn as in tests/test_serve.py's chaotic(): unties it from the input
    w = torch.randn(head.weight.shape, generator=torch.Generator().manual_seed(seed)) * 0.5
    think_end = colar.settings.layout.think_ids(tok)[1]
    w[think_end] = 0.0  # logit 0: never the argmax while any other logit is positive
    w[tok.eos_token_id] = 0.0
    head.weight = torch.nn.Parameter(w)
    colar = colar.to(device).eval()
    cot = PonderModel(lm, tok, dataclasses.replace(colar.settings, method="cot", max_compression=1,
                                                    latent_head=None, embed_std=None)).eval()
    return cot, colar


def compiled_twin(model):
    """The same weights in ponder's compiled mode (``PonderModel.compile_decoding``, what ``--compile`` and
    ``Decoder(compile=True)`` turn on), on a twin so that the eager model stays eager."""
    twin = PonderModel(model.lm, model.tokenizer, model.settings, model.latent_head).eval()
    twin.compile_decoding()
    # The Meter counts and times the compiled pass as a whole: wrapping a module inside it would break the graph.
    twin.body = types.SimpleNamespace(forward=twin.__dict__["_compiled"])
    twin.__dict__["_compiled"] = lambda **kw: twin.body.forward(**kw)
    return twin


# -- counting and timing the forward passes -----------------------------------------------------------
def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Meter:
    """Counts the passes and positions of a module's ``forward`` and the time spent inside it."""

    def __init__(self, device):
        self.device, self.time_body = device, True
        self.reset()

    def reset(self):
        self.passes = self.positions = 0
        self.body = 0.0

    def attach(self, module):
        """Wrap ``module.forward`` (an instance attribute; ``functools.wraps`` keeps its signature, which
        ``generate`` inspects for ``logits_to_keep``). Returns the function that removes the wrapper.
        ``None`` (a whole-step call, whose passes are inside one compiled step) wraps nothing."""
        if module is None:
            return lambda: None
        had = "forward" in vars(module)
        inner = module.forward

        @functools.wraps(inner)
        def counted(*args, **kw):
            x = kw.get("inputs_embeds")
            x = kw.get("input_ids") if x is None else x
            x = args[0] if x is None else x
            self.passes += 1
            self.positions += x.shape[0] * x.shape[1]
            if not self.time_body:
                return inner(*args, **kw)
            sync(self.device)
            t0 = time.perf_counter()
            out = inner(*args, **kw)
            sync(self.device)
            self.body += time.perf_counter() - t0
            return out

        module.forward = counted

        def detach():
            if had:
                module.forward = inner
            else:
                del module.forward
        return detach


def cache_of(out):
    """The KV cache a forward returned (``cache`` since transformers 5.2x, ``past_key_values`` before)."""
    return out["cache"] if "cache" in out else out.past_key_values


# -- the official CoLaR loop, re-implemented (see the module docstring) -----------------------------
@torch.no_grad()
def official_latent_generate(model, questions: list[str], speed, max_n_latent_forward: int, max_new_tokens: int,
                             latent_temperature: float = 0.0, eol_temperature: float = 1e-6, generator=None):
    """-> (answer ids (B, <= max_new_tokens), latent counts (B,), latents (B, steps, d))."""
    lm, head, tok = model.lm, model.latent_head, model.tokenizer
    prompts = [model.settings.layout.generation_prompt(tok, q, speed, think=True) for q in questions]
    device = model.device
    sep = model.settings.layout.think_ids(tok)[1]
    embed = lm.get_input_embeddings()
    B, T = len(prompts), max(map(len, prompts))
    ids = torch.tensor([[tok.pad_token_id] * (T - len(p)) + list(p) for p in prompts], device=device)
    mask = torch.tensor([[0] * (T - len(p)) + [1] * len(p) for p in prompts], device=device)
    pos = (mask.cumsum(1) - 1).clamp(min=0)
    x = embed(ids)
    segments = [x]  # every input embedding fed so far: the answer phase feeds them all again
    out = lm(inputs_embeds=x, attention_mask=mask, position_ids=pos, output_hidden_states=True)  # every position
    cache, pos = cache_of(out), pos[:, -1:]
    done = torch.zeros(B, 1, dtype=torch.bool, device=device)
    counts = torch.zeros(B, 1, dtype=torch.long, device=device)
    latents = []
    for _ in range(max_n_latent_forward):
        mean, log_std = head(out.hidden_states[-1][:, -1:])
        noise = torch.randn(mean.shape, generator=generator, device=device, dtype=mean.dtype)
        z = (mean + log_std.exp() * latent_temperature * noise) * model.settings.embed_std  # rsample, x std
        latents.append(z)
        segments.append(z)
        live = (~done).long()
        mask = torch.cat([mask, live], 1)
        pos = pos + live
        counts += live
        out = lm(inputs_embeds=z, attention_mask=mask, position_ids=pos, cache=cache, output_hidden_states=True)
        cache = cache_of(out)
        probs = torch.softmax(out.logits[:, -1] / eol_temperature, -1)
        done |= torch.multinomial(probs, 1, generator=generator) == sep
        if done.all():
            break
    segments.append(embed(torch.full((B, 1), sep, device=device)))
    mask = torch.cat([mask, torch.ones(B, 1, dtype=torch.long, device=device)], 1)
    answer = lm.generate(inputs_embeds=torch.cat(segments, 1), attention_mask=mask, max_new_tokens=max_new_tokens,
                         do_sample=False, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    return answer, counts[:, 0], torch.cat(latents, 1)


def hf_generate(model, questions, max_new_tokens):
    """``generate`` on left-padded CoT prompts, as tests/test_decode.py's first test builds and calls it."""
    tok = model.tokenizer
    prompts = [model.settings.layout.generation_prompt(tok, q, 1, think=True) for q in questions]
    T = max(map(len, prompts))
    ids = torch.tensor([[tok.pad_token_id] * (T - len(p)) + p for p in prompts], device=model.device)
    mask = (torch.arange(T, device=model.device)[None, :]
            >= torch.tensor([T - len(p) for p in prompts], device=model.device)[:, None]).long()
    with torch.no_grad():
        return model.lm.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                                 eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)[:, T:]


# -- one group: the methods of one (size, batch, N) ----------------------------------------------------
def methods(cot, colar, questions, n_tokens, latents, compiled):
    d_cot = Decoder(cot, max_new_tokens=n_tokens)
    d_colar = Decoder(colar, max_new_tokens=n_tokens, max_latent_steps=latents)
    gen = torch.Generator(colar.device).manual_seed(0)
    out = {
        "ponder-cot": (cot.lm.model, lambda: d_cot.generate(questions, speed=1)),
        "generate": (cot.lm.model, lambda: hf_generate(cot, questions, n_tokens)),
        "ponder-colar": (colar.lm.model, lambda: d_colar.generate(questions, speed=SPEED)),
        "official-colar": (colar.lm.model, lambda: official_latent_generate(colar, questions, SPEED, latents, n_tokens,
                                                                      generator=gen)),
    }
    if compiled is not None:
        c_cot, c_colar = compiled
        dc_cot = Decoder(c_cot, max_new_tokens=n_tokens)
        dc_colar = Decoder(c_colar, max_new_tokens=n_tokens, max_latent_steps=latents)
        out["ponder-cot-compiled"] = (None, lambda: dc_cot.generate(questions, speed=1))
        out["ponder-colar-compiled"] = (None, lambda: dc_colar.generate(questions, speed=SPEED))
        sc_cot = Decoder(c_cot, max_new_tokens=n_tokens)
        sc_colar = Decoder(c_colar, max_new_tokens=n_tokens, max_latent_steps=latents)
        sc_cot.engine.whole_step = sc_colar.engine.whole_step = False  # the compiled pass under the engine's step
        out["ponder-cot-compiled-step"] = (c_cot.body, lambda: sc_cot.generate(questions, speed=1))
        out["ponder-colar-compiled-step"] = (c_colar.body, lambda: sc_colar.generate(questions, speed=SPEED))
    return out


def whole_step_work(generations):
    """Passes and positions of a whole-step call (static.py), from its rows: the meter cannot wrap a pass inside
    the compiled step. Every row takes part in every pass (done rows masked): the prefill's B x T positions,
    then one position per row and pass."""
    passes = max(g.main_passes for g in generations)
    B, T = len(generations), max(g.prompt_tokens for g in generations)
    return passes, B * T + B * (passes - 1)


def check(results, n_tokens, latents, batch):
    """Every method did the same work and decoded the same thing; -> a dict of the checks."""
    cot, ref = results["ponder-cot"], results["generate"]
    colar = results["ponder-colar"]
    answer, counts, lat = results["official-colar"]
    ref_ids = [r.tolist() for r in ref]
    off_ids = [r.tolist() for r in answer]
    checks = {
        "cot_tokens_equal_generate": [g.token_ids for g in cot] == ref_ids,
        "cot_tokens_all_n": all(len(g.token_ids) == n_tokens for g in cot),
        "colar_latent_steps_all_L": all(g.reasoning_length == latents for g in colar) and bool((counts == latents).all()),
        "colar_answer_all_n": all(len(g.token_ids) == n_tokens for g in colar),
        "colar_answers_equal_official": [g.token_ids for g in colar] == off_ids,
        "colar_latents_max_abs_diff_vs_official": max(
            float((g.latents - lat[b].float().cpu()).abs().max()) for b, g in enumerate(colar)),
    }
    for name in ("ponder-cot-compiled", "ponder-colar-compiled", "ponder-cot-compiled-step",
                 "ponder-colar-compiled-step"):
        if name in results:
            eager = results[name.split("-compiled")[0]]
            checks[f"{name}_tokens_equal_eager"] = [g.token_ids for g in results[name]] == [g.token_ids for g in eager]
    for name in ("ponder-colar-compiled", "ponder-colar-compiled-step"):
        if name in results:
            checks[f"{name}_latents_max_abs_diff"] = max(
                float((g.latents - e.latents).abs().max()) for g, e in zip(results[name], colar))
    bad = [k for k, v in checks.items() if v is False]
    if bad:
        print(f"warning: batch {batch}, N {n_tokens}: checks failed: {bad}", file=sys.stderr)
    return checks


def quartiles(xs):
    q = statistics.quantiles(xs, n=4, method="inclusive") if len(xs) > 1 else [xs[0]] * 3
    return q[0], q[2]


def run_group(meter, group, warmup, repeats, device):
    """-> per method: first-call seconds, timed seconds, passes, positions, body seconds; and the outputs."""
    stats, outputs = {}, {}
    names = list(group)
    for name in names:  # warm-up (the first call of a compiled method compiles)
        module, fn = group[name]
        first = None
        for i in range(warmup):
            detach = meter.attach(module)
            meter.reset()
            sync(device)
            t0 = time.perf_counter()
            outputs[name] = fn()
            sync(device)
            dt = time.perf_counter() - t0
            detach()
            first = dt if first is None else first
        stats[name] = {"first_call_s": first, "times": [], "body": [], "passes": None, "positions": None}
    meter.time_body = device.type == "cpu"
    for rep in range(repeats):
        order = names[rep % len(names):] + names[: rep % len(names)]
        for name in order:
            module, fn = group[name]
            detach = meter.attach(module)
            meter.reset()
            sync(device)
            t0 = time.perf_counter()
            got = fn()
            sync(device)
            dt = time.perf_counter() - t0
            detach()
            s = stats[name]
            s["times"].append(dt)
            if module is None:  # whole-step: no body to time apart
                s["passes"], s["positions"] = whole_step_work(got)
                continue
            if meter.time_body:
                s["body"].append(meter.body)
            s["passes"], s["positions"] = meter.passes, meter.positions
    if device.type == "cuda":  # the body, in synchronised rounds of their own
        meter.time_body = True
        for rep in range(max(3, repeats // 3)):
            for name in (n for n in names if group[n][0] is not None):
                module, fn = group[name]
                detach = meter.attach(module)
                meter.reset()
                fn()
                detach()
                stats[name]["body"].append(meter.body)
    return stats, outputs


def summarise(name, s):
    t = s["times"]
    q1, q3 = quartiles(t)
    med = statistics.median(t)
    body = statistics.median(s["body"]) if s["body"] else None
    row = {"method": name, "median_s": med, "q1_s": q1, "q3_s": q3, "min_s": min(t), "max_s": max(t),
           "first_call_s": s["first_call_s"], "passes": s["passes"], "positions": s["positions"],
           "body_s": body, "repeats": len(t)}
    if body is not None:
        row["body_ms_per_pass"] = 1e3 * body / s["passes"]
        # the rest per pass from the same rounds' medians (on CUDA the body comes from separate rounds)
        row["rest_ms_per_pass"] = 1e3 * (med - body) / s["passes"]
        row["rest_share"] = (med - body) / med
    return row


def compare(rows, fast, ref):
    a, b = rows[fast], rows[ref]
    speedup = b["median_s"] / a["median_s"]
    pass_ratio = b["passes"] / a["passes"]
    return {"method": fast, "reference": ref, "speedup": speedup,
            "speedup_q": [b["q1_s"] / a["q3_s"], b["q3_s"] / a["q1_s"]],  # pessimistic .. optimistic quartile ratio
            "pass_ratio": pass_ratio, "speedup_over_pass_limit": speedup / pass_ratio,
            "position_ratio": b["positions"] / a["positions"]}


def cpu_name():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def load():
    return os.getloadavg()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--sizes", default="1m,26m")
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--tokens", default="1,16", help="answer tokens N (CoT: tokens decoded)")
    ap.add_argument("--latents", type=int, default=10, help="latent steps L (forced)")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2, help="torch threads on CPU")
    ap.add_argument("--compile", action="store_true", help="also ponder's compiled mode (--compile)")
    ap.add_argument("--name", default="results", help="output files: NAME.json and NAME.md")
    ap.add_argument("--out", default=str(HERE))
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    command = "python benchmarks/decode/run.py " + " ".join(sys.argv[1:] if argv is None else argv)
    load_start = load()
    t_start = time.time()

    splits = make_splits("arith", n_train=300, n_val=0, n_test=32, seed=3, difficulty=8)
    texts = [t for r in splits["train"] for t in (r.question, " ".join(r.steps), r.answer)]
    texts += ["Question: Speed: Answer: auto"]
    questions = [r.question for r in splits["test"]]
    batches = [int(b) for b in args.batches.split(",")]
    tokens = [int(n) for n in args.tokens.split(",")]
    rows, comparisons, checks, models = [], [], [], {}
    for size in args.sizes.split(","):
        cot, colar = make_models(size, texts, device)
        n_params = sum(p.numel() for p in cot.lm.parameters())
        head_params = sum(p.numel() for p in colar.latent_head.parameters())
        lay, tok = cot.settings.layout, cot.tokenizer
        lengths = [len(lay.generation_prompt(tok, q, SPEED, think=True)) for q in questions]
        models[size] = {"config": SIZES[size], "vocab": len(tok), "lm_params": n_params, "latent_head_params": head_params,
                        "prompt_tokens": {"min": min(lengths), "max": max(lengths), "batch1": lengths[0]}}
        compiled = (compiled_twin(cot), compiled_twin(colar)) if args.compile else None
        meter = Meter(device)
        for batch in batches:
            qs = questions[:batch]
            for n in tokens:
                group = methods(cot, colar, qs, n, args.latents, compiled)
                stats, outputs = run_group(meter, group, args.warmup, args.repeats, device)
                key = {"size": size, "batch": batch, "tokens": n, "latents": args.latents}
                by = {}
                for name, s in stats.items():
                    by[name] = {**key, **summarise(name, s)}
                    rows.append(by[name])
                c = {**key, **check(outputs, n, args.latents, batch)}
                checks.append(c)
                pairs = [("ponder-cot", "generate"), ("ponder-colar", "official-colar")]
                if args.compile:
                    for mode in ("ponder-cot-compiled", "ponder-cot-compiled-step"):
                        pairs += [(mode, "generate"), (mode, "ponder-cot")]
                    for mode in ("ponder-colar-compiled", "ponder-colar-compiled-step"):
                        pairs += [(mode, "official-colar"), (mode, "ponder-colar")]
                for fast, ref in pairs:
                    comparisons.append({**key, **compare(by, fast, ref)})
                print(json.dumps({**key, **{k: round(v["median_s"] * 1e3, 2) for k, v in by.items()}}), flush=True)
    load_end = load()
    env = {"torch": torch.__version__, "transformers": __import__("transformers").__version__,
           "device": torch.cuda.get_device_name(0) if device.type == "cuda" else cpu_name(),
           "threads": torch.get_num_threads(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
           "cpu_count": os.cpu_count(), "load_avg_start": load_start, "load_avg_end": load_end,
           "wall_s": round(time.time() - t_start, 1)}
    targets = targets_met(comparisons, args)
    result = {"command": command, "official": OFFICIAL, "env": env, "models": models, "speed": SPEED,
              "rows": rows, "comparisons": comparisons, "checks": checks, "targets": targets}
    out = Path(args.out)
    atomic_write_text(out / f"{args.name}.json", json.dumps(result, indent=1) + "\n")
    md = markdown(result)
    atomic_write_text(out / f"{args.name}.md", md)
    print(md)


def targets_met(comparisons, args):
    """Issue #22's CPU targets on the 1M model, with ponder's best measured mode."""
    if "1m" not in args.sizes.split(","):
        return {}
    out = {}
    for label, ref, batch, need in (("colar_throughput_b32", "official-colar", 32, 2.0),
                                    ("colar_latency_b1", "official-colar", 1, 1.5),
                                    ("cot_vs_generate_b1", "generate", 1, 1.0),
                                    ("cot_vs_generate_b32", "generate", 32, 1.0)):
        cs = [c for c in comparisons if c["size"] == "1m" and c["batch"] == batch and c["reference"] == ref]
        if not cs:
            continue
        per_n = {}
        for n in sorted({c["tokens"] for c in cs}):
            best = max((c for c in cs if c["tokens"] == n), key=lambda c: c["speedup"])
            per_n[n] = {"method": best["method"], "speedup": round(best["speedup"], 3)}
        out[label] = {"need": need, "per_tokens": per_n, "met": all(v["speedup"] >= need for v in per_n.values())}
    return out


def markdown(r):
    env = r["env"]
    lines = [f"# Decoding speed ({env['device']}, {env['threads']} threads, torch {env['torch']}, "
             f"transformers {env['transformers']})", "", f"Command: `{r['command']}`", "",
             f"Load average (1, 5, 15 min) at start {tuple(round(x, 2) for x in env['load_avg_start'])}, at end "
             f"{tuple(round(x, 2) for x in env['load_avg_end'])}; wall {env['wall_s']} s.", "",
             "Milliseconds per call, median [quartiles] of interleaved rounds; passes and positions per call; body "
             "= inside the LM's forward, rest = everything else, per pass.", "",
             "| size | batch | N | method | median ms | q1..q3 | min..max | passes | positions | body ms/pass "
             "| rest ms/pass | rest share | first call s |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    f = lambda x, d=2: "-" if x is None else f"{x:.{d}f}"  # noqa: E731
    for x in r["rows"]:
        lines.append(f"| {x['size']} | {x['batch']} | {x['tokens']} | {x['method']} | {x['median_s'] * 1e3:.1f} | "
                     f"{x['q1_s'] * 1e3:.1f}..{x['q3_s'] * 1e3:.1f} | {x['min_s'] * 1e3:.1f}..{x['max_s'] * 1e3:.1f} | "
                     f"{x['passes']} | {x['positions']} | {f(x.get('body_ms_per_pass'), 3)} | "
                     f"{f(x.get('rest_ms_per_pass'), 3)} | {f(x.get('rest_share'))} | {x['first_call_s']:.2f} |")
    lines += ["", "Speed-up = reference median / method median (in brackets: reference q1 / method q3 .. reference q3 "
              "/ method q1); pass ratio = reference passes / method passes (the limit if every pass cost the same); "
              "x limit = speed-up / pass ratio; pos ratio = reference positions / method positions.", "",
              "| size | batch | N | method | reference | speed-up | quartile range | pass ratio | x limit | pos ratio |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for c in r["comparisons"]:
        lines.append(f"| {c['size']} | {c['batch']} | {c['tokens']} | {c['method']} | {c['reference']} | "
                     f"{c['speedup']:.2f} | {c['speedup_q'][0]:.2f}..{c['speedup_q'][1]:.2f} | {c['pass_ratio']:.2f} | "
                     f"{c['speedup_over_pass_limit']:.2f} | {c['position_ratio']:.2f} |")
    compiled = [x for x in r["rows"] if "-compiled" in x["method"]]
    if compiled:
        total = sum(max(0.0, x["first_call_s"] - x["median_s"]) for x in compiled)
        lines += ["", f"Compilation (ponder's compiled mode, ``PonderModel.compile_decoding``): first call minus a timed call, summed over "
                  f"the compiled rows: {total:.1f} s (first calls: "
                  + ", ".join(f"{x['size']} b{x['batch']} N={x['tokens']} {x['method']} {x['first_call_s']:.1f} s"
                              for x in compiled if x["first_call_s"] - x["median_s"] > 0.5) + ")."]
    if r["targets"]:
        lines += ["", "Issue #22 targets (1M model, best ponder mode measured):", ""]
        for k, v in r["targets"].items():
            got = ", ".join(f"N={n}: {d['speedup']:.2f}x ({d['method']})" for n, d in v["per_tokens"].items())
            lines.append(f"- {k}: need >= {v['need']}x; {got} -> {'met' if v['met'] else 'NOT met'}")
    lines += ["", "Checks (same work, same output):", ""]
    for c in r["checks"]:
        items = ", ".join(f"{k}={v:.2g}" if isinstance(v, float) else f"{k}={v}" for k, v in c.items()
                          if k not in ("size", "batch", "tokens", "latents"))
        lines.append(f"- {c['size']} b{c['batch']} N={c['tokens']}: {items}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
