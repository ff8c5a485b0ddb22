"""The paper's learning-rate schedule and optimiser (Keras Nadam as torch.optim.NAdam).

Keras' ``Nadam(learning_rate=0.002)`` (Keras 2.4 / 3) uses beta_1 0.9, beta_2 0.999, epsilon 1e-7
and the momentum schedule mu_t = beta_1 (1 - 0.5 * 0.96 ** (0.004 t)). torch's NAdam uses the same
update and the same schedule with ``momentum_decay=4e-3`` (its default), but epsilon 1e-8 by
default; :func:`make_optimizer` passes Keras's 1e-7 (config ``train.nadam_eps``).

Every hyper-parameter here is required: a run passes its config's ``train.*`` values
(:mod:`lczldl.config` declares their defaults, once).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from lczldl.constants import SEED_MIXER

#: dropout seeds of different ranks of one epoch are this far apart (more ranks than this collide)
RANK_STRIDE = 64


def lr_factor(epoch: int, decay: float, step: int) -> float:
    """Multiplier of the initial lr in (0-based) ``epoch``: decay ** floor(epoch / step)."""
    if epoch < 0 or step < 1:
        raise ValueError(f"need epoch >= 0 and step >= 1, got epoch={epoch}, step={step}")
    return float(decay) ** (int(epoch) // int(step))


def make_optimizer(params: Iterable[torch.nn.Parameter], *, lr: float, eps: float, momentum_decay: float,
                   capturable: bool = False) -> torch.optim.NAdam:
    """Keras-equivalent Nadam (beta 0.9 / 0.999). ``capturable`` keeps the step counters on the
    parameters' device so the update can be captured in a CUDA graph. It is the same update
    formula, not the same arithmetic: the capturable update computes the momentum schedule and
    bias corrections as float32 tensors, the default one as Python (float64) numbers, so the two
    round differently. Measured (CPU, the paper's model, identical gradients): weights differ by
    up to 1.2e-7 after one step and 1.3e-6 after 200 (about 2e-5 of how far they moved), far
    below seed-to-seed differences; the packed engine uses it only when it captures graphs."""
    return torch.optim.NAdam(params, lr=lr, betas=(0.9, 0.999), eps=eps, momentum_decay=momentum_decay,
                             capturable=capturable)


def make_scheduler(opt: torch.optim.Optimizer, decay: float, step: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-epoch step schedule lr0 * decay ** floor(epoch / step) (call ``.step()`` once per epoch)."""
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda e: lr_factor(e, decay, step))


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """Seed of the generator that draws the dropout masks of (0-based) ``epoch``, reseeded right
    before the epoch's first step: a function of (run seed, epoch, DDP rank) only, so a resumed run
    and a packed member draw the masks of the solo run."""
    return (int(seed) * SEED_MIXER + int(epoch)) * RANK_STRIDE + int(rank)
