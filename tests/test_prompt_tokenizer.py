"""The task tokenizer (build_tokenizer) and the prompt layout every method shares."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from ponder.data.tasks import make_splits
from ponder.model.tokenizer import BOS, EOS, PAD, build_tokenizer, ensure_special_tokens
from ponder.prompt import THINK_END, THINK_START, PromptLayout


@pytest.fixture(scope="module")
def tok():
    records = [r for task in ("running-sum", "arith", "graph-hop")
               for r in make_splits(task, 60, 0, 0, seed=0)["train"]]
    texts = [t for r in records for t in (r.question, " ".join(r.steps), r.answer)]
    texts += [PromptLayout().words()] * 20
    return build_tokenizer(texts)


ROUND_TRIP = [
    "3 1 4 1 5 9",
    "1 4 5 6 1 0",
    "<<12*3=36>>",
    "<<12*3=36>> <<36/4=9>> <<9-10=-1>>",
    "Question: Start with 16. Divide by 2. What is the result?\n",
    "Speed: auto\n",
    "Answer: 1,000!",
    "Hello , world . (a) [b] {c} ; x@y.z # $5.00 100% a-b_c",
    "line one\nline two\n\n  indented\ttab\r\nwindows",
    "  leading and trailing spaces  ",
    "naïve café — ✓ 日本語 🙂",
    "wug leads to dax. Start at wug and follow 3 links.",
    "",
]


@pytest.mark.parametrize("text", ROUND_TRIP)
def test_round_trip(tok, text):
    ids = tok.encode(text, add_special_tokens=False)
    assert tok.decode(ids) == text
    assert tok(text, add_special_tokens=False)["input_ids"] == ids


def test_special_token_ids(tok):
    assert tok.convert_ids_to_tokens([tok.pad_token_id, tok.bos_token_id, tok.eos_token_id]) == [PAD, BOS, EOS]
    ids = {tok.convert_tokens_to_ids(t) for t in (PAD, BOS, EOS, THINK_START, THINK_END)}
    assert len(ids) == 5 and tok.unk_token_id not in ids


@pytest.mark.parametrize("digit", "0123456789")
def test_running_sum_step_is_one_token(tok, digit):
    ids = tok.encode(f" {digit}", add_special_tokens=False)
    assert len(ids) == 1
    assert tok.decode(ids) == f" {digit}"
    assert len(tok.encode(digit, add_special_tokens=False)) == 1


def test_running_sum_reasoning_is_one_token_per_step(tok):
    steps = ["1", "8", "9", "3", "9", "9"]
    ids = PromptLayout().reasoning_ids(tok, steps)
    assert len(ids) == len(steps)
    assert [tok.decode([i]) for i in ids] == ["1", " 8", " 9", " 3", " 9", " 9"]


def test_digits_are_never_merged(tok):
    for text in ("1000", "<<12*3=36>>", "Start with 16.", "Answer: 296"):
        tokens = [tok.decode([i]) for i in tok.encode(text, add_special_tokens=False)]
        assert all(sum(c.isdigit() for c in t) <= 1 for t in tokens), tokens
    assert len(tok.encode("1000", add_special_tokens=False)) == 4


@pytest.mark.parametrize("marker", [THINK_START, THINK_END])
def test_think_markers_are_single_special_tokens(tok, marker):
    ids = tok.encode(marker, add_special_tokens=False)
    assert ids == [tok.convert_tokens_to_ids(marker)]
    # not split even when glued to other text
    glued = tok.encode(f"x{marker}7", add_special_tokens=False)
    assert ids[0] in glued and len(glued) == 3
    assert tok.decode(glued) == f"x{marker}7"
    assert tok.decode(glued, skip_special_tokens=True) == "x7"


def test_vocab_size_bound():
    small = build_tokenizer(["the quick brown fox jumps over the lazy dog 0 1 2 3"] * 20, vocab_size=300)
    assert len(small) <= 300 + 2  # BPE vocab plus the two thinking markers
    assert small.decode(small.encode("the lazy fox 42", add_special_tokens=False)) == "the lazy fox 42"


def test_save_and_load_with_auto_tokenizer(tok, tmp_path):
    tok.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert len(loaded) == len(tok)
    for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
        assert getattr(loaded, name) == getattr(tok, name), name
    for marker in (THINK_START, THINK_END):
        assert loaded.convert_tokens_to_ids(marker) == tok.convert_tokens_to_ids(marker)
    texts = ROUND_TRIP + [f"Question: 3 1 4\nSpeed: 2\n{THINK_START} 3 4 8{THINK_END}Answer: 8"]
    for text in texts:
        a = tok(text, add_special_tokens=False)["input_ids"]
        assert loaded(text, add_special_tokens=False)["input_ids"] == a, text
        assert loaded.decode(a) == text
    layout = PromptLayout()
    assert layout.prompt_ids(loaded, "3 1 4", 2) == layout.prompt_ids(tok, "3 1 4", 2)
    assert layout.answer_ids(loaded, "8") == layout.answer_ids(tok, "8")


def test_ensure_special_tokens_is_idempotent(tok):
    n = len(tok)
    assert ensure_special_tokens(tok) == 0
    assert len(tok) == n


# -- PromptLayout -----------------------------------------------------------------------------------
def test_prompt_ids_is_question_speed_think(tok):
    layout = PromptLayout()
    think = tok.convert_tokens_to_ids(THINK_START)
    for speed in (None, 1, 3, "auto"):
        q = layout.question_ids(tok, "3 1 4 1 5 9")
        s = layout.speed_ids(tok, speed)
        assert layout.prompt_ids(tok, "3 1 4 1 5 9", speed) == q + s + [think]
        if speed is None:
            assert s == []
        else:
            assert tok.decode(s) == f"Speed: {speed}\n"
    q = layout.question_ids(tok, "3 1 4 1 5 9")
    assert q[0] == tok.bos_token_id
    assert tok.decode(q[1:]) == "Question: 3 1 4 1 5 9\n"
    assert tok.decode(layout.prompt_ids(tok, "3 1 4", 2)) == f"{BOS}Question: 3 1 4\nSpeed: 2\n{THINK_START}"


def test_generation_prompt(tok):
    layout = PromptLayout()
    end = tok.convert_tokens_to_ids(THINK_END)
    with_think = layout.generation_prompt(tok, "1 2 3", 1, think=True)
    without = layout.generation_prompt(tok, "1 2 3", None, think=False)
    assert with_think == layout.prompt_ids(tok, "1 2 3", 1)
    assert with_think[-1] == tok.convert_tokens_to_ids(THINK_START)
    assert without == layout.prompt_ids(tok, "1 2 3", None) + [end]
    assert without[-1] == end and without[-2] == tok.convert_tokens_to_ids(THINK_START)


def test_answer_and_reasoning_ids(tok):
    layout = PromptLayout()
    a = layout.answer_ids(tok, "72")
    assert a[0] == tok.convert_tokens_to_ids(THINK_END)
    assert a[-1] == tok.eos_token_id
    assert tok.decode(a[1:-1]) == "Answer: 72"
    assert layout.reasoning_ids(tok, []) == []
    r = layout.reasoning_ids(tok, ["<<16/8=2>>", "<<2+10=12>>"])
    assert tok.decode(r) == "<<16/8=2>> <<2+10=12>>"
    full = layout.prompt_ids(tok, "q", 1) + r + a
    assert tok.decode(full) == f"{BOS}Question: q\nSpeed: 1\n{THINK_START}<<16/8=2>> <<2+10=12>>{THINK_END}Answer: 72{EOS}"


@pytest.mark.parametrize("text,answer", [
    ("Answer: 72", "72"), (" Answer:  dax \n", "dax"), ("72", "72"), ("Answer:72", "72"), ("", ""),
    ("Answer: 3 0 4", "3 0 4"), ("The Answer: 5", "The Answer: 5"),
])
def test_parse_answer(text, answer):
    assert PromptLayout().parse_answer(text) == answer


def test_parse_answer_custom_template():
    layout = PromptLayout(answer_template="The answer is {answer}.")
    assert layout.parse_answer("The answer is 42.") == "42"
    assert layout.parse_answer("  The answer is wug. ") == "wug"
    assert layout.to_dict() == {"question_template": "Question: {question}\n", "speed_template": "Speed: {speed}\n",
                                "answer_template": "The answer is {answer}.", "step_separator": " ",
                                "chat_template": False, "think_start": "<think>", "think_end": "</think>"}
