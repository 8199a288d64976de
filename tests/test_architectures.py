"""Every mainstream architecture (issue 24, item 4): tiny random models of each family, saved to disk as a
user has them, train CoT and CoLaR (both position modes), save, load back with plain
``AutoModelForCausalLM.from_pretrained``, evaluate, and decode the same latents with and without the KV cache.

GPT-2 has a learned position table (here 64 positions): a layout past its end is one clear line before any
work (training, CoLaR-RL rollouts) or a decoding budget clamped with a warning (eval, ask), never an
``IndexError``; LoRA reaches its fused ``c_attn``. Other families' specifics are in test_byo.py (Gemma's
embedding scale, padded vocabularies)."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from transformers import (AutoModelForCausalLM, Gemma2Config, GemmaConfig, GPT2Config, LlamaConfig, MistralConfig,
                          Phi3Config, Qwen2Config, Qwen3Config)

from test_cli_errors import assert_one_line_error, run_cli
from ponder.data.records import Record, read_records, write_jsonl
from ponder.data.tasks import make_splits
from ponder.errors import PonderError
from ponder.evaluation.evaluate import evaluate
from ponder.inference.decode import Decoder
from ponder.methods.train import train
from ponder.model.io import load_model
from ponder.model.positions import position_limit
from ponder.model.tokenizer import build_tokenizer
from ponder.prompt import PromptLayout

TABLE = 64  # the tiny GPT-2's n_positions
SHAPE = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
# family: (config, its options, the class from_pretrained must give back)
FAMILIES = {
    "llama": (LlamaConfig, dict(SHAPE, tie_word_embeddings=False), "LlamaForCausalLM"),
    "qwen2": (Qwen2Config, dict(SHAPE, tie_word_embeddings=True), "Qwen2ForCausalLM"),
    "qwen3": (Qwen3Config, dict(SHAPE, head_dim=16, tie_word_embeddings=False), "Qwen3ForCausalLM"),
    "mistral": (MistralConfig, dict(SHAPE, tie_word_embeddings=False), "MistralForCausalLM"),
    "phi3": (Phi3Config, dict(SHAPE, tie_word_embeddings=False), "Phi3ForCausalLM"),  # fused qkv_proj, gate_up_proj
    "gemma": (GemmaConfig, dict(SHAPE, head_dim=16), "GemmaForCausalLM"),  # embeddings x sqrt(hidden)
    "gemma2": (Gemma2Config, dict(SHAPE, head_dim=16), "Gemma2ForCausalLM"),  # and soft-capping, sliding layers
    "gpt2": (GPT2Config, dict(n_embd=64, n_inner=128, n_layer=2, n_head=4, n_positions=TABLE, resid_pdrop=0.0,
                              embd_pdrop=0.0, attn_pdrop=0.0), "GPT2LMHeadModel"),  # absolute positions
}
METHODS = {"cot": {}, "colar-contiguous": {"latent_positions": "contiguous"},
           "colar-stretched": {"latent_positions": "stretched"}}
QUESTIONS = ["3 1 4", "2 7 1 8 2 8"]  # two lengths: the decoder pads the shorter on the left


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Models this small decode several times faster on one thread than on two shared ones."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tokenizer(rs_dir):
    records = read_records(rs_dir / "train.jsonl")
    texts = [t for r in records for t in (r.question, " ".join(r.steps), r.answer)] + [PromptLayout().words()] * 20
    return build_tokenizer(texts, vocab_size=300)


@pytest.fixture(scope="module")
def small_data(rs_dir, tmp_path_factory):
    """40 training records and 2 test ones: a few steps need no more (and each run tokenizes all of them)."""
    d = tmp_path_factory.mktemp("small")
    write_jsonl(read_records(rs_dir / "train.jsonl")[:40], d / "train.jsonl")
    write_jsonl(read_records(rs_dir / "test.jsonl")[:2], d / "test.jsonl")
    return d


def save_family(path, family: str, tok):
    """A tiny random model of ``family`` with ponder's tokenizer, saved as a hub snapshot would be."""
    config_cls, options, _ = FAMILIES[family]
    config = config_cls(vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                        pad_token_id=tok.pad_token_id, **options)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def family_dir(tmp_path_factory, tokenizer):
    root, made = tmp_path_factory.mktemp("families"), {}

    def get(family):
        if family not in made:
            made[family] = save_family(root / family, family, tokenizer)
        return made[family]
    return get


def _logits(lm, ids):
    with torch.no_grad():
        return lm(input_ids=ids).logits


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("family", list(FAMILIES))
def test_family_trains_saves_reloads_evaluates_and_decodes(family, method, family_dir, small_data, tmp_path):
    out = tmp_path / "m"
    colar = method.startswith("colar")
    options = dict(METHODS[method], max_compression=2) if colar else {}
    model, _ = train("colar" if colar else "cot", small_data, str(family_dir(family)), out, max_steps=2, batch_size=4,
                     lr=1e-4, save_steps=1000, **options)
    model.eval()

    # what transformers itself reads, with no ponder code involved: the same class and the same logits
    plain = AutoModelForCausalLM.from_pretrained(out)
    loaded = load_model(out)
    assert type(plain).__name__ == FAMILIES[family][2]
    assert loaded.settings.method == ("colar" if colar else "cot")
    ids = torch.tensor([loaded.settings.layout.prompt_ids(loaded.tokenizer, "1 2 3", 1) + [5, 6, 7]])
    expected = _logits(model.lm, ids)
    assert torch.allclose(_logits(plain, ids), expected, atol=1e-5)
    assert torch.allclose(_logits(loaded.lm, ids), expected, atol=1e-5)
    tied = plain.get_input_embeddings().weight.data_ptr() == plain.get_output_embeddings().weight.data_ptr()
    assert tied == plain.config.tie_word_embeddings, "tied embeddings must stay tied after saving (and untied untied)"
    if colar:
        assert loaded.settings.latent_positions == METHODS[method]["latent_positions"]
        # CoLaR's scale is what the embedding layer returns (Gemma's x sqrt(hidden) included), not the raw weight's
        assert loaded.settings.embed_std == pytest.approx(loaded.measure_embed_std(), rel=0.05)

    speed = 2 if colar else None
    report = evaluate(loaded, read_records(small_data / "test.jsonl"), speeds=[speed], max_new_tokens=4,
                      max_latent_steps=3, batch_size=2)
    assert [r["speed"] for r in report["results"]] == [2 if colar else 1] and len(report["predictions"]) == 2

    # the KV cache changes nothing: same latents, same tokens, left padding included
    cached = Decoder(loaded, max_new_tokens=4, max_latent_steps=3).generate(QUESTIONS, speed=speed)
    uncached = Decoder(loaded, max_new_tokens=4, max_latent_steps=3, use_cache=False).generate(QUESTIONS, speed=speed)
    for a, b in zip(cached, uncached):
        assert a.token_ids == b.token_ids and a.reasoning_length == b.reasoning_length
        if colar and a.reasoning_length:
            assert a.latents.shape == b.latents.shape == (a.reasoning_length, loaded.config.hidden_size)
            assert torch.allclose(a.latents, b.latents, atol=1e-5, rtol=0)
    if colar:
        assert sum(g.reasoning_length for g in cached) > 0, "no latent step decoded: nothing was compared"


# -- GPT-2: a bounded position table ---------------------------------------------------------------------
def _table_error(what: str, needed: int, fix: str) -> str:
    return (f"{what} needs {needed} positions, past the end of the gpt2 model's position table ({TABLE} positions, "
            f"n_positions in config.json); {fix}")


def _spans(tok, r, c: int = 1, stretched: bool = False) -> int:
    """Positions of a record's layout, counted by hand: prompt at speed c, ceil(n / c) slots of c (stretched)
    or 1 position each, then </think>, the answer and <eos>."""
    lay = PromptLayout()
    n = len(lay.reasoning_ids(tok, r.steps))
    slots = n if c == 1 else math.ceil(n / c) * (c if stretched else 1)
    return len(lay.prompt_ids(tok, r.question, c)) + slots + len(lay.answer_ids(tok, r.answer))


def _mixed(path, long_digits: int, n_long: int = 3):
    """20 short running sums and ``n_long`` of ``long_digits`` digits, as a data file."""
    short = make_splits("running-sum", 20, 0, 0, seed=1, difficulty=4)["train"]
    long = make_splits("running-sum", n_long, 0, 0, seed=2, difficulty=long_digits)["train"]
    write_jsonl(short + long, path)
    return path, long


@pytest.fixture(scope="module")
def gpt2(family_dir):
    return family_dir("gpt2")


@pytest.mark.parametrize("family", list(FAMILIES))
def test_lean_decoding_pass_equals_the_full_one(family, family_dir):
    """Decoding passes skip output_hidden_states where the logits are lm_head(last state) (PonderModel.lean):
    the same logits and last hidden state as the full pass, through a cache; Gemma 2 (soft-capping) and
    GPT-2 keep the full pass."""
    from transformers import DynamicCache

    m = load_model(family_dir(family)).eval()
    assert m.lean == (family not in ("gemma2", "gpt2"))
    ids = torch.tensor([[5, 9, 11, 7, 3], [4, 4, 8, 2, 6]])
    mask = torch.ones_like(ids)

    def decode(run, **kw):  # prefill 3 tokens, then 2 through the cache
        cache = DynamicCache()
        with torch.no_grad():
            run(input_ids=ids[:, :3], attention_mask=mask[:, :3], use_cache=True, past_key_values=cache, **kw)
            return run(input_ids=ids[:, 3:], attention_mask=mask, use_cache=True, past_key_values=cache, **kw)[:2]

    logits, hidden = decode(m._full_pass, last_only=True)
    assert torch.allclose(logits, _logits(m.lm, ids)[:, -1:], atol=1e-5) and hidden.shape[1] == 1
    if m.lean:
        lean_logits, lean_hidden = decode(m._lean_pass)
        assert torch.equal(lean_logits, logits) and torch.equal(lean_hidden, hidden)


def test_position_limit(gpt2, family_dir):
    assert position_limit(load_model(gpt2)) == TABLE
    assert position_limit(AutoModelForCausalLM.from_pretrained(gpt2)) == TABLE
    assert position_limit(load_model(family_dir("llama"))) is None  # rotary: no table


def test_gpt2_long_cot_chains_stop_before_training(gpt2, tokenizer, tmp_path, capsys):
    data, long = _mixed(tmp_path / "mixed.jsonl", long_digits=30)
    needed = max(_spans(tokenizer, r) for r in long)
    assert needed > TABLE
    with pytest.raises(PonderError) as e:
        train("cot", data, str(gpt2), tmp_path / "m", max_steps=2, batch_size=4, save_steps=1000)
    assert str(e.value) == _table_error("the longest training example", needed,
                                        "pass --max-length 64 to skip the 3 example(s) longer than that")
    code, _, err = run_cli(capsys, "train", "cot", "--data", data, "--init", gpt2, "--out", tmp_path / "cli",
                           "--max-steps", "2")
    assert_one_line_error(code, err, "needs", "position table (64 positions", "--max-length 64")
    assert not (tmp_path / "cli").exists() and not (tmp_path / "m").exists()  # before any work
    # as the error says: the longer examples are skipped, the others train
    _, trainer = train("cot", data, str(gpt2), tmp_path / "m", max_steps=2, batch_size=4, save_steps=1000,
                       max_length=TABLE)
    assert len(trainer.train_dataset) == 20 and trainer.state.global_step == 2


def test_gpt2_stretched_colar_counts_its_positions(gpt2, tokenizer, tmp_path):
    """25-digit chains: CoT's 64 tokens fit the table, CoLaR's stretched layout at c = 3 needs 66 positions."""
    data, long = _mixed(tmp_path / "mixed.jsonl", long_digits=25)
    cot = max(_spans(tokenizer, r) for r in long)
    stretched = max(_spans(tokenizer, r, c, stretched=True) for r in long for c in (1, 2, 3))
    assert cot <= TABLE < stretched
    kw = dict(max_steps=2, batch_size=4, save_steps=1000, max_compression=3)
    _, trainer = train("colar", data, str(gpt2), tmp_path / "contiguous", latent_positions="contiguous", **kw)
    assert len(trainer.train_dataset) == 23  # contiguous slots: never more positions than CoT's tokens
    with pytest.raises(PonderError) as e:
        train("colar", data, str(gpt2), tmp_path / "stretched", latent_positions="stretched", **kw)
    assert str(e.value) == _table_error(
        "the longest training example (stretched latent positions: c up to 3 per latent step)", stretched,
        "pass --max-length 64 to skip the 3 example(s) longer than that")
    _, trainer = train("colar", data, str(gpt2), tmp_path / "stretched", latent_positions="stretched",
                       max_length=TABLE, **kw)
    assert len(trainer.train_dataset) == 20  # --max-length counts the stretched positions
    _, trainer = train("cot", data, str(gpt2), tmp_path / "cot", max_length=TABLE, max_steps=1, batch_size=4,
                       save_steps=1000)
    assert len(trainer.train_dataset) == 23  # ... which CoT's tokens do not reach


@pytest.fixture(scope="module")
def gpt2_colar(gpt2, rs_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("gpt2") / "colar"
    train("colar", rs_dir, str(gpt2), out, max_steps=2, batch_size=4, lr=1e-3, save_steps=1000, max_compression=3,
          latent_positions="stretched")
    return out


def test_gpt2_colar_rl_rollouts_stop_before_training(gpt2_colar, tokenizer, rs_dir, tmp_path):
    prompt = max(len(PromptLayout().prompt_ids(tokenizer, r.question, 3)) for r in read_records(rs_dir / "train.jsonl"))
    kw = dict(max_steps=1, batch_size=2, group_size=2, save_steps=1000, speeds="1,3")
    with pytest.raises(PonderError) as e:
        train("colar-rl", rs_dir, str(gpt2_colar), tmp_path / "rl", **kw)
    assert str(e.value) == _table_error(
        "a colar-rl rollout of the longest question (64 latent steps at speed 3, then 32 tokens)",
        prompt + 64 * 3 + 1 + 32, "lower --max-latent-steps or --max-new-tokens")
    assert not (tmp_path / "rl").exists()
    _, trainer = train("colar-rl", rs_dir, str(gpt2_colar), tmp_path / "rl", max_latent_steps=10, max_new_tokens=8, **kw)
    assert trainer.state.global_step == 1 and load_model(tmp_path / "rl").settings.method == "colar-rl"


def test_gpt2_eval_and_ask_clamp_their_budget_to_the_table(gpt2_colar, tokenizer, rs_dir, capsys):
    model = load_model(gpt2_colar)
    records = read_records(rs_dir / "test.jsonl")[:3]
    prompt = max(len(PromptLayout().prompt_ids(tokenizer, r.question, 1)) for r in records)
    capsys.readouterr()
    report = evaluate(model, records, speeds=[1, 3])  # the defaults: 256 new tokens, 64 latent steps
    room = TABLE - prompt - 1  # after the prompt and </think>
    tokens = room // 2
    steps = (room - tokens) // 3
    s = report["settings"]
    assert (s["max_new_tokens"], s["max_latent_steps"]) == (tokens, steps)
    assert prompt + 1 + steps * 3 + tokens <= TABLE
    assert capsys.readouterr().err.strip().splitlines() == [
        "warning: decoding would pass the end of the gpt2 model's position table (64 positions, n_positions in "
        f"config.json): --max-new-tokens 256 -> {tokens}, --max-latent-steps 64 -> {steps}"]
    assert len(report["predictions"]) == 6
    code, out, err = run_cli(capsys, "ask", "--model", gpt2_colar, "--speed", "3", "2 7 1")
    assert code == 0, err
    assert "answer" in out and [ln.split(":")[0] for ln in err.strip().splitlines()] == ["warning"]


def test_gpt2_lora_reaches_c_attn_and_evaluates(gpt2, rs_dir, tmp_path, capsys):
    out = tmp_path / "lora"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model, _ = train("cot", rs_dir, str(gpt2), out, max_steps=2, batch_size=4, lr=1e-2, save_steps=1000, lora_r=4)
    assert not [w for w in caught if "fan_in_fan_out" in str(w.message)]  # Conv1D's layout is set, not guessed
    adapted = {n.split(".lora_A")[0].rsplit(".", 1)[-1] for n, p in model.lm.named_parameters()
               if "lora_A" in n and p.requires_grad}
    assert {"c_attn", "c_proj", "c_fc"} <= adapted
    assert position_limit(model) == TABLE  # found through peft's wrapper too
    model.eval()
    plain = AutoModelForCausalLM.from_pretrained(out)  # the adapter merged: a plain GPT-2 again
    ids = torch.tensor([list(range(3, 40))])
    assert torch.allclose(_logits(plain, ids), _logits(model.lm, ids), atol=1e-5)
    before = AutoModelForCausalLM.from_pretrained(gpt2)
    assert not torch.allclose(_logits(before, ids), _logits(plain, ids), atol=1e-3)  # LoRA did train
    code, _, err = run_cli(capsys, "eval", "--model", out, "--data", rs_dir, "--n", "4")  # 256 new tokens by default
    assert code == 0, err
    tok = model.tokenizer
    prompt = max(len(PromptLayout().prompt_ids(tok, r.question, 1)) for r in read_records(rs_dir / "test.jsonl")[:4])
    assert err.strip().splitlines() == [
        "warning: decoding would pass the end of the gpt2 model's position table (64 positions, n_positions in "
        f"config.json): --max-new-tokens 256 -> {TABLE - prompt}"]


def test_gpt2_a_prompt_past_the_table_is_one_line(gpt2, capsys, tmp_path):
    model = load_model(gpt2)
    question = " ".join("7" * 70)
    needed = len(model.settings.layout.prompt_ids(model.tokenizer, question, 1)) + 1
    with pytest.raises(PonderError) as e:
        evaluate(model, [Record(question, [], "7")], max_new_tokens=4)
    assert str(e.value) == _table_error("decoding the longest prompt and one token", needed, "shorten the questions")
    code, _, err = run_cli(capsys, "ask", "--model", gpt2, question)
    assert_one_line_error(code, err, "decoding the longest prompt and one token", "position table (64 positions")
