"""A byte-level BPE tokenizer trained on the task's own text, for models built from scratch.

Digits are kept one per token (with an optional leading space) so a tiny model can do arithmetic digit
by digit, and a running-sum step (" 7") is exactly one token. Byte-level means any text round-trips.
"""

from __future__ import annotations

from typing import Iterable

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from ponder.prompt import THINK_END, THINK_START

PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"
SPECIAL_TOKENS = [PAD, BOS, EOS, THINK_START, THINK_END]
_PIECES = r" ?\d| ?[A-Za-z]+| ?[^\sA-Za-z\d]+|\s+"


def build_tokenizer(texts: Iterable[str], vocab_size: int = 512) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_PIECES), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD)
    fast.add_tokens([THINK_START, THINK_END], special_tokens=True)
    return fast


def ensure_special_tokens(tokenizer) -> int:
    """Give any tokenizer the thinking separators and a pad token; returns how many tokens were added."""
    added = tokenizer.add_tokens([THINK_START, THINK_END], special_tokens=True)
    if tokenizer.pad_token is None:
        added += tokenizer.add_special_tokens({"pad_token": PAD})
    if tokenizer.eos_token is None:
        added += tokenizer.add_special_tokens({"eos_token": EOS})
    return added
