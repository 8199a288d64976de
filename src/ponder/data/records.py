"""The reasoning record and the readers for the formats the field uses.

One record type serves every method: ``question``, ``steps`` (the reasoning, a list of strings) and
``answer``. Readers detect the format from the content; ``fmt`` overrides it:

* ``qsa-json``  — a JSON list of ``{"question", "steps", "answer"}`` (CoLaR / Coconut codebases);
* ``qsa-jsonl`` — the same objects, one per line;
* ``gsm8k``     — GSM8K's original JSONL: ``answer`` holds reasoning lines with ``<<expr=value>>``
  annotations and a final ``#### N``;
* ``icot``      — the iCoT / GSM8K-Aug text format, ``question||step step ... #### answer``.

Every problem raises :class:`~ponder.errors.DataError` naming the file and line.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

from ponder.errors import DataError

FORMATS = ("qsa-json", "qsa-jsonl", "gsm8k", "icot")
STEP_MODES = ("lines", "equations")
_EQUATION = re.compile(r"<<[^<>]*>>")
_THOUSANDS = re.compile(r"^[-+]?\$?\d{1,3}(,\d{3})+(\.\d*)?$")


def final_answer(text: str) -> str:
    """A final answer as every reader keeps it: stripped, and a number written with thousands separators
    without them (``11,160`` -> ``11160``); any other text as it is (``1,2`` or ``a, b`` keep their commas)."""
    text = text.strip()
    return text.replace(",", "") if _THOUSANDS.match(text) else text


@dataclass
class Record:
    question: str
    steps: list[str] = field(default_factory=list)
    answer: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def _check(path, line, obj, fmt) -> Record:
    """Validate one qsa object into a Record, naming the first problem found."""
    if not isinstance(obj, dict):
        raise DataError(path, line, f"expected a JSON object, got {type(obj).__name__}")
    for key in ("question", "steps", "answer"):
        if key not in obj:
            raise DataError(path, line, f"missing field '{key}'")
    q, steps, a = obj["question"], obj["steps"], obj["answer"]
    if isinstance(a, (int, float)) and not isinstance(a, bool):
        a = str(a)
    if not isinstance(q, str) or not q.strip():
        raise DataError(path, line, "field 'question' must be a non-empty string")
    if not isinstance(steps, list) or not all(isinstance(s, str) for s in steps):
        raise DataError(path, line, "field 'steps' must be a list of strings")
    if not isinstance(a, str) or not a.strip():
        raise DataError(path, line, "field 'answer' must be a non-empty string")
    return Record(q.strip(), [s.strip() for s in steps if s.strip()], final_answer(a))


def _json(path, line, text):
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(path, line if line is not None else e.lineno, f"invalid JSON: {e.msg}") from None


def _read_qsa_json(path, text, steps_mode):
    data = _json(path, None, text)
    if not isinstance(data, list):
        raise DataError(path, 1, "qsa-json must be a JSON list of objects")
    return [_check(path, line, obj, "qsa-json") for line, obj in zip(_list_item_lines(text), data)]


def _list_item_lines(text: str) -> list[int]:
    """The line each item of a (valid) top-level JSON list starts on, so errors point at the record."""
    decoder, lines, skip = json.JSONDecoder(), [], re.compile(r"[\s,]*")
    i = text.index("[") + 1
    while True:
        i = skip.match(text, i).end()
        if i >= len(text) or text[i] == "]":
            return lines
        lines.append(text.count("\n", 0, i) + 1)
        _, i = decoder.raw_decode(text, i)


def _jsonl_objects(path, text):
    for n, raw in enumerate(text.splitlines(), start=1):
        if raw.strip():
            yield n, _json(path, n, raw)


def _read_qsa_jsonl(path, text, steps_mode):
    return [_check(path, n, obj, "qsa-jsonl") for n, obj in _jsonl_objects(path, text)]


def _gsm8k_steps(reasoning: str, steps_mode: str) -> list[str]:
    lines = [ln.strip() for ln in reasoning.splitlines() if ln.strip()]
    if steps_mode == "equations":
        return [eq for ln in lines for eq in _EQUATION.findall(ln)]
    return lines


def _split_final(path, line, text, what):
    if "####" not in text:
        raise DataError(path, line, f"{what} has no final '#### answer'")
    reasoning, _, answer = text.rpartition("####")
    answer = answer.strip()
    if not answer:
        raise DataError(path, line, "empty answer after '####'")
    return reasoning, answer


def _read_gsm8k(path, text, steps_mode):
    out = []
    for n, obj in _jsonl_objects(path, text):
        if not isinstance(obj, dict):
            raise DataError(path, n, f"expected a JSON object, got {type(obj).__name__}")
        for key in ("question", "answer"):
            if not isinstance(obj.get(key), str):
                raise DataError(path, n, f"missing or non-string field '{key}'")
        if not obj["question"].strip():
            raise DataError(path, n, "field 'question' must be a non-empty string")
        reasoning, answer = _split_final(path, n, obj["answer"], "field 'answer'")
        out.append(Record(obj["question"].strip(), _gsm8k_steps(reasoning, steps_mode), final_answer(answer)))
    return out


def _read_icot(path, text, steps_mode):
    out = []
    for n, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        if "||" not in raw:
            raise DataError(path, n, "expected 'question||steps #### answer' (no '||' found)")
        question, _, rest = raw.partition("||")
        if not question.strip():
            raise DataError(path, n, "empty question before '||'")
        reasoning, answer = _split_final(path, n, rest, "line")
        reasoning = reasoning.strip()
        # GSM8K-Aug reasoning is a run of <<...>> equations: one step each. Other iCoT data (e.g. the
        # multiplication sets) has no step boundaries; the whole reasoning is then one step.
        steps = _EQUATION.findall(reasoning) or ([reasoning] if reasoning else [])
        out.append(Record(question.strip(), steps, final_answer(answer)))
    return out


_READERS = {"qsa-json": _read_qsa_json, "qsa-jsonl": _read_qsa_jsonl, "gsm8k": _read_gsm8k, "icot": _read_icot}


def detect_format(path, text: str) -> str:
    """Guess the format from the content (not the file name)."""
    head = text.lstrip()
    if not head:
        raise DataError(path, None, "file is empty")
    if head[0] == "[":
        return "qsa-json"
    first_line = next(ln for ln in text.splitlines() if ln.strip())
    if head[0] == "{":
        try:
            obj = json.loads(first_line)
        except json.JSONDecodeError:
            return "qsa-jsonl"  # the reader then names the line that is not JSON
        if isinstance(obj, dict) and "steps" not in obj and isinstance(obj.get("answer"), str):
            return "gsm8k"  # the reader then names a line whose answer lacks '####'

        return "qsa-jsonl"
    if "||" in first_line:
        return "icot"
    line = text[: text.find(first_line)].count("\n") + 1
    raise DataError(path, line, "cannot detect the format (expected JSON, JSONL or 'question||steps #### answer'); pass --format")


def read_records(path, fmt: str | None = None, steps: str | None = "lines") -> list[Record]:
    """Read reasoning records from ``path``; ``fmt`` None or ``"auto"`` detects the format. ``steps`` (None:
    ``lines``) is how GSM8K's reasoning splits: its lines, or only their ``<<...>>`` equations."""
    path = Path(path)
    steps = steps or "lines"
    if fmt not in (None, "auto") and fmt not in FORMATS:
        raise DataError(path, None, f"unknown format '{fmt}' (choose from {', '.join(FORMATS)})")
    if steps not in STEP_MODES:
        raise DataError(path, None, f"unknown steps mode '{steps}' (choose from {', '.join(STEP_MODES)})")
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: files saved with a BOM read too
    except FileNotFoundError:
        raise DataError(path, None, "no such file") from None
    except IsADirectoryError:
        raise DataError(path, None, "is a directory, expected a data file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(path, None, f"cannot read: {e}") from None
    fmt = detect_format(path, text) if fmt in (None, "auto") else fmt
    records = _READERS[fmt](path, text, steps)
    if not records:
        raise DataError(path, None, "no records found")
    return records


def resolve_split(path, split: str) -> Path:
    """A data argument is a file, or a directory made by ``ponder data make`` holding ``{split}.jsonl``."""
    path = Path(path)
    if path.is_dir():
        candidate = path / f"{split}.jsonl"
        if not candidate.exists():
            raise DataError(path, None, f"directory has no {split}.jsonl")
        return candidate
    return path


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename, so readers
    see the old file or the new one, never half of it. On failure nothing is left behind."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp" + path.suffix)
    except OSError as e:
        raise DataError(path.parent, None, f"cannot write here: {e.strerror}") from None
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; keep the user's usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_jsonl(records: Iterable[Record], path) -> None:
    """Write records as qsa JSONL (atomically)."""
    lines = [json.dumps(r.to_dict(), ensure_ascii=False) for r in records]
    atomic_write_text(path, "\n".join(lines) + "\n")
