"""Owns the rule that picks a run's training loop: the Lightning loop (``training.run``) or the
packed engine (``training.packed.train_pack``, the CUDA fast path), and what a config must allow
for the packed engine.

The packed engine trains with one device, fp32 or bf16 autocast, and writes only metrics.csv
(no TensorBoard/MLflow logger), so it can take a config only where:

- ``train.logger`` is ``csv``;
- one device: ``train.devices`` is 1 (or ``auto`` / -1 with one GPU visible) and
  ``train.strategy`` is ``auto``;
- ``train.precision`` is ``32-true`` (fp32) or ``bf16-mixed`` (bf16 autocast);
- ``train.accelerator`` is not ``mps``.

``train.engine``: ``auto`` takes the packed engine when CUDA is available, ``train.accelerator``
allows a GPU (auto | gpu | cuda) and the config allows it, else Lightning; ``lightning`` always
Lightning; ``packed`` always the packed engine (also on CPU; a config it cannot take is a
ConfigError). Measured on 2 CPU cores: packing is slower than separate processes
(docs/benchmarks.md, "Packed training"), so CPU keeps Lightning under ``auto``.
"""

from __future__ import annotations

from lczldl.config import LczldlConfig
from lczldl.errors import ConfigError

#: the two training loops
LIGHTNING, PACKED = "lightning", "packed"
#: train.precision values the packed engine runs, and whether each is bf16 autocast
PACK_PRECISIONS: dict[str, bool] = {"32-true": False, "bf16-mixed": True}
#: train.accelerator values under which ``auto`` may use CUDA
GPU_ACCELERATORS = ("auto", "gpu", "cuda")


def pack_refusal(cfg: LczldlConfig, n_gpus: int = 1) -> str | None:
    """Why the packed engine cannot train ``cfg`` (one line naming the key), or None when it can.
    ``n_gpus``: GPUs visible to the process (decides what devices=auto / -1 means)."""
    t = cfg.train
    if t.logger != "csv":
        return f"train.logger={t.logger} (packed runs write metrics.csv only; use train.logger=csv)"
    if t.precision not in PACK_PRECISIONS:
        return f"train.precision={t.precision} (packed runs train in 32-true or bf16-mixed)"
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
