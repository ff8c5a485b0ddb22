"""Owns how many runs a study trains together in one pack: ``--pack N`` / ``study.pack`` when
given, else the default (one pack per GPU where CUDA is, one run per process on CPU).

Why 1 on CPU: measured on 2 cores, separate single-thread processes (``--workers 2``) finished
4 runs in 70 % of one pack's wall time (docs/benchmarks.md, "Packed training"); a CPU step is
bound by arithmetic, not by kernel launches. On a GPU a pack of 20 is the issue's measured
case (~5x the aggregate speed of one graphed run), hence at most :data:`MAX_DEFAULT_PACK` runs a
pack by default.
"""

from __future__ import annotations

import math

from lczldl.config import LczldlConfig, StudyConfig
from lczldl.errors import ConfigError
from lczldl.study.executors import visible_gpus

#: largest pack the default makes (the largest pack measured: 20 members on one H200)
MAX_DEFAULT_PACK = 20


def default_pack(n_runs: int, gpus: int) -> int:
    """Members per pack when none is given: 1 without a GPU; else the grid of ``n_runs`` split
    evenly over ``gpus`` packs running at once, at most :data:`MAX_DEFAULT_PACK` a pack
    (e.g. 20 runs, 1 GPU -> 20; 20 runs, 8 GPUs -> 3)."""
    if gpus < 1 or n_runs < 1:
        return 1
    return math.ceil(n_runs / max(gpus, math.ceil(n_runs / MAX_DEFAULT_PACK)))


def pack_gpus(sc: StudyConfig, cuda: bool, n_gpus: int) -> int:
    """GPUs the study's packs run on at once (0: none, CPU). Local executors: one pack per visible
    GPU, at most one per worker (``min(workers, n_gpus)``), when CUDA is available. SLURM: each
    pack is one job; jobs with GPUs (``study.slurm.gpus_per_node`` >= 1) count as one GPU, so the
    grid is packed as on a one-GPU machine (a smaller ``--pack`` spreads it over more jobs)."""
    if sc.executor == "slurm":
        return 1 if (sc.slurm.gpus_per_node or 0) >= 1 else 0
    return min(sc.workers, n_gpus) if cuda else 0


def resolve_pack(cfg: LczldlConfig, n_runs: int, *, typed: bool = False, cuda: bool | None = None,
                 n_gpus: int | None = None) -> int:
    """Members per pack of the study ``cfg`` (its ``study`` section) with ``n_runs`` runs.

    ``study.pack`` as resolved (``pack`` typed > config > None = default); ``typed`` says the
    user typed it (errors then name the parameter ``pack``, else the key ``study.pack``). ``cuda`` / ``n_gpus``: whether CUDA is available and how
    many devices the executor hands out (None: this machine's). A pack size > 1 with a config the
    packed engine cannot train (``training.fastpath.pack_refusal``) or ``train.engine=lightning``
    is a ConfigError when given, and makes the default 1."""
    from lczldl.training.fastpath import LIGHTNING, pack_refusal  # deferred: torch

    sc = cfg.study or StudyConfig()
    refusal = pack_refusal(cfg)
    if cfg.train.engine == LIGHTNING:
        refusal = "train.engine=lightning (each run trains alone in the Lightning loop)"
    if sc.pack is not None:
        if sc.pack > 1 and refusal:
            where = f"pack={sc.pack}" if typed else f"study.pack={sc.pack}"
            raise ConfigError(f"{where}: packed runs cannot train with {refusal}; use pack=1", params=("pack",))
        return sc.pack
    if refusal:
        return 1
    if cuda is None:
        from lczldl.training.fastpath import cuda_devices  # deferred: torch

        cuda = cuda_devices()[0]
        n_gpus = len(visible_gpus()) if cuda else 0
    return default_pack(n_runs, pack_gpus(sc, cuda, n_gpus or 0))
