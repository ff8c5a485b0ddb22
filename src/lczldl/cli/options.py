"""Owns how the command line meets the config and the library's names:

- :func:`resolve`: a command's typed options and a config file -> the resolved config. Each option
  names its config key and its flag; options left at None (not typed) fall back to the file, then
  to the defaults, through :func:`lczldl.config.load_config` (the one resolver). The command
  passes the resolved config down; nothing below resolves it again.
- :func:`config_default` / :func:`config_choices`: help texts show a config key's default
  (``[config: 300]``) and allowed values as read from the pydantic models of
  :mod:`lczldl.config`, the one place they are declared; :func:`regime_choices` lists the
  regime registry (:data:`lczldl.regimes.REGIMES`).
- :data:`PARAM_FLAGS` / :func:`with_flags`: library errors name function parameters
  (``pass resume=True``, ``seed=-1: ...``; :mod:`lczldl.errors`); here, and only here, they become
  the flags a user types (``pass --resume``, ``--seed -1: ...``).
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from lczldl.config import LczldlConfig, load_config
from lczldl.errors import LczldlError
from lczldl.regimes import REGIMES

#: library parameter names (:attr:`lczldl.errors.LczldlError.params`) -> the CLI flag that sets them
PARAM_FLAGS: dict[str, str] = {
    "seed": "--seed", "resume": "--resume", "out": "--out", "data": "--data", "config": "--config",
    # lczldl predict (predict_scene's arguments and the maps section's keys)
    "checkpoints": "--checkpoint", "scene": "--scene", "bbox": "--bbox", "aoi": "--aoi",
    "stride": "--stride", "mc_passes": "--mc", "temperature": "--temperature",
    "cloud_classes": "--cloud-classes", "max_cloud_share": "--max-cloud-share", "bands": "--bands",
    "scale": "--scale", "offset": "--offset", "filter_sigma_m": "--filter-sigma",
    "allow_resolution": "--allow-resolution", "conformal_set": "--conformal-set",
    # lczldl study / demo (run_study's and run_demo's arguments) and lczldl data prepare (its
    # arguments and the study.prepare keys)
    "regimes": "--regimes", "workers": "--workers", "executor": "--executor", "pack": "--pack",
    "profile": "--profile", "raw": "--raw", "split": "--split", "train_cities": "--train-cities",
    "val_cities": "--val-cities", "test_cities": "--test-cities", "drop_nonfinite": "--drop-nonfinite",
    "aggregators": "--aggregators", "root": "--so2sat", "vote_budget": "--vote-budget",
    # named weights and safe loading (lczldl predict / evaluate / train / weights)
    "weights": "--weights", "trust_checkpoint": "--trust-checkpoint", "runs": "--runs",
}


def resolve(config: Path | None, options: Mapping[str, tuple[str, object]],
            overrides: Sequence[str] | None = None) -> LczldlConfig:
    """``options``: dotted config key -> (flag, typed value or None); ``overrides``: ``--set``
    items. Bad values raise a one-line ConfigError naming the flag (typed) or the key and file
    (from the config)."""
    return load_config(config, list(overrides or []), flags={k: flag for k, (flag, _) in options.items()},
                       **{k: v for k, (_, v) in options.items()})


def _field(key: str) -> tuple[type[BaseModel], str]:
    """(the pydantic model that declares dotted ``key``, the field's name)."""
    model: type[BaseModel] = LczldlConfig
    *sections, name = key.split(".")
    for part in sections:
        annotation = model.model_fields[part].annotation
        model = next(a for a in (typing.get_args(annotation) or (annotation,))
                     if isinstance(a, type) and issubclass(a, BaseModel))
    if name not in model.model_fields:
        raise KeyError(f"no config key {key!r}")
    return model, name


def default_value(key: str) -> Any:
    """The declared default of dotted config key ``key`` (e.g. ``train.max_epochs`` -> 300)."""
    model, name = _field(key)
    return model.model_fields[name].get_default(call_default_factory=True)


def shown(value: Any) -> str:
    """A default as a user would type it: a run of three or more consecutive integers as ``a-b``,
    other lists as comma lists (``none`` when empty), booleans as on / off, None as none."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None:
        return "none"
    if isinstance(value, list | tuple):
        if not value:
            return "none"
        if (len(value) > 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
                and list(value) == list(range(value[0], value[0] + len(value)))):
            return f"{value[0]}-{value[-1]}"
        return ",".join(str(v) for v in value)
    return str(value)


def config_default(key: str) -> str:
    """``[config: X]`` for a help text: the default of config key ``key`` as declared in
    :mod:`lczldl.config` (what applies when neither the option nor the config file sets it)."""
    return f"[config: {shown(default_value(key))}]"


def config_choices(key: str) -> str:
    """``a | b | c``: the values config key ``key`` allows (its ``Literal`` annotation)."""
    model, name = _field(key)
    annotation = model.model_fields[name].annotation
    while typing.get_origin(annotation) in (typing.Union, types.UnionType):
        annotation = next(a for a in typing.get_args(annotation) if typing.get_origin(a) is typing.Literal)
    if typing.get_origin(annotation) is not typing.Literal:
        raise KeyError(f"config key {key!r} has no fixed choices")
    return " | ".join(str(v) for v in typing.get_args(annotation))


def regime_choices() -> str:
    """The registered regimes (:data:`lczldl.regimes.REGIMES`), comma separated."""
    return ", ".join(REGIMES)


def with_flags(exc: LczldlError, flags: Mapping[str, str] = PARAM_FLAGS) -> str:
    """The message of ``exc`` with each parameter in ``exc.params`` that ``flags`` knows written as
    its flag: ``name=True`` -> ``--flag``, ``name=value`` -> ``--flag value``, ``name`` -> ``--flag``
    (whole words only: a path, a value after ``=``, a longer name that contains it and text in
    backquotes, such as a command line, are left alone)."""
    parts = str(exc).split("`")
    for param in exc.params:
        flag = flags.get(param)
        if flag is None:
            continue
        pattern = re.compile(rf"(?<![\w./\\=-]){re.escape(param)}(?:(=True)(?!\w)|(=)|(?![\w/\\-]|\.\w))")
        parts[::2] = [pattern.sub(lambda m, f=flag: f + " " if m.group(2) else f, part) for part in parts[::2]]
    return "`".join(parts)
