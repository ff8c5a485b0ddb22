"""Owns where units run: local processes (forked or fresh), SLURM jobs (submitit) or submitit's
local executor.

Every executor runs :func:`lczldl.study.worker.execute_unit` on a *spec* (a JSON-able dict, see
:func:`lczldl.study.runner.spec_maker`) in a separate process; it writes the unit's log and
completion marker. The scheduler only polls handles; the marker is the truth.

- ``local``: N processes, each with ``OMP_NUM_THREADS`` = its thread share. On Linux without GPUs
  each unit is forked from the study's fork server (:mod:`lczldl.study.forkserver`: torch,
  Lightning and matplotlib imported once per study process, not once per unit); with GPUs (one
  device each via ``CUDA_VISIBLE_DEVICES``) or elsewhere a plain subprocess
  (``python -m lczldl.study.worker SPEC``). On Linux a unit dies with the study process
  (PR_SET_PDEATHSIG, through the fork server for a forked one), so killing the study never
  leaves an orphan writing into the study folder.
- ``slurm``: one SLURM job per unit through ``submitit.AutoExecutor`` (parameters from the config's
  ``study.slurm`` section); the study process stays alive and polls.
- ``submitit-local``: ``submitit.LocalExecutor``, the same code path as SLURM on this machine (tests).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from lczldl.errors import ConfigError
from lczldl.fileio import atomic_write_json
from lczldl.layout import STUDY_SLURM, STUDY_SUBMITIT, spec_path
from lczldl.study.forkserver import ForkedProcess, fork_server, forking_available
from lczldl.study.units import DONE, thread_share
from lczldl.study.worker import die_with_parent, execute_unit

EXECUTORS: tuple[str, ...] = ("local", "slurm", "submitit-local")


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


class _PopenHandle:
    """A local unit: a subprocess, or a forked one (the same interface)."""

    def __init__(self, proc: subprocess.Popen[bytes] | ForkedProcess, slot: int,
                 release: Callable[[int], None]):
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
    """Up to ``workers`` units at once, each in a process of its own on this machine.

    Each gets ``threads`` torch/OpenMP threads (default cores // workers) and, where GPUs are
    visible, one device (slot i -> gpus[i % len(gpus)]). Forked from the fork server where
    :func:`~lczldl.study.forkserver.forking_available` (and no other ``python`` is asked for),
    else a subprocess.
    """

    name = "local"

    def __init__(self, workers: int = 1, threads: int | None = None, gpus: list[str] | None = None,
                 python: str | None = None):
        self.capacity = int(workers)
        self.threads = threads if threads is not None else thread_share(self.capacity)
        self.gpus = visible_gpus() if gpus is None else list(gpus)
        self.python = python or sys.executable
        self.forked = python is None and forking_available(self.gpus)
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
        server = fork_server() if self.forked else None
        if server is not None and server.error is None:
            h = _PopenHandle(ForkedProcess(server, server.fork(spec_file, env)), slot, self._release)
        else:                                      # no fork server here, or it could not import
            h = self._spawn(spec_file, env, log, slot)
        self._handles.append(h)
        return h

    def _spawn(self, spec_file: Path, env: dict[str, str], log: Path, slot: int) -> _PopenHandle:
        with open(log, "ab") as fh:
            proc = subprocess.Popen(
                [self.python, "-m", "lczldl.study.worker", str(spec_file)],
                stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                start_new_session=True,  # Ctrl-C reaches the study, which stops its units itself
                preexec_fn=die_with_parent(os.getpid()) if sys.platform.startswith("linux") else None,
            )
        return _PopenHandle(proc, slot, self._release)

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

