"""Usage errors of every command (unknown option, missing value, bad value) end in the usual usage
line plus the problem and exit 2, never in a traceback, with the typer that a fresh install
resolves (typer >= 0.2x carries its own copy of click)."""

from __future__ import annotations

import pytest

from lczldl.cli.main import main

#: command -> (the words that name it, one option taking a value, a value of the wrong type for it)
COMMANDS = {
    "data synth": (["data", "synth"], "--seed", "abc"),
    "data prepare": (["data", "prepare"], "--seed", "abc"),
    "data inspect": (["data", "inspect"], "--reference", None),
    "train": (["train"], "--max-epochs", "abc"),
    "import-keras": (["import-keras"], "--out", None),
    "evaluate": (["evaluate"], "--bins", "abc"),
    "study": (["study"], "--workers", "abc"),
    "figures": (["figures"], "--study", None),
    "demo": (["demo"], "--out", None),
    "predict": (["predict"], "--stride", "abc"),
}


def _run(argv: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return e.value.code, err


def _usage_error(name: str, err: str, problem: str) -> None:
    assert f"Usage: lczldl {name}" in err and f"Try 'lczldl {name} --help' for help." in err, err
    assert f"Error: {problem}" in err, err


@pytest.mark.parametrize("name", COMMANDS)
def test_unknown_option(name, capsys):
    words, _, _ = COMMANDS[name]
    code, err = _run([*words, "--nosuch"], capsys)
    assert code == 2
    _usage_error(name, err, "No such option: --nosuch")


@pytest.mark.parametrize("name", COMMANDS)
def test_missing_value(name, capsys):
    words, option, _ = COMMANDS[name]
    code, err = _run([*words, option], capsys)
    assert code == 2
    _usage_error(name, err, f"Option '{option}' requires an argument.")


@pytest.mark.parametrize("name", [n for n, (_, _, bad) in COMMANDS.items() if bad is not None])
def test_bad_value(name, capsys):
    words, option, bad = COMMANDS[name]
    code, err = _run([*words, option, bad], capsys)
    assert code == 2
    _usage_error(name, err, f"Invalid value for '{option}': ")
    assert "valid integer" in err


#: commands whose options take any text: a bad value is one the command itself rejects (one line)
BAD_VALUES = {
    "data inspect": ["data", "inspect", "{tmp}/nothing"],
    "import-keras": ["import-keras", "{tmp}/nothing.h5", "--out", "{tmp}/m.pt"],
    "figures": ["figures", "--study", "{tmp}/nothing"],
    "demo": ["demo", "--out", "{tmp}/demo", "--profile", "huge"],
}


@pytest.mark.parametrize("name", BAD_VALUES)
def test_bad_value_rejected_by_the_command(name, tmp_path, capsys):
    code, err = _run([a.format(tmp=tmp_path) for a in BAD_VALUES[name]], capsys)
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []          # nothing written


@pytest.mark.parametrize("argv, problem", [
    (["predict", "--bbox", "1", "2", "3"], "Option '--bbox' requires 4 arguments."),
    (["predict", "--checkpoint", "c", "--scene", "s", "--out", "o", "--bbox", "1", "2", "3", "a"],
     "Invalid value for '--bbox'"),
    (["data", "synth", "--out", "x", "--seed", "-1"], "Invalid value for '--seed'"),
    (["train", "--data", "s", "--out", "r", "--seed", "-2"], "Invalid value for '--seed'"),
    (["nosuchcommand"], "No such command 'nosuchcommand'"),
])
def test_other_usage_errors(argv, problem, capsys):
    code, err = _run(argv, capsys)
    assert code == 2 and f"Error: {problem}" in err


def test_help_and_version_exit_0(capsys):
    main(["--version"])
    assert capsys.readouterr().out.startswith("lczldl ")
    main(["study", "--help"])
    assert "--workers" in capsys.readouterr().out
