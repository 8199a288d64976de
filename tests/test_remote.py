"""Exit policies in front of an upstream OpenAI server (inference/remote.py): one real `ponder serve` serves the
weights, another ponder (the RemoteEngine, or `ponder serve --upstream`) drives the thinking over HTTP, and
every row must come out as in-process decoding gives it -- same tokens, same exits, same probe answers."""

from __future__ import annotations

import pytest

from ponder.arguments import ExitConfig
from ponder.errors import PonderError
from ponder.inference.decode import Decoder
from ponder.inference.engine import Request
from ponder.inference.remote import RemoteEngine
from ponder.model.io import load_front
from test_serve import MAX_TOKENS, Live, ask, check_same

QS = ["3 4", "5 6 7", "1 2 9 9"]
POLICIES = {
    "none": dict(exit="none"),
    "budget": dict(exit="budget", budget=3),
    "convergence": dict(exit="convergence", probe_every=2, patience=2, probe_tokens=6),
    "confidence": dict(exit="confidence", markers="a,e,1", threshold=0.01, probe_tokens=4),
    "nowait": dict(exit="nowait", suppress="a,e"),
}


@pytest.fixture(scope="module")
def upstream(qwen3):
    live = Live(qwen3, "qwen3-upstream")
    yield live
    live.stop()


@pytest.mark.parametrize("policy", list(POLICIES), ids=list(POLICIES))
def test_upstream_rows_equal_in_process_rows(qwen3, reasoner_dir, upstream, policy):
    config = ExitConfig(**POLICIES[policy])
    expected = Decoder(qwen3, max_new_tokens=MAX_TOKENS, exit=config).generate(QS)
    if policy not in ("none", "nowait"):
        assert any(g.exit_reason == policy for g in expected)  # the policy really ends some thinking
    remote = RemoteEngine(load_front(reasoner_dir), upstream.url + "/v1")
    got = remote.run([Request(question=q, max_new_tokens=MAX_TOKENS, exit=config) for q in QS])
    for g, e in zip(got, expected):
        assert g.token_ids == e.token_ids and g.answer == e.answer and g.ended == e.ended
        assert (g.thinking_tokens, g.exit_reason, g.exit_probe) == (e.thinking_tokens, e.exit_reason, e.exit_probe)
        assert g.probe_answers == e.probe_answers and g.probe_tokens == e.probe_tokens
        assert g.probe_confidences == pytest.approx(e.probe_confidences, abs=1e-4)


def test_ponder_serve_upstream_answers_like_in_process(qwen3, reasoner_dir, upstream):
    front = Live(load_front(reasoner_dir), "qwen3", upstream=upstream.url + "/v1")
    try:
        policy = POLICIES["convergence"]
        for q, g in zip(QS, Decoder(qwen3, max_new_tokens=MAX_TOKENS, exit=ExitConfig(**policy)).generate(QS)):
            for stream in (False, True):
                got = ask(front.client(), "qwen3", q, stream, max_tokens=MAX_TOKENS, extra_body={"ponder": policy})
                check_same(qwen3, got, g)
                assert got[4]["probe_tokens"] == g.probe_tokens
    finally:
        front.stop()


def test_an_unreachable_upstream_is_one_line(reasoner_dir):
    with pytest.raises(PonderError, match=r"--upstream http://127.0.0.1:9/v1: cannot list its models"):
        RemoteEngine(load_front(reasoner_dir), "http://127.0.0.1:9/v1", timeout=5)
