"""kill -9 mid-training + --resume == uninterrupted run; 2-process DDP on CPU (gloo).
Both start real `lczldl train` subprocesses."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from killpoint import pythonpath
from lczldl.cli.main import main
from lczldl.training.callbacks import read_metrics_csv
from lczldl.training.run import train_run

from .conftest import TINY, run_config

SETTINGS = TINY + ["train.patience=4", "train.lr_step_epochs=2"]


def _cli(store, out, extra=(), seed=5, epochs=12, resume=False):
    cmd = [sys.executable, "-m", "lczldl.cli.main", "train", "--data", str(store), "--regime", "dist",
           "--seed", str(seed), "--out", str(out), "--max-epochs", str(epochs)]
    for s in list(SETTINGS) + list(extra):
        cmd += ["--set", s]
    return cmd + (["--resume"] if resume else [])


def _env():
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")


@pytest.mark.slow
def test_resume_after_kill_matches_uninterrupted_run(tiny_store, tmp_path, capsys):
    ref = train_run(tiny_store, 5, tmp_path / "ref", run_config(SETTINGS, "dist", 12), progress=False)
    ref_rows = read_metrics_csv(ref / "metrics.csv")
    assert len(ref_rows) >= 4

    out = tmp_path / "killed"
    run = out / "dist" / "seed5"
    marker = tmp_path / "checkpointed"          # the run blocks for good after last.ckpt of epoch 1
    proc = subprocess.Popen([sys.executable, "-m", "killpoint", "1", str(marker), *_cli(tiny_store, out)[3:]],
                            env=dict(_env(), PYTHONPATH=pythonpath()), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not marker.is_file():                 # wait for the file, not for a time
        assert proc.poll() is None, "the run ended before its epoch-1 checkpoint"
        assert time.monotonic() < deadline, "timed out waiting for the epoch-1 checkpoint"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(read_metrics_csv(run / "metrics.csv")) == 2 and (run / "checkpoints" / "last.ckpt").is_file()
    assert json.loads((run / "run.json").read_text())["status"] == "running"

    # without --resume the interrupted run is refused; with it, it completes. Both are the command
    # a user types after the kill, run in this process (the killed one is gone; what they read is
    # on disk), which spares a fresh interpreter's Lightning import each
    with pytest.raises(SystemExit) as refused:
        main(_cli(tiny_store, out)[3:])
    assert refused.value.code == 2 and "--resume" in capsys.readouterr().err
    main(_cli(tiny_store, out, resume=True)[3:])
    assert "resuming from" in capsys.readouterr().err

    rows = read_metrics_csv(run / "metrics.csv")
    keys = ("epoch", "lr", "train_loss", "val_loss", "val_acc")
    assert [tuple(x[k] for k in keys) for x in rows] == [tuple(x[k] for k in keys) for x in ref_rows]
    a, b = (json.loads((d / "run.json").read_text()) for d in (ref, run))
    assert b["status"] == "finished" and b["resumed"] is True
    assert (a["best_epoch"], a["best_val_loss"], a["epochs"]) == (b["best_epoch"], b["best_val_loss"], b["epochs"])
    sa = torch.load(ref / "checkpoints" / "best.ckpt", weights_only=False)["state_dict"]
    sb = torch.load(run / "checkpoints" / "best.ckpt", weights_only=False)["state_dict"]
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.slow
def test_two_process_ddp_on_cpu(tiny_store, tmp_path):
    cmd = _cli(tiny_store, tmp_path, epochs=2, extra=["train.strategy=ddp", "train.devices=2",
                                                      "train.accelerator=cpu"])
    r = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    run = tmp_path / "dist" / "seed5"
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "finished" and info["epochs"] == 2
    assert info["config"]["train"]["devices"] == 2 and info["config"]["train"]["strategy"] == "ddp"
    assert "world size: 2" in r.stderr or "MEMBER: 2/2" in r.stderr
    # the recorded (all-rank, sample-weighted) val loss is the best model's loss on the whole val split
    from .test_run import _val_loss_of

    got = _val_loss_of(run / "checkpoints" / "best.ckpt", tiny_store, "distribution", "kl")
    assert got == pytest.approx(info["best_val_loss"], abs=2e-5)
