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


# -- scoring rules of the field's harnesses (`ponder eval --scoring`) -------------------------------------
# ponder            : the decoder's extracted answer against the reference by ``answers_match`` above.
# lm-eval-strict    : lm-evaluation-harness GSM8K "strict-match": the first ``#### N`` in the generated text;
# lm-eval-flexible  : its "flexible-extract": the last number-like run in the generated text; both then
#                     compare as that harness's exact_match does (see ``lm_eval_normalise``).
# boxed             : the last ``\boxed{...}`` (nested braces; ``\fbox{...}`` too) of the generated text,
#                     compared by ``answers_match`` after light LaTeX clean-up (``\frac{1}{2}`` equals 0.5).
SCORINGS = ("ponder", "lm-eval-strict", "lm-eval-flexible", "boxed")

_LM_EVAL_STRICT = re.compile(r"#### (\-?[0-9\.\,]+)")
_LM_EVAL_FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
# gsm8k.yaml's exact_match: regexes_to_ignore [",", "\$", "(?s).*#### ", "\.$"], then ignore_case.
_LM_EVAL_IGNORE = [re.compile(p) for p in (r",", r"\$", r"(?s).*#### ", r"\.$")]


def check_scoring(scoring: str) -> str:
    if scoring not in SCORINGS:
        from ponder.errors import PonderError

        raise PonderError(f"--scoring must be one of {', '.join(SCORINGS)}, got '{scoring}'")
    return scoring


def lm_eval_normalise(text: str) -> str:
    for pattern in _LM_EVAL_IGNORE:
        text = pattern.sub("", text)
    return text.lower()


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` / ``\\fbox{...}`` (braces nested to any depth), or of a
    ``\\boxed 5`` written without braces; None when there is none or its braces never close."""
    starts = [m for m in re.finditer(r"\\(?:boxed|fbox)\s*(\{)|\\boxed (\S+)", text)]
    if not starts:
        return None
    m = starts[-1]
    if m.group(2) is not None:
        return m.group(2).rstrip("$.")
    depth, i = 0, m.start(1)
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1:j].strip()
    return None


_FRAC = re.compile(r"^\\[dt]?frac\{(-?[\d.]+)\}\{(-?[\d.]+)\}$|^(-?[\d.]+)/(-?[\d.]+)$")


def _latex_value(text: str) -> str:
    """Light clean-up of a boxed answer: spacing commands, ``\\left`` / ``\\right``, ``\\text{...}``; a fraction of
    two numbers becomes its value, so ``\\frac{1}{2}`` matches ``0.5`` and ``1/2``."""
    t = re.sub(r"\\[,!;: ]|\\left|\\right", "", text)
    t = re.sub(r"\\(?:text|mathrm|textbf)\{([^{}]*)\}", r"\1", t).replace("\\%", "%").replace("\\$", "$").strip()
    m = _FRAC.match(t.replace(" ", ""))
    if m:
        a, b = (as_number(g) for g in (m.group(1) or m.group(3), m.group(2) or m.group(4)))
        if a is not None and b:
            return repr(a / b)
    return t


def extract_answer(scoring: str, text: str | None) -> str | None:
    """What rule ``scoring`` reads as the answer in a generated text (None: nothing it accepts)."""
    if not isinstance(text, str):
        return None
    if scoring == "lm-eval-strict":
        found = _LM_EVAL_STRICT.findall(text)
        return found[0].strip() if found else None
    if scoring == "lm-eval-flexible":
        found = _LM_EVAL_FLEXIBLE.findall(text)
        if not found:
            return None
        groups = [g for g in found[-1] if g]
        return groups[0].strip() if groups else None
    if scoring == "boxed":
        return last_boxed(text)
    raise ValueError(f"no extraction for scoring '{scoring}'")


def score_answer(scoring: str, answer: str | None, text: str | None, reference: str) -> bool:
    """Is a generation right under rule ``scoring``? ``answer``: the decoder's extracted answer (rule
    ``ponder``); ``text``: everything it generated after the prompt (the harness rules read that)."""
    if scoring == "ponder":
        return answers_match(answer, reference)
    found = extract_answer(scoring, text)
    if found is None:
        return False
    if scoring == "boxed":
        ref = last_boxed(reference) or reference
        return answers_match(_latex_value(found), _latex_value(ref))
    return lm_eval_normalise(found) == lm_eval_normalise(reference.strip())
