"""``/metrics``: Prometheus' text exposition format, written by hand (no client library needed).

Updated only from the event loop's thread; the engine's gauges are read when scraped.
"""

from __future__ import annotations

import bisect
from collections import defaultdict

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class Histogram:
    def __init__(self, buckets=LATENCY_BUCKETS):
        self.buckets = tuple(buckets)
        self.counts = [0] * (len(self.buckets) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.count += 1

    def lines(self, name: str) -> list[str]:
        out, running = [], 0
        for le, n in zip(self.buckets, self.counts):
            running += n
            out.append(f'{name}_bucket{{le="{le}"}} {running}')
        out.append(f'{name}_bucket{{le="+Inf"}} {self.count}')
        out.append(f"{name}_sum {self.sum:.6f}")
        out.append(f"{name}_count {self.count}")
        return out


# name -> (type, help)
TOKENS = {
    "prompt_tokens": "Prompt tokens of finished rows.",
    "reasoning_tokens": "Thinking tokens (token reasoners) or latent steps (latent models) of finished rows.",
    "answer_tokens": "Answer tokens decoded by finished rows.",
    "latent_steps": "Latent steps or continuous thoughts of finished rows.",
    "probe_tokens": "Tokens the exit policies' probes fed and decoded.",
}


class Metrics:
    def __init__(self):
        self.requests: dict[tuple[str, str], int] = defaultdict(int)  # (path, status) -> count
        self.tokens = dict.fromkeys(TOKENS, 0)
        self.rows_finished = 0
        self.rows_cancelled = 0
        self.latency = Histogram()
        self.ttft = Histogram()

    def request(self, path: str, status: int) -> None:
        self.requests[(path, str(status))] += 1

    def row(self, prompt: int, reasoning: int, answer: int, latent: int, probes: int) -> None:
        self.rows_finished += 1
        for k, v in zip(TOKENS, (prompt, reasoning, answer, latent, probes)):
            self.tokens[k] += v

    def render(self, waiting: int, running: int) -> str:
        lines = ["# HELP ponder_requests_total HTTP requests by path and status code.",
                 "# TYPE ponder_requests_total counter"]
        for (path, status), n in sorted(self.requests.items()):
            lines.append(f'ponder_requests_total{{path="{path}",status="{status}"}} {n}')
        lines += ["# HELP ponder_queue_depth Rows waiting for a place in the batch.", "# TYPE ponder_queue_depth gauge",
                  f"ponder_queue_depth {waiting}",
                  "# HELP ponder_running_rows Rows in the running batch.", "# TYPE ponder_running_rows gauge",
                  f"ponder_running_rows {running}",
                  "# HELP ponder_rows_finished_total Rows decoded to the end.", "# TYPE ponder_rows_finished_total counter",
                  f"ponder_rows_finished_total {self.rows_finished}",
                  "# HELP ponder_rows_cancelled_total Rows cancelled (client gone, or shutdown).",
                  "# TYPE ponder_rows_cancelled_total counter", f"ponder_rows_cancelled_total {self.rows_cancelled}"]
        for k, help in TOKENS.items():
            lines += [f"# HELP ponder_{k}_total {help}", f"# TYPE ponder_{k}_total counter",
                      f"ponder_{k}_total {self.tokens[k]}"]
        lines += ["# HELP ponder_request_latency_seconds Seconds from submission to a row's last token.",
                  "# TYPE ponder_request_latency_seconds histogram", *self.latency.lines("ponder_request_latency_seconds"),
                  "# HELP ponder_time_to_first_token_seconds Seconds from submission to a streamed row's first "
                  "thinking or answer delta.",
                  "# TYPE ponder_time_to_first_token_seconds histogram",
                  *self.ttft.lines("ponder_time_to_first_token_seconds")]
        return "\n".join(lines) + "\n"
