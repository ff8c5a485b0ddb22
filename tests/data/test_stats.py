"""Vote statistics: hand-made cases, distances, the reference reader and the printer."""

from __future__ import annotations

import math

import h5py
import numpy as np
import pytest

from lczldl.data.stats import (
    BOUNDS,
    DISAGREEMENT_PAIRS,
    compare_to_reference,
    inspect_path,
    load_reference,
    statistics_of_path,
    vote_statistics,
)
from lczldl.distributions import entropy_bin_shares, entropy_nats, tv_distance
from lczldl.errors import DataError


def _row(**shares: float) -> np.ndarray:
    """_row(c0=0.5, c3=0.5) -> (10,) distribution with those class-index shares."""
    r = np.zeros(10)
    for k, v in shares.items():
        r[int(k[1:])] = v
    return r


def test_entropy_bins_one_per_bin_left_closed():
    # 0 | 0.2 (left edge of bin 1) | 0.6 | 0.7 (left edge of bin 3) | 1.1 | 1.5
    shares = entropy_bin_shares(np.array([0.0, 0.2, 0.6, 0.7, 1.1, 1.5]))
    np.testing.assert_allclose(shares, np.full(6, 1 / 6))
    np.testing.assert_allclose(entropy_bin_shares(np.array([0.19999, 0.305])), [.5, .5, 0, 0, 0, 0])


def test_row_entropy_hand_values():
    d = np.stack([_row(c0=1.0), _row(c0=.5, c1=.5), _row(c2=10 / 11, c6=1 / 11), np.full(10, .1)])
    want = [0.0, math.log(2), -(10 / 11) * math.log(10 / 11) - (1 / 11) * math.log(1 / 11), math.log(10)]
    np.testing.assert_allclose(entropy_nats(np.asarray(d, dtype=np.float64)), want, atol=1e-12)
    assert 0.30 < want[2] < 0.31           # one dissenting vote of 11 lands in bin [0.2, 0.5)


def test_tv_distance_hand_values():
    assert tv_distance([1, 0], [0, 1]) == 1.0
    assert tv_distance([.5, .5], [.25, .75]) == pytest.approx(0.25)
    assert tv_distance([.2, .3, .5], [.2, .3, .5]) == 0.0
    with pytest.raises(ValueError):
        tv_distance([1, 0], [1, 0, 0])


def test_vote_statistics_hand_case():
    d = np.stack([_row(c0=1.0), _row(c0=1.0), _row(c0=.75, c3=.25), _row(c6=.5, c2=.5)])
    m = np.array([0, 0, 0, 6])
    s = vote_statistics(d, m)
    assert s["n"] == 4
    np.testing.assert_allclose(s["class_shares"], [.75, 0, 0, 0, 0, 0, .25, 0, 0, 0])
    assert s["unanimous_share"] == 0.5
    assert s["mean_top_share"] == pytest.approx((1 + 1 + .75 + .5) / 4)
    given = np.array(s["mean_given_majority"])
    np.testing.assert_allclose(given[0], _row(c0=(1 + 1 + .75) / 3, c3=.25 / 3))
    assert np.isnan(given[1]).all()                      # no row with majority LCZ 2
    assert s["pairs"]["1->4"] == pytest.approx(.25 / 3)  # LCZ 4 votes given majority LCZ 1
    assert s["pairs"]["7->3"] == pytest.approx(.5)
    # bins: 0, 0, H(.75,.25)=0.562, ln2=0.693
    np.testing.assert_allclose(s["entropy_bin_shares"], [.5, 0, .5, 0, 0, 0])
    # per majority class: LCZ 1 has two unanimous rows and one in [0.5, 0.7); LCZ 7 one in [0.5, 0.7)
    bins = np.array(s["entropy_bins_given_majority"])
    np.testing.assert_allclose(bins[0], [2 / 3, 0, 1 / 3, 0, 0, 0])
    np.testing.assert_allclose(bins[6], [0, 0, 1, 0, 0, 0])
    assert np.isnan(bins[1]).all()
    unan = np.array(s["unanimous_given_majority"])
    assert unan[0] == pytest.approx(2 / 3) and unan[6] == 0 and np.isnan(unan[1])


def test_vote_statistics_bad_input():
    with pytest.raises(DataError):
        vote_statistics(np.zeros((3, 9)), np.zeros(3, dtype=int))
    with pytest.raises(DataError):
        vote_statistics(np.full((3, 10), .1), np.zeros(2, dtype=int))
    with pytest.raises(DataError):
        vote_statistics(np.full((1, 10), .1), np.array([10]))


def test_compare_to_reference_pass_and_fail():
    rng = np.random.default_rng(0)
    d = rng.dirichlet(np.ones(10) * .3, size=500)
    s = vote_statistics(d, d.argmax(1))
    same = compare_to_reference(s, s)
    assert same["class_tv"] == 0 and same["entropy_tv"] == 0 and same["unanimous_abs"] == 0
    assert same["all_pass"]
    # shift every row to class 0: class shares far away, unanimity changes by the flipped share
    other = vote_statistics(np.tile(_row(c0=1.0), (500, 1)), np.zeros(500, dtype=int))
    c = compare_to_reference(other, s)
    assert c["class_tv"] == pytest.approx(tv_distance(other["class_shares"], s["class_shares"]))
    assert not c["pass"]["class_tv"] and not c["all_pass"]
    assert c["unanimous_abs"] > BOUNDS["unanimous_abs"] and not c["pass"]["unanimous_abs"]
    assert not c["pass"]["pairs"]                         # pairs absent (NaN) fail


def test_load_reference_drops_and_counts_nan(tmp_path):
    d = np.tile(_row(c1=.5, c4=.5), (5, 1))
    d[[1, 3]] = np.nan
    p = tmp_path / "ref.h5"
    with h5py.File(p, "w") as f:
        f["test_label_distributions"] = d
    ref = load_reference(p)
    assert ref["n_nan"] == 2 and ref["distribution"].shape == (3, 10)
    assert (ref["majority"] == 1).all()


def test_load_reference_bad_files(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_reference(tmp_path / "missing.h5")
    p = tmp_path / "bad.h5"
    with h5py.File(p, "w") as f:
        f["x"] = np.zeros((3, 7))
    with pytest.raises(DataError, match="test_label_distributions"):
        load_reference(p)
    t = tmp_path / "text.h5"
    t.write_text("not hdf5")
    with pytest.raises(DataError, match="not an HDF5"):
        load_reference(t)


def test_real_reference_matches_protocol_facts(real_reference):
    """Independent cross-check against the numbers PROTOCOL.md measured on the real file."""
    ref = load_reference(real_reference)
    assert ref["n_nan"] == 17 and len(ref["distribution"]) == 40868
    s = vote_statistics(ref["distribution"], ref["majority"])
    np.testing.assert_allclose(s["class_shares"],
                               [.007, .165, .039, .022, .182, .312, .045, .161, .018, .051], atol=6e-4)
    np.testing.assert_allclose(s["entropy_bin_shares"], [.372, .375, .150, .068, .034, 0], atol=6e-4)
    assert s["unanimous_share"] == pytest.approx(.372, abs=6e-4)
    assert s["mean_top_share"] == pytest.approx(.865, abs=6e-4)
    assert s["mean_entropy"] == pytest.approx(.325, abs=6e-4)
    for (a, b), want in zip(DISAGREEMENT_PAIRS, (.13, .24, .31, .18, .10, .08, .14, .09),
                            strict=True):
        assert s["pairs"][f"{a}->{b}"] == pytest.approx(want, abs=0.006)


def test_inspect_distributions_file_prints_pass(tmp_path, capsys):
    rng = np.random.default_rng(1)
    d = rng.dirichlet(np.ones(10) * .2, size=300)
    p = tmp_path / "d.h5"
    with h5py.File(p, "w") as f:
        f["test_label_distributions"] = d
    kind, groups, extra = statistics_of_path(p)
    assert kind == "distributions file" and groups["file"]["n"] == 300
    inspect_path(p, reference=p)
    out = capsys.readouterr().out
    assert "share LCZ 10" in out and "PASS" in out and "FAIL" not in out
    assert "per majority class" not in out
    inspect_path(p, reference=p, per_class=True)
    out = capsys.readouterr().out
    assert "per majority class (file vs reference)" in out and "ref entropy bins" in out


def test_real_per_class_pattern(real_reference):
    """The real experts never agree unanimously on LCZ 3 or 7 and mostly do on LCZ 8."""
    ref = load_reference(real_reference)
    s = vote_statistics(ref["distribution"], ref["majority"])
    unan = np.array(s["unanimous_given_majority"])
    assert unan[2] == 0 and unan[6] == 0 and unan[7] > 0.8
    shares = np.array(s["class_shares"])
    assert float((unan * shares).sum()) == pytest.approx(s["unanimous_share"])


def test_inspect_unknown_path(tmp_path):
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DataError, match="not a prepared store"):
        inspect_path(tmp_path / "x.txt")


def test_pairs_of_rare_classes_are_reported_not_judged():
    ref = vote_statistics(np.stack([_row(c0=.8, c3=.2)] * 100), np.zeros(100, dtype=int))
    few = vote_statistics(np.stack([_row(c0=1.0)] * 10 + [_row(c1=1.0)] * 90),  # LCZ 2: no pair
                          np.array([0] * 10 + [1] * 90))
    c = compare_to_reference(few, ref)
    p = c["pairs"]["1->4"]
    assert p["rows"] == 10 and not p["judged"] and not p["pass"]      # 0 vs 0.2, but only 10 rows
    assert c["pass"]["pairs"]                                            # not counted
    many = vote_statistics(np.stack([_row(c0=1.0)] * 40), np.zeros(40, dtype=int))
    assert not compare_to_reference(many, ref)["pass"]["pairs"]         # 40 rows: judged, fails
