"""Command-line options and YAML config files, both generated from documented dataclasses.

Every setting is declared once, as a dataclass field with a type, a default and ``metadata={"help": ...}``
(TRL's pattern: one config dataclass per method). This module turns those fields into the options of a
typer command (``max_steps`` -> ``--max-steps``; a bool -> ``--flag/--no-flag``) and reads YAML files with
the same keys, checked against the same types, so the command line, the config files and the Python API
cannot drift apart. Precedence is click's ``default_map`` rule: command line > ``--config`` file > default.

Field metadata understood besides ``help``: ``argument`` (a positional argument, not an option),
``aliases`` (extra option names, e.g. ``--speed`` for ``--speeds``), ``panel`` (the --help section).
"""

from __future__ import annotations

import inspect
import types
import typing
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from ponder.errors import PonderError


@dataclass(frozen=True)
class Option:
    """One dataclass field seen as a command-line option and a config key."""

    name: str
    base: type  # int, float, str or bool (a list holds strings)
    optional: bool  # None is a valid value
    is_list: bool
    default: Any  # MISSING: required
    help: str
    panel: str
    argument: bool = False
    aliases: tuple[str, ...] = ()

    @property
    def required(self) -> bool:
        return self.default is MISSING

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def annotation(self):
        t = list[self.base] if self.is_list else self.base
        return Optional[t] if self.optional or self.is_list else t


def options_of(cls, panel: str, names: list[str] | None = None) -> list[Option]:
    """The fields of dataclass ``cls`` (only ``names``, in that order, when given) as options in ``panel``."""
    hints = typing.get_type_hints(cls)
    by_name = {f.name: f for f in fields(cls)}
    out = []
    for name in names if names is not None else list(by_name):
        f = by_name[name]
        base, optional, is_list = _unpack(hints[name], f"{cls.__name__}.{name}")
        default = f.default if f.default is not MISSING else (
            f.default_factory() if f.default_factory is not MISSING else MISSING)  # type: ignore[misc]
        meta = f.metadata
        out.append(Option(name, base, optional, is_list, default, meta.get("help", ""), meta.get("panel", panel),
                          meta.get("argument", False), tuple(meta.get("aliases", ()))))
    return out


def _unpack(hint, where: str) -> tuple[type, bool, bool]:
    """(base type, optional, is a list) of a field's type hint."""
    args = typing.get_args(hint)
    optional = False
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        optional, hint = len(rest) < len(args), rest[0]
        if len(rest) != 1:
            raise TypeError(f"{where}: only X | None unions are supported as options")
    if typing.get_origin(hint) is list:
        return str, optional, True
    if hint is Path:
        hint = str
    if hint not in (int, float, str, bool):
        raise TypeError(f"{where}: unsupported option type {hint}")
    return hint, optional, False


def build(cls, values: dict):
    """An instance of dataclass ``cls`` from a generated command's values (its own fields only): a command
    made of several dataclasses' options hands each its part."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in names})


# -- values from a config file -----------------------------------------------------------------------
def check_value(source: str, opt: Option, value):
    """``value`` (from YAML) as ``opt``'s type, or a one-line error naming the file and the key."""
    def bad(expected: str):
        return PonderError(f"{source}: key '{opt.name}': expected {expected}, got {value!r}")

    if value is None:
        if opt.optional or opt.is_list:
            return None
        raise bad(opt.base.__name__)
    if opt.is_list:
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in items):
            raise bad("a list of strings")
        return [str(v) for v in items]
    if opt.base is bool:
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if opt.base is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
        return value
    if opt.base is float:
        # PyYAML reads 1e-3 (no dot) as a string: YAML 1.1's rule, a classic trap, so numeric strings pass.
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise bad("a number") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("a number")
        return float(value)
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise bad("a string")
    return str(value)


def read_yaml(path) -> dict:
    """A config file as a mapping; a missing file or invalid YAML is one line naming the file."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise PonderError(f"--config: {path} does not exist") from None
    except (IsADirectoryError, UnicodeDecodeError, PermissionError) as e:
        raise PonderError(f"--config: cannot read {path} ({type(e).__name__})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise PonderError(f"{where}: invalid YAML ({problem})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PonderError(f"{path}: expected a mapping of option: value, got {type(data).__name__}")
    return data


def read_config(path, options: list[Option], fixed: dict | None = None) -> dict:
    """Checked values of a config file for ``options``. ``fixed``: keys the command already decides (a
    train command's ``method``); the file may repeat them but not contradict them."""
    data = read_yaml(path)
    known = {o.name: o for o in options}
    values = {}
    for key, value in data.items():
        if fixed and key in fixed:
            if value != fixed[key]:
                raise PonderError(f"{path}: key '{key}': the file says {value!r} but the command runs {fixed[key]!r}")
            continue
        if key not in known:
            hint = f"; did you mean '{key.replace('-', '_')}'?" if key.replace("-", "_") in known else ""
            raise PonderError(f"{path}: unknown key '{key}'{hint} (see --help for the options)")
        values[key] = check_value(str(path), known[key], value)
    return values


# -- a typer command from options --------------------------------------------------------------------
def add_command(app: typer.Typer, name: str, options: list[Option], run: Callable[..., Any], help: str,
                config: bool = True, fixed: dict | None = None, **command_kw) -> None:
    """Register ``run(**values)`` on ``app`` as command ``name`` with one option per ``Option``, and with
    ``--config FILE`` when ``config`` (keys checked against the same options; ``fixed`` as in read_config)."""
    params, annotations = [], {}
    if config:
        def load(ctx: typer.Context, value: Optional[Path]):
            if value is not None:
                ctx.default_map = {**(ctx.default_map or {}), **read_config(value, options, fixed)}
            return value

        params.append(inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[Path],
                                        default=typer.Option(None, "--config", is_eager=True, callback=load,
                                                             help="A YAML file of option: value (keys as the option "
                                                                  "names with _); the command line overrides it.")))
        annotations["config"] = Optional[Path]
    for o in options:
        default = ... if o.required else o.default
        if o.argument:
            info = typer.Argument(default, help=o.help)
        else:
            decls = [f"{o.flag}/--no-{o.flag[2:]}"] if o.base is bool else [o.flag, *o.aliases]
            info = typer.Option(default, *decls, help=o.help, rich_help_panel=o.panel)
        params.append(inspect.Parameter(o.name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=o.annotation()))
        annotations[o.name] = o.annotation()

    def command(**values):
        values.pop("config", None)
        return run(**values)

    command.__signature__ = inspect.Signature(params)
    command.__annotations__ = annotations
    command.__doc__ = help
    app.command(name, help=help, **command_kw)(command)
