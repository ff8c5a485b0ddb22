"""Operating-system failures (a full disk, an --out that cannot be written) end in one line naming
the path and the cause, exit 2, with nothing left behind, for ``data prepare`` and ``data synth``.

The full disk is simulated by making a write fail with ENOSPC (a real small tmpfs behaves the same
way, see docs/study.md); the unwritable --out is a path below a regular file, which fails for
every user, root included, and a read-only folder where the tests do not run as root."""

from __future__ import annotations

import errno
import os

import pytest

from lczldl.cli.main import main
from lczldl.data import prepare_pixels, synth

from .test_prepare import make_raw


def _one_line_error(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def _disk_full_after(n_calls: int, real):
    calls = []

    def fn(*args, **kwargs):
        calls.append(1)
        if len(calls) >= n_calls:
            raise OSError(errno.ENOSPC, "No space left on device")  # as a write(2) reports it: no path
        return real(*args, **kwargs)
    return fn


def test_prepare_on_a_full_disk(tmp_path, capsys, monkeypatch):
    raw = make_raw(tmp_path / "raw")
    out = tmp_path / "new" / "store"
    monkeypatch.setattr(prepare_pixels, "to_uint16", _disk_full_after(3, prepare_pixels.to_uint16))
    line = _one_line_error(["data", "prepare", "--raw", str(raw), "--out", str(out)], capsys)
    assert line == f"error: {out}: No space left on device; free some space or choose another --out"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]      # no store, temp or parent folder


def test_synth_on_a_full_disk(tmp_path, capsys, monkeypatch):
    out = tmp_path / "twin"
    monkeypatch.setattr(synth, "city_patches", _disk_full_after(5, synth.city_patches))
    line = _one_line_error(["data", "synth", "--out", str(out), "--size", "tiny"], capsys)
    assert line.startswith(f"error: {out}/") and line.endswith(
        ": No space left on device; free some space or choose another --out")
    assert list(tmp_path.iterdir()) == []                              # no file, no temp, no --out


def test_synth_into_an_existing_folder_keeps_it_and_its_files(tmp_path, capsys, monkeypatch):
    out = tmp_path / "twin"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    monkeypatch.setattr(synth, "city_patches", _disk_full_after(5, synth.city_patches))
    _one_line_error(["data", "synth", "--out", str(out), "--size", "tiny"], capsys)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize("command", ["prepare", "synth"])
def test_out_below_a_file(tmp_path, capsys, command):
    raw = make_raw(tmp_path / "raw")
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    out = blocker / "sub"
    argv = (["data", "prepare", "--raw", str(raw), "--out", str(out)] if command == "prepare"
            else ["data", "synth", "--out", str(out), "--size", "tiny"])
    line = _one_line_error(argv, capsys)
    assert f"error: {blocker}" in line and ("Not a directory" in line or "File exists" in line)
    assert line.endswith("choose another path")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "raw"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only folder")
@pytest.mark.parametrize("command", ["prepare", "synth"])
def test_out_in_a_read_only_folder(tmp_path, capsys, command):
    raw = make_raw(tmp_path / "raw")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    out = ro / "out"
    argv = (["data", "prepare", "--raw", str(raw), "--out", str(out)] if command == "prepare"
            else ["data", "synth", "--out", str(out), "--size", "tiny"])
    try:
        line = _one_line_error(argv, capsys)
        assert "Permission denied" in line and str(ro) in line
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)
