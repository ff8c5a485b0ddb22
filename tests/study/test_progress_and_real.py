"""The progress overview, the real train unit's resume rules, and (slow) a tiny real study."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from lczldl.cli.main import main
from lczldl.config import EvaluationConfig, load_config
from lczldl.evaluation.runs import evaluate_runs
from lczldl.study.progress import Overview, eta, train_epoch
from lczldl.study.scheduler import Scheduler
from lczldl.study.units import Unit
from lczldl.study.work import train
from lczldl.training.run import train_run

from . import fakework
from .test_runner import ROOT, process_gone, wait_for


class _Ex:
    capacity = 2

    def shutdown(self):
        pass


def test_train_epoch_reads_metrics_csv(tmp_path):
    assert train_epoch(tmp_path) is None
    (tmp_path / "metrics.csv").write_text("epoch,val_loss\n0,1.0\n1,0.9\n")
    assert train_epoch(tmp_path) == 2


class _Clock:
    """A clock the test moves by hand."""

    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_overview_shows_counts_epochs_and_eta(tmp_path):
    units = [Unit("train-dist-seed0", "train", "dist", 0), Unit("train-dist-seed1", "train", "dist", 1),
             Unit("train-dist-seed2", "train", "dist", 2)]
    clock = _Clock()
    sch = Scheduler(units, tmp_path, _Ex(), make_spec=lambda u, up: {}, clock=clock)
    clock.t += 150                                      # the study has run for 150 s
    sch.state["train-dist-seed0"].update(status="done", wall_s=100.0)
    sch.state["train-dist-seed1"]["status"] = "running"
    sch.running["train-dist-seed1"] = (None, {}, clock.t - 40)   # started 40 s ago
    run = tmp_path / "runs" / "dist" / "seed1"
    run.mkdir(parents=True)
    (run / "metrics.csv").write_text("epoch\n0\n1\n2\n")
    ov = Overview(tmp_path, max_epochs=10, console=Console(file=io.StringIO(), width=120))
    # left: running unit 100 - 40 = 60 s + pending unit 100 s, over min(capacity, running) = 1 worker
    assert eta(sch) == 160.0
    line = ov.summary_line(sch)
    assert "1/3 done, 1 running, 0 failed, 0 skipped | elapsed 2m30s | ETA 2m40s" in line
    clock.t += 50                                       # running for 90 s: 10 s left of the mean
    assert eta(sch) == 110.0 and "elapsed 3m20s | ETA 1m50s" in ov.summary_line(sch)
    clock.t += 30                                       # 20 s over the mean: counts as 0 s left
    assert eta(sch) == 100.0 and "elapsed 3m50s | ETA 1m40s" in ov.summary_line(sch)
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

#: a small real study's config (small network, PNG figures): resume semantics and formats, not speed
TINY_STUDY_CONFIG = ("model:\n  depth: 5\n  width: 4\ntrain:\n  max_epochs: 3\n  patience: 5\n"
                     "evaluation:\n  mc_passes: 2\nstudy:\n  figures_pdf: false\n")


def reference_summary(runs: Path, study: Path) -> str:
    """summary.csv of the finished runs under ``runs`` (trained here without a stop), evaluated by
    `lczldl evaluate`'s evaluate_runs with ``study``'s resolved evaluation settings."""
    info = json.loads((study / "study.json").read_text())
    evaluate_runs(runs, EvaluationConfig(**info["resolved_config"]["evaluation"]), progress=False)
    return (runs / "summary.csv").read_text()


def kill_study_when_blocked(store: Path, out: Path, cfg: Path, kwargs: str, marker: Path, what: str) -> None:
    """Run ``run_study(store, out, cfg, <kwargs>)`` in a subprocess, kill -9 it once a worker that
    blocks for good wrote ``marker`` (its pid), and wait until that worker died with the study."""
    code = ("import sys; from lczldl.study.runner import run_study; "
            f"run_study(data=sys.argv[1], out=sys.argv[2], config=sys.argv[3], {kwargs}, progress=False)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(store), str(out), str(cfg)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: marker.is_file() or proc.poll() is not None, f"the study to block ({what})", timeout=600)
    assert proc.poll() is None, f"the study ended before {what}"
    worker = int(marker.read_text())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    wait_for(lambda: process_gone(worker), "the blocked worker to die with the study", timeout=30)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="workers die with the study on Linux only")
def test_real_study_killed_during_training_then_resumed_matches(tmp_path, tiny_twin, monkeypatch):
    """A real (tiny) study killed (kill -9) right after its train unit saved the epoch-1 checkpoint,
    then rerun, gives the uninterrupted run's summary; the train unit resumes from last.ckpt. The
    reference: the run's own config trained here without a stop, then `lczldl evaluate`'s
    evaluate_runs (whose summary.csv equals the study's for the same runs: test_pack_study)."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    store = tiny_twin[1]                   # the session's prepared tiny twin (read only)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(TINY_STUDY_CONFIG)
    # --workers 2: one torch thread per unit (a thread share of 2 spin-waits on shared cores); the
    # units of one run still run one after the other
    common = ["--data", str(store), "--config", str(cfg), "--regimes", "dist", "--seeds", "0", "--workers", "2"]
    out = tmp_path / "study"
    work = {"train": f"{fakework.__name__}:train_blocking_after_epoch_1"}
    kill_study_when_blocked(store, out, cfg, f"regimes='dist', seeds='0', workers=2, work={work!r}",
                            out / "checkpointed-train-dist-seed0", "its train unit reached epoch 1")
    run = out / "runs" / "dist" / "seed0"
    assert json.loads((run / "run.json").read_text())["status"] == "running"
    assert train_epoch(run) == 2 and (run / "checkpoints" / "last.ckpt").is_file()
    main(["study", *common, "--out", str(out)])      # the same command again (its units: fresh processes)
    assert "resuming from" in (out / "logs" / "train-dist-seed0.log").read_text()
    info = json.loads((out / "study.json").read_text())
    assert info["status"] == "finished" and (out / "report.html").is_file()
    assert json.loads((run / "run.json").read_text())["resumed"] is True

    ref = train_run(store, 0, tmp_path / "ref", load_config(run / "config.yaml"), progress=False)
    assert ref.name == "seed0" and json.loads((ref / "run.json").read_text()).get("resumed") is not True
    assert (out / "summary.csv").read_text() == reference_summary(ref.parents[1], out)
