"""Is a predicted answer right? Numbers compare as numbers, text after normalising case and spaces.

``7``, ``7.0`` and `` 7`` match; ``1,000`` equals ``1000``; ``$5`` and ``5.`` match ``5``. Never raises:
a malformed answer is simply wrong (RL rewards rely on that).
"""

from __future__ import annotations

import math
import re

_NUMBER = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$")


def as_number(text: str) -> float | None:
    t = text.strip().replace(",", "").removeprefix("$").rstrip(".").strip()
    if t.endswith("%"):
        t = t[:-1]
    if not _NUMBER.match(t):
        return None
    try:
        value = float(t)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def normalise_text(text: str) -> str:
    return " ".join(text.lower().split()).rstrip(".")


def answers_match(predicted: str | None, reference: str) -> bool:
    if not isinstance(predicted, str) or not predicted.strip():
        return False
    a, b = as_number(predicted), as_number(reference)
    if a is not None and b is not None:
        if a.is_integer() and b.is_integer():
            return a == b
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)
    return normalise_text(predicted) == normalise_text(reference)


def answer_key(answer: str | None):
    """What majority voting counts as one answer: the number's value, or the normalised text (None if empty)."""
    if not isinstance(answer, str) or not answer.strip():
        return None
    value = as_number(answer)
    return value if value is not None else normalise_text(answer)


def answer_type(answer: str) -> str:
    value = as_number(answer)
    if value is None:
        return "text"
    return "integer" if float(value).is_integer() and "." not in answer else "number"
