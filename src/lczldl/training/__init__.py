"""Training: losses (pure), the Lightning module and the resumable run folder (``train_run``)."""

from lczldl.training.losses import kl_divergence, soft_cross_entropy

__all__ = ["kl_divergence", "soft_cross_entropy"]
