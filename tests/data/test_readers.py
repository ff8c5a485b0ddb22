"""Readers: vote files (format 1), seed split files (format 2), So2Sat v2/v3 (format 3, committed
fixtures written by tests/resources/so2sat/data.py); every bad input raises a one-line DataError that
names the file, the key and the problem."""

from __future__ import annotations

import hashlib
import importlib.util
import shutil

import h5py
import numpy as np
import pytest

from lczldl.data.readers.seed_splits import read_seed_split
from lczldl.data.readers.so2sat import find_so2sat_files, open_so2sat
from lczldl.data.readers.votes import find_city_files, nonfinite_rows, open_city
from lczldl.errors import DataError, LczldlError

from .conftest import RESOURCES, city_votes, pixels, write_h5


def one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg
    assert isinstance(exc_info.value, LczldlError)
    return msg


# ============================================================================ format 1: vote files
def test_open_city_reads_votes_original_and_lazy_pixels(write_city):
    votes, original = city_votes(6, seed=1), np.array([1, 2, 3, 4, 5, 17])
    sen2 = pixels(6, seed=2)
    p = write_city("berlin", votes, original, sen2=sen2, sen1=np.zeros((6, 32, 32, 8)),
                   img_coord=np.zeros((6, 2)))
    cf = open_city(p)
    assert (cf.city, cf.is_addon, cf.n, cf.n_votes) == ("berlin", False, 6, 11)
    assert (cf.votes == votes).all() and (cf.original == original).all()
    chunk = cf.read_sen2(2, 5)
    assert chunk.dtype == np.float32 and chunk.shape == (3, 32, 32, 10)
    np.testing.assert_array_equal(chunk, sen2[2:5])
    assert cf.sha256() == hashlib.sha256(p.read_bytes()).hexdigest()
    with pytest.raises(ValueError):
        cf.read_sen2(4, 7)


def test_open_addon_has_original_7_and_any_vote_width(write_city):
    votes = city_votes(4, seed=3, width=9)
    cf = open_city(write_city("mumbai_addon", votes))
    assert (cf.city, cf.is_addon, cf.n_votes) == ("mumbai", True, 9)
    assert cf.original.tolist() == [7, 7, 7, 7]
    assert (cf.votes == votes).all()


def test_float_labels_with_integer_values_are_accepted(write_city):
    votes = city_votes(3).astype(np.float64)
    cf = open_city(write_city("paris", votes, np.array([2.0, 3.0, 4.0])))
    assert cf.votes.dtype == np.int64 and cf.original.tolist() == [2, 3, 4]


def test_find_city_files_maps_city_names(tmp_path, write_city):
    write_city("zurich", city_votes(2), np.ones(2, dtype=int))
    write_city("guangzhou_addon", city_votes(2, width=5))
    write_city("amsterdam", city_votes(2), np.ones(2, dtype=int))
    (tmp_path / "notes.txt").write_text("ignored: not .h5")
    files = find_city_files(tmp_path)
    assert list(files) == ["amsterdam", "zurich", "guangzhou"]        # constants order
    assert files["guangzhou"].name == "guangzhou_addon.h5"


def test_find_city_files_unknown_name_is_an_error(tmp_path, write_city):
    write_city("zurich", city_votes(2), np.ones(2, dtype=int))
    write_city("atlantis", city_votes(2), np.ones(2, dtype=int))
    with pytest.raises(DataError) as e:
        find_city_files(tmp_path)
    assert "atlantis.h5" in one_line(e) and "unknown city" in str(e.value)
    write_h5(tmp_path / "berlin_addon.h5", label=np.ones((1, 3)))    # berlin has no addon file
    (tmp_path / "atlantis.h5").unlink()
    with pytest.raises(DataError, match="berlin_addon.h5: unknown city"):
        find_city_files(tmp_path)


def test_find_city_files_empty_or_missing_folder(tmp_path):
    with pytest.raises(DataError, match="no vote files"):
        find_city_files(tmp_path)
    with pytest.raises(DataError, match="not found"):
        find_city_files(tmp_path / "nope")


def test_nonfinite_rows():
    px = pixels(4)
    px[1, 3, 4, 5] = np.nan
    px[3, 0, 0, 0] = -np.inf
    assert nonfinite_rows(px).tolist() == [False, True, False, True]


# --------------------------------------------------------------------------- bad vote files
def test_missing_file(tmp_path):
    with pytest.raises(DataError) as e:
        open_city(tmp_path / "rome.h5")
    assert "rome.h5: file not found" in one_line(e)


def test_not_hdf5(tmp_path):
    p = tmp_path / "rome.h5"
    p.write_text("sen2,label\n1,2\n")
    with pytest.raises(DataError) as e:
        open_city(p)
    assert "rome.h5: not an HDF5 file" in one_line(e)


@pytest.mark.parametrize("keep_fraction", [0.6, 0.02])
def test_truncated_hdf5(write_city, keep_fraction):
    p = write_city("rome", city_votes(20), np.ones(20, dtype=int))
    data = p.read_bytes()
    p.write_bytes(data[: int(len(data) * keep_fraction)])
    with pytest.raises(DataError) as e:
        open_city(p)
    msg = one_line(e)
    assert "rome.h5" in msg and ("truncated" in msg or "not an HDF5" in msg)


@pytest.mark.parametrize("missing", ["label", "sen2"])
def test_missing_key(tmp_path, missing):
    kw = {"sen2": pixels(2), "label": np.ones((2, 12), dtype=int)}
    kw[missing] = None
    p = write_h5(tmp_path / "milan.h5", **kw)
    with pytest.raises(DataError) as e:
        open_city(p)
    assert f"milan.h5: missing key '{missing}'" in one_line(e)


def test_addon_without_sen2_is_rejected(tmp_path):
    p = write_h5(tmp_path / "moscow_addon.h5", label=np.ones((2, 5), dtype=int))
    with pytest.raises(DataError, match="moscow_addon.h5: missing key 'sen2'"):
        open_city(p)


@pytest.mark.parametrize("sen2, problem", [
    (np.zeros((2, 32, 32), np.float32), "'sen2' has rank 3"),
    (np.zeros((2, 32, 32, 9), np.float32), r"'sen2' has shape \(2, 32, 32, 9\), expected \(N, 32, 32, 10\)"),
    (np.zeros((2, 16, 16, 10), np.float32), r"'sen2' has shape \(2, 16, 16, 10\)"),
])
def test_wrong_rank_shape_band_count(write_city, sen2, problem):
    p = write_city("munich", city_votes(2), np.ones(2, dtype=int), sen2=sen2)
    with pytest.raises(DataError, match=rf"munich.h5: {problem}"):
        open_city(p)


def test_label_wrong_rank(tmp_path):
    p = write_h5(tmp_path / "munich.h5", sen2=pixels(2), label=np.ones(2, dtype=int))
    with pytest.raises(DataError, match="munich.h5: 'label' has rank 1"):
        open_city(p)


@pytest.mark.parametrize("bad", [18, -1])
def test_vote_ids_outside_0_17(write_city, bad):
    votes = city_votes(3)
    votes[1, 4] = bad
    with pytest.raises(DataError) as e:
        open_city(write_city("madrid", votes, np.ones(3, dtype=int)))
    assert "madrid.h5: 'label' vote ids must be 0..17" in one_line(e) and str(bad) in str(e.value)


def test_original_label_outside_1_17(write_city):
    with pytest.raises(DataError, match="madrid.h5: 'label' column 11 .*found 0"):
        open_city(write_city("madrid", city_votes(3), np.array([1, 0, 2])))


def test_non_integer_labels(write_city):
    votes = city_votes(3).astype(float)
    votes[0, 0] = 2.5
    with pytest.raises(DataError, match="london.h5: 'label' holds non-integer values"):
        open_city(write_city("london", votes, np.ones(3)))


@pytest.mark.parametrize("name, width", [("cologne", 11), ("cologne", 13), ("nairobi_addon", 12)])
def test_inconsistent_label_width(write_city, name, width):
    p = write_city(name, city_votes(3, width=width))
    with pytest.raises(DataError) as e:
        open_city(p)
    assert f"{name}.h5: 'label' has {width} columns" in one_line(e)


def test_empty_city_file(write_city):
    p = write_city("berlin", np.zeros((0, 11), dtype=int), np.zeros(0, dtype=int),
                   sen2=np.zeros((0, 32, 32, 10), np.float32))
    with pytest.raises(DataError) as e:
        open_city(p)
    assert "berlin.h5: 'label' has no rows (empty city file)" in one_line(e)


def test_row_count_mismatch(write_city):
    p = write_city("berlin", city_votes(3), np.ones(3, dtype=int), sen2=pixels(4))
    with pytest.raises(DataError) as e:
        open_city(p)
    assert "berlin.h5: 'sen2' has 4 rows but 'label' has 3" in one_line(e)


def test_unknown_city_name_in_open_city(write_city):
    with pytest.raises(DataError, match="atlantis.h5: unknown city file name"):
        open_city(write_city("atlantis", city_votes(2), np.ones(2, dtype=int)))


# ======================================================================= format 2: seed splits
def seed_file(path, labels, dist, sen2_rows=None):
    y = np.zeros((len(labels), 17))
    y[np.arange(len(labels)), labels] = 1
    n = len(labels) if sen2_rows is None else sen2_rows
    return write_h5(path, sen2=pixels(n), y=y, y_distributional_urban=dist)


def test_seed_split_aligns_distributions_with_urban_rows(tmp_path):
    labels = np.array([1, 12, 4, 16, 4, 0])
    dist = np.zeros((4, 10))
    dist[0, 1] = 1
    dist[1, [4, 3]] = [0.8, 0.2]
    dist[2] = np.nan                                  # a kept row without urban votes
    dist[3, [0, 1]] = [0.5, 0.5]
    s = read_seed_split(seed_file(tmp_path / "testing.h5", labels, dist))
    assert s.n == 6 and s.label.tolist() == labels.tolist()
    assert s.urban.tolist() == [True, False, True, False, True, True]
    assert s.urban_rows.tolist() == [0, 2, 4, 5]
    assert s.distribution_valid.tolist() == [True, True, False, True]
    assert s.read_sen2(0, 2).shape == (2, 32, 32, 10)


def test_seed_split_bad_inputs(tmp_path):
    labels = np.array([1, 2, 3])
    good = np.eye(10)[labels]
    with pytest.raises(DataError, match=r"'y_distributional_urban' has shape \(2, 10\), expected \(3, 10\)"):
        read_seed_split(seed_file(tmp_path / "a.h5", labels, good[:2]))
    with pytest.raises(DataError, match="'sen2' has 4 rows but 'y' has 3"):
        read_seed_split(seed_file(tmp_path / "b.h5", labels, good, sen2_rows=4))
    with pytest.raises(DataError, match="not aligned"):
        read_seed_split(seed_file(tmp_path / "c.h5", labels, good[[1, 2, 0]]))
    y = np.zeros((3, 17))
    y[:, 0] = 1
    y[0, 5] = 1
    p = write_h5(tmp_path / "d.h5", sen2=pixels(3), y=y, y_distributional_urban=good)
    with pytest.raises(DataError, match="d.h5: 'y' rows are not one-hot"):
        read_seed_split(p)
    with pytest.raises(DataError, match="e.h5: missing key 'y_distributional_urban'"):
        read_seed_split(write_h5(tmp_path / "e.h5", sen2=pixels(3), y=np.eye(17)[labels]))
    half = good.copy()
    half[0, 0] = np.nan
    with pytest.raises(DataError, match="mixes finite and non-finite"):
        read_seed_split(seed_file(tmp_path / "f.h5", labels, half))


# ==================================================================== format 3: So2Sat v2 / v3
SO2SAT = RESOURCES / "so2sat"          # the fixtures and, beside them, their generator data.py
V2 = SO2SAT / "so2sat_v2"
V3 = SO2SAT / "so2sat_v3"


def test_so2sat_v2_fixture():
    files = find_so2sat_files(V2)
    assert {k: p.name for k, p in files.items()} == {
        "train": "training.h5", "val": "validation.h5", "test": "testing.h5"}
    for path in files.values():
        f = open_so2sat(path)
        with h5py.File(path, "r") as h:
            expected = h.attrs["expected_labels"]
            raw2, raw1 = h["sen2"][()], h["sen1"][()]
        assert f.has_sen1 and f.n == len(expected)
        assert f.label.tolist() == expected.tolist()
        np.testing.assert_array_equal(f.read_sen2(0, f.n), raw2.astype(np.float32))
        np.testing.assert_array_equal(f.read_sen1(1, f.n), raw1[1:].astype(np.float32))


@pytest.mark.parametrize("variant", ["random", "block", "culture_10"])
def test_so2sat_v3_fixture(variant):
    files = find_so2sat_files(V3, variant)
    assert set(files) == {"train", "test"}
    assert find_so2sat_files(V3 / variant) == files
    f = open_so2sat(files["train"])
    assert f.n == 3 and f.read_sen2(0, 1).shape == (1, 32, 32, 10)


def test_so2sat_layout_errors(tmp_path):
    with pytest.raises(DataError, match="v3 folder; choose a variant"):
        find_so2sat_files(V3)
    with pytest.raises(DataError, match="unknown So2Sat v3 variant 'blocks'"):
        find_so2sat_files(V3, "blocks")
    shutil.copy(V2 / "training.h5", tmp_path / "training.h5")
    with pytest.raises(DataError, match="missing testing.h5"):
        find_so2sat_files(tmp_path)


def test_so2sat_bad_files(tmp_path):
    y = np.eye(17)[[0, 3]]
    ok = {"sen2": pixels(2), "label": y}
    f = open_so2sat(write_h5(tmp_path / "nosen1.h5", **ok))
    assert not f.has_sen1
    with pytest.raises(DataError, match="no 'sen1'"):
        f.read_sen1(0, 1)
    with pytest.raises(DataError, match=r"s1.h5: 'sen1' has shape \(2, 32, 32, 2\)"):
        open_so2sat(write_h5(tmp_path / "s1.h5", sen1=np.zeros((2, 32, 32, 2)), **ok))
    with pytest.raises(DataError, match="s1rows.h5: 'sen1' has 3 rows but 'sen2' has 2"):
        open_so2sat(write_h5(tmp_path / "s1rows.h5", sen1=np.zeros((3, 32, 32, 8)), **ok))
    bad = y.copy()
    bad[1, 5] = 1
    with pytest.raises(DataError, match="oh.h5: 'label' rows are not one-hot"):
        open_so2sat(write_h5(tmp_path / "oh.h5", sen2=pixels(2), label=bad))
    with pytest.raises(DataError, match=r"w.h5: 'label' has shape \(2, 10\)"):
        open_so2sat(write_h5(tmp_path / "w.h5", sen2=pixels(2), label=np.eye(10)[[0, 1]]))
    with pytest.raises(DataError, match="e.h5: 'sen2' has no rows"):
        open_so2sat(write_h5(tmp_path / "e.h5", sen2=np.zeros((0, 32, 32, 10)), label=np.zeros((0, 17))))


def test_committed_fixtures_match_their_generator(tmp_path):
    spec = importlib.util.spec_from_file_location("so2sat_fixtures", SO2SAT / "data.py")
    mk = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mk)
    mk.main(tmp_path)
    committed = sorted(p.relative_to(SO2SAT) for p in SO2SAT.glob("so2sat_v*/**/*.h5"))
    fresh = sorted(p.relative_to(tmp_path) for p in tmp_path.glob("so2sat_v*/**/*.h5"))
    assert committed == fresh and len(committed) == 9
    for rel in committed:
        with h5py.File(SO2SAT / rel, "r") as a, h5py.File(tmp_path / rel, "r") as b:
            for key in ("sen1", "sen2", "label"):
                np.testing.assert_array_equal(a[key][()], b[key][()])
    assert sum((SO2SAT / r).stat().st_size for r in committed) < 300_000
