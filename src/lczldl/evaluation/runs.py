"""Evaluate run folders: predictions once, metrics, temperature / vector scaling, MC dropout,
ensembles per regime and the summary tables (files in docs/architecture.md, "Evaluation files").

Per run (RUNS/REGIME/seedN with run.json status "finished" and checkpoints/best.ckpt):
- :func:`evaluate_run`  -> predictions.npz (test + val) and metrics.json; skipped when
  predictions.npz is newer than best.ckpt (metrics.json is then recomputed only if missing or made
  with other n_bins).
- :func:`calibrate_run` -> metrics_ts.json (temperature T fitted on val against the regime's
  validation target: one-hot for onehot / onehot_ls, the vote distribution for dist / dist_ls, the
  Dawid-Skene posterior for dawid_skene; also vector scaling, nested) and metrics_mc.json (MC
  dropout, arrays mc_* added to predictions.npz).
- :func:`aggregate_runs` -> OUT/ensemble/REGIME/{predictions.npz, metrics.json}, OUT/summary.csv,
  summary.md, paired.csv.
:func:`evaluate_runs` does all of it, recording a failing run (RUN/eval_error.txt) and going on.
Every file is written to a temp name in its folder, then renamed.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from lczldl.errors import LczldlError, RunError
from lczldl.evaluation.ensemble import ensemble_confidence, ensemble_probs
from lczldl.evaluation.metrics import CONFIDENCE_METRICS, compute_metrics
from lczldl.evaluation.summary import write_summary
from lczldl.evaluation.temperature import (
    apply_temperature,
    apply_vector_scaling,
    fit_temperature,
    fit_vector_scaling,
)
from lczldl.fileio import atomic_write_json, atomic_write_text

BATCH = 512
#: Validation target used for temperature scaling, per regime (the regime's validation target).
TS_TARGET = {"onehot": "onehot", "onehot_ls": "onehot", "dist": "distribution",
             "dist_ls": "distribution", "dawid_skene": "dawid_skene"}


def _say(progress: bool, msg: str) -> None:
    if progress:
        from rich.console import Console

        Console(stderr=True, highlight=False).print(msg)


def find_runs(runs: Path) -> list[Path]:
    """Every RUNS/REGIME/seedN folder holding a run.json, sorted by regime then seed number."""
    runs = Path(runs)
    if not runs.is_dir():
        raise RunError(f"{runs}: runs folder not found; pass the folder given to `lczldl train --out`")
    found = [p.parent for p in runs.glob("*/seed*/run.json")]

    def key(p: Path) -> tuple[str, int]:
        try:
            return p.parent.name, int(p.name[4:])
        except ValueError:
            return p.parent.name, 1 << 30
    return sorted(found, key=key)


def read_run_info(run: Path) -> dict[str, Any]:
    """run.json of a run (RunError if missing or unreadable)."""
    path = Path(run) / "run.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RunError(f"{path}: missing or unreadable run.json ({exc}); train the run again") from None


def _finished(run: Path) -> tuple[dict[str, Any], Path]:
    info = read_run_info(run)
    if info.get("status") != "finished":
        raise RunError(f"{run}: run status is {info.get('status')!r}, not 'finished'; "
                       "finish training (lczldl train --resume) before evaluating")
    ckpt = Path(run) / "checkpoints" / "best.ckpt"
    if not ckpt.is_file():
        raise RunError(f"{run}: no checkpoints/best.ckpt; train the run again")
    return info, ckpt


def _regime(run: Path, info: dict[str, Any]) -> str:
    return str(info.get("regime") or Path(run).parent.name)


def _load_net(ckpt: Path):
    from lczldl.models.io import load_model

    model = load_model(ckpt)
    return model


def _store_split(info: dict[str, Any], run: Path, split: str):
    from lczldl.data.store import open_store

    data = info.get("data")
    if not data:
        raise RunError(f"{run}/run.json: no 'data' (prepared store path); train the run again")
    return open_store(Path(data)).split(split)


def _images(arrays, batch: int = BATCH):
    """Float32 reflectance batches (B, 10, 32, 32) of a store split, in row order."""
    import torch

    for i in range(0, arrays.n, batch):
        img = arrays.image.read(np.arange(i, min(i + batch, arrays.n)))
        yield torch.from_numpy(img.astype(np.float32) / 10000.0)


def predict_log_probs(model, arrays) -> np.ndarray:
    """(N, K) float32 natural-log probabilities of a store split (eval mode, BN folded if the model
    offers ``inference_copy``)."""
    import torch

    net = model.inference_copy() if hasattr(model, "inference_copy") else model.eval()
    net.eval()
    out = []
    with torch.no_grad():
        for x in _images(arrays):
            out.append(net(x).float().numpy())
    if not out:
        raise RunError(f"split '{arrays.name}' of the store is empty; nothing to evaluate")
    return np.concatenate(out)


def _probs(log_probs: np.ndarray) -> np.ndarray:
    p = np.exp(log_probs.astype(np.float64))
    return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def load_predictions(run: Path) -> dict[str, np.ndarray]:
    """All arrays of RUN/predictions.npz (RunError if missing / unreadable)."""
    path = Path(run) / "predictions.npz"
    try:
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise RunError(f"{path}: missing or unreadable predictions ({exc}); run `lczldl evaluate` "
                       "on this run") from None


def _metrics_file(path: Path, metrics: dict[str, float], meta: dict[str, Any], **extra: Any) -> None:
    atomic_write_json(path, {**metrics, **extra, "meta": meta})


def _fresh(path: Path, ref: Path, **meta: Any) -> bool:
    """path exists, is newer than ref and its "meta" holds the given values."""
    if not path.is_file() or path.stat().st_mtime < ref.stat().st_mtime:
        return False
    try:
        got = json.loads(path.read_text()).get("meta", {})
    except (OSError, ValueError):
        return False
    return all(got.get(k) == v for k, v in meta.items())


def evaluate_run(run: Path, n_bins: int = 20, progress: bool = True) -> dict[str, float]:
    """Predictions (test + val) and plain metrics of one finished run; returns the metrics."""
    run = Path(run)
    info, ckpt = _finished(run)
    npz, mpath = run / "predictions.npz", run / "metrics.json"
    if npz.is_file() and npz.stat().st_mtime >= ckpt.stat().st_mtime:
        pred = load_predictions(run)
        if _fresh(mpath, ckpt, n_bins=n_bins):
            return {k: v for k, v in json.loads(mpath.read_text()).items() if k != "meta"}
    else:
        t0 = time.perf_counter()
        model = _load_net(ckpt)
        test, val = _store_split(info, run, "test"), _store_split(info, run, "val")
        lp, vlp = predict_log_probs(model, test), predict_log_probs(model, val)
        pred = {"probs": _probs(lp), "log_probs": lp, "labels": np.asarray(test.label, dtype=np.int64),
                "distributions": np.asarray(test.distribution, dtype=np.float32),
                "dawid_skene": np.asarray(test.dawid_skene, dtype=np.float32),
                "vote_entropy": np.asarray(test.vote_entropy, dtype=np.float32),
                "votes": np.asarray(test.votes), "city": np.asarray(test.city),
                "val_log_probs": vlp, "val_labels": np.asarray(val.label, dtype=np.int64),
                "val_distributions": np.asarray(val.distribution, dtype=np.float32),
                "val_dawid_skene": np.asarray(val.dawid_skene, dtype=np.float32)}
        _save_npz(npz, pred)
        _say(progress, f"  {run}: predicted {len(lp):,} test + {len(vlp):,} val samples in "
                       f"{time.perf_counter() - t0:.1f} s")
    m = compute_metrics(pred["probs"], pred["labels"], pred["distributions"], n_bins=n_bins,
                        where=str(npz))
    _metrics_file(mpath, m, {"n_bins": n_bins, "binning": "right", "n": int(len(pred["labels"])),
                             "checkpoint": str(ckpt), "regime": _regime(run, info), "seed": info.get("seed")})
    return m


def _ts_target(regime: str, pred: dict[str, np.ndarray]) -> np.ndarray:
    kind = TS_TARGET.get(regime, "onehot")
    if kind == "onehot":
        return pred["val_labels"]
    key = "val_distributions" if kind == "distribution" else "val_dawid_skene"
    t = pred[key].astype(np.float64)
    return t / np.maximum(t.sum(axis=1, keepdims=True), 1e-12)


def calibrate_run(run: Path, mc_passes: int = 20, n_bins: int = 20, progress: bool = True) -> dict[str, Any]:
    """Temperature / vector scaling (metrics_ts.json) and MC dropout (metrics_mc.json, mc_* arrays
    in predictions.npz) of one evaluated run. Returns {"temperature": ..., "ts": ..., "mc": ...}."""
    run = Path(run)
    info, ckpt = _finished(run)
    regime = _regime(run, info)
    pred = load_predictions(run)
    npz = run / "predictions.npz"
    where = str(npz)
    ts_path, mc_path = run / "metrics_ts.json", run / "metrics_mc.json"
    out: dict[str, Any] = {}
    if _fresh(ts_path, npz, n_bins=n_bins, target=TS_TARGET.get(regime, "onehot")):
        ts = json.loads(ts_path.read_text())
        out["temperature"], out["ts"] = ts.get("temperature"), ts
    else:
        target = _ts_target(regime, pred)
        t0 = time.perf_counter()
        temp = fit_temperature(pred["val_log_probs"], target)
        fit_s = time.perf_counter() - t0
        m = compute_metrics(apply_temperature(pred["log_probs"], temp), pred["labels"],
                            pred["distributions"], n_bins=n_bins, where=where)
        w, b = fit_vector_scaling(pred["val_log_probs"], target)
        vm = compute_metrics(apply_vector_scaling(pred["log_probs"], w, b), pred["labels"],
                             pred["distributions"], n_bins=n_bins, where=where)
        _metrics_file(ts_path, m, {"n_bins": n_bins, "target": TS_TARGET.get(regime, "onehot"),
                                   "fit_seconds": round(fit_s, 4), "n_val": int(len(target)),
                                   "fitted_on": "val log(mean softmax)"},
                      temperature=temp, vector_scaling={"w": w.tolist(), "b": b.tolist(), "metrics": vm})
        out["temperature"], out["ts"] = temp, m
        _say(progress, f"  {run}: T = {temp:.4f} ({fit_s * 1000:.0f} ms)")
    if mc_passes > 0:
        if _fresh(mc_path, ckpt, n_bins=n_bins, passes=mc_passes) and "mc_probs" in pred:
            out["mc"] = json.loads(mc_path.read_text())
        else:
            from lczldl.evaluation.mc_dropout import mc_dropout_predict

            t0 = time.perf_counter()
            model = _load_net(ckpt)
            test = _store_split(info, run, "test")
            if test.n != len(pred["labels"]):
                raise RunError(f"{npz}: {len(pred['labels'])} test predictions but the store has "
                               f"{test.n}; delete predictions.npz and evaluate again")
            mc = mc_dropout_predict(model, _images(test), passes=mc_passes)
            pred.update(mc_probs=mc["probs"].astype(np.float32), mc_entropy=mc["predictive_entropy"],
                        mc_mutual_info=mc["mutual_info"])
            _save_npz(npz, pred)
            m = compute_metrics(mc["probs"], pred["labels"], pred["distributions"], n_bins=n_bins, where=where)
            _metrics_file(mc_path, m, {"n_bins": n_bins, "passes": mc_passes,
                                       "seconds": round(time.perf_counter() - t0, 2)},
                          mean_mutual_info=float(mc["mutual_info"].mean()),
                          mean_predictive_entropy=float(mc["predictive_entropy"].mean()))
            out["mc"] = m
            _say(progress, f"  {run}: MC dropout, {mc_passes} passes, {time.perf_counter() - t0:.1f} s")
    return out


def _read_metrics(path: Path) -> dict[str, float] | None:
    if not path.is_file():
        return None
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return {k: (float("nan") if v is None else float(v)) for k, v in d.items()
            if v is None or (isinstance(v, int | float) and not isinstance(v, bool))}


def aggregate_runs(runs: Path, out: Path | None = None, n_bins: int = 20, progress: bool = True,
                   n_boot: int = 10000) -> dict[str, Any]:
    """Ensembles per regime (OUT/ensemble/REGIME) and summary.csv / summary.md / paired.csv in OUT
    over every run with predictions; returns {"records": [...], "ensembles": {regime: metrics}}."""
    runs = Path(runs)
    out = Path(out) if out is not None else runs
    records: list[dict[str, Any]] = []
    members: dict[str, list[tuple[int, dict[str, np.ndarray]]]] = {}
    for run in find_runs(runs):
        if not (run / "predictions.npz").is_file():
            continue
        info = read_run_info(run)
        regime, seed = _regime(run, info), info.get("seed", run.name[4:])
        for method, fname in (("plain", "metrics.json"), ("temperature", "metrics_ts.json"),
                              ("mc_dropout", "metrics_mc.json")):
            m = _read_metrics(run / fname)
            if m is not None:
                records.append({"regime": regime, "method": method, "seed": seed, "metrics": m})
        try:
            members.setdefault(regime, []).append((seed, load_predictions(run)))
        except RunError as exc:
            _say(progress, f"[red]{exc}[/red]")
    ensembles: dict[str, Any] = {}
    for regime, mem in sorted(members.items()):
        labels = mem[0][1]["labels"]
        same = [p for _, p in mem if p["labels"].shape == labels.shape and np.array_equal(p["labels"], labels)]
        if len(same) != len(mem):
            _say(progress, f"[red]ensemble {regime}: {len(mem) - len(same)} runs predict other test "
                           "samples; left out[/red]")
        probs_list = [p["probs"] for p in same]
        probs = ensemble_probs(probs_list)
        conf_mm = ensemble_confidence(probs_list, "mean_member")
        d = same[0]
        m = compute_metrics(probs, labels, d["distributions"], n_bins=n_bins, where=f"ensemble {regime}")
        compat = compute_metrics(probs, labels, d["distributions"], n_bins=n_bins, confidence=conf_mm,
                                 where=f"ensemble {regime}")
        edir = out / "ensemble" / regime
        edir.mkdir(parents=True, exist_ok=True)
        _save_npz(edir / "predictions.npz", {"probs": probs.astype(np.float32), "labels": labels,
                                             "distributions": d["distributions"],
                                             "vote_entropy": d["vote_entropy"],
                                             "mean_member_confidence": conf_mm.astype(np.float32)})
        _metrics_file(edir / "metrics.json", m,
                      {"n_bins": n_bins, "members": len(same), "seeds": [s for s, p in mem if any(p is q for q in same)],
                       "confidence": "max of mean"},
                      compat_mean_member_confidence={k: compat[k] for k in CONFIDENCE_METRICS})
        records.append({"regime": regime, "method": "ensemble", "seed": None, "metrics": m,
                        "n_runs": len(same)})
        ensembles[regime] = m
    if records:
        write_summary(out, records, n_boot=n_boot)
    return {"records": records, "ensembles": ensembles}


def evaluate_runs(runs: Path, out: Path | None = None, mc_passes: int = 20, n_bins: int = 20,
                  progress: bool = True) -> dict[str, Any]:
    """Evaluate every finished run under RUNS, then ensembles and summaries into OUT (default RUNS).

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
        err = run / "eval_error.txt"
        try:
            info = read_run_info(run)
            if info.get("status") != "finished":
                result["skipped"].append(str(run))
                _say(progress, f"  {run}: status {info.get('status')!r}, skipped")
                continue
            evaluate_run(run, n_bins=n_bins, progress=progress)
            calibrate_run(run, mc_passes=mc_passes, n_bins=n_bins, progress=progress)
            if err.is_file():
                err.unlink()
            result["evaluated"].append(str(run))
        except (LczldlError, ValueError) as exc:
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            result["failed"][str(run)] = msg
            atomic_write_text(err, msg + "\n")
            _say(progress, f"[red]  {run}: {msg}[/red]")
    agg = aggregate_runs(runs, out=out, n_bins=n_bins, progress=progress)
    if agg["records"]:
        result["summary"] = str(out / "summary.csv")
    result["ensembles"] = agg["ensembles"]
    if result["failed"]:
        _say(progress, f"[bold red]{len(result['failed'])} run(s) failed: "
                       f"{', '.join(result['failed'])} (see eval_error.txt in each)[/bold red]")
    else:
        _say(progress, f"[green]done: {len(result['evaluated'])} run(s); summary in {out}[/green]")
    return result
