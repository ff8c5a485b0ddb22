"""Owns how lczldl writes and checksums files: atomic writes (temp + fsync + rename), strict JSON
(NaN / inf written as null), streaming sha256. Every writer of a final-named file goes through here.

- :func:`atomic_path`: a temporary name beside a final file for any writer (``open``, ``torch.save``,
  ``np.savez``, GDAL, h5py, matplotlib); renamed onto the final name when the block succeeds,
  removed when it fails. :func:`atomic_paths`: several files that appear together.
- :func:`atomic_write_bytes` / ``_text`` / ``_json``: the same for bytes already in memory.
- :func:`atomic_folder`: a whole folder (the prepared store) filled under a temporary name and
  swapped into place.

Files get the permission bits ``open(path, "w")`` gives under the process's umask, folders those
of ``mkdir``; a final name only ever holds a complete file (the old one or the new one).
"""

from __future__ import annotations

import glob
import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
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


_UMASK = _umask()
#: permission bits of the files written here: what ``open(path, "w")`` gives under the umask
_FILE_MODE = 0o666 & ~_UMASK
#: permission bits of the folders made here: what ``mkdir`` gives under the umask
_DIR_MODE = 0o777 & ~_UMASK


def _fsync(path: Path) -> None:
    """Flush ``path``'s data to the disk (whoever wrote it, through whatever handle)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temporary_name(path: Path, suffix: str) -> tuple[str, str]:
    """(prefix, suffix) of the temporary files of ``path``: ``.NAME.XXXXXXXX.tmp`` + ``suffix``."""
    return f".{path.name}.", f".tmp{suffix}"


@contextmanager
def atomic_path(path: str | Path, *, suffix: str = "") -> Iterator[Path]:
    """A temporary file beside ``path`` for the caller to write; renamed onto ``path`` when the block
    succeeds.

    ``with atomic_path(p) as tmp: torch.save(obj, tmp)``. The temporary file exists (empty, with the
    mode ``open(path, "w")`` gives under the umask) when the block starts, so writers that open it
    for writing keep that mode; the caller must write it completely (an empty file is renamed as it
    is). After the block: fsync, then ``os.replace``. On any exception the temporary file is removed
    and ``path`` is untouched (it holds the old complete file or nothing). ``suffix`` ends the
    temporary name, for writers that pick the format from it (``.npz`` for ``np.savez``, ``.png``
    for matplotlib). The parent folder is created if needed. An OSError naming the temporary file
    is raised naming ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix, end = _temporary_name(path, suffix)
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=end, dir=path.parent)
    tmp = Path(name)
    try:
        try:
            os.fchmod(fd, _FILE_MODE)  # mkstemp makes 0600; the result reads like any file open() writes
        finally:
            os.close(fd)
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.filename is not None and os.fspath(exc.filename) == name:
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_paths(paths: Iterable[str | Path], *, suffix: str = "") -> Iterator[dict[Path, Path]]:
    """:func:`atomic_path` for files that appear together: {final path: temporary path}; every file is
    renamed into place, in the given order, only when the block succeeds (each rename is atomic, the
    group is not); on failure every temporary file is removed and no final name is touched."""
    finals = [Path(p) for p in paths]
    with ExitStack() as stack:
        tmp = {p: stack.enter_context(atomic_path(p, suffix=suffix)) for p in reversed(finals)}
        yield {p: tmp[p] for p in finals}  # exits run in reverse: the renames follow ``paths``


def remove_temporaries(path: str | Path) -> None:
    """Remove the temporary files :func:`atomic_path` left beside ``path`` (a killed writer's)."""
    path = Path(path)
    prefix, end = _temporary_name(path, "")
    for p in path.parent.glob(f"{glob.escape(prefix)}*{end}*"):
        p.unlink(missing_ok=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through :func:`atomic_path` (temporary file in the same folder,
    fsync, ``os.replace``): the parent folder is created if needed; on any failure the temporary
    file is removed and the final name is untouched (it holds either the old complete file or
    nothing)."""
    path = Path(path)
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            f.write(data)
    except OSError as exc:
        raise os_error_at(exc, path) from exc
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Atomically write UTF-8 ``text`` to ``path`` (see :func:`atomic_write_bytes`)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Atomically write ``obj`` as strict, indented JSON (see :func:`dumps_json`)."""
    return atomic_write_text(path, dumps_json(obj))


@contextmanager
def atomic_folder(path: str | Path, *, prefix: str | None = None) -> Iterator[Path]:
    """A new empty folder beside ``path`` for the caller to fill; it takes ``path``'s place when the
    block succeeds.

    The folder has the mode ``mkdir`` gives under the umask. On success a folder already at
    ``path`` is first moved aside (``prefix`` + ``old-`` + random), the new one renamed to ``path``,
    the old one removed; if that rename fails the old folder is put back. On any exception the new
    folder is removed and ``path`` is left as it was. ``prefix`` starts the temporary folders' names
    (default ``.NAME.``), so a caller can find and clean its own after a kill. ``path``'s parent
    must exist.
    """
    path = Path(path)
    prefix = f".{path.name}." if prefix is None else prefix
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=path.parent))
    try:
        os.chmod(tmp, _DIR_MODE)  # mkdtemp makes 0700
        yield tmp
        _swap_folder(tmp, path, f"{prefix}old-")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _swap_folder(new: Path, path: Path, aside_prefix: str) -> None:
    """Rename the folder ``new`` to ``path``, replacing a folder there (put back on failure)."""
    if not path.exists():
        os.replace(new, path)
        return
    aside = Path(tempfile.mkdtemp(prefix=aside_prefix, dir=path.parent))
    os.replace(path, aside / path.name)
    try:
        os.replace(new, path)
    except OSError:
        os.replace(aside / path.name, path)       # put the old folder back
        raise
    finally:
        if not (aside / path.name).exists() or path.exists():
            shutil.rmtree(aside, ignore_errors=True)


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, streamed in :data:`CHUNK_BYTES` blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK_BYTES):
            h.update(block)
    return h.hexdigest()
