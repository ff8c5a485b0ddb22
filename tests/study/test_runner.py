"""The study scheduler end to end with tiny fake units in real worker processes.

Fake work lives in tests/study/fakework.py; worker processes import it through PYTHONPATH.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lczldl.errors import ConfigError, LczldlError, RunError
from lczldl.study.executors import LocalExecutor, make_executor
from lczldl.study.runner import run_study
from lczldl.study.units import marker_path, read_marker

from . import fakework

MOD = fakework.__name__
ROOT = Path(fakework.__file__).resolve().parents[len(MOD.split(".")) - 1]
WORK = fakework.work(MOD)


@pytest.fixture(autouse=True)
def _importable(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))


def calls(study: Path) -> list[str]:
    p = study / "calls.txt"
    return p.read_text().split() if p.is_file() else []


def study_run(store, out, **kw):
    kw.setdefault("regimes", "onehot,dist")
    kw.setdefault("seeds", "0-1")
    kw.setdefault("workers", 2)
    return run_study(data=store, out=out, work=WORK, progress=False, **kw)


EXPECTED_SUMMARY = ("regime,seed,score\ndist,0,1.500\ndist,1,1.550\n"
                    "onehot,0,0.500\nonehot,1,0.550\n")


def test_full_study_then_rerun_skips_everything(store, tmp_path):
    out = tmp_path / "study"
    info = study_run(store, out)
    assert info["status"] == "finished" and info["counts"]["done"] == 14 and not info["failures"]
    assert (out / "summary.csv").read_text() == EXPECTED_SUMMARY  # values by hand: (base + 0.1 seed) / 2
    assert (out / "report.md").is_file()
    first = calls(out)
    assert sorted(first) == sorted(json.loads((out / "study.json").read_text())["units"])  # each unit once
    # every unit has a marker and a log with the executor's header
    for uid in first:
        assert read_marker(out, uid)["status"] == "done"
        assert f"lczldl unit {uid}: done" in (out / "logs" / f"{uid}.log").read_text()
    # rerun: nothing runs again, same summary
    info2 = study_run(store, out)
    assert calls(out) == first
    assert info2["status"] == "finished" and all(u.get("reused") for u in info2["units"].values())
    assert (out / "summary.csv").read_text() == EXPECTED_SUMMARY
    # extending the grid runs only the new seed and re-aggregates
    study_run(store, out, seeds="0-2")
    new = calls(out)[len(first):]
    assert sorted(new) == sorted([f"{k}-{r}-seed2" for k in ("train", "evaluate", "calibrate")
                                  for r in ("onehot", "dist")] + ["aggregate", "report"])
    assert "dist,2,1.600" in (out / "summary.csv").read_text()


def test_failing_unit_does_not_stop_others_and_is_reported(store, tmp_path):
    out = tmp_path / "study"
    out.mkdir()
    (out / "fail.txt").write_text("train-dist-seed1\n")
    with pytest.raises(RunError, match=r"train-dist-seed1.*planned failure.*logs/train-dist-seed1.log"):
        study_run(store, out)
    info = json.loads((out / "study.json").read_text())
    assert info["status"] == "finished_with_failures"
    assert [f["id"] for f in info["failures"]] == ["train-dist-seed1"]
    log = Path(info["failures"][0]["log"])
    assert log.name == "train-dist-seed1.log" and "ValueError: planned failure" in log.read_text()
    assert {s["id"] for s in info["skipped"]} == {"evaluate-dist-seed1", "calibrate-dist-seed1"}
    assert "train-dist-seed1 (failed)" in info["units"]["evaluate-dist-seed1"]["error"]
    # the other runs went through; the aggregate covers the three runs that finished
    assert info["units"]["aggregate"]["status"] == "done" and info["units"]["report"]["status"] == "done"
    assert (out / "summary.csv").read_text() == EXPECTED_SUMMARY.replace("dist,1,1.550\n", "")
    # fix the cause and rerun: only the failed run, its dependants and the aggregate/report run
    before = len(calls(out))
    (out / "fail.txt").unlink()
    info = study_run(store, out)
    assert sorted(calls(out)[before:]) == sorted(["train-dist-seed1", "evaluate-dist-seed1",
                                                  "calibrate-dist-seed1", "aggregate", "report"])
    assert info["status"] == "finished" and (out / "summary.csv").read_text() == EXPECTED_SUMMARY


def test_worker_that_dies_is_a_failure_with_exit_code(store, tmp_path):
    out = tmp_path / "study"
    out.mkdir()
    (out / "crash.txt").write_text("calibrate-onehot-seed0\n")
    with pytest.raises(RunError, match="exit code 3"):
        study_run(store, out, regimes="onehot", seeds="0")
    m = read_marker(out, "calibrate-onehot-seed0")
    assert m["status"] == "failed" and "exit code 3" in m["error"]
    info = json.loads((out / "study.json").read_text())
    assert info["units"]["aggregate"]["status"] == "skipped"  # no run left to aggregate


def wait_for(predicate, what: str, timeout: float = 120.0) -> None:
    """Wait until ``predicate()`` holds (a state on disk, never a fixed delay); fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def process_gone(pid: int) -> bool:
    """True when ``pid`` has exited (a zombie waiting for its reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


HELD = "train-dist-seed1"
#: what cannot finish while HELD is blocked: it, its dependants and the aggregate/report
BLOCKED = {HELD, "evaluate-dist-seed1", "calibrate-dist-seed1", "aggregate", "report"}


def done_markers(out: Path) -> set[str]:
    return {p.name[:-len(".json")] for p in (out / "units").glob("*.json") if not p.name.endswith(".spec.json")}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="workers die with the study on Linux only")
def test_killed_midway_then_rerun_gives_same_summary(store, tmp_path):
    """kill -9 of the study while one unit is held and every other unit that can finish has: the
    held worker dies with the study (no orphan), and the rerun runs exactly the units that had not
    finished, ending with the uninterrupted study's summary."""
    ref = tmp_path / "ref"
    study_run(store, ref)
    out = tmp_path / "study"
    out.mkdir()
    (out / "hold.txt").write_text(HELD + "\n")
    code = ("import sys; from lczldl.study.runner import run_study; "
            f"run_study(data=sys.argv[1], out=sys.argv[2], regimes='onehot,dist', seeds='0-1', "
            f"workers=2, work={WORK!r}, progress=False)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(store), str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    all_units = set(json.loads((ref / "study.json").read_text())["units"])
    wait_for(lambda: (out / f"held-{HELD}").is_file() and done_markers(out) == all_units - BLOCKED,
             "every unit but the held one and its dependants")
    worker = int((out / f"held-{HELD}").read_text())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    wait_for(lambda: process_gone(worker), "the held worker to die with the study", timeout=30)
    killed_after = calls(out)
    assert sorted(killed_after) == sorted(all_units - BLOCKED | {HELD})
    assert not (out / "summary.csv").exists()
    (out / "hold.txt").unlink()
    info = study_run(store, out)
    assert info["status"] == "finished"
    assert (out / "summary.csv").read_text() == (ref / "summary.csv").read_text() == EXPECTED_SUMMARY
    # exactly the units that had not finished ran again; the others were reused from their markers
    assert sorted(calls(out)[len(killed_after):]) == sorted(BLOCKED)


def test_config_study_section_and_changed_config(store, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("train:\n  max_epochs: 3\nstudy:\n  regimes: [dist]\n  seeds: '0,3'\n  workers: 2\n")
    out = tmp_path / "study"
    info = run_study(data=store, out=out, config=cfg, work=WORK, progress=False)
    assert info["regimes"] == ["dist"] and info["seeds"] == [0, 3] and info["workers"] == 2
    assert "dist,3,1.650" in (out / "summary.csv").read_text()
    cfg2 = tmp_path / "c2.yaml"
    cfg2.write_text("train:\n  max_epochs: 4\n")
    with pytest.raises(ConfigError, match="different run config"):
        run_study(data=store, out=out, config=cfg2, work=WORK, progress=False)
    bad = tmp_path / "bad.yaml"
    bad.write_text("study:\n  wokers: 2\n")
    with pytest.raises(ConfigError, match="study.wokers"):
        run_study(data=store, out=tmp_path / "s2", config=bad, work=WORK, progress=False)


def test_slurm_without_sbatch_is_a_config_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    with pytest.raises(ConfigError, match="sbatch"):
        make_executor("slurm", tmp_path, workers=1)


def test_bad_data_and_executor(tmp_path, store):
    with pytest.raises(Exception, match="neither a prepared store"):
        run_study(data=tmp_path / "nothing", out=tmp_path / "s", work=WORK, progress=False)
    with pytest.raises(ConfigError, match="^executor condor: expected "):
        study_run(store, tmp_path / "s3", executor="condor")


def _spec(study: Path, uid: str, work: str) -> dict:
    return {"id": uid, "kind": "train", "study": str(study), "log": str(study / "logs" / f"{uid}.log"),
            "work": work, "inputs": "x"}


def _wait(h, timeout=60):
    wait_for(lambda: h.poll() is not None, "the unit to end", timeout)
    return h.poll()


def test_local_executor_thread_share_and_devices(tmp_path):
    ex = LocalExecutor(workers=2, threads=None, gpus=["0", "1"])
    assert ex.capacity == 2 and ex.threads >= 1
    hs = [ex.submit(_spec(tmp_path, f"u{i}", f"{MOD}:env")) for i in range(2)]
    with pytest.raises(RuntimeError):
        ex.submit(_spec(tmp_path, "u9", f"{MOD}:env"))  # both slots busy
    assert [_wait(h) for h in hs] == [0, 0]
    res = [read_marker(tmp_path, f"u{i}")["result"] for i in range(2)]
    assert {r["device"] for r in res} == {"0", "1"}  # one device each
    assert all(r["threads"] == str(ex.threads) for r in res)
    # slots are free again
    assert _wait(ex.submit(_spec(tmp_path, "u2", f"{MOD}:env"))) == 0


def test_submitit_local_executor_runs_a_unit(tmp_path):
    ex = make_executor("submitit-local", tmp_path, workers=1, slurm={"cpus_per_task": 1, "time_min": 5})
    h = ex.submit(_spec(tmp_path, "train-dist-seed0", f"{MOD}:env"))
    assert _wait(h, timeout=120) == 0
    m = read_marker(tmp_path, "train-dist-seed0")
    assert m["status"] == "done" and m["result"]["pid"] != os.getpid()
    assert "lczldl unit train-dist-seed0: done" in (tmp_path / "logs" / "train-dist-seed0.log").read_text()
    # a failing unit through submitit is recorded as failed, not raised
    (tmp_path / "fail.txt").write_text("train-dist-seed1")
    h = ex.submit(_spec(tmp_path, "train-dist-seed1", f"{MOD}:env"))
    assert _wait(h, timeout=120) == 1
    assert read_marker(tmp_path, "train-dist-seed1")["status"] == "failed"
    assert marker_path(tmp_path, "train-dist-seed1").is_file()


def test_submitit_local_study(store, tmp_path):
    out = tmp_path / "study"
    info = study_run(store, out, regimes="dist", seeds="0", workers=1, executor="submitit-local")
    assert info["status"] == "finished" and info["executor"] == "submitit-local"
    assert (out / "summary.csv").read_text() == "regime,seed,score\ndist,0,1.500\n"


def test_typed_options_win_over_the_study_section(store, tmp_path):
    """--seeds / --workers typed equal to their defaults still win over the config's study section."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("study:\n  regimes: [dist]\n  seeds: '3'\n  workers: 2\n  executor: submitit-local\n")
    out = tmp_path / "study"
    info = run_study(data=store, out=out, config=cfg, seeds="0-1", workers=1, executor="local",
                     work=WORK, progress=False)
    assert info["regimes"] == ["dist"]                                  # not typed: the file's
    assert info["seeds"] == [0, 1] and info["workers"] == 1 and info["executor"] == "local"
    assert (out / "summary.csv").read_text() == "regime,seed,score\ndist,0,1.500\ndist,1,1.550\n"


@pytest.mark.parametrize("kw, message", [      # named by run_study's parameters (the CLI's flags:
    ({"workers": 0}, "workers 0: must be greater than or equal to 1"),     # tests/cli/test_resolution.py)
    ({"seeds": "4-1"}, "seeds 4-1: range 4-1 runs backwards"),
    ({"regimes": "dist,soft"}, "regimes dist,soft: unknown soft"),
    ({"executor": "condor"}, "executor condor: expected"),
    ({"config": "missing.yaml"}, "missing.yaml: config file not found"),
    ({"data": "nothing"}, "data="),
])
def test_a_bad_option_leaves_nothing(store, tmp_path, kw, message):
    kw = dict(kw)
    for k in ("config", "data"):
        if k in kw:
            kw[k] = tmp_path / kw[k]
    kw.setdefault("data", store)
    out = tmp_path / "study"
    with pytest.raises(LczldlError) as e:
        run_study(out=out, work=WORK, progress=False, **kw)
    assert str(e.value).startswith(message if "yaml" not in message else str(tmp_path))
    assert message in str(e.value) and "\n" not in str(e.value) and "--" not in str(e.value)
    assert not out.exists()


def test_raw_votes_that_fail_to_prepare_leave_no_study_folder(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "atlantis.h5").write_bytes(b"not a city")
    out = tmp_path / "study"
    with pytest.raises(LczldlError, match="unknown city file"):
        run_study(data=raw, out=out, work=WORK, progress=False)
    assert not out.exists()


def test_intervals_option_redoes_only_the_report(store, tmp_path):
    """--intervals changes how the report shows the summary, nothing else: a rerun with it runs the
    report unit alone, which gets the option in its spec; the evaluation settings reach every unit."""
    out = tmp_path / "study"
    study_run(store, out, seeds="0")
    first = calls(out)
    info = study_run(store, out, seeds="0", intervals=True)
    assert calls(out)[len(first):] == ["report"] and info["study_config"]["intervals"] is True
    spec = json.loads((out / "units" / "report.spec.json").read_text())
    assert spec["intervals"] is True
    assert spec["evaluation"] == {"n_bins": 20, "mc_passes": 20, "conformal": True, "selective": True,
                                  "conformal_levels": [0.9, 0.95], "vote_conformal": True, "vote_samples": 10,
                                  "vote_variant": "ecdf"}
