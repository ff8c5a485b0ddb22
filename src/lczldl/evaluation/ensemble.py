"""Owns a regime's seed ensemble: the mean of its members' saved probabilities, its metrics (with the
seed's mean-member confidence as a compat block), its beyond-the-paper file (sets calibrated on the
members' mean validation probabilities, against the majority label and against the validation
votes, ensemble disagreement as a signal) and the image-bootstrap
intervals of every summary column (one model per regime, so no interval over seeds).

Writes EVAL/ensemble/REGIME/{predictions.npz, metrics.json, beyond_ensemble.json} (names from
:mod:`lczldl.layout`); :func:`lczldl.evaluation.runs.aggregate_runs` calls it per regime.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from lczldl import layout
from lczldl.config import EvaluationConfig
from lczldl.evaluation import predictions as P
from lczldl.evaluation.beyond import VoteSettings, evaluate_prediction, headline
from lczldl.evaluation.files import save_predictions, write_metrics
from lczldl.evaluation.intervals import N_BOOT, SEED, bootstrap_intervals
from lczldl.evaluation.metrics import CONFIDENCE_METRICS, compute_metrics
from lczldl.evaluation.predictor import ensemble_confidence, ensemble_probs, probs_from_log_probs
from lczldl.evaluation.registry import ENSEMBLE

Members = list[tuple[Any, dict[str, np.ndarray]]]
#: the predictions.npz arrays a member contributes to its ensemble (the rest need not be loaded)
MEMBER_ARRAYS: tuple[str, ...] = (P.PROBS, P.LABELS, P.DISTRIBUTIONS, P.VOTE_ENTROPY, P.VOTES,
                                  P.VAL_LOG_PROBS, P.VAL_LABELS, P.VAL_VOTES)


def beyond_meta(ev: EvaluationConfig) -> dict[str, Any]:
    """The settings a beyond file records (and is recomputed when they change)."""
    return {"conformal": ev.conformal, "selective": ev.selective, "levels": list(ev.conformal_levels),
            "vote_conformal": ev.vote_conformal, "vote_samples": ev.vote_samples, "vote_variant": ev.vote_variant}


def vote_settings(ev: EvaluationConfig) -> VoteSettings | None:
    """How the sets calibrated on the votes are made (``evaluation.vote_samples`` / ``vote_variant``);
    None when ``evaluation.vote_conformal`` is off."""
    return VoteSettings(m=ev.vote_samples, variant=ev.vote_variant) if ev.vote_conformal else None


def same_test_samples(members: Members, say: Callable[[str], None], regime: str) -> Members:
    """The members whose test labels equal the first member's (the others predict other samples)."""
    labels = members[0][1][P.LABELS]
    same = [(s, p) for s, p in members if p[P.LABELS].shape == labels.shape and np.array_equal(p[P.LABELS], labels)]
    if len(same) != len(members):
        say(f"[red]ensemble {regime}: {len(members) - len(same)} runs predict other test samples; left out[/red]")
    return same


def evaluate_ensemble(out: Path, regime: str, members: Members, ev: EvaluationConfig,
                      say: Callable[[str], None], n_boot: int = N_BOOT) -> dict[str, Any]:
    """Mean of the members' saved probabilities; writes the ensemble's files and returns its record
    {regime, method, seed, metrics (compute_metrics + beyond headline), n_runs, intervals}.
    ``ev``: the resolved evaluation settings (bins, beyond-the-paper switches and levels)."""
    n_bins = ev.n_bins
    same = same_test_samples(members, say, regime)
    d = same[0][1]
    labels, dist = d[P.LABELS], d.get(P.DISTRIBUTIONS)          # no distributions: a store without votes
    probs_list = [p[P.PROBS] for _, p in same]
    probs = ensemble_probs(probs_list)
    conf_mm = ensemble_confidence(probs_list, "mean_member")
    where = f"ensemble {regime}"
    m = compute_metrics(probs, labels, dist, n_bins=n_bins, where=where)
    compat = compute_metrics(probs, labels, dist, n_bins=n_bins, confidence=conf_mm, where=where)
    edir = layout.ensemble_dir(out, regime)
    arrays = {P.PROBS: probs.astype(np.float32), P.LABELS: labels, P.MEAN_MEMBER_CONFIDENCE: conf_mm.astype(np.float32),
              **({P.DISTRIBUTIONS: dist, P.VOTE_ENTROPY: d[P.VOTE_ENTROPY]} if dist is not None else {})}
    head: dict[str, float] = {}
    sets = signals = vote_sets = None
    if (ev.conformal or ev.selective) and (P.VOTES in d or dist is None):
        cal = [probs_from_log_probs(p[P.VAL_LOG_PROBS]) for _, p in same if P.VAL_LOG_PROBS in p]
        cal_probs = ensemble_probs(cal) if len(cal) == len(same) else None
        head, detail, sets, signals, vote_sets = evaluate_prediction(
            probs, labels, d.get(P.VOTES), d.get(P.VOTE_ENTROPY), cal_probs=cal_probs, cal_labels=d.get(P.VAL_LABELS),
            levels=ev.conformal_levels, conformal=ev.conformal, selective=ev.selective,
            members=probs_list if len(probs_list) > 1 else None, cal_votes=d.get(P.VAL_VOTES),
            vote=vote_settings(ev))
        if signals is not None and "disagreement" in signals:
            arrays[P.DISAGREEMENT] = signals["disagreement"].astype(np.float32)
        write_metrics(layout.beyond_path(edir, ENSEMBLE), head,
                      {**beyond_meta(ev), "method": ENSEMBLE, "members": len(same)}, detail=detail)

    def draws(w: np.ndarray) -> dict[str, np.ndarray]:
        out = compute_metrics(probs, labels, dist, n_bins=n_bins, weights=w)
        if sets is not None or signals is not None or vote_sets is not None:
            out.update(headline(probs, labels, d.get(P.VOTES), d.get(P.VOTE_ENTROPY), sets=sets, signals=signals,
                                vote_sets=vote_sets, weights=w))
        return out

    intervals = bootstrap_intervals(draws, len(labels), n_boot=n_boot, seed=SEED)
    save_predictions(edir / layout.PREDICTIONS, arrays)
    write_metrics(edir / layout.METRICS, m,
                  {"n_bins": n_bins, "members": len(same), "seeds": [s for s, _ in same],
                   "confidence": "max of mean",
                   "intervals": f"95 % percentile bootstrap over test images, {n_boot} draws, seed {SEED}"},
                  compat_mean_member_confidence={k: compat[k] for k in CONFIDENCE_METRICS},
                  intervals={k: list(v) for k, v in intervals.items()})
    return {"regime": regime, "method": ENSEMBLE, "seed": None, "metrics": {**m, **head}, "n_runs": len(same),
            "intervals": intervals}
