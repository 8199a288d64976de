"""Explicit reasoners from outside ponder: a Hugging Face directory with a chat template is asked through
it, its thinking delimiters are found or given, and its answer is the text after the end of thinking."""

from __future__ import annotations

import pytest

from conftest import save_reasoner
from ponder.errors import PonderError
from ponder.inference.decode import Decoder
from ponder.model.io import load_model

from test_cli_errors import assert_one_line_error, run_cli


def test_reasoner_prompt_is_its_chat_template(reasoner_dir):
    model = load_model(reasoner_dir, chat_template=None)
    lay, tok = model.settings.layout, model.tokenizer
    assert lay.chat_template and (lay.think_start, lay.think_end) == ("<think>", "</think>")
    expected = tok.apply_chat_template([{"role": "user", "content": "3 4"}], add_generation_prompt=True, tokenize=False)
    assert expected.endswith("<|im_start|>assistant\n")
    assert lay.generation_prompt(tok, "3 4", 1, think=True) == tok(expected, add_special_tokens=False)["input_ids"]
    off = tok.decode(lay.generation_prompt(tok, "3 4", 1, think=False))
    assert off.endswith("<think>\n\n</think>\n\n")  # the template's own way to switch thinking off


def test_training_from_a_reasoner_keeps_ponder_layout(reasoner_dir):
    """Training does not use chat templates yet: --init DIR loads with ponder's layout, as before."""
    assert not load_model(reasoner_dir).settings.layout.chat_template
    assert not load_model(reasoner_dir, chat_template=False).settings.layout.chat_template


def test_reasoner_answer_is_the_text_after_the_end_of_thinking(reasoner_dir):
    model = load_model(reasoner_dir, chat_template=None)
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
