"""What runs inside a unit's process, whichever executor started it.

:func:`execute_unit` sends the unit's stdout/stderr to ``STUDY/logs/<id>.log`` (where asked), runs
the unit's work function and then writes the completion marker ``STUDY/units/<id>.json``
atomically (done or failed). ``python -m lczldl.study.worker SPEC.json`` is the command the local
executor starts where it does not fork (:mod:`lczldl.study.forkserver`).
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from lczldl.errors import ConfigError
from lczldl.study.units import DONE, FAILED, write_marker


def resolve_work(target: str) -> Callable[[dict[str, Any]], Any]:
    """Import ``"module:function"``."""
    mod, _, name = target.partition(":")
    if not mod or not name:
        raise ConfigError(f"work target {target!r}: expected 'module:function'")
    return getattr(importlib.import_module(mod), name)


def redirect_output(log: Path) -> None:
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
    """``threads`` for every thread pool the unit may use: the variables (for the libraries not
    loaded yet and the unit's own subprocesses), and, for those already loaded (a forked unit, an
    in-process call), torch's intra-op threads and the BLAS/OpenMP pools through threadpoolctl;
    numpy's OpenBLAS read the variables only when it loaded, and its thread count changes the
    order of its sums (results in the last bit)."""
    if not threads:
        return
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    if "numpy" in sys.modules:
        from threadpoolctl import threadpool_limits  # deferred: inspects the loaded libraries

        threadpool_limits(limits=threads)


def execute_unit(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Run one unit and write its marker; returns the marker. Never raises for a failing unit.

    ``spec`` keys used here: ``id``, ``study``, ``log``, ``work`` ("module:function"), ``inputs``
    (fingerprint stored in the marker), ``threads``, ``device`` (CUDA index or None),
    ``redirect`` (send fds 1/2 to the log; the local executor already does it).
    """
    spec = dict(spec)
    study, uid, log = Path(spec["study"]), spec["id"], Path(spec["log"])
    if spec.get("redirect"):
        redirect_output(log)
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


def run_spec_file(spec_file: str | Path, redirect: bool = False) -> int:
    """Run the unit of a spec file (``redirect``: send fds 1/2 to its log); returns the exit code,
    0 when it is done, 1 when it failed."""
    spec = json.loads(Path(spec_file).read_text())
    marker = execute_unit(dict(spec, redirect=True) if redirect else spec)
    return 0 if marker["status"] == DONE else 1


def main(argv: list[str] | None = None) -> int:
    """``python -m lczldl.study.worker SPEC.json``: run one unit (the local executor's command)."""
    return run_spec_file((sys.argv[1:] if argv is None else argv)[0])


def die_with_parent(parent_pid: int) -> Callable[[], None]:
    """A function for the child to call first (``preexec_fn`` or right after a fork): ask Linux to
    SIGKILL it when ``parent_pid``, its parent, dies; exit at once if that has happened already."""
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


if __name__ == "__main__":  # pragma: no cover - exercised through LocalExecutor
    sys.exit(main())
