"""Loading a model never runs code from the file: a pickle whose unpickling would create a file is
refused in one line by every command that loads models (nothing is created), unless the user says
--trust-checkpoint; the checkpoints the project writes (solo and packed runs) load without it."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from lczldl.cli.main import main as cli_main
from lczldl.errors import ModelError
from lczldl.models.io import load_checkpoint_dict, load_model, save_model
from lczldl.models.sen2lcz import Sen2LCZ
from lczldl.models.weights_file import is_weights_file


class _Payload:
    """Unpickling this calls open(marker, "w"): it creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _malicious(tmp_path: Path, kind: str) -> tuple[Path, Path]:
    """(a checkpoint-looking file whose unpickling creates ``marker``, marker)."""
    marker = tmp_path / f"PWNED-{kind}"
    obj = {"state_dict": {}, "hyper_parameters": {"model_kwargs": {}}, "payload": _Payload(marker)}
    path = tmp_path / f"evil-{kind}.ckpt"
    if kind == "torch":
        torch.save(obj, path)
    else:
        with open(path, "wb") as f:
            pickle.dump(obj, f, protocol=2)
    return path, marker


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, training_helpers):
    """A tiny store and a solo run (2 epochs) of onehot seed 0 on it."""
    from lczldl.training.run import train_run

    h = training_helpers
    root = tmp_path_factory.mktemp("safe")
    store = h.write_tiny_store(root / "store")
    run = train_run(store, 0, root / "runs", h.run_config(h.TINY, "onehot", 2), progress=False)
    return store, run, h


@pytest.mark.parametrize("kind", ["torch", "pickle"])
def test_malicious_pickle_is_refused_and_runs_nothing(kind, tmp_path) -> None:
    path, marker = _malicious(tmp_path, kind)
    with pytest.raises(ModelError) as err:
        load_model(path)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and "trust_checkpoint" in msg and "run code" in msg
    if kind == "torch":
        assert "open" in msg                          # names what it would have imported
    assert not marker.exists()
    # the payload is live: a user who trusts the file gets it run (and then a one-line refusal of
    # what is no checkpoint)
    with pytest.raises(ModelError):
        load_model(path, trust=True)
    assert marker.exists()


def test_every_command_refuses_it_in_one_line(tmp_path, tiny, scene_tif, capsys) -> None:
    store, run, _ = tiny
    path, marker = _malicious(tmp_path, "torch")
    commands = [
        ["predict", "--checkpoint", str(path), "--scene", str(scene_tif), "--out", str(tmp_path / "m")],
        ["evaluate", "--checkpoint", str(path), "--data", str(store), "--out", str(tmp_path / "e")],
        ["weights", "show", str(path)],
        ["export-weights", str(path), "--out", str(tmp_path / "x.safetensors")],
    ]
    for argv in commands:
        with pytest.raises(SystemExit) as exit_:
            cli_main(argv)
        assert exit_.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--trust-checkpoint" in err[0], (argv, err)
    assert not marker.exists() and not (tmp_path / "e").exists() and not (tmp_path / "x.safetensors").exists()
    assert not (tmp_path / "m" / "predict.json").exists()


def test_train_resume_refuses_an_unsafe_last_checkpoint(tmp_path, tiny, capsys) -> None:
    store, run, h = tiny
    from lczldl.training.run import train_run

    cfg = h.run_config(h.TINY, "onehot", 3)
    first = train_run(store, 0, tmp_path / "runs", h.run_config(h.TINY, "onehot", 1), progress=False)
    info = json.loads((first / "run.json").read_text())
    info["status"] = "failed"                          # an interrupted run, to be resumed
    (first / "run.json").write_text(json.dumps(info))
    evil, marker = _malicious(tmp_path, "torch")
    last = first / "checkpoints" / "last.ckpt"
    good = last.read_bytes()
    last.write_bytes(evil.read_bytes())
    before = {p.name: p.stat().st_mtime_ns for p in first.rglob("*") if p.is_file()}
    with pytest.raises(ModelError) as err:
        train_run(store, 0, tmp_path / "runs", cfg, resume=True, progress=False)
    assert "trust_checkpoint" in str(err.value) and not marker.exists()
    assert {p.name: p.stat().st_mtime_ns for p in first.rglob("*") if p.is_file()} == before  # untouched
    with pytest.raises(SystemExit):
        cli_main(["train", "--data", str(store), "--out", str(tmp_path / "runs"), "--regime", "onehot",
                  "--seed", "0", "--resume", "--max-epochs", "3", *sum((["--set", o] for o in h.TINY), [])])
    assert len(capsys.readouterr().err.strip().splitlines()) == 1 and not marker.exists()
    last.write_bytes(good)                             # the project's own checkpoint resumes (weights only)
    again = train_run(store, 0, tmp_path / "runs", cfg, resume=True, progress=False)
    assert json.loads((again / "run.json").read_text())["epochs"] == 3


def test_project_checkpoints_hold_only_safe_types(tiny, tmp_path) -> None:
    """Solo and packed runs' checkpoints load weights-only: no allow-list needed."""
    from lczldl.training.packed import train_pack

    store, run, h = tiny
    train_pack(store, [("onehot", 1), ("dist", 2)], tmp_path / "pack", h.run_config(h.TINY, max_epochs=1))
    ckpts = [run / "checkpoints" / n for n in ("best.ckpt", "last.ckpt")]
    ckpts += sorted((tmp_path / "pack").rglob("*.ckpt"))
    assert len(ckpts) == 6
    for c in ckpts:
        assert torch.serialization.get_unsafe_globals_in_checkpoint(c) == [], c
        load_checkpoint_dict(c)
        assert load_model(c).model_kwargs["width"] == 2


def test_older_pickled_model_files_still_load(tmp_path) -> None:
    """The format before weights files (torch.save of a dict of tensors) loads weights-only."""
    torch.manual_seed(0)
    model = Sen2LCZ(num_classes=10, depth=5, width=2).eval()
    old = tmp_path / "old.pt"
    torch.save({"format": "lczldl-model", "version": 1, "model_kwargs": dict(model.model_kwargs),
                "state_dict": model.state_dict(), "meta": {"source": "test"}}, old)
    new = save_model(model, tmp_path / "new.safetensors")
    assert is_weights_file(new) and not is_weights_file(old)
    x = torch.rand(4, 10, 32, 32) * 0.3
    want = model.predict_proba(x).numpy()
    for path in (old, new):
        np.testing.assert_array_equal(load_model(path).predict_proba(x).numpy(), want)
    assert load_model(old).meta["source"] == "test"
