"""Owns the study's scheduling loop: runs a unit DAG on an executor, with the markers under
``STUDY/units`` as the truth (generic over work functions: tests use fake ones).

A unit with ``members`` (a pack) runs those units inside its own process: they are submitted
with it (``spec["members"]``: their specs, for the ones not done yet), shown running while it
runs, and settle as the pack's worker writes their markers; those it left without a marker when
it ended fail with the pack's reason. A member never runs by itself."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lczldl.layout import log_path, marker_path
from lczldl.study.units import (
    DONE,
    FAILED,
    PENDING,
    RUNNING,
    SKIPPED,
    Unit,
    read_marker,
    settled_marker,
    write_marker,
)

#: order in which ready units start: results of finished runs first, new training after (a
#: pack after its members, which are looked at first: reused when their markers say done)
PRIORITY = {"calibrate": 0, "evaluate": 1, "train": 2, "pack": 2.5, "aggregate": 3, "budget": 3.5, "report": 4}


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
            u.id: {"status": PENDING, "kind": u.kind, "regime": u.regime, "seed": u.seed, "pack": u.pack,
                   "log": str(log_path(self.study, u.pack or u.id))} for u in self.units}
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
        else:
            if m:
                err = m.get("error") or "failed"
            else:  # the worker died before writing its marker (killed, out of memory, node failure)
                err = f"worker ended with exit code {rc} before recording a result"
                write_marker(self.study, uid, kind=spec.get("kind"), inputs=spec["inputs"], status=FAILED,
                             log=spec["log"], error=err, wall_s=wall)
            self._set(uid, status=FAILED, error=err, wall_s=wall)
        self._settle_members(spec)
        for ms in spec.get("members", []):             # members the pack ended without recording
            if self.state[ms["id"]]["status"] == RUNNING:
                err = f"{uid} ended without recording this run ({self.state[uid].get('error') or 'no result'})"
                write_marker(self.study, ms["id"], kind=ms.get("kind"), inputs=ms["inputs"], status=FAILED,
                             log=spec["log"], error=err, wall_s=wall)
                self._set(ms["id"], status=FAILED, error=err, wall_s=wall)

    def _settle_members(self, spec: dict[str, Any]) -> bool:
        """Settle the running members of a pack whose markers its worker has written; True if any."""
        changed = False
        for ms in spec.get("members", []):
            if self.state[ms["id"]]["status"] == RUNNING:
                m = settled_marker(self.study, ms["id"], ms["inputs"])
                if m:
                    self._set(ms["id"], status=m["status"], wall_s=m.get("wall_s"),
                              error=None if m["status"] == DONE else m.get("error") or "failed")
                    changed = True
        return changed

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
            for uid, (h, spec, _t0) in list(self.running.items()):
                h.cancel()
                self.state[uid]["status"] = PENDING
                for ms in spec.get("members", []):
                    if self.state[ms["id"]]["status"] == RUNNING:
                        self.state[ms["id"]]["status"] = PENDING
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
            else:
                changed = self._settle_members(spec) or changed
        pending = sorted((u for u in self.units if self.state[u.id]["status"] == PENDING),
                         key=lambda u: PRIORITY.get(u.kind, 9))
        for u in pending:
            changed = self._advance(u) or changed
        return changed

    def _advance(self, u: Unit) -> bool:
        """Skip, reuse or start one pending unit if it is ready; True if its state changed."""
        if u.pack is not None:                          # carried: reused, or run by its pack
            m = settled_marker(self.study, u.id, self.make_spec(u, {})["inputs"])
            if m and m["status"] == DONE:
                self._set(u.id, status=DONE, wall_s=m.get("wall_s"), reused=True, error=None)
                return True
            return False
        if u.members:
            return self._advance_pack(u)
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

    def _advance_pack(self, u: Unit) -> bool:
        """Reuse a pack whose members are all done, else start it with the members not done."""
        todo = [self.by_id[m] for m in u.members if self.state[m]["status"] != DONE]
        if not todo:
            self._set(u.id, status=DONE, reused=True, error=None)
            return True
        if len(self.running) >= self.executor.capacity:
            return False
        spec = dict(self.make_spec(u, {}), members=[self.make_spec(m, {}) for m in todo])
        for m in todo:                       # a stale marker (an earlier failure) must not settle it
            marker_path(self.study, m.id).unlink(missing_ok=True)
        h = self.executor.submit(spec)
        self.running[u.id] = (h, spec, self.clock())
        now = time.strftime("%Y-%m-%dT%H:%M:%S")
        self._set(u.id, status=RUNNING, started=now)
        for m in todo:
            self._set(m.id, status=RUNNING, started=now, error=None)
        return True
