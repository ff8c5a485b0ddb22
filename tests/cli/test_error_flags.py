"""Library errors name parameters (``pass resume=True``); the CLI alone shows them as the flags a
user types (``pass --resume``), through ``cli.options.PARAM_FLAGS`` / ``with_flags``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lczldl.cli.main import error_line, main
from lczldl.cli.options import PARAM_FLAGS, with_flags
from lczldl.errors import ConfigError, LczldlError, RunError


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


def _shown(call) -> tuple[str, str]:
    """(the library's message, the line the CLI shows) of the LczldlError ``call`` raises."""
    with pytest.raises(LczldlError) as e:
        call()
    return str(e.value), error_line(e.value)


def test_study_and_data_errors_name_parameters_and_the_cli_shows_flags(store, tmp_path, monkeypatch):
    """Each study / data error: the library's words name its parameter, the user reads the flag."""
    import importlib.util

    from lczldl.config import load_config
    from lczldl.data.prepare import _check_paths, check_crowdkit
    from lczldl.data.splits import make_split
    from lczldl.data.store import SplitArrays, require_target
    from lczldl.study.demo import profile
    from lczldl.study.executors import check_executor, make_executor
    from lczldl.study.folder import check_out, check_same_config, planned_store
    from lczldl.study.packs import resolve_pack

    tb = load_config(None, ["train.logger=tensorboard"], **{"study.pack": 4})
    bare = SplitArrays(name="train", n=1, image=None, label=np.zeros(1, int), distribution=np.full((1, 10), 0.1),
                       dawid_skene=np.full((1, 10), 0.1), votes=np.ones((1, 11), np.int8),
                       original=np.ones(1, np.int8), city=np.zeros(1, np.int16), vote_entropy=np.zeros(1))
    refusal = "packed runs cannot train with train.logger=tensorboard (packed runs write metrics.csv only; " \
              "use train.logger=csv)"
    afile = tmp_path / "afile"
    afile.write_text("")
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "study.json").write_text(json.dumps({"run_config": {"train": {}}, "store": "/x"}))
    cases = [
        (lambda: profile("gpu"), "profile='gpu': choose one of cpu, cpu-full, paper, tiny",
         "--profile 'gpu': choose one of cpu, cpu-full, paper, tiny"),
        (lambda: check_executor("condor"), "executor='condor': choose local or slurm (or submitit-local for tests)",
         "--executor 'condor': choose local or slurm (or submitit-local for tests)"),
        (lambda: make_executor("local", tmp_path, workers=0), "workers=0: must be >= 1", "--workers 0: must be >= 1"),
        (lambda: resolve_pack(tb, 20, typed=True, cuda=True, n_gpus=1), f"pack=4: {refusal}; use pack=1",
         f"--pack 4: {refusal}; use --pack 1"),
        (lambda: resolve_pack(tb, 20, cuda=True, n_gpus=1), f"study.pack=4: {refusal}; use pack=1",
         f"study.pack=4: {refusal}; use --pack 1"),
        (lambda: make_split("cities", {}, train_cities=None, val_cities=["paris"], test_cities=["rome"]),
         "split=cities needs train_cities (comma-separated city names)",
         "--split cities needs --train-cities (comma-separated city names)"),
        (lambda: planned_store(tmp_path / "data", tmp_path / "s"),
         f"data={tmp_path / 'data'}: neither a prepared store (manifest.json) nor a folder of raw vote files "
         "({city}.h5); run `lczldl data prepare` or point at the right folder",
         f"--data {tmp_path / 'data'}: neither a prepared store (manifest.json) nor a folder of raw vote files "
         "({city}.h5); run `lczldl data prepare` or point at the right folder"),
        (lambda: check_out(afile), f"out={afile}: exists and is not a folder; choose a folder for the study",
         f"--out {afile}: exists and is not a folder; choose a folder for the study"),
        (lambda: check_same_config(tmp_path / "old", {"train": {"lr": 1}}, store),
         f"{tmp_path / 'old' / 'study.json'}: this study was started with a different run configuration; "
         "rerun with the same config or use a new out folder",
         f"{tmp_path / 'old' / 'study.json'}: this study was started with a different run configuration; "
         "rerun with the same --config or use a new --out folder"),
        (lambda: check_same_config(tmp_path / "old", {"train": {}}, store),
         f"{tmp_path / 'old' / 'study.json'}: this study was started on store /x; rerun with the same data or "
         "use a new out folder",
         f"{tmp_path / 'old' / 'study.json'}: this study was started on store /x; rerun with the same --data or "
         "use a new --out folder"),
        (lambda: _check_paths(store, tmp_path / "new"),
         f"raw={store}: this is already a prepared store; pass it as data to train/study, or give raw a folder "
         "of vote files ({city}.h5)",
         f"--raw {store}: this is already a prepared store; pass it as --data to train/study, or give --raw a "
         "folder of vote files ({city}.h5)"),
        (lambda: _check_paths(tmp_path, afile), None,
         f"--out {afile}: must not be, contain or lie inside the raw folder {tmp_path}; choose a separate folder"),
        (lambda: require_target(bare, "agg_glad", "S"),
         "S: no agg_glad target in the store (split train); prepare with aggregators=glad "
         "(lczldl data prepare, or study.prepare.aggregators)",
         "S: no agg_glad target in the store (split train); prepare with --aggregators glad "
         "(lczldl data prepare, or study.prepare.aggregators)"),
    ]
    for call, library, cli in cases:
        said, shown = _shown(call)
        if library is not None:
            assert said == library
        assert shown == cli
        assert "--" not in said.split("`")[0] + "".join(said.split("`")[2::2])   # no flag in the library's words
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert _shown(check_crowdkit)[1].startswith("--aggregators needs crowd-kit, which is not installed; ")


def test_with_flags_leaves_values_and_backquoted_text_alone():
    exc = ConfigError("out=out: exists; run `lczldl data prepare --out out` or pass data", params=("out", "data"))
    assert with_flags(exc) == "--out out: exists; run `lczldl data prepare --out out` or pass --data"


@pytest.mark.parametrize("argv, shown", [
    (["study", "--data", "{store}", "--out", "{tmp}/s", "--pack", "0"], "--pack 0: must be greater than or equal to 1"),
    (["study", "--data", "{tmp}/nothing", "--out", "{tmp}/s"],
     "--data {tmp}/nothing: neither a prepared store (manifest.json) nor a folder of raw vote files ({{city}}.h5); "
     "run `lczldl data prepare` or point at the right folder"),
    (["study", "--data", "{store}", "--out", "{tmp}/s", "--config", "{tmp}/tb.yaml", "--pack", "2"],
     "--pack 2: packed runs cannot train with train.logger=tensorboard (packed runs write metrics.csv only; "
     "use train.logger=csv); use --pack 1"),
    (["demo", "--out", "{tmp}/s", "--profile", "gpu"], "--profile 'gpu': choose one of cpu, cpu-full, paper, tiny"),
    (["data", "prepare", "--raw", "{store}", "--out", "{tmp}/s"],
     "--raw {store}: this is already a prepared store; pass it as --data to train/study, or give --raw a folder "
     "of vote files ({{city}}.h5)"),
])
def test_study_demo_and_prepare_show_flags(argv, shown, store, tmp_path, capsys):
    """End to end: ``lczldl study`` resolves its options itself (a bad one is named by its flag), and
    the library's parameter names reach the user as flags; nothing is written."""
    (tmp_path / "tb.yaml").write_text("train:\n  logger: tensorboard\n")
    with pytest.raises(SystemExit) as e:
        main([a.format(store=store, tmp=tmp_path) for a in argv])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and err == "error: " + shown.format(store=store, tmp=tmp_path)
    assert not (tmp_path / "s").exists()
