"""Answer matching, the summary row, and reading reports."""

from __future__ import annotations

import json
import math

import pytest

from ponder.errors import PonderError
from ponder.evaluation.answers import answer_key, answer_type, answers_match, as_number
from ponder.evaluation.evaluate import read_report, write_report
from ponder.evaluation.metrics import majority_correct, percentile, summarise
from ponder.evaluation.tables import markdown_table


# -- answers_match ----------------------------------------------------------------------------------
@pytest.mark.parametrize("pred,ref", [
    ("7", "7"), ("7.0", "7"), (" 7", "7"), ("7 ", "7"), ("7.", "7"), ("07", "7"), ("+7", "7"),
    ("1,000", "1000"), ("1000", "1,000"), ("1,000.00", "1000"),
    ("$5", "5"), ("$5.00", "5"), ("5", "$5"), ("50%", "50"),
    ("-3", "-3"), ("-3.0", "-3"), ("0.5", ".5"), ("1e3", "1000"), ("2.50", "2.5"),
    ("Dax ", "dax"), ("  dax", "Dax"), ("DAX.", "dax"), ("new  york", "New York"), ("New\tYork", "new york"),
    ("3 0 4", "3 0 4"), ("3  0 4", "3 0 4"),
])
def test_answers_match(pred, ref):
    assert answers_match(pred, ref) is True


@pytest.mark.parametrize("pred,ref", [
    ("7", "8"), ("-7", "7"), ("70", "7"), ("7.5", "7"), ("0.7", "7"), ("1,001", "1000"),
    ("dax", "wug"), ("daxx", "dax"), ("seven", "7"), ("7 apples", "7"), ("3 0 4", "304"), ("1 2", "12"),
])
def test_answers_do_not_match(pred, ref):
    assert answers_match(pred, ref) is False


@pytest.mark.parametrize("pred", [None, "", "   ", "\n", "$", ".", ",", "%", "<<", "nan", "inf", "1e999", "--7",
                                  "$$5", "7.7.", "\x00", 7, 7.0, b"7", ["7"], object()])
def test_malformed_predictions_never_raise_and_are_false(pred):
    assert answers_match(pred, "7") is False
    assert answers_match(pred, "dax") is False


def test_large_integer_answers_need_exact_match():
    # KNOWN BUG (answers.py answers_match): abs_tol = 1e-6 * max(1, |b|) is a *relative* tolerance of 1e-6,
    # so for answers >= 1,000,000 an off-by-one (or off-by-more) integer prediction counts as correct.
    assert answers_match("1000000", "1000000") is True
    assert answers_match("1000001", "1000000") is False, "off-by-one on a 7-digit answer is scored correct"
    assert answers_match("5000004", "5,000,000") is False, "off-by-four on a 7-digit answer is scored correct"


def test_as_number_and_answer_type():
    assert as_number(" $1,234.50 ") == 1234.5
    assert as_number("12%") == 12.0
    assert as_number("abc") is None
    assert as_number("inf") is None
    assert as_number("1e999") is None
    assert answer_type("72") == "integer"
    assert answer_type("1,000") == "integer"
    assert answer_type("7.0") == "number"
    assert answer_type("2.5") == "number"
    assert answer_type("dax") == "text"


# -- summarise --------------------------------------------------------------------------------------
def _pred(correct, any_correct, length, wall_s, k=3):
    return {"correct": correct, "any_correct": any_correct, "reasoning_length": length, "wall_s": wall_s,
            "samples": [{"answer": "x", "correct": correct, "reasoning_length": length}] * k}


PREDS = [
    _pred(True, True, 10, 0.5),
    _pred(False, True, 20, 1.0),
    _pred(False, False, 30, 1.5),
    _pred(True, True, 40, 2.0),
    _pred(False, False, 100, 0.0),
]


def test_summarise_exact_values():
    row = summarise(PREDS, "colar", 2, total_wall_s=2.5)
    # accuracy 2/5, pass@3 3/5, lengths sorted [10, 20, 30, 40, 100]: mean 40, p50 = 30,
    # p90 at rank 0.9 * 4 = 3.6 -> 40 + 0.6 * (100 - 40) = 76; latency mean 5.0 / 5 = 1.0; 5 q / 2.5 s = 2.0 q/s.
    expected = {
        "method": "colar", "speed": 2, "n": 5, "accuracy": 0.4, "pass_at_k": 0.6, "k": 3,
        "sample_accuracy": 0.4, "majority_accuracy": 0.4,
        "mean_reasoning_length": 40.0, "p50_reasoning_length": 30.0, "p90_reasoning_length": 76.0,
        "latency_s_mean": 1.0, "questions_per_s": 2.0,
    }
    assert set(row) == set(expected)
    for key, value in expected.items():
        if isinstance(value, float):
            assert row[key] == pytest.approx(value, rel=0, abs=1e-12), key
        else:
            assert row[key] == value, key


def _samples(*answers, reference="12"):
    return [{"answer": a, "correct": answers_match(a, reference), "reasoning_length": 3} for a in answers]


def test_majority_vote_counts_equal_answers_as_one():
    # "12", "12.0" and " 12" are one answer (3 votes) against "13" (2 votes); empty answers do not vote.
    assert majority_correct(_samples("13", "12", "", "12.0", "13", " 12", ""))
    assert not majority_correct(_samples("13", "13", "12"))
    # A tie goes to the answer sampled first, whichever it is.
    assert majority_correct(_samples("", "12", "13", "13", "12"))
    assert not majority_correct(_samples("13", "12", "12", "13"))
    assert not majority_correct(_samples("", "  "))  # nothing voted: wrong, not an error
    assert majority_correct(_samples("Dax.", "dax", "wug", reference="DAX"))


def test_summarise_sample_and_majority_accuracy():
    def pred(*answers):
        s = _samples(*answers)
        return {"correct": s[0]["correct"], "any_correct": any(x["correct"] for x in s), "reasoning_length": 3,
                "wall_s": 0.1, "samples": s}

    # first sample right 1/3; all samples 5/12 right; majority right for the first two questions.
    preds = [pred("13", "12", "12", "7"), pred("12", "12", "9", "12"), pred("7", "8", "7", "9")]
    row = summarise(preds, "colar", 2, total_wall_s=1.0)
    assert row["accuracy"] == pytest.approx(1 / 3, abs=1e-12)
    assert row["sample_accuracy"] == pytest.approx((2 / 4 + 3 / 4 + 0) / 3, abs=1e-12)
    assert row["majority_accuracy"] == pytest.approx(2 / 3, abs=1e-12)
    assert row["pass_at_k"] == pytest.approx(2 / 3, abs=1e-12) and row["k"] == 4


def test_tables_add_the_sample_columns_only_for_k_above_1():
    one = {"method": "colar", "speed": 2, "accuracy": 0.5, "k": 1, "sample_accuracy": 0.5, "majority_accuracy": 0.5,
           "pass_at_k": 0.5}
    header = markdown_table([one]).splitlines()[0]
    assert "maj@K" not in header and header.count("|") == 7
    header, _, first, second = markdown_table([one, {**one, "k": 4, "majority_accuracy": 0.625}]).splitlines()
    assert header.endswith("| mean of K | maj@K | pass@K |")
    assert first.endswith("| 50.0% | 50.0% | 50.0% |") and second.endswith("| 50.0% | 62.5% | 50.0% |")


def test_answer_key():
    assert answer_key("1,000") == answer_key("1000.0") == 1000.0
    assert answer_key(" Dax. ") == "dax"
    assert answer_key("") is None and answer_key(None) is None


def test_summarise_compression_vs_cot():
    row = summarise(PREDS, "colar", "auto", total_wall_s=5.0, cot_length=80.0)
    assert row["compression_vs_cot"] == pytest.approx(0.5, abs=1e-12)
    assert row["speed"] == "auto"
    assert row["questions_per_s"] == pytest.approx(1.0, abs=1e-12)
    assert "compression_vs_cot" not in summarise(PREDS, "cot", None, 1.0, cot_length=None)
    assert "compression_vs_cot" not in summarise(PREDS, "cot", None, 1.0, cot_length=0)


def test_summarise_even_count_and_k1():
    preds = [_pred(True, True, 4, 0.25, k=1), _pred(True, True, 1, 0.25, k=1),
             _pred(False, False, 3, 0.25, k=1), _pred(True, True, 2, 0.25, k=1)]
    row = summarise(preds, "cot", None, total_wall_s=0.5)
    assert row["accuracy"] == 0.75 and row["pass_at_k"] == 0.75 and row["k"] == 1 and row["n"] == 4
    assert row["mean_reasoning_length"] == 2.5
    assert row["p50_reasoning_length"] == 2.5  # between 2 and 3
    assert row["p90_reasoning_length"] == pytest.approx(3.7, abs=1e-12)  # rank 2.7 -> 3 + 0.7 * (4 - 3)
    assert row["latency_s_mean"] == 0.25
    assert row["questions_per_s"] == 8.0


def test_summarise_empty_and_zero_time():
    row = summarise([], "cot", None, total_wall_s=0.0)
    assert row["n"] == 0 and row["k"] == 0
    for key in ("accuracy", "pass_at_k", "sample_accuracy", "majority_accuracy", "mean_reasoning_length",
                "p50_reasoning_length", "p90_reasoning_length",
                "latency_s_mean", "questions_per_s"):
        assert math.isnan(row[key]), key
    assert math.isnan(summarise(PREDS, "cot", None, total_wall_s=0.0)["questions_per_s"])


def test_percentile():
    assert percentile([5.0], 0.9) == 5.0
    assert percentile([3, 1, 2], 0.5) == 2
    assert percentile([0, 10], 0.25) == 2.5
    assert percentile([1, 2, 3, 4, 5], 0.0) == 1 and percentile([1, 2, 3, 4, 5], 1.0) == 5
    assert math.isnan(percentile([], 0.5))


# -- read_report ------------------------------------------------------------------------------------
ROW = {"method": "cot", "speed": None, "accuracy": 0.5, "mean_reasoning_length": 12.0, "latency_s_mean": 0.1,
       "questions_per_s": 10.0}


def _report_error(path) -> str:
    with pytest.raises(PonderError) as e:
        read_report(path)
    assert str(path) in str(e.value)
    return str(e.value)


def test_read_report_round_trip(tmp_path):
    report = {"settings": {"method": "cot"}, "results": [ROW, dict(ROW, speed=2)], "predictions": []}
    p = tmp_path / "r" / "report.json"
    write_report(report, p)
    assert read_report(p) == report


def test_read_report_missing_file(tmp_path):
    p = tmp_path / "nope.json"
    assert _report_error(p) == f"{p}: no such report"


def test_read_report_invalid_json(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text('{\n "results": [\n  {"method": "cot",,}\n ]\n}\n')
    assert _report_error(p).startswith(f"{p}:3: invalid JSON")


@pytest.mark.parametrize("content", ['{"settings": {}}', '{"results": {}}', '[1, 2]', '"results"', '{"results": null}'])
def test_read_report_missing_results(tmp_path, content):
    p = tmp_path / "r.json"
    p.write_text(content)
    assert _report_error(p) == f"{p}: not a ponder report (no 'results' list)"


def test_read_report_row_missing_accuracy(tmp_path):
    p = tmp_path / "r.json"
    row = {k: v for k, v in ROW.items() if k != "accuracy"}
    p.write_text(json.dumps({"results": [ROW, row]}))
    assert _report_error(p) == f"{p}: results[1] lacks accuracy"


def test_read_report_directory(tmp_path):
    # KNOWN BUG (evaluate.py read_report): only FileNotFoundError / JSONDecodeError are caught, so a
    # directory (IsADirectoryError) or non-UTF-8 file (UnicodeDecodeError) escapes as a raw traceback.
    _report_error(tmp_path)


def test_read_report_non_utf8(tmp_path):
    p = tmp_path / "r.json"
    p.write_bytes(b'{"results": ["\xff"]}')
    _report_error(p)


def test_read_report_row_not_an_object(tmp_path):
    # KNOWN BUG (evaluate.py read_report): `k not in row` on a non-dict row raises TypeError (int) instead
    # of PonderError.
    p = tmp_path / "r.json"
    p.write_text(json.dumps({"results": [ROW, 5]}))
    assert "results[1]" in _report_error(p)
