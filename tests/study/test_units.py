"""Grid parsing, thread shares, the unit DAG and markers (pure bookkeeping, no processes)."""

from __future__ import annotations

import json

import pytest

from lczldl.config import load_config, parse_regimes, parse_seeds
from lczldl.errors import ConfigError
from lczldl.fileio import atomic_write_json
from lczldl.layout import marker_path
from lczldl.regimes import PAPER_REGIMES
from lczldl.study.units import build_units, fingerprint, settled_marker, thread_share


@pytest.mark.parametrize("text, expected", [
    ("0-4", [0, 1, 2, 3, 4]),
    ("0,2", [0, 2]),
    ("3", [3]),
    (" 0 - 2 , 7 ", [0, 1, 2, 7]),
    ("2,0,2", [2, 0]),
    ("5-5", [5]),
    (3, [3]),
    ([1, 4], [1, 4]),
])
def test_parse_seeds(text, expected):
    assert parse_seeds(text) == expected


@pytest.mark.parametrize("text", ["", "a", "4-1", "0,,1", "-1", "1-", "0.5"])
def test_parse_seeds_rejects(text):
    with pytest.raises(ValueError, match="seed|range|item"):
        parse_seeds(text)
    # typed on the command line: a one-line ConfigError naming the option and the value
    with pytest.raises(ConfigError) as e:
        load_config(None, None, flags={"study.seeds": "--seeds"}, **{"study.seeds": text})
    assert str(e.value).startswith(f"--seeds {text}: ") and "\n" not in str(e.value)


def test_parse_regimes():
    assert load_config(None, None, **{"study.workers": 1}).study.regimes == list(PAPER_REGIMES)
    assert parse_regimes("dist, dawid_skene") == ["dist", "dawid_skene"]
    assert parse_regimes(["onehot", "onehot"]) == ["onehot"]
    with pytest.raises(ValueError, match="unknown softmax"):
        parse_regimes("dist,softmax")
    with pytest.raises(ValueError):
        parse_regimes(" , ")


@pytest.mark.parametrize("workers, cores, expected", [(1, 2, 2), (2, 2, 1), (3, 2, 1), (2, 16, 8), (3, 16, 5)])
def test_thread_share(workers, cores, expected):
    assert thread_share(workers, cores) == expected


def test_thread_share_rejects_zero_workers():
    with pytest.raises(ConfigError):
        thread_share(0, 4)


def test_build_units_dag():
    units = build_units(["onehot", "dist"], [0, 1, 2])
    ids = [u.id for u in units]
    assert len(units) == 2 * 3 * 3 + 2 and len(set(ids)) == len(ids)
    by = {u.id: u for u in units}
    assert by["evaluate-dist-seed2"].deps == ("train-dist-seed2",)
    assert by["calibrate-dist-seed2"].deps == ("evaluate-dist-seed2",)
    assert set(by["aggregate"].deps) == {f"calibrate-{r}-seed{s}" for r in ("onehot", "dist") for s in range(3)}
    assert by["aggregate"].soft and not by["report"].soft and by["report"].deps == ("aggregate",)
    # every dependency comes earlier in the list (a runnable order)
    pos = {u.id: i for i, u in enumerate(units)}
    assert all(pos[d] < pos[u.id] for u in units for d in u.deps)


def test_marker_roundtrip_and_inputs(tmp_path):
    assert settled_marker(tmp_path, "train-dist-seed0", "abc") is None
    atomic_write_json(marker_path(tmp_path, "train-dist-seed0"), {"status": "done", "inputs": "abc"})
    assert settled_marker(tmp_path, "train-dist-seed0", "abc")["status"] == "done"
    assert settled_marker(tmp_path, "train-dist-seed0", "xyz") is None  # other inputs: not settled
    atomic_write_json(marker_path(tmp_path, "evaluate-dist-seed0"), {"status": "failed", "inputs": "abc"})
    assert settled_marker(tmp_path, "evaluate-dist-seed0", "abc")["status"] == "failed"
    # a half-written marker (not JSON) counts as absent; no temp files are left behind
    marker_path(tmp_path, "calibrate-dist-seed0").write_text('{"status": "do')
    assert settled_marker(tmp_path, "calibrate-dist-seed0", "abc") is None
    assert sorted(p.name for p in (tmp_path / "units").iterdir()) == [
        "calibrate-dist-seed0.json", "evaluate-dist-seed0.json", "train-dist-seed0.json"]
    assert json.loads(marker_path(tmp_path, "train-dist-seed0").read_text())["inputs"] == "abc"


def test_fingerprint_is_order_free_and_sensitive():
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})
