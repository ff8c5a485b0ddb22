"""Owns the study folder before its units run: which store ``--data`` means (preparing raw votes
into STUDY/store), the lock against a second study process, the run config handed to the
units, the refusal of a changed config, and study.json (the record of every unit's status)."""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from lczldl.config import PrepareConfig
from lczldl.data.prepare import prepare_store
from lczldl.data.readers.so2sat import V2_FILES, V3_VARIANTS
from lczldl.data.store import is_prepared_store
from lczldl.errors import ConfigError, DataError, RunError
from lczldl.fileio import atomic_write_json, atomic_write_text
from lczldl.layout import (
    MANIFEST,
    STUDY_CONFIG,
    STUDY_FORMAT,
    STUDY_INFO,
    STUDY_LOCK,
    STUDY_STORE,
    STUDY_VERSION,
)
from lczldl.study.units import FAILED, SKIPPED


def planned_store(data: Path, study: Path) -> Path:
    """The store the study will use: ``data`` itself when it is a prepared store, STUDY/store when
    it is a folder of raw vote files (prepared later by :func:`resolve_store`). Checks ``data``
    without writing anything; DataError when it is neither."""
    data = Path(data)
    if is_prepared_store(data):
        return data.resolve()
    train = V2_FILES["train"]
    if (data / train).is_file() or any((data / v / train).is_file() for v in V3_VARIANTS):
        raise DataError(f"data={data}: a So2Sat LCZ42 folder; prepare it first with "
                        f"`lczldl data prepare --so2sat {data} --out STORE` and pass the store", params=("data",))
    if not data.is_dir() or not any(data.glob("*.h5")):
        raise DataError(f"data={data}: neither a prepared store ({MANIFEST}) nor a folder of raw "
                        "vote files ({city}.h5); run `lczldl data prepare` or point at the right folder",
                        params=("data",))
    return (Path(study) / STUDY_STORE).resolve()


def resolve_store(data: Path, study: Path, prepare: PrepareConfig, console: Any = None) -> Path:
    """The prepared store for ``data``: itself if it is one, else raw vote files prepared into
    STUDY/store (a no-op when that store is up to date)."""
    store = planned_store(data, study)
    if store == Path(data).resolve():
        return store
    if console is not None:
        console.print(f"preparing raw vote files {data} -> {store} (a no-op when already prepared)")
    prepare_store(Path(data), store, prepare)
    return store


def check_out(study: Path) -> None:
    """The study folder ``study`` must be a folder or a new path."""
    if Path(study).exists() and not Path(study).is_dir():
        raise ConfigError(f"out={study}: exists and is not a folder; choose a folder for the study",
                          params=("out",))


def check_same_config(study: Path, run_config: dict[str, Any], store: Path) -> None:
    """Refuse to continue a study folder that was started with another run config or store."""
    p = Path(study) / STUDY_INFO
    if not p.is_file():
        return
    try:
        old = json.loads(p.read_text())
    except ValueError:
        return
    if old.get("run_config") not in (None, run_config):
        raise ConfigError(f"{p}: this study was started with a different run configuration; rerun "
                          "with the same config or use a new out folder", params=("config", "out"))
    if old.get("store") not in (None, str(store)):
        raise ConfigError(f"{p}: this study was started on store {old.get('store')}; rerun with the "
                          "same data or use a new out folder", params=("data", "out"))


@contextlib.contextmanager
def removed_on_error(study: Path, created: bool) -> Iterator[None]:
    """Remove ``study`` when the block fails and ``created`` (this call made the folder), so a
    study that never started its units leaves nothing behind."""
    try:
        yield
    except BaseException:
        if created:
            shutil.rmtree(study, ignore_errors=True)
        raise


@contextlib.contextmanager
def study_lock(study: Path) -> Iterator[None]:
    """Refuse a second study process on the same folder (the lock dies with its process)."""
    Path(study).mkdir(parents=True, exist_ok=True)
    fh = open(Path(study) / STUDY_LOCK, "a+")  # noqa: SIM115
    try:
        import fcntl

        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            raise RunError(f"{study}: another `lczldl study` is running on this folder; wait for it "
                           "or stop it first") from exc
    except ImportError:  # pragma: no cover - non-POSIX: no lock
        pass
    try:
        yield
    finally:
        fh.close()


def write_run_config(study: Path, run_config: dict[str, Any]) -> Path:
    """STUDY/config.yaml: the run config (sections as written) every train unit gets; rewritten
    only when it differs."""
    path = Path(study) / STUDY_CONFIG
    try:
        same = path.is_file() and yaml.safe_load(path.read_text()) == run_config
    except yaml.YAMLError:
        same = False
    if not same:
        atomic_write_text(path, yaml.safe_dump(run_config, sort_keys=False) if run_config else "{}\n")
    return path


class StudyRecord:
    """study.json: the resolved settings, the grid and every unit's status, rewritten atomically
    on every change. ``created`` survives reruns."""

    def __init__(self, study: Path, **fields: Any) -> None:
        self.path = Path(study) / STUDY_INFO
        now = time.strftime("%Y-%m-%dT%H:%M:%S")
        self.info: dict[str, Any] = {"format": STUDY_FORMAT, "version": STUDY_VERSION, **fields,
                                     "created": now, "status": "running"}
        with contextlib.suppress(ValueError, OSError, AttributeError):
            self.info["created"] = json.loads(self.path.read_text()).get("created", now)

    def write(self, sch: Any, status: str | None = None) -> None:
        """Record the scheduler's state (and a new overall ``status`` if given)."""
        info = self.info
        info["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        if status:
            info["status"] = status
        info["units"] = {uid: {k: v for k, v in s.items() if v is not None} for uid, s in sch.state.items()}
        info["counts"] = sch.counts()
        info["failures"] = [{"id": uid, "log": s["log"], "error": s.get("error")}
                            for uid, s in sch.state.items() if s["status"] == FAILED]
        info["skipped"] = [{"id": uid, "reason": s.get("error")}
                           for uid, s in sch.state.items() if s["status"] == SKIPPED]
        atomic_write_json(self.path, info)
