"""The commands end to end on the tiny twin, as a user runs them: data synth, data inspect, demo
(the tiny profile), evaluate, and a vote-budget grid added to the demo's finished study (issue 21's
done-when check at toy size). Each result is checked against another command's. (`lczldl
figures`: tests/viz/test_report.py draws its hand-made study with it.)"""

from __future__ import annotations

import csv
import json
import shutil

import h5py
import numpy as np
import pytest

from lczldl.cli.main import main
from lczldl.config import VoteBudgetConfig
from lczldl.data.budget_store import budget_counts, open_budget_store
from lczldl.data.store import open_store
from lczldl.study.demo import demo_config
from lczldl.viz.beyond_section import FIGURES, VOTE_BUDGET, VOTE_SETS


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke") / "demo"
    main(["demo", "--out", str(out), "--profile", "tiny"])
    return out


@pytest.mark.slow
def test_demo_tiny_profile_runs_the_whole_study(demo):
    info = json.loads((demo / "study.json").read_text())
    assert info["status"] == "finished" and info["regimes"] == ["onehot", "dist"] and info["seeds"] == [0]
    assert info["notes"] and "tiny" in info["notes"][0]
    rows = (demo / "summary.csv").read_text().splitlines()
    assert rows[0].startswith("regime,method,") and {r.split(",")[0] for r in rows[1:]} == {"onehot", "dist"}
    assert (demo / "report.html").is_file() and (demo / "report.md").is_file()
    # the tiny profile's study.figures_pdf is false: PNG only (`lczldl figures --pdf`: test_report)
    assert info["study_config"]["figures_pdf"] is False
    assert {p.suffix for p in (demo / "figures").iterdir()} == {".png"}


@pytest.mark.slow
def test_data_synth_writes_the_demos_twin(demo, tmp_path, capsys):
    main(["data", "synth", "--out", str(tmp_path / "raw"), "--size", "tiny", "--seed", "0"])
    assert capsys.readouterr().out.strip() == f"twin {tmp_path / 'raw'}: 18 files, 864 patches"
    names = sorted(p.name for p in (tmp_path / "raw").iterdir())
    assert names == sorted(p.name for p in (demo / "raw").glob("*.h5")) and len(names) == 18
    for name in names:                                 # the same seed and size: the same files
        with h5py.File(tmp_path / "raw" / name) as a, h5py.File(demo / "raw" / name) as b:
            assert np.array_equal(a["sen2"][()], b["sen2"][()]) and np.array_equal(a["label"][()], b["label"][()])


@pytest.mark.slow
def test_data_inspect_counts_what_prepare_kept(demo, capsys):
    manifest = json.loads((demo / "store" / "manifest.json").read_text())
    n = {s: v["n"] for s, v in manifest["splits"].items()}
    main(["data", "inspect", str(demo / "raw")])
    out = capsys.readouterr().out
    kept = next(line for line in out.splitlines() if "rows kept" in line).replace("│", " ").split()
    assert kept[2:] == [str(n["train"]), str(n["val"] + n["test"]), str(sum(n.values()))]
    main(["data", "inspect", str(demo / "store")])
    assert str(n["train"]) in capsys.readouterr().out


@pytest.mark.slow
def test_evaluate_gives_the_studys_summary(demo, tmp_path):
    out = tmp_path / "eval"
    main(["evaluate", "--runs", str(demo / "runs"), "--out", str(out), "--config", str(demo_config("tiny"))])
    assert (out / "summary.csv").read_text() == (demo / "summary.csv").read_text()


@pytest.fixture(scope="module")
def study(demo, tmp_path_factory):
    """(store, study) after `lczldl study --vote-budget 1,all --regimes dist` with demo_tiny.yaml on a
    copy of the demo's finished study (its store read where the demo prepared it): the grid's units
    run (train, evaluate and calibrate k=1; the summaries, the budget table, the report), the dist
    run the demo trained is reused as k=all."""
    out, store = tmp_path_factory.mktemp("budget") / "study", demo / "store"
    shutil.copytree(demo, out, ignore=shutil.ignore_patterns("raw", "store"))
    main(["study", "--data", str(store), "--out", str(out), "--config", str(demo_config("tiny")),
          "--regimes", "dist", "--vote-budget", "1,all"])
    return store, out


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_the_budget_runs_their_counts_and_the_table(study, demo):
    store, out = study
    info = json.loads((out / "study.json").read_text())
    assert info["status"] == "finished" and not info["failures"]
    main_run, k1 = out / "runs" / "dist" / "seed0", out / "budget" / "k1" / "runs" / "dist" / "seed0"
    # k=all is the demo's own dist run, not trained again
    assert (main_run / "run.json").read_text() == (demo / "runs" / "dist" / "seed0" / "run.json").read_text()
    run = json.loads((k1 / "run.json").read_text())
    assert run["status"] == "finished" and run["config"]["data"]["vote_budget"] == {"mode": "random", "seed": 0, "k": 1}
    assert run["vote_budget"] == budget_counts(open_budget_store(store, VoteBudgetConfig(k=1)))
    assert "vote_budget" not in json.loads((main_run / "run.json").read_text())
    assert (out / "budget" / "k1" / "summary.csv").is_file() and (out / "summary.csv").is_file()
    # validation from one vote per image, test from every vote
    p1, p = np.load(k1 / "predictions.npz"), np.load(main_run / "predictions.npz")
    assert ((p1["val_votes"] != 0).sum(axis=1) == 1).all() and len(p1["val_labels"]) == run["vote_budget"]["val"]["kept"]
    assert (p["val_votes"] != 0).sum() > (p1["val_votes"] != 0).sum()
    for key in ("labels", "votes", "distributions"):
        np.testing.assert_array_equal(p1[key], p[key])
    # the table: one row per k and regime, the runs' own numbers (one seed: no interval) and counts
    rows = {r["k"]: r for r in _rows(out / "budget" / "budget.csv")}
    assert set(rows) == {"1", "all"} and rows["1"]["mode"] == "random" and rows["1"]["seed"] == "0"
    for k, folder in (("1", k1), ("all", main_run)):
        m = json.loads((folder / "metrics.json").read_text())
        b = json.loads((folder / "beyond_plain.json").read_text())
        assert float(rows[k]["ce_distr_mean"]) == pytest.approx(m["ce_distr"], rel=1e-12)
        assert float(rows[k]["oa_mean"]) == pytest.approx(m["oa"], rel=1e-12)
        assert float(rows[k]["aps_90_vote_coverage_mean"]) == pytest.approx(b["aps_90_vote_coverage"], rel=1e-12)
        assert rows[k]["ce_distr_lo"] == ""                                        # one seed
    assert int(rows["1"]["train_kept"]) == run["vote_budget"]["train"]["kept"]
    assert int(rows["all"]["train_kept"]) == open_store(store).split("train").n


@pytest.mark.slow
def test_sets_calibrated_on_the_votes_for_every_run_and_method(study):
    _, out = study
    for folder in (out / "runs" / "dist" / "seed0", out / "budget" / "k1" / "runs" / "dist" / "seed0"):
        for method in ("plain", "temperature", "mc_dropout"):
            b = json.loads((folder / f"beyond_{method}.json").read_text())
            assert {"votecal_aps_90_vote_coverage", "votecal_lac_95_sscv_votes", "raps_90_covgap_label"} <= set(b)
            vs = b["detail"]["vote_sets"]["votecal_aps_90"]
            assert (vs["variant"], vs["m"]) == ("ecdf", 10) and "vote_coverage_ebin0" in vs
            assert "vote_coverage_stratum0" in b["detail"]["sets"]["aps_90"]
    ens = json.loads((out / "ensemble" / "dist" / "beyond_ensemble.json").read_text())
    assert "votecal_raps_95_set_size" in ens
    cols = _rows(out / "summary.csv")[0]
    assert {"votecal_aps_90_vote_coverage_mean", "aps_90_covgap_votes_mean", "aps_90_sscv_label_lo"} <= set(cols)


@pytest.mark.slow
def test_the_report_shows_both(study):
    _, out = study
    report = (out / "report.md").read_text()
    captions = dict(FIGURES)
    for stem in (VOTE_SETS, VOTE_BUDGET):
        # PNG only: the tiny profile's study.figures_pdf is false
        assert (out / "figures" / f"{stem}.png").is_file() and not (out / "figures" / f"{stem}.pdf").exists()
        assert f"figures/{stem}.png" in report
    assert captions[VOTE_BUDGET][:40] in report and "vote coverage of the APS 90 % sets" in report
    assert "How many votes per image does training need? (vote budget)" in report
    assert "Sets calibrated on the experts' votes at 90 %" in report
