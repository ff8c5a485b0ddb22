"""Library errors name parameters (``pass resume=True``); the CLI alone shows them as the flags a
user types (``pass --resume``), through ``cli.options.PARAM_FLAGS`` / ``with_flags``."""

from __future__ import annotations

import json

import pytest

from lczldl.cli.main import error_line, main
from lczldl.cli.options import PARAM_FLAGS, with_flags
from lczldl.errors import ConfigError, RunError


@pytest.mark.parametrize("message, params, shown", [
    ("/r/dist/seed0: stopped; pass resume=True to continue it", ("resume",),
     "/r/dist/seed0: stopped; pass --resume to continue it"),
    ("seed=-1: must be an integer >= 0", ("seed",), "--seed -1: must be an integer >= 0"),
    ("differs (a: 1, now 2); use the run's config or another out", ("out",),
     "differs (a: 1, now 2); use the run's config or another --out"),
    # a path or a longer word holding the name is left alone; only listed params are rewritten
    ("/tmp/out/resume/seed0: outputs; seeds; resume", ("resume", "out", "seed"),
     "/tmp/out/resume/seed0: outputs; seeds; --resume"),
    ("seed=3 and resume=True", ("resume",), "seed=3 and --resume"),
    ("train.logger=mlflow: not installed", ("train.logger",), "train.logger=mlflow: not installed"),
])
def test_with_flags_rewrites_named_parameters_only(message, params, shown):
    assert with_flags(RunError(message, params=params)) == shown


def test_error_line_uses_the_one_mapping_and_exceptions_keep_their_params():
    import pickle

    exc = ConfigError("seed=-2: must be an integer >= 0", params=("seed",))
    assert str(exc) == "seed=-2: must be an integer >= 0"           # the library's own words
    assert error_line(exc) == "--seed -2: must be an integer >= 0"
    assert pickle.loads(pickle.dumps(exc)).params == ("seed",)      # crosses worker processes
    assert PARAM_FLAGS["resume"] == "--resume" and PARAM_FLAGS["out"] == "--out"


def test_train_without_resume_names_the_flag(tmp_path, capsys):
    """A run stopped after a checkpoint: ``train_run`` says resume=True, the CLI says --resume."""
    run = tmp_path / "runs" / "onehot" / "seed0"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"")
    (run / "run.json").write_text(json.dumps({"status": "running"}))
    with pytest.raises(SystemExit) as e:
        main(["train", "--data", str(tmp_path / "store"), "--out", str(tmp_path / "runs"), "--regime", "onehot"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1
    assert err.startswith(f"error: {run}: an earlier run stopped") and "; pass --resume to continue it" in err
    assert "resume=True" not in err
