"""How much of a model's thinking comes after it has already stated the right answer.

A statement is ``answer is X`` / ``answer: X`` / ``answer = X`` (any case, an optional ``**`` or ``$``
before X, a sentence's final ``.`` kept with it) or ``\\boxed{X}``; X is compared with
:func:`~ponder.evaluation.answers.answers_match` (``7.0`` states ``7``).

    stated_answers("3 so the answer is 3. Wait, the answer is 4.")   # [Statement('3', 5, 21), ...]
    first_correct_statement(text, "4")                                # offset just after "answer is 4."
    overthinking(tokenizer, generation.token_ids, record.answer)      # tokens, statement token, share after

The share of thinking tokens after the first correct statement is what an exit policy that stops as soon as
the answer has settled could save at most without changing the answer (``benchmarks/exits/overthinking.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ponder.evaluation.answers import answers_match
from ponder.prompt import THINK_END

_STATEMENT = re.compile(
    r"\\boxed\{(?P<boxed>[^{}]*)\}"
    r"|answer\s*(?:is|:|=)\s*\**\s*(?P<value>[-+]?\$?\d+(?:,\d{3})*(?:\.\d+)?|[^\s.,;:!?*]+)\**(?:\.(?!\d))?",
    re.IGNORECASE)


@dataclass(frozen=True)
class Statement:
    value: str  # the answer stated
    start: int  # character offsets of the whole statement in the text
    end: int


@dataclass(frozen=True)
class Overthinking:
    thinking_tokens: int  # tokens before the end of thinking
    statement_tokens: int | None  # thinking tokens up to the end of the first correct statement (None: never)
    tokens_after: int | None  # thinking tokens after it
    share: float | None  # tokens_after / thinking_tokens (None when the answer is never stated correctly)


def stated_answers(text: str) -> list[Statement]:
    """Every answer statement in ``text``, in order."""
    return [Statement((m.group("boxed") if m.group("boxed") is not None else m.group("value")).strip(),
                      m.start(), m.end()) for m in _STATEMENT.finditer(text)]


def first_correct_statement(text: str, answer: str) -> int | None:
    """The character offset just after the first statement of ``answer`` in ``text``; None if never stated."""
    for s in stated_answers(text):
        if answers_match(s.value, answer):
            return s.end
    return None


def thinking_ids(tokenizer, token_ids: list[int], think_end: str = THINK_END) -> list[int]:
    """The generated tokens before the end-of-thinking token (all of them if it never came)."""
    end = tokenizer.convert_tokens_to_ids(think_end)
    ids = list(token_ids)
    return ids[: ids.index(end)] if end in ids else ids


def overthinking(tokenizer, token_ids: list[int], answer: str, think_end: str = THINK_END) -> Overthinking:
    """Where in a generation's thinking (``Generation.token_ids``) the answer is first stated correctly.

    The statement ends at the first token whose decoded prefix covers it (found by bisection, so the
    tokenizer's own decoding decides and no per-token offsets are assumed)."""
    ids = thinking_ids(tokenizer, token_ids, think_end)
    n = len(ids)
    offset = first_correct_statement(tokenizer.decode(ids), answer) if n else None
    if offset is None:
        return Overthinking(n, None, None, None)
    lo, hi = 1, n  # the smallest k with len(decode(ids[:k])) >= offset
    while lo < hi:
        mid = (lo + hi) // 2
        if len(tokenizer.decode(ids[:mid])) >= offset:
            hi = mid
        else:
            lo = mid + 1
    return Overthinking(n, lo, n - lo, (n - lo) / n)


def overthinking_share(tokenizer, token_ids: list[int], answer: str, think_end: str = THINK_END) -> float | None:
    """The share of thinking tokens after the first correct statement of ``answer`` (None: never stated)."""
    return overthinking(tokenizer, token_ids, answer, think_end).share
