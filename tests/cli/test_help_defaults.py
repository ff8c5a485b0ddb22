"""Every default a command's ``--help`` shows is the config's (``lczldl.config``, resolved with
nothing given) and every list of choices is the registry's or the config's: help texts are
generated from the one declaration, so they cannot drift from it."""

from __future__ import annotations

import re
import typing

import pytest
import typer
from typer.testing import CliRunner

from lczldl.cli.main import app
from lczldl.config import LczldlConfig, StudyConfig, load_config
from lczldl.regimes import REGIMES

#: per command, the options whose help shows a config default, and the key it is the default of
#: (written out here: an option with ``[config: X]`` missing from this table fails the test)
CONFIG_OPTIONS: dict[tuple[str, ...], dict[str, str]] = {
    ("train",): {"--regime": "train.regime", "--max-epochs": "train.max_epochs"},
    ("data", "prepare"): {"--split": "study.prepare.split", "--seed": "study.prepare.seed",
                          "--smoothing": "study.prepare.smoothing",
                          "--drop-nonfinite": "study.prepare.drop_nonfinite",
                          "--aggregators": "study.prepare.aggregators"},
    ("evaluate",): {"--mc-passes": "evaluation.mc_passes", "--bins": "evaluation.n_bins",
                    "--conformal": "evaluation.conformal", "--selective": "evaluation.selective",
                    "--levels": "evaluation.conformal_levels"},
    ("study",): {"--regimes": "study.regimes", "--seeds": "study.seeds", "--workers": "study.workers",
                 "--executor": "study.executor", "--intervals": "study.intervals",
                 "--vote-budget": "study.vote_budget.k"},
    ("predict",): {"--stride": "maps.stride", "--mc": "maps.mc_passes", "--temperature": "maps.temperature",
                   "--cloud-classes": "maps.cloud_classes", "--max-cloud-share": "maps.max_cloud_share",
                   "--bands": "maps.bands", "--scale": "maps.scale", "--offset": "maps.offset",
                   "--filter-sigma": "maps.filter_sigma_m", "--allow-resolution": "maps.allow_resolution", "--conformal-set": "maps.conformal_set"},
}
CONFIG = re.compile(r"\[config: ([^\]]*)\]")


def _commands() -> list[tuple[str, ...]]:
    """Every leaf command of ``lczldl`` (e.g. ("data", "prepare")), from the command tree."""
    def walk(cmd, path):
        subs = getattr(cmd, "commands", None)
        if not subs:
            return [path]
        return [p for name, sub in subs.items() for p in walk(sub, (*path, name))]

    return walk(typer.main.get_command(app), ())


def _options(command: tuple[str, ...]) -> dict[str, str]:
    """``lczldl COMMAND --help`` -> {first flag of each option: its help text, one line}."""
    res = CliRunner().invoke(app, [*command, "--help"])
    assert res.exit_code == 0, res.output
    entries: dict[str, str] = {}
    current = None
    for line in res.output.split("Options:", 1)[1].splitlines():
        m = re.match(r"^  (--?[\w-]+)", line)
        if m:
            current = m.group(1)
            rest = re.split(r" {2,}", line[m.end():], maxsplit=1)      # flags and metavar | help
            entries[current] = rest[1] if len(rest) > 1 else ""
        elif current is not None and line.strip():
            entries[current] += " " + line.strip()
    return {k: " ".join(v.split()) for k, v in entries.items()}


def _value(cfg: LczldlConfig, key: str):
    node = cfg
    for part in key.split("."):
        node = getattr(node, part)
    return node


def _resolved(**typed: object) -> LczldlConfig:
    """What a command resolves with ``typed`` options and no config file (the study section, unset
    in the file, is its defaults, as ``lczldl study`` and ``data prepare`` take it)."""
    cfg = load_config(None, None, **typed)
    return cfg.model_copy(update={"study": cfg.study or StudyConfig()})


def test_every_command_has_help_and_the_table_names_every_config_default():
    commands = _commands()
    assert set(CONFIG_OPTIONS) <= set(commands) and len(commands) >= 9
    for command in commands:
        shown = {flag for flag, text in _options(command).items() if CONFIG.search(text)}
        assert shown == set(CONFIG_OPTIONS.get(command, {})), command


@pytest.mark.parametrize("command", sorted(CONFIG_OPTIONS), ids=" ".join)
def test_config_defaults_in_help_are_the_resolved_defaults(command):
    """The value shown, typed back as the option, resolves to the default: it is the default."""
    options = _options(command)
    defaults = _resolved()
    for flag, key in CONFIG_OPTIONS[command].items():
        (shown,) = CONFIG.findall(options[flag])
        if shown == "none":                        # nothing set: None, or an empty list
            assert _value(defaults, key) in (None, [], ()), (command, flag)
            continue
        assert _value(_resolved(**{key: shown}), key) == _value(defaults, key), (command, flag, shown)


def test_regime_choices_are_the_registry():
    train = _options(("train",))["--regime"]
    assert CONFIG.sub("", train).strip(" .").split(" | ") == list(REGIMES)
    study = _options(("study",))["--regimes"]
    listed = CONFIG.sub("", study).removeprefix("Comma list of ").strip(" .")
    assert listed.split(", ") == list(REGIMES)


def test_literal_choices_are_the_configs():
    def allowed(model, name):
        return [str(v) for v in typing.get_args(model.model_fields[name].annotation)]

    executor = CONFIG.sub("", _options(("study",))["--executor"]).strip(" .")
    assert executor.split(" | ") == allowed(StudyConfig, "executor") == ["local", "slurm", "submitit-local"]
    from lczldl.config import PrepareConfig

    split = CONFIG.sub("", _options(("data", "prepare"))["--split"]).strip(" .")
    assert split.split(" | ") == allowed(PrepareConfig, "split") == ["authors", "random", "cities"]
