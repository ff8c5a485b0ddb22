"""``lczldl study``: the whole grid, resumable, parallel and cluster-ready.

Study folder layout::

    STUDY/study.json            resolved config, grid, store, versions, every unit's status + log
    STUDY/config.yaml           the resolved run config handed to every train unit
    STUDY/store/                prepared store (only when --data was a folder of raw vote files)
    STUDY/runs/REGIME/seedN/    run folders (train) + predictions/metrics (evaluate, calibrate)
    STUDY/units/<id>.json       atomic completion markers (done | failed)
    STUDY/logs/<id>.log         each unit's stdout/stderr
    STUDY/ensemble/ summary.csv summary.md paired.csv figures/ report.html report.md

Resume semantics: a unit whose marker says done with the same inputs fingerprint is skipped; a
failed or missing one runs again (train units continue from ``last.ckpt``); downstream units rerun
when an upstream unit was redone (the fingerprint includes the upstream marker's unique completion token).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from lczldl.config import StudyConfig
from lczldl.errors import ConfigError, DataError, RunError
from lczldl.fileio import atomic_write_json, file_sha256
from lczldl.provenance import versions
from lczldl.study.units import (
    DEFAULT_WORK,
    DONE,
    FAILED,
    KINDS,
    PENDING,
    RUNNING,
    SKIPPED,
    Unit,
    build_units,
    fingerprint,
    log_path,
    marker_path,
    parse_regimes,
    parse_seeds,
    read_marker,
)

STUDY_FORMAT = "lczldl-study"

# ---------------------------------------------------------------------------------------------
# configuration (the `study` section of a config YAML)
# ---------------------------------------------------------------------------------------------


def load_config(path: Path | None) -> tuple[dict[str, Any], dict[str, Any], StudyConfig]:
    """Read a study YAML: the run sections (model/train/evaluation, as ``lczldl train``) plus an
    optional ``study:`` section, all validated by ``lczldl.config``. Returns (run sections as
    written, the same resolved with defaults, StudyConfig). The sections as written are what the
    train units get (so a study resumes under a newer lczldl whose defaults gained or lost keys);
    the resolved one is recorded."""
    from lczldl.config import read_yaml, validate_config

    raw: dict[str, Any] = dict(read_yaml(Path(path))) if path is not None else {}
    cfg = validate_config(raw, str(path) if path is not None else "config")
    raw.pop("study", None)
    return raw, cfg.model_dump(mode="json", exclude={"study"}), cfg.study or StudyConfig()


# ---------------------------------------------------------------------------------------------
# the scheduler (generic over work functions: tests use fake ones)
# ---------------------------------------------------------------------------------------------

_PRIORITY = {"calibrate": 0, "evaluate": 1, "train": 2, "aggregate": 3, "report": 4}


class Scheduler:
    """Runs a unit DAG on an executor; the markers under ``study/units`` are the truth.

    ``make_spec(unit, upstream)`` builds the JSON-able spec for a unit once its deps are settled;
    ``upstream`` maps each done dep id to its marker. The spec's ``inputs`` fingerprint decides
    whether an existing done marker can be reused.
    """

    def __init__(self, units: Sequence[Unit], study: Path, executor: Any,
                 make_spec: Callable[[Unit, dict[str, dict]], dict[str, Any]],
                 on_change: Callable[[Scheduler], None] | None = None,
                 progress: Any | None = None, poll_s: float = 0.5):
        self.units = list(units)
        self.by_id = {u.id: u for u in self.units}
        self.study, self.executor, self.make_spec = Path(study), executor, make_spec
        self.on_change, self.progress, self.poll_s = on_change, progress, poll_s
        self.state: dict[str, dict[str, Any]] = {
            u.id: {"status": PENDING, "kind": u.kind, "regime": u.regime, "seed": u.seed,
                   "log": str(log_path(self.study, u.id))} for u in self.units}
        self.running: dict[str, tuple[Any, dict[str, Any], float]] = {}
        self.started = time.time()
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
        m = read_marker(self.study, uid)
        if m and m.get("status") == DONE and m.get("inputs") == spec["inputs"]:
            self._set(uid, status=DONE, wall_s=m.get("wall_s"), error=None)
            return
        if m and m.get("status") == FAILED and m.get("inputs") == spec["inputs"]:
            err = m.get("error") or "failed"
        else:  # the worker died before writing its marker (killed, out of memory, node failure)
            err = f"worker ended with exit code {rc} before recording a result"
            atomic_write_json(marker_path(self.study, uid), {
                "id": uid, "kind": spec.get("kind"), "inputs": spec["inputs"], "status": FAILED,
                "error": err, "log": spec["log"], "wall_s": round(time.time() - t0, 3)})
        self._set(uid, status=FAILED, error=err, wall_s=round(time.time() - t0, 3))

    # -- main loop -----------------------------------------------------------------------------
    def run(self) -> dict[str, dict[str, Any]]:
        try:
            while True:
                changed = self._step()
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

    def _step(self) -> bool:
        changed = False
        for uid, (h, spec, t0) in list(self.running.items()):
            rc = h.poll()
            if rc is not None:
                del self.running[uid]
                self._finish(uid, rc, spec, t0)
                changed = True
        pending = sorted((u for u in self.units if self.state[u.id]["status"] == PENDING),
                         key=lambda u: _PRIORITY.get(u.kind, 9))
        for u in pending:
            verdict = self._ready(u)
            if verdict is None:
                continue
            if verdict == "skip":
                bad = [d for d in u.deps if self.state[d]["status"] != DONE]
                self._set(u.id, status=SKIPPED,
                          error="needs " + ", ".join(f"{d} ({self.state[d]['status']})" for d in bad))
                changed = True
                continue
            spec = self.make_spec(u, self._upstream(u))
            m = read_marker(self.study, u.id)
            if m and m.get("status") == DONE and m.get("inputs") == spec["inputs"]:
                self._set(u.id, status=DONE, wall_s=m.get("wall_s"), reused=True, error=None)
                changed = True
                continue
            if len(self.running) >= self.executor.capacity:
                continue
            h = self.executor.submit(spec)
            self.running[u.id] = (h, spec, time.time())
            self._set(u.id, status=RUNNING, started=time.strftime("%Y-%m-%dT%H:%M:%S"))
            changed = True
        return changed


# ---------------------------------------------------------------------------------------------
# progress overview
# ---------------------------------------------------------------------------------------------


def _fmt_s(s: float | None) -> str:
    if s is None:
        return "?"
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def train_epoch(run_dir: Path) -> int | None:
    """Epochs finished so far by a running train unit (rows of its metrics.csv), or None."""
    p = Path(run_dir) / "metrics.csv"
    try:
        with open(p) as f:
            rows = sum(1 for line in f if line.strip())
    except OSError:
        return None
    return max(rows - 1, 0)


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

    def eta(self, sch: Scheduler) -> float | None:
        """Seconds left: mean wall time per kind (of units run now) x units left / parallelism."""
        walls: dict[str, list[float]] = {}
        for s in sch.state.values():
            if s["status"] == DONE and not s.get("reused") and s.get("wall_s"):
                walls.setdefault(s["kind"], []).append(float(s["wall_s"]))
        if not walls:
            return None
        allmean = sum(sum(v) for v in walls.values()) / sum(len(v) for v in walls.values())
        left = 0.0
        now = time.time()
        for uid, s in sch.state.items():
            if s["status"] in (PENDING, RUNNING):
                mean = sum(walls[s["kind"]]) / len(walls[s["kind"]]) if s["kind"] in walls else allmean
                if s["status"] == RUNNING and uid in sch.running:
                    mean = max(mean - (now - sch.running[uid][2]), 0.0)
                left += mean
        return left / max(1, min(sch.executor.capacity, max(1, len(sch.running))))

    def summary_line(self, sch: Scheduler) -> str:
        c = sch.counts()
        total = sum(c.values())
        eta = self.eta(sch)
        return (f"study {self.study.name}: {c[DONE]}/{total} done, {c[RUNNING]} running, "
                f"{c[FAILED]} failed, {c[SKIPPED]} skipped | elapsed {_fmt_s(time.time() - sch.started)}"
                f" | ETA {_fmt_s(eta) if eta is not None else 'estimating'}")

    def render(self, sch: Scheduler) -> Any:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        table = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
        table.add_column("running unit")
        table.add_column("elapsed", justify="right")
        table.add_column("progress")
        now = time.time()
        for uid, (_h, _spec, t0) in sch.running.items():
            s = sch.state[uid]
            prog = ""
            if s["kind"] == "train":
                ep = train_epoch(self.study / "runs" / str(s["regime"]) / f"seed{s['seed']}")
                if ep is not None:
                    prog = f"epoch {ep}/{self.max_epochs}" if self.max_epochs else f"epoch {ep}"
                    if self.max_epochs:
                        k = min(20, int(20 * ep / self.max_epochs))
                        prog = "[" + "#" * k + "." * (20 - k) + "] " + prog
            table.add_row(uid, _fmt_s(now - t0), Text(prog))
        parts: list[Any] = [Text(self.summary_line(sch), style="bold")]
        if sch.running:
            parts.append(table)
        return Group(*parts)

    def refresh(self, sch: Scheduler) -> None:
        if self.live is not None and time.time() - self._last >= 1.0:
            self._last = time.time()
            self.live.update(self.render(sch), refresh=True)

    def event(self, sch: Scheduler, uid: str) -> None:
        s = sch.state[uid]
        st = s["status"]
        if st == DONE and s.get("reused"):
            return
        msg = {RUNNING: f"start  {uid}", DONE: f"done   {uid} ({_fmt_s(s.get('wall_s'))})",
               FAILED: f"FAILED {uid}: {s.get('error')} (log: {s['log']})",
               SKIPPED: f"skip   {uid}: {s.get('error')}"}.get(st)
        if msg:
            style = {FAILED: "red", SKIPPED: "yellow", DONE: "green"}.get(st)
            from rich.text import Text

            self.console.print(Text(msg, style=style or ""))
        if self.live is not None:
            self.live.update(self.render(sch), refresh=True)


# ---------------------------------------------------------------------------------------------
# the study
# ---------------------------------------------------------------------------------------------


def _is_store(path: Path) -> bool:
    try:
        from lczldl.data.prepare import is_prepared_store

        return bool(is_prepared_store(path))
    except ImportError:  # pragma: no cover
        try:
            return json.loads((Path(path) / "manifest.json").read_text()).get("format") == "lczldl-store"
        except (OSError, ValueError):
            return False


def resolve_store(data: Path, study: Path, prepare: Mapping[str, Any] | None = None,
                  console: Any = None) -> Path:
    """The prepared store for ``data``: itself if it is one, else prepare raw vote files into STUDY/store."""
    data = Path(data)
    if _is_store(data):
        return data.resolve()
    store = Path(study) / "store"
    if not data.is_dir() or not any(data.glob("*.h5")):
        raise DataError(f"--data {data}: neither a prepared store (manifest.json) nor a folder of raw "
                        "vote files (*.h5); run `lczldl data prepare` or point at the right folder")
    from lczldl.data.prepare import prepare_store

    kw = dict(prepare or {})
    if console is not None:
        console.print(f"preparing raw vote files {data} -> {store} (a no-op when already prepared)")
    prepare_store(data, store, **kw)
    return store.resolve()


@contextlib.contextmanager
def study_lock(study: Path) -> Iterator[None]:
    """Refuse a second study process on the same folder (the lock dies with its process)."""
    Path(study).mkdir(parents=True, exist_ok=True)
    fh = open(Path(study) / ".lock", "a+")  # noqa: SIM115
    try:
        import fcntl

        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            raise RunError(f"{study}: another `lczldl study` is running on this folder; wait for it "
                           "or stop it first") from exc
    except ImportError:  # pragma: no cover - non-POSIX: no lock
        pass
    try:
        yield
    finally:
        fh.close()


def _check_same_config(study: Path, run_config: dict[str, Any], store: Path) -> None:
    p = Path(study) / "study.json"
    if not p.is_file():
        return
    try:
        old = json.loads(p.read_text())
    except ValueError:
        return
    if old.get("run_config") not in (None, run_config):
        raise ConfigError(f"{p}: this study was started with a different run config; rerun with the "
                          "same --config or use a new --out folder")
    if old.get("store") not in (None, str(store)):
        raise ConfigError(f"{p}: this study was started on store {old.get('store')}; rerun with the "
                          "same --data or use a new --out folder")


def _pick(cli: Any, default: Any, cfg: Any) -> Any:
    """CLI value unless it is the CLI default, then the config's."""
    return cfg if cli == default or cli is None else cli


def run_study(data: Path, out: Path, config: Path | None = None, regimes: str | None = None,
              seeds: str = "0-4", workers: int = 1, executor: str = "local", *,
              work: Mapping[str, str] | None = None, progress: bool = True,
              console: Any = None, notes: Sequence[str] = ()) -> dict:
    """Run (or resume) the study in ``out``; returns the final study.json content.

    ``work`` maps unit kinds to "module:function" (tests swap in fakes); ``notes`` (e.g. the
    demo's reductions) go to study.json["notes"] for the report. Raises RunError at the
    end when a unit failed (after every other unit ran and study.json/report were written).
    """
    from rich.console import Console

    console = console or Console()
    study = Path(out)
    run_config, resolved, sc = load_config(config)
    regime_list = parse_regimes(regimes if regimes is not None else sc.regimes)
    seed_list = parse_seeds(_pick(seeds, "0-4", sc.seeds))
    n_workers = int(_pick(workers, 1, sc.workers))
    ex_kind = str(_pick(executor, "local", sc.executor))
    work = {**DEFAULT_WORK, **(work or {})}

    with study_lock(study):
        store = resolve_store(data, study, sc.prepare.model_dump(), console)
        _check_same_config(study, run_config, store)
        cfg_path = study / "config.yaml"
        if not cfg_path.is_file() or yaml.safe_load(cfg_path.read_text()) != run_config:
            tmp = cfg_path.with_name(".config.yaml.tmp")
            tmp.write_text(yaml.safe_dump(run_config, sort_keys=False) if run_config else "{}\n")
            os.replace(tmp, cfg_path)
        units = build_units(regime_list, seed_list)
        by_id = {u.id: u for u in units}
        base = {"study": str(study.resolve()), "store": str(store), "config": str(cfg_path.resolve()),
                "mc_passes": resolved["evaluation"]["mc_passes"],
                "n_bins": resolved["evaluation"]["n_bins"], "config_hash": fingerprint(run_config),
                "store_checksum": file_sha256(store / "manifest.json")}

        def make_spec(u: Unit, upstream: dict[str, dict]) -> dict[str, Any]:
            ups = {d: m.get("completion") or m.get("finished") for d, m in sorted(upstream.items())}
            key = {k: base[k] for k in ("store", "store_checksum", "config_hash")}
            inputs = fingerprint({"kind": u.kind, "regime": u.regime, "seed": u.seed, **key,
                                  "upstream": ups, "work": work[u.kind]})
            return {**base, "id": u.id, "kind": u.kind, "regime": u.regime, "seed": u.seed,
                    "runs": str((study / "runs").resolve()),
                    "run": str((study / "runs" / str(u.regime) / f"seed{u.seed}").resolve())
                    if u.regime else None,
                    "regimes": regime_list, "seeds": seed_list,
                    "done_runs": [[by_id[d].regime, by_id[d].seed] for d in sorted(upstream)
                                  if by_id[d].kind == "calibrate"],
                    "inputs": inputs, "work": work[u.kind], "log": str(log_path(study, u.id).resolve())}

        info: dict[str, Any] = {
            "format": STUDY_FORMAT, "version": 1, "data": str(Path(data).resolve()), "store": str(store),
            "store_manifest_sha256": base["store_checksum"],
            "regimes": regime_list, "seeds": seed_list, "executor": ex_kind, "workers": n_workers,
            "run_config": run_config, "resolved_config": resolved, "study_config": sc.model_dump(), "versions": versions(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "status": "running", "notes": list(notes)}
        old = study / "study.json"
        if old.is_file():
            with contextlib.suppress(ValueError, OSError):
                info["created"] = json.loads(old.read_text()).get("created", info["created"])
        for sub in ("units", "logs", "runs"):
            (study / sub).mkdir(parents=True, exist_ok=True)

        def write_info(sch: Scheduler, status: str | None = None) -> None:
            info["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
            if status:
                info["status"] = status
            info["units"] = {uid: {k: v for k, v in s.items() if v is not None}
                             for uid, s in sch.state.items()}
            info["counts"] = sch.counts()
            info["failures"] = [{"id": uid, "log": s["log"], "error": s.get("error")}
                                for uid, s in sch.state.items() if s["status"] == FAILED]
            info["skipped"] = [{"id": uid, "reason": s.get("error")}
                               for uid, s in sch.state.items() if s["status"] == SKIPPED]
            atomic_write_json(study / "study.json", info)

        slurm = sc.slurm.model_dump()
        from lczldl.study.executors import make_executor

        ex = make_executor(ex_kind, study, n_workers, slurm)
        max_ep = resolved["train"]["max_epochs"]
        ov = Overview(study, max_epochs=max_ep, console=console) if progress else None
        sch = Scheduler(units, study, ex, make_spec, on_change=write_info, progress=ov,
                        poll_s=5.0 if ex_kind == "slurm" else 0.1)
        console.print(f"study {study}: {len(regime_list)} regimes x {len(seed_list)} seeds, "
                      f"{len(units)} units, executor {ex_kind}, workers {ex.capacity}"
                      + (f", {getattr(ex, 'threads', '?')} threads each" if ex_kind == "local" else ""))
        prev = signal.getsignal(signal.SIGTERM)
        in_main = _main_thread()
        if in_main:
            signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            with (ov if ov is not None else contextlib.nullcontext()):
                sch.run()
        except BaseException:
            write_info(sch, "interrupted")
            raise
        finally:
            if in_main:
                signal.signal(signal.SIGTERM, prev)
        c = sch.counts()
        write_info(sch, "finished" if c[FAILED] == 0 and c[SKIPPED] == 0 else "finished_with_failures")

    _final_message(console, study, info)
    if info["failures"]:
        first = info["failures"][0]
        raise RunError(f"{len(info['failures'])} unit(s) failed, first {first['id']}: {first['error']} "
                       f"(log: {first['log']}); fix and rerun the same command to resume")
    return info


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _final_message(console: Any, study: Path, info: dict) -> None:
    c = info.get("counts", {})
    console.print(f"study {study}: {c.get(DONE, 0)} units done, {c.get(FAILED, 0)} failed, "
                  f"{c.get(SKIPPED, 0)} skipped")
    for f in info.get("failures", []):
        console.print(f"  failed {f['id']}: {f['error']} (log: {f['log']})", style="red", highlight=False)
    rep = study / "report.html"
    if rep.is_file():
        console.print(f"report: {rep}")


# ---------------------------------------------------------------------------------------------
# the real work of each unit kind (run inside a worker process; spec from run_study)
# ---------------------------------------------------------------------------------------------


def train(spec: dict[str, Any]) -> dict[str, Any]:
    """Train one run into STUDY/runs/REGIME/seedN, continuing from last.ckpt when present."""
    import shutil

    run = Path(spec["run"])
    status = _run_status(run)
    if status == "finished":
        print(f"{run}: already finished, nothing to do")
        return {"run": str(run), "reused": True}
    from lczldl.training.run import train_run

    resume = (run / "checkpoints" / "last.ckpt").is_file()
    if run.exists() and not resume:  # killed before the first checkpoint: start clean
        shutil.rmtree(run)
    print(f"train {spec['regime']} seed {spec['seed']} -> {run} (resume={resume})", flush=True)
    train_run(data=Path(spec["store"]), regime=spec["regime"], seed=int(spec["seed"]),
              out=Path(spec["runs"]), config=Path(spec["config"]), overrides=None,
              max_epochs=None, resume=resume, progress=False,
              num_threads=spec.get("threads"))
    if _run_status(run) != "finished":
        raise RunError(f"{run}/run.json: status is {_run_status(run)!r} after training, expected finished")
    return {"run": str(run)}


def _run_status(run: Path) -> str | None:
    try:
        return json.loads((Path(run) / "run.json").read_text()).get("status")
    except (OSError, ValueError):
        return None


def evaluate(spec: dict[str, Any]) -> dict[str, Any]:
    """Predictions on val/test and plain metrics for one run."""
    from lczldl.evaluation import runs as ev

    ev.evaluate_run(Path(spec["run"]), n_bins=int(spec["n_bins"]), progress=False)
    return {"run": spec["run"]}


def calibrate(spec: dict[str, Any]) -> dict[str, Any]:
    """Temperature scaling and MC dropout for one evaluated run."""
    from lczldl.evaluation import runs as ev

    ev.calibrate_run(Path(spec["run"]), mc_passes=int(spec["mc_passes"]), n_bins=int(spec["n_bins"]),
                     progress=False)
    return {"run": spec["run"]}


def aggregate(spec: dict[str, Any]) -> dict[str, Any]:
    """Ensembles per regime and the summary tables over the runs that finished."""
    from lczldl.evaluation import runs as ev

    ev.aggregate_runs(Path(spec["runs"]), out=Path(spec["study"]), n_bins=int(spec["n_bins"]),
                      progress=False)
    return {"runs": spec["done_runs"]}


def report(spec: dict[str, Any]) -> dict[str, Any]:
    """Figures and report.html / report.md from the saved files."""
    from lczldl.viz.report import redraw_study

    redraw_study(Path(spec["study"]))
    return {}


__all__ = ["KINDS", "Overview", "Scheduler", "load_config", "run_study"]
