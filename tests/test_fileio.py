"""Atomic writers: permissions like open() and nothing half-written."""

from __future__ import annotations

import json
import stat

import pytest

from lczldl.fileio import (
    atomic_folder,
    atomic_path,
    atomic_paths,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    remove_temporaries,
)


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


def _plain_mode(folder) -> int:
    plain = folder / "plain.bin"
    with open(plain, "wb") as f:             # what open() gives under this process's umask
        f.write(b"x")
    mode = stat.S_IMODE(plain.stat().st_mode)
    plain.unlink()
    return mode


def test_atomic_path_renames_a_complete_file_with_the_mode_open_gives(tmp_path):
    mode = _plain_mode(tmp_path)
    final = tmp_path / "sub" / "model.pt"      # the parent folder is made
    with atomic_path(final) as tmp:
        assert tmp.parent == final.parent and tmp.name.startswith(".model.pt.") and tmp.name.endswith(".tmp")
        assert not final.exists()               # nothing under the final name while writing
        with open(tmp, "wb") as f:              # any writer that opens the path (torch.save does)
            f.write(b"complete")
    assert final.read_bytes() == b"complete"
    assert stat.S_IMODE(final.stat().st_mode) == mode
    assert sorted(p.name for p in final.parent.iterdir()) == ["model.pt"]


def test_atomic_path_suffix_keeps_the_format_for_writers_that_read_it(tmp_path):
    np = pytest.importorskip("numpy")
    with atomic_path(tmp_path / "block.npz", suffix=".npz") as tmp:
        assert tmp.suffix == ".npz"
        np.savez(tmp, a=np.arange(3))           # np.savez appends .npz to any other name
    with np.load(tmp_path / "block.npz") as z:
        assert z["a"].tolist() == [0, 1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["block.npz"]


def test_atomic_path_failure_leaves_no_temporary_and_no_final_file(tmp_path):
    final = tmp_path / "last.ckpt"
    with pytest.raises(RuntimeError, match="killed"):
        with atomic_path(final) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed while writing")
    assert list(tmp_path.iterdir()) == []
    final.write_bytes(b"old")                   # an old file is kept as it was
    with pytest.raises(RuntimeError):
        with atomic_path(final) as tmp:
            tmp.write_bytes(b"half of the new one")
            raise RuntimeError("killed")
    assert final.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_atomic_path_os_error_names_the_final_file(tmp_path):
    final = tmp_path / "map.tif"
    with pytest.raises(OSError) as exc:
        with atomic_path(final) as tmp:
            raise OSError(28, "No space left on device", str(tmp))
    assert exc.value.filename == str(final) and exc.value.errno == 28
    assert list(tmp_path.iterdir()) == []


def test_atomic_paths_appear_together_or_not_at_all(tmp_path):
    names = [tmp_path / n for n in ("a.tif", "b.tif", "c.tif")]
    with pytest.raises(ValueError):
        with atomic_paths(names) as tmp:
            for p in names:
                tmp[p].write_text(p.name)
            raise ValueError("no data")
    assert list(tmp_path.iterdir()) == []
    with atomic_paths(names) as tmp:
        assert list(tmp) == names
        for p in names:
            tmp[p].write_text(p.name)
            assert not p.exists()
    assert [p.read_text() for p in names] == ["a.tif", "b.tif", "c.tif"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tif", "b.tif", "c.tif"]


def test_remove_temporaries_removes_a_killed_writers_files_only(tmp_path):
    final = tmp_path / "lcz.tif"
    final.write_text("map")
    left = [tmp_path / ".lcz.tif.k2j3h4a1.tmp", tmp_path / ".lcz.tif.abcdefgh.tmp.png"]
    keep = [tmp_path / ".lcz.tiff.abcdefgh.tmp", tmp_path / "lcz.tif.tmp", tmp_path / ".other.tif.abcdefgh.tmp"]
    for p in left + keep:
        p.write_text("x")
    remove_temporaries(final)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in [final, *keep])


def test_atomic_folder_replaces_the_old_folder_only_when_complete(tmp_path):
    out = tmp_path / "store"
    plain = tmp_path / "plain"
    plain.mkdir()                               # what mkdir gives under this process's umask
    with atomic_folder(out, prefix="store.tmp-") as tmp:
        assert tmp.name.startswith("store.tmp-") and not out.exists()
        assert stat.S_IMODE(tmp.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
        (tmp / "manifest.json").write_text("1")
    assert (out / "manifest.json").read_text() == "1"
    with pytest.raises(OSError):
        with atomic_folder(out, prefix="store.tmp-") as tmp:
            (tmp / "manifest.json").write_text("2")
            raise OSError(28, "No space left on device")
    assert (out / "manifest.json").read_text() == "1"       # the old store is left as it was
    with atomic_folder(out, prefix="store.tmp-") as tmp:
        (tmp / "manifest.json").write_text("3")
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json"] and (out / "manifest.json").read_text() == "3"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain", "store"]      # no temporary left
