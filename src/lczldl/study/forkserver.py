"""A fork server for the local executor: units forked from a process that has imported their heavy
libraries once.

A training unit spends ~10 s of CPU importing torch and Lightning (with torchmetrics and what it
pulls in) before its first step, an evaluation unit ~2-3 s importing torch; a study runs hundreds
of units. :func:`fork_server` starts ``python -m lczldl.study.forkserver`` once per study process
(a child that dies with it; every study the process runs shares it), which imports
:data:`PRELOAD` and then forks one child per unit; a forked unit starts in well under a second.

Protocol: JSON lines. The study writes ``{"fork": SPEC_PATH, "env": {...}, "cwd": DIR}`` (answered with
``{"forked": PID}``) and ``{"signal": PID, "sig": N}``; the server writes ``{"ready": PID}`` once
its imports are done, ``{"exit": PID, "rc": RC}`` when a unit ends (RC as ``Popen.returncode``:
negative for a signal) and ``{"error": TEXT}`` if it cannot serve. Signals go through the server,
which has not reaped the unit while it can be signalled, so a PID is never a reused one.

Why not multiprocessing's forkserver: its children re-run the study's main script as
``__mp_main__`` (a script calling ``run_study`` without a ``__main__`` guard would start a study
in every unit), and each holds the server's liveness pipe, so the server outlives a killed study.

Used on Linux without GPUs only: CUDA does not survive a fork and a unit's ``CUDA_VISIBLE_DEVICES``
must be set before CUDA starts.
"""

from __future__ import annotations

import atexit
import gc
import importlib
import json
import os
import select
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lczldl.study.worker import die_with_parent, run_spec_file

#: what the server imports once for every unit it forks: the unit kinds' heavy imports
PRELOAD: tuple[str, ...] = ("torch", "lightning.pytorch", "matplotlib", "lczldl.training.run",
                            "lczldl.training.packed", "lczldl.study.work", "lczldl.viz.report")


def forking_available(gpus: list[str]) -> bool:
    """Whether the local executor forks units from a :class:`ForkServer`: Linux and no GPU to hand
    out (CUDA does not survive a fork; each unit's ``CUDA_VISIBLE_DEVICES`` must precede it)."""
    return sys.platform.startswith("linux") and not gpus


# ---------------------------------------------------------------------------------------------
# the server process
# ---------------------------------------------------------------------------------------------

def _send(message: dict[str, Any]) -> None:
    """One JSON line to the study (fd 1, unbuffered: no buffer for a forked unit to inherit)."""
    os.write(1, (json.dumps(message) + "\n").encode())


def _run_forked(request: dict[str, Any], server: int) -> int:
    """In a forked unit: die with the server, no protocol pipes (fd 0 to /dev/null, fds 1/2 to the
    unit's log), the study's environment, folder and ``PYTHONPATH`` at submit time, then the unit.
    Returns the exit code."""
    die_with_parent(server)()
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    extra = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p not in sys.path]
    sys.path[:0] = extra
    return run_spec_file(request["fork"], redirect=True)


def _fork(request: dict[str, Any]) -> int:
    """Fork one unit; returns its PID (the child never returns)."""
    server = os.getpid()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        code = _run_forked(request, server)
    except BaseException:  # noqa: BLE001 - reported in the unit's log, then the exit code
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _reap(children: set[int]) -> None:
    """Report every ended child."""
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        children.discard(pid)
        _send({"exit": pid, "rc": os.waitstatus_to_exitcode(status)})


def serve(preload: Sequence[str]) -> None:
    """The server's loop: import ``preload``, then fork, signal and reap on request until the study
    closes the request pipe (or dies: then so does this process, and its units with it)."""
    for name in preload:
        try:
            importlib.import_module(name)
        except Exception as exc:  # the executor falls back to plain subprocesses
            _send({"error": f"preload {name}: {type(exc).__name__}: {exc}"})
            return
    gc.freeze()        # the preloaded objects: never traversed by a unit's collections, nor copied by them
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes select through wake_w
    children: set[int] = set()
    pending = b""
    _send({"ready": os.getpid()})
    while True:
        ready, _, _ = select.select([0, wake_r], [], [])
        if wake_r in ready:
            os.read(wake_r, 4096)
        _reap(children)
        if 0 not in ready:
            continue
        chunk = os.read(0, 65536)
        if not chunk:
            return                                 # the study closed the pipe: its units die with us
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            request = json.loads(line)
            if "fork" in request:
                pid = _fork(request)
                children.add(pid)
                _send({"forked": pid})
            elif request.get("signal") in children:
                os.kill(request["signal"], int(request["sig"]))


# ---------------------------------------------------------------------------------------------
# in the study process
# ---------------------------------------------------------------------------------------------

class ForkServer:
    """The study's side: starts the server, asks it to fork units, collects their exit codes."""

    def __init__(self, preload: Sequence[str] = PRELOAD) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lczldl.study.forkserver", *preload], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True,
            preexec_fn=die_with_parent(os.getpid()))
        self._pending = b""
        self._messages: list[dict[str, Any]] = []
        self.exits: dict[int, int] = {}
        self.error: str | None = None
        ready = self._next(lambda m: "ready" in m or "error" in m)
        if ready is None or "error" in ready:
            self.error = ready["error"] if ready else "the fork server ended while importing"
            self.close()

    def _read(self, timeout: float | None) -> bool:
        """Read what the server wrote (waiting up to ``timeout`` s; None: until something comes);
        False when it has ended."""
        if self.proc.stdout is None:
            return False
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            return True
        chunk = os.read(self.proc.stdout.fileno(), 65536)
        if not chunk:
            return False
        *lines, self._pending = (self._pending + chunk).split(b"\n")
        for line in lines:
            message = json.loads(line)
            if "exit" in message:
                self.exits[message["exit"]] = message["rc"]
            else:
                self._messages.append(message)
        return True

    def _next(self, match: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
        """The next message ``match`` accepts (blocking); None if the server has ended."""
        while True:
            for i, message in enumerate(self._messages):
                if match(message):
                    return self._messages.pop(i)
            if not self._read(None):
                return None

    @property
    def alive(self) -> bool:
        return self.error is None and self.proc.poll() is None

    def fork(self, spec_file: Path, env: dict[str, str]) -> int:
        """Fork a unit that runs ``spec_file`` with environment ``env`` in this process's current
        folder; returns its PID."""
        self._write({"fork": str(spec_file), "env": env, "cwd": os.getcwd()})
        reply = self._next(lambda m: "forked" in m)
        if reply is None:
            raise RuntimeError("the study's fork server ended")
        return int(reply["forked"])

    def returncode(self, pid: int, timeout: float = 0.0) -> int | None:
        """Exit code of unit ``pid`` (waiting up to ``timeout`` s), None while it runs; -9 when
        the server ended (its units died with it)."""
        if not self._read(0.0) and pid not in self.exits:
            return self.exits.setdefault(pid, -int(signal.SIGKILL))
        if timeout > 0 and pid not in self.exits:
            self._read(timeout)
        return self.exits.get(pid)

    def signal(self, pid: int, sig: int) -> None:
        """Send ``sig`` to unit ``pid`` if it is still running."""
        if pid not in self.exits and self.alive:
            self._write({"signal": pid, "sig": int(sig)})

    def _write(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write((json.dumps(message) + "\n").encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass                                  # the server ended: returncode() says -9

    def close(self) -> None:
        """End the server (units still running die with it)."""
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()
        self.proc.stdin = self.proc.stdout = None
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class ForkedProcess:
    """A unit forked by a :class:`ForkServer`, with the part of :class:`subprocess.Popen`'s
    interface the executor's handle uses (``poll``, ``wait``, ``terminate``, ``kill``)."""

    def __init__(self, server: ForkServer, pid: int):
        self.server, self.pid = server, pid

    def poll(self) -> int | None:
        return self.server.returncode(self.pid)

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (rc := self.poll()) is None:
            left = 1.0 if deadline is None else deadline - time.monotonic()
            if left <= 0:
                raise subprocess.TimeoutExpired(f"forked unit {self.pid}", timeout or 0.0)
            self.server.returncode(self.pid, timeout=min(1.0, left))   # waits for the server's news
        return rc

    def terminate(self) -> None:
        self.server.signal(self.pid, signal.SIGTERM)

    def kill(self) -> None:
        self.server.signal(self.pid, signal.SIGKILL)


_SHARED: list[ForkServer] = []


def fork_server() -> ForkServer:
    """This process's fork server, started on first use (and again if it has ended); check
    ``.error`` (set when it could not import :data:`PRELOAD`)."""
    if not _SHARED or not (_SHARED[0].alive or _SHARED[0].error):
        _SHARED[:] = [ForkServer()]
        atexit.register(_SHARED[0].close)
    return _SHARED[0]


if __name__ == "__main__":  # pragma: no cover - started by ForkServer
    serve(sys.argv[1:])
