"""Reasoning records through Hugging Face ``datasets``: a hub dataset id, a dataset saved with
``save_to_disk``, or a parquet / arrow / CSV / JSON(L) file, with any field names.

    --data zen-E/GSM8k-Aug --split train --steps-field cot      # a hub dataset (CODI's GSM8K-Aug)
    --data my.parquet --question-field prompt --answer-field target

A field mapping names the question, steps and answer columns. Steps may be a list of strings or one
string, split by one rule: the ``<<...>>`` equations when it holds any (GSM8K-Aug's ``cot`` field), else
its non-empty lines. An answer written GSM8K-style (``... #### 42``) keeps what follows ``####``.

The rows stay in the memory-mapped Arrow table and become ``Record`` objects only when read
(``RecordView``), so a large set is not copied into Python lists; the mapping is checked up front on the
columns, and the first bad row is named.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ponder.data.records import Record, final_answer
from ponder.errors import DataError, PonderError

_EQUATION = re.compile(r"<<[^<>]*>>")
FILE_BUILDERS = {".parquet": "parquet", ".arrow": "arrow", ".csv": "csv", ".json": "json", ".jsonl": "json"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class FieldMap:
    question: str = "question"
    steps: str | None = "steps"  # None: the data has no reasoning (No-CoT data, or evaluation only)
    answer: str = "answer"


def is_saved_dataset(path: Path) -> bool:
    """A directory written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``."""
    return path.is_dir() and ((path / "state.json").is_file() or (path / "dataset_dict.json").is_file())


def wants_datasets(source, fields: FieldMap) -> bool:
    """Whether ``source`` is read through ``datasets`` rather than ponder's own readers: a saved dataset,
    a parquet / arrow / CSV file, a hub id (not a local path), or a JSON(L) file with a field mapping."""
    path = Path(str(source))
    if is_saved_dataset(path):
        return True
    if path.suffix in (".parquet", ".arrow", ".csv"):
        return True
    if path.suffix in (".json", ".jsonl") and fields != FieldMap():
        return True
    return not path.exists() and bool(_HUB_ID.match(str(source)))


def steps_of(value, mode: str | None = None) -> list[str]:
    """A steps field as a list of strings: a list as it is, a string split by the rule in the docstring
    (``mode`` 'lines' or 'equations' forces one way: ``--steps``)."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(s).strip() for s in value if str(s).strip()]
    text = str(value)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if mode == "lines":
        return lines
    return _EQUATION.findall(text) or ([] if mode == "equations" else lines)


def answer_of(value) -> str:
    text = str(value).strip() if value is not None else ""
    return final_answer(text.rpartition("####")[2] if "####" in text else text)


class RecordView(Sequence):
    """The rows of a ``datasets.Dataset`` as ``Record`` objects, made when read."""

    def __init__(self, dataset, fields: FieldMap, source: str, steps_mode: str | None = None):
        self.dataset, self.fields, self.source, self.steps_mode = dataset, fields, source, steps_mode

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return self._record(i, self.dataset[i])

    def _record(self, i: int, row: dict) -> Record:
        f = self.fields
        question, answer = row[f.question], answer_of(row[f.answer])
        if not isinstance(question, str) or not question.strip():
            raise DataError(self.source, None, f"row {i}: field '{f.question}' must be a non-empty string")
        if not answer:
            raise DataError(self.source, None, f"row {i}: field '{f.answer}' is empty")
        return Record(question.strip(), steps_of(row[f.steps], self.steps_mode) if f.steps else [], answer)


def load_records(source, split: str, fields: FieldMap = FieldMap(), subset: str | None = None,
                 revision: str | None = None, steps_mode: str | None = None) -> RecordView:
    """Records from a hub id, a saved dataset or a data file, checked against the field mapping."""
    try:
        import datasets
    except ImportError:
        raise PonderError("reading this data needs the datasets package: pip install datasets") from None
    from huggingface_hub.utils import logging as hub_logging

    # Our own one-line error says what failed; the libraries' warnings and bars would only precede it.
    datasets.logging.set_verbosity_error()
    hub_logging.set_verbosity_error()
    datasets.disable_progress_bars()
    path, name = Path(str(source)), str(source)
    try:
        if is_saved_dataset(path):
            data = datasets.load_from_disk(str(path))
        elif path.suffix in FILE_BUILDERS and path.exists():
            data = datasets.load_dataset(FILE_BUILDERS[path.suffix], data_files={split: str(path)}, split=split)
        elif path.exists():
            raise DataError(path, None, "expected a data file (JSON/JSONL, parquet, arrow, CSV, iCoT text) or a "
                                        "dataset saved with save_to_disk")
        else:
            data = datasets.load_dataset(name, subset, split=split, revision=revision)
    except (FileNotFoundError, ConnectionError, OSError, ValueError) as e:
        if isinstance(e, DataError):
            raise
        hint = "" if path.exists() else (" (no local file or directory of that name either: with the hub unreachable, "
                                          "download it and pass the folder or a file)")
        raise DataError(name, None, f"cannot load dataset: {str(e).splitlines()[0] if str(e) else type(e).__name__}{hint}") from None
    if isinstance(data, datasets.DatasetDict):
        if split not in data:
            raise DataError(name, None, f"no split '{split}' (splits: {', '.join(data)}); pass --split")
        data = data[split]
    missing = [(opt, col) for opt, col in (("--question-field", fields.question), ("--steps-field", fields.steps),
                                           ("--answer-field", fields.answer)) if col and col not in data.column_names]
    if missing:
        opt, col = missing[0]
        raise DataError(name, None, f"field '{col}' is not a column (columns: {', '.join(data.column_names)}); "
                                    f"pass {opt}")
    if len(data) == 0:
        raise DataError(name, None, "no records found")
    view = RecordView(data, fields, name, steps_mode)
    _check_columns(view)
    return view


def _check_columns(view: RecordView) -> None:
    """Name the first bad row without building every Record: whole columns are scanned from Arrow."""
    f, data = view.fields, view.dataset
    for i, q in enumerate(data[f.question]):
        if not isinstance(q, str) or not q.strip():
            raise DataError(view.source, None, f"row {i}: field '{f.question}' must be a non-empty string")
    for i, a in enumerate(data[f.answer]):
        if not answer_of(a):
            raise DataError(view.source, None, f"row {i}: field '{f.answer}' is empty")
    if f.steps:
        for i, s in enumerate(data[f.steps]):
            if not (s is None or isinstance(s, str) or (isinstance(s, list) and all(isinstance(x, str) for x in s))):
                raise DataError(view.source, None, f"row {i}: field '{f.steps}' must be a string or a list of "
                                                   f"strings, got {type(s).__name__}")


def read_split(args, split: str):
    """The records behind ``--data`` (a ``DataArguments``): ponder's own readers for its formats and
    ``ponder data make`` folders, ``datasets`` for everything else (see ``wants_datasets``)."""
    from ponder.data.records import STEP_MODES, read_records, resolve_split

    steps = getattr(args, "steps", None)
    if steps is not None and steps not in STEP_MODES:
        raise PonderError(f"--steps must be one of {', '.join(STEP_MODES)}, got '{steps}'")
    fields = FieldMap(args.question_field, args.steps_field or None, args.answer_field)
    if wants_datasets(args.data, fields):
        if args.format is not None:
            raise PonderError(f"--format {args.format} is for ponder's own readers; {args.data} is read with datasets")
        return load_records(args.data, split, fields, subset=args.subset, revision=args.data_revision, steps_mode=steps)
    return read_records(resolve_split(args.data, split), fmt=args.format, steps=steps)
