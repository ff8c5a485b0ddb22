"""Dawid-Skene (1979) label aggregation: per-expert confusion matrices fitted by EM (numpy).

Model: each item has a latent true class t ~ priors; expert e votes v with probability
``confusion[e, t, v]`` independently of the other experts given t.

Conventions:
- ``votes`` (N, E) LCZ ids, column index = expert, 0 = missing. Only votes for one of the K
  study classes (``classes``, LCZ 1..K by default) enter the likelihood; 0 and votes for any other
  class (e.g. LCZ 11..17 for the urban study) are treated as missing. A row with no such vote gets
  the prior as its posterior.
- ``confusion`` (E, K, K): row = true class, column = vote (class indices into ``classes``).
- Smoothing: ``smoothing`` is added to every confusion count and to every prior count before
  normalising (a Dirichlet-like pseudo-count; keeps log(0) out of the E-step).
- Convergence: |LL_i - LL_{i-1}| <= tol * max(1, |LL_i|) with LL the observed-data log-likelihood
  (natural log, summed over rows) under the parameters of the current M-step.

Speed: rows with identical (masked) vote patterns have identical posteriors, so EM runs on the
unique patterns weighted by their counts (exact); the E- and M-steps are sparse products with no
Python loop over rows. 400,000 x 11 real-like votes take about a second (benchmarks/).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse


@dataclass
class DawidSkeneResult:
    posteriors: np.ndarray   # (N, K) float64 P(true class | votes), rows sum to 1
    confusion: np.ndarray    # (E, K, K) row = true class, column = vote
    priors: np.ndarray       # (K,)
    n_iter: int
    converged: bool
    log_likelihood: float    # observed-data log-likelihood (nats) at the last E-step


def _class_codes(votes: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """(N, E) LCZ ids -> (N, E) int64 code: 1 + index into ``classes``, 0 = ignored."""
    v = np.asarray(votes).astype(np.int64)
    lut_size = max(int(v.max(initial=0)), max(classes)) + 1
    lut = np.zeros(lut_size, dtype=np.int64)
    lut[np.asarray(classes, dtype=np.int64)] = np.arange(1, len(classes) + 1)
    v = np.where(v < 0, 0, v)
    return lut[v]


def _unique_rows(codes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unique rows of (N, E) codes in 0..k -> (U, E) patterns, (N,) inverse, (U,) counts."""
    n, e = codes.shape
    base = k + 1
    if e * np.log2(base) < 62:
        key = np.zeros(n, dtype=np.int64)
        for j in range(e):                       # loop over experts, not rows
            key = key * base + codes[:, j]
        _, first, inverse, counts = np.unique(key, return_index=True, return_inverse=True,
                                              return_counts=True)
        return codes[first], inverse.ravel(), counts
    uniq, inverse, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    return uniq, inverse.ravel(), counts


def _initial_posteriors(codes: np.ndarray, k: int, init: str | np.ndarray) -> np.ndarray:
    counts = np.zeros((codes.shape[0], k + 1))
    for j in range(codes.shape[1]):
        counts[np.arange(codes.shape[0]), codes[:, j]] += 1.0
    counts = counts[:, 1:]
    if isinstance(init, str) and init == "majority":
        top = counts.max(axis=1, keepdims=True)
        post = ((counts == top) & (top > 0)).astype(np.float64)   # ties split evenly
    elif isinstance(init, str) and init == "counts":
        post = counts
    else:
        raise ValueError(f"init must be 'majority', 'counts' or an (N, {k}) array, got {init!r}")
    tot = post.sum(axis=1, keepdims=True)
    return np.where(tot > 0, post / np.where(tot > 0, tot, 1.0), 1.0 / k)


def resolve_classes(num_classes: int, classes: Sequence[int] | None) -> list[int]:
    """The LCZ ids of the K classes: ``classes``, or 1..``num_classes``; ValueError unless they are
    >= 2 distinct ids >= 1."""
    out = list(range(1, num_classes + 1)) if classes is None else [int(c) for c in classes]
    if len(out) < 2 or len(set(out)) != len(out) or min(out) < 1:
        raise ValueError(f"classes must be >= 2 distinct LCZ ids >= 1, got {out}")
    return out


def fit_dawid_skene(votes: np.ndarray, num_classes: int = 10, *, classes: Sequence[int] | None = None,
                    max_iter: int = 100, tol: float = 1e-6, init: str | np.ndarray = "majority",
                    smoothing: float = 0.01) -> DawidSkeneResult:
    """Fit Dawid-Skene by EM on (N, E) votes (LCZ ids, 0 = missing, column = expert).

    ``classes``: the K LCZ ids modelled (default 1..num_classes); class index i <-> classes[i].
    ``init``: "majority" (one-hot of the in-class majority, ties split evenly; rows without an
    in-class vote uniform), "counts" (normalised in-class vote counts) or an (N, K) array of
    initial posteriors. The first M-step is computed from the initial posteriors.
    """
    votes = np.asarray(votes)
    if votes.ndim != 2:
        raise ValueError(f"votes must be (N, experts), got shape {votes.shape}")
    classes = resolve_classes(num_classes, classes)
    k, (n, n_exp) = len(classes), votes.shape
    if n == 0:
        raise ValueError("no rows to fit")
    codes = _class_codes(votes, classes)
    uniq, inverse, weight = _unique_rows(codes, k)
    if isinstance(init, str):
        post = _initial_posteriors(uniq, k, init)
    else:
        init = np.asarray(init, dtype=np.float64)
        if init.shape != (n, k):
            raise ValueError(f"init array must have shape ({n}, {k}), got {init.shape}")
        # rows sharing a pattern: average their initial posteriors
        post = np.zeros((len(uniq), k))
        np.add.at(post, inverse, init)
        post /= weight[:, None]
    u = len(uniq)
    # S[u, e*K + c] = 1 when pattern u has expert e voting class c
    rows, cols = np.nonzero(uniq)
    flat = cols * k + (uniq[rows, cols] - 1)
    s = sparse.csr_matrix((np.ones(len(rows)), (rows, flat)), shape=(u, n_exp * k))
    st = s.T.tocsr()
    w = weight.astype(np.float64)[:, None]

    ll, prev_ll, converged, n_iter = -np.inf, -np.inf, False, 0
    for it in range(1, max_iter + 1):
        n_iter = it
        # M-step
        wp = post * w                                            # (U, K) weighted posteriors
        priors = (wp.sum(axis=0) + smoothing) / (n + k * smoothing)
        counts = np.asarray(st @ wp).reshape(n_exp, k, k)        # [e, vote, true]
        conf = counts.transpose(0, 2, 1) + smoothing             # [e, true, vote]
        conf /= conf.sum(axis=2, keepdims=True)
        # E-step: log P(t, votes) = log prior_t + sum_e log conf[e, t, v_e]
        log_table = np.log(conf).transpose(0, 2, 1).reshape(n_exp * k, k)   # row (e, vote)
        log_joint = np.asarray(s @ log_table) + np.log(priors)[None, :]
        m = log_joint.max(axis=1, keepdims=True)
        log_norm = m + np.log(np.exp(log_joint - m).sum(axis=1, keepdims=True))
        post = np.exp(log_joint - log_norm)
        ll = float((log_norm[:, 0] * weight).sum())
        if abs(ll - prev_ll) <= tol * max(1.0, abs(ll)):
            converged = True
            break
        prev_ll = ll
    return DawidSkeneResult(posteriors=post[inverse], confusion=conf, priors=priors, n_iter=n_iter,
                            converged=converged, log_likelihood=ll)


# ------------------------------------------------------------------ multi-start and rival optima

#: rival solutions within this many nats of the best log-likelihood count as near-equal (a
#: likelihood ratio below e^3 ~ 20; 2 x 3 = 6 is where Kass & Raftery's "strong" evidence begins)
RIVAL_MARGIN_NATS = 3.0
#: a near-equal rival is reported when some class has at least this share of its rows (rows that
#: either solution assigns to it by argmax) assigned differently by the other solution ...
RIVAL_CLASS_SHARE = 0.2
#: ... and at least this many rows change argmax in all
RIVAL_MIN_ROWS = 10
#: random starts: initial posteriors (1 - w) * normalised in-class counts + w * Dirichlet(1)
N_RANDOM_STARTS = 3
RANDOM_START_WEIGHT = 0.5
#: each start is fitted to this relative tolerance (fit_dawid_skene's 1e-6 is 1.45 nats on the full
#: twin's 206k rows, coarser than the margin: a start stopped there can look 245 nats worse than
#: the optimum it is heading for) and iteration cap, unless given
MULTISTART_TOL = 1e-10
MULTISTART_MAX_ITER = 1000


@dataclass
class MultiStartResult:
    best: DawidSkeneResult        # the fit with the highest log-likelihood
    best_start: str               # its start ("majority", "counts", "random0", ...)
    starts: list[dict]            # per start: name, log_likelihood, n_iter, converged
    rival: dict | None            # compare_solutions() of the near-equal rival, None if none
    fits: dict[str, DawidSkeneResult]


def _random_starts(votes: np.ndarray, k: int, classes: Sequence[int], n: int, seed: int,
                   weight: float) -> dict[str, np.ndarray]:
    codes = _class_codes(votes, classes)
    counts = _initial_posteriors(codes, k, "counts")
    rng = np.random.default_rng(seed)
    return {f"random{i}": (1.0 - weight) * counts + weight * rng.dirichlet(np.ones(k), len(codes))
            for i in range(n)}


def fit_dawid_skene_multistart(votes: np.ndarray, num_classes: int = 10, *,
                               classes: Sequence[int] | None = None, n_random: int = N_RANDOM_STARTS,
                               seed: int = 0, random_weight: float = RANDOM_START_WEIGHT,
                               margin: float = RIVAL_MARGIN_NATS, min_class_share: float = RIVAL_CLASS_SHARE,
                               min_rows: int = RIVAL_MIN_ROWS, starts: dict[str, np.ndarray] | None = None,
                               **fit_kwargs) -> MultiStartResult:
    """Fit Dawid-Skene from several starts, keep the best log-likelihood, look for a rival.

    Starts: "majority" (the project's default), "counts" (normalised in-class vote counts: the
    start of crowd-kit's DawidSkene) and ``n_random`` perturbed starts "random0", ... (counts mixed
    with Dirichlet(1) noise at weight ``random_weight``; deterministic for ``seed``). The rival is
    the fit within ``margin`` nats of the best that disagrees with it on the most rows; it is
    reported (``rival`` not None) when :func:`compare_solutions` finds it ``substantial`` under
    ``min_class_share`` / ``min_rows``. ``starts`` adds named (N, K) initial posteriors;
    ``fit_kwargs`` go to :func:`fit_dawid_skene` (tol / max_iter default to MULTISTART_TOL /
    MULTISTART_MAX_ITER).
    """
    fit_kwargs = {"tol": MULTISTART_TOL, "max_iter": MULTISTART_MAX_ITER, **fit_kwargs}
    cls = resolve_classes(num_classes, classes)
    inits: dict[str, str | np.ndarray] = {"majority": "majority", "counts": "counts"}
    inits.update(_random_starts(np.asarray(votes), len(cls), cls, n_random, seed, random_weight))
    inits.update(starts or {})
    fits = {name: fit_dawid_skene(votes, classes=cls, init=init, **fit_kwargs)
            for name, init in inits.items()}
    best_name = max(fits, key=lambda s: fits[s].log_likelihood)   # first start wins exact ties
    best = fits[best_name]
    rival, rival_rows = None, -1
    for name, f in fits.items():
        if name == best_name or best.log_likelihood - f.log_likelihood > margin:
            continue
        cmp = compare_solutions(best.posteriors, f.posteriors, classes=cls,
                                min_class_share=min_class_share, min_rows=min_rows)
        if cmp["rows_changed"] > rival_rows:
            rival_rows = cmp["rows_changed"]
            rival = {"start": name, "best_start": best_name,
                     "log_likelihood_gap": float(best.log_likelihood - f.log_likelihood), **cmp}
    if rival is not None and not rival["substantial"]:
        rival = None
    table = [{"start": s, "log_likelihood": float(f.log_likelihood), "n_iter": int(f.n_iter),
              "converged": bool(f.converged)} for s, f in fits.items()]
    return MultiStartResult(best=best, best_start=best_name, starts=table, rival=rival, fits=fits)


def compare_solutions(best: np.ndarray, other: np.ndarray, *, classes: Sequence[int] | None = None,
                      min_class_share: float = RIVAL_CLASS_SHARE, min_rows: int = RIVAL_MIN_ROWS,
                      max_pairs: int = 5) -> dict:
    """How two (N, K) posteriors differ by argmax (JSON-friendly dict).

    rows_changed; per class (LCZ id) the rows moved and ``share`` = moved / rows assigned to the
    class by either solution (1 - Jaccard of the two row sets); ``swaps``: up to ``max_pairs``
    class pairs by rows moved, each {lcz: [a, b], a_to_b, b_to_a} with a -> b meaning argmax a in
    ``best`` and b in ``other``; ``summary`` like "LCZ 3 <-> LCZ 7 (118 rows)" (<-> when rows move
    both ways, -> when one way); ``substantial``: max class share >= min_class_share and
    rows_changed >= min_rows.
    """
    a, b = np.asarray(best).argmax(axis=1), np.asarray(other).argmax(axis=1)
    k = np.asarray(best).shape[1]
    cls = resolve_classes(k, classes)
    moved = np.bincount(a * k + b, minlength=k * k).reshape(k, k)
    np.fill_diagonal(moved, 0)
    in_either = np.array([int(((a == c) | (b == c)).sum()) for c in range(k)])
    out_or_in = moved.sum(axis=0) + moved.sum(axis=1)
    share = np.where(in_either > 0, out_or_in / np.maximum(in_either, 1), 0.0)
    pair = moved + moved.T
    iu = np.triu_indices(k, 1)
    order = np.argsort(-pair[iu], kind="stable")
    swaps, parts = [], []
    for j in order[:max_pairs]:
        i, m = int(iu[0][j]), int(iu[1][j])
        if pair[i, m] == 0:
            break
        swaps.append({"lcz": [cls[i], cls[m]], "a_to_b": int(moved[i, m]), "b_to_a": int(moved[m, i])})
        arrow = "<->" if moved[i, m] and moved[m, i] else ("->" if moved[i, m] else "<-")
        parts.append(f"LCZ {cls[i]} {arrow} LCZ {cls[m]} ({int(pair[i, m])} rows)")
    rows_changed = int((a != b).sum())
    return {"rows_changed": rows_changed, "share_of_rows": float(rows_changed / max(len(a), 1)),
            "class_moved": {str(c): int(out_or_in[i]) for i, c in enumerate(cls)},
            "class_share": {str(c): float(share[i]) for i, c in enumerate(cls)},
            "max_class_share": float(share.max(initial=0.0)), "swaps": swaps,
            "summary": "; ".join(parts),
            "substantial": bool(share.max(initial=0.0) >= min_class_share and rows_changed >= min_rows)}


def log_likelihood(votes: np.ndarray, confusion: np.ndarray, priors: np.ndarray, *,
                   classes: Sequence[int] | None = None) -> float:
    """Observed-data log-likelihood (nats) of (N, E) votes under Dawid-Skene parameters
    ``confusion`` (E, K, K) [expert, true, vote] and ``priors`` (K,); same vote conventions as
    :func:`fit_dawid_skene` (out-of-class votes and 0 ignored)."""
    conf = np.asarray(confusion, dtype=np.float64)
    n_exp, k, _ = conf.shape
    cls = resolve_classes(k, classes)
    codes = _class_codes(votes, cls)
    if codes.shape[1] != n_exp:
        raise ValueError(f"votes have {codes.shape[1]} experts, confusion {n_exp}")
    with np.errstate(divide="ignore"):                       # log 0 = -inf: impossible classes
        log_joint = np.tile(np.log(np.asarray(priors, dtype=np.float64)), (codes.shape[0], 1))
        log_conf = np.log(conf)
    for e in range(n_exp):                                   # loop over experts, not rows
        has = codes[:, e] > 0
        log_joint[has] += log_conf[e][:, codes[has, e] - 1].T
    m = log_joint.max(axis=1, keepdims=True)
    return float((m[:, 0] + np.log(np.exp(log_joint - m).sum(axis=1))).sum())
