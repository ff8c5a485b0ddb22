"""Atomic writers: permissions like open() and nothing half-written."""

from __future__ import annotations

import json
import stat

import pytest

from lczldl.fileio import atomic_write_bytes, atomic_write_json, atomic_write_text


def test_atomic_files_get_the_permissions_open_gives(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")                      # open(..., "w") under this process's umask
    written = atomic_write_text(tmp_path / "atomic.txt", "x")
    assert stat.S_IMODE(written.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = atomic_write_json(tmp_path / "run.json", {"a": 1, "b": float("nan")})
    assert path.read_text() == '{\n  "a": 1,\n  "b": null\n}\n'      # strict JSON: NaN -> null
    with pytest.raises(TypeError):
        atomic_write_bytes(path, "not bytes")              # fails inside the write
    assert json.loads(path.read_text()) == {"a": 1, "b": None}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]
