"""(d) A pack killed with SIGKILL (a real subprocess) and resumed ends with the uninterrupted
pack's histories and bit-identical checkpoints (same code path, CPU)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
import torch

from lczldl.errors import RunError
from lczldl.training.callbacks import read_metrics_csv
from lczldl.training.packed import train_pack

from .conftest import TINY, run_config

MEMBERS = [("onehot", 0), ("dist", 1)]
SETTINGS = TINY + ["train.lr_step_epochs=2"]
EPOCHS = 8
#: the killed pack: prints one line per committed epoch (the parent waits for the first)
CHILD = """
import sys
from pathlib import Path
from lczldl.config import load_config
from lczldl.training.packed import train_pack
cfg = load_config(None, sys.argv[4:], **{"train.max_epochs": int(sys.argv[3])})
train_pack(Path(sys.argv[1]), [("onehot", 0), ("dist", 1)], Path(sys.argv[2]), cfg,
           on_epoch=lambda e, r: print(f"epoch {e}", flush=True))
"""
TIMING = ("train_seconds", "train_samples_per_second")


def _same_checkpoint(a, b) -> None:
    ca, cb = (torch.load(p, weights_only=False, map_location="cpu") for p in (a, b))
    assert ca["epoch"] == cb["epoch"]
    assert ca["state_dict"].keys() == cb["state_dict"].keys()
    assert all(torch.equal(ca["state_dict"][k], cb["state_dict"][k]) for k in ca["state_dict"])
    sa, sb = (c["optimizer_states"][0]["state"] for c in (ca, cb))
    assert all(torch.equal(sa[i][k], sb[i][k]) for i in sa for k in sa[i])


def test_killed_pack_resumes_to_the_uninterrupted_result(tiny_store, tmp_path):
    ref = train_pack(tiny_store, MEMBERS, tmp_path / "ref", run_config(SETTINGS, max_epochs=EPOCHS))
    out = tmp_path / "killed"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(tiny_store), str(out), str(EPOCHS), *SETTINGS],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()                  # blocks until epoch 0 is committed
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    assert line.strip() == "epoch 0"
    statuses = [json.loads((out / r / f"seed{s}" / "run.json").read_text())["status"] for r, s in MEMBERS]
    assert statuses == ["running", "running"], "the pack finished before it could be killed"

    with pytest.raises(RunError, match="resume=True"):
        train_pack(tiny_store, MEMBERS, out, run_config(SETTINGS, max_epochs=EPOCHS))
    res = train_pack(tiny_store, MEMBERS, out, run_config(SETTINGS, max_epochs=EPOCHS), resume=True)
    assert [r.status for r in res] == [r.status for r in ref] == ["finished", "finished"]
    for a, b in zip(ref, res, strict=True):
        ra, rb = (read_metrics_csv(r.run_dir / "metrics.csv") for r in (a, b))
        strip = lambda rows: [{k: v for k, v in r.items() if k not in TIMING} for r in rows]  # noqa: E731
        assert strip(ra) == strip(rb) and len(ra) >= 3
        ia, ib = (json.loads((r.run_dir / "run.json").read_text()) for r in (a, b))
        assert ib["resumed"] is True
        assert (ia["best_epoch"], ia["best_val_loss"], ia["epochs"]) == (ib["best_epoch"], ib["best_val_loss"],
                                                                         ib["epochs"])
        for which in ("best", "last"):
            _same_checkpoint(a.run_dir / "checkpoints" / f"{which}.ckpt", b.run_dir / "checkpoints" / f"{which}.ckpt")
