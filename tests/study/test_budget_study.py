"""The vote-budget grid of a study with fake units: its units, folders and specs, a grid added to a
finished study runs only the new units, what the train units are configured with, and the settings
refused before anything is written."""

from __future__ import annotations

import json
import os

import pytest

from lczldl.errors import ConfigError
from lczldl.study.runner import run_study
from lczldl.study.units import build_units
from lczldl.study.work import _run_config

from . import fakework
from .test_runner import ROOT, WORK, calls


@pytest.fixture(autouse=True)
def _importable(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))


def study_run(store, out, **kw):
    kw.setdefault("regimes", "onehot,dist")
    kw.setdefault("seeds", "0")
    kw.setdefault("workers", 2)
    return run_study(data=store, out=out, work=WORK, progress=False, **kw)


def test_budget_units_and_packs():
    units = {u.id: u for u in build_units(["onehot", "dist"], [0], pack=2, budgets=[1, 3])}
    assert units["train-k3-dist-seed0"].budget == 3 and units["calibrate-k1-onehot-seed0"].deps == (
        "evaluate-k1-onehot-seed0",)
    assert units["aggregate-k3"].deps == ("calibrate-k3-onehot-seed0", "calibrate-k3-dist-seed0")
    assert units["budget"].deps == ("aggregate", "aggregate-k1", "aggregate-k3") and units["budget"].soft
    assert units["report"].deps == ("aggregate", "budget") and units["report"].soft
    # one pack per budget: a pack trains one config
    assert [(u.id, u.budget, u.members) for u in units.values() if u.kind == "pack"] == [
        ("pack-0", None, ("train-onehot-seed0", "train-dist-seed0")),
        ("pack-1", 1, ("train-k1-onehot-seed0", "train-k1-dist-seed0")),
        ("pack-2", 3, ("train-k3-onehot-seed0", "train-k3-dist-seed0"))]
    assert build_units(["dist"], [0, 1], budgets=()) == build_units(["dist"], [0, 1])   # no grid: unchanged
    assert [u.id for u in build_units(["dist"], [0])][-2:] == ["aggregate", "report"]


def test_a_budget_grid_added_to_a_finished_study_runs_only_its_units(store, tmp_path):
    out = tmp_path / "study"
    study_run(store, out)
    first = calls(out)
    info = study_run(store, out, vote_budget="3,all,1")
    new = calls(out)[len(first):]
    grid = [f"{kind}-k{k}-{r}-seed0" for k in (1, 3) for kind in ("train", "evaluate", "calibrate")
            for r in ("onehot", "dist")]
    assert sorted(new) == sorted(grid + ["aggregate-k1", "aggregate-k3", "budget", "report"])
    assert info["status"] == "finished" and info["study_config"]["vote_budget"] == {"mode": "random", "seed": 0,
                                                                                     "k": [1, 3]}
    for k in (1, 3):
        run = out / "budget" / f"k{k}" / "runs" / "dist" / "seed0"
        assert float((run / "weights.txt").read_text()) == fakework.value("dist", 0)
        assert (out / "budget" / f"k{k}" / "summary.csv").read_text() == "regime,seed,score\ndist,0,1.500\nonehot,0,0.500\n"
    assert (out / "budget" / "budget.csv").read_text().startswith("k1\nregime,seed,score\n")
    assert (out / "summary.csv").read_text() == "regime,seed,score\ndist,0,1.500\nonehot,0,0.500\n"
    # what a budget train unit is configured with: the study's run config and the grid's draw
    spec = json.loads((out / "units" / "train-k3-dist-seed0.spec.json").read_text())
    assert spec["budget"] == 3 and spec["run"] == str(out.resolve() / "budget" / "k3" / "runs" / "dist" / "seed0")
    cfg = _run_config(spec, **{"train.regime": "dist"})
    assert (cfg.data.vote_budget.k, cfg.data.vote_budget.mode, cfg.data.vote_budget.seed) == (3, "random", 0)
    main = json.loads((out / "units" / "train-dist-seed0.spec.json").read_text())
    assert main["budget"] is None and _run_config(main).data.vote_budget.k is None
    # rerun: nothing to do
    study_run(store, out, vote_budget="1,3")
    assert len(calls(out)) == len(first) + len(new)


def test_budget_draw_comes_from_the_study_section(store, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("study:\n  vote_budget:\n    k: [2]\n    mode: panel\n    seed: 9\n")
    out = tmp_path / "study"
    study_run(store, out, config=cfg, regimes="dist")
    spec = json.loads((out / "units" / "train-k2-dist-seed0.spec.json").read_text())
    c = _run_config(spec)
    assert (c.data.vote_budget.k, c.data.vote_budget.mode, c.data.vote_budget.seed) == (2, "panel", 9)


@pytest.mark.parametrize("kw,config,message", [
    ({"regimes": "dist,dawid_skene", "vote_budget": "1"}, "",
     r"^vote_budget=1: regime\(s\) dawid_skene cannot be trained on a vote budget"),
    ({"vote_budget": "2,all"}, "data:\n  vote_budget:\n    k: 3\n",
     "^vote_budget=2: the run config sets data.vote_budget.k=3 as well"),
    ({}, "data:\n  vote_budget:\n    k: 3\nstudy:\n  vote_budget:\n    k: [1]\n",
     "study.vote_budget.k=1: the run config sets data.vote_budget.k=3"),
    ({"vote_budget": "0"}, "", "^vote_budget 0: vote budgets must be whole numbers"),
])
def test_refused_before_anything_is_written(store, tmp_path, kw, config, message):
    cfg = None
    if config:
        cfg = tmp_path / "c.yaml"
        cfg.write_text(config)
    out = tmp_path / "study"
    with pytest.raises(ConfigError, match=message):
        study_run(store, out, config=cfg, **kw)
    assert not out.exists()
