"""prepare_store: round trip against the raw files, manifest, drops, idempotency, atomicity, bad input."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from lczldl.config import PrepareConfig
from lczldl.constants import ALL_CITIES
from lczldl.data import prepare_pixels as pixels
from lczldl.data.labels import build_labels, pad_votes
from lczldl.data.prepare import is_raw_vote_folder, prepare_store
from lczldl.data.store import is_prepared_store
from lczldl.distributions import ENTROPY_BIN_EDGES
from lczldl.errors import DataError

N = 24
CITIES = {"amsterdam": False, "berlin": False, "madrid": False, "munich": False,
          "nairobi": True, "mumbai": True}


def _write_city_file(path: Path, votes: np.ndarray, original: np.ndarray | None, pixels: np.ndarray) -> None:
    label = votes if original is None else np.concatenate([votes, original[:, None]], axis=1)
    with h5py.File(path, "w") as f:
        f["sen2"] = pixels
        f["label"] = label


def make_raw(root: Path, seed: int = 0, nan_at: tuple[str, int] | None = None,
             pixels_edit=None) -> Path:
    """Six cities of N rows: urban votes only, except 3 rows made to be dropped (see below)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for city, addon in CITIES.items():
        truth = rng.integers(1, 11, N)
        k = 5 if addon else 11
        votes = np.where(rng.random((N, k)) < 0.7, truth[:, None], rng.integers(1, 11, (N, k)))
        votes[rng.random((N, k)) < 0.1] = 0                              # missing votes
        original = None if addon else truth.copy()
        if city == "amsterdam":
            votes[0] = 0                       # no vote at all -> tie -> original 3: no urban votes
            original[0] = 3
            votes[1] = 12                      # all LCZ B: non-urban majority
        if city == "berlin":
            votes[2] = [14] * 6 + [2] * 5      # majority LCZ D (6 vs 5): non-urban majority
        # pixels are exact multiples of 1e-4 (as DN / 10000 is), float64 like the release
        px = rng.integers(0, 6000, (N, 32, 32, 10)) / 10000.0
        if nan_at and nan_at[0] == city:
            px[nan_at[1], 3, 4, 5] = np.nan
        if pixels_edit:
            pixels_edit(city, px)
        _write_city_file(root / (f"{city}_addon.h5" if addon else f"{city}.h5"), votes, original, px)
    return root


def raw_city(root: Path, city: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    addon = CITIES[city]
    with h5py.File(root / (f"{city}_addon.h5" if addon else f"{city}.h5"), "r") as f:
        px, label = f["sen2"][()], f["label"][()]
    if addon:
        return px, label, np.full(len(label), 7)
    return px, label[:, :11], label[:, 11]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> tuple[Path, Path, dict]:
    root = tmp_path_factory.mktemp("prep")
    raw = make_raw(root / "raw")
    manifest = prepare_store(raw, root / "store", progress=False)
    return raw, root / "store", manifest


def load_split(store: Path, split: str) -> dict[str, np.ndarray]:
    return {p.stem: np.load(p) for p in (store / split).glob("*.npy")}


def test_round_trip_pixels_labels_and_coverage(prepared):
    raw, store, manifest = prepared
    seen: dict[str, list[int]] = {c: [] for c in CITIES}
    for split in ("train", "val", "test"):
        a = load_split(store, split)
        n = manifest["splits"][split]["n"]
        assert a["image"].shape == (n, 10, 32, 32) and a["image"].dtype == np.uint16
        assert all(len(v) == n for v in a.values())
        for c_idx in np.unique(a["city"]):
            city = manifest["cities"][c_idx]
            sel = np.nonzero(a["city"] == c_idx)[0]
            rows = a["row"][sel]
            seen[city] += rows.tolist()
            px, votes, original = raw_city(raw, city)
            ref = build_labels(votes, original)
            # pixels: (N,32,32,10) reflectance -> (N,10,32,32), within half a quantisation step
            back = a["image"][sel].astype(np.float64) / 10000
            assert np.abs(back - px[rows].transpose(0, 3, 1, 2)).max() <= 0.5e-4 + 1e-12
            np.testing.assert_array_equal(a["label"][sel], ref.label[rows])
            np.testing.assert_allclose(a["distribution"][sel], ref.distribution[rows], rtol=0, atol=1e-7)
            np.testing.assert_allclose(a["vote_entropy"][sel], ref.entropy[rows], atol=1e-6)
            np.testing.assert_array_equal(a["votes"][sel], pad_votes(votes)[rows])
            np.testing.assert_array_equal(a["original"][sel], original[rows])
        assert a["votes"].dtype == np.int8 and a["votes"].shape[1] == 11
        assert a["label"].dtype == np.int64 and a["city"].dtype == np.int16
        assert a["row"].dtype == np.int64                    # as documented (docs/architecture.md)
        np.testing.assert_allclose(a["dawid_skene"].sum(1), 1, atol=1e-5)
        np.testing.assert_allclose(a["distribution"].sum(1), 1, atol=1e-6)
    # every row kept exactly once; the three prepared drops are absent
    dropped_rows = {"amsterdam": {0, 1}, "berlin": {2}}
    for city, rows in seen.items():
        assert sorted(rows) == sorted(set(range(N)) - dropped_rows.get(city, set()))


def test_manifest_counts_and_statistics(prepared):
    raw, store, manifest = prepared
    assert manifest == json.loads((store / "manifest.json").read_text())
    assert manifest["format"] == "lczldl-store" and manifest["version"] == 1
    assert manifest["dropped"] == {"non_urban_majority": 2, "no_urban_votes": 1, "nonfinite_pixels": 0}
    assert manifest["dropped_by_city"]["amsterdam"]["no_urban_votes"] == 1
    assert sum(s["n"] for s in manifest["splits"].values()) == len(CITIES) * N - 3
    # authors' split: train cities whole, held-out cities shared by val and test
    assert set(manifest["splits"]["train"]["cities"]) == {"amsterdam", "berlin", "nairobi"}
    assert set(manifest["splits"]["val"]["cities"]) | set(manifest["splits"]["test"]["cities"]) == \
        {"madrid", "munich", "mumbai"}
    assert manifest["splits"]["val"]["n"] + manifest["splits"]["test"]["n"] == 3 * N
    assert abs(manifest["splits"]["val"]["n"] - manifest["splits"]["test"]["n"]) <= 1
    inner = np.asarray(ENTROPY_BIN_EDGES[1:-1])
    for split, info in manifest["splits"].items():
        a = load_split(store, split)
        assert info["class_counts"] == [int((a["label"] == k).sum()) for k in range(10)]
        ent = a["vote_entropy"].astype(np.float64)
        assert info["entropy_bins"] == np.bincount(np.digitize(ent, inner), minlength=6).tolist()
        assert info["entropy_shares"] == pytest.approx(np.array(info["entropy_bins"]) / info["n"], abs=1e-6)
        assert sum(info["cities"].values()) == info["n"]
    train = load_split(store, "train")["image"].astype(np.float64) / 10000
    np.testing.assert_allclose(manifest["band_mean"], train.mean(axis=(0, 2, 3)), atol=1e-6)
    np.testing.assert_allclose(manifest["band_std"], train.std(axis=(0, 2, 3)), atol=1e-6)
    for name, digest in manifest["sources"].items():
        assert hashlib.sha256((raw / name).read_bytes()).hexdigest() == digest
    assert len(manifest["sources"]) == len(CITIES)
    cfg = manifest["config"]
    assert (cfg["split"], cfg["seed"], cfg["smoothing"]) == ("authors", 42, 0.0)
    assert "all kept rows" in cfg["dawid_skene"]
    assert manifest["cities"] == [c for c in ALL_CITIES if c in CITIES]
    assert manifest["package_version"] and manifest["created"] and manifest["clipped_pixel_values"] == 0
    # every raw row, dropped ones included: the no-vote row is left out of the entropy bins, the
    # two non-urban majorities (all LCZ B; 6 x LCZ D vs 5 x LCZ 2) are counted
    rv = manifest["release_votes"]
    assert rv["rows"] == len(CITIES) * N and rv["rows_without_votes"] == 1
    assert sum(rv["entropy_bins"]["non_urban"]) == 2
    assert sum(rv["entropy_bins"]["urban"]) == len(CITIES) * N - 3


def test_manifest_release_votes_equal_a_computation_on_the_raw_twin(tiny_twin):
    raw, store, want = tiny_twin
    rv = json.loads((store / "manifest.json").read_text())["release_votes"]
    assert want["rows_without_votes"] > 0 and sum(want["entropy_bins"]["non_urban"]) > 0   # both cases occur
    assert rv["rows"] == want["rows"] and rv["rows_without_votes"] == want["rows_without_votes"]
    assert rv["entropy_bins"] == want["entropy_bins"]
    np.testing.assert_array_equal(rv["voting_counts"], want["voting_counts"])
    assert rv["note"] == "every row of the raw files, before the urban filter"
    # more than the store holds: its rows are the urban ones with an urban vote
    kept = sum(s["n"] for s in json.loads((store / "manifest.json").read_text())["splits"].values())
    assert kept < sum(rv["entropy_bins"]["urban"]) + sum(rv["entropy_bins"]["non_urban"])


def test_helpers_recognise_folders(prepared, tmp_path):
    raw, store, _ = prepared
    assert is_prepared_store(store) and not is_prepared_store(raw)
    assert is_raw_vote_folder(raw) and not is_raw_vote_folder(store)
    (tmp_path / "notes.h5").write_bytes(b"x")
    assert not is_raw_vote_folder(tmp_path)


def test_rerun_is_idempotent_and_changed_settings_replace(tmp_path):
    raw = make_raw(tmp_path / "raw")
    out = tmp_path / "store"
    m1 = prepare_store(raw, out, progress=False)
    files = sorted(p for p in out.rglob("*") if p.is_file())
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in files}
    m2 = prepare_store(raw, out, progress=False)
    assert m2 == m1
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in files} == before
    # a store prepared before the manifest had release_votes: a rerun leaves it as it is (no-op;
    # its manifest's sha256 is the data_checksum of the runs trained on it), the report falls back
    old = {k: v for k, v in m1.items() if k != "release_votes"}
    (out / "manifest.json").write_text(json.dumps(old))
    files_old = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in files}
    assert prepare_store(raw, out, progress=False) == old
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in files} == files_old
    m3 = prepare_store(raw, out, PrepareConfig(split="cities", train_cities=["amsterdam", "berlin"],
                                               val_cities=["madrid", "mumbai"], test_cities=["munich", "nairobi"]),
                       progress=False)
    assert m3["config"]["split"] == "cities"
    assert m3["splits"]["test"]["cities"] == {"munich": N, "nairobi": N}
    assert json.loads((out / "manifest.json").read_text()) == m3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw", "store"]     # no temp folders left


def test_error_midway_leaves_nothing(tmp_path, monkeypatch):
    raw = make_raw(tmp_path / "raw")
    out = tmp_path / "store"
    real, calls = pixels.to_uint16, []

    def failing(px):
        calls.append(1)
        if len(calls) == 4:
            raise RuntimeError("disk full")
        return real(px)

    monkeypatch.setattr(pixels, "to_uint16", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        prepare_store(raw, out, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]
    # an existing store survives a failed replacement untouched
    monkeypatch.setattr(pixels, "to_uint16", real)
    prepare_store(raw, out, progress=False)
    old = (out / "manifest.json").read_bytes()
    calls.clear()
    monkeypatch.setattr(pixels, "to_uint16", failing)
    with pytest.raises(RuntimeError):
        prepare_store(raw, out, PrepareConfig(seed=7), progress=False)
    assert (out / "manifest.json").read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw", "store"]


def test_nonfinite_pixels_error_or_drop(tmp_path):
    raw = make_raw(tmp_path / "raw", nan_at=("munich", 5))
    with pytest.raises(DataError, match=r"munich\.h5.*non-finite.*1 of 24 rows.*; pass drop_nonfinite=True to"):
        prepare_store(raw, tmp_path / "store", progress=False)
    assert not (tmp_path / "store").exists()
    m = prepare_store(raw, tmp_path / "store", PrepareConfig(drop_nonfinite=True), progress=False)
    assert m["dropped"]["nonfinite_pixels"] == 1
    assert sum(s["n"] for s in m["splits"].values()) == len(CITIES) * N - 4
    munich = m["cities"].index("munich")
    rows = np.concatenate([load_split(tmp_path / "store", s)["row"][load_split(tmp_path / "store", s)["city"] == munich]
                           for s in ("val", "test")])
    assert sorted(rows) == [r for r in range(N) if r != 5]


def test_out_of_range_pixels_are_clipped_and_counted(tmp_path):
    def edit(city, px):
        if city == "amsterdam":
            px[3, 0, 0, 0] = -0.01
            px[4, 0, 0, 1] = 7.0

    raw = make_raw(tmp_path / "raw", pixels_edit=edit)
    m = prepare_store(raw, tmp_path / "store", progress=False)
    assert m["clipped_pixel_values"] == 2 and m["splits"]["train"]["clipped_pixel_values"] == 2
    a = load_split(tmp_path / "store", "train")
    ams = np.nonzero(a["city"] == m["cities"].index("amsterdam"))[0]
    r = dict(zip(a["row"][ams].tolist(), ams.tolist(), strict=True))
    assert a["image"][r[3], 0, 0, 0] == 0 and a["image"][r[4], 1, 0, 0] == 65535


def test_smoothing_is_stored_and_entropy_stays_raw(tmp_path):
    raw = make_raw(tmp_path / "raw")
    prepare_store(raw, tmp_path / "store", PrepareConfig(smoothing=0.08), progress=False)
    a = load_split(tmp_path / "store", "train")
    sel = a["city"] == ALL_CITIES.index("berlin")
    _, votes, original = raw_city(raw, "berlin")
    rows = a["row"][sel]
    np.testing.assert_allclose(a["distribution"][sel], build_labels(votes, original, smoothing=0.08).distribution[rows],
                               atol=1e-7)
    np.testing.assert_allclose(a["vote_entropy"][sel], build_labels(votes, original).entropy[rows], atol=1e-6)
    assert (a["distribution"][sel] > 0).all()


@pytest.mark.parametrize("case", ["empty", "store_as_raw", "foreign_out", "out_is_raw"])
def test_bad_input(tmp_path, prepared, case):
    raw = make_raw(tmp_path / "raw")
    out = tmp_path / "out"
    if case == "empty":
        raw = tmp_path / "empty"
        raw.mkdir()
    elif case == "store_as_raw":
        raw = prepared[1]
    elif case == "foreign_out":
        out.mkdir()
        (out / "thesis.tex").write_text("precious")
    elif case == "out_is_raw":
        out = raw
    with pytest.raises(DataError) as err:
        prepare_store(raw, out, progress=False)
    assert "\n" not in str(err.value)
    if case == "foreign_out":
        assert (out / "thesis.tex").read_text() == "precious"
    if case == "out_is_raw":
        assert is_raw_vote_folder(raw) and len(list(raw.glob("*.h5"))) == len(CITIES)
    if case == "empty":
        assert not out.exists()


def test_cli_prepare_bad_raw_exits_2_with_one_line(tmp_path, capsys):
    from lczldl.cli.main import main

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SystemExit) as exc:
        main(["data", "prepare", "--raw", str(empty), "--out", str(tmp_path / "out")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1 and str(empty) in err
    assert not (tmp_path / "out").exists()


def test_cli_prepare_writes_store(tmp_path, capsys):
    from lczldl.cli.main import main

    raw = make_raw(tmp_path / "raw")
    with pytest.raises(SystemExit) as exc:
        main(["data", "prepare", "--raw", str(raw), "--out", str(tmp_path / "store"), "--split", "random",
              "--seed", "3"])
        raise SystemExit(0)
    assert exc.value.code in (0, None)
    m = json.loads((tmp_path / "store" / "manifest.json").read_text())
    assert m["config"]["split"] == "random" and m["config"]["seed"] == 3
