"""LightningDataModule over a prepared store.

Batches come from :class:`EpochBatchSampler`, which yields whole arrays of row indices; the
DataLoader runs with ``batch_size=None`` so each index array is fetched by one ``dataset[rows]``
call (one sorted read, one uint16 -> float32 conversion per batch) instead of per-sample
``__getitem__`` plus collation. The order of epoch ``e`` is a permutation drawn from
``np.random.default_rng([seed, e])``, a function of (seed, epoch) only, so a resumed run sees the
same batches as an uninterrupted one. Under DDP each rank takes every world_size-th batch.
Validation and test batches are contiguous rows in store order (sequential reads). For shuffled
batches the sampler hints the rows of the next ``prefetch_batches`` batches to the kernel
(posix_fadvise WILLNEED), so a cold epoch (store not yet in the page cache) keeps many disk reads
in flight instead of one at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from lczldl.constants import BANDS
from lczldl.data.budget_store import BudgetLike, open_budget_store
from lczldl.data.store import TARGET_ALIASES, TARGETS, LCZDataset, band_indices, require_target
from lczldl.errors import DataError


class EpochBatchSampler(Sampler):
    """Yields int64 arrays of row indices, one per batch; seeded per epoch; rank-sharded under DDP."""

    def __init__(self, n: int, batch_size: int, shuffle: bool, seed: int = 0, drop_last: bool = False,
                 prefetch: Callable[[np.ndarray], None] | None = None, prefetch_batches: int = 16) -> None:
        if batch_size < 1:
            raise DataError(f"batch_size must be >= 1, got {batch_size}")
        self.n, self.batch_size, self.shuffle, self.seed, self.drop_last = n, batch_size, shuffle, seed, drop_last
        self.prefetch, self.prefetch_batches = prefetch, prefetch_batches
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    @staticmethod
    def _rank() -> tuple[int, int]:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank(), torch.distributed.get_world_size()
        return 0, 1

    def _batches(self) -> list[np.ndarray]:
        order = (np.random.default_rng([self.seed, self.epoch]).permutation(self.n) if self.shuffle
                 else np.arange(self.n, dtype=np.int64))
        batches = [order[i:i + self.batch_size] for i in range(0, self.n, self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches = batches[:-1]
        rank, world = self._rank()
        if world > 1:
            usable = len(batches) - len(batches) % world if self.shuffle else len(batches)
            batches = batches[:usable][rank::world]
        return batches

    def __iter__(self):
        batches = self._batches()
        if self.prefetch is None:
            yield from batches
            return
        for b in batches[:self.prefetch_batches]:      # shuffled rows: hint the next batches' reads
            self.prefetch(b)
        for i, b in enumerate(batches):
            if i + self.prefetch_batches < len(batches):
                self.prefetch(batches[i + self.prefetch_batches])
            yield b

    def __len__(self) -> int:
        return len(self._batches())


class LCZDataModule(L.LightningDataModule):
    """Train/val/test loaders of a prepared store for one regime.

    ``target`` is the training target (see ``store.TARGETS``; "dist"/"dist_ls" accepted);
    ``eval_target`` the validation/test target (default: ``target``), e.g. dist_ls trains on the
    smoothed distribution and validates on the unsmoothed one. Images are reflectance, no
    normalisation. ``bands``: TorchGeo names (default all 10). ``target``, ``batch_size`` and
    ``label_smoothing`` are required: a run passes its config's (``train.*``, declared in
    :mod:`lczldl.config`); ``num_workers`` 0 and ``pin_memory`` False are the plain DataLoader's.
    ``budget`` (``data.vote_budget``): train and validation targets from k votes per image
    (:class:`lczldl.data.budget_store.BudgetedStore`); test keeps every vote.
    """

    def __init__(self, store: Path, *, target: str, eval_target: str | None = None, batch_size: int,
                 label_smoothing: float, bands: Sequence[str] | None = None, num_workers: int = 0,
                 seed: int = 0, pin_memory: bool = False, budget: BudgetLike | None = None) -> None:
        super().__init__()
        self.store_path = Path(store)
        self.store = open_budget_store(self.store_path, budget)
        self.manifest = self.store.manifest
        for name, t in (("target", target), ("eval_target", eval_target)):
            if t is not None and TARGET_ALIASES.get(t, t) not in TARGETS:
                raise DataError(f"unknown {name} '{t}'; use one of {', '.join(TARGETS)}")
            if t is not None and "train" in self.store.splits:
                require_target(self.store.split("train"), t, str(self.store_path))
        if batch_size < 1:
            raise DataError(f"batch_size must be >= 1, got {batch_size}")
        self.target = target
        self.eval_target = eval_target or target
        self.batch_size = int(batch_size)
        self.bands = [BANDS[i] for i in band_indices(bands)]
        self._band_arg = list(bands) if bands is not None else None
        self.num_workers = int(num_workers)
        self.seed = int(seed)
        self.label_smoothing = float(label_smoothing)
        self.pin_memory = bool(pin_memory)
        self.num_classes = self.store.num_classes
        self._ds: dict[str, LCZDataset] = {}

    def dataset(self, split: str) -> LCZDataset:
        """The dataset of ``split`` (train uses ``target``, val/test ``eval_target``)."""
        if split not in self._ds:
            target = self.target if split == "train" else self.eval_target
            self._ds[split] = LCZDataset(self.store, split, bands=self._band_arg, target=target,
                                         label_smoothing=self.label_smoothing)
        return self._ds[split]

    def loader(self, split: str, shuffle: bool | None = None) -> DataLoader:
        """DataLoader of ``split``; shuffled (seeded per epoch) by default for train only."""
        ds = self.dataset(split)
        shuffle = split == "train" if shuffle is None else shuffle
        sampler = EpochBatchSampler(len(ds), self.batch_size, shuffle=shuffle, seed=self.seed,
                                    prefetch=ds.arrays.image.prefetch if shuffle else None)
        return DataLoader(ds, sampler=sampler, batch_size=None, num_workers=self.num_workers,
                          pin_memory=self.pin_memory, persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self.loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self.loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self.loader("test", shuffle=False)
