"""The one rule for tests that read ../shared (tests/conftest.py): the path when present; when
absent a skip with the reason, or a failure when LCZLDL_REQUIRE_SHARED is set."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_present_file_is_returned_with_or_without_the_requirement(shared_file, tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.h5").write_bytes(b"")
    monkeypatch.setenv("LCZLDL_SHARED_DIR", str(tmp_path))
    monkeypatch.delenv("LCZLDL_REQUIRE_SHARED", raising=False)
    assert shared_file("data/x.h5") == tmp_path / "data" / "x.h5"
    assert shared_file("data") == tmp_path / "data"          # folders count too
    monkeypatch.setenv("LCZLDL_REQUIRE_SHARED", "1")
    assert shared_file("data/x.h5") == tmp_path / "data" / "x.h5"


def test_missing_file_skips_unless_required_then_fails(shared_file, tmp_path, monkeypatch):
    monkeypatch.setenv("LCZLDL_SHARED_DIR", str(tmp_path))
    monkeypatch.delenv("LCZLDL_REQUIRE_SHARED", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"needs \.\./shared/data/y\.h5") as skip:
        shared_file("data/y.h5")
    assert str(tmp_path / "data" / "y.h5") in str(skip.value)
    monkeypatch.setenv("LCZLDL_REQUIRE_SHARED", "0")                 # 0 = not required
    with pytest.raises(pytest.skip.Exception):
        shared_file("data/y.h5")
    monkeypatch.setenv("LCZLDL_REQUIRE_SHARED", "1")
    with pytest.raises(pytest.fail.Exception, match="LCZLDL_REQUIRE_SHARED"):
        shared_file("data/y.h5")


def test_default_root_is_the_repos_sibling_shared(shared_file, monkeypatch):
    monkeypatch.delenv("LCZLDL_SHARED_DIR", raising=False)
    monkeypatch.delenv("LCZLDL_REQUIRE_SHARED", raising=False)
    with pytest.raises(pytest.skip.Exception) as skip:
        shared_file("no/such/file.h5")
    assert str(REPO / ".." / "shared" / "no" / "such" / "file.h5") in str(skip.value)
