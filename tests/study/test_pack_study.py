"""Issue 11's done-when check, as a user runs it: `lczldl study --pack 4` on the tiny twin (CPU),
killed with SIGKILL mid-pack and started again with the same command, resumes to the summary of an
uninterrupted pack and writes run folders that `lczldl evaluate`, `lczldl figures` and `lczldl
predict` consume unchanged."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

from lczldl.cli.main import main
from lczldl.config import load_config
from lczldl.training.packed import train_pack
from lczldl.viz import beyond_section as BS
from lczldl.viz import report as R

from . import fakework
from .test_progress_and_real import TINY_STUDY_CONFIG, kill_study_when_blocked, reference_summary
from .test_runner import ROOT

RUNS = [("onehot", 0), ("dist", 0)]          # the grid's order: one pack (up to 4 runs) holds both
GRID = ["--regimes", "onehot,dist", "--seeds", "0", "--pack", "4", "--workers", "2"]
REPO = Path(__file__).resolve().parents[2]
#: every test here needs the packed study (~40 s of CPU: killed, resumed, evaluated, reported)
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not sys.platform.startswith("linux"),
                                                  reason="workers die with the study on Linux only")]


@pytest.fixture(scope="module")
def packed(tmp_path_factory, tiny_twin):
    """(tmp, store, config, study, after_kill) of `lczldl study --pack 4` on the tiny twin, killed
    (kill -9) once its pack committed epoch 0 (the pack worker dies with it), then the same command
    again. ``after_kill``: per run, (run.json status, last.ckpt exists) between the two."""
    tmp = tmp_path_factory.mktemp("packed")
    store = tiny_twin[1]                   # the session's prepared tiny twin (read only)
    cfg = tmp / "config.yaml"
    cfg.write_text(TINY_STUDY_CONFIG)
    study = tmp / "study"
    work = {"pack": f"{fakework.__name__}:pack_blocking_after_epoch_0"}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
        kill_study_when_blocked(store, study, cfg, f"regimes='onehot,dist', seeds='0', workers=2, pack=4, "
                                f"work={work!r}", study / "checkpointed-pack-0", "its pack committed epoch 0")
    after_kill = {(r, s): (json.loads((study / "runs" / r / f"seed{s}" / "run.json").read_text())["status"],
                           (study / "runs" / r / f"seed{s}" / "checkpoints" / "last.ckpt").is_file())
                  for r, s in RUNS}
    # the same command again, in this process (its units are fresh processes either way)
    main(["study", "--data", str(store), "--out", str(study), "--config", str(cfg), *GRID])
    return tmp, store, cfg, study, after_kill


def test_study_pack_4_trains_the_grid_in_one_pack(packed):
    study = packed[3]
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
    _, _, cfg, study, _ = packed
    main(["evaluate", "--runs", str(study / "runs"), "--out", str(tmp_path / "eval"), "--config", str(cfg)])
    assert (tmp_path / "eval" / "summary.csv").read_text() == (study / "summary.csv").read_text()


def test_the_report_draws_every_figure_from_the_packed_runs(packed):
    """The study's report unit (`lczldl figures`' redraw_study) read the packed run folders: every
    figure but the vote-budget one (no budget here), PNG only (study.figures_pdf false), each in
    report.html."""
    study = packed[3]
    stems = {s for s, _ in R.FIGURES + BS.FIGURES} - {BS.VOTE_BUDGET}
    assert {p.name for p in (study / "figures").iterdir()} == {f"{s}.png" for s in stems}
    html = (study / "report.html").read_text()
    assert html.count('<img src="data:image/png;base64,') == len(stems)


def test_predict_maps_a_scene_with_a_packed_run(packed, tmp_path):
    spec = importlib.util.spec_from_file_location("make_s2_products", REPO / "scripts" / "make_s2_products.py")
    s2 = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(s2)
    scene = s2.write_stack(tmp_path / "scene.tif", "03.01")           # uint16 DN, no offset
    study = packed[3]
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


def test_packed_study_killed_mid_pack_resumes_to_the_same_summary(packed):
    """Killed once its pack committed epoch 0, every member was running with a last.ckpt; the same
    command resumed every member from it (train_pack(resume=True)) and its summary equals an
    uninterrupted pack's: the members' own config trained together in this process, evaluated by
    evaluate_runs (whose summary.csv equals the study's for the same runs, test above)."""
    tmp, store, _, study, after_kill = packed
    assert after_kill == {run: ("running", True) for run in RUNS}
    log = (study / "logs" / "pack-0.log").read_text()
    for regime, seed in RUNS:
        assert json.loads((study / "runs" / regime / f"seed{seed}" / "run.json").read_text())["resumed"] is True
        assert f"train-{regime}-seed{seed}: resuming from" in log
    assert json.loads((study / "study.json").read_text())["status"] == "finished"
    ref = tmp / "ref" / "runs"
    cfg = load_config(study / "runs" / RUNS[0][0] / f"seed{RUNS[0][1]}" / "config.yaml")
    results = train_pack(store, RUNS, ref, cfg)
    assert [r.status for r in results] == ["finished"] * len(RUNS)
    assert (study / "summary.csv").read_text() == reference_summary(ref, study)
