"""Explicit reasoners from outside ponder: a Hugging Face directory with a chat template is asked through
it, its thinking delimiters are found or given, and its answer is the text after the end of thinking."""

from __future__ import annotations

import pytest

from conftest import QWEN3_TEMPLATE, save_reasoner
from ponder.errors import PonderError
from ponder.inference.decode import Decoder
from ponder.model.io import load_model

from test_cli_errors import assert_one_line_error, run_cli


def test_reasoner_prompt_is_its_chat_template(reasoner_dir):
    """Asked as the reasoner it is: the template's generation prompt, then <think> (which Qwen3 writes first
    anyway), no speed marker; without thinking the span is closed at once."""
    model = load_model(reasoner_dir, chat_template=None, reasoner=True)
    lay, tok = model.settings.layout, model.tokenizer
    assert lay.chat_template and (lay.think_start, lay.think_end) == ("<think>", "</think>")
    expected = tok.apply_chat_template([{"role": "user", "content": "3 4"}], add_generation_prompt=True, tokenize=False)
    assert expected.endswith("<|im_start|>assistant\n")
    assert tok.decode(lay.generation_prompt(tok, "3 4", 1, think=True)) == expected + "<think>"
    assert tok.decode(lay.generation_prompt(tok, "3 4", 1, think=False)) == expected + "<think></think>"


def test_a_template_that_opens_the_thinking_itself_gets_one_think(tmp_path):
    """R1-distill's template ends its generation prompt with <think>\n: the prompt holds it once."""
    r1 = QWEN3_TEMPLATE.replace("<|im_start|>assistant\n", "<|im_start|>assistant\n<think>\n")
    model = load_model(save_reasoner(tmp_path / "r1", template=r1), chat_template=None, reasoner=True)
    text = model.tokenizer.decode(model.settings.layout.generation_prompt(model.tokenizer, "3 4", 1, think=True))
    assert text.endswith("assistant\n<think>") and text.count("<think>") == 1


def test_training_and_inference_share_the_template_prompt(reasoner_dir, rs_records):
    """Trained through its chat template, a model's training sequence starts with exactly the tokens its
    inference prompt holds (speed marker included), and its answer ends with the template's end of turn."""
    model = load_model(reasoner_dir, chat_template=None)  # as --init loads it for training
    lay, tok = model.settings.layout, model.tokenizer
    r = rs_records["train"][0]
    sequence = lay.prompt_ids(tok, r.question, 2) + lay.reasoning_ids(tok, r.steps) + lay.answer_ids(tok, r.answer)
    prompt = lay.generation_prompt(tok, r.question, 2, think=True)
    assert sequence[: len(prompt)] == prompt
    assert tok.decode(prompt).endswith("<|im_start|>assistant\nSpeed: 2\n<think>")
    assert tok.decode(sequence[len(prompt):]).endswith(f"</think>Answer: {r.answer}<|im_end|>")
    assert not load_model(reasoner_dir, chat_template=False).settings.layout.chat_template


def test_reasoner_answer_is_the_text_after_the_end_of_thinking(reasoner_dir):
    model = load_model(reasoner_dir, chat_template=None, reasoner=True)
    g = Decoder(model, max_new_tokens=12).generate(["3 4"])[0]
    assert len(g.token_ids) <= 12
    tok, end = model.tokenizer, model.tokenizer.convert_tokens_to_ids("</think>")
    if end in g.token_ids:  # a random model: where it closes its thinking, the answer is what follows
        assert g.reasoning_length == g.token_ids.index(end)
    else:
        assert g.reasoning_length == len(g.token_ids) and g.answer == ""
    assert tok.decode(g.token_ids, skip_special_tokens=False) == g.text


def test_think_delimiters_given_must_be_tokens(reasoner_dir, tmp_path):
    with pytest.raises(PonderError, match="--think-end '</reasoning>' is not one token"):
        load_model(reasoner_dir, chat_template=None, think_end="</reasoning>")
    plain = save_reasoner(tmp_path / "plain", template=None)
    with pytest.raises(PonderError, match="has no chat template"):
        load_model(plain, chat_template=True)


def test_cli_flags_for_a_ponder_model_are_refused(capsys, colar_dir, tmp_path):
    code, _, err = run_cli(capsys, "ask", "3 4", "--model", colar_dir[0], "--think-end", "</think>")
    assert_one_line_error(code, err, "--think-end", "Hugging Face reasoners")


def test_ask_a_reasoner_from_the_cli(capsys, reasoner_dir):
    code, out, err = run_cli(capsys, "ask", "3 4", "--model", reasoner_dir, "--max-new-tokens", "6")
    assert code == 0, err
    assert "reasoning" in out and "answer" in out


@pytest.mark.parametrize("method", ["cot", "colar"])
def test_train_through_the_chat_template_and_ask(capsys, reasoner_dir, rs_dir, tmp_path, method):
    code, _, err = run_cli(capsys, "train", method, "--data", rs_dir, "--init", reasoner_dir, "--out", tmp_path / "m",
                           "--max-steps", "2", "--batch-size", "4", *(["--max-compression", "2"] if method == "colar" else []))
    assert code == 0, err
    model = load_model(tmp_path / "m")
    assert model.settings.layout.chat_template and model.settings.layout.speed_template
    code, out, err = run_cli(capsys, "ask", "3 4", "--model", tmp_path / "m", "--max-new-tokens", "4",
                             *(["--speed", "2"] if method == "colar" else []))
    assert code == 0 and "answer" in out, err
    code, _, err = run_cli(capsys, "train", "cot", "--data", rs_dir, "--init", "tiny", "--chat-template",
                           "--out", tmp_path / "p")
    assert_one_line_error(code, err, "--chat-template", "preset")
