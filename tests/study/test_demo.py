"""The demo's packaged config and its end-of-run comparison (the full demo is timed by hand, docs/study.md)."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from lczldl.errors import ConfigError
from lczldl.regimes import PAPER_REGIMES
from lczldl.study.demo import (
    PROFILES,
    default_profile,
    demo_config,
    key_comparison,
    print_comparison,
    profile,
    read_summary,
)
from lczldl.study.runner import load_study_config


def test_demo_config_is_valid_and_reduced():
    raw, cfg = load_study_config(demo_config())
    assert cfg.study.regimes == list(PAPER_REGIMES) and cfg.study.seeds == [0, 1]
    assert cfg.train.max_epochs == 12 and cfg.train.lr_step_epochs == 3 and cfg.evaluation.mc_passes == 10
    assert raw["train"]["max_epochs"] == cfg.train.max_epochs and "study" not in raw
    assert PROFILES["cpu"].twin_size == "small"


def test_profile_names_and_the_default_per_machine():
    assert profile("default") is PROFILES["cpu"]                  # the old name still works
    assert default_profile(cuda=False) == "cpu" and default_profile(cuda=True) == "paper"
    with pytest.raises(ConfigError, match="^profile='gpu': choose one of cpu, paper, tiny$"):
        profile("gpu")


def test_paper_profile_is_the_papers_protocol_on_the_medium_twin():
    raw, cfg = load_study_config(demo_config("paper"))
    assert PROFILES["paper"].twin_size == "medium"
    assert cfg.study.regimes == ["onehot", "onehot_ls", "dist", "dist_ls"] and cfg.study.seeds == [0, 1, 2, 3, 4]
    t = cfg.train
    assert (t.max_epochs, t.patience, t.lr_step_epochs, t.lr_decay, t.lr, t.batch_size) == (300, 20, 5, 0.5, 0.002, 64)
    assert cfg.evaluation.mc_passes == 20 and cfg.model.depth == 17 and cfg.model.width == 16


def test_every_profile_has_a_valid_config():
    for name, prof in PROFILES.items():
        _, cfg = load_study_config(demo_config(name))
        assert cfg.study.regimes and cfg.study.seeds, name
        assert prof.twin_size in ("tiny", "small", "medium", "full") and prof.notes


def _summary(tmp_path, dist_ece, extra=""):
    p = tmp_path / "summary.csv"
    p.write_text("regime,method,n_runs,oa_mean,oa_std,ce_distr_mean,ce_distr_std,ece_mean,ece_std\n"
                 "onehot,plain,2,0.70,0.01,1.20,0.02,0.070,0.01\n"
                 "onehot,temperature,2,0.70,0.01,1.00,0.02,0.020,0.01\n"
                 f"dist,plain,2,0.71,0.01,1.10,0.02,{dist_ece},0.01\n" + extra)
    return read_summary(p)


def test_key_comparison_and_verdict(tmp_path):
    rows = _summary(tmp_path, 0.060)
    assert key_comparison(rows) == {"onehot": {"ce_distr": 1.20, "ece": 0.070, "oa": 0.70},
                                    "dist": {"ce_distr": 1.10, "ece": 0.060, "oa": 0.71}}
    con = Console(file=io.StringIO(), width=200)
    assert print_comparison(con, rows) == {("dist", "ce_distr"): True, ("dist", "ece"): True}
    assert "1.1000 vs 1.2000" in con.file.getvalue()
    con = Console(file=io.StringIO(), width=200)
    assert print_comparison(con, _summary(tmp_path, 0.080)) == {("dist", "ce_distr"): True,
                                                                ("dist", "ece"): False}
    assert "NOT lower" in con.file.getvalue()


def test_comparison_covers_dist_ls_and_overconfidence(tmp_path):
    p = tmp_path / "summary.csv"
    p.write_text("regime,method,oa_mean,ce_distr_mean,ece_mean,overconfidence_mean\n"
                 "onehot,plain,0.70,1.20,0.070,0.050\n"
                 "dist,plain,0.71,1.10,0.060,-0.020\n"
                 "dist_ls,plain,0.72,1.25,0.065,-0.040\n")
    rows = read_summary(p)
    assert key_comparison(rows)["dist_ls"] == {"ce_distr": 1.25, "ece": 0.065, "overconfidence": -0.04,
                                               "oa": 0.72}
    con = Console(file=io.StringIO(), width=200)
    assert print_comparison(con, rows) == {("dist", "ce_distr"): True, ("dist", "ece"): True,
                                           ("dist_ls", "ce_distr"): False, ("dist_ls", "ece"): True}
    text = con.file.getvalue()
    assert "overconfidence" in text and "-0.0400" in text and "dist_ls vs onehot, ce_distr: 1.2500" in text


@pytest.mark.parametrize("name, warned", [("paper", True), ("cpu", False)])
def test_paper_profile_without_cuda_says_it_is_a_long_cpu_job(tmp_path, monkeypatch, name, warned):
    from lczldl.study import demo, runner

    monkeypatch.setattr(demo, "synthesize_once", lambda *a, **k: None)
    monkeypatch.setattr(demo, "default_profile", lambda cuda=None: "cpu")      # a machine without CUDA
    seen = {}
    monkeypatch.setattr(runner, "run_study", lambda **kw: seen.update(kw))
    buf = io.StringIO()
    demo.run_demo(tmp_path / "d", name, console=Console(file=buf, width=200))
    assert seen["config"] == demo_config(name)                   # the profile's study still runs
    assert ("without CUDA" in buf.getvalue()) is warned
