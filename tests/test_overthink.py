"""The overthink task (re-checks and corrected mistakes, seeded, with knobs) and the overthinking measure."""

from __future__ import annotations

import re

import pytest

from ponder.data.tasks import (CORRECTION_PHRASE, RECHECK_PHRASES, TASKS, answer_statement, make_splits,
                               write_splits)
from ponder.errors import PonderError
from ponder.evaluation.overthinking import first_correct_statement, overthinking, stated_answers

STATED = re.compile(r"so the answer is (\d)\.")


def trace(r):
    return " ".join(r.steps)


def running_sums(question):
    out, total = [], 0
    for d in question.split():
        total = (total + int(d)) % 10
        out.append(str(total))
    return out


def records(**options):
    return [r for s in make_splits("overthink", 300, 50, 50, seed=1, **options).values() for r in s]


def test_registered_with_defaults():
    spec = TASKS["overthink"]
    assert spec.default_difficulty == 4
    assert {len(r.question.split()) for r in make_splits("overthink", 20, 0, 0)["train"]} == {4}


def test_same_seed_same_records_and_files(tmp_path):
    a = make_splits("overthink", 100, 10, 10, seed=3, mistake_rate=0.5)
    assert a == make_splits("overthink", 100, 10, 10, seed=3, mistake_rate=0.5)
    assert a != make_splits("overthink", 100, 10, 10, seed=4, mistake_rate=0.5)
    pa = write_splits(a, tmp_path / "a")
    pb = write_splits(make_splits("overthink", 100, 10, 10, seed=3, mistake_rate=0.5), tmp_path / "b")
    assert all(pa[k].read_bytes() == pb[k].read_bytes() for k in pa)


def test_questions_do_not_depend_on_the_knobs():
    base = [r.question for r in records()]
    assert base == [r.question for r in records(recheck_rate=0, mistake_rate=0)]
    assert base == [r.question for r in records(recheck_rate=1, mistake_rate=1, max_rechecks=5)]


def test_rates_zero_give_the_plain_solution():
    for r in records(recheck_rate=0, mistake_rate=0):
        sums = running_sums(r.question)
        assert r.steps == sums + [answer_statement(sums[-1])]
        assert "Wait" not in trace(r)
        assert STATED.findall(trace(r)) == [r.answer] == [sums[-1]]


def test_mistake_rate_one_always_corrects_a_wrong_first_attempt():
    rs = records(mistake_rate=1, recheck_rate=0)
    for r in rs:
        sums = running_sums(r.question)
        # one wrong addition (the second, one too high) carried on: every sum from there on is one too high
        wrong = sums[:1] + [str((int(x) + 1) % 10) for x in sums[1:]]
        assert r.steps == wrong + [answer_statement(wrong[-1]), CORRECTION_PHRASE] + sums + [answer_statement(sums[-1])]
        stated = STATED.findall(trace(r))
        assert stated[0] != r.answer and stated[-1] == r.answer == sums[-1]
    one_digit = make_splits("overthink", 5, 0, 0, difficulty=1, mistake_rate=1, recheck_rate=0)["train"]
    for r in one_digit:  # one digit: the only addition is the wrong one
        d = int(r.question)
        assert r.steps == [str((d + 1) % 10), answer_statement(str((d + 1) % 10)), CORRECTION_PHRASE,
                           str(d), answer_statement(str(d))]


@pytest.mark.parametrize("rate", [0.2, 0.3, 0.57, 0.05])
def test_mistakes_fall_on_the_questions_below_the_rate(rate):
    # a rule of the question (so a model can learn it and greedy decoding reproduces it), not a coin
    for r in records(mistake_rate=rate):
        assert (CORRECTION_PHRASE in trace(r)) == (int(r.question.replace(" ", "")) < round(rate * 10_000))
    assert {r.question[0] for r in records(mistake_rate=0.2) if CORRECTION_PHRASE in trace(r)} == {"0", "1"}


def test_recheck_rate_one_gives_max_rechecks_each_with_its_own_phrase():
    for k in (0, 2, 3, 5):
        for r in records(recheck_rate=1, mistake_rate=0, max_rechecks=k)[:50]:
            sums = running_sums(r.question)
            expected = sums + [answer_statement(sums[-1])]
            for i in range(k):
                expected += [RECHECK_PHRASES[min(i, len(RECHECK_PHRASES) - 1)]] + sums + [answer_statement(sums[-1])]
            assert r.steps == expected


def test_default_rates_are_what_they_say():
    rs = make_splits("overthink", 4000, 0, 0, seed=0)["train"]
    mistakes = sum(CORRECTION_PHRASE in trace(r) for r in rs) / len(rs)
    checks = [sum(trace(r).count(p) for p in RECHECK_PHRASES[:3]) for r in rs]
    assert 0.17 < mistakes < 0.23  # 0.2
    assert 0.37 < sum(c == 0 for c in checks) / len(rs) < 0.43  # 1 - 0.6
    assert 0.19 < sum(c == 3 for c in checks) / len(rs) < 0.24  # 0.6 ** 3
    assert max(checks) == 3


def test_answer_is_always_the_last_stated_answer_and_follows_from_the_question():
    for opts in ({}, {"mistake_rate": 0.5, "recheck_rate": 0.5}, {"mistake_rate": 1, "recheck_rate": 1}):
        for r in records(**opts):
            assert r.answer == running_sums(r.question)[-1]
            assert STATED.findall(trace(r))[-1] == r.answer
            assert stated_answers(trace(r))[-1].value == r.answer


def test_other_tasks_unchanged_by_the_new_option_plumbing():
    # running-sum at seed 0: the first test record is fixed (the test split is drawn first).
    assert make_splits("running-sum", 0, 0, 1, seed=0)["test"] == make_splits("running-sum", 5, 5, 1, seed=0)["test"]


@pytest.mark.parametrize("option,value,message", [
    ("recheck_rate", -0.1, "--recheck-rate must be a probability in [0, 1], got -0.1"),
    ("recheck_rate", 1.5, "--recheck-rate must be a probability in [0, 1], got 1.5"),
    ("mistake_rate", -1, "--mistake-rate must be a probability in [0, 1], got -1"),
    ("mistake_rate", 2, "--mistake-rate must be a probability in [0, 1], got 2"),
    ("max_rechecks", -1, "--max-rechecks must be an integer >= 0, got -1"),
])
def test_bad_knobs_raise_one_line_naming_the_option(option, value, message):
    with pytest.raises(PonderError) as e:
        make_splits("overthink", 0, 0, 0, **{option: value})  # checked before anything is drawn
    assert str(e.value) == message and "\n" not in str(e.value)


def test_knob_on_another_task_or_unknown_knob():
    with pytest.raises(PonderError) as e:
        make_splits("running-sum", 5, 1, 1, mistake_rate=0.5)
    assert str(e.value) == "--mistake-rate is not an option of the running-sum task"
    with pytest.raises(PonderError) as e:
        make_splits("overthink", 5, 1, 1, wait_rate=0.5)
    assert str(e.value) == ("--wait-rate is not an option of the overthink task "
                            "(it has --recheck-rate, --mistake-rate, --max-rechecks)")


def test_cli_data_make_knobs(tmp_path, capsys):
    from ponder.cli import main
    from ponder.data.records import read_records

    out = tmp_path / "ot"
    main(["data", "make", "overthink", "--out", str(out), "--n-train", "20", "--n-val", "2", "--n-test", "2",
          "--mistake-rate", "1", "--recheck-rate", "0"])
    assert all(CORRECTION_PHRASE in trace(r) for r in read_records(out / "train.jsonl"))
    capsys.readouterr()
    for argv, message in ((["overthink", "--mistake-rate", "1.5"], "--mistake-rate must be a probability in [0, 1], got 1.5"),
                          (["running-sum", "--recheck-rate", "0.5"], "--recheck-rate is not an option of the running-sum task")):
        with pytest.raises(SystemExit) as e:
            main(["data", "make", *argv, "--out", str(tmp_path / "bad")])
        assert e.value.code == 2
        assert capsys.readouterr().err.strip() == f"error: {message}"
    assert not (tmp_path / "bad").exists()


# -- the measure ------------------------------------------------------------------------------------
def test_first_correct_statement_correct_first():
    text = "3 4 8 5 so the answer is 5. Wait, let me check: 3 4 8 5 so the answer is 5."
    assert first_correct_statement(text, "5") == len("3 4 8 5 so the answer is 5.")


def test_first_correct_statement_wrong_then_right():
    text = "3 4 8 2 so the answer is 2. Wait, that is wrong. Let me redo it: 3 4 8 5 so the answer is 5."
    assert first_correct_statement(text, "5") == len(text)
    assert first_correct_statement(text, "2") == len("3 4 8 2 so the answer is 2.")
    assert [s.value for s in stated_answers(text)] == ["2", "5"]


def test_first_correct_statement_never_stated():
    assert first_correct_statement("3 4 8 5 so the answer is 4.", "5") is None
    assert first_correct_statement("3 4 8 5", "5") is None
    assert first_correct_statement("", "5") is None


def test_first_correct_statement_other_phrasings():
    assert first_correct_statement("The answer is 12, not 1.", "12") == len("The answer is 12")
    assert first_correct_statement("so the answer is 1,000.", "1000") == len("so the answer is 1,000.")
    assert first_correct_statement("Final: \\boxed{7} done", "7") == len("Final: \\boxed{7}")
    assert first_correct_statement("**Answer:** 7.0", "7") == len("**Answer:** 7.0")
    assert first_correct_statement("Answer: **7**", "7") == len("Answer: **7**")
    assert first_correct_statement("the answer is 12.", "1") is None  # 12 is not 1


class CharTokenizer:
    """One token per character; id 1 is </think>."""

    def convert_tokens_to_ids(self, token):
        return 1 if token == "</think>" else None

    def encode(self, text):
        return [ord(c) + 10 for c in text]

    def decode(self, ids):
        return "".join(chr(i - 10) for i in ids)


def test_overthinking_counts_tokens_after_the_statement():
    tok = CharTokenizer()
    thinking = "7 so the answer is 7. Wait, let me check: 7 so the answer is 7."
    ids = tok.encode(thinking) + [1] + tok.encode("Answer: 7")
    m = overthinking(tok, ids, "7")
    first = len("7 so the answer is 7.")
    assert (m.thinking_tokens, m.statement_tokens, m.tokens_after) == (len(thinking), first, len(thinking) - first)
    assert m.share == pytest.approx((len(thinking) - first) / len(thinking))
    assert overthinking(tok, tok.encode("7 so the answer is 7.") + [1], "7").share == 0.0
    never = overthinking(tok, ids, "3")
    assert never.share is None and never.statement_tokens is None and never.thinking_tokens == len(thinking)
    assert overthinking(tok, [1] + tok.encode("Answer: 7"), "7").share is None


def test_overthinking_with_a_real_tokenizer():
    from ponder.model.tokenizer import build_tokenizer

    rs = make_splits("overthink", 200, 0, 0, seed=0)["train"]
    tok = build_tokenizer([trace(r) for r in rs])
    end = tok.convert_tokens_to_ids("</think>")
    r = next(r for r in rs if CORRECTION_PHRASE in trace(r) and "Wait, let me check:" in trace(r))
    ids = tok(trace(r), add_special_tokens=False)["input_ids"]
    m = overthinking(tok, ids + [end], r.answer)
    # the statement ends on a token boundary: the tokens up to it decode to the text up to the correct statement
    upto = first_correct_statement(trace(r), r.answer)
    assert tok.decode(ids[: m.statement_tokens]) == trace(r)[:upto]
    assert m.tokens_after == len(ids) - m.statement_tokens > 0
