"""Bring your own: the field's scoring rules, and what other architectures and real-world accidents bring
(issue 24, items 5 and 7). Tiny random models of other families are built offline and saved to disk."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (GemmaConfig, GemmaForCausalLM, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast,
                          Qwen2Config, Qwen2ForCausalLM)

from conftest import tiny_model
from test_cli_errors import assert_one_line_error, run_cli
from ponder.arguments import DataArguments
from ponder.data.hub import answer_of
from ponder.data.records import read_records
from ponder.evaluation.answers import SCORINGS, extract_answer, score_answer
from ponder.evaluation.evaluate import evaluate
from ponder.methods.trainer import StopAfter
from ponder.methods.train import train
from ponder.model.io import load_model
from ponder.prompt import THINK_END, THINK_START

# -- item 5: scoring rules -------------------------------------------------------------------------------
# Hand-made generations, each with what lm-evaluation-harness's GSM8K task (gsm8k.yaml: strict-match regex
# "#### (\-?[0-9\.\,]+)" first match, flexible-extract "(-?[$0-9.,]{2,})|(-?[0-9]+)" last match, exact_match
# ignoring "," "$" "(?s).*#### " "\.$" and case) or a \boxed{} reader would say.
STRICT = [
    ("She sold 48/2 = 24 clips.\n#### 72", "72", True),
    ("Total: 1000 pens.\n#### 1,000", "1000", True),  # commas dropped from the prediction
    ("#### 1000", "1,000", True),  # ... and from the reference
    ("#### 5.", "5", True),  # a trailing dot dropped
    ("#### $5", "5", False),  # the strict regex takes no '$'
    ("48 + 24 = 72 so #### 7 after text, then more: 72", "7", True),  # the first '#### N', wherever it is
    ("#### 7 and then #### 8", "8", False),  # first match, not last
    ("The answer is 72", "72", False),  # no '####'
    ("####72", "72", False),  # the space is part of the pattern
    ("#### -3", "-3", True),
    ("no number at all", "7", False),
]
FLEXIBLE = [
    ("So she has 1,000 apples", "1000", True),
    ("It costs $5", "5", True),
    ("The answer is 5.", "5", True),
    ("first 24 then #### 7 after text", "7", True),  # the last number-like run
    ("first 3 then 4", "3", False),
    ("x = 12.5 meters", "12.5", True),
    ("she is 7", "7", True),  # a single digit: the pattern's second branch
    ("owes -3 dollars", "-3", True),
    ("#### 72\nThat is 72 clips.", "72", True),
    ("no number at all", "7", False),
]
BOXED = [
    ("so x = \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}", True),  # nested braces
    ("so x = \\boxed{\\frac{1}{2}}.", "0.5", True),
    ("\\boxed{\\dfrac{3}{4}}", "3/4", True),
    ("\\boxed{1,000}", "1000", True),
    ("\\boxed{5.}", "5", True),
    ("\\boxed{\\$5}", "5", True),
    ("first \\boxed{3}, on reflection \\boxed{5}", "5", True),  # the last one
    ("first \\boxed{3}, on reflection \\boxed{5}", "3", False),
    ("\\boxed{x^{2}+1}", "x^{2}+1", True),
    ("\\boxed{\\text{Monday}}", "monday", True),
    ("\\boxed{7", "7", False),  # never closed
    ("The answer is 7", "7", False),  # no \boxed at all
    ("no number at all", "7", False),
]
PONDER = [("1,000", "1000", True), ("$5", "5", True), ("5.", "5", True), ("7.0", "7", True), ("8", "7", False),
          ("no number at all", "7", False), ("", "7", False), (None, "7", False)]


@pytest.mark.parametrize("text,reference,expected", STRICT)
def test_lm_eval_strict(text, reference, expected):
    assert score_answer("lm-eval-strict", "(ignored)", text, reference) is expected


@pytest.mark.parametrize("text,reference,expected", FLEXIBLE)
def test_lm_eval_flexible(text, reference, expected):
    assert score_answer("lm-eval-flexible", "(ignored)", text, reference) is expected


@pytest.mark.parametrize("text,reference,expected", BOXED)
def test_boxed(text, reference, expected):
    assert score_answer("boxed", "(ignored)", text, reference) is expected


@pytest.mark.parametrize("answer,reference,expected", PONDER)
def test_ponder_rule_reads_the_decoded_answer(answer, reference, expected):
    assert score_answer("ponder", answer, "#### 999 \\boxed{999}", reference) is expected


def test_extracted_answers():
    assert extract_answer("lm-eval-strict", "a\n#### 1,000.") == "1,000."
    assert extract_answer("lm-eval-flexible", "It costs $5.") == "$5."
    assert extract_answer("boxed", "\\boxed{\\frac{1}{2}}") == "\\frac{1}{2}"
    for rule in SCORINGS[1:]:
        assert extract_answer(rule, "no number at all") is None and extract_answer(rule, None) is None


def test_report_names_the_rule_and_scores_by_it(rs_records):
    model = tiny_model(rs_records["train"])
    records = rs_records["test"][:3]
    for rule in ("ponder", "lm-eval-flexible"):
        report = evaluate(model, records, max_new_tokens=8, scoring=rule)
        assert report["settings"]["scoring"] == rule
        for p in report["predictions"]:
            assert p["correct"] == score_answer(rule, p["prediction"], p["text"], p["reference"])
            assert ("scored_answer" in p) == (rule != "ponder")


def test_eval_cli_unknown_scoring_is_one_line(capsys, rs_dir, tmp_path):
    model = tiny_model(load_records_list(rs_dir))
    model.save(tmp_path / "m")
    code, _, err = run_cli(capsys, "eval", "--model", tmp_path / "m", "--data", rs_dir, "--scoring", "exact")
    assert_one_line_error(code, err, "--scoring", "lm-eval-strict")


def load_records_list(rs_dir):
    return read_records(rs_dir / "train.jsonl")[:50]


# -- item 7: architectures -------------------------------------------------------------------------------
def _tokenizer(think: bool, pad: bool):
    """A BPE tokenizer as pretrained models have them; with or without <think>/</think> and a pad token."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(["Question: 1 2 3 Speed: Answer: 0 4 5 6 7 8 9 + = <<"] * 10,
                            trainers.BpeTrainer(vocab_size=300, special_tokens=["<s>", "</s>"],
                                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                show_progress=False))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>")
    if think:
        fast.add_tokens([THINK_START, THINK_END], special_tokens=True)
    if pad:
        fast.add_special_tokens({"pad_token": "<pad>"})
    return fast


def _save(path, family: str, tok, extra_rows: int = 0):
    kw = dict(vocab_size=len(tok) + extra_rows, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, bos_token_id=tok.bos_token_id,
              eos_token_id=tok.eos_token_id)
    config_cls, model_cls = {"llama": (LlamaConfig, LlamaForCausalLM), "gemma": (GemmaConfig, GemmaForCausalLM),
                             "qwen2": (Qwen2Config, Qwen2ForCausalLM)}[family]
    extra = {"head_dim": 16} if family == "gemma" else {}
    torch.manual_seed(0)
    model_cls(config_cls(**kw, **extra)).save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def family_dirs(tmp_path_factory):
    """Tiny Llama and Gemma (same width and init: Gemma's embedding layer scales by sqrt(64) = 8)."""
    root = tmp_path_factory.mktemp("families")
    return {f: _save(root / f, f, _tokenizer(think=True, pad=True)) for f in ("llama", "gemma")}


def _target_rms(model_dir) -> float:
    """The RMS of CoLaR's latent targets in std units: embeddings of real tokens / the saved embed_std."""
    m = load_model(model_dir)
    ids = torch.tensor([m.tokenizer.encode("1 2 3 4 5 6 7 8 9 Answer: 0")])
    with torch.no_grad():
        return float((m.embed(ids) / m.settings.embed_std).pow(2).mean().sqrt())


def test_gemma_latent_targets_have_llamas_scale(family_dirs, rs_dir, tmp_path):
    rms = {}
    for family, d in family_dirs.items():
        train("colar", rs_dir, str(d), tmp_path / family, max_steps=2, batch_size=4, save_steps=1000)
        rms[family] = _target_rms(tmp_path / family)
    assert 0.5 < rms["gemma"] / rms["llama"] < 2, rms  # before the fix: ~8 (sqrt(hidden))
    assert 0.5 < rms["llama"] < 2, rms


def test_add_latent_head_measures_what_the_embedding_returns(family_dirs):
    m = load_model(family_dirs["gemma"])
    m.add_latent_head()
    emb = m.lm.get_input_embeddings()
    with torch.no_grad():
        returned = emb(torch.arange(emb.weight.shape[0])).std()
    assert m.settings.embed_std == pytest.approx(float(returned), rel=1e-4)
    assert m.settings.embed_std == pytest.approx(8 * float(emb.weight.detach().std()), rel=1e-4)


# (Qwen2's own tokenizer class brings a pad token; the Llama case has the <think> tokens and lacks a pad.)
@pytest.mark.parametrize("family,think,pad", [("qwen2", False, True), ("llama", True, False)])
def test_padded_vocabulary_keeps_its_rows(tmp_path, rs_dir, family, think, pad):
    """Qwen-style: more embedding rows than tokens. Tokens added for ponder fit in the spare rows."""
    tok = _tokenizer(think=think, pad=pad)
    d = _save(tmp_path / family, family, tok, extra_rows=64)
    rows = len(tok) + 64
    m = load_model(d)
    assert m.lm.get_input_embeddings().weight.shape[0] == rows
    assert m.lm.get_output_embeddings().weight.shape[0] == rows
    assert len(m.tokenizer) <= rows and m.tokenizer.pad_token is not None
    train("cot", rs_dir, str(d), tmp_path / "m", max_steps=1, batch_size=4, save_steps=1000)
    assert load_model(tmp_path / "m").lm.get_input_embeddings().weight.shape[0] == rows


def test_a_vocabulary_without_room_still_grows(tmp_path):
    tok = _tokenizer(think=False, pad=False)
    m = load_model(_save(tmp_path / "llama", "llama", tok))
    assert m.lm.get_input_embeddings().weight.shape[0] == len(m.tokenizer) == len(tok) + 3


def test_loading_a_plain_directory_prints_nothing_on_stderr(tmp_path):
    """In a fresh process (transformers' once-only notices and its logging handler are per process):
    directories that need new rows, have spare rows, or scale their embeddings."""
    dirs = [str(_save(tmp_path / f, f, _tokenizer(think=False, pad=False), extra_rows=extra))
            for f, extra in (("llama", 0), ("qwen2", 64), ("gemma", 0))]
    code = "import sys\nfrom ponder.model.io import load_model\nfor d in sys.argv[1:]:\n    load_model(d)\n"
    proc = subprocess.run([sys.executable, "-c", code, *dirs], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stderr == ""


# -- item 7: data -----------------------------------------------------------------------------------------
GSM8K_LINES = [
    {"question": "A shop sells 2 pens at 5,580 each. How much?", "answer": "2 * 5580 = <<2*5580=11160>>11160\n#### 11,160"},
    {"question": "Tom has 3 apples and gets 4. How many?", "answer": "He has 3 + 4 = <<3+4=7>>7 apples.\nSo 7.\n#### 7"},
    {"question": "1 2 3", "answer": "First 1 + 2 = <<1+2=3>>3\nThen 3 + 3 = <<3+3=6>>6\n#### 6"},
    {"question": "4 5", "answer": "4 + 5 = <<4+5=9>>9\n#### 9"},
]


@pytest.fixture
def gsm8k_file(tmp_path):
    p = tmp_path / "gsm8k.jsonl"
    p.write_text("".join(json.dumps(o) + "\n" for o in GSM8K_LINES))
    return p


def test_gsm8k_and_icot_readers_agree_on_thousands(tmp_path, gsm8k_file):
    icot = tmp_path / "aug.txt"
    icot.write_text("A shop sells 2 pens at 5,580 each. How much?||<<2*5580=11160>> #### 11,160\n")
    assert read_records(gsm8k_file)[0].answer == read_records(icot)[0].answer == "11160"
    assert answer_of("2 * 5580 = 11160\n#### 11,160") == "11160"  # datasets read the same way
    qsa = tmp_path / "qsa.jsonl"
    qsa.write_text(json.dumps({"question": "q", "steps": [], "answer": "11,160"}) + "\n"
                   + json.dumps({"question": "q", "steps": [], "answer": "1,2"}) + "\n")
    assert [r.answer for r in read_records(qsa)] == ["11160", "1,2"]  # not a number with separators: kept


def test_steps_equations_reaches_train_and_eval(capsys, tmp_path, gsm8k_file):
    lines = DataArguments(data=str(gsm8k_file)).records("train")
    equations = DataArguments(data=str(gsm8k_file), steps="equations").records("train")
    assert lines[0].steps == ["2 * 5580 = <<2*5580=11160>>11160"]
    assert equations[2].steps == ["<<1+2=3>>", "<<3+3=6>>"]
    out = tmp_path / "m"
    code, _, err = run_cli(capsys, "train", "cot", "--data", gsm8k_file, "--init", "tiny", "--out", out,
                           "--steps", "equations", "--max-steps", "2", "--batch-size", "2")
    assert code == 0, err
    assert "steps: equations" in (out / "train_config.yaml").read_text()
    code, _, err = run_cli(capsys, "eval", "--model", out, "--data", gsm8k_file, "--steps", "equations",
                           "--max-new-tokens", "4", "--report", tmp_path / "r.json")
    assert code == 0, err
    code, _, err = run_cli(capsys, "eval", "--model", out, "--data", gsm8k_file, "--steps", "words")
    assert_one_line_error(code, err, "--steps")


# -- item 7: broken files ---------------------------------------------------------------------------------
def _truncate(path):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


def test_truncated_safetensors_is_one_line(capsys, tmp_path):
    d = _save(tmp_path / "llama", "llama", _tokenizer(think=True, pad=True))
    _truncate(d / "model.safetensors")
    code, _, err = run_cli(capsys, "ask", "--model", d, "1 2 3")
    assert_one_line_error(code, err, "model.safetensors", "truncated or corrupt")


def test_weights_without_tokenizer_is_one_line(capsys, tmp_path):
    d = _save(tmp_path / "llama", "llama", _tokenizer(think=True, pad=True))
    for f in d.iterdir():
        if f.name.startswith("tokenizer") or f.name == "special_tokens_map.json":
            f.unlink()
    code, _, err = run_cli(capsys, "ask", "--model", d, "1 2 3")
    line = assert_one_line_error(code, err, "no tokenizer")
    assert line.rstrip().endswith(")"), line  # a whole sentence, not one cut at a line break


# -- item 7: checkpoints ----------------------------------------------------------------------------------
KW = dict(max_steps=6, batch_size=8, lr=2e-3, logging_steps=1, save_steps=2, seed=5)


def _weights(out):
    return load_file(str(out / "model.safetensors"))


def test_resume_skips_a_truncated_checkpoint_and_ends_where_an_uninterrupted_run_does(tmp_path, rs_dir, capfd):
    train("cot", rs_dir, "tiny", tmp_path / "full", **KW)
    with pytest.raises(KeyboardInterrupt):
        train("cot", rs_dir, "tiny", tmp_path / "cut", callbacks=[StopAfter(5)], **KW)
    ckpts = tmp_path / "cut" / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["checkpoint-2", "checkpoint-4"]
    _truncate(ckpts / "checkpoint-4" / "model.safetensors")  # a crash while it was written
    capfd.readouterr()
    _, resumed = train("cot", rs_dir, "tiny", tmp_path / "cut", resume=True, **KW)
    warnings = [ln for ln in capfd.readouterr().err.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1 and "checkpoint-4" in warnings[0] and "model.safetensors" in warnings[0], warnings
    assert min(h["step"] for h in resumed.state.log_history if "loss" in h and h["step"] > 2) == 3
    full, cut = _weights(tmp_path / "full"), _weights(tmp_path / "cut")
    assert full.keys() == cut.keys()
    for k in full:
        assert torch.allclose(full[k], cut[k], atol=1e-6), k
    # the unusable checkpoint-4 was replaced by a good one when the resumed run got there
    assert (ckpts / "checkpoint-4").is_dir() and not list(ckpts.glob(".*"))


def test_a_crash_during_a_checkpoint_save_leaves_no_checkpoint(tmp_path, rs_dir, monkeypatch):
    from ponder.methods.trainer import CoTTrainer, last_usable_checkpoint

    real, calls = CoTTrainer._save_rng_state, []

    def crash_on_second(self, output_dir):
        calls.append(output_dir)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed while saving")
        return real(self, output_dir)

    monkeypatch.setattr(CoTTrainer, "_save_rng_state", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        train("cot", rs_dir, "tiny", tmp_path / "cut", **KW)
    ckpts = tmp_path / "cut" / "checkpoints"
    assert [p.name for p in ckpts.iterdir() if not p.name.startswith(".")] == ["checkpoint-2"]
    assert last_usable_checkpoint(ckpts).endswith("checkpoint-2")


def test_resume_with_no_usable_checkpoint_is_one_line(capsys, tmp_path, rs_dir):
    out = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        train("cot", rs_dir, "tiny", out, callbacks=[StopAfter(3)], **KW)
    _truncate(out / "checkpoints" / "checkpoint-2" / "trainer_state.json")
    code, _, err = run_cli(capsys, "train", "cot", "--data", rs_dir, "--init", "tiny", "--out", out, "--resume",
                           "--max-steps", "6", "--save-steps", "2", "--batch-size", "8")
    assert code == 2
    lines = err.strip().splitlines()
    assert lines[0].startswith("warning: --resume: skipping") and "trainer_state.json" in lines[0]
    assert lines[-1].startswith("error: --resume: no usable checkpoint") and len(lines) == 2, lines
