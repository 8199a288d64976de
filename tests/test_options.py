"""One source of truth: the config dataclasses generate the command-line options and the YAML keys.

Checks that every field is reachable from both with the same default, that nothing else is declared,
that command line > file > default, that a saved run's config repeats it bit for bit, that bad config
files are one line naming the file and key, and that every recipe in recipes/ resolves (no training)."""

from __future__ import annotations

from dataclasses import MISSING, fields
from pathlib import Path

import pytest
import typer
import yaml

from ponder.arguments import AskArguments, DataArguments, EvalArguments, ExitConfig, ModelArguments, TrainArguments
from ponder.cli import app, main, train_options
from ponder.methods.train import METHODS, check_options, method_classes, method_options
from ponder.options import read_config

from test_cli_errors import assert_one_line_error, run_cli

ROOT = Path(__file__).resolve().parent.parent


def _default(f):
    return f.default_factory() if f.default is MISSING and f.default_factory is not MISSING else f.default


def _train_command(method):
    from ponder.cli import _train_app

    return typer.main.get_command(_train_app(method))


@pytest.mark.parametrize("method", list(METHODS))
def test_every_train_field_is_an_option_and_a_key_with_the_same_default(method, tmp_path):
    params = {p.name: p for p in _train_command(method).params if p.name not in ("config", "help")}
    expected = [f.name for c in (DataArguments, TrainArguments) for f in fields(c)] + method_options(method)
    assert sorted(params) == sorted(expected)  # each field once, and no option that is not a field
    defaults = {f.name: _default(f) for c in (DataArguments, TrainArguments) for f in fields(c)}
    defaults.update({f.name: _default(f) for f in fields(method_classes(method)[0]) if f.name in method_options(method)})
    for name, default in defaults.items():
        if default is not MISSING:
            assert params[name].default == default, (method, name)
    # The same keys, with those defaults, read back from YAML unchanged.
    given = {k: v for k, v in defaults.items() if v is not MISSING}
    path = tmp_path / "all.yaml"
    path.write_text(yaml.safe_dump({"method": method, **given}))
    assert read_config(path, train_options(method), fixed={"method": method}) == given


def test_train_help_lists_only_the_methods_options(capsys):
    code, out, _ = run_cli(capsys, "train", "cot", "--help")
    assert code == 0 and "--max-steps" in out and "--lora-r" in out
    assert "--group-size" not in out and "--max-compression" not in out and "--num-thoughts" not in out
    code, out, _ = run_cli(capsys, "train", "colar-rl", "--help")
    assert code == 0 and "--group-size" in out and "--lora-r" in out
    code, out, _ = run_cli(capsys, "train", "--help")
    assert code == 0 and "colar-rl" in out and "--group-size" not in out


@pytest.mark.parametrize("name, classes", [("eval", (EvalArguments, DataArguments, ModelArguments, ExitConfig)),
                                           ("ask", (AskArguments, ModelArguments, ExitConfig))])
def test_eval_and_ask_options_are_their_dataclass_fields(name, classes):
    params = {p.name: p for p in typer.main.get_command(app).commands[name].params if p.name not in ("config", "help")}
    assert sorted(params) == sorted(f.name for c in classes for f in fields(c))
    for f in (f for c in classes for f in fields(c)):
        if f.default is not MISSING:
            assert params[f.name].default == f.default, f.name


def _weights(d):
    return (Path(d) / "model.safetensors").read_bytes()


def test_recipe_reproduces_the_flag_run_and_a_saved_config_repeats_it(capsys, tmp_path, rs_dir):
    """The quickstart's CoT recipe (budget cut by the command line) gives the same bytes as the same run
    from flags; the model's saved train_config.yaml, fed back with --config, trains the same bytes again."""
    recipe = ROOT / "recipes" / "cpu" / "quickstart-cot.yaml"
    small = ["--data", rs_dir, "--max-steps", "3", "--batch-size", "8"]
    assert run_cli(capsys, "train", "--config", recipe, *small, "--out", tmp_path / "a")[0] == 0
    flags = yaml.safe_load(recipe.read_text())
    assert run_cli(capsys, "train", "--method", "cot", "--init", flags["init"], "--lr", flags["lr"], "--seed",
                   flags["seed"], *small, "--out", tmp_path / "b")[0] == 0
    assert _weights(tmp_path / "a") == _weights(tmp_path / "b")
    saved = tmp_path / "a" / "train_config.yaml"
    assert run_cli(capsys, "train", "--config", saved, "--out", tmp_path / "c")[0] == 0
    assert _weights(tmp_path / "a") == _weights(tmp_path / "c")
    config = yaml.safe_load(saved.read_text())
    assert config["method"] == "cot" and config["max_steps"] == 3 and config["lr"] == flags["lr"]


def test_command_line_beats_file_beats_default(capsys, tmp_path, rs_dir):
    path = tmp_path / "r.yaml"
    path.write_text(f"method: cot\ndata: {rs_dir}\ninit: tiny\nmax_steps: 5\nlr: 1e-3\nbatch_size: 8\n")
    assert run_cli(capsys, "train", "--config", path, "--max-steps", "2", "--out", tmp_path / "m")[0] == 0
    config = yaml.safe_load((tmp_path / "m" / "train_config.yaml").read_text())
    assert (config["max_steps"], config["lr"], config["batch_size"], config["warmup"]) == (2, 1e-3, 8, 0.05)


@pytest.mark.parametrize("text, needles", [
    ("method: cot\ndata: d\ninit: tiny\nout: o\nbogus: 1\n", ["r.yaml", "unknown key 'bogus'"]),
    ("method: cot\ndata: d\ninit: tiny\nout: o\nmax_steps: lots\n", ["r.yaml", "'max_steps'", "integer"]),
    ("method: cot\ndata: d\ninit: tiny\nout: o\nresume: 1\n", ["r.yaml", "'resume'", "true or false"]),
    ("method: cot\ndata: d\ninit: tiny\nout: o\nlr: fast\n", ["r.yaml", "'lr'", "a number"]),
    ("method: colar\ndata: d\ninit: tiny\nout: o\nnum_thoughts: 3\n", ["r.yaml", "unknown key 'num_thoughts'"]),
    ("method: cot\ndata: [d\n", ["r.yaml:", "invalid YAML"]),
    ("- cot\n", ["r.yaml", "expected a mapping"]),
    ("data: d\n", ["r.yaml", "no 'method' key"]),
    ("method: sft\n", ["r.yaml", "key 'method'", "'sft'"]),
])
def test_bad_config_file_is_one_line_naming_file_and_key(capsys, tmp_path, text, needles):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    code, _, err = run_cli(capsys, "train", "--config", path)
    assert_one_line_error(code, err, *needles)
    assert not (tmp_path / "o").exists()


def test_missing_config_file_and_eval_config(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", "cot", "--config", tmp_path / "nope.yaml")
    assert_one_line_error(code, err, "nope.yaml", "does not exist")
    path = tmp_path / "e.yaml"
    path.write_text("model: m\ndata: d\nspeeds: 2\nbatch_size: two\n")
    code, _, err = run_cli(capsys, "eval", "--config", path)
    assert_one_line_error(code, err, "e.yaml", "'batch_size'", "integer")


def test_config_method_must_agree_with_the_command(capsys, tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("method: colar\n")
    code, _, err = run_cli(capsys, "train", "cot", "--config", path)
    assert_one_line_error(code, err, "r.yaml", "'colar'", "'cot'")


def test_yaml_1_1_exponent_without_a_dot_is_a_float(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("lr: 1e-3\n")  # PyYAML reads this as the string '1e-3'
    assert read_config(path, train_options("cot")) == {"lr": 1e-3}


RECIPES = sorted((ROOT / "recipes").rglob("*.yaml"))


def test_there_are_recipes_for_the_quickstart_and_the_papers():
    names = {p.relative_to(ROOT / "recipes").as_posix() for p in RECIPES}
    assert {"cpu/quickstart-cot.yaml", "cpu/quickstart-nocot.yaml", "cpu/quickstart-colar.yaml"} <= names
    assert sum(n.startswith("paper/") for n in names) >= 5


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_recipe_resolves_to_a_valid_config(path):
    """Dry run: the keys and types are checked, then the method's config dataclass is built (no training)."""
    method = yaml.safe_load(path.read_text())["method"]
    values = read_config(path, train_options(method), fixed={"method": method})
    run, data, config = check_options(method, **values)
    assert data.data and run.init and run.out and config.method == method


def test_quickstart_recipes_are_the_quickstart_budgets():
    from ponder.quickstart import TRAIN

    for method, budget in TRAIN.items():
        recipe = yaml.safe_load((ROOT / "recipes" / "cpu" / f"quickstart-{method}.yaml").read_text())
        assert {k: recipe[k] for k in budget} == budget, method
        assert recipe["seed"] == 0


def test_python_api_rejects_an_option_of_another_method(tmp_path, rs_dir):
    from ponder.errors import PonderError
    from ponder.methods.train import train

    with pytest.raises(PonderError, match="unknown option.*num_thoughts"):
        train("colar", rs_dir, "tiny", tmp_path / "m", num_thoughts=3)
    assert not (tmp_path / "m").exists()


def test_main_entry_accepts_old_method_spelling(capsys):
    code, out, _ = run_cli(capsys, "train", "--method", "codi", "--help")
    assert code == 0 and "--num-thoughts" in out
    assert main is not None


def test_bench_default_methods_are_every_method():
    from ponder.arguments import BenchArguments
    from ponder.bench import ALL_METHODS

    assert BenchArguments(task="t", out="o").methods == ",".join(ALL_METHODS)
