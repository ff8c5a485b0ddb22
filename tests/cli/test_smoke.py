"""The commands end to end on the tiny twin, as a user runs them: data synth, data inspect, demo
(the tiny profile) and evaluate. Each result is checked against another command's. (`lczldl
figures`: tests/viz/test_report.py draws its hand-made study with it.)"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from lczldl.cli.main import main


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
    from lczldl.study.demo import demo_config

    out = tmp_path / "eval"
    main(["evaluate", "--runs", str(demo / "runs"), "--out", str(out), "--config", str(demo_config("tiny"))])
    assert (out / "summary.csv").read_text() == (demo / "summary.csv").read_text()
