"""Owns reading the prepared store: validated arrays and a lazy dataset of dict samples.

Images: file-backed mmap pages count in the process's resident memory (RSS), so a plain
``np.load(mmap_mode="r")`` would grow to the whole 8 GB of a 400k-sample store over one epoch.
:class:`ImageFile` reads a batch's rows sorted with ``os.preadv`` (one call per run of consecutive
rows) into one buffer; the page cache holds the file, the process does not. The batch is then
converted from uint16 to float32 reflectance in one vectorised step. (Measured on the 2-core
machine: faster than mmap + periodic ``madvise(MADV_DONTNEED)``, whose page faults and fault-around
cost more than the syscalls.) The small per-row arrays (labels, distributions, ...) are
memory-mapped.

No normalisation happens here: images are reflectance (DN / REFLECTANCE_SCALE); the model scales its inputs.
This module imports numpy only; torch is imported when a sample is built.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lczldl.constants import (
    AGG_ONEHOT_TARGETS,
    AGG_TARGETS,
    BANDS,
    N_EXPERTS,
    N_URBAN,
    PATCH_SIZE,
    REFLECTANCE_SCALE,
)
from lczldl.data.labels import one_hot, smooth_distribution, smooth_one_hot
from lczldl.errors import DataError
from lczldl.layout import IMAGE, MANIFEST, STORE_FORMAT, STORE_VERSION, array_path, manifest_path, split_dir

#: Targets a dataset can serve (regime training / validation targets); the aggregators' (``agg_*``)
#: only from a store prepared with them (``--aggregators``).
TARGETS = ("onehot", "onehot_ls", "onehot_ls17", "distribution", "distribution_ls", "dawid_skene",
           *AGG_TARGETS.values(), *AGG_ONEHOT_TARGETS.values())
TARGET_ALIASES = {"dist": "distribution", "dist_ls": "distribution_ls"}
#: Per-row arrays of a split: name -> (trailing shape, dtype kind). Required in every store.
COLUMNS = {
    "label": ((), "i"), "distribution": ((N_URBAN,), "f"), "dawid_skene": ((N_URBAN,), "f"),
    "votes": ((N_EXPERTS,), "i"), "original": ((), "i"), "city": ((), "i"), "vote_entropy": ((), "f"),
}
#: Per-row arrays a store may lack: name -> (trailing shape, dtype kind). ``row`` (hand-made fixture
#: stores omit it) and the crowd-kit posteriors ``agg_<method>`` (only with ``--aggregators``).
OPTIONAL_COLUMNS = {"row": ((), "i"), **{c: ((N_URBAN,), "f") for c in AGG_TARGETS.values()}}


def is_prepared_store(path: Path) -> bool:
    """True if ``path`` holds the manifest of an lczldl store (format tag checked, nothing else)."""
    m = manifest_path(path)
    if not m.is_file():
        return False
    try:
        return json.loads(m.read_text()).get("format") == STORE_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


class ImageFile:
    """Row access to an (N, C, 32, 32) uint16 ``.npy`` file with ``os.pread`` (no mmap).

    Bytes read with pread land in the kernel's page cache, not in this process's resident memory,
    so RSS stays flat however much of the file an epoch reads. Safe across fork: each process
    opens its own descriptor on first use.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            with open(self.path, "rb") as f:
                version = np.lib.format.read_magic(f)
                reader = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                          else np.lib.format.read_array_header_2_0)
                shape, fortran, dtype = reader(f)
                self.offset = f.tell()
        except (OSError, ValueError) as exc:
            raise DataError(f"{self.path}: not a readable .npy image array ({exc}); "
                            "prepare the store again") from None
        if dtype != np.uint16 or fortran or len(shape) != 4 or tuple(shape[2:]) != (PATCH_SIZE, PATCH_SIZE):
            raise DataError(f"{self.path}: expected a C-order uint16 (N, C, 32, 32) array, got {dtype} "
                            f"{shape}; prepare the store again")
        self.shape = tuple(int(s) for s in shape)
        self.row_bytes = int(np.prod(self.shape[1:])) * 2
        size = os.path.getsize(self.path)
        if size < self.offset + self.shape[0] * self.row_bytes:
            raise DataError(f"{self.path}: file truncated ({size} bytes for {self.shape[0]} rows); "
                            "prepare the store again")
        self._fd: int | None = None
        self._pid: int | None = None

    def __len__(self) -> int:
        return self.shape[0]

    def _handle(self) -> int:
        if self._fd is None or self._pid != os.getpid():   # a forked worker opens its own
            self._fd = os.open(self.path, os.O_RDONLY)
            self._pid = os.getpid()
        return self._fd

    def close(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = self._pid = None

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.update(_fd=None, _pid=None)
        return state

    def prefetch(self, rows: Sequence[int] | np.ndarray) -> None:
        """Ask the kernel to start reading these rows into the page cache (asynchronous, no-op where
        posix_fadvise is missing). Lets a cold, shuffled epoch keep many disk reads in flight."""
        if not hasattr(os, "posix_fadvise"):
            return
        fd = self._handle()
        for r in np.unique(np.asarray(rows, dtype=np.int64)).tolist():
            if 0 <= r < self.shape[0]:
                os.posix_fadvise(fd, self.offset + r * self.row_bytes, self.row_bytes, os.POSIX_FADV_WILLNEED)

    def read(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """Row indices (any order, repeats allowed) -> (n, C, 32, 32) uint16 in that order.

        Rows are read sorted, one ``preadv`` per run of consecutive rows, straight into the result.
        """
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if not len(rows):
            return np.empty((0,) + self.shape[1:], dtype=np.uint16)
        order = np.argsort(rows, kind="stable")
        srt = rows[order]
        if srt[0] < 0 or srt[-1] >= self.shape[0]:
            raise IndexError(f"row index out of range 0..{self.shape[0] - 1}")
        fd = self._handle()
        step = np.diff(srt)
        breaks = (np.nonzero(step != 1)[0] + 1).tolist()
        buf = np.empty((len(srt), self.row_bytes), dtype=np.uint8)
        for i0, i1 in zip([0] + breaks, breaks + [len(srt)], strict=True):
            if i0 > 0 and step[i0 - 1] == 0:              # a repeated row: copy the previous one
                buf[i0] = buf[i0 - 1]
                i0 += 1
                if i0 == i1:
                    continue
            got = os.preadv(fd, [memoryview(buf[i0:i1]).cast("B")],
                            self.offset + int(srt[i0]) * self.row_bytes)
            if got != (i1 - i0) * self.row_bytes:
                raise DataError(f"{self.path}: file truncated at row {int(srt[i0])}; prepare the store again")
        img = buf.view(np.uint16).reshape((len(srt),) + self.shape[1:])
        if np.all(order[1:] > order[:-1]):                # already in ascending order
            return img
        out = np.empty_like(img)
        out[order] = img
        return out


@dataclass
class SplitArrays:
    """One split of a store. ``image`` is read lazily; the other arrays are memory-mapped."""

    name: str
    n: int
    image: ImageFile
    label: np.ndarray          # (N,) int64 class index 0..9
    distribution: np.ndarray   # (N, 10) float32 urban vote distribution
    dawid_skene: np.ndarray    # (N, 10) float32 Dawid-Skene posterior
    votes: np.ndarray          # (N, 11) int8 LCZ ids, column = expert
    original: np.ndarray       # (N,) int8 original So2Sat LCZ id
    city: np.ndarray           # (N,) int16 index into manifest["cities"]
    vote_entropy: np.ndarray   # (N,) float32 nats
    row: np.ndarray | None = None  # (N,) int64 row in the city's raw file (stores from prepare)
    #: store column "agg_<method>" -> (N, 10) float32 crowd-kit posterior (those the store holds)
    aggregated: dict[str, np.ndarray] = field(default_factory=dict)

    def soft_targets(self) -> dict[str, np.ndarray]:
        """Every soft target the split holds, by name: distribution, dawid_skene, agg_* ((N, 10) each)."""
        return {"distribution": self.distribution, "dawid_skene": self.dawid_skene, **self.aggregated}


class Store:
    """A prepared store: ``manifest`` plus per-split arrays (:meth:`split`)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        mpath = manifest_path(self.path)
        if not mpath.is_file():
            raise DataError(f"{self.path}: not a prepared store (no {MANIFEST}); "
                            "create one with `lczldl data prepare --raw RAW --out STORE`")
        try:
            self.manifest = json.loads(mpath.read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"{mpath}: manifest is not valid JSON ({exc}); prepare the store again") from None
        if not isinstance(self.manifest, dict) or self.manifest.get("format") != STORE_FORMAT:
            raise DataError(f"{mpath}: not an lczldl store manifest (format != '{STORE_FORMAT}')")
        if self.manifest.get("version") != STORE_VERSION:
            raise DataError(f"{mpath}: store version {self.manifest.get('version')} is not supported "
                            f"(expected {STORE_VERSION}); prepare the store again with this lczldl")
        if not isinstance(self.manifest.get("splits"), dict):
            raise DataError(f"{mpath}: manifest has no 'splits'; prepare the store again")
        self._splits: dict[str, SplitArrays] = {}

    @property
    def splits(self) -> list[str]:
        return list(self.manifest["splits"])

    @property
    def cities(self) -> list[str]:
        return list(self.manifest.get("cities", []))

    def _column(self, split: str, name: str, n: int, tail: tuple[int, ...], kind: str) -> np.ndarray:
        """One per-row array of a split, memory-mapped and checked against the manifest's row count."""
        f = array_path(self.path, split, name)
        try:
            arr = np.load(f, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise DataError(f"{f}: missing or unreadable array of the store ({exc}); "
                            "prepare the store again") from None
        if arr.shape != (n,) + tail or arr.dtype.kind != kind:
            raise DataError(f"{f}: shape {arr.shape} dtype {arr.dtype}, expected {(n,) + tail} "
                            f"({'int' if kind == 'i' else 'float'}) from manifest; prepare the store again")
        return arr

    def split(self, name: str) -> SplitArrays:
        """Validated arrays of split ``name`` (train / val / test)."""
        if name in self._splits:
            return self._splits[name]
        d = split_dir(self.path, name)
        if name not in self.manifest["splits"] or not d.is_dir():
            raise DataError(f"{self.path}: no split '{name}' in the store (has: {', '.join(self.splits)})")
        n = self.manifest["splits"][name].get("n")
        cols = {c: self._column(name, c, n, tail, kind) for c, (tail, kind) in COLUMNS.items()}
        for c, (tail, kind) in OPTIONAL_COLUMNS.items():
            if array_path(self.path, name, c).is_file():
                cols[c] = self._column(name, c, n, tail, kind)
        agg = {c: cols.pop(c) for c in AGG_TARGETS.values() if c in cols}
        image = ImageFile(array_path(self.path, name, IMAGE))
        if image.shape[0] != n or image.shape[1] != len(BANDS):
            raise DataError(f"{image.path}: shape {image.shape}, expected ({n}, {len(BANDS)}, 32, 32)")
        self._splits[name] = SplitArrays(name=name, n=int(n), image=image, aggregated=agg, **cols)
        return self._splits[name]


def open_store(path: Path) -> Store:
    """Open a prepared store; a folder that is not one raises DataError saying how to make it."""
    return Store(Path(path))


def band_indices(bands: Sequence[str] | None) -> list[int]:
    """TorchGeo band names (S2_B02 ...) -> indices into the store's 10 bands (None = all)."""
    if bands is None:
        return list(range(len(BANDS)))
    if isinstance(bands, str):
        bands = [bands]
    if not len(bands):
        raise DataError(f"empty band selection; choose from {', '.join(BANDS)}")
    idx = []
    for b in bands:
        if b not in BANDS:
            raise DataError(f"unknown band '{b}'; available: {', '.join(BANDS)}")
        idx.append(BANDS.index(b))
    return idx


def _aggregator_of(target: str) -> str | None:
    """The aggregator behind an ``agg_*`` target (posterior or its one-hot label), else None."""
    for m in AGG_TARGETS:
        if target in (AGG_TARGETS[m], AGG_ONEHOT_TARGETS[m]):
            return m
    return None


def require_target(arrays: SplitArrays, target: str, where: str = "store") -> None:
    """DataError (one line, how to get it) when the split cannot serve ``target``: an ``agg_*``
    target of an aggregator the store was not prepared with."""
    m = _aggregator_of(TARGET_ALIASES.get(target, target))
    if m is not None and AGG_TARGETS[m] not in arrays.aggregated:
        raise DataError(f"{where}: no {AGG_TARGETS[m]} target in the store (split {arrays.name}); prepare "
                        f"with aggregators={m} (lczldl data prepare, or study.prepare.aggregators)",
                        params=("aggregators",))


def aggregators_needed(targets: Sequence[str]) -> list[str]:
    """The crowd-kit aggregators whose posteriors ``targets`` need (``agg_*`` targets), in order."""
    found = [_aggregator_of(TARGET_ALIASES.get(t, t)) for t in targets]
    return [m for m in AGG_TARGETS if m in found]


def require_targets(store: Path | Store, targets: Sequence[str]) -> None:
    """:func:`require_target` on the train split of ``store`` (a folder or an open store) for each
    of ``targets``; a folder is opened only when one of them is an aggregator's (the others every
    store serves)."""
    need = [t for t in targets if _aggregator_of(TARGET_ALIASES.get(t, t)) is not None]
    if need:
        opened = store if isinstance(store, Store) else open_store(store)
        arrays = opened.split("train")
        for t in need:
            require_target(arrays, t, str(opened.path))


def make_targets(arrays: SplitArrays, target: str, eps: float = 0.1) -> np.ndarray:
    """(N, 10) float32 target of a regime for one split.

    onehot | onehot_ls (1-eps) y + eps/10 | onehot_ls17 (the seed's 17-column quirk) |
    distribution | distribution_ls (1-eps) d + eps/10 | dawid_skene | agg_<method> (crowd-kit
    posterior) | agg_<method>_onehot (one-hot of its argmax, ties to the lower class).
    """
    target = TARGET_ALIASES.get(target, target)
    m = _aggregator_of(target)
    if m is not None:
        require_target(arrays, target)
        post = np.asarray(arrays.aggregated[AGG_TARGETS[m]], dtype=np.float32)
        return post.copy() if target == AGG_TARGETS[m] else one_hot(post.argmax(axis=1), N_URBAN)
    label = np.asarray(arrays.label)
    if target == "onehot":
        return one_hot(label, N_URBAN)
    if target == "onehot_ls":
        return smooth_one_hot(label, eps, N_URBAN)
    if target == "onehot_ls17":
        return smooth_one_hot(label, eps, N_URBAN, compat_17=True)
    if target == "distribution":
        return np.array(arrays.distribution, dtype=np.float32)
    if target == "distribution_ls":
        return smooth_distribution(np.asarray(arrays.distribution), eps)
    if target == "dawid_skene":
        return np.array(arrays.dawid_skene, dtype=np.float32)
    raise DataError(f"unknown target '{target}'; use one of {', '.join(TARGETS)}")


class LCZDataset:
    """Map-style torch dataset over one split of a store.

    ``ds[i]`` -> sample dict: ``image`` (C, 32, 32) float32 reflectance, ``label`` int64 class
    index 0..9, ``target`` (10,) float32, ``index`` int64 row in the split.
    ``ds[rows]`` (array / list of indices) -> the batch dict of the same keys with a leading batch
    dimension, read in one go (the fast path; see ``datamodule.EpochBatchSampler``).
    ``ds.__getitems__(rows)`` -> list of sample dicts (torch's batched fetch for a plain DataLoader).
    """

    def __init__(self, store: Path | Store, split: str, *, bands: Sequence[str] | None = None,
                 target: str = "onehot", label_smoothing: float = 0.1) -> None:
        self.store = store if isinstance(store, Store) else open_store(store)
        self.split = split
        self.arrays = self.store.split(split)
        self.band_idx = band_indices(bands)
        self.bands = [BANDS[i] for i in self.band_idx]
        self.target_name = TARGET_ALIASES.get(target, target)
        self.targets = make_targets(self.arrays, self.target_name, label_smoothing)
        self.labels = np.asarray(self.arrays.label, dtype=np.int64)

    def __len__(self) -> int:
        return self.arrays.n

    def images(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """(n,) rows -> (n, C, 32, 32) float32 reflectance of the selected bands."""
        raw = self.arrays.image.read(rows)
        if self.band_idx != list(range(raw.shape[1])):
            raw = raw[:, self.band_idx]
        return np.divide(raw, np.float32(REFLECTANCE_SCALE), dtype=np.float32)

    def _rows(self, index) -> np.ndarray:
        rows = np.asarray(index, dtype=np.int64).reshape(-1)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"index out of range 0..{len(self) - 1}")
        return rows

    def __getitem__(self, index):
        import torch

        if isinstance(index, (int, np.integer)) or (isinstance(index, np.ndarray) and index.ndim == 0):
            i = int(index)
            if i < 0:
                i += len(self)
            if not 0 <= i < len(self):
                raise IndexError(f"index {int(index)} out of range 0..{len(self) - 1}")
            return {"image": torch.from_numpy(self.images([i])[0]),
                    "label": torch.tensor(int(self.labels[i]), dtype=torch.int64),
                    "target": torch.from_numpy(self.targets[i].copy()),
                    "index": torch.tensor(i, dtype=torch.int64)}
        if isinstance(index, torch.Tensor):
            index = index.numpy()
        rows = self._rows(index)
        return {"image": torch.from_numpy(self.images(rows)),
                "label": torch.from_numpy(self.labels[rows]),
                "target": torch.from_numpy(self.targets[rows]),
                "index": torch.from_numpy(rows.copy())}

    def __getitems__(self, indices: Sequence[int]) -> list[dict]:
        """Batched fetch for torch's DataLoader (auto-collation): one read, a list of sample dicts."""
        batch = self[np.asarray(indices, dtype=np.int64)]
        return [{k: v[j] for k, v in batch.items()} for j in range(len(batch["index"]))]
