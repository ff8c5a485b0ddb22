"""Owns where units run: local subprocesses, SLURM jobs (submitit) or submitit's local executor.

Every executor runs :func:`execute_unit` on a *spec* (a JSON-able dict, see
:func:`lczldl.study.runner.spec_maker`) in a separate process. ``execute_unit`` sends the unit's
stdout/stderr to ``STUDY/logs/<id>.log``, runs the unit's work function and then writes the
completion marker ``STUDY/units/<id>.json`` atomically (done or failed). The scheduler only polls
handles; the marker is the truth.

- ``local``: N plain subprocesses (``python -m lczldl.study.executors SPEC``), each with
  ``OMP_NUM_THREADS`` = its thread share and, on machines with GPUs, one device each via
  ``CUDA_VISIBLE_DEVICES``. On Linux a child dies with the study process (PR_SET_PDEATHSIG), so
  killing the study never leaves an orphan writing into the study folder.
- ``slurm``: one SLURM job per unit through ``submitit.AutoExecutor`` (parameters from the config's
  ``study.slurm`` section); the study process stays alive and polls.
- ``submitit-local``: ``submitit.LocalExecutor``, the same code path as SLURM on this machine (tests).
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from lczldl.errors import ConfigError
from lczldl.fileio import atomic_write_json
from lczldl.layout import STUDY_SLURM, STUDY_SUBMITIT, spec_path
from lczldl.study.units import DONE, FAILED, thread_share, write_marker

EXECUTORS: tuple[str, ...] = ("local", "slurm", "submitit-local")


# ---------------------------------------------------------------------------------------------
# inside the worker process
# ---------------------------------------------------------------------------------------------

def resolve_work(target: str) -> Callable[[dict[str, Any]], Any]:
    """Import ``"module:function"``."""
    mod, _, name = target.partition(":")
    if not mod or not name:
        raise ConfigError(f"work target {target!r}: expected 'module:function'")
    return getattr(importlib.import_module(mod), name)


def _redirect_output(log: Path) -> None:
    """Point file descriptors 1 and 2 (and sys.stdout/err) at ``log`` (append)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115


def _limit_threads(threads: int | None) -> None:
    if not threads:
        return
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    if "torch" in sys.modules:  # already imported (in-process use): apply directly
        sys.modules["torch"].set_num_threads(threads)


def execute_unit(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Run one unit and write its marker; returns the marker. Never raises for a failing unit.

    ``spec`` keys used here: ``id``, ``study``, ``log``, ``work`` ("module:function"), ``inputs``
    (fingerprint stored in the marker), ``threads``, ``device`` (CUDA index or None),
    ``redirect`` (send fds 1/2 to the log; the local executor already does it).
    """
    spec = dict(spec)
    study, uid, log = Path(spec["study"]), spec["id"], Path(spec["log"])
    if spec.get("redirect"):
        _redirect_output(log)
    if spec.get("device") is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(spec["device"])
    _limit_threads(spec.get("threads"))
    started = time.time()
    print(f"=== lczldl unit {uid}: started {time.strftime('%Y-%m-%d %H:%M:%S')} on "
          f"{socket.gethostname()} pid {os.getpid()} threads {spec.get('threads')} "
          f"device {spec.get('device')} ===", flush=True)
    fields: dict[str, Any] = {"host": socket.gethostname(),
                              "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started))}
    try:
        result = resolve_work(spec["work"])(spec)
        status, fields["result"] = DONE, result if isinstance(result, dict) else {}
    except Exception as exc:  # a failing unit is recorded, never propagated
        traceback.print_exc()
        first = (str(exc).strip().splitlines() or [""])[0]
        status, fields["error"] = FAILED, f"{type(exc).__name__}: {first}"[:500]
    marker = write_marker(study, uid, kind=spec.get("kind"), inputs=spec.get("inputs"), status=status,
                          log=str(log), wall_s=round(time.time() - started, 3), **fields)
    print(f"=== lczldl unit {uid}: {marker['status']} after {marker['wall_s']:.1f} s ===", flush=True)
    sys.stdout.flush()
    sys.stderr.flush()
    return marker


def main(argv: list[str] | None = None) -> int:
    """``python -m lczldl.study.executors SPEC.json``: run one unit (used by the local executor)."""
    argv = sys.argv[1:] if argv is None else argv
    spec = json.loads(Path(argv[0]).read_text())
    marker = execute_unit(spec)
    return 0 if marker["status"] == DONE else 1


# ---------------------------------------------------------------------------------------------
# in the study process
# ---------------------------------------------------------------------------------------------

class Handle(Protocol):
    """A submitted unit."""

    def poll(self) -> int | None:
        """None while running, else an exit code (0 = the worker finished normally)."""

    def cancel(self) -> None:
        """Stop the unit (best effort)."""


class Executor(Protocol):
    capacity: int
    name: str

    def submit(self, spec: dict[str, Any]) -> Handle: ...

    def shutdown(self) -> None: ...


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
    """preexec_fn: ask Linux to SIGKILL the child when the study process dies."""
    def fn() -> None:
        try:
            import ctypes

            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except Exception:  # pragma: no cover - non-Linux: best effort
            return
        if os.getppid() != parent_pid:  # parent already gone
            os._exit(1)
    return fn


class _PopenHandle:
    def __init__(self, proc: subprocess.Popen[bytes], slot: int, release: Callable[[int], None]):
        self.proc, self.slot, self._release, self._released = proc, slot, release, False

    def poll(self) -> int | None:
        rc = self.proc.poll()
        if rc is not None and not self._released:
            self._released = True
            self._release(self.slot)
        return rc

    def cancel(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.poll()


def visible_gpus() -> list[str]:
    """CUDA device ids this process may hand out (respects CUDA_VISIBLE_DEVICES); [] without CUDA."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d.strip() for d in env.split(",") if d.strip() and d.strip() != "-1"]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:  # pragma: no cover
        return []


class LocalExecutor:
    """Up to ``workers`` units at once as subprocesses of this process.

    Each gets ``threads`` torch/OpenMP threads (default cores // workers) and, where GPUs are
    visible, one device (slot i -> gpus[i % len(gpus)]).
    """

    name = "local"

    def __init__(self, workers: int = 1, threads: int | None = None, gpus: list[str] | None = None,
                 python: str | None = None):
        self.capacity = int(workers)
        self.threads = threads if threads is not None else thread_share(self.capacity)
        self.gpus = visible_gpus() if gpus is None else list(gpus)
        self.python = python or sys.executable
        self._free = list(range(self.capacity))
        self._handles: list[_PopenHandle] = []

    def _release(self, slot: int) -> None:
        self._free.append(slot)
        self._free.sort()

    def submit(self, spec: dict[str, Any]) -> _PopenHandle:
        if not self._free:
            raise RuntimeError("LocalExecutor: no free slot (scheduler bug)")
        slot = self._free.pop(0)
        spec = dict(spec, threads=self.threads, redirect=False,
                    device=self.gpus[slot % len(self.gpus)] if self.gpus else None)
        spec_file = spec_path(spec["study"], spec["id"])
        atomic_write_json(spec_file, spec)
        log = Path(spec["log"])
        log.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[var] = str(self.threads)
        if spec["device"] is not None:
            env["CUDA_VISIBLE_DEVICES"] = str(spec["device"])
        env["PYTHONUNBUFFERED"] = "1"
        with open(log, "ab") as fh:
            proc = subprocess.Popen(
                [self.python, "-m", "lczldl.study.executors", str(spec_file)],
                stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                start_new_session=True,  # Ctrl-C reaches the study, which stops its units itself
                preexec_fn=_die_with_parent(os.getpid()) if sys.platform.startswith("linux") else None,
            )
        h = _PopenHandle(proc, slot, self._release)
        self._handles.append(h)
        return h

    def shutdown(self) -> None:
        for h in self._handles:
            h.cancel()


class _JobHandle:
    def __init__(self, job: Any):
        self.job = job

    def poll(self) -> int | None:
        if not self.job.done():
            return None
        try:
            marker = self.job.result()
        except Exception:
            return 1
        return 0 if isinstance(marker, dict) and marker.get("status") == DONE else 1

    def cancel(self) -> None:
        try:
            self.job.cancel(check=False)
        except Exception:  # pragma: no cover
            pass


class SubmititExecutor:
    """Units as submitit jobs: ``cluster="slurm"`` (SLURM) or ``"local"`` (this machine, tests).

    ``params``: ``partition``, ``time_min``, ``gpus_per_node``, ``cpus_per_task``, ``mem_gb``,
    ``account``, ``qos``, ``constraint``, ``max_parallel`` (jobs in flight, default 64 on SLURM,
    ``workers`` locally), ``setup`` (shell lines run before each job, e.g. module loads).
    """

    def __init__(self, folder: Path, cluster: str = "slurm", workers: int = 1,
                 params: Mapping[str, Any] | None = None):
        import submitit

        p = dict(params or {})
        self.name = "slurm" if cluster == "slurm" else "submitit-local"
        self.threads = int(p.get("cpus_per_task") or 1)
        self.capacity = int(p.get("max_parallel") or (64 if cluster == "slurm" else workers))
        self.ex = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
        kw: dict[str, Any] = {"timeout_min": int(p.get("time_min") or 24 * 60),
                              "cpus_per_task": self.threads, "name": "lczldl"}
        if p.get("gpus_per_node") is not None:
            kw["gpus_per_node"] = int(p["gpus_per_node"])
        if p.get("mem_gb") is not None:
            kw["mem_gb"] = int(p["mem_gb"])
        if cluster == "slurm":
            for key in ("partition", "account", "qos", "constraint"):
                if p.get(key):
                    kw[f"slurm_{key}"] = p[key]
            if p.get("setup"):
                kw["slurm_setup"] = list(p["setup"])
        self.ex.update_parameters(**kw)
        self._handles: list[_JobHandle] = []

    def submit(self, spec: dict[str, Any]) -> _JobHandle:
        spec = dict(spec, threads=self.threads, redirect=True, device=None)
        h = _JobHandle(self.ex.submit(execute_unit, spec))
        self._handles.append(h)
        return h

    def shutdown(self) -> None:
        for h in self._handles:
            if h.poll() is None:
                h.cancel()


def check_executor(kind: str) -> None:
    """ConfigError unless executor ``kind`` exists and can run here (checked before a study writes
    anything): ``slurm`` needs ``sbatch`` on the PATH."""
    if kind not in EXECUTORS:
        raise ConfigError(f"executor={kind!r}: choose local or slurm (or submitit-local for tests)",
                          params=("executor",))
    if kind == "slurm":
        import shutil

        if shutil.which("sbatch") is None:
            raise ConfigError("executor=slurm: `sbatch` not found on this machine; run the study on a "
                              "SLURM login node or use executor=local", params=("executor",))


def make_executor(kind: str, study: Path, workers: int = 1,
                  slurm: Mapping[str, Any] | None = None) -> LocalExecutor | SubmititExecutor:
    """Executor by name: ``local`` | ``slurm`` | ``submitit-local``."""
    if workers < 1:
        raise ConfigError(f"workers={workers}: must be >= 1", params=("workers",))
    check_executor(kind)
    if kind == "local":
        return LocalExecutor(workers)
    if kind == "slurm":
        return SubmititExecutor(Path(study) / STUDY_SLURM, "slurm", workers, slurm)
    return SubmititExecutor(Path(study) / STUDY_SUBMITIT, "local", workers, dict(slurm or {}, max_parallel=workers))


if __name__ == "__main__":  # pragma: no cover - exercised through LocalExecutor
    sys.exit(main())
