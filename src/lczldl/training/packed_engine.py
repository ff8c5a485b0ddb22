"""Owns how a pack computes on one device: the splits resident on the device, the packed training
step (eager, or captured in a CUDA graph and replayed), and validation in large batches.

Per step, member k trains on its own rows ``idx[k]`` (B,) of the training split: its images are
gathered on the device from the resident uint16 pixels (kept as an int16 view, converted per batch
to float32 reflectance), its target is its regime's, its loss its regime's (lczldl.training.losses),
and the packed loss is the sum of the members' losses, so each member's gradient is its own.
Losses are summed on the device and read once per epoch: no step waits for the host.

With ``graphs=True`` (CUDA; the API comes from :func:`graph_api`, which tests point at a CPU
stand-in that records and replays) the full-batch step (gather, forward, backward, Nadam with
``capturable=True``) is captured once per (members, lr) after ``WARMUP_STEPS`` eager steps on a
side stream, and replayed with the next batch's indices copied into a static buffer. A graph
replays its kernels with every Python scalar frozen at capture (the lr among them), hence one
capture per lr. The last, smaller batch of an epoch runs eagerly. The dropout generators are
registered with the graph (``CUDAGraph.register_generator_state``), so replays draw fresh masks
(the masks an eager step would draw: both advance the same Philox offsets).

A capture that fails is reported with its own exception (not the "capture invalidated" that
``capture_end`` raises after it), then the engine drops the graph and the gradients allocated in
its private memory pool, clears the generators' capture flag with one trivial successful capture
(before torch 2.13 a failing ``capture_end`` raised before its RNG epilogue and left them flagged,
so the next eager dropout raised; on 2.13 the extra capture is harmless), restores their states
and trains eagerly from there on (same arithmetic, launch-bound speed).

``bf16=True`` runs the forward under bfloat16 autocast (losses and the optimizer in float32).
Precision flags (TF32), deterministic algorithms and cudnn.benchmark are the caller's
(:func:`lczldl.training.fastpath.backend_settings`, used by training and the benchmarks alike).
"""

from __future__ import annotations

import traceback
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lczldl.constants import REFLECTANCE_SCALE
from lczldl.data.store import Store, band_indices, make_targets
from lczldl.training.losses import Loss
from lczldl.training.packed_model import PackedSen2LCZ, pack_images
from lczldl.training.schedule import make_optimizer

#: eager steps before the first CUDA-graph capture (cuDNN / allocator warm-up; they are real steps)
WARMUP_STEPS = 3


class CaptureError(RuntimeError):
    """A CUDA-graph capture of the step failed; the message is the original exception's."""


def graph_api(device: torch.device) -> Any | None:
    """The ``torch.cuda``-like API (CUDAGraph, Stream, stream, current_stream, synchronize) that
    captures graphs on ``device``: ``torch.cuda`` on a CUDA device, None elsewhere (no graphs).
    Tests replace this function to capture on CPU with a stand-in."""
    return torch.cuda if device.type == "cuda" else None


def graph_safe_rng(cuda: Any) -> bool:
    """Whether ``cuda``'s graphs can register non-default generators (the members' dropout
    generators): ``CUDAGraph.register_generator_state``, absent from older torch releases."""
    return hasattr(cuda.CUDAGraph, "register_generator_state")


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
    ``graphs``: capture the step where :func:`graph_api` offers graphs for the device.
    ``capturable``: Nadam with its step counters on the device (None: exactly when graphs are
    used; eager steps are cheaper with the counters on the host, see schedule.make_optimizer).
    The network must be initialised (:meth:`PackedSen2LCZ.load_members`; PackingError otherwise).
    """

    def __init__(self, net: PackedSen2LCZ, losses: Sequence[Loss], train_targets: Sequence[str],
                 val_targets: Sequence[str], train: DeviceSplit, val: DeviceSplit, *, lr: float,
                 optimizer: dict, bf16: bool = False, graphs: bool = False, val_batch_size: int = 512,
                 capturable: bool | None = None) -> None:
        net.require_loaded()
        self.net, self.k = net, net.k
        self.device = next(net.parameters()).device
        self.losses = list(losses)
        self.train, self.val = train, val
        self.t_train = torch.stack([train.targets[t] for t in train_targets])    # (K, N, classes)
        self.t_val = torch.stack([val.targets[t] for t in val_targets])
        self.bf16, self.val_batch_size = bool(bf16), int(val_batch_size)
        self.cuda = graph_api(self.device) if graphs else None
        if self.cuda is not None and not graph_safe_rng(self.cuda):
            warnings.warn(f"torch {torch.__version__} cannot register the members' dropout generators with a "
                          "CUDA graph (CUDAGraph.register_generator_state); training eagerly",
                          RuntimeWarning, stacklevel=2)
            self.cuda = None
        self.graphs = self.cuda is not None
        self.capturable = self.graphs if capturable is None else bool(capturable)
        self.opt = make_optimizer(net.parameters(), lr=lr, capturable=self.capturable, **optimizer)
        self.loss_sum = torch.zeros(self.k, dtype=torch.float64, device=self.device)
        self._graph: Any | None = None
        self._graph_lr: float | None = None
        self._static_idx: torch.Tensor | None = None
        self._eager_steps = 0

    def load_optimizer_state(self, state: dict) -> None:
        """Load a packed Nadam ``state`` (:meth:`PackedSen2LCZ.pack_optimizer_state`; {} = fresh).
        torch moves ``mu_product`` to the parameters' device; without ``capturable`` it goes back to
        the host, where Nadam reads it (on CUDA a device copy would cost a sync per tensor and step)."""
        if not state:
            return
        self.opt.load_state_dict({"state": state, "param_groups": self.opt.state_dict()["param_groups"]})
        if not self.capturable:
            for entry in self.opt.state.values():
                for name in ("step", "mu_product"):
                    if name in entry:
                        entry[name] = entry[name].cpu()

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

    def _generators(self) -> list[torch.Generator]:
        """The dropout layers' generators (shared by the layers: one per member), in member order."""
        found = {id(g): g for m in self.net.modules() for g in getattr(m, "generators", None) or []}
        return list(found.values())

    def _capture(self, idx: torch.Tensor, lr: float) -> None:
        """Capture the full-batch step with ``idx``'s shape (PyTorch's whole-network recipe: side
        stream, grads None before capture so backward allocates them in the graph's pool).
        CaptureError (the original exception's type and first line) when it fails, after
        :meth:`_drop_failed_capture`."""
        cuda = self.cuda
        self.release_graph()
        self._static_idx = idx.clone()
        self.opt.zero_grad(set_to_none=True)
        generators = self._generators()
        states = [g.get_state() for g in generators]
        graph = cuda.CUDAGraph()
        for g in generators:                     # the dropout layers share the members' generators
            graph.register_generator_state(g)
        cuda.synchronize()
        stream = cuda.Stream()
        stream.wait_stream(cuda.current_stream())
        error: BaseException | None = None
        with cuda.stream(stream):                # torch.cuda.graph by hand: its __exit__ would hide
            try:                                 # the cause behind capture_end's error
                graph.capture_begin()
            except Exception as exc:  # noqa: BLE001 - reported below, whatever it was
                error = exc
            if error is None:
                try:
                    self._step(self._static_idx)
                except Exception as exc:  # noqa: BLE001
                    error = exc
                try:
                    graph.capture_end()
                except Exception as exc:  # noqa: BLE001 - "capture invalidated" after the real cause
                    error = error or exc
        cuda.current_stream().wait_stream(stream)
        if error is None:
            self._graph, self._graph_lr = graph, lr
            return
        message = _describe(error)
        error = graph = None                     # the traceback's frames hold the capture's tensors
        self._drop_failed_capture(generators, states)
        raise CaptureError(message)

    def _drop_failed_capture(self, generators: list[torch.Generator], states: list[torch.Tensor]) -> None:
        """After a failed capture: no graph, no gradients from its pool (the pool is freed with
        them), the generators' capture flag cleared by one trivial capture that succeeds (see the
        module doc) and their states as before the capture."""
        self.release_graph()
        self.opt.zero_grad(set_to_none=True)
        cuda = self.cuda
        try:
            repair = cuda.CUDAGraph()
            for g in generators:
                repair.register_generator_state(g)
            stream = cuda.Stream()
            stream.wait_stream(cuda.current_stream())
            with cuda.stream(stream):
                scratch = torch.zeros(1, device=self.device)
                repair.capture_begin()
                scratch.add_(1.0)
                repair.capture_end()
            cuda.current_stream().wait_stream(stream)
            del repair
            for g, state in zip(generators, states, strict=True):
                g.set_state(state)
        except Exception as exc:  # noqa: BLE001 - the eager step will say what is still wrong
            warnings.warn(f"could not reset the dropout generators after the failed capture ({_describe(exc)})",
                          RuntimeWarning, stacklevel=3)

    def _can_replay(self, lr: float) -> bool:
        """A captured step exists for this lr (its frozen scalars are this epoch's)."""
        return self._graph is not None and self._graph_lr == lr

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
            if self._can_replay(lr):
                self._static_idx.copy_(batches[i])
                self._graph.replay()
            elif self._eager_steps < WARMUP_STEPS:
                self._warm_step(batches[i])
            else:
                self._capture_or_eager(batches[i], lr)
        if last is not None:
            self._eager_step(last.to(self.device))

    def _capture_or_eager(self, idx: torch.Tensor, lr: float) -> None:
        """Capture and replay the step; where it cannot be captured, warn once (with the cause)
        and train eagerly from here on."""
        try:
            self._capture(idx, lr)
        except CaptureError as exc:
            message = str(exc)
        else:
            self._graph.replay()
            return
        warnings.warn(f"CUDA graph capture failed ({message}); training eagerly", RuntimeWarning, stacklevel=2)
        self.graphs = False
        self._eager_step(idx)

    def _warm_step(self, idx: torch.Tensor) -> None:
        cuda = self.cuda
        stream = cuda.Stream()
        stream.wait_stream(cuda.current_stream())
        with cuda.stream(stream):
            self._eager_step(idx)
        cuda.current_stream().wait_stream(stream)

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


def _describe(exc: BaseException) -> str:
    """``Type: first line (file:line)`` of an exception, the innermost frame of its traceback."""
    first = (str(exc).strip().splitlines() or [""])[0]
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" ({frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {first}{where}"
