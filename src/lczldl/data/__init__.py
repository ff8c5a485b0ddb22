"""Data: readers per source format, label rules, Dawid-Skene, splits, prepared store, twin.

Import submodules directly (``lczldl.data.labels``, ``lczldl.data.prepare``, ...). The names
below are loaded lazily on first access, so ``import lczldl.data`` stays light (no torch):
``prepare_store``, ``is_raw_vote_folder`` (prepare), ``is_prepared_store``, ``open_store``,
``Store``, ``SplitArrays``, ``LCZDataset`` (store, numpy only), ``LCZDataModule``,
``EpochBatchSampler`` (datamodule, imports torch and lightning).
"""

from __future__ import annotations

import importlib

_LAZY = {
    "prepare_store": "prepare", "is_prepared_store": "store", "is_raw_vote_folder": "prepare",
    "open_store": "store", "Store": "store", "SplitArrays": "store", "LCZDataset": "store",
    "LCZDataModule": "datamodule", "EpochBatchSampler": "datamodule",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"lczldl.data.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'lczldl.data' has no attribute '{name}'")
