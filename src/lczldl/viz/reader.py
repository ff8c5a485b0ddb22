"""Owns reading a study folder for the figures and the report: study.json, the runs' metrics files,
beyond-the-paper files and predictions, the summary tables the evaluation wrote (summary.csv with
its intervals, paired.csv) and the vote counts of the prepared store (its manifest's
``release_votes``; for an older store its vote arrays, through :func:`lczldl.data.store.open_store`). It reads, never recomputes: what is missing is listed in
``Study.notes``.

Reads (file names from :mod:`lczldl.layout`)::

    STUDY/study.json                      config, regimes, seeds, store, versions, failures,
                                          resolved evaluation settings
    STUDY/store/ or study.json["store"]   the prepared store (manifest; votes, original, label
                                          when the manifest has no release_votes)
    STUDY/runs/REGIME/seedN/              predictions.npz, metrics.json, metrics_ts.json, metrics_mc.json,
                                          beyond_{plain,temperature,mc_dropout}.json
    STUDY/ensemble/REGIME/beyond_ensemble.json
    STUDY/summary.csv   STUDY/paired.csv
    STUDY/budget/budget.csv               the vote-budget table (a study with --vote-budget)
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from lczldl import layout
from lczldl.constants import N_URBAN
from lczldl.data.labels import release_vote_counts
from lczldl.data.store import manifest_has_votes, open_store
from lczldl.distributions import N_ENTROPY_BINS
from lczldl.errors import DataError, RunError
from lczldl.evaluation import predictions as P
from lczldl.evaluation.files import load_predictions, read_json_object
from lczldl.evaluation.registry import ENSEMBLE, METHODS, PER_SEED_METHODS
from lczldl.evaluation.summary import PAIRED_COLUMNS
from lczldl.regimes import order_regimes

#: What a figure needs from a run's predictions.npz.
PREDICTION_KEYS = (P.PROBS, P.LOG_PROBS, P.LABELS, P.VOTE_ENTROPY)
#: Remedy named when a study file cannot be read.
_REMEDY = "delete it and rerun `lczldl study` to rewrite it"


@dataclass
class Run:
    """Saved outputs of one run (any may be missing)."""

    regime: str
    seed: int
    path: Path
    metrics: dict[str, dict] = field(default_factory=dict)    # method -> metrics file object
    temperature: float | None = None
    beyond: dict[str, dict] = field(default_factory=dict)     # method -> beyond_<method>.json object

    def predictions(self) -> dict[str, np.ndarray] | None:
        """The :data:`PREDICTION_KEYS` arrays of predictions.npz; None when there is none."""
        p = self.path / layout.PREDICTIONS
        return load_predictions(p, PREDICTION_KEYS) if p.is_file() else None


@dataclass
class Study:
    """Everything the figures and the report need, read from one study folder."""

    path: Path
    info: dict[str, Any]
    regimes: list[str]
    seeds: list[int]
    runs: dict[str, dict[int, Run]]
    store: Path | None
    manifest: dict[str, Any] | None
    notes: list[str] = field(default_factory=list)
    #: regime -> the ensemble's beyond_ensemble.json object
    ensemble_beyond: dict[str, dict] = field(default_factory=dict)
    #: confidence bins the study was evaluated with (:func:`recorded_bins`); None: not recorded
    n_bins: int | None = None
    #: summary.csv's rows once read (:func:`summary_rows`)
    _summary: list[dict[str, Any]] | None = field(default=None, repr=False)

    @property
    def intervals(self) -> bool:
        """Whether the report shows mean [lo, hi] (the study's ``study.intervals``; default no)."""
        return bool((self.info.get("study_config") or {}).get("intervals", False))

    @property
    def figures_pdf(self) -> bool:
        """Whether figures are also written as PDF (the study's ``study.figures_pdf``; default yes)."""
        return bool((self.info.get("study_config") or {}).get("figures_pdf", True))

    def beyond(self, method: str) -> dict[str, list[dict]]:
        """regime -> the beyond files of ``method`` (per seed in seed order; one for the ensemble)."""
        if method == ENSEMBLE:
            return {reg: [obj] for reg, obj in self.ensemble_beyond.items()}
        out: dict[str, list[dict]] = {}
        for reg in self.regimes:
            objs = [r.beyond[method] for _, r in sorted(self.runs.get(reg, {}).items()) if method in r.beyond]
            if objs:
                out[reg] = objs
        return out



def _read_run(regime: str, seed: int, folder: Path) -> Run:
    run = Run(regime, seed, folder)
    for method in PER_SEED_METHODS:
        obj = read_json_object(folder / METHODS[method].metrics_file, _REMEDY)
        if obj is not None:
            run.metrics[method] = obj
        obj = read_json_object(layout.beyond_path(folder, method), _REMEDY)
        if obj is not None:
            run.beyond[method] = obj
    ts = run.metrics.get("temperature", {}).get("temperature")
    run.temperature = float(ts) if isinstance(ts, int | float) and ts > 0 else None
    return run


def _bins_of(obj: Any, *path: str) -> int | None:
    """The int at ``path`` inside nested dicts ``obj``; None when it is missing or not an int."""
    for key in path:
        obj = obj.get(key) if isinstance(obj, dict) else None
    return obj if isinstance(obj, int) and not isinstance(obj, bool) else None


def recorded_bins(info: dict[str, Any], runs: dict[str, dict[int, Run]], notes: list[str]) -> int | None:
    """The confidence bins the study was evaluated with: the ``n_bins`` its runs' metrics.json record
    in "meta" (the first run's in regime and seed order; a disagreement is noted), else the
    resolved evaluation settings of study.json; None when neither records it."""
    found = [b for reg in runs for _, r in sorted(runs[reg].items())
             if (b := _bins_of(r.metrics.get("plain"), "meta", "n_bins")) is not None]
    if len(set(found)) > 1:
        notes.append(f"runs evaluated with different calibration bins ({', '.join(map(str, sorted(set(found))))}); "
                     f"the figures use {found[0]}")
    return found[0] if found else _bins_of(info, "resolved_config", "evaluation", "n_bins")


def _find_store(study: Path, info: dict[str, Any], notes: list[str]) -> tuple[Path | None, dict | None]:
    """The study's prepared store and its manifest (study.json "store", else STUDY/store)."""
    cands = ([Path(info["store"])] if info.get("store") else []) + [study / layout.STUDY_STORE]
    for cand in cands:
        if layout.manifest_path(cand).is_file():
            try:
                return cand, open_store(cand).manifest
            except DataError as exc:
                notes.append(f"prepared store unreadable ({exc}): data summary and vote figures left out")
                return None, None
    notes.append("prepared store not found (study.json 'store' or STUDY/store): data summary and "
                 "vote figures left out")
    return None, None


def load_study(study: Path) -> Study:
    """Read study.json, the store's manifest and every run's metrics files (not the predictions)."""
    study = Path(study)
    runs_dir = study / layout.STUDY_RUNS
    info = read_json_object(study / layout.STUDY_INFO, _REMEDY)
    if info is None and not runs_dir.is_dir():
        raise RunError(f"{study}: not a study folder (no {layout.STUDY_INFO} and no {layout.STUDY_RUNS}/); "
                       "run `lczldl study --out` on it first")
    info = info or {}
    notes: list[str] = []
    found = sorted(p.name for p in runs_dir.iterdir() if p.is_dir()) if runs_dir.is_dir() else []
    regimes = order_regimes(list(dict.fromkeys(list(info.get("regimes") or []) + found)))
    seeds_set = {int(s) for s in info.get("seeds") or []}
    runs: dict[str, dict[int, Run]] = {}
    for reg in regimes:
        runs[reg] = {}
        rdir = runs_dir / reg
        for sd in sorted(rdir.iterdir()) if rdir.is_dir() else []:
            seed = layout.seed_of(sd.name)
            if sd.is_dir() and seed is not None:
                seeds_set.add(seed)
                runs[reg][seed] = _read_run(reg, seed, sd)
    seeds = sorted(seeds_set)
    store, manifest = _find_store(study, info, notes)
    for reg in regimes:
        for seed in seeds:
            r = runs[reg].get(seed)
            if r is None or "plain" not in r.metrics:
                notes.append(f"{reg} seed {seed}: no test metrics (run missing or failed)")
    ens = {}
    for reg in regimes:
        obj = read_json_object(layout.beyond_path(layout.ensemble_dir(study, reg), ENSEMBLE), _REMEDY)
        if obj is not None:
            ens[reg] = obj
    return Study(study, info, regimes, seeds, runs, store, manifest, notes, ens,
                 n_bins=recorded_bins(info, runs, notes))


def run_predictions(st: Study) -> dict[str, list[tuple[Run, dict[str, np.ndarray]]]]:
    """regime -> [(run, predictions)] in seed order, for runs with probs and labels saved."""
    out: dict[str, list[tuple[Run, dict[str, np.ndarray]]]] = {}
    for reg in st.regimes:
        for seed in sorted(st.runs.get(reg, {})):
            run = st.runs[reg][seed]
            pred = run.predictions()
            if pred is not None and P.PROBS in pred and P.LABELS in pred:
                out.setdefault(reg, []).append((run, pred))
    return out


def _read_csv(path: Path) -> list[dict[str, str]] | None:
    if not path.is_file():
        return None
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _num(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


class Stat(NamedTuple):
    """One summary.csv cell group: mean, std over seeds, 95 % interval (NaN where missing)."""

    mean: float
    std: float
    lo: float
    hi: float


#: a metric missing from a summary row
NAN_STAT = Stat(float("nan"), float("nan"), float("nan"), float("nan"))


def summary_rows(st: Study) -> list[dict[str, Any]]:
    """Rows {regime, method, n, <metric>: Stat(mean, std, lo, hi)} of summary.csv in its order;
    [] when the study has none (the evaluation's aggregate step has not run). Summaries written
    before intervals existed give NaN lo / hi. Read once per :class:`Study`."""
    if st._summary is not None:
        return st._summary
    out: list[dict[str, Any]] = []
    for r in _read_csv(st.path / layout.SUMMARY_CSV) or []:
        d: dict[str, Any] = {"regime": r.get("regime", ""), "method": r.get("method", ""),
                             "n": r.get("n_runs", "")}
        for k, v in r.items():
            if k.endswith("_mean"):
                m = k[: -len("_mean")]
                d[m] = Stat(_num(v), _num(r.get(m + "_std")), _num(r.get(m + "_lo")), _num(r.get(m + "_hi")))
        out.append(d)
    st._summary = out
    return out


def budget_rows(st: Study) -> list[dict[str, Any]]:
    """Rows of STUDY/budget/budget.csv (the vote-budget grid): {k, mode, seed, regime, method, n,
    each count column as int, <metric>: Stat(mean, NaN, lo, hi)} in the file's order; [] without one."""
    out: list[dict[str, Any]] = []
    for r in _read_csv(layout.budget_table_path(st.path)) or []:
        d: dict[str, Any] = {"k": r.get("k", ""), "mode": r.get("mode", ""), "seed": r.get("seed", ""),
                             "regime": r.get("regime", ""), "method": r.get("method", ""), "n": r.get("n_runs", "")}
        for k, v in r.items():
            if k.endswith("_mean"):
                m = k[: -len("_mean")]
                d[m] = Stat(_num(v), float("nan"), _num(r.get(m + "_lo")), _num(r.get(m + "_hi")))
            elif k not in d and k != "n_runs" and not k.endswith(("_lo", "_hi")):
                d[k] = int(_num(v)) if np.isfinite(_num(v)) else 0
        out.append(d)
    return out


def paired_rows(st: Study) -> list[dict[str, Any]] | None:
    """Rows of paired.csv (numbers as floats, NaN for empty cells); None when there is none or its
    columns are not :data:`lczldl.evaluation.summary.PAIRED_COLUMNS`."""
    rows = _read_csv(st.path / layout.PAIRED_CSV)
    if not rows or set(rows[0]) != set(PAIRED_COLUMNS):
        return None
    nums = ("mean_diff", "ci_low", "ci_high")
    return [{k: (_num(v) if k in nums else v) for k, v in r.items()} for r in rows]


@dataclass
class ReleaseVotes:
    """What the vote figures draw: paper entropy-bin image counts per majority group and the
    original label x individual vote counts (the manifest's ``release_votes``, or the store's own
    rows for a store prepared before it existed)."""

    urban: np.ndarray          # (6,) int64 images with majority LCZ 1..10 per paper entropy bin
    non_urban: np.ndarray      # (6,) int64 images with majority LCZ 11..17 per paper entropy bin
    voting: np.ndarray         # (10, 10) int64 [original LCZ i+1, vote LCZ j+1] vote counts
    rows: int                  # rows counted
    rows_without_votes: int    # of those, rows without any vote (not in the entropy bins)
    whole_release: bool        # True: every raw row (manifest); False: the store's kept rows only


def _release_votes_from(counts: dict[str, Any], whole_release: bool) -> ReleaseVotes:
    """:class:`ReleaseVotes` of a :func:`lczldl.data.labels.release_vote_counts` dict (ValueError
    / KeyError / TypeError when it is not one)."""
    bins = {g: np.asarray(counts["entropy_bins"][g], dtype=np.int64) for g in ("urban", "non_urban")}
    voting = np.asarray(counts["voting_counts"], dtype=np.int64)
    if any(b.shape != (N_ENTROPY_BINS,) for b in bins.values()) or voting.shape != (N_URBAN, N_URBAN):
        raise ValueError("entropy_bins or voting_counts of the wrong shape")
    return ReleaseVotes(bins["urban"], bins["non_urban"], voting, int(counts["rows"]),
                        int(counts.get("rows_without_votes", 0)), whole_release)


def release_votes(st: Study) -> ReleaseVotes | None:
    """The counts of the vote figures from the prepared store: its manifest's ``release_votes``
    (every row of the raw release, counted when preparing). A store prepared before that key
    existed gives the same counts over its own rows (urban-majority images only:
    ``whole_release`` False). None without a readable store (noted) and for a store without votes
    (So2Sat LCZ42). Never opens raw vote files."""
    if st.manifest is None or not manifest_has_votes(st.manifest):
        return None                                   # a store without votes has no vote figures
    if "release_votes" in st.manifest:
        try:
            return _release_votes_from(st.manifest["release_votes"], whole_release=True)
        except (KeyError, TypeError, ValueError) as exc:
            st.notes.append(f"manifest release_votes unreadable ({exc!r}): vote figures drawn from the "
                            "store's own rows")
    arrays = _store_votes(st)
    return None if arrays is None else _release_votes_from(release_vote_counts(*arrays), whole_release=False)


def _store_votes(st: Study) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(votes (N, V) LCZ ids, majority (N,) LCZ id, original (N,) LCZ id) of every image of the
    prepared store (all splits; urban-majority images only, as the store holds); None without a
    readable store (noted)."""
    if st.store is None:
        return None
    try:
        store = open_store(st.store)
        parts = [store.split(s) for s in store.splits]
    except DataError as exc:
        st.notes.append(f"vote figures left out: {exc}")
        return None
    if not parts:
        return None
    return (np.concatenate([np.asarray(a.votes, dtype=np.int64) for a in parts]),
            np.concatenate([np.asarray(a.label, dtype=np.int64) + 1 for a in parts]),
            np.concatenate([np.asarray(a.original, dtype=np.int64) for a in parts]))
