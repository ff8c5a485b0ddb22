"""Post-hoc calibration: temperature scaling (one T) and vector scaling (per-class w, b).

Both are fitted on validation *log-probabilities* of the evaluated model (natural log of the mean of
the four heads' softmax, i.e. ``model(x)``), against the regime's target: class indices (one-hot CE)
or (N, K) target distributions (CE against the distribution). The calibrated prediction is
``softmax(log_probs / T)``, resp. ``softmax(w * log_probs + b)``.

The seed instead loaded the weights into a variant averaging the heads' *logits* and scaled those,
so at T = 1 its "temperature-scaled" model was not the evaluated model (PROTOCOL.md); we scale the
canonical log(mean softmax). The seed fitted T with 10,000 Adam steps (lr 0.01); the mean CE is
convex in s = 1/T, so a safeguarded Newton iteration on s finds the same optimum in a few passes.
"""

from __future__ import annotations

import numpy as np

from lczldl.errors import DataError

#: Search range of T; the returned T is clipped to it (a degenerate fit hits a bound).
T_MIN, T_MAX = 1e-3, 1e3


def _as_inputs(log_probs: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validated float64 (N, K) log-probabilities and (N, K) target weights."""
    z = np.asarray(log_probs, dtype=np.float64)
    if z.ndim != 2 or z.shape[0] == 0:
        raise DataError(f"log_probs must be (N, K) with N > 0, got shape {z.shape}")
    if np.isnan(z).any() or np.isposinf(z).any():
        raise DataError("log_probs contain NaN or +inf; pass natural-log probabilities")
    n, k = z.shape
    # -inf (a probability that underflowed) -> a very negative finite value; keeps 0 * z finite
    z = np.maximum(z, -1e4)
    t = np.asarray(targets)
    if t.ndim == 1:
        if t.shape[0] != n or t.dtype.kind not in "iu" or t.min() < 0 or t.max() >= k:
            raise DataError(f"targets (N,) must be int class indices 0..{k - 1} for {n} samples, "
                            f"got shape {t.shape} dtype {t.dtype}")
        y = np.zeros((n, k))
        y[np.arange(n), t] = 1.0
    elif t.shape == (n, k):
        y = t.astype(np.float64)
        if not np.isfinite(y).all() or (y < 0).any():
            raise DataError("target distributions contain NaN, inf or negative values")
    else:
        raise DataError(f"targets must be (N,) indices or (N, K) = {z.shape} distributions, got {t.shape}")
    return z, y


def _log_softmax(a: np.ndarray) -> np.ndarray:
    a = a - a.max(axis=1, keepdims=True)
    return a - np.log(np.exp(a).sum(axis=1, keepdims=True))


def temperature_loss(log_probs: np.ndarray, targets: np.ndarray, temperature: float) -> float:
    """Mean CE of softmax(log_probs / T) against targets (indices or distributions)."""
    z, y = _as_inputs(log_probs, targets)
    return float(-(y * _log_softmax(z / float(temperature))).sum(axis=1).mean())


def fit_temperature(log_probs: np.ndarray, targets: np.ndarray, tol: float = 1e-10,
                    max_iter: int = 100) -> float:
    """T minimising mean CE(softmax(log_probs / T), targets); log_probs (N, K) natural log,
    targets (N,) int indices or (N, K) distributions (rows need not sum to 1: each row's CE is
    weighted by its sum). Safeguarded Newton on s = 1/T (loss convex in s) inside a bracket of the
    monotone derivative; result clipped to [T_MIN, T_MAX]."""
    z, y = _as_inputs(log_probs, targets)
    c = y.sum(axis=1)                                # row weights
    yz = float((y * z).sum() / len(z))

    def grad_hess(s: float) -> tuple[float, float]:
        a = s * z
        a -= a.max(axis=1, keepdims=True)
        p = np.exp(a)
        p /= p.sum(axis=1, keepdims=True)
        ez = (p * z).sum(axis=1)
        var = (p * z * z).sum(axis=1) - ez * ez
        return float((c * ez).mean()) - yz, float((c * np.maximum(var, 0.0)).mean())

    lo, hi = 1.0 / T_MAX, 1.0 / T_MIN
    g_lo, _ = grad_hess(lo)
    if g_lo >= 0:
        return T_MAX
    g_hi, _ = grad_hess(hi)
    if g_hi <= 0:
        return T_MIN
    s = 1.0
    for _ in range(max_iter):
        g, h = grad_hess(s)
        if g > 0:
            hi = s
        else:
            lo = s
        if abs(g) <= tol * max(1.0, abs(yz)) or hi - lo <= 1e-14 * hi:
            break
        step = s - g / h if h > 0 else np.nan
        s = step if lo < step < hi else 0.5 * (lo + hi) if hi / lo < 4 else float(np.sqrt(lo * hi))
    return float(np.clip(1.0 / s, T_MIN, T_MAX))


def apply_temperature(log_probs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log_probs / T) as float64 (N, K) probabilities."""
    z = np.maximum(np.asarray(log_probs, dtype=np.float64), -1e4)
    return np.exp(_log_softmax(z / float(temperature)))


def fit_vector_scaling(log_probs: np.ndarray, targets: np.ndarray,
                       max_iter: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """Vector scaling (Guo et al. 2017): per-class w (K,), b (K,) minimising mean CE of
    softmax(w * log_probs + b) against targets; L-BFGS with the analytic gradient from w = 1, b = 0."""
    from scipy.optimize import minimize

    z, y = _as_inputs(log_probs, targets)
    n, k = z.shape
    c = y.sum(axis=1, keepdims=True)

    def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:k], theta[k:]
        lp = _log_softmax(z * w + b)
        loss = -(y * lp).sum() / n
        r = (c * np.exp(lp) - y) / n                 # dLoss / d(logits)
        return float(loss), np.concatenate([(r * z).sum(axis=0), r.sum(axis=0)])

    res = minimize(fun, np.concatenate([np.ones(k), np.zeros(k)]), jac=True, method="L-BFGS-B",
                   options={"maxiter": max_iter, "gtol": 1e-9, "ftol": 1e-14})
    return res.x[:k].copy(), res.x[k:].copy()


def apply_vector_scaling(log_probs: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """softmax(w * log_probs + b) as float64 (N, K) probabilities."""
    z = np.maximum(np.asarray(log_probs, dtype=np.float64), -1e4)
    return np.exp(_log_softmax(z * np.asarray(w)[None, :] + np.asarray(b)[None, :]))
