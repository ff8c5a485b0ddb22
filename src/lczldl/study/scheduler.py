"""Owns the study's scheduling loop: runs a unit DAG on an executor, with the markers under
``STUDY/units`` as the truth (generic over work functions: tests use fake ones)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lczldl.fileio import atomic_write_json
from lczldl.layout import log_path, marker_path
from lczldl.study.units import DONE, FAILED, PENDING, RUNNING, SKIPPED, Unit, read_marker, settled_marker

#: order in which ready units start: results of finished runs first, new training after
PRIORITY = {"calibrate": 0, "evaluate": 1, "train": 2, "aggregate": 3, "report": 4}


class Scheduler:
    """Runs a unit DAG on an executor; the markers under ``study/units`` are the truth.

    ``make_spec(unit, upstream)`` builds the JSON-able spec for a unit once its deps are settled;
    ``upstream`` maps each done dep id to its marker. The spec's ``inputs`` fingerprint decides
    whether an existing done marker can be reused. ``clock`` (seconds, default ``time.time``) times
    the units; tests pass a fake one.
    """

    def __init__(self, units: Sequence[Unit], study: Path, executor: Any,
                 make_spec: Callable[[Unit, dict[str, dict]], dict[str, Any]],
                 on_change: Callable[[Scheduler], None] | None = None,
                 progress: Any | None = None, poll_s: float = 0.5,
                 clock: Callable[[], float] = time.time):
        self.units = list(units)
        self.by_id = {u.id: u for u in self.units}
        self.study, self.executor, self.make_spec = Path(study), executor, make_spec
        self.on_change, self.progress, self.poll_s, self.clock = on_change, progress, poll_s, clock
        self.state: dict[str, dict[str, Any]] = {
            u.id: {"status": PENDING, "kind": u.kind, "regime": u.regime, "seed": u.seed,
                   "log": str(log_path(self.study, u.id))} for u in self.units}
        #: unit id -> (handle, spec, start time by ``clock``)
        self.running: dict[str, tuple[Any, dict[str, Any], float]] = {}
        self.started = clock()
        for u in self.units:
            for d in u.deps:
                if d not in self.by_id:
                    raise ValueError(f"unit {u.id} depends on unknown unit {d}")

    # -- state ---------------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        c = dict.fromkeys((PENDING, RUNNING, DONE, FAILED, SKIPPED), 0)
        for s in self.state.values():
            c[s["status"]] += 1
        return c

    def _set(self, uid: str, **kw: Any) -> None:
        self.state[uid].update(kw)
        if self.progress is not None:
            self.progress.event(self, uid)
        if self.on_change is not None:
            self.on_change(self)

    def _ready(self, u: Unit) -> str | None:
        """'run' | 'skip' | None (wait) for a pending unit."""
        st = [self.state[d]["status"] for d in u.deps]
        if u.soft:
            if any(s in (PENDING, RUNNING) for s in st):
                return None
            return "run" if (not st or any(s == DONE for s in st)) else "skip"
        if any(s in (FAILED, SKIPPED) for s in st):
            return "skip"
        return "run" if all(s == DONE for s in st) else None

    def _upstream(self, u: Unit) -> dict[str, dict]:
        return {d: (read_marker(self.study, d) or {}) for d in u.deps if self.state[d]["status"] == DONE}

    def _finish(self, uid: str, rc: int, spec: dict[str, Any], t0: float) -> None:
        wall = round(self.clock() - t0, 3)
        m = settled_marker(self.study, uid, spec["inputs"])
        if m and m["status"] == DONE:
            self._set(uid, status=DONE, wall_s=m.get("wall_s"), error=None)
            return
        if m:
            err = m.get("error") or "failed"
        else:  # the worker died before writing its marker (killed, out of memory, node failure)
            err = f"worker ended with exit code {rc} before recording a result"
            atomic_write_json(marker_path(self.study, uid), {
                "id": uid, "kind": spec.get("kind"), "inputs": spec["inputs"], "status": FAILED,
                "error": err, "log": spec["log"], "wall_s": wall})
        self._set(uid, status=FAILED, error=err, wall_s=wall)

    # -- main loop -----------------------------------------------------------------------------
    def run(self) -> dict[str, dict[str, Any]]:
        """Run every unit to a settled state; returns the state table. On any exception (Ctrl-C,
        SIGTERM) the running units are cancelled and put back to pending before it propagates."""
        try:
            while True:
                changed = self.step()
                if not self.running and not any(s["status"] == PENDING for s in self.state.values()):
                    break
                if self.progress is not None:
                    self.progress.refresh(self)
                if not changed:
                    time.sleep(self.poll_s)
        except BaseException:
            for uid, (h, _spec, _t0) in list(self.running.items()):
                h.cancel()
                self.state[uid]["status"] = PENDING
            self.running.clear()
            raise
        finally:
            with contextlib.suppress(Exception):
                self.executor.shutdown()
        if self.progress is not None:
            self.progress.refresh(self)
        return self.state

    def step(self) -> bool:
        """Collect finished units, then skip, reuse or start every ready one; True if anything changed."""
        changed = False
        for uid, (h, spec, t0) in list(self.running.items()):
            rc = h.poll()
            if rc is not None:
                del self.running[uid]
                self._finish(uid, rc, spec, t0)
                changed = True
        pending = sorted((u for u in self.units if self.state[u.id]["status"] == PENDING),
                         key=lambda u: PRIORITY.get(u.kind, 9))
        for u in pending:
            changed = self._advance(u) or changed
        return changed

    def _advance(self, u: Unit) -> bool:
        """Skip, reuse or start one pending unit if it is ready; True if its state changed."""
        verdict = self._ready(u)
        if verdict is None:
            return False
        if verdict == "skip":
            bad = [d for d in u.deps if self.state[d]["status"] != DONE]
            self._set(u.id, status=SKIPPED,
                      error="needs " + ", ".join(f"{d} ({self.state[d]['status']})" for d in bad))
            return True
        spec = self.make_spec(u, self._upstream(u))
        m = settled_marker(self.study, u.id, spec["inputs"])
        if m and m["status"] == DONE:
            self._set(u.id, status=DONE, wall_s=m.get("wall_s"), reused=True, error=None)
            return True
        if len(self.running) >= self.executor.capacity:
            return False
        h = self.executor.submit(spec)
        self.running[u.id] = (h, spec, self.clock())
        self._set(u.id, status=RUNNING, started=time.strftime("%Y-%m-%dT%H:%M:%S"))
        return True
