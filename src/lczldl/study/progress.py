"""Owns the study's console progress: one line per unit event and, on a terminal, a live overview
(units done / running / failed, elapsed time, ETA, each running train unit's epoch; a running
pack shows one row per member, each with its epoch bar from the member's metrics.csv)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from lczldl.layout import HISTORY, study_run_dir
from lczldl.study.units import DONE, FAILED, PENDING, RUNNING, SKIPPED

#: seconds between redraws of the live overview
REFRESH_S = 1.0
#: width of a train unit's epoch bar, characters
BAR_WIDTH = 20


def fmt_s(s: float | None) -> str:
    """Seconds as ``1m05s`` / ``2h03m``; ``?`` for None."""
    if s is None:
        return "?"
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def train_epoch(run_dir: Path) -> int | None:
    """Epochs finished so far by a running train unit (rows of its metrics.csv), or None."""
    try:
        with open(Path(run_dir) / HISTORY) as f:
            rows = sum(1 for line in f if line.strip())
    except OSError:
        return None
    return max(rows - 1, 0)


def eta(sch: Any) -> float | None:
    """Seconds left: mean wall time per kind (of units run now, not reused) x units left, less
    what running units have already spent, divided by the units running at once. Times come from
    ``sch.clock``; None until a unit has finished. Train units carried by a pack count as their
    pack's time (they are not counted themselves)."""
    walls: dict[str, list[float]] = {}
    for s in sch.state.values():
        if s["status"] == DONE and not s.get("reused") and s.get("wall_s") and not s.get("pack"):
            walls.setdefault(s["kind"], []).append(float(s["wall_s"]))
    if not walls:
        return None
    allmean = sum(sum(v) for v in walls.values()) / sum(len(v) for v in walls.values())
    left = 0.0
    now = sch.clock()
    for uid, s in sch.state.items():
        if s["status"] in (PENDING, RUNNING) and not s.get("pack"):
            mean = sum(walls[s["kind"]]) / len(walls[s["kind"]]) if s["kind"] in walls else allmean
            if s["status"] == RUNNING and uid in sch.running:
                mean = max(mean - (now - sch.running[uid][2]), 0.0)
            left += mean
    return left / max(1, min(sch.executor.capacity, max(1, len(sch.running))))


class Overview:
    """Rich overview: units done / running / failed, ETA, and each running unit's epoch.

    On a terminal it is a live table redrawn every second; otherwise one line per event.
    ``max_epochs`` is shown as the denominator of train units' epoch counters.
    """

    def __init__(self, study: Path, max_epochs: int | None = None, console: Any = None):
        from rich.console import Console

        self.study, self.max_epochs = Path(study), max_epochs
        self.console = console or Console(stderr=False)
        self.live = None
        self._last = 0.0

    def __enter__(self) -> Overview:
        if self.console.is_terminal:
            from rich.live import Live

            self.live = Live(console=self.console, auto_refresh=False, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)
            self.live = None

    def summary_line(self, sch: Any) -> str:
        c = sch.counts()
        total = sum(c.values())
        left = eta(sch)
        return (f"study {self.study.name}: {c[DONE]}/{total} done, {c[RUNNING]} running, "
                f"{c[FAILED]} failed, {c[SKIPPED]} skipped | elapsed {fmt_s(sch.clock() - sch.started)}"
                f" | ETA {fmt_s(left) if left is not None else 'estimating'}")

    def epoch_bar(self, regime: str, seed: int, budget: int | None = None) -> str:
        """``[####....] epoch 3/10`` of a running train unit (of vote budget ``budget``), '' before
        its first epoch."""
        ep = train_epoch(study_run_dir(self.study, regime, seed, budget))
        if ep is None:
            return ""
        if not self.max_epochs:
            return f"epoch {ep}"
        k = min(BAR_WIDTH, int(BAR_WIDTH * ep / self.max_epochs))
        return "[" + "#" * k + "." * (BAR_WIDTH - k) + f"] epoch {ep}/{self.max_epochs}"

    def render(self, sch: Any) -> Any:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        table = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
        table.add_column("running unit")
        table.add_column("elapsed", justify="right")
        table.add_column("progress")
        now = sch.clock()
        for uid, (_h, spec, t0) in sch.running.items():
            s = sch.state[uid]
            prog = (self.epoch_bar(str(s["regime"]), int(s["seed"]), spec.get("budget"))
                    if s["kind"] == "train" else "")
            table.add_row(uid, fmt_s(now - t0), Text(prog))
            for ms in spec.get("members", []):               # a pack: one bar per member
                if sch.state[ms["id"]]["status"] == RUNNING:
                    table.add_row(f"  {ms['id']}", "", Text(self.epoch_bar(str(ms["regime"]), int(ms["seed"]),
                                                                            ms.get("budget"))))
        parts: list[Any] = [Text(self.summary_line(sch), style="bold")]
        if sch.running:
            parts.append(table)
        return Group(*parts)

    def refresh(self, sch: Any) -> None:
        if self.live is not None and time.monotonic() - self._last >= REFRESH_S:
            self._last = time.monotonic()
            self.live.update(self.render(sch), refresh=True)

    def event(self, sch: Any, uid: str) -> None:
        s = sch.state[uid]
        st = s["status"]
        if st == DONE and s.get("reused"):
            return
        where = f" in {s['pack']}" if s.get("pack") else ""
        msg = {RUNNING: f"start  {uid}{where}", DONE: f"done   {uid}{where} ({fmt_s(s.get('wall_s'))})",
               FAILED: f"FAILED {uid}: {s.get('error')} (log: {s['log']})",
               SKIPPED: f"skip   {uid}: {s.get('error')}"}.get(st)
        if msg:
            from rich.text import Text

            style = {FAILED: "red", SKIPPED: "yellow", DONE: "green"}.get(st)
            self.console.print(Text(msg, style=style or ""))
        if self.live is not None:
            self.live.update(self.render(sch), refresh=True)
