"""Owns the rule that picks a run's training loop: the Lightning loop (``training.run``) or the
packed engine (``training.packed.train_pack``, the CUDA fast path), what a config must allow
for the packed engine, and what ``train.precision`` / ``train.deterministic`` set in torch's
backends (:func:`backend_settings`, :func:`tf32_settings`; docs/training.md, "Precision").

The packed engine trains with one device, fp32 or bf16 autocast, and writes only metrics.csv
(no TensorBoard/MLflow logger), so it can take a config only where:

- ``train.logger`` is ``csv``;
- one device: ``train.devices`` is 1 (or ``auto`` / -1 with one GPU visible) and
  ``train.strategy`` is ``auto``;
- ``train.precision`` is ``32-true`` (fp32, TF32 off), ``32-tf32`` (fp32 tensors, TF32 tensor-core
  convolutions and matmuls on CUDA) or ``bf16-mixed`` (bf16 autocast). ``16-mixed`` is refused (fp16
  needs a loss scaler, whose overflow check reads the device every step: no graph, no sync-free
  step) and ``64-true`` too (fp64 is for checking numerics, which the Lightning loop does);
- ``train.accelerator`` is not ``mps``.

``train.engine``: ``auto`` takes the packed engine when CUDA is available, ``train.accelerator``
allows a GPU (auto | gpu | cuda) and the config allows it, else Lightning; ``lightning`` always
Lightning; ``packed`` always the packed engine (also on CPU; a config it cannot take is a
ConfigError). Measured on 2 CPU cores: packing is slower than separate processes
(docs/benchmarks.md, "Packed training"), so CPU keeps Lightning under ``auto``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from lczldl.config import LczldlConfig, TrainConfig
from lczldl.errors import ConfigError

#: the two training loops
LIGHTNING, PACKED = "lightning", "packed"
#: train.precision values the packed engine runs, and whether each is bf16 autocast
PACK_PRECISIONS: dict[str, bool] = {"32-true": False, "32-tf32": False, "bf16-mixed": True}
#: train.precision values with TF32 on (CUDA convolutions and matmuls); every other value turns it off
TF32_PRECISIONS = ("32-tf32",)
#: why the packed engine refuses the other train.precision values (one line each)
PACK_REFUSED_PRECISIONS: dict[str, str] = {
    "16-mixed": "fp16 needs a loss scaler whose overflow check syncs with the host every step; use bf16-mixed",
    "64-true": "fp64 is a numerics check, run it on the Lightning loop (train.engine=lightning)",
}
#: cuBLAS workspace setting that makes its matmuls deterministic (PyTorch's reproducibility notes)
CUBLAS_WORKSPACE = ":4096:8"
#: train.accelerator values under which ``auto`` may use CUDA
GPU_ACCELERATORS = ("auto", "gpu", "cuda")


def pack_refusal(cfg: LczldlConfig, n_gpus: int = 1) -> str | None:
    """Why the packed engine cannot train ``cfg`` (one line naming the key), or None when it can.
    ``n_gpus``: GPUs visible to the process (decides what devices=auto / -1 means)."""
    t = cfg.train
    if t.logger != "csv":
        return f"train.logger={t.logger} (packed runs write metrics.csv only; use train.logger=csv)"
    if t.precision not in PACK_PRECISIONS:
        why = PACK_REFUSED_PRECISIONS.get(t.precision, "not a packed precision")
        return f"train.precision={t.precision} ({why}; packed runs train in {', '.join(PACK_PRECISIONS)})"
    one = t.devices == 1 or (t.devices in ("auto", -1) and n_gpus <= 1)
    if not one or t.strategy != "auto":
        return (f"train.devices={t.devices}, train.strategy={t.strategy} (packed runs use one device; "
                "set train.devices=1 and train.strategy=auto)")
    if t.accelerator == "mps":
        return "train.accelerator=mps (packed runs train on CUDA or CPU)"
    return None


def choose_engine(cfg: LczldlConfig, cuda: bool, n_gpus: int = 1) -> str:
    """LIGHTNING or PACKED for a run of ``cfg`` on a machine where CUDA is (``cuda``) or is not
    available, with ``n_gpus`` GPUs visible. ConfigError for ``train.engine=packed`` with a config
    the packed engine cannot take."""
    engine = cfg.train.engine
    if engine == LIGHTNING:
        return LIGHTNING
    refusal = pack_refusal(cfg, n_gpus)
    if engine == PACKED:
        if refusal:
            raise ConfigError(f"train.engine=packed cannot train with {refusal}")
        return PACKED
    gpu = cuda and cfg.train.accelerator in GPU_ACCELERATORS
    return PACKED if gpu and refusal is None else LIGHTNING


def cuda_devices() -> tuple[bool, int]:
    """(CUDA available, number of CUDA devices visible) of this process."""
    import torch

    ok = torch.cuda.is_available()
    return ok, torch.cuda.device_count() if ok else 0


def pack_bf16(cfg: LczldlConfig) -> bool:
    """Whether a packed run of ``cfg`` uses bf16 autocast (``train.precision=bf16-mixed``)."""
    return PACK_PRECISIONS.get(cfg.train.precision, False)


def lightning_precision(precision: str) -> str:
    """The Lightning Trainer's ``precision`` for ``train.precision`` (``32-tf32`` is Lightning's
    ``32-true`` with TF32 switched on by :func:`tf32_settings`)."""
    return "32-true" if precision in TF32_PRECISIONS else precision


@contextlib.contextmanager
def tf32_settings(precision: str) -> Iterator[None]:
    """TF32 for the block as ``train.precision`` says: on for ``32-tf32``, off for every other
    value (cuDNN convolutions and cuBLAS matmuls; torch's own default has TF32 convolutions on,
    so without this ``32-true`` would not be fp32 on an Ampere or newer GPU). No effect on CPU.
    The previous flags are restored afterwards."""
    import torch

    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    was = (cudnn.allow_tf32, matmul.allow_tf32)
    on = precision in TF32_PRECISIONS
    cudnn.allow_tf32, matmul.allow_tf32 = on, on
    try:
        yield
    finally:
        cudnn.allow_tf32, matmul.allow_tf32 = was


@contextlib.contextmanager
def backend_settings(train: TrainConfig, device_type: str) -> Iterator[None]:
    """torch's global settings for a packed run of ``train`` on ``device_type`` ("cuda" / "cpu"),
    restored afterwards; the benchmarks use the same function, so they measure what runs run.

    - TF32 as :func:`tf32_settings`.
    - ``train.deterministic`` on CPU: ``torch.use_deterministic_algorithms(True)`` (as before).
    - ``train.deterministic`` on CUDA: deterministic algorithms with ``warn_only=True`` (max-pool
      backward has no deterministic CUDA kernel: with Sen2LCZ's 2x2 stride-2 windows each input
      gets at most one gradient, so its atomic adds never collide), cuBLAS's deterministic
      workspace, ``cudnn.benchmark`` off (autotuning may pick another algorithm per process), and
      ``fill_uninitialized_memory`` off: filling every ``torch.empty`` with NaN costs a kernel per
      allocation (inside a captured graph too) and changes no result here, since every tensor of
      the step (the dropout masks included) is written before it is read.
    - not deterministic on CUDA: nondeterministic algorithms allowed, ``cudnn.benchmark`` on (the
      step's shapes are fixed, so autotuning runs once per shape).
    """
    import torch
    import torch.utils.deterministic as det

    cuda = device_type == "cuda"
    was = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
           torch.backends.cudnn.benchmark, det.fill_uninitialized_memory)
    if train.deterministic and cuda:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    with tf32_settings(train.precision):
        try:
            torch.use_deterministic_algorithms(train.deterministic, warn_only=cuda)
            if cuda:
                torch.backends.cudnn.benchmark = not train.deterministic
                det.fill_uninitialized_memory = False
            yield
        finally:
            torch.use_deterministic_algorithms(was[0], warn_only=was[1])
            torch.backends.cudnn.benchmark, det.fill_uninitialized_memory = was[2], was[3]
