"""Issue 11's done-when check, as a user runs it: `lczldl study --pack 4` on the tiny twin (CPU)
writes run folders that `lczldl evaluate`, `lczldl figures` and `lczldl predict` consume
unchanged; and (slow) a packed study killed with SIGKILL mid-pack resumes to the same summary."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

from lczldl.cli.main import main
from lczldl.viz import beyond_section as BS
from lczldl.viz import report as R

from . import fakework
from .test_progress_and_real import kill_study_when_blocked
from .test_runner import ROOT

RUNS = [("onehot", 0), ("dist", 0)]          # the grid's order: one pack (up to 4 runs) holds both
CONFIG = ("model:\n  depth: 5\n  width: 4\ntrain:\n  max_epochs: 3\n  patience: 5\n"
          "evaluation:\n  mc_passes: 2\nstudy:\n  figures_pdf: false\n")  # small: formats, not speed
GRID = ["--regimes", "onehot,dist", "--seeds", "0", "--pack", "4", "--workers", "2"]
REPO = Path(__file__).resolve().parents[2]
#: every test here needs the packed study (~40 s of CPU: 2 runs trained, evaluated, reported)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def packed(tmp_path_factory, tiny_twin):
    """(tmp, store, config, study) after `lczldl study --pack 4` on the tiny twin."""
    tmp = tmp_path_factory.mktemp("packed")
    store = tiny_twin[1]                   # the session's prepared tiny twin (read only)
    cfg = tmp / "config.yaml"
    cfg.write_text(CONFIG)
    main(["study", "--data", str(store), "--out", str(tmp / "study"), "--config", str(cfg), *GRID])
    return tmp, store, cfg, tmp / "study"


def test_study_pack_4_trains_the_grid_in_one_pack(packed):
    _, _, _, study = packed
    info = json.loads((study / "study.json").read_text())
    assert info["status"] == "finished" and info["pack"] == 4 and not info["failures"]
    assert info["units"]["pack-0"]["status"] == "done" and "pack-1" not in info["units"]
    members = [f"{r}/seed{s}" for r, s in RUNS]
    for regime, seed in RUNS:
        run = study / "runs" / regime / f"seed{seed}"
        marker = json.loads((study / "units" / f"train-{regime}-seed{seed}.json").read_text())
        assert marker["status"] == "done" and marker["result"]["pack"] == "pack-0"
        run_info = json.loads((run / "run.json").read_text())
        assert run_info["status"] == "finished" and run_info["epochs"] == 3
        assert run_info["pack"] == {"members": members, "device": "cpu", "precision": "fp32"}
        assert (run / "metrics.json").is_file() and (run / "metrics_ts.json").is_file()
    assert (study / "summary.csv").is_file() and (study / "report.html").is_file()
    assert "pack-0" in (study / "logs" / "pack-0.log").read_text()


def test_evaluate_consumes_the_packed_runs(packed, tmp_path):
    _, _, cfg, study = packed
    main(["evaluate", "--runs", str(study / "runs"), "--out", str(tmp_path / "eval"), "--config", str(cfg)])
    assert (tmp_path / "eval" / "summary.csv").read_text() == (study / "summary.csv").read_text()


def test_the_report_draws_every_figure_from_the_packed_runs(packed):
    """The study's report unit (`lczldl figures`' redraw_study) read the packed run folders: every
    figure but the vote-budget one (no budget here), PNG only (study.figures_pdf false), each in
    report.html."""
    _, _, _, study = packed
    stems = {s for s, _ in R.FIGURES + BS.FIGURES} - {BS.VOTE_BUDGET}
    assert {p.name for p in (study / "figures").iterdir()} == {f"{s}.png" for s in stems}
    html = (study / "report.html").read_text()
    assert html.count('<img src="data:image/png;base64,') == len(stems)


def test_predict_maps_a_scene_with_a_packed_run(packed, tmp_path):
    spec = importlib.util.spec_from_file_location("make_s2_products", REPO / "scripts" / "make_s2_products.py")
    s2 = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(s2)
    scene = s2.write_stack(tmp_path / "scene.tif", "03.01")           # uint16 DN, no offset
    _, _, _, study = packed
    ckpt = study / "runs" / "dist" / "seed0" / "checkpoints" / "best.ckpt"
    main(["predict", "--checkpoint", str(ckpt), "--scene", str(scene), "--out", str(tmp_path / "map"),
          "--scale", "10000", "--stride", "16"])
    rec = json.loads((tmp_path / "map" / "predict.json").read_text())
    assert rec["windows_predicted"] > 0
    with rasterio.open(tmp_path / "map" / "lcz.tif") as src:
        lcz = src.read(1)
    assert set(np.unique(lcz[lcz > 0])) <= set(range(1, 11))
    with rasterio.open(tmp_path / "map" / "probability.tif") as src:
        prob = src.read()
    assert prob.shape[0] == 10


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="workers die with the study on Linux only")
def test_packed_study_killed_mid_pack_resumes_to_the_same_summary(packed, monkeypatch):
    """kill -9 of the study once its pack committed epoch 0 (the pack worker dies with it), then
    the same command again: the pack resumes every member from last.ckpt (train_pack(resume=True))
    and the summary equals the uninterrupted packed study's."""
    tmp, store, cfg, ref = packed
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    out = tmp / "killed"
    work = {"pack": f"{fakework.__name__}:pack_blocking_after_epoch_0"}
    kill_study_when_blocked(store, out, cfg, f"regimes='onehot,dist', seeds='0', workers=2, pack=4, work={work!r}",
                            out / "checkpointed-pack-0", "its pack committed epoch 0")
    for regime, seed in RUNS:
        run = out / "runs" / regime / f"seed{seed}"
        assert json.loads((run / "run.json").read_text())["status"] == "running"
        assert (run / "checkpoints" / "last.ckpt").is_file()
    res = subprocess.run([sys.executable, "-m", "lczldl.cli.main", "study", "--data", str(store), "--out", str(out),
                          "--config", str(cfg), *GRID], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    log = (out / "logs" / "pack-0.log").read_text()
    for regime, seed in RUNS:
        assert json.loads((out / "runs" / regime / f"seed{seed}" / "run.json").read_text())["resumed"] is True
        assert f"train-{regime}-seed{seed}: resuming from" in log
    assert (out / "summary.csv").read_text() == (ref / "summary.csv").read_text()
    assert json.loads((out / "study.json").read_text())["status"] == "finished"
