"""Owns the soft targets from crowd-kit's label aggregators (one-coin Dawid-Skene, GLAD, MACE, Wawa,
and crowd-kit's own Dawid-Skene for cross-checks) on votes in the store's format, run to convergence.

Conventions (docs/beyond_the_paper.md has the model each aggregator assumes):
- ``votes`` (N, E) LCZ ids, column = expert, 0 = no vote. Only votes for one of the K study classes
  (``classes``, LCZ 1..10 by default) are annotations, as in the vote distribution
  (data/labels.py); 0 and non-urban votes are left out. Task = row index, worker = column index,
  label = LCZ id.
- Output: (N, K) float32 posteriors, column i <-> classes[i], rows in the input order. A class that
  got no vote anywhere is absent from crowd-kit's ``probas_`` and gets probability 0; a row without
  any in-class vote is absent too and gets the uniform 1/K (the store has no such rows).
- Convergence: crowd-kit's own stopping rules stop too early (its Dawid-Skene "loss" adds the log
  prior once per annotation rather than once per task, so it is not EM's objective and can drop;
  a drop stops the fit, e.g. after 3 iterations on the twin; GLAD's Q drops after its inexact CG
  M-step; MACE has no stopping rule). We therefore drive crowd-kit's own E- and M-steps with one
  rule for all: stop when no posterior entry moved more than ``tol`` in the last iteration. The
  drivers use crowd-kit's step methods (private API, tested equal to crowd-kit's public ``fit`` at
  a fixed iteration count in tests/data/test_aggregation.py; tested with crowd-kit 1.4.2).
- MACE: crowd-kit re-seeds every restart with the same ``random_state``, so its ``n_restarts``
  restarts are identical; we run one start per ``seed``.
- Wawa is non-iterative; computed from crowd-kit's MajorityVote and get_accuracy (crowd-kit 1.4.2's
  ``Wawa.predict_proba`` fails with scikit-learn >= 1.6, ``__sklearn_tags__``). Majority ties go to the
  lowest LCZ id (crowd-kit's column order).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lczldl.constants import N_URBAN, SOFT_AGGREGATORS
from lczldl.data.dawid_skene import log_likelihood, resolve_classes
from lczldl.distributions import LOG_FLOOR, entropy_histogram, entropy_nats, tv_distance

#: crowd-kit aggregators this module runs: those offered as soft targets (constants.SOFT_AGGREGATORS)
#: and ``crowdkit_ds``, for cross-checks only (the project's own Dawid-Skene in data/dawid_skene.py
#: is the ``dawid_skene`` target)
AGGREGATORS: tuple[str, ...] = (*SOFT_AGGREGATORS, "crowdkit_ds")
#: iteration caps (one iteration = one E- and one M-step); the twin needs far fewer except crowd-kit's DS
DEFAULT_MAX_ITER: dict[str, int] = {"one_coin": 500, "glad": 300, "mace": 500, "crowdkit_ds": 1000}
#: stop when max |posterior change| over all rows and classes in one iteration is <= DEFAULT_TOL
DEFAULT_TOL = 1e-6


@dataclass
class AggregationResult:
    posteriors: np.ndarray                            # (N, K) float32, rows sum to 1
    info: dict[str, Any] = field(default_factory=dict)  # JSON-friendly: iterations, converged, ...


def votes_frame(votes: np.ndarray, classes: Sequence[int]) -> Any:
    """(N, E) votes -> crowd-kit's long DataFrame (task = row, worker = column, label = LCZ id),
    in-class votes only, row-major order."""
    import pandas as pd

    v = np.asarray(votes)
    if v.ndim != 2:
        raise ValueError(f"votes must be (N, experts), got shape {v.shape}")
    rows, cols = np.nonzero(np.isin(v, np.asarray(classes)))
    return pd.DataFrame({"task": rows.astype(np.int64), "worker": cols.astype(np.int64),
                         "label": v[rows, cols].astype(np.int64)})


def frame_to_posteriors(probas: Any, n: int, classes: Sequence[int]) -> np.ndarray:
    """crowd-kit ``probas_`` (index = task row, columns = labels, any order) -> (n, K) float64 in row
    and class order; absent classes 0, absent rows uniform; rows renormalised."""
    p = probas.reindex(index=np.arange(n), columns=list(classes)).to_numpy(dtype=np.float64)
    absent = np.isnan(p).all(axis=1)
    p = np.nan_to_num(p, nan=0.0)
    p[absent] = 1.0 / len(classes)
    return p / p.sum(axis=1, keepdims=True)


def _iterate(step: Callable[[], Any], first: Any, max_iter: int, tol: float) -> tuple[Any, int, bool]:
    """Run ``step`` (one E+M iteration returning the task x label posteriors) until the largest
    change of any entry is <= tol or max_iter iterations; returns (posteriors, iterations, converged)."""
    prev = cur = first
    for it in range(1, max_iter + 1):
        cur = step()
        b = prev.reindex(index=cur.index, columns=cur.columns).to_numpy(dtype=np.float64)
        delta = np.abs(cur.to_numpy(dtype=np.float64) - b)
        if not np.isnan(delta).any() and float(delta.max(initial=0.0)) <= tol:
            return cur, it, True
        prev = cur
    return cur, max_iter, False


def _ds_like(df: Any, votes: np.ndarray, classes: Sequence[int], one_coin: bool, max_iter: int,
             tol: float) -> tuple[Any, dict[str, Any]]:
    """crowd-kit's (one-coin) Dawid-Skene EM: majority-vote start, as ``DawidSkene.fit``; the
    log-likelihood of its final parameters by :func:`lczldl.data.dawid_skene.log_likelihood`."""
    n_experts = votes.shape[1]
    from crowdkit.aggregation import DawidSkene, MajorityVote, OneCoinDawidSkene

    cls = OneCoinDawidSkene if one_coin else DawidSkene

    def m_step(probas):
        if one_coin:
            skills = OneCoinDawidSkene._m_step(df, probas)
            return OneCoinDawidSkene._process_skills_to_errors(df, probas, skills)
        return DawidSkene._m_step(df, probas)

    probas = MajorityVote().fit_predict_proba(df)
    state = {"priors": probas.mean(), "errors": m_step(probas)}

    def step():
        p = cls._e_step(df, state["priors"], state["errors"])
        state["priors"], state["errors"] = p.mean(), m_step(p)
        return p

    probas, n_iter, converged = _iterate(step, probas, max_iter, tol)
    conf, priors = _ds_parameters(state["errors"], state["priors"], n_experts, classes)
    ll = log_likelihood(votes, conf, priors, classes=classes)
    return probas, {"iterations": n_iter, "converged": converged, "log_likelihood": ll}


def _ds_parameters(errors: Any, priors: Any, n_experts: int, classes: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """crowd-kit DS parameters (errors indexed (worker, observed label) x true label; priors over
    true labels) -> (E, K, K) confusion [expert, true, vote] and (K,) priors in ``classes`` order;
    entries crowd-kit never estimated (labels nobody voted) are 0."""
    k = len(classes)
    col = {c: i for i, c in enumerate(classes)}
    conf = np.zeros((n_experts, k, k))
    e = errors.reindex(columns=list(classes)).fillna(0.0)
    workers = e.index.get_level_values(0).to_numpy(dtype=np.int64)
    votes = np.array([col[int(v)] for v in e.index.get_level_values(1)], dtype=np.int64)
    conf[workers[:, None], np.arange(k)[None, :], votes[:, None]] = e.to_numpy(dtype=np.float64)
    return conf, priors.reindex(list(classes)).fillna(0.0).to_numpy(dtype=np.float64)


def _glad(df: Any, max_iter: int, tol: float) -> tuple[Any, dict[str, Any]]:
    """crowd-kit's GLAD EM (uniform label priors, worker ability alpha, task difficulty beta).

    One iteration = M-step then E-step, so ``k`` iterations give ``GLAD(n_iter=k + 1).fit``'s
    posteriors (crowd-kit's first loop pass repeats the initial E-step before its first M-step)."""
    from crowdkit.aggregation import GLAD

    g = GLAD(n_iter=max_iter, tol=-np.inf)
    data = df.filter(["task", "worker", "label"])
    g._init(data)
    data = g._join_all(data, g.alphas_, g.betas_, g.priors_)
    data = g._e_step(data)
    state = {"data": data}

    def step():
        state["data"] = g._e_step(g._m_step(state["data"]))
        return g.probas_

    probas, n_iter, converged = _iterate(step, g.probas_.copy(), max_iter, tol)
    q = g._compute_Q(state["data"]) / len(state["data"])
    return probas, {"iterations": n_iter, "converged": converged, "objective": float(q)}


def _mace(df: Any, max_iter: int, tol: float, seed: int) -> tuple[Any, dict[str, Any]]:
    """crowd-kit's MACE, variational M-step (its default "vb"), one start seeded with ``seed``."""
    import pandas as pd
    from crowdkit.aggregation import MACE
    from crowdkit.aggregation.classification.mace import decode_distribution

    m = MACE(n_restarts=1, n_iter=max_iter, random_state=seed)
    workers, worker_names = pd.factorize(df["worker"])
    labels, label_names = pd.factorize(df["label"])
    tasks, task_names = pd.factorize(df["task"])
    m.smoothing_ = 0.01 / len(label_names)
    annotation = df.copy(deep=True)
    m._initialize(len(worker_names), len(label_names))
    args = (annotation, task_names, worker_names, label_names, tasks, workers, labels)
    state = {"e": m._e_step(*args)}

    def step():
        _, _, strategy, knowing = state["e"]
        m._variational_m_step(knowing, strategy)
        state["e"] = m._e_step(*args)
        return decode_distribution(state["e"][1])

    probas, n_iter, converged = _iterate(step, decode_distribution(state["e"][1]), max_iter, tol)
    return probas, {"iterations": n_iter, "converged": converged,
                    "log_likelihood": float(state["e"][0]), "seed": int(seed)}


def _wawa(df: Any) -> tuple[Any, dict[str, Any]]:
    """Wawa: skills = each expert's agreement with the majority vote, then the skill-weighted vote."""
    from crowdkit.aggregation import MajorityVote
    from crowdkit.aggregation.utils import get_accuracy

    mv = MajorityVote().fit(df)
    skills = get_accuracy(df, true_labels=mv.labels_, by="worker")
    probas = MajorityVote().fit(df, skills=skills).probas_
    return probas, {"iterations": 1, "converged": True,
                    "skills": {int(k): float(v) for k, v in skills.items()}}


def aggregate(votes: np.ndarray, method: str, *, num_classes: int = N_URBAN,
              classes: Sequence[int] | None = None, max_iter: int | None = None,
              tol: float = DEFAULT_TOL, seed: int = 0) -> AggregationResult:
    """Soft targets of one crowd-kit aggregator (``method`` in AGGREGATORS) on (N, E) votes.

    Returns (N, K) float32 posteriors (column i <-> classes[i], LCZ 1..num_classes by default) and
    an info dict: method, iterations, converged, max_iter, tol, seconds, n_annotations, crowdkit
    version, and log_likelihood (nats; DS-like and MACE) or objective (GLAD's per-annotation Q).
    """
    from importlib.metadata import version

    if method not in AGGREGATORS:
        raise ValueError(f"unknown aggregator {method!r}; use one of {', '.join(AGGREGATORS)}")
    cls = resolve_classes(num_classes, classes)
    v = np.asarray(votes)
    df = votes_frame(v, cls)
    cap = int(DEFAULT_MAX_ITER.get(method, 1) if max_iter is None else max_iter)
    import crowdkit.aggregation  # noqa: F401  (import time, ~5 s with transformers, is not fit time)

    t0 = time.perf_counter()
    with warnings.catch_warnings():       # crowd-kit 1.4.2 warns on every pandas call (pandas >= 3)
        warnings.simplefilter("ignore", category=FutureWarning)
        warnings.simplefilter("ignore", category=DeprecationWarning)
        if df.empty:
            probas, info = None, {"iterations": 0, "converged": True}
        elif method == "wawa":
            probas, info = _wawa(df)
        elif method == "glad":
            probas, info = _glad(df, cap, tol)
        elif method == "mace":
            probas, info = _mace(df, cap, tol, seed)
        else:
            probas, info = _ds_like(df, v, cls, method == "one_coin", cap, tol)
    if probas is None:
        post = np.full((v.shape[0], len(cls)), 1.0 / len(cls))
    else:
        post = frame_to_posteriors(probas, v.shape[0], cls)
    info = {"method": method, **info, "max_iter": cap, "tol": float(tol),
            "seconds": round(time.perf_counter() - t0, 3), "n_annotations": int(len(df)),
            "rows_without_votes": int(v.shape[0] - df["task"].nunique()),
            "crowdkit": version("crowd-kit")}
    return AggregationResult(posteriors=post.astype(np.float32), info=info)


def target_report(targets: dict[str, np.ndarray], distribution: np.ndarray,
                  labels: np.ndarray | None = None) -> dict[str, dict[str, Any]]:
    """How far each (N, K) training target is from the (N, K) raw vote distribution (for
    ``data inspect``; JSON-friendly). Per target: ``kl`` mean KL(distribution || target) in nats
    (target floored at distributions.LOG_FLOOR, 0 log 0 = 0: a target that puts 0 where experts voted
    costs -log 1e-12 = 27.6 nats per unit of vote mass), ``tv`` mean total variation, ``entropy``
    mean entropy (nats), ``entropy_histogram`` counts per paper vote-entropy bin (of the target's
    own entropy), and with ``labels`` (N,) class indices ``argmax_agreement`` = share of rows whose
    argmax is the label (first index on ties)."""
    d = np.asarray(distribution, dtype=np.float64)
    out: dict[str, dict[str, Any]] = {}
    for name, t in targets.items():
        t = np.asarray(t, dtype=np.float64)
        if t.shape != d.shape:
            raise ValueError(f"target {name!r} has shape {t.shape}, distribution {d.shape}")
        n = max(len(d), 1)
        ent = entropy_nats(t)
        kl = -entropy_nats(d) - (d * np.log(np.maximum(t, LOG_FLOOR))).sum(axis=1)
        row = {"kl": float(np.maximum(kl, 0.0).mean()),          # >= 0; rounding can give -1e-17
               "tv": tv_distance(t, d) / n, "entropy": float(ent.mean()),
               "entropy_histogram": [int(c) for c in entropy_histogram(ent)]}
        if labels is not None:
            row["argmax_agreement"] = float((t.argmax(axis=1) == np.asarray(labels)).mean())
        out[name] = row
    return out
