"""``ponder serve`` with the engine's work counted (``run.py``'s diagnosis run).

    python benchmarks/serve/counted.py COUNTS.json serve --model DIR --port P ...

Runs the ``ponder`` command line unchanged, after wrapping three ``Engine`` methods (here, not in src/) with
counters: steps that did work, prefill steps and the rows they admitted, forward passes and their rows, and
the wall seconds spent in ``step``, in prefills and in the model's ``_forward``. A daemon thread writes them
to COUNTS.json every 0.2 s, so a client can read them before and after a run and take the difference.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

from ponder.inference.engine import Engine

COUNTS = {"steps": 0, "step_s": 0.0, "forwards": 0, "forward_rows": 0, "forward_s": 0.0, "prefills": 0,
          "prefill_rows": 0, "prefill_s": 0.0}
_step, _forward, _admit = Engine.step, Engine._forward, Engine._admit


def step(self):
    t0 = time.perf_counter()
    _step(self)
    COUNTS["step_s"] += time.perf_counter() - t0
    COUNTS["steps"] += 1


def forward(self, embeds, mask, positions, latent):
    t0 = time.perf_counter()
    out = _forward(self, embeds, mask, positions, latent)
    COUNTS["forward_s"] += time.perf_counter() - t0
    COUNTS["forwards"] += 1
    COUNTS["forward_rows"] += int(embeds.shape[0])
    return out


def admit(self):
    n_before = len(self.rows)
    t0 = time.perf_counter()
    did = _admit(self)
    if did:
        COUNTS["prefills"] += 1
        COUNTS["prefill_rows"] += len(self.rows) - n_before
        COUNTS["prefill_s"] += time.perf_counter() - t0
    return did


def _dump(path):
    while True:
        tmp = f"{path}.tmp"
        with open(tmp, "w") as f:
            json.dump({**COUNTS, "time": time.time()}, f)
        os.replace(tmp, path)
        time.sleep(0.2)


if __name__ == "__main__":
    Engine.step, Engine._forward, Engine._admit = step, forward, admit
    threading.Thread(target=_dump, args=(sys.argv[1],), daemon=True).start()
    from ponder.cli import main

    main(sys.argv[2:])
