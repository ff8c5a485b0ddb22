"""Dawid-Skene EM: recovery of known expert confusion matrices, cross-check against a dense EM
written independently here, handling of missing / out-of-class votes."""

from __future__ import annotations

import numpy as np
import pytest

from lczldl.data.dawid_skene import fit_dawid_skene
from lczldl.data.labels import vote_counts

K, E = 10, 11


def true_confusions(rng: np.random.Generator) -> np.ndarray:
    """(E, K, K): diagonal 0.6-0.9; 70 % of the error mass on one 'neighbour' class that depends
    on the expert (t+1 or t+2), the rest spread evenly (structured, expert-specific confusions)."""
    conf = np.zeros((E, K, K))
    for e in range(E):
        diag = rng.uniform(0.6, 0.9, K)
        for t in range(K):
            rest = 1.0 - diag[t]
            row = np.full(K, 0.3 * rest / (K - 1))
            row[(t + 1 + e % 2) % K] += 0.7 * rest
            row[t] = 0.0
            row *= rest / row.sum()
            row[t] = diag[t]
            conf[e, t] = row
    return conf


def simulate(n: int, conf: np.ndarray, priors: np.ndarray, missing: float, seed: int):
    rng = np.random.default_rng(seed)
    truth = rng.choice(K, n, p=priors)
    cum = conf.cumsum(axis=2)                                         # (E, K, K)
    u = rng.random((n, E))
    idx = (u[:, :, None] > cum[np.arange(E)[None, :], truth[:, None], :]).sum(axis=2)
    votes = np.minimum(idx, K - 1) + 1                                # LCZ ids 1..K
    votes[rng.random((n, E)) < missing] = 0
    return votes, truth


@pytest.fixture(scope="module")
def simulated():
    rng = np.random.default_rng(1)
    conf = true_confusions(rng)
    priors = np.full(K, 1.0 / K)
    votes, truth = simulate(20_000, conf, priors, missing=0.6, seed=2)
    return votes, truth, conf, priors


def test_recovers_expert_confusions_within_0_05(simulated):
    votes, truth, conf, priors = simulated
    res = fit_dawid_skene(votes, K)
    assert res.converged
    assert res.confusion.shape == (E, K, K) and res.posteriors.shape == (len(votes), K)
    # stated tolerance: every entry of every expert's confusion matrix within 0.05
    assert np.abs(res.confusion - conf).max() < 0.05
    assert np.abs(res.priors - priors).max() < 0.02
    np.testing.assert_allclose(res.confusion.sum(axis=2), 1.0)
    np.testing.assert_allclose(res.posteriors.sum(axis=1), 1.0)


def test_posterior_argmax_beats_majority_vote(simulated):
    votes, truth, _, _ = simulated
    res = fit_dawid_skene(votes, K)
    ds_acc = (res.posteriors.argmax(axis=1) == truth).mean()
    mv_acc = (vote_counts(votes)[:, :K].argmax(axis=1) == truth).mean()   # ties -> lowest class
    assert ds_acc > mv_acc + 0.01
    assert ds_acc > 0.95


def dense_em(votes: np.ndarray, k: int, n_iter: int, smoothing: float) -> tuple[np.ndarray, np.ndarray]:
    """Textbook DS EM on a dense (N, E, K) one-hot, majority initialisation; independent of the
    implementation under test (no pattern dedup, no sparse products)."""
    n, e = votes.shape
    oh = np.zeros((n, e, k))
    for j in range(e):
        ok = (votes[:, j] >= 1) & (votes[:, j] <= k)
        oh[np.nonzero(ok)[0], j, votes[ok, j] - 1] = 1
    c = oh.sum(axis=1)
    top = c.max(axis=1, keepdims=True)
    post = ((c == top) & (top > 0)).astype(float)
    post = np.where(post.sum(1, keepdims=True) > 0, post / np.maximum(post.sum(1, keepdims=True), 1), 1 / k)
    for _ in range(n_iter):
        pri = (post.sum(0) + smoothing) / (n + k * smoothing)
        conf = np.einsum("nt,nev->etv", post, oh) + smoothing
        conf /= conf.sum(axis=2, keepdims=True)
        logp = np.einsum("nev,etv->nt", oh, np.log(conf)) + np.log(pri)
        logp -= logp.max(axis=1, keepdims=True)
        post = np.exp(logp) / np.exp(logp).sum(axis=1, keepdims=True)
    return post, conf


def test_matches_dense_textbook_em():
    rng = np.random.default_rng(5)
    conf = true_confusions(rng)[:4, :5, :5]
    conf /= conf.sum(axis=2, keepdims=True)
    votes, _ = simulate_small(rng, conf, 600)
    res = fit_dawid_skene(votes, 5, max_iter=7, tol=0.0, smoothing=0.01)
    post, cf = dense_em(votes, 5, 7, 0.01)
    assert res.n_iter == 7 and not res.converged
    np.testing.assert_allclose(res.posteriors, post, rtol=0, atol=1e-10)
    np.testing.assert_allclose(res.confusion, cf, rtol=0, atol=1e-10)


def simulate_small(rng, conf, n):
    e, k, _ = conf.shape
    truth = rng.integers(0, k, n)
    votes = np.zeros((n, e), dtype=np.int64)
    for j in range(e):
        u = rng.random(n)
        votes[:, j] = (u[:, None] > conf[j, truth].cumsum(axis=1)).sum(axis=1).clip(max=k - 1) + 1
    votes[rng.random((n, e)) < 0.3] = 0
    votes[rng.random((n, e)) < 0.1] = 13          # out-of-class vote: ignored
    return votes, truth


def test_out_of_class_and_missing_votes_are_ignored(simulated):
    votes, _, _, _ = simulated
    sub = votes[:3000]
    base = fit_dawid_skene(sub, K)
    extra = np.column_stack([sub, np.full(len(sub), 12), np.zeros(len(sub), dtype=int)])
    other = fit_dawid_skene(extra, K)
    np.testing.assert_allclose(other.posteriors, base.posteriors, atol=1e-12)
    np.testing.assert_allclose(other.confusion[:E], base.confusion, atol=1e-12)
    # the extra experts never voted in-class: their rows stay uniform
    np.testing.assert_allclose(other.confusion[E:], 1.0 / K)


def test_row_without_any_vote_gets_the_prior():
    votes = np.array([[1, 1, 2], [2, 2, 2], [0, 0, 0], [14, 0, 15]])
    res = fit_dawid_skene(votes, 3)
    np.testing.assert_allclose(res.posteriors[2], res.priors)
    np.testing.assert_allclose(res.posteriors[3], res.priors)


def test_custom_classes_and_init_array():
    votes = np.array([[11, 11, 12], [12, 12, 12], [11, 0, 11], [5, 11, 12]])
    res = fit_dawid_skene(votes, classes=[11, 12], max_iter=50)
    assert res.posteriors.shape == (4, 2)
    assert res.posteriors[1].argmax() == 1 and res.posteriors[2].argmax() == 0
    init = np.tile([0.5, 0.5], (4, 1))
    init[0] = [0.9, 0.1]
    r2 = fit_dawid_skene(votes, classes=[11, 12], init=init, max_iter=1, tol=0)
    assert r2.n_iter == 1
    with pytest.raises(ValueError, match="shape"):
        fit_dawid_skene(votes, classes=[11, 12], init=np.ones((3, 2)))
    with pytest.raises(ValueError, match="init"):
        fit_dawid_skene(votes, classes=[11, 12], init="bogus")
