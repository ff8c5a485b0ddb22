"""Training losses on canonical log-probabilities (pure torch), by the names regimes use
(:mod:`lczldl.regimes` owns which regime trains with which target and loss).

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


#: loss name (``lczldl.regimes.Regime.loss``) -> loss function
LOSSES: dict[str, Loss] = {"ce": soft_cross_entropy, "kl": kl_divergence}


def loss_fn(name: str) -> Loss:
    """"ce" -> :func:`soft_cross_entropy`, "kl" -> :func:`kl_divergence`."""
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; use one of {', '.join(LOSSES)}") from None
