"""Provenance helpers shared by every writer of reproducible outputs.

``versions()`` records the package versions of a run, ``file_sha256`` checksums inputs (e.g. a
store's ``manifest.json``), and ``atomic_write_text`` / ``atomic_write_json`` never leave a
half-written file: they write a temporary file in the same folder and ``os.replace`` it.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

_PACKAGES = ("torch", "lightning", "numpy", "scipy", "h5py", "pydantic", "torchmetrics")


def versions() -> dict[str, str]:
    """Versions of python, lczldl and the installed scientific packages (missing ones omitted)."""
    from lczldl import __version__

    out = {"python": platform.python_version(), "lczldl": __version__}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes (read in 1 MiB chunks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Atomically write UTF-8 ``text`` to ``path`` (see :func:`atomic_write_bytes`)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Atomically write ``obj`` as indented JSON (non-JSON values such as Paths via ``str``)."""
    return atomic_write_text(path, json.dumps(obj, indent=2, default=str) + "\n")
