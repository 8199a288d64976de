"""The real path for pretrained models: a plain Hugging Face causal-LM directory on disk (no ponder.json),
its tokenizer lacking <think>, </think> and a pad token; full fine-tuning and LoRA through peft."""

from __future__ import annotations

import json

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from ponder.inference.decode import Decoder
from ponder.methods.train import train
from ponder.model.io import PONDER_FILE, load_model
from ponder.prompt import THINK_END, THINK_START


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    """A 'pretrained' model as users have them: config.json, safetensors, tokenizer; nothing ponder."""
    d = tmp_path_factory.mktemp("hf") / "llama"
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(["Question: 1 2 3 Speed: Answer: 0 4 5 6 7 8 9"] * 10,
                            trainers.BpeTrainer(vocab_size=300, special_tokens=["<s>", "</s>"],
                                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>")
    cfg = LlamaConfig(vocab_size=len(fast), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False,
                      bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(d)
    fast.save_pretrained(d)
    return d


def test_plain_hf_dir_gets_special_tokens_and_resized_embeddings(hf_dir):
    m = load_model(hf_dir)
    tok = m.tokenizer
    for t in (THINK_START, THINK_END):
        assert tok.convert_tokens_to_ids(t) != tok.unk_token_id and len(tok.tokenize(t)) == 1
    assert tok.pad_token is not None
    assert m.lm.get_input_embeddings().weight.shape[0] == len(tok)
    assert m.lm.get_output_embeddings().weight.shape[0] == len(tok)
    assert m.settings.init == str(hf_dir) and not (hf_dir / PONDER_FILE).exists()


@pytest.mark.parametrize("lora_r", [0, 4])
def test_train_from_hf_dir_saves_a_from_pretrained_directory(hf_dir, rs_dir, tmp_path, lora_r):
    out = tmp_path / "m"
    model, trainer = train("cot", rs_dir, str(hf_dir), out, max_steps=3, batch_size=4, lr=1e-3, lora_r=lora_r,
                           save_steps=1000)
    if lora_r:
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        assert trainable and all("lora_" in n or "trainable_tokens" in n for n in trainable)
    # what transformers itself reads, with no ponder code involved
    plain = LlamaForCausalLM.from_pretrained(out)
    loaded = load_model(out).eval()
    assert json.loads((out / PONDER_FILE).read_text())["method"] == "cot"
    ids = torch.tensor([loaded.settings.layout.prompt_ids(loaded.tokenizer, "1 2 3", 1)])
    model.eval()
    with torch.no_grad():
        expected = model(input_ids=ids).logits
        assert torch.allclose(plain(input_ids=ids).logits, expected, atol=1e-5)
        assert torch.allclose(loaded(input_ids=ids).logits, expected, atol=1e-5)
    assert Decoder(loaded, max_new_tokens=4).generate(["1 2 3"])[0].token_ids is not None
