"""The soft targets prepare writes beside the vote distribution: the multi-start Dawid-Skene target
and its rival record in the manifest (votes built to have a mirror-image optimum), the opt-in
crowd-kit targets (store round trip, cross-checked against the aggregator on the store's own
votes), the one-line error for a target the store lacks, and what ``data inspect`` reports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import h5py
import numpy as np
import pytest

from lczldl.config import PrepareConfig
from lczldl.data.prepare import prepare_store
from lczldl.data.store import LCZDataset, SplitArrays, make_targets, open_store, require_targets
from lczldl.errors import ConfigError, DataError

pytest.importorskip("crowdkit")

A, B = 3, 7                                   # the ambiguous pair (LCZ ids)
#: European cities of the authors' split: 2 train, 2 held out (val / test drawn from them)
CITIES = ("amsterdam", "berlin", "madrid", "munich")
#: per city: 10 unanimous rows of LCZ 3 and of LCZ 7, 3 of every other urban class (so no latent
#: class is free to absorb the mixed rows), 8 mixed rows
N_PURE, N_OTHER, N_MIXED = 10, 3, 8


def _write_raw(root: Path) -> Path:
    """Votes invariant under (swap 3 <-> 7, swap experts 0-4 <-> 5-9): mixed rows are LCZ 3 or LCZ 7
    with exactly equal likelihood (as in tests/data/test_dawid_skene_rivals.py)."""
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    mixed = [A] * 5 + [B] * 5 + [0]
    pure = [[c] * 11 for c in range(1, 11) for _ in range(N_PURE if c in (A, B) else N_OTHER)]
    for city in CITIES:
        votes = np.array(pure + [mixed] * N_MIXED)
        original = votes[:, :1].copy()                                 # breaks the mixed rows' tie (LCZ 3)
        with h5py.File(root / f"{city}.h5", "w") as f:
            f["sen2"] = rng.integers(0, 3000, (len(votes), 32, 32, 10)) / 10000.0
            f["label"] = np.concatenate([votes, original], axis=1)
    return root


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """The raw folder prepared with one-coin and Wawa targets."""
    root = tmp_path_factory.mktemp("agg")
    prepare_store(_write_raw(root / "raw"), root / "store", PrepareConfig(aggregators=["wawa", "one_coin"]),
                  progress=False)
    return root / "store"


def _pooled(store: Path, name: str) -> np.ndarray:
    """One per-row array (or soft target) of every split, in split order."""
    s = open_store(store)
    return np.concatenate([np.asarray({**vars(s.split(sp)), **s.split(sp).aggregated}[name]) for sp in s.splits])


def test_manifest_records_the_dawid_skene_rival(store):
    m = json.loads((store / "manifest.json").read_text())
    ds = m["dawid_skene"]
    assert [s["start"] for s in ds["starts"]] == ["majority", "counts", "random0", "random1", "random2"]
    assert ds["rows"] == 4 * (2 * N_PURE + 8 * N_OTHER + N_MIXED) and ds["start"] == ds["rival"]["best_start"]
    best = max(ds["starts"], key=lambda s: s["log_likelihood"])         # first start wins a tie
    assert ds["log_likelihood"] == best["log_likelihood"] and ds["start"] == best["start"]
    rival = ds["rival"]
    assert rival["log_likelihood_gap"] == pytest.approx(0.0, abs=1e-6) and rival["substantial"]
    assert rival["rows_changed"] == 4 * N_MIXED and rival["swaps"][0]["lcz"] == [3, 7]
    assert rival["summary"] in (f"LCZ 3 -> LCZ 7 ({4 * N_MIXED} rows)", f"LCZ 3 <- LCZ 7 ({4 * N_MIXED} rows)")
    # the stored target is the best start's: every mixed row in the same class, 3 or 7
    votes, post = _pooled(store, "votes"), _pooled(store, "dawid_skene")
    mixed = ~(votes == votes[:, :1]).all(1)
    assert mixed.sum() == 4 * N_MIXED and len(set(post[mixed].argmax(1))) == 1
    assert post[mixed].argmax(1)[0] in (A - 1, B - 1)


def test_aggregated_targets_round_trip(store):
    from lczldl.data.aggregation import aggregate

    m = json.loads((store / "manifest.json").read_text())
    assert m["config"]["aggregators"] == ["one_coin", "wawa"]                  # canonical order
    for method in ("one_coin", "wawa"):
        info = m["aggregation"][method]
        assert info["converged"] is True and info["iterations"] >= 1 and info["crowdkit"]
        assert (store / "train" / f"agg_{method}.npy").is_file()
    s = open_store(store)
    for sp in s.splits:
        arrays = s.split(sp)
        assert set(arrays.aggregated) == {"agg_one_coin", "agg_wawa"}
        assert list(arrays.soft_targets()) == ["distribution", "dawid_skene", "agg_one_coin", "agg_wawa"]
        np.testing.assert_array_equal(make_targets(arrays, "agg_wawa"), arrays.aggregated["agg_wawa"])
        onehot = make_targets(arrays, "agg_wawa_onehot")
        assert (onehot.sum(1) == 1).all() and (onehot.argmax(1) == arrays.aggregated["agg_wawa"].argmax(1)).all()
    # fitted on all kept rows: the aggregator on the store's votes (split order, not prepare's
    # city order) gives the same posteriors row by row
    votes = _pooled(store, "votes")
    for method in ("wawa", "one_coin"):
        got = np.concatenate([np.asarray(s.split(sp).aggregated[f"agg_{method}"]) for sp in s.splits])
        np.testing.assert_allclose(got, aggregate(votes, method).posteriors, atol=1e-5)


def test_a_target_the_store_lacks_is_a_one_line_error(store, tmp_path):
    arrays = open_store(store).split("train")
    with pytest.raises(DataError, match=r"no agg_mace target in the store \(split train\); prepare with "
                                        r"aggregators=mace \("):
        make_targets(arrays, "agg_mace_onehot")
    with pytest.raises(DataError, match="aggregators=glad"):
        require_targets(store, ["distribution", "agg_glad"])
    require_targets(store, ["onehot", "agg_wawa", "agg_one_coin_onehot"])     # served: no error
    require_targets(tmp_path / "no-store", ["onehot", "dawid_skene"])           # not opened at all
    with pytest.raises(DataError, match="aggregators=mace"):
        LCZDataset(store, "val", target="agg_mace")
    bare = SplitArrays(name="x", n=1, image=None, label=np.zeros(1, int), distribution=np.ones((1, 10)) / 10,
                       dawid_skene=np.ones((1, 10)) / 10, votes=np.ones((1, 11), np.int8),
                       original=np.ones(1, np.int8), city=np.zeros(1, np.int16), vote_entropy=np.zeros(1))
    assert bare.aggregated == {} and list(bare.soft_targets()) == ["distribution", "dawid_skene"]


def test_study_refuses_an_aggregator_regime_the_store_cannot_serve(store, tmp_path):
    from lczldl.study.runner import run_study

    with pytest.raises(DataError, match="no agg_mace target"):
        run_study(data=store, out=tmp_path / "study", regimes="dist,agg_mace", seeds="0", progress=False)
    assert not (tmp_path / "study").exists()
    with pytest.raises(ConfigError, match="needs study.prepare.aggregators to include mace"):   # raw votes:
        run_study(data=store.parent / "raw", out=tmp_path / "s2", regimes="agg_mace_onehot,agg_wawa",
                  seeds="0", progress=False)              # refused before anything is prepared
    assert not (tmp_path / "s2").exists()


def test_inspect_reports_targets_and_the_rival(store, capsys):
    from lczldl.data.stats import inspect_path

    inspect_path(store)
    out = capsys.readouterr().out
    votes, dist = _pooled(store, "votes"), _pooled(store, "distribution")
    counts = np.stack([(votes == c).sum(1) for c in range(1, 11)], 1)
    raw = counts / counts.sum(1, keepdims=True)
    np.testing.assert_allclose(dist, raw, atol=1e-7)                # unsmoothed: KL 0, TV 0
    rows = {m.group(1): m.groups()[1:] for m in re.finditer(
        r"│ (\w+)\s*│\s*(-?[\d.]+) │\s*([\d.]+) │\s*([\d.]+) │\s*([\d.]+) │", out)}
    assert set(rows) == {"distribution", "dawid_skene", "agg_one_coin", "agg_wawa"}
    assert rows["distribution"][:2] == ("0.000", "0.000") and rows["distribution"][3] == "1.000"
    wawa = _pooled(store, "agg_wawa").astype(np.float64)
    tv = 0.5 * np.abs(wawa - raw).sum(1).mean()
    ent = -(np.where(wawa > 0, wawa * np.log(np.where(wawa > 0, wawa, 1)), 0)).sum(1).mean()
    assert rows["agg_wawa"][1:3] == (f"{tv:.3f}", f"{ent:.3f}")
    assert "crowd-kit wawa: 1 iterations, converged True" in out
    assert "warning: Dawid-Skene has a rival optimum" in out and f"{4 * N_MIXED} rows change class" in out
    assert "LCZ 3" in out and "LCZ 7" in out
