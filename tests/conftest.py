"""Shared fixtures: small data and tiny models built from scratch (no hub access needed)."""

from __future__ import annotations

import pytest
import torch

from ponder.data.tasks import make_splits, write_splits
from ponder.model.io import build_model

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def rs_dir(tmp_path_factory):
    """running-sum splits with 4 digits: small enough for a model to learn in a few seconds."""
    d = tmp_path_factory.mktemp("rs")
    write_splits(make_splits("running-sum", n_train=400, n_val=20, n_test=40, seed=1, difficulty=4), d)
    return d


@pytest.fixture(scope="session")
def rs_records():
    return make_splits("running-sum", n_train=200, n_val=0, n_test=16, seed=3, difficulty=4)


def tiny_model(records, seed=0, method="cot"):
    texts = [t for r in records for t in (r.question, " ".join(r.steps), r.answer)] + ["Question: Speed: Answer: auto"]
    model = build_model("tiny", texts, seed=seed)
    model.settings.method = method
    return model.eval()


@pytest.fixture(scope="session")
def colar_dir(tmp_path_factory):
    """CoLaR from scratch on running sums of 1..3 digits: chains of varied length, and a first latent
    (copy the first digit) that a tiny model learns within seconds."""
    from ponder.data.records import write_jsonl
    from ponder.methods.train import train

    root = tmp_path_factory.mktemp("colar")
    records = [r for d, n in ((1, 10), (2, 100), (3, 600)) for r in make_splits("running-sum", n, 0, 0, seed=d, difficulty=d)["train"]]
    write_jsonl(records, root / "train.jsonl")
    out = root / "m"
    _, trainer = train("colar", root / "train.jsonl", "tiny", out, max_steps=100, batch_size=16, lr=3e-3,
                       logging_steps=10, save_steps=1000, max_compression=3)
    logs = [h for h in trainer.state.log_history if "latent_loss" in h]
    return out, logs


# A Qwen3-style chat template: the question as the user turn; with enable_thinking=false the thinking is
# closed at once (Qwen3's behaviour), otherwise the model opens it itself.
QWEN3_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}{% endif %}")


def save_reasoner(path, template=QWEN3_TEMPLATE, seed=0):
    """A tiny random Qwen3 explicit reasoner with a chat template and <think> tokens, saved like a hub
    snapshot: what `ponder eval --model DIR` gets from a user who runs Qwen3."""
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from ponder.model.tokenizer import build_tokenizer

    texts = ["<think> Let me add 3 and 4. That is 7. Wait, check: 3 + 4 = 7. </think> The answer is 7."] * 20
    tok = build_tokenizer(texts, vocab_size=300)
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tok.eos_token = "<|im_end|>"
    tok.chat_template = template
    config = Qwen3Config(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=512,
                         tie_word_embeddings=True, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id)
    torch.manual_seed(seed)
    Qwen3ForCausalLM(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def reasoner_dir(tmp_path_factory):
    return save_reasoner(tmp_path_factory.mktemp("qwen3"))


@pytest.fixture(scope="session")
def qwen3(reasoner_dir):
    """The tiny Qwen3 reasoner asked through its chat template, with a chaotic (random, sharper) output layer:
    rows think for different lengths and exit policies fire at different steps."""
    from ponder.model.io import load_model

    model = load_model(reasoner_dir, chat_template=None, reasoner=True)
    head = model.lm.get_output_embeddings()
    head.weight = torch.nn.Parameter(torch.randn(head.weight.shape, generator=torch.Generator().manual_seed(1)) * 0.5)
    return model
