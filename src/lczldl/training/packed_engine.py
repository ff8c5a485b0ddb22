"""Owns how a pack computes on one device: the splits resident on the device, the packed training
step (eager, or on CUDA captured in a CUDA graph and replayed), and validation in large batches.

Per step, member k trains on its own rows ``idx[k]`` (B,) of the training split: its images are
gathered on the device from the resident uint16 pixels (kept as an int16 view, converted per batch
to float32 reflectance), its target is its regime's, its loss its regime's (lczldl.training.losses),
and the packed loss is the sum of the members' losses, so each member's gradient is its own.
Losses are summed on the device and read once per epoch: no step waits for the host.

On CUDA with ``graphs=True`` the full-batch step (gather, forward, backward, Nadam with
``capturable=True``) is captured once per (members, lr) and replayed with the next batch's indices
copied into a static buffer; the last, smaller batch of an epoch runs eagerly. The dropout
generators are registered with the graph, so replays draw fresh masks. ``bf16=True`` runs the
forward under bfloat16 autocast (losses and the optimizer in float32).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from lczldl.constants import REFLECTANCE_SCALE
from lczldl.data.store import Store, band_indices, make_targets
from lczldl.training.losses import Loss
from lczldl.training.packed_model import PackedSen2LCZ, pack_images
from lczldl.training.schedule import make_optimizer

#: eager steps before the first CUDA-graph capture (cuDNN / allocator warm-up; they are real steps)
WARMUP_STEPS = 3


@dataclass
class DeviceSplit:
    """One split on the device: ``images`` (N, C, 32, 32) int16 (the store's uint16 bits),
    ``labels`` (N,) int64, ``targets`` {target name: (N, classes) float32}."""

    images: torch.Tensor
    labels: torch.Tensor
    targets: dict[str, torch.Tensor]

    @property
    def n(self) -> int:
        return int(self.images.shape[0])


def load_split(store: Store, split: str, bands: Sequence[str] | None, target_names: Sequence[str],
               label_smoothing: float, device: torch.device) -> DeviceSplit:
    """Read a split once into device memory (~2 KB per band per patch); targets by name."""
    arrays = store.split(split)
    raw = arrays.image.read(np.arange(arrays.n))
    idx = band_indices(bands)
    if idx != list(range(raw.shape[1])):
        raw = raw[:, idx]
    images = torch.from_numpy(np.ascontiguousarray(raw).view(np.int16)).to(device)
    targets = {t: torch.from_numpy(make_targets(arrays, t, label_smoothing)).to(device)
               for t in dict.fromkeys(target_names)}
    return DeviceSplit(images, torch.from_numpy(np.array(arrays.label, dtype=np.int64)).to(device), targets)


def reflectance(raw: torch.Tensor) -> torch.Tensor:
    """int16 view of uint16 pixels -> float32 reflectance (DN / 10000), same shape."""
    return raw.to(torch.int32).bitwise_and_(0xFFFF).to(torch.float32).div_(REFLECTANCE_SCALE)


class PackEngine:
    """Training and validation of one :class:`PackedSen2LCZ` on ``train`` / ``val``.

    ``losses[k]``, ``train_targets[k]``, ``val_targets[k]``: member k's loss and target names.
    ``optimizer`` keyword arguments go to :func:`lczldl.training.schedule.make_optimizer`.
    """

    def __init__(self, net: PackedSen2LCZ, losses: Sequence[Loss], train_targets: Sequence[str],
                 val_targets: Sequence[str], train: DeviceSplit, val: DeviceSplit, *, lr: float,
                 optimizer: dict, bf16: bool = False, graphs: bool = False, val_batch_size: int = 512) -> None:
        self.net, self.k = net, net.k
        self.device = next(net.parameters()).device
        self.losses = list(losses)
        self.train, self.val = train, val
        self.t_train = torch.stack([train.targets[t] for t in train_targets])    # (K, N, classes)
        self.t_val = torch.stack([val.targets[t] for t in val_targets])
        self.bf16, self.val_batch_size = bool(bf16), int(val_batch_size)
        self.graphs = bool(graphs) and self.device.type == "cuda"
        self.opt = make_optimizer(net.parameters(), lr=lr, capturable=self.device.type == "cuda", **optimizer)
        self.loss_sum = torch.zeros(self.k, dtype=torch.float64, device=self.device)
        self._graph: torch.cuda.CUDAGraph | None = None
        self._graph_lr: float | None = None
        self._static_idx: torch.Tensor | None = None
        self._eager_steps = 0

    # ------------------------------------------------------------------ one step
    def _autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16, cache_enabled=False)

    def _step(self, idx: torch.Tensor) -> None:
        """One Nadam step of every member on its rows ``idx[k]`` (K, B) of the training split."""
        k, b = idx.shape
        raw = self.train.images[idx.reshape(-1)]
        x = pack_images(reflectance(raw).reshape(k, b, *raw.shape[1:]), self.net.memory_format)
        with self._autocast():
            logp = self.net(x)
        logp = logp.float()
        target = self.t_train[torch.arange(k, device=idx.device)[:, None], idx]     # (K, B, classes)
        losses = torch.stack([fn(logp[m], target[m]) for m, fn in enumerate(self.losses)])
        losses.sum().backward()
        self.opt.step()
        self.loss_sum.add_(losses.detach().double() * b)

    def _eager_step(self, idx: torch.Tensor) -> None:
        for p in self.net.parameters():   # zero in place: a captured graph owns these tensors
            if p.grad is not None:
                p.grad.zero_()
        self._step(idx)
        self._eager_steps += 1

    def _capture(self, idx: torch.Tensor, lr: float) -> None:
        """Capture the full-batch step with ``idx``'s shape (PyTorch's whole-network recipe)."""
        self._graph = None
        self._static_idx = idx.clone()
        self.opt.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        generators = {id(g): g for m in self.net.modules() for g in getattr(m, "generators", None) or []}
        for g in generators.values():            # the dropout layers share the members' generators
            graph.register_generator_state(g)
        with torch.cuda.graph(graph):
            self._step(self._static_idx)
        self._graph, self._graph_lr = graph, lr

    def train_epoch(self, batches: torch.Tensor, last: torch.Tensor | None, lr: float) -> None:
        """One epoch: ``batches`` (steps, K, B) of full batches, then ``last`` (K, b) if any.

        Call :meth:`epoch_losses` afterwards (the one host sync of the epoch)."""
        self.net.train()
        for group in self.opt.param_groups:
            group["lr"] = lr
        self.loss_sum.zero_()
        batches = batches.to(self.device, non_blocking=True)
        for i in range(batches.shape[0]):
            if not self.graphs:
                self._eager_step(batches[i])
                continue
            if self._graph is not None and self._graph_lr == lr:
                self._static_idx.copy_(batches[i])
                self._graph.replay()
            elif self._eager_steps < WARMUP_STEPS:
                self._warm_step(batches[i])
            else:
                self._capture_or_eager(batches[i], lr)
        if last is not None:
            self._eager_step(last.to(self.device))

    def _capture_or_eager(self, idx: torch.Tensor, lr: float) -> None:
        """Capture and replay the step; where this torch/driver cannot capture it, warn once and
        train eagerly from here on (same arithmetic, launch-bound speed)."""
        try:
            self._capture(idx, lr)
        except (RuntimeError, AttributeError) as exc:   # AttributeError: a torch without graph-safe RNG
            first = (str(exc).splitlines() or [""])[0]
            warnings.warn(f"CUDA graph capture failed ({type(exc).__name__}: {first}); training eagerly",
                          RuntimeWarning, stacklevel=2)
            self.graphs, self._graph = False, None
            self._eager_step(idx)
            return
        self._graph.replay()

    def _warm_step(self, idx: torch.Tensor) -> None:
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            self._eager_step(idx)
        torch.cuda.current_stream().wait_stream(stream)

    def epoch_losses(self, n: int) -> np.ndarray:
        """Mean training loss of each member over the epoch's ``n`` samples (K,) float64."""
        return self.loss_sum.cpu().numpy() / max(n, 1)

    def release_graph(self) -> None:
        """Drop the captured graph (before the pack's members or tensors change)."""
        self._graph, self._graph_lr, self._static_idx = None, None, None

    # ------------------------------------------------------------------ validation
    @torch.no_grad()
    def validate(self) -> tuple[np.ndarray, np.ndarray]:
        """Each member's validation loss and accuracy (K,), sample-weighted over the split.

        The loss is float32-rounded as the solo loop logs it."""
        self.net.eval()
        acc = torch.zeros(2, self.k, dtype=torch.float64, device=self.device)   # loss sum, correct
        for lo in range(0, self.val.n, self.val_batch_size):
            hi = min(lo + self.val_batch_size, self.val.n)
            x = reflectance(self.val.images[lo:hi])
            x = pack_images(x.unsqueeze(0).expand(self.k, *x.shape), self.net.memory_format)
            with self._autocast():
                logp = self.net(x)
            logp = logp.float()
            t = self.t_val[:, lo:hi]
            acc[0] += torch.stack([fn(logp[m], t[m]) for m, fn in enumerate(self.losses)]).double() * (hi - lo)
            acc[1] += (logp.argmax(-1) == self.val.labels[lo:hi]).sum(-1).double()
        out = (acc / max(self.val.n, 1)).float().cpu().numpy().astype(np.float64)
        return out[0], out[1]
