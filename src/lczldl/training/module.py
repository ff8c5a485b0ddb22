"""Owns the LightningModule that trains Sen2LCZ-Net under one regime.

The network is ``self.model`` and the hyper-parameters hold ``model_kwargs`` (what
:func:`lczldl.models.io.load_model` reads from a checkpoint). No per-step host syncs: the training
loss is accumulated on the device and read once per epoch (:meth:`epoch_train_loss`); validation
metrics are accumulated likewise and logged once per epoch (exact sample-weighted means, also
under DDP).
"""

from __future__ import annotations

import lightning as L
import torch

from lczldl.models.sen2lcz import Sen2LCZ
from lczldl.training.losses import loss_fn
from lczldl.training.schedule import epoch_seed, make_optimizer, make_scheduler


class LCZModule(L.LightningModule):
    """Sen2LCZ-Net + a regime's loss + Nadam with the step lr schedule.

    Every argument is required: the values come from the run's config (``train.*``, built by
    :func:`lczldl.training.members.new_module`), the one place their defaults are declared.

    Args:
        model_kwargs: Sen2LCZ constructor arguments.
        loss: "ce" (soft cross-entropy) or "kl" (KL(target || prediction)).
        lr, lr_decay, lr_step_epochs: lr = lr * lr_decay ** floor(epoch / lr_step_epochs).
        nadam_eps, nadam_momentum_decay: Keras Nadam's epsilon and schedule decay.
        seed: dropout masks of epoch e come from torch.manual_seed(f(seed, e, rank)), so a resumed
            run repeats them exactly.
    """

    def __init__(self, model_kwargs: dict, *, loss: str, lr: float, lr_decay: float, lr_step_epochs: int,
                 nadam_eps: float, nadam_momentum_decay: float, seed: int) -> None:
        super().__init__()
        self.model = Sen2LCZ(**model_kwargs)
        self.save_hyperparameters({"model_kwargs": dict(self.model.model_kwargs), "loss": loss, "lr": lr,
                                   "lr_decay": lr_decay, "lr_step_epochs": lr_step_epochs,
                                   "nadam_eps": nadam_eps, "nadam_momentum_decay": nadam_momentum_decay,
                                   "seed": seed})
        self.loss = loss_fn(loss)
        self._memory_format = (torch.channels_last if self.model.model_kwargs.get("memory_format") == "channels_last"
                               else torch.contiguous_format)
        self._train_sum: torch.Tensor | None = None
        self._train_n = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, 32, 32) reflectance -> log-probabilities (N, K)."""
        return self.model(x)

    def _x(self, batch: dict) -> torch.Tensor:
        return batch["image"].contiguous(memory_format=self._memory_format)

    def on_train_batch_start(self, batch: dict, batch_idx: int) -> None:
        if batch_idx == 0:
            # reseed the global RNG (dropout) right before the epoch's first step: later than
            # on_train_epoch_start because creating the DataLoader iterator draws from the global
            # RNG, and a resumed run creates its first iterator at another moment
            torch.manual_seed(epoch_seed(self.hparams.seed, self.current_epoch, self.global_rank))

    def on_train_epoch_start(self) -> None:
        self._train_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        self._train_n = 0

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self.loss(self(self._x(batch)), batch["target"])
        n = batch["label"].shape[0]
        if self._train_sum is not None:
            self._train_sum += loss.detach().double() * n
            self._train_n += n
        return loss

    def epoch_train_loss(self) -> float:
        """Sample-weighted mean training loss of the current epoch over all ranks (one sync)."""
        if self._train_sum is None or self._train_n == 0:
            return float("nan")
        t = torch.stack([self._train_sum, torch.tensor(float(self._train_n), device=self.device,
                                                       dtype=torch.float64)])
        if self.trainer.world_size > 1:
            t = self.trainer.strategy.reduce(t, reduce_op="sum")
        return float(t[0] / t[1])

    def on_validation_epoch_start(self) -> None:
        self._val = torch.zeros(3, device=self.device, dtype=torch.float64)  # loss sum, correct, n

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        logp = self(self._x(batch)).float()
        n = batch["label"].shape[0]
        self._val[0] += self.loss(logp, batch["target"]).detach().double() * n
        self._val[1] += (logp.argmax(1) == batch["label"]).sum()
        self._val[2] += n

    def on_validation_epoch_end(self) -> None:
        # exact sample-weighted means over all ranks (one reduction per epoch)
        v = self._val
        if self.trainer.world_size > 1:
            v = self.trainer.strategy.reduce(v.clone(), reduce_op="sum")
        n = v[2].clamp_min(1)
        self.log("val_loss", (v[0] / n).float(), sync_dist=False, rank_zero_only=False)
        self.log("val_acc", (v[1] / n).float(), sync_dist=False, rank_zero_only=False)

    def configure_optimizers(self):
        hp = self.hparams
        opt = make_optimizer(self.parameters(), lr=hp.lr, eps=hp.nadam_eps, momentum_decay=hp.nadam_momentum_decay)
        sched = make_scheduler(opt, hp.lr_decay, hp.lr_step_epochs)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
