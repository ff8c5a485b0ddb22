"""Owns how a command's typed options meet a config file: each option names its config key and
its flag; options left at None (not typed) fall back to the file, then to the defaults, through
:func:`lczldl.config.load_config` (the one resolver)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from lczldl.config import LczldlConfig, load_config


def resolve(config: Path | None, options: Mapping[str, tuple[str, object]]) -> LczldlConfig:
    """``options``: dotted config key -> (flag, typed value or None). Bad values raise a one-line
    ConfigError naming the flag (typed) or the key and file (from the config)."""
    return load_config(config, None, flags={k: flag for k, (flag, _) in options.items()},
                       **{k: v for k, (_, v) in options.items()})
