"""Owns reading a store's image.npy: :class:`ImageFile`, row access without mmap (re-exported by
:mod:`lczldl.data.store`, the one reader of a store).

Images: file-backed mmap pages count in the process's resident memory (RSS), so a plain
``np.load(mmap_mode="r")`` would grow to the whole 8 GB of a 400k-sample store over one epoch.
:class:`ImageFile` reads a batch's rows sorted with ``os.preadv`` (one call per run of consecutive
rows) into one buffer; the page cache holds the file, the process does not. (Measured on the 2-core
machine: faster than mmap + periodic ``madvise(MADV_DONTNEED)``, whose page faults and fault-around
cost more than the syscalls.)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lczldl.constants import PATCH_SIZE
from lczldl.errors import DataError


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
