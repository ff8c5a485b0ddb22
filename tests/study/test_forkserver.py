"""The local executor's fork server (lczldl.study.forkserver) with the fake units of
tests/study/fakework.py: what a forked unit gets (the environment and folder of the moment it was
submitted, a process of its own, its log), exit codes, cancelling, dying with the server, and the
fall-back to plain subprocesses when the server cannot import its preload list. The servers here
preload nothing (the fake units import what they use); the study's preloads torch and Lightning."""

from __future__ import annotations

import os
import signal
import sys

import pytest

from lczldl.study import executors
from lczldl.study.forkserver import ForkedProcess, ForkServer
from lczldl.study.units import read_marker

from .test_runner import MOD, ROOT, _spec, _wait, process_gone, wait_for

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="units are forked on Linux only")


@pytest.fixture(autouse=True)
def _importable(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))


@pytest.fixture
def server(monkeypatch):
    """A fork server without preloads, used by every LocalExecutor of the test."""
    s = ForkServer(preload=())
    assert s.error is None and s.alive
    monkeypatch.setattr(executors, "fork_server", lambda: s)
    yield s
    s.close()


def test_forked_unit_gets_the_environment_and_folder_of_its_submission(server, tmp_path, monkeypatch):
    ex = executors.LocalExecutor(workers=2, threads=None, gpus=[])
    assert ex.forked
    monkeypatch.setenv("LCZLDL_TEST_MARK", "set after the server started")
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    h = ex.submit(_spec(tmp_path, "u0", f"{MOD}:env"))
    assert isinstance(h.proc, ForkedProcess) and _wait(h) == 0
    r = read_marker(tmp_path, "u0")["result"]
    assert r["pid"] == h.proc.pid and r["pid"] not in (os.getpid(), server.proc.pid)
    assert r["mark"] == "set after the server started" and r["cwd"] == str(tmp_path / "here")
    assert r["threads"] == str(ex.threads) and r["device"] is None
    log = (tmp_path / "logs" / "u0.log").read_text()
    assert log.startswith("=== lczldl unit u0: started") and "u0: done after" in log
    assert ex._free == [0, 1]                                      # the slot came back


def test_a_forked_unit_has_its_thread_count_in_the_blas_loaded_before_the_fork(tmp_path, monkeypatch):
    """numpy's OpenBLAS reads OPENBLAS_NUM_THREADS once, when it loads: in the server, before any
    unit. A unit given 1 thread must still run it on 1 (its thread count changes the order of
    its sums: the demo's ensemble intervals moved in the last bit before this was set)."""
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    s = ForkServer(preload=("numpy",))
    try:
        monkeypatch.setattr(executors, "fork_server", lambda: s)
        ex = executors.LocalExecutor(workers=1, threads=1, gpus=[])
        assert _wait(ex.submit(_spec(tmp_path, "u0", f"{MOD}:blas_threads"))) == 0
        assert read_marker(tmp_path, "u0")["result"]["blas"] == [1]
    finally:
        s.close()


def test_exit_codes_failure_and_cancel(server, tmp_path):
    ex = executors.LocalExecutor(workers=2, threads=1, gpus=[])
    (tmp_path / "crash.txt").write_text("crash\n")                 # os._exit(3) inside the unit
    (tmp_path / "fail.txt").write_text("fail\n")                   # the work raises
    assert _wait(ex.submit(_spec(tmp_path, "crash", f"{MOD}:env"))) == 3
    assert _wait(ex.submit(_spec(tmp_path, "fail", f"{MOD}:env"))) == 1
    assert read_marker(tmp_path, "fail")["status"] == "failed"
    (tmp_path / "hold.txt").write_text("held\n")                   # blocks for good
    h = ex.submit(_spec(tmp_path, "held", f"{MOD}:env"))
    wait_for(lambda: (tmp_path / "held-held").is_file(), "the unit to block")
    assert h.poll() is None
    h.cancel()
    assert h.poll() == -signal.SIGTERM and process_gone(int((tmp_path / "held-held").read_text()))


def test_units_die_with_the_server(server, tmp_path):
    ex = executors.LocalExecutor(workers=1, threads=1, gpus=[])
    (tmp_path / "hold.txt").write_text("held\n")
    h = ex.submit(_spec(tmp_path, "held", f"{MOD}:env"))
    wait_for(lambda: (tmp_path / "held-held").is_file(), "the unit to block")
    server.proc.kill()                                 # what happens when the study process dies
    wait_for(lambda: process_gone(int((tmp_path / "held-held").read_text())), "the unit to die", timeout=30)
    assert h.poll() == -signal.SIGKILL


def test_a_server_that_cannot_import_leaves_plain_subprocesses(tmp_path, monkeypatch):
    broken = ForkServer(preload=("lczldl_no_such_module",))
    assert broken.error.startswith("preload lczldl_no_such_module: ModuleNotFoundError") and not broken.alive
    monkeypatch.setattr(executors, "fork_server", lambda: broken)
    ex = executors.LocalExecutor(workers=1, threads=1, gpus=[])
    h = ex.submit(_spec(tmp_path, "u0", f"{MOD}:env"))
    assert not isinstance(h.proc, ForkedProcess) and _wait(h) == 0
    assert read_marker(tmp_path, "u0")["status"] == "done"
