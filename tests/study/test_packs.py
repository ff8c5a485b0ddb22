"""Packs in the study: the pack size (typed > config > default per machine), pack units in the DAG,
member markers (reuse across pack sizes, a member's failure, a pack that dies), the progress
overview of a running pack, and the real pack work recording a failing member from its run.json."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from rich.console import Console

from lczldl.config import load_config
from lczldl.errors import ConfigError
from lczldl.study.packs import default_pack, pack_gpus, resolve_pack
from lczldl.study.progress import Overview
from lczldl.study.runner import load_study_config, run_study
from lczldl.study.scheduler import Scheduler
from lczldl.study.units import build_units, read_marker

from .test_runner import EXPECTED_SUMMARY, WORK, _importable, calls, study_run  # noqa: F401 (autouse fixture)

TRAINS = ["train-onehot-seed0", "train-dist-seed0", "train-onehot-seed1", "train-dist-seed1"]


# ------------------------------------------------------------------------------ pack size

@pytest.mark.parametrize("n_runs, gpus, expected", [
    (20, 0, 1),           # CPU: one run per process
    (20, 1, 20),          # one GPU: the grid in one pack
    (20, 2, 10),
    (20, 8, 3),           # ceil(20 / 8)
    (45, 1, 15),          # at most 20 a pack: 3 packs of 15
    (3, 4, 1),            # more GPUs than runs
])
def test_default_pack(n_runs, gpus, expected):
    assert default_pack(n_runs, gpus) == expected


def test_pack_size_per_machine_and_executor():
    cpu = load_config(None, None, **{"study.workers": 2})
    assert resolve_pack(cpu, 20, cuda=False, n_gpus=0) == 1
    assert resolve_pack(cpu, 20, cuda=True, n_gpus=1) == 20          # one GPU: one pack
    assert resolve_pack(cpu, 20, cuda=True, n_gpus=4) == 10          # 2 workers: two packs at once
    four = load_config(None, None, **{"study.workers": 4})
    assert resolve_pack(four, 20, cuda=True, n_gpus=4) == 5
    slurm = load_config(None, None, **{"study.executor": "slurm"})
    assert pack_gpus(slurm.study, cuda=False, n_gpus=0) == 1        # the login node has no GPU; the jobs do
    assert resolve_pack(slurm, 20, cuda=False, n_gpus=0) == 20
    cpu_jobs = load_config(None, None, **{"study.executor": "slurm", "study.slurm": {"gpus_per_node": 0}})
    assert resolve_pack(cpu_jobs, 20, cuda=False, n_gpus=0) == 1


def test_given_pack_wins_and_a_config_the_pack_cannot_train_is_refused():
    assert resolve_pack(load_config(None, None, **{"study.pack": 4}), 20, cuda=False, n_gpus=0) == 4
    assert resolve_pack(load_config(None, None, **{"study.pack": 1}), 20, cuda=True, n_gpus=1) == 1
    tb = load_config(None, ["train.logger=tensorboard"], **{"study.pack": 4})
    with pytest.raises(ConfigError, match=r"^pack=4: packed runs cannot train with train.logger=tensorboard.*; use pack=1$"):
        resolve_pack(tb, 20, typed=True, cuda=True, n_gpus=1)
    with pytest.raises(ConfigError, match=r"^study.pack=4: .*train.logger"):
        resolve_pack(tb, 20, cuda=True, n_gpus=1)
    # the default never packs what the packed engine cannot train
    for setting in ("train.logger=tensorboard", "train.precision=16-mixed", "train.engine=lightning",
                    "train.devices=2"):
        assert resolve_pack(load_config(None, [setting]), 20, cuda=True, n_gpus=1) == 1, setting


def test_pack_option_typed_beats_the_config(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("study:\n  pack: 3\n")
    assert load_study_config(cfg)[1].study.pack == 3
    assert load_study_config(cfg, pack=1)[1].study.pack == 1
    with pytest.raises(ConfigError, match=r"^pack 0: must be greater than or equal to 1$"):
        load_study_config(cfg, pack=0)


def test_build_units_with_packs():
    plain = build_units(["onehot", "dist"], [0, 1])
    assert build_units(["onehot", "dist"], [0, 1], pack=1) == plain and not any(u.kind == "pack" for u in plain)
    units = {u.id: u for u in build_units(["onehot", "dist"], [0, 1, 2], pack=4)}
    assert units["pack-0"].members == tuple(TRAINS) and units["pack-1"].members == ("train-onehot-seed2",
                                                                                     "train-dist-seed2")
    assert units["train-dist-seed1"].pack == "pack-0" and units["train-dist-seed2"].pack == "pack-1"
    assert units["evaluate-dist-seed1"].deps == ("train-dist-seed1",)      # downstream units unchanged
    with pytest.raises(ConfigError):
        build_units(["dist"], [0], pack=0)


# ------------------------------------------------------------------------------ scheduling (fake work)

def test_packed_study_then_reuse_across_pack_sizes(store, tmp_path):
    out = tmp_path / "study"
    info = study_run(store, out, pack=4)
    assert info["status"] == "finished" and info["pack"] == 4 and not info["failures"]
    assert (out / "summary.csv").read_text() == EXPECTED_SUMMARY      # the unpacked study's, by hand
    first = calls(out)
    assert first.count("pack-0") == 1 and sorted(c for c in first if c.startswith("train-")) == sorted(TRAINS)
    for uid in TRAINS:
        m = read_marker(out, uid)
        assert m["status"] == "done" and m["result"] == {"pack": "pack-0"} and m["log"].endswith("pack-0.log")
        assert info["units"][uid]["pack"] == "pack-0"
    assert info["units"]["pack-0"]["status"] == "done"
    # rerun, then switching to one process per run: the members' markers are reused, nothing runs
    study_run(store, out, pack=4)
    info = study_run(store, out, pack=1)
    assert calls(out) == first and info["status"] == "finished" and "pack-0" not in info["units"]
    # and back, extending the grid: only the new seed's runs are packed (pack-1 holds them)
    info = study_run(store, out, pack=4, seeds="0-2")
    new = calls(out)[len(first):]
    assert sorted(new) == sorted(["pack-1", "train-onehot-seed2", "train-dist-seed2", "evaluate-onehot-seed2",
                                  "evaluate-dist-seed2", "calibrate-onehot-seed2", "calibrate-dist-seed2",
                                  "aggregate", "report"])
    assert info["units"]["pack-0"].get("reused") is True


def test_a_member_failing_inside_a_pack(store, tmp_path):
    out = tmp_path / "study"
    out.mkdir()
    (out / "fail.txt").write_text("train-dist-seed1\n")
    with pytest.raises(Exception, match=r"train-dist-seed1: ValueError: planned failure.*logs/pack-0.log"):
        study_run(store, out, pack=4)
    info = json.loads((out / "study.json").read_text())
    assert [f["id"] for f in info["failures"]] == ["train-dist-seed1"]           # the pack itself is done
    assert info["failures"][0]["error"] == "ValueError: planned failure of train-dist-seed1"
    assert {s["id"] for s in info["skipped"]} == {"evaluate-dist-seed1", "calibrate-dist-seed1"}
    assert (out / "summary.csv").read_text() == EXPECTED_SUMMARY.replace("dist,1,1.550\n", "")
    before = len(calls(out))
    (out / "fail.txt").unlink()
    info = study_run(store, out, pack=4)
    # the pack runs again for its one unfinished member only
    assert sorted(calls(out)[before:]) == sorted(["pack-0", "train-dist-seed1", "evaluate-dist-seed1",
                                                  "calibrate-dist-seed1", "aggregate", "report"])
    spec = json.loads((out / "units" / "pack-0.spec.json").read_text())
    assert [m["id"] for m in spec["members"]] == ["train-dist-seed1"]
    assert info["status"] == "finished" and (out / "summary.csv").read_text() == EXPECTED_SUMMARY


def test_a_pack_that_dies_fails_the_members_it_had_not_recorded(store, tmp_path):
    out = tmp_path / "study"
    out.mkdir()
    (out / "crash.txt").write_text("train-onehot-seed1\n")                  # the third member
    with pytest.raises(Exception, match="unit"):
        study_run(store, out, pack=4)
    info = json.loads((out / "study.json").read_text())
    failed = {f["id"]: f["error"] for f in info["failures"]}
    assert set(failed) == {"pack-0", "train-onehot-seed1", "train-dist-seed1"}
    assert "exit code 3" in failed["pack-0"]
    assert failed["train-dist-seed1"].startswith("pack-0 ended without recording this run (worker ended with exit code 3")
    assert read_marker(out, "train-dist-seed1")["status"] == "failed"
    assert (out / "summary.csv").read_text() == ("regime,seed,score\ndist,0,1.500\nonehot,0,0.500\n")


class _Ex:
    capacity = 1

    def shutdown(self):
        pass


def test_overview_shows_one_bar_per_member_of_a_running_pack(tmp_path):
    units = build_units(["onehot", "dist"], [0], pack=2)
    sch = Scheduler(units, tmp_path, _Ex(), make_spec=lambda u, up: {})
    members = [{"id": "train-onehot-seed0", "regime": "onehot", "seed": 0},
               {"id": "train-dist-seed0", "regime": "dist", "seed": 0}]
    sch.running["pack-0"] = (None, {"members": members}, sch.clock())
    for uid in ("pack-0", "train-onehot-seed0", "train-dist-seed0"):
        sch.state[uid]["status"] = "running"
    for regime, epochs in (("onehot", 3), ("dist", 1)):
        run = tmp_path / "runs" / regime / "seed0"
        run.mkdir(parents=True)
        (run / "metrics.csv").write_text("epoch\n" + "".join(f"{e}\n" for e in range(epochs)))
    con = Console(file=io.StringIO(), width=120)
    con.print(Overview(tmp_path, max_epochs=10, console=con).render(sch))
    lines = con.file.getvalue().splitlines()
    row = {name: next(x for x in lines if name in x) for name in ("train-onehot-seed0", "train-dist-seed0")}
    assert "epoch 3/10" in row["train-onehot-seed0"] and "epoch 1/10" in row["train-dist-seed0"]
    assert any("pack-0" in x for x in lines)


# ------------------------------------------------------------------------------ the real pack work

def test_real_pack_work_records_a_failing_member_from_its_run_json(tmp_path, monkeypatch):
    """study.work.pack on a tiny store: the healthy member's marker is done, the poisoned one's is
    failed with the reason its run.json records."""
    from lczldl.study import work
    from lczldl.training import packed_engine
    from training.conftest import write_tiny_store

    store = write_tiny_store(tmp_path / "store")
    make_targets = packed_engine.make_targets
    monkeypatch.setattr(packed_engine, "make_targets", lambda arrays, target, eps=0.1: (
        np.full_like(make_targets(arrays, target, eps), np.inf) if target == "distribution"
        else make_targets(arrays, target, eps)))
    cfg = tmp_path / "config.yaml"
    cfg.write_text("model:\n  depth: 5\n  width: 2\ntrain:\n  batch_size: 16\n  max_epochs: 2\n")
    (tmp_path / "units").mkdir()
    members = [{"id": f"train-{r}-seed0", "kind": "train", "regime": r, "seed": 0, "inputs": f"in-{r}"}
               for r in ("onehot", "dist")]
    spec = {"id": "pack-0", "study": str(tmp_path), "store": str(store), "runs": str(tmp_path / "runs"),
            "config": str(cfg), "log": str(tmp_path / "pack-0.log"), "threads": 1, "members": members}
    work.pack(spec)
    ok, bad = (read_marker(tmp_path, m["id"]) for m in members)
    assert (ok["status"], ok["inputs"], ok["result"]["pack"]) == ("done", "in-onehot", "pack-0")
    info = json.loads((tmp_path / "runs" / "dist" / "seed0" / "run.json").read_text())
    assert info["status"] == "failed" and "non-finite training loss" in info["error"]
    assert (bad["status"], bad["error"], bad["inputs"]) == ("failed", info["error"], "in-dist")
    # run again: the finished member is reused (its marker rewritten at once), the failed one retrains
    monkeypatch.undo()
    work.pack(spec)
    assert read_marker(tmp_path, "train-dist-seed0")["status"] == "done"


def test_run_study_refuses_pack_with_a_logger_before_writing(store, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("train:\n  logger: tensorboard\n")
    out = tmp_path / "study"
    with pytest.raises(ConfigError, match="^pack=2: packed runs cannot train with train.logger=tensorboard"):
        run_study(data=store, out=out, config=cfg, pack=2, work=WORK, progress=False)
    assert not out.exists()
