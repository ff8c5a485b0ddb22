"""The run's selection callbacks (early stopping + checkpoints) on a scripted val-loss sequence."""

import lightning as L
import torch

from lczldl.training.callbacks import selection_callbacks


class Scripted(L.LightningModule):
    def __init__(self, val_losses):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.val_losses = val_losses

    def training_step(self, batch, idx):
        return (self.w * 0).sum()

    def validation_step(self, batch, idx):
        pass

    def on_validation_epoch_end(self):
        self.log("val_loss", torch.tensor(self.val_losses[self.current_epoch]))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return [torch.zeros(1)]

    def val_dataloader(self):
        return [torch.zeros(1)]


def _fit(tmp_path, losses, patience):
    cbs = selection_callbacks(patience, tmp_path)
    trainer = L.Trainer(max_epochs=len(losses), callbacks=cbs, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, accelerator="cpu",
                        default_root_dir=tmp_path)
    trainer.fit(Scripted(losses))
    best = torch.load(tmp_path / "checkpoints" / "best.ckpt", weights_only=False)
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)
    return trainer.current_epoch, best["epoch"], last["epoch"]


def test_stops_after_patience_epochs_without_strict_improvement(tmp_path):
    # best 3.0 at epoch 2; 3.0 again (equal is no improvement, as in Keras), then worse:
    # epochs 3, 4, 5 without improvement -> stop after epoch 5 (6 epochs run)
    losses = [5.0, 4.0, 3.0, 3.0, 3.5, 3.2, 1.0, 0.5, 0.1]
    epochs_run, best_epoch, last_epoch = _fit(tmp_path, losses, patience=3)
    assert epochs_run == 6
    assert best_epoch == 2 and last_epoch == 5


def test_improvement_resets_patience(tmp_path):
    losses = [5.0, 6.0, 7.0, 4.0, 6.0, 6.0, 6.0, 0.1]
    epochs_run, best_epoch, _ = _fit(tmp_path, losses, patience=3)
    assert epochs_run == 7 and best_epoch == 3


def test_patience_zero_stops_at_first_non_improvement(tmp_path):
    epochs_run, best_epoch, _ = _fit(tmp_path, [3.0, 2.0, 2.5, 1.0], patience=0)
    assert epochs_run == 3 and best_epoch == 1
