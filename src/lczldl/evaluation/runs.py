"""Evaluate run folders: predictions once, metrics, temperature / vector scaling, MC dropout,
ensembles per regime and the summary tables (files in docs/architecture.md, "Evaluation files").

Every function takes the resolved :class:`lczldl.config.EvaluationConfig` (bins, MC passes,
conformal / selective switches and levels) as its one settings parameter; array keys of
predictions.npz come from :mod:`lczldl.evaluation.predictions`.

Per run (RUNS/REGIME/seedN with run.json status "finished" and checkpoints/best.ckpt):
- :func:`evaluate_run`  -> predictions.npz (test + val) and metrics.json; skipped when
  predictions.npz is newer than best.ckpt (metrics.json is then recomputed only if missing or made
  with other n_bins).
- :func:`calibrate_run` -> metrics_ts.json (temperature T fitted on val against the regime's
  temperature-scaling target from :mod:`lczldl.regimes`; also vector scaling, nested),
  metrics_mc.json (MC dropout on test, and on val for the conformal calibration: arrays mc_* and
  val_mc_probs added to predictions.npz) and beyond_{plain,temperature,mc_dropout}.json (conformal
  sets calibrated on the majority label and on the validation votes, selective prediction,
  uncertainty signals: :mod:`lczldl.evaluation.beyond`).
A run trained on a vote budget (run.json's ``data.vote_budget``) is evaluated on its budget's
validation split (its k-vote labels fit temperature scaling and calibrate the sets) and on the
store's test split with every vote.
- :func:`aggregate_runs` -> OUT/ensemble/REGIME/ (:mod:`lczldl.evaluation.ensemble`), OUT/summary.csv,
  summary.md, paired.csv, verdict.csv (:mod:`lczldl.evaluation.verdict`).
:func:`evaluate_runs` does all of it, recording a failing run (RUN/eval_error.txt) and going on.
File names come from :mod:`lczldl.layout`; every file is written atomically.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from lczldl import layout
from lczldl.config import EvaluationConfig, VoteBudgetConfig
from lczldl.data.budget_store import open_budget_store
from lczldl.data.store import make_targets
from lczldl.errors import LczldlError, RunError
from lczldl.evaluation import predictions as P
from lczldl.evaluation.beyond import evaluate_prediction
from lczldl.evaluation.ensemble import MEMBER_ARRAYS, beyond_meta, evaluate_ensemble, vote_settings
from lczldl.evaluation.files import (
    is_fresh,
    load_predictions,
    numeric,
    read_json_object,
    save_predictions,
    write_metrics,
)
from lczldl.evaluation.intervals import N_BOOT, SEED, bootstrap_counts
from lczldl.evaluation.metrics import compute_metrics, per_class_metrics
from lczldl.evaluation.predictor import (
    eval_device,
    mc_dropout_predict,
    predict_log_probs,
    probs_from_log_probs,
)
from lczldl.evaluation.registry import METHODS, PER_SEED_METHODS
from lczldl.evaluation.summary import write_summary
from lczldl.evaluation.temperature import (
    apply_temperature,
    apply_vector_scaling,
    fit_temperature,
    fit_vector_scaling,
)
from lczldl.evaluation.verdict import BASELINE, CLAIM_REGIMES, claim_draws, verdict_rows
from lczldl.fileio import atomic_write_text
from lczldl.regimes import REGIMES

#: images per forward pass when predicting a store split
BATCH = 512
#: temperature-scaling target of a regime outside the registry
_DEFAULT_TS_TARGET = "onehot"


def _say(progress: bool, msg: str) -> None:
    if progress:
        from rich.console import Console

        Console(stderr=True, highlight=False).print(msg)


def find_runs(runs: Path) -> list[Path]:
    """Every RUNS/REGIME/seedN folder holding a run.json, sorted by regime then seed number
    (folder names :func:`lczldl.layout.seed_of` does not read as a run are left out)."""
    runs = Path(runs)
    if not runs.is_dir():
        raise RunError(f"{runs}: runs folder not found; pass the folder given to `lczldl train --out`")
    found = [p.parent for p in runs.glob(f"*/{layout.RUN_PREFIX}*/{layout.RUN_INFO}")]
    return sorted((p for p in found if layout.seed_of(p.name) is not None),
                  key=lambda p: (p.parent.name, layout.seed_of(p.name)))


def run_info(run: Path) -> dict[str, Any]:
    """run.json of a run (RunError if missing or unreadable)."""
    info = layout.read_run_info(run)
    if info is None:
        raise RunError(f"{Path(run) / layout.RUN_INFO}: missing or unreadable run.json; train the run again")
    return info


def _finished(run: Path) -> tuple[dict[str, Any], Path]:
    info = run_info(run)
    if info.get("status") != layout.FINISHED:
        raise RunError(f"{run}: run status is {info.get('status')!r}, not '{layout.FINISHED}'; "
                       "finish training (lczldl train --resume) before evaluating")
    ckpt = layout.checkpoint_path(run, "best")
    if not ckpt.is_file():
        raise RunError(f"{run}: no {layout.CHECKPOINT_DIR}/{layout.BEST_CKPT}; train the run again")
    return info, ckpt


def _regime(run: Path, info: dict[str, Any]) -> str:
    return str(info.get("regime") or Path(run).parent.name)


def _seed(run: Path, info: dict[str, Any]) -> Any:
    """The run's seed: run.json's, else the one in its folder name."""
    return info.get("seed", layout.seed_of(Path(run).name))


def _load_net(ckpt: Path):
    """The run's network on the evaluation device (:func:`~lczldl.evaluation.predictor.eval_device`:
    CUDA when available); the predictor brings its outputs back to numpy."""
    from lczldl.models.io import load_model  # deferred: torch

    return load_model(ckpt).to(eval_device())


def run_budget(info: dict[str, Any]) -> VoteBudgetConfig | None:
    """The vote budget a run was trained on (run.json's config ``data.vote_budget``); None without one."""
    raw = ((info.get("config") or {}).get("data") or {}).get("vote_budget")
    try:
        budget = VoteBudgetConfig(**raw) if isinstance(raw, dict) else None
    except ValueError as exc:
        raise RunError(f"{layout.RUN_INFO}: unreadable data.vote_budget ({str(exc).splitlines()[0]}); "
                       "train the run again") from None
    return budget if budget is not None and budget.k is not None else None


def _store_split(info: dict[str, Any], run: Path, split: str):
    """One split of the run's store; under the run's vote budget its training-side splits are the
    budget's (k-vote labels, the images they keep), test the store's."""
    data = info.get("data")
    if not data:
        raise RunError(f"{run}/{layout.RUN_INFO}: no 'data' (prepared store path); train the run again")
    arrays = open_budget_store(Path(data), run_budget(info)).split(split)
    if arrays.n == 0:
        raise RunError(f"split '{split}' of the store is empty; nothing to evaluate")
    return arrays


def _images(arrays, batch: int = BATCH):
    """uint16 image batches (B, 10, 32, 32) of a store split, in row order (the predictor turns them
    into reflectance)."""
    for i in range(0, arrays.n, batch):
        yield arrays.image.read(np.arange(i, min(i + batch, arrays.n)))


def _ts_kind(regime: str) -> str:
    """Temperature-scaling target of a regime (registry; one-hot for an unknown regime)."""
    r = REGIMES.get(regime)
    return r.ts_target if r else _DEFAULT_TS_TARGET


def evaluate_run(run: Path, evaluation: EvaluationConfig, progress: bool = True) -> dict[str, float]:
    """Predictions (test + val) and plain metrics (``evaluation.n_bins`` bins) of one finished run;
    returns the metrics."""
    run = Path(run)
    n_bins = evaluation.n_bins
    info, ckpt = _finished(run)
    npz, mpath = run / layout.PREDICTIONS, run / layout.METRICS
    if npz.is_file() and npz.stat().st_mtime >= ckpt.stat().st_mtime:
        pred = load_predictions(npz)
        if P.VOTES in pred and P.VAL_VOTES not in pred:               # saved before the key existed
            pred[P.VAL_VOTES] = _val_votes(info, run, len(pred[P.VAL_LABELS]))
            save_predictions(npz, pred)
        if is_fresh(mpath, ckpt, n_bins=n_bins):
            return {k: v for k, v in json.loads(mpath.read_text()).items() if k != "meta"}
    else:
        t0 = time.perf_counter()
        model = _load_net(ckpt)
        test, val = _store_split(info, run, "test"), _store_split(info, run, "val")
        lp, vlp = predict_log_probs(model, _images(test)), predict_log_probs(model, _images(val))
        pred = {P.PROBS: probs_from_log_probs(lp), P.LOG_PROBS: lp,
                P.LABELS: np.asarray(test.label, dtype=np.int64),
                P.VAL_LOG_PROBS: vlp, P.VAL_LABELS: np.asarray(val.label, dtype=np.int64),
                **_vote_arrays(test, val)}
        ts = _ts_kind(_regime(run, info))
        if P.val_target(ts) not in pred:                             # e.g. agg_mace: val_agg_mace
            pred[P.val_target(ts)] = make_targets(val, ts)
        save_predictions(npz, pred)
        _say(progress, f"  {run}: predicted {len(lp):,} test + {len(vlp):,} val samples in "
                       f"{time.perf_counter() - t0:.1f} s")
    m = compute_metrics(pred[P.PROBS], pred[P.LABELS], pred.get(P.DISTRIBUTIONS), n_bins=n_bins, where=str(npz))
    per_class = per_class_metrics(pred[P.LABELS], pred[P.PROBS].argmax(axis=1), pred[P.PROBS].shape[1])
    write_metrics(mpath, m, {"n_bins": n_bins, "binning": "right", "n": int(len(pred[P.LABELS])),
                             "checkpoint": str(ckpt), "regime": _regime(run, info), "seed": info.get("seed")},
                  per_class=per_class)
    return m


def _val_votes(info: dict[str, Any], run: Path, n_val: int) -> np.ndarray:
    """The validation votes of the run's store (its budget's under a vote budget) for a
    predictions.npz saved without them; RunError when the store's validation split no longer has
    the file's ``n_val`` rows."""
    votes = np.asarray(_store_split(info, run, "val").votes)
    if len(votes) != n_val:
        raise RunError(f"{run / layout.PREDICTIONS}: {n_val} validation predictions but the store has "
                       f"{len(votes)}; delete {layout.PREDICTIONS} and evaluate again")
    return votes


def _vote_arrays(test, val) -> dict[str, np.ndarray]:
    """The predictions.npz arrays of the experts' votes of a store's test and val splits; none for a
    store without votes (So2Sat LCZ42), whose metrics then leave out what needs them."""
    if not test.has_votes:
        return {}
    return {P.DISTRIBUTIONS: np.asarray(test.distribution, dtype=np.float32),
            P.DAWID_SKENE: np.asarray(test.dawid_skene, dtype=np.float32),
            P.VOTE_ENTROPY: np.asarray(test.vote_entropy, dtype=np.float32),
            P.VOTES: np.asarray(test.votes), P.CITY: np.asarray(test.city),
            P.VAL_DISTRIBUTIONS: np.asarray(val.distribution, dtype=np.float32),
            P.VAL_DAWID_SKENE: np.asarray(val.dawid_skene, dtype=np.float32), P.VAL_VOTES: np.asarray(val.votes)}


def _ts_target(kind: str, pred: dict[str, np.ndarray]) -> np.ndarray:
    """Validation target of temperature scaling: class indices for "onehot", else the rows of the
    saved target (val_distributions, val_dawid_skene, val_<target> of the aggregators) renormalised."""
    key = P.val_target(kind)
    if kind == "onehot":
        return pred[key]
    if key not in pred:
        raise RunError(f"{layout.PREDICTIONS}: no {key} (temperature-scaling target {kind}); delete "
                       f"{layout.PREDICTIONS} and evaluate again")
    t = pred[key].astype(np.float64)
    return t / np.maximum(t.sum(axis=1, keepdims=True), 1e-12)


def _temperature(run: Path, regime: str, pred: dict[str, np.ndarray], ev: EvaluationConfig,
                 progress: bool) -> dict[str, Any]:
    """Fit T and vector scaling on val against the regime's TS target; write metrics_ts.json."""
    npz, ts_path, kind = run / layout.PREDICTIONS, run / layout.METRICS_TS, _ts_kind(regime)
    n_bins = ev.n_bins
    if is_fresh(ts_path, npz, n_bins=n_bins, target=kind):
        ts = json.loads(ts_path.read_text())
        return {"temperature": ts.get("temperature"), "ts": ts}
    target = _ts_target(kind, pred)
    t0 = time.perf_counter()
    temp = fit_temperature(pred[P.VAL_LOG_PROBS], target)
    fit_s = time.perf_counter() - t0
    m = compute_metrics(apply_temperature(pred[P.LOG_PROBS], temp), pred[P.LABELS],
                        pred.get(P.DISTRIBUTIONS), n_bins=n_bins, where=str(npz))
    w, b = fit_vector_scaling(pred[P.VAL_LOG_PROBS], target)
    vm = compute_metrics(apply_vector_scaling(pred[P.LOG_PROBS], w, b), pred[P.LABELS],
                         pred.get(P.DISTRIBUTIONS), n_bins=n_bins, where=str(npz))
    write_metrics(ts_path, m, {"n_bins": n_bins, "target": kind, "fit_seconds": round(fit_s, 4),
                               "n_val": int(len(target)), "fitted_on": "val log(mean softmax)"},
                  temperature=temp, vector_scaling={"w": w.tolist(), "b": b.tolist(), "metrics": vm})
    _say(progress, f"  {run}: T = {temp:.4f} ({fit_s * 1000:.0f} ms)")
    return {"temperature": temp, "ts": m}


def _mc_dropout(run: Path, info: dict[str, Any], ckpt: Path, pred: dict[str, np.ndarray], ev: EvaluationConfig,
                progress: bool) -> dict[str, Any]:
    """``ev.mc_passes`` MC-dropout passes over the test split (mc_* arrays into predictions.npz)
    and, with ``ev.conformal``, over the validation split (val_mc_probs: the conformal calibration
    of MC dropout), metrics_mc.json. Test and val each get their own seeded passes, so the test
    arrays do not depend on the conformal switch."""
    npz, mc_path = run / layout.PREDICTIONS, run / layout.METRICS_MC
    mc_passes, n_bins, val = ev.mc_passes, ev.n_bins, ev.conformal
    if (is_fresh(mc_path, ckpt, n_bins=n_bins, passes=mc_passes) and P.MC_PROBS in pred
            and (not val or P.VAL_MC_PROBS in pred)):
        return json.loads(mc_path.read_text())
    t0 = time.perf_counter()
    model = _load_net(ckpt)
    test = _store_split(info, run, "test")
    if test.n != len(pred[P.LABELS]):
        raise RunError(f"{npz}: {len(pred[P.LABELS])} test predictions but the store has "
                       f"{test.n}; delete {layout.PREDICTIONS} and evaluate again")
    mc = mc_dropout_predict(model, _images(test), passes=mc_passes)
    pred.update({P.MC_PROBS: mc["probs"].astype(np.float32), P.MC_ENTROPY: mc["predictive_entropy"],
                 P.MC_MUTUAL_INFO: mc["mutual_info"]})
    if val:
        vmc = mc_dropout_predict(model, _images(_store_split(info, run, "val")), passes=mc_passes)
        pred[P.VAL_MC_PROBS] = vmc["probs"].astype(np.float32)
    save_predictions(npz, pred)
    m = compute_metrics(mc["probs"], pred[P.LABELS], pred.get(P.DISTRIBUTIONS), n_bins=n_bins, where=str(npz))
    write_metrics(mc_path, m, {"n_bins": n_bins, "passes": mc_passes,
                               "seconds": round(time.perf_counter() - t0, 2)},
                  mean_mutual_info=float(mc["mutual_info"].mean()),
                  mean_predictive_entropy=float(mc["predictive_entropy"].mean()))
    _say(progress, f"  {run}: MC dropout, {mc_passes} passes, {time.perf_counter() - t0:.1f} s")
    return m


def calibrate_run(run: Path, evaluation: EvaluationConfig, progress: bool = True) -> dict[str, Any]:
    """Temperature / vector scaling (metrics_ts.json), MC dropout (metrics_mc.json, mc_* arrays
    in predictions.npz) and the beyond-the-paper files of plain, temperature and MC dropout
    (``evaluation``: bins, MC passes, conformal / selective switches and levels) of one evaluated
    run. Returns {"temperature": ..., "ts": ..., "mc": ...}."""
    run = Path(run)
    info, ckpt = _finished(run)
    pred = load_predictions(run / layout.PREDICTIONS)
    out = _temperature(run, _regime(run, info), pred, evaluation, progress)
    out["mc"] = _mc_dropout(run, info, ckpt, pred, evaluation, progress)
    _beyond_run(run, pred, float(out["temperature"]), evaluation)
    return out


def _beyond_run(run: Path, pred: dict[str, np.ndarray], temperature: float, ev: EvaluationConfig) -> None:
    """beyond_<method>.json of plain, temperature and (when its arrays exist) MC dropout: each
    method's test probabilities, calibrated on the same method's validation probabilities."""
    if not (ev.conformal or ev.selective):
        return
    npz, meta = run / layout.PREDICTIONS, beyond_meta(ev)
    cases = {"plain": (probs_from_log_probs(pred[P.VAL_LOG_PROBS]), pred[P.PROBS], None),
             "temperature": (apply_temperature(pred[P.VAL_LOG_PROBS], temperature),
                             apply_temperature(pred[P.LOG_PROBS], temperature), None)}
    if P.MC_PROBS in pred:
        cases["mc_dropout"] = (pred.get(P.VAL_MC_PROBS), pred[P.MC_PROBS], pred[P.MC_MUTUAL_INFO])
    for method, (cal, probs, mutual_info) in cases.items():
        path = layout.beyond_path(run, method)
        if is_fresh(path, npz, method=method, **meta):
            continue
        head, detail, *_ = evaluate_prediction(
            probs, pred[P.LABELS], pred.get(P.VOTES), pred.get(P.VOTE_ENTROPY), cal_probs=cal,
            cal_labels=pred[P.VAL_LABELS], levels=ev.conformal_levels, conformal=ev.conformal,
            selective=ev.selective, mutual_info=mutual_info, cal_votes=pred.get(P.VAL_VOTES),
            vote=vote_settings(ev))
        write_metrics(path, head, {"method": method, **meta, "n": int(len(pred[P.LABELS]))}, detail=detail)


def _run_records(run: Path, info: dict[str, Any], progress: bool) -> list[dict[str, Any]]:
    """One record {regime, method, seed, metrics} per per-seed method whose metrics file exists;
    the headline numbers of its beyond file, when there is one, join its metrics."""
    regime, seed = _regime(run, info), _seed(run, info)
    records = []
    for method in PER_SEED_METHODS:
        try:
            obj = read_json_object(run / METHODS[method].metrics_file)
            extra = read_json_object(layout.beyond_path(run, method))
        except RunError as exc:
            _say(progress, f"[red]{exc}; left out[/red]")
            continue
        if obj is not None:
            records.append({"regime": regime, "method": method, "seed": seed,
                            "metrics": {**numeric(obj), **numeric(extra or {})}})
    return records


def _claim_values(run: Path, pred: dict[str, np.ndarray], ev: EvaluationConfig,
                  weights: dict[int, np.ndarray]) -> dict[str, dict[str, tuple[float, np.ndarray]]]:
    """The verdict's inputs of one run: {method: claim_draws(...)} for plain and temperature
    (the fitted T of metrics_ts.json; left out when the run has none). ``weights``: the study's
    image-bootstrap counts by test size (drawn once per size, so every run shares the draws)."""
    n = len(pred[P.LABELS])
    if n not in weights:
        weights[n] = bootstrap_counts(n, N_BOOT, SEED)
    w = weights[n]
    out = {"plain": claim_draws(pred[P.PROBS], pred[P.LABELS], pred[P.DISTRIBUTIONS], ev.n_bins, w)}
    ts = read_json_object(run / layout.METRICS_TS) or {}
    if ts.get("temperature") is not None:
        probs = apply_temperature(pred[P.LOG_PROBS], float(ts["temperature"]))
        out["temperature"] = claim_draws(probs, pred[P.LABELS], pred[P.DISTRIBUTIONS], ev.n_bins, w)
    return out


def aggregate_runs(runs: Path, evaluation: EvaluationConfig, out: Path | None = None,
                   progress: bool = True) -> dict[str, Any]:
    """Ensembles per regime (OUT/ensemble/REGIME, :func:`~lczldl.evaluation.ensemble.evaluate_ensemble`),
    the verdict on the paper's claims and summary.csv / summary.md / paired.csv / verdict.csv in
    OUT over every run with predictions; returns {"records": [...], "ensembles": {regime:
    metrics}, "verdict": [...]}. ``evaluation``: bins and the beyond-the-paper switches."""
    runs = Path(runs)
    out = Path(out) if out is not None else runs
    records: list[dict[str, Any]] = []
    members: dict[str, list[tuple[Any, dict[str, np.ndarray]]]] = {}
    claims: dict[tuple[str, str, Any], dict[str, tuple[float, np.ndarray]]] = {}
    weights: dict[int, np.ndarray] = {}
    for run in find_runs(runs):
        if not (run / layout.PREDICTIONS).is_file():
            continue
        info = run_info(run)
        regime, seed = _regime(run, info), _seed(run, info)
        records += _run_records(run, info, progress)
        in_claims = regime in CLAIM_REGIMES or regime == BASELINE
        try:
            pred = load_predictions(run / layout.PREDICTIONS,
                                    MEMBER_ARRAYS + ((P.LOG_PROBS,) if in_claims else ()))
            if in_claims and P.DISTRIBUTIONS in pred:     # the claims are about the votes: none without
                for method, vals in _claim_values(run, pred, evaluation, weights).items():
                    claims[(regime, method, seed)] = vals
        except RunError as exc:
            _say(progress, f"[red]{exc}[/red]")
            continue
        members.setdefault(regime, []).append((seed, pred))
    ensembles: dict[str, Any] = {}
    for regime, mem in sorted(members.items()):
        rec = evaluate_ensemble(out, regime, mem, evaluation, lambda msg: _say(progress, msg))
        records.append(rec)
        ensembles[regime] = rec["metrics"]
    verdicts = verdict_rows(claims)
    if records:
        write_summary(out, records, verdicts)
    return {"records": records, "ensembles": ensembles, "verdict": verdicts}


def evaluate_runs(runs: Path, evaluation: EvaluationConfig, out: Path | None = None,
                  progress: bool = True) -> dict[str, Any]:
    """Evaluate every finished run under RUNS with the resolved ``evaluation`` settings, then
    ensembles and summaries into OUT (default RUNS).

    A failing run is reported (one line, RUN/eval_error.txt, the returned "failed") and skipped;
    run.json is never touched. Returns {"evaluated": [...], "skipped": [...], "failed": {run: msg},
    "summary": path or None}.
    """
    runs = Path(runs)
    out = Path(out) if out is not None else runs
    result: dict[str, Any] = {"evaluated": [], "skipped": [], "failed": {}, "summary": None}
    all_runs = find_runs(runs)
    _say(progress, f"[bold]Evaluating {len(all_runs)} run folder(s) under {runs}[/bold]")
    for run in all_runs:
        err = run / layout.EVAL_ERROR
        try:
            status = run_info(run).get("status")
            if status != layout.FINISHED:
                result["skipped"].append(str(run))
                _say(progress, f"  {run}: status {status!r}, skipped")
                continue
            evaluate_run(run, evaluation, progress=progress)
            calibrate_run(run, evaluation, progress=progress)
            if err.is_file():
                err.unlink()
            result["evaluated"].append(str(run))
        except (LczldlError, ValueError) as exc:
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            result["failed"][str(run)] = msg
            atomic_write_text(err, msg + "\n")
            _say(progress, f"[red]  {run}: {msg}[/red]")
    agg = aggregate_runs(runs, evaluation, out=out, progress=progress)
    if agg["records"]:
        result["summary"] = str(out / layout.SUMMARY_CSV)
    result["ensembles"] = agg["ensembles"]
    if result["failed"]:
        _say(progress, f"[bold red]{len(result['failed'])} run(s) failed: "
                       f"{', '.join(result['failed'])} (see {layout.EVAL_ERROR} in each)[/bold red]")
    else:
        _say(progress, f"[green]done: {len(result['evaluated'])} run(s); summary in {out}[/green]")
    return result
