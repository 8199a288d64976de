"""Data through `datasets`: a dataset saved to disk and a parquet file with other field names train
`cot` end to end with a field mapping; a hub id with the hub offline, a bad mapping and a bad row are one
line naming the id, the field or the row."""

from __future__ import annotations

import pytest

from ponder.data.hub import FieldMap, answer_of, load_records, steps_of
from ponder.data.tasks import make_splits
from ponder.errors import DataError

from test_cli_errors import assert_one_line_error, run_cli


def _rows(n=64):
    records = make_splits("running-sum", n_train=n, n_val=0, n_test=0, seed=5, difficulty=3)["train"]
    # Other names, steps as one string, GSM8K-style answers: what a user's own data looks like.
    return {"prompt": [r.question for r in records], "reasoning": ["\n".join(r.steps) for r in records],
            "target": [f"so #### {r.answer}" for r in records]}, records


MAPPING = ["--question-field", "prompt", "--steps-field", "reasoning", "--answer-field", "target"]


def test_steps_and_answer_rules():
    assert steps_of("<<3+4=7>> <<7*2=14>>") == ["<<3+4=7>>", "<<7*2=14>>"]
    assert steps_of("first\n\n second \n") == ["first", "second"]
    assert steps_of(["a", " ", "b"]) == ["a", "b"] and steps_of(None) == []
    assert answer_of("Natalia sold 72 clips.\n#### 72") == "72" and answer_of(12) == "12"


def test_saved_dataset_trains_cot_through_a_field_mapping(capsys, tmp_path):
    from datasets import Dataset, DatasetDict

    columns, records = _rows()
    DatasetDict({"train": Dataset.from_dict(columns), "test": Dataset.from_dict(columns)}).save_to_disk(tmp_path / "ds")
    view = load_records(tmp_path / "ds", "train", FieldMap("prompt", "reasoning", "target"))
    assert not isinstance(view, list) and len(view) == len(records)
    assert view[0] == records[0] and view[-1] == records[-1]  # the mapping gives back the original records
    code, _, err = run_cli(capsys, "train", "cot", "--data", tmp_path / "ds", *MAPPING, "--init", "tiny",
                           "--out", tmp_path / "m", "--max-steps", "2", "--batch-size", "8")
    assert code == 0, err
    code, out, err = run_cli(capsys, "eval", "--model", tmp_path / "m", "--data", tmp_path / "ds", *MAPPING, "--n", "4",
                             "--max-new-tokens", "4")
    assert code == 0, err


def test_parquet_with_other_field_names_trains_cot(capsys, tmp_path):
    from datasets import Dataset

    columns, _ = _rows()
    Dataset.from_dict(columns).to_parquet(tmp_path / "d.parquet")
    code, _, err = run_cli(capsys, "train", "cot", "--data", tmp_path / "d.parquet", *MAPPING, "--init", "tiny",
                           "--out", tmp_path / "m", "--max-steps", "2", "--batch-size", "8")
    assert code == 0, err
    import yaml

    saved = yaml.safe_load((tmp_path / "m" / "train_config.yaml").read_text())
    assert (saved["question_field"], saved["steps_field"], saved["answer_field"]) == ("prompt", "reasoning", "target")


def test_bad_mapping_names_the_field_and_a_bad_row_its_row(capsys, tmp_path):
    from datasets import Dataset

    columns, _ = _rows(8)
    Dataset.from_dict(columns).to_parquet(tmp_path / "d.parquet")
    code, _, err = run_cli(capsys, "train", "cot", "--data", tmp_path / "d.parquet", "--init", "tiny",
                           "--out", tmp_path / "m")
    assert_one_line_error(code, err, "d.parquet", "field 'question' is not a column", "--question-field")
    columns["target"][5] = ""
    Dataset.from_dict(columns).to_parquet(tmp_path / "e.parquet")
    with pytest.raises(DataError, match="row 5: field 'target' is empty"):
        load_records(tmp_path / "e.parquet", "train", FieldMap("prompt", "reasoning", "target"))
    assert not (tmp_path / "m").exists()


def test_hub_dataset_id_offline_is_one_line_naming_it(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    code, _, err = run_cli(capsys, "train", "cot", "--data", "nobody/no-such-dataset", "--init", "tiny",
                           "--out", tmp_path / "m")
    assert_one_line_error(code, err, "nobody/no-such-dataset", "cannot load dataset")


def test_format_is_for_ponder_readers_only(capsys, tmp_path):
    from datasets import Dataset

    columns, _ = _rows(8)
    Dataset.from_dict(columns).to_parquet(tmp_path / "d.parquet")
    code, _, err = run_cli(capsys, "train", "cot", "--data", tmp_path / "d.parquet", *MAPPING, "--format", "icot",
                           "--init", "tiny", "--out", tmp_path / "m")
    assert_one_line_error(code, err, "--format icot")


def _hub_env(tmp_path, offline=True):
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_HUB_CACHE=str(tmp_path / "hf" / "hub"))
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    return env


def _ponder(env, *argv):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "ponder.cli", *map(str, argv)], capture_output=True, text=True,
                          env=env, timeout=300)


def test_model_hub_id_offline_is_one_line_naming_it(tmp_path, rs_dir):
    r = _ponder(_hub_env(tmp_path), "train", "cot", "--data", rs_dir, "--init", "nobody/no-such-model",
                "--out", tmp_path / "m")
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("error: nobody/no-such-model: not a local directory") and "--local-dir" in r.stderr
    assert not (tmp_path / "m").exists()


def test_hub_snapshot_in_the_cache_loads_by_id(tmp_path, rs_dir, reasoner_dir):
    """A model in the Hugging Face cache layout (models--org--name/snapshots/<commit>, refs/main) is found
    by its hub id with the hub offline, by `--init` (training) and `--model` (asking)."""
    import shutil

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hf" / "hub" / "models--someone--tiny-qwen3"
    shutil.copytree(reasoner_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    env = _hub_env(tmp_path)
    r = _ponder(env, "train", "cot", "--data", rs_dir, "--init", "someone/tiny-qwen3", "--out", tmp_path / "m",
                "--max-steps", "1", "--batch-size", "4")
    assert r.returncode == 0, r.stderr
    r = _ponder(env, "ask", "3 4", "--model", "someone/tiny-qwen3", "--max-new-tokens", "4")
    assert r.returncode == 0 and "answer" in r.stdout, r.stderr
