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
    print_verdict,
    profile,
    read_summary,
)
from lczldl.study.runner import load_study_config


def test_demo_config_is_valid_and_reduced():
    """cpu: onehot vs dist x 2 seeds (the 10-minute design, docs/study.md); cpu-full: the same
    schedule with the four regimes."""
    raw, cfg = load_study_config(demo_config())
    assert cfg.study.regimes == ["onehot", "dist"] and cfg.study.seeds == [0, 1]
    assert cfg.train.max_epochs == 12 and cfg.train.lr_step_epochs == 3 and cfg.evaluation.mc_passes == 10
    assert raw["train"]["max_epochs"] == cfg.train.max_epochs and "study" not in raw
    assert PROFILES["cpu"].twin_size == "small"
    raw_full, full = load_study_config(demo_config("cpu-full"))
    assert full.study.regimes == list(PAPER_REGIMES) and raw_full == raw
    assert PROFILES["cpu-full"].twin_size == "small"


def test_profile_names_and_the_default_per_machine():
    assert profile("default") is PROFILES["cpu"]                  # the old name still works
    assert default_profile(cuda=False) == "cpu" and default_profile(cuda=True) == "paper"
    with pytest.raises(ConfigError, match="^profile='gpu': choose one of cpu, cpu-full, paper, tiny$"):
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


def test_key_comparison_prints_the_means_but_claims_nothing(tmp_path):
    """The means table is shown; whether a regime is lower is the verdict's to say, not the means'."""
    rows = _summary(tmp_path, 0.060)
    assert key_comparison(rows) == {"onehot": {"ce_distr": 1.20, "ece": 0.070, "oa": 0.70},
                                    "dist": {"ce_distr": 1.10, "ece": 0.060, "oa": 0.71}}
    con = Console(file=io.StringIO(), width=200)
    print_comparison(con, rows)
    text = con.file.getvalue()
    assert "1.1000" in text and "1.2000" in text
    assert "as in the paper" not in text and "NOT lower" not in text and "->" not in text


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
    print_comparison(con, rows)
    text = con.file.getvalue()
    assert "overconfidence" in text and "-0.0400" in text


def test_the_demo_prints_the_verdict_table_it_wrote(tmp_path):
    """verdict.csv written by the summary writer, read back, printed: the words and numbers match."""
    from lczldl.evaluation.files import read_verdict
    from lczldl.evaluation.summary import write_summary

    verdicts = [
        {"regime": "dist", "baseline": "onehot", "method": "plain", "metric": "ce_distr", "n_pairs": 5,
         "mean_diff": -0.0612, "ci_low": -0.09, "ci_high": -0.032, "p": 0.002, "p_holm": 0.016,
         "verdict": "lower"},
        {"regime": "dist", "baseline": "onehot", "method": "plain", "metric": "ece", "n_pairs": 5,
         "mean_diff": 0.004, "ci_low": -0.01, "ci_high": 0.018, "p": 0.5, "p_holm": 1.0,
         "verdict": "not resolved with 5 seeds at this budget"}]
    records = [{"regime": "onehot", "method": "plain", "seed": 0, "metrics": {"oa": 0.7}}]
    write_summary(tmp_path, records, verdicts)
    rows = read_verdict(tmp_path / "verdict.csv")
    assert rows == verdicts
    con = Console(file=io.StringIO(), width=80)                   # a plain terminal
    print_verdict(con, rows)
    text = con.file.getvalue()
    lines = text.splitlines()
    first = next(line for line in lines if "dist: ce_distr" in line)       # one line per claim
    assert "-0.0612" in first and "[-0.0900, -0.0320]" in first and "0.016" in first and "lower" in first
    second = next(line for line in lines if "dist: ece" in line)
    assert "not resolved" in second and "1.000" in second
    assert '("not resolved": not resolved with 5 seeds at this budget)' in text


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


def test_where_the_time_went_sums_the_unit_markers_by_kind(tmp_path):
    import json

    from lczldl.study.demo import where_the_time_went

    units = tmp_path / "units"
    units.mkdir()
    for uid, kind, wall in (("train-onehot-seed0", "train", 120.0), ("train-dist-seed0", "train", 180.0),
                            ("evaluate-dist-seed0", "evaluate", 30.0)):
        (units / f"{uid}.json").write_text(json.dumps({"id": uid, "kind": kind, "wall_s": wall}))
        (units / f"{uid}.spec.json").write_text(json.dumps({"kind": kind}))        # specs are not markers
    assert where_the_time_went(tmp_path) == "train 5.0 min, evaluate 0.5 min summed over units"
