"""Synthetic twin: release format, determinism, visible ambiguity, and the real statistics (the
Dawid-Skene rival swapping LCZ 3 and 7 among them)."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from lczldl.constants import ADDON_CITIES, EUROPEAN_CITIES
from lczldl.data import synth, synth_pixels
from lczldl.data.dawid_skene import fit_dawid_skene_multistart
from lczldl.data.labels import build_labels
from lczldl.data.readers.votes import find_city_files, open_city
from lczldl.data.stats import compare_to_reference, load_reference, statistics_of_path, vote_statistics
from lczldl.errors import DataError

FILES = [f"{c}.h5" for c in EUROPEAN_CITIES] + [f"{c}_addon.h5" for c in ADDON_CITIES]


@pytest.fixture(scope="module")
def small_twin(small_twin_raw) -> Path:
    out, written = small_twin_raw            # synth.synthesize(out, seed=0, size="small"), shared
    assert sorted(written) == sorted(FILES)
    return out


def test_writes_all_18_files_in_release_format(small_twin):
    assert sorted(p.name for p in small_twin.iterdir()) == sorted(FILES)   # no temp files left
    n_city, n_addon = synth.SIZES["small"]
    for name in FILES:
        addon = name.endswith("_addon.h5")
        with h5py.File(small_twin / name, "r") as f:
            sen2, label = f["sen2"], f["label"][()]
            n = n_addon if addon else n_city
            assert sen2.shape == (n, 32, 32, 10) and sen2.dtype.kind == "f"
            assert label.shape == (n, 11 if addon else 12) and label.dtype.kind == "i"
            px = sen2[:64]
        assert np.isfinite(px).all() and px.min() >= 0 and px.max() < 1.0
        assert 0.02 < px.mean() < 0.4                            # reflectance, not DN
        assert label[:, :11].min() >= 0 and label[:, :11].max() <= 17
        if not addon:
            assert label[:, 11].min() >= 1 and label[:, 11].max() <= 17
        cf = open_city(small_twin / name)                         # the project's own reader accepts it
        assert cf.n == n and cf.is_addon == addon


def test_total_sizes_as_documented(small_twin):
    stats = statistics_of_path(small_twin)[1]
    n_city, n_addon = synth.SIZES["small"]
    assert 10 * n_city + 8 * n_addon == 5840
    assert 3000 <= stats["train cities"]["n"] <= 3600            # kept urban rows of train cities


def test_spectra_are_class_specific(small_twin):
    """Vegetation-rich LCZ (6, 9) have higher NDVI than compact / industrial ones (2, 8)."""
    f = h5py.File(small_twin / "berlin.h5", "r")
    px, lab = f["sen2"][()], f["label"][()]
    lab_ = build_labels(lab[:, :11], lab[:, 11])
    ndvi = ((px[..., 6] - px[..., 2]) / (px[..., 6] + px[..., 2] + 1e-6)).mean(axis=(1, 2))
    by = {k: ndvi[lab_.label == k].mean() for k in (1, 5, 7, 8)}   # LCZ 2, 6, 8, 9
    assert min(by[5], by[8]) > max(by[1], by[7]) + 0.1


def _mixture(primary: int, secondary: int, w: float, n: int) -> dict:
    """Latent scenes of n patches: LCZ ``primary`` with a share ``w`` of LCZ ``secondary``."""
    return {"comp": np.tile([primary, secondary, primary], (n, 1)), "weight": np.tile([1 - w, w, 0.0], (n, 1))}


def test_ambiguity_is_visible_in_pixels():
    """A larger share of LCZ 3 in an LCZ 6 patch lowers NDVI monotonically (the mixture is rendered)."""
    rng = np.random.default_rng(3)
    city = synth_pixels.make_city(rng)
    ndvi = []
    for w in (0.0, 0.25, 0.5):
        px = synth_pixels.render_scene(rng, _mixture(6, 3, w, 200), city)
        ndvi.append(((px[..., 6] - px[..., 2]) / (px[..., 6] + px[..., 2])).mean())
    assert ndvi[0] > ndvi[1] + 0.02 > ndvi[2] + 0.04


def test_votes_follow_the_latent_mixture():
    """Experts vote the secondary class in proportion to its share: 0 -> unanimous-ish, 0.5 -> split."""
    rng = np.random.default_rng(4)
    experts = synth.make_experts(rng)
    share = []
    for w in (0.0, 0.2, 0.45):
        votes = synth.simulate_votes(rng, experts, _mixture(5, 2, w, 400))
        share.append((votes == 2).sum() / (votes > 0).sum())
    assert share[0] < 0.03 and 0.1 < share[1] < 0.3 and 0.3 < share[2] < 0.55


def test_systematic_panel_draws_fix_the_number_of_dissenters(monkeypatch):
    """Ideal experts (no noise, leaks, slips or misses) on patches with 15 % LCZ 3 in LCZ 6: with
    systematic draws every panel has 11 x 0.15 = 1.65 -> 1 or 2 dissenting votes; with independent
    draws the count is binomial (mean 1.65, variance 11 x 0.15 x 0.85 = 1.40)."""
    ideal = [{"noise": 0.0, "gamma": 1.0, "leaks": {}, "slip": 0.0, "missing": 0.0}] * 11
    latent = _mixture(6, 3, 0.15, 4000)
    counts = {}
    for stratify in (1.0, 0.0):
        monkeypatch.setattr(synth, "VOTE_STRATIFY", stratify)
        votes = synth.simulate_votes(np.random.default_rng(7), ideal, latent)
        assert set(np.unique(votes)) == {3, 6}
        counts[stratify] = (votes == 3).sum(axis=1)
    assert set(np.unique(counts[1.0])) == {1, 2} and counts[1.0].mean() == pytest.approx(1.65, abs=0.05)
    assert counts[0.0].mean() == pytest.approx(1.65, abs=0.08)
    assert counts[0.0].var() == pytest.approx(1.40, abs=0.12) and counts[0.0].max() >= 5


def test_deterministic_for_a_seed(tmp_path, tiny_twin):
    a = tiny_twin[0]                                 # the session's tiny twin, seed 0
    b = synth.synthesize(tmp_path / "b", seed=0, size="tiny", progress=False)
    synth.synthesize(tmp_path / "c", seed=1, size="tiny", progress=False)
    assert sorted(b) == sorted(p.name for p in a.glob("*.h5")) == sorted(FILES)
    for name in b:
        fa, fb, fc = (h5py.File(d / name, "r") for d in (a, tmp_path / "b", tmp_path / "c"))
        assert np.array_equal(fa["sen2"][()], fb["sen2"][()])
        assert np.array_equal(fa["label"][()], fb["label"][()])
        assert not np.array_equal(fa["sen2"][()], fc["sen2"][()])


def test_rerun_overwrites_atomically(tmp_path, tiny_twin):
    shutil.copytree(tiny_twin[0], tmp_path, dirs_exist_ok=True)      # a first run (seed 0), copied
    synth.synthesize(tmp_path, seed=1, size="tiny", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(FILES)
    with h5py.File(tmp_path / "berlin.h5", "r") as new, h5py.File(tiny_twin[0] / "berlin.h5", "r") as old:
        assert not np.array_equal(new["sen2"][()], old["sen2"][()])     # overwritten, not kept


def test_unknown_size(tmp_path):
    with pytest.raises(DataError, match="unknown twin size"):
        synth.synthesize(tmp_path, size="huge")


def test_addons_are_lcz7_with_disagreement_towards_3_and_6(small_twin):
    votes = np.concatenate([open_city(small_twin / f"{c}_addon.h5").votes for c in ADDON_CITIES])
    lab = build_labels(votes, 7)
    assert (lab.majority == 7).mean() > 0.6
    v = votes[votes > 0]
    other = np.bincount(v[v != 7], minlength=18)
    assert other[3] + other[6] > 0.75 * other.sum()


def test_original_label_mostly_the_majority(small_twin):
    cf = open_city(small_twin / "paris.h5")
    lab = build_labels(cf.votes, cf.original)
    agree = (cf.original == lab.majority).mean()
    assert 0.8 < agree < 0.995                                    # mostly, not always


def test_some_rows_dropped_like_the_release(small_twin):
    _, _, extra = statistics_of_path(small_twin)
    assert extra["dropped"]["non_urban_majority"] > 20           # ~2 % non-urban patches
    assert extra["dropped"]["no_urban_votes"] >= 1               # a handful with no urban vote


def test_twin_meets_the_real_statistics(small_twin, real_reference):
    ref = load_reference(real_reference)
    rs = vote_statistics(ref["distribution"], ref["majority"])
    groups = statistics_of_path(small_twin)[1]
    full = compare_to_reference(groups["all"], rs)
    assert full["all_pass"], full
    for name in ("train cities", "held-out cities"):
        c = compare_to_reference(groups[name], rs)
        assert c["pass"]["class_tv"] and c["pass"]["entropy_tv"] and c["pass"]["unanimous_abs"], (name, c)


@pytest.fixture(scope="module")
def small_twin_votes(small_twin_raw):
    raw, _ = small_twin_raw                                # the small twin, seed 0
    votes, addon, label = [], [], []
    for path in find_city_files(raw).values():            # the rows prepare keeps, in its order
        cf = open_city(path)
        lab = build_labels(cf.votes, cf.original)
        votes.append(lab.votes[lab.keep])
        addon.append(np.full(int(lab.keep.sum()), cf.is_addon))
        label.append(lab.label[lab.keep])
    return np.concatenate(votes), np.concatenate(addon), np.concatenate(label)


def test_small_twin_has_a_rival_swapping_lcz_3_and_7(small_twin_votes):
    """PROTOCOL: two near-equal optima (0.4 nats apart) that swap LCZ 3 and LCZ 7."""
    votes, addon, label = small_twin_votes
    res = fit_dawid_skene_multistart(votes, 10)
    rival = res.rival
    assert rival is not None
    assert {rival["best_start"], rival["start"]} == {"counts", "majority"}
    assert 0 < rival["log_likelihood_gap"] < 1.0
    assert rival["swaps"][0]["lcz"] == [3, 7] and rival["summary"].startswith("LCZ 3 <-> LCZ 7")
    assert rival["class_share"]["7"] > 0.5
    # the majority start's solution is the one that relabels most LCZ 7 rows (68 of 252)
    major = res.fits["majority"].posteriors.argmax(1)
    assert ((major == 6) & (label == 6)).sum() < 0.5 * (label == 6).sum()
    assert ((major == 6) & addon).sum() < 0.5 * addon.sum()
