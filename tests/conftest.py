"""Fixtures shared by the test folders."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def store(tmp_path):
    """A folder that passes as a prepared store (a manifest with the format tag and version) and
    holds nothing else: enough for the study's bookkeeping with fake units."""
    s = tmp_path / "store"
    s.mkdir()
    (s / "manifest.json").write_text(json.dumps({"format": "lczldl-store", "version": 1}))
    return s
