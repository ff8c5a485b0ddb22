"""Owns ``run_study``, the whole study in one call: resolves its settings, checks every option
before anything is written, then builds the unit DAG and runs it (resumable, parallel, SLURM).

Study folder layout (names in :mod:`lczldl.layout`)::

    STUDY/study.json            resolved config, grid, store, versions, every unit's status + log
    STUDY/config.yaml           the run config handed to every train unit
    STUDY/store/                prepared store (only when ``data`` was a folder of raw vote files)
    STUDY/runs/REGIME/seedN/    run folders (train) + predictions/metrics (evaluate, calibrate)
    STUDY/units/<id>.json       atomic completion markers (done | failed)
    STUDY/logs/<id>.log         each unit's stdout/stderr
    STUDY/ensemble/ summary.csv summary.md paired.csv figures/ report.html report.md
    STUDY/budget/k<k>/{runs,ensemble}/ summary.csv ...   the vote-budget grid (--vote-budget)
    STUDY/budget/budget.csv     its table over k

Resume semantics: a unit whose marker says done with the same inputs fingerprint is skipped; a
failed or missing one runs again (train units continue from ``last.ckpt``); downstream units rerun
when an upstream unit was redone (the fingerprint includes the upstream marker's unique completion
token).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from lczldl.config import LczldlConfig, StudyConfig, load_config, read_yaml, run_sections
from lczldl.data.store import (
    BUDGET_TARGETS,
    aggregators_needed,
    manifest_has_votes,
    read_manifest,
    require_targets,
    require_votes,
)
from lczldl.errors import ConfigError, RunError
from lczldl.fileio import file_sha256
from lczldl.layout import (
    REPORT_HTML,
    STUDY_LOGS,
    STUDY_RUNS,
    STUDY_UNITS,
    budget_dir,
    log_path,
    manifest_path,
    study_run_dir,
    study_runs,
)
from lczldl.provenance import versions
from lczldl.regimes import REGIMES, label_only_regimes, regime_targets
from lczldl.study.executors import check_executor, make_executor
from lczldl.study.folder import (
    StudyRecord,
    check_out,
    check_same_config,
    planned_store,
    removed_on_error,
    resolve_store,
    study_lock,
    write_run_config,
)
from lczldl.study.packs import resolve_pack
from lczldl.study.progress import Overview
from lczldl.study.scheduler import Scheduler
from lczldl.study.units import DEFAULT_WORK, DONE, FAILED, SKIPPED, Unit, build_units, fingerprint

#: run_study's settings arguments -> the config keys they set (what the caller typed wins)
OPTION_KEYS: dict[str, str] = {"regimes": "study.regimes", "seeds": "study.seeds", "workers": "study.workers",
                               "executor": "study.executor", "intervals": "study.intervals",
                               "pack": "study.pack", "vote_budget": "study.vote_budget.k"}
#: seconds between polls of running units
POLL_S = {"slurm": 5.0}
POLL_S_DEFAULT = 0.1


def written_run_sections(path: Path | None) -> dict[str, Any]:
    """The run sections of the YAML at ``path`` as written (every section but ``study``; {} without
    a file): what the train units get, so a study resumes under a newer lczldl whose defaults
    gained or lost keys."""
    raw: dict[str, Any] = dict(read_yaml(Path(path))) if path is not None else {}
    raw.pop("study", None)
    return raw


def with_study(cfg: LczldlConfig) -> LczldlConfig:
    """``cfg`` with its ``study`` section (the defaults when the file has none)."""
    return cfg.model_copy(update={"study": cfg.study or StudyConfig()})


def load_study_config(path: Path | None, **options: Any) -> tuple[dict[str, Any], LczldlConfig]:
    """(run sections as written in the YAML, the resolved config with its ``study`` section).

    ``options``: regimes, seeds, workers, executor, intervals, pack, vote_budget as typed (None = not
    given; :data:`OPTION_KEYS`); they win over the file's ``study`` section, which wins over the
    defaults. A bad typed value is named by its parameter (``pack 0: ...``)."""
    cfg = load_config(path, None, flags={OPTION_KEYS[k]: k for k in options},
                      **{OPTION_KEYS[k]: v for k, v in options.items()})
    return written_run_sections(path), with_study(cfg)


def run_study(data: Path, out: Path, config: Path | None = None, regimes: str | None = None,
              seeds: str | None = None, workers: int | None = None, executor: str | None = None, *,
              work: Mapping[str, str] | None = None, progress: bool = True,
              console: Any = None, notes: Sequence[str] = (), intervals: bool | None = None,
              pack: int | None = None, vote_budget: str | None = None,
              settings: LczldlConfig | None = None) -> dict:
    """Run (or resume) the study in ``out``; returns the final study.json content.

    ``regimes`` / ``seeds`` / ``workers`` / ``executor`` / ``pack`` are the settings as the user
    typed them (None = not given: the config's ``study`` section, else the defaults; the default
    pack size is :func:`lczldl.study.packs.resolve_pack`'s); ``intervals`` (report tables as mean
    [lo, hi]) likewise; ``vote_budget`` (e.g. "1,3,5,all") the vote-budget grid (else the config's
    ``study.vote_budget``; :func:`check_budget`). ``settings``: the config already resolved from
    ``config`` and those options by the caller (``lczldl study`` resolves it, naming bad values by
    their flags); the options then only say what was typed. Every option, the config and ``data``
    are checked before anything is written; a study folder this call created is removed again if
    it fails before its units start. ``work`` maps unit kinds to "module:function" (tests swap in
    fakes); ``notes`` (e.g. the demo's reductions) go to study.json["notes"] for the report.
    Raises RunError at the end when a unit failed (after every other unit ran and
    study.json/report were written).
    """
    from rich.console import Console

    console = console or Console()
    study = Path(out)
    if settings is None:
        run_config, cfg = load_study_config(config, regimes=regimes, seeds=seeds, workers=workers,
                                            executor=executor, intervals=intervals, pack=pack,
                                            vote_budget=vote_budget)
    else:
        run_config, cfg = written_run_sections(config), with_study(settings)
    sc = cfg.study
    assert sc is not None  # noqa: S101 - with_study fills it
    check_out(study)
    planned = planned_store(data, study)
    check_same_config(study, run_config, planned)
    check_executor(sc.executor)
    sc = fit_regimes(data, planned, sc, console)      # a store without votes: its regimes, or refused
    cfg = cfg.model_copy(update={"study": sc})
    targets = [t for r in sc.regimes for t in regime_targets(r)[:2]]
    missing = [m for m in aggregators_needed(targets) if m not in sc.prepare.aggregators]
    if missing and planned != Path(data).resolve():     # raw votes: prepared here
        raise ConfigError(f"regimes={','.join(sc.regimes)}: needs study.prepare.aggregators to include "
                          f"{', '.join(missing)} (the store is prepared from raw votes)", params=("regimes",))
    budgets = check_budget(cfg, typed=vote_budget is not None, data=data, planned=planned)
    work = {**DEFAULT_WORK, **(work or {})}
    pack_size = resolve_pack(cfg, len(sc.regimes) * len(sc.seeds), typed=pack is not None)
    units = build_units(sc.regimes, sc.seeds, pack_size, budgets=budgets)

    created = not study.exists()
    with study_lock(study):
        with removed_on_error(study, created):  # nothing of a study that never started is left
            store = resolve_store(data, study, sc.prepare, console)
            require_targets(store, targets)
            cfg_path = write_run_config(study, run_config)
            for sub in (STUDY_UNITS, STUDY_LOGS, STUDY_RUNS):
                (study / sub).mkdir(parents=True, exist_ok=True)
            base = {"study": str(study.resolve()), "store": str(store), "config": str(cfg_path.resolve()),
                    "evaluation": cfg.evaluation.model_dump(mode="json"), "intervals": sc.intervals,
                    "figures_pdf": sc.figures_pdf,
                    "config_hash": fingerprint(run_config),
                    "store_checksum": file_sha256(manifest_path(store)),
                    "vote_budget": sc.vote_budget.model_dump(mode="json")}
            record = StudyRecord(
                study, data=str(Path(data).resolve()), store=str(store),
                store_manifest_sha256=base["store_checksum"], regimes=sc.regimes, seeds=sc.seeds,
                executor=sc.executor, workers=sc.workers, run_config=run_config,
                resolved_config=run_sections(cfg), study_config=sc.model_dump(), versions=versions(),
                notes=list(notes), pack=pack_size)
            ex = make_executor(sc.executor, study, sc.workers, sc.slurm.model_dump())
        ov = Overview(study, max_epochs=cfg.train.max_epochs, console=console) if progress else None
        sch = Scheduler(units, study, ex, spec_maker(units, base, work),
                        on_change=record.write, progress=ov,
                        poll_s=POLL_S.get(sc.executor, POLL_S_DEFAULT))
        console.print(f"study {study}: {len(sc.regimes)} regimes x {len(sc.seeds)} seeds"
                      + (f" x vote budgets {','.join(map(str, budgets))},all" if budgets else "") + ", "
                      f"{len(units)} units, executor {sc.executor}, workers {ex.capacity}"
                      + (f", {getattr(ex, 'threads', '?')} threads each" if sc.executor == "local" else "")
                      + (f", packs of up to {pack_size} runs" if pack_size > 1 else ""))
        _run_until_settled(sch, ov, record)
    final_message(console, study, record.info)
    failures = record.info["failures"]
    if failures:
        first = failures[0]
        raise RunError(f"{len(failures)} unit(s) failed, first {first['id']}: {first['error']} "
                       f"(log: {first['log']}); fix and rerun the same command to resume")
    return record.info


def fit_regimes(data: Path, planned: Path, sc: StudyConfig, console: Any = None) -> StudyConfig:
    """The study's regimes on a prepared store without expert votes (So2Sat LCZ42): the default
    regimes become those that need no votes (onehot, onehot_ls); regimes that need votes, chosen by
    ``regimes`` or the config's study.regimes, are a DataError naming the ones that apply. Raw vote
    files (prepared by the study) and stores with votes keep ``sc`` as it is. Writes nothing."""
    if planned != Path(data).resolve():             # raw vote files: the store will have votes
        return sc
    if manifest_has_votes(read_manifest(planned)):
        return sc
    if "regimes" in sc.model_fields_set:
        require_votes(planned, sc.regimes, "study.regimes")
        return sc
    regimes = label_only_regimes(sc.regimes)
    if console is not None:
        console.print(f"store {planned} has no expert votes: regimes {', '.join(regimes)}")
    return sc.model_copy(update={"regimes": regimes})


def spec_maker(units: Sequence[Unit], base: dict[str, Any],
               work: Mapping[str, str]) -> Callable[[Unit, dict[str, dict]], dict[str, Any]]:
    """``make_spec(unit, upstream)`` for the scheduler: what a unit's worker gets, with the
    ``inputs`` fingerprint (store, run config, regime, seed, the upstream units' completion tokens
    and the work function) that decides whether its marker can be reused."""
    by_id = {u.id: u for u in units}
    study = Path(base["study"])

    def make_spec(u: Unit, upstream: dict[str, dict]) -> dict[str, Any]:
        ups = {d: m.get("completion") or m.get("finished") for d, m in sorted(upstream.items())}
        key = {k: base[k] for k in ("store", "store_checksum", "config_hash")}
        draw = {k: v for k, v in base["vote_budget"].items() if k != "k"}      # the budget grid's mode, seed
        # the study's own units keep the fingerprint they had before vote budgets existed
        budget = ({"budget": u.budget, "budget_draw": draw} if u.budget is not None else
                  {"budget_grid": base["vote_budget"]} if u.kind == "budget" else {})
        inputs = fingerprint({"kind": u.kind, "regime": u.regime, "seed": u.seed, **key,
                              "upstream": ups, "work": work[u.kind], **budget,
                              **({"intervals": base["intervals"]} if u.kind == "report" else {}),
                              # (only when off: a study's report keeps the fingerprint it had before)
                              **({"figures_pdf": False} if u.kind == "report" and not base["figures_pdf"] else {}),
                              **({"members": list(u.members)} if u.members else {})})
        return {**base, "id": u.id, "kind": u.kind, "regime": u.regime, "seed": u.seed,
                "budget": u.budget, "runs": str(study_runs(study, u.budget)),
                "out": str(study if u.budget is None else budget_dir(study, u.budget)),
                "run": str(study_run_dir(study, u.regime, u.seed, u.budget)) if u.regime else None,
                "done_runs": [[by_id[d].regime, by_id[d].seed] for d in sorted(upstream)
                              if by_id[d].kind == "calibrate"],
                "inputs": inputs, "work": work[u.kind], "log": str(log_path(study, u.id))}

    return make_spec


def check_budget(cfg: LczldlConfig, typed: bool = False, data: Path | None = None,
                 planned: Path | None = None) -> list[int]:
    """The vote budgets k of the study's grid (``study.vote_budget.k``, "all" being the study's own
    runs); ConfigError (nothing written yet) when the run config sets ``data.vote_budget.k`` too
    (then "all" would not be every vote), a regime's targets cannot be built from k votes
    (:data:`lczldl.data.store.BUDGET_TARGETS`) or the prepared store ``data`` (``planned``: the
    store the study will use) has no votes. ``typed``: the user typed it (errors then name the
    parameter ``vote_budget``, else the key ``study.vote_budget.k``)."""
    sc = cfg.study or StudyConfig()
    ks = list(sc.vote_budget.k)
    if not ks:
        return []
    where = (f"vote_budget={','.join(map(str, ks))}" if typed
             else f"study.vote_budget.k={','.join(map(str, ks))}")
    if (data is not None and planned is not None and planned == Path(data).resolve()
            and not manifest_has_votes(read_manifest(planned))):
        raise ConfigError(f"{where}: the store {planned} has no expert votes (one label per image) to keep k of",
                          params=("vote_budget",))
    if cfg.data.vote_budget.k is not None:
        raise ConfigError(f"{where}: the run config sets data.vote_budget.k={cfg.data.vote_budget.k} as well; "
                          "leave it unset (the grid's 'all' is the study's own runs)", params=("vote_budget",))
    def fits(r: str) -> bool:
        return all(t in BUDGET_TARGETS for t in regime_targets(r)[:2])

    bad = [r for r in sc.regimes if not fits(r)]
    if bad:
        raise ConfigError(f"{where}: regime(s) {', '.join(bad)} cannot be trained on a vote budget (their "
                          f"targets are fitted on every vote); choose among {', '.join(r for r in REGIMES if fits(r))}",
                          params=("vote_budget",))
    return ks


def _run_until_settled(sch: Scheduler, ov: Overview | None, record: StudyRecord) -> None:
    """Run the scheduler with SIGTERM turned into an interrupt; study.json says how it ended."""
    in_main = threading.current_thread() is threading.main_thread()
    prev = signal.getsignal(signal.SIGTERM)
    if in_main:
        signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        with ov if ov is not None else contextlib.nullcontext():
            sch.run()
    except BaseException:
        record.write(sch, "interrupted")
        raise
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, prev)
    c = sch.counts()
    record.write(sch, "finished" if c[FAILED] == 0 and c[SKIPPED] == 0 else "finished_with_failures")


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def final_message(console: Any, study: Path, info: dict) -> None:
    """Units done / failed / skipped, each failure with its log, and where the report is."""
    c = info.get("counts", {})
    console.print(f"study {study}: {c.get(DONE, 0)} units done, {c.get(FAILED, 0)} failed, "
                  f"{c.get(SKIPPED, 0)} skipped")
    for f in info.get("failures", []):
        console.print(f"  failed {f['id']}: {f['error']} (log: {f['log']})", style="red", highlight=False)
    rep = study / REPORT_HTML
    if rep.is_file():
        console.print(f"report: {rep}")


__all__ = ["check_budget", "fit_regimes", "load_study_config", "run_study", "with_study", "written_run_sections"]
