"""The progress overview, the real train unit's resume rules, and (slow) a tiny real study."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from lczldl.study.runner import Overview, Scheduler, train, train_epoch
from lczldl.study.units import Unit


class _Ex:
    capacity = 2

    def shutdown(self):
        pass


def test_train_epoch_reads_metrics_csv(tmp_path):
    assert train_epoch(tmp_path) is None
    (tmp_path / "metrics.csv").write_text("epoch,val_loss\n0,1.0\n1,0.9\n")
    assert train_epoch(tmp_path) == 2


def test_overview_shows_counts_epochs_and_eta(tmp_path):
    units = [Unit("train-dist-seed0", "train", "dist", 0), Unit("train-dist-seed1", "train", "dist", 1),
             Unit("train-dist-seed2", "train", "dist", 2)]
    sch = Scheduler(units, tmp_path, _Ex(), make_spec=lambda u, up: {})
    sch.state["train-dist-seed0"].update(status="done", wall_s=100.0)
    now = time.time()
    sch.state["train-dist-seed1"]["status"] = "running"
    sch.running["train-dist-seed1"] = (None, {}, now - 40)
    run = tmp_path / "runs" / "dist" / "seed1"
    run.mkdir(parents=True)
    (run / "metrics.csv").write_text("epoch\n0\n1\n2\n")
    ov = Overview(tmp_path, max_epochs=10, console=Console(file=io.StringIO(), width=120))
    # left: running unit ~60 s + pending unit 100 s, over min(capacity, running) = 1 worker
    assert ov.eta(sch) == pytest.approx(160, abs=2)
    line = ov.summary_line(sch)
    assert "1/3 done, 1 running, 0 failed, 0 skipped" in line and "ETA 2m4" in line
    con = Console(file=io.StringIO(), width=120)
    con.print(ov.render(sch))
    text = con.file.getvalue()
    assert "train-dist-seed1" in text and "epoch 3/10" in text and "######" in text


def test_train_unit_reuses_a_finished_run(tmp_path):
    run = tmp_path / "runs" / "dist" / "seed0"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"status": "finished"}))
    assert train({"run": str(run)})["reused"] is True


# ------------------------------------------------------------------------------ tiny real study

def _tiny_store(tmp: Path) -> Path:
    from lczldl.data.prepare import prepare_store
    from lczldl.data.synth import synthesize

    synthesize(tmp / "raw", seed=0, size="tiny", progress=False)
    prepare_store(tmp / "raw", tmp / "store", progress=False)
    return tmp / "store"


@pytest.mark.slow
def test_real_study_killed_during_training_then_resumed_matches(tmp_path):
    """A real (tiny) study killed mid-training and rerun gives the uninterrupted study's summary."""
    store = _tiny_store(tmp_path)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("train:\n  max_epochs: 3\n  patience: 5\nevaluation:\n  mc_passes: 2\n")
    common = ["--data", str(store), "--config", str(cfg), "--regimes", "dist", "--seeds", "0"]
    cli = [sys.executable, "-m", "lczldl.cli.main", "study"]
    ref = subprocess.run(cli + common + ["--out", str(tmp_path / "ref")], capture_output=True, text=True)
    assert ref.returncode == 0, ref.stdout + ref.stderr
    out = tmp_path / "study"
    proc = subprocess.Popen(cli + common + ["--out", str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    run = out / "runs" / "dist" / "seed0"
    deadline = time.time() + 300
    while time.time() < deadline and not ((run / "checkpoints" / "last.ckpt").is_file()
                                          and (train_epoch(run) or 0) >= 1):
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert json.loads((run / "run.json").read_text())["status"] == "running"
    res = subprocess.run(cli + common + ["--out", str(out)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "resume=True" in (out / "logs" / "train-dist-seed0.log").read_text()
    assert (out / "summary.csv").read_text() == (tmp_path / "ref" / "summary.csv").read_text()
    info = json.loads((out / "study.json").read_text())
    assert info["status"] == "finished" and (out / "report.html").is_file()
