"""Training losses on canonical log-probabilities (pure torch) and the regimes' targets.

Shapes: ``log_probs`` (N, K) natural-log probabilities (rows logsumexp to 0), ``target`` (N, K)
non-negative rows (one-hot, smoothed one-hot, vote distribution or Dawid-Skene posterior). Both
losses return the mean over rows, in nats.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def soft_cross_entropy(log_probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over rows of H(t, p) = -sum_k t_k log p_k (nats). One-hot t gives the usual CE."""
    return -(target * log_probs).sum(dim=1).mean()


def kl_divergence(log_probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over rows of KL(t || p) = sum_k t_k (log t_k - log p_k), with 0 log 0 = 0 (nats).

    Differs from :func:`soft_cross_entropy` by the targets' entropy only, so the gradients are the
    same; the value is 0 for a perfect prediction. Zero-target entries contribute exactly 0 even
    where log p_k = -inf.
    """
    pos = target > 0
    safe_t = torch.where(pos, target, torch.ones_like(target))
    safe_lp = torch.where(pos, log_probs, torch.zeros_like(log_probs))
    return torch.where(pos, target * (torch.log(safe_t) - safe_lp), torch.zeros_like(target)).sum(dim=1).mean()


#: regime -> (train target, validation target, loss name); target names of lczldl.data.store.
REGIMES: dict[str, tuple[str, str, str]] = {
    "onehot": ("onehot", "onehot", "ce"),
    "onehot_ls": ("onehot_ls", "onehot", "ce"),
    "dist": ("distribution", "distribution", "kl"),
    "dist_ls": ("distribution_ls", "distribution", "kl"),
    "dawid_skene": ("dawid_skene", "dawid_skene", "kl"),
}
LOSSES: dict[str, Loss] = {"ce": soft_cross_entropy, "kl": kl_divergence}


def regime_targets(regime: str, compat17: bool = False) -> tuple[str, str, str]:
    """(train target, validation target, loss name) of a regime.

    Smoothing applies to training targets only: onehot_ls validates on the plain one-hot label,
    dist_ls on the unsmoothed distribution. ``compat17`` swaps onehot_ls's training target for the
    seed's 17-column smoothing (rows sum to 0.959 for e = 0.1).
    """
    if regime not in REGIMES:
        raise ValueError(f"unknown regime {regime!r}; use one of {', '.join(REGIMES)}")
    train_t, val_t, loss = REGIMES[regime]
    if regime == "onehot_ls" and compat17:
        train_t = "onehot_ls17"
    return train_t, val_t, loss


def loss_fn(name: str) -> Loss:
    """"ce" -> :func:`soft_cross_entropy`, "kl" -> :func:`kl_divergence`."""
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; use one of {', '.join(LOSSES)}") from None
