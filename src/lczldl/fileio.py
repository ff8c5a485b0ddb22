"""Owns how lczldl writes and checksums files: atomic writes (temp + fsync + rename), strict JSON
(NaN / inf written as null), streaming sha256. Every writer of a final-named file goes through here."""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

#: bytes read per step when checksumming (files are streamed, never read whole)
CHUNK_BYTES = 1 << 20


def json_safe(obj: Any) -> Any:
    """``obj`` with NaN / inf floats as None, numpy scalars and arrays as Python values, tuples as
    lists and Paths as strings, so that strict JSON can encode it."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist") and not isinstance(obj, str | bytes):  # numpy scalar or array
        return json_safe(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def dumps_json(obj: Any) -> str:
    """Strict JSON text (NaN / inf -> null), indented, keys in insertion order, newline-terminated."""
    return json.dumps(json_safe(obj), indent=2, allow_nan=False, default=str) + "\n"


def os_error_at(exc: OSError, path: str | Path) -> OSError:
    """``exc`` naming ``path`` when it names no file (writes through an open handle and h5py leave
    the name out), with the plain cause for its errno; ``exc`` itself when it already names one."""
    if exc.filename is not None:
        return exc
    cause = os.strerror(exc.errno) if exc.errno else (exc.strerror or str(exc))
    return OSError(exc.errno, cause, str(path))  # OSError(errno, ...) picks the errno's subclass


def _umask() -> int:
    """The process umask (read by setting it and setting it back, once, at import)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: permission bits of the files written here: what ``open(path, "w")`` gives under the umask
_FILE_MODE = 0o666 & ~_umask()


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder, fsync, ``os.replace``.

    The parent folder is created if needed; on any failure the temporary file is removed and the
    final name is untouched (it holds either the old complete file or nothing)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _FILE_MODE)  # mkstemp makes 0600; the result reads like any file open() writes
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise os_error_at(exc, path) from exc
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Atomically write UTF-8 ``text`` to ``path`` (see :func:`atomic_write_bytes`)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Atomically write ``obj`` as strict, indented JSON (see :func:`dumps_json`)."""
    return atomic_write_text(path, dumps_json(obj))


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, streamed in :data:`CHUNK_BYTES` blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK_BYTES):
            h.update(block)
    return h.hexdigest()
