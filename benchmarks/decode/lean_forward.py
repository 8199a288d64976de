"""A candidate engine fix, measured: ``PonderModel.forward`` without ``output_hidden_states`` while decoding.

    OMP_NUM_THREADS=2 python benchmarks/decode/lean_forward.py     # -> lean_forward.json

``PonderModel.forward`` (src/ponder/model/io.py) calls ``self.lm(..., output_hidden_states=True)`` on every pass
to read the last layer's last position. In transformers 5 that request installs output-capturing hooks on the
LM's layers (once; they then fire on every later forward of that LM) and builds the tuple of every layer's
states. ``lean_forward`` below does what a decoding pass needs (``last_only=True``, no ``all_hidden``) with the
base model and the output head: ``h = lm.model(...).last_hidden_state[:, -1:]``, ``logits = lm.lm_head(h)``.
Valid as written for Llama-like LMs whose logits are just ``lm_head(h)`` (not Gemma 2/3's final-logit
softcapping, Cohere's logit scale, ...). Same models, prompts and settings as ``run.py`` (10 latent steps, 16
tokens); the stock and the lean model are two copies of the same weights; the script checks that both decode
the same tokens and bit-identical latents, then times 12 interleaved rounds (medians).
"""

from __future__ import annotations

import copy
import json
import os
import statistics
import sys
import time
import types
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import run as R  # noqa: E402

from ponder.data.records import atomic_write_text  # noqa: E402
from ponder.data.tasks import make_splits  # noqa: E402
from ponder.inference.decode import Decoder  # noqa: E402
from ponder.model.io import PonderOutput  # noqa: E402


def lean_forward(self, input_ids=None, inputs_embeds=None, attention_mask=None, position_ids=None,
                 past_key_values=None, use_cache=False, last_only=False, all_hidden=False, latent=True):
    if all_hidden or not last_only:
        return type(self).forward(self, input_ids, inputs_embeds, attention_mask, position_ids, past_key_values,
                                  use_cache, last_only, all_hidden, latent)
    cache_kw = {self._cache_kw: past_key_values} if past_key_values is not None else {}
    out = self.lm.model(input_ids=input_ids, inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                        position_ids=position_ids, use_cache=use_cache, **cache_kw)
    hidden = out.last_hidden_state[:, -1:]
    mean = log_std = None
    if self.latent_head is not None and latent:
        mean, log_std = self.latent_head(hidden)
    return PonderOutput(self.lm.lm_head(hidden), hidden, mean, log_std, None)


def main():
    torch.set_num_threads(2)
    s = make_splits("arith", n_train=300, n_val=0, n_test=32, seed=3, difficulty=8)
    texts = [t for r in s["train"] for t in (r.question, " ".join(r.steps), r.answer)] + ["Question: Speed: Answer: auto"]
    qs = [r.question for r in s["test"]]
    rows, load_start = [], os.getloadavg()
    for size in ("1m", "26m"):
        for batch in (1, 32):
            cot, colar = R.make_models(size, texts, torch.device("cpu"))
            lean, lean_cot = copy.deepcopy(colar), copy.deepcopy(cot)
            for m in (lean, lean_cot):
                m.forward = types.MethodType(lean_forward, m)
            ds = {"stock-colar": (Decoder(colar, max_new_tokens=16, max_latent_steps=10), R.SPEED),
                  "lean-colar": (Decoder(lean, max_new_tokens=16, max_latent_steps=10), R.SPEED),
                  "stock-cot": (Decoder(cot, max_new_tokens=16), 1),
                  "lean-cot": (Decoder(lean_cot, max_new_tokens=16), 1)}
            outs = {k: d.generate(qs[:batch], speed=sp) for k, (d, sp) in ds.items()}
            same = ([g.token_ids for g in outs["stock-colar"]] == [g.token_ids for g in outs["lean-colar"]]
                    and [g.token_ids for g in outs["stock-cot"]] == [g.token_ids for g in outs["lean-cot"]]
                    and all(torch.equal(a.latents, b.latents) for a, b in zip(outs["stock-colar"], outs["lean-colar"])))
            t = {k: [] for k in ds}
            for _ in range(12):
                for k, (d, sp) in ds.items():
                    t0 = time.perf_counter()
                    d.generate(qs[:batch], speed=sp)
                    t[k].append(time.perf_counter() - t0)
            med = {k: statistics.median(v) * 1e3 for k, v in t.items()}
            rows.append({"size": size, "batch": batch, "tokens": 16, "latents": 10, "identical_outputs": same,
                         "median_ms": {k: round(v, 2) for k, v in med.items()},
                         "colar_gain": round(med["stock-colar"] / med["lean-colar"], 3),
                         "cot_gain": round(med["stock-cot"] / med["lean-cot"], 3)})
            print(json.dumps(rows[-1]), flush=True)
    out = {"command": "OMP_NUM_THREADS=2 python benchmarks/decode/lean_forward.py", "threads": torch.get_num_threads(),
           "load_avg_start": load_start, "load_avg_end": os.getloadavg(), "rows": rows}
    atomic_write_text(Path(__file__).parent / "lean_forward.json", json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
