"""Summary aggregation by hand (means, std, the 95 % intervals), bootstrap bracket, and evaluate_runs
end to end on a tiny store (predictions, MC dropout on test and val, beyond-the-paper files, ensemble
intervals checked against a plain bootstrap loop)."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from lczldl.evaluation.intervals import bootstrap_ci
from lczldl.evaluation.summary import aggregate_table, paired_differences, write_summary


def _records():
    rec = []
    for seed, (a, b) in enumerate([(0.80, 0.10), (0.84, 0.12), (0.86, 0.08)]):
        rec.append({"regime": "onehot", "method": "plain", "seed": seed, "metrics": {"oa": a, "ece": b}})
        rec.append({"regime": "dist", "method": "plain", "seed": seed, "metrics": {"oa": a + 0.02 * (seed + 1), "ece": b - 0.05}})
    rec.append({"regime": "dist", "method": "ensemble", "seed": None, "metrics": {"oa": 0.9, "ece": 0.02}, "n_runs": 3})
    return rec


def test_aggregate_by_hand():
    rows = {(r["regime"], r["method"]): r for r in aggregate_table(_records())}
    oh = rows[("onehot", "plain")]
    assert oh["n_runs"] == 3
    assert oh["oa_mean"] == pytest.approx((0.80 + 0.84 + 0.86) / 3)
    mean = 2.5 / 3
    assert oh["oa_std"] == pytest.approx(math.sqrt(((0.80 - mean) ** 2 + (0.84 - mean) ** 2 + (0.86 - mean) ** 2) / 2))
    ens = rows[("dist", "ensemble")]
    assert ens["n_runs"] == 3 and ens["oa_mean"] == 0.9 and math.isnan(ens["oa_std"])
    assert [r["regime"] for r in aggregate_table(_records())][0] == "onehot"      # REGIMES order


def test_intervals_by_hand():
    """lo / hi: mean -+ t_{0.975, n-1} s / sqrt(n) over seeds; the ensemble's come from its record;
    one seed or a metric without values gives NaN."""
    recs = _records()
    recs[-1]["intervals"] = {"oa": (0.85, 0.95)}
    recs.append({"regime": "dawid_skene", "method": "plain", "seed": 0, "metrics": {"oa": 0.7, "ece": 0.1}})
    rows = {(r["regime"], r["method"]): r for r in aggregate_table(recs)}
    oh = rows[("onehot", "plain")]
    half = 4.302652729 * oh["oa_std"] / math.sqrt(3)                  # t_{0.975, 2}
    assert oh["oa_lo"] == pytest.approx(2.5 / 3 - half, abs=1e-8) and oh["oa_hi"] == pytest.approx(2.5 / 3 + half, abs=1e-8)
    ens = rows[("dist", "ensemble")]
    assert (ens["oa_lo"], ens["oa_hi"]) == (0.85, 0.95) and math.isnan(ens["ece_lo"])
    one = rows[("dawid_skene", "plain")]
    assert one["oa_mean"] == 0.7 and math.isnan(one["oa_lo"]) and math.isnan(one["oa_hi"])
    cols = list(oh)
    assert cols[:7] == ["regime", "method", "n_runs", "oa_mean", "oa_std", "oa_lo", "oa_hi"]


def test_paired_differences_by_hand():
    """oa differences 0.02, 0.04, 0.06: mean 0.04, s = 0.02, t_{2, 0.975} = 4.302653, so
    0.04 +- 4.302653 x 0.02 / sqrt(3) = 0.04 +- 0.049683 (a percentile bootstrap over the three
    seeds would have said [0.02, 0.06] and starred it). ece: -0.05 three times (up to rounding): an
    interval of width ~0 at -0.05."""
    rows = {(r["regime"], r["metric"]): r for r in paired_differences(_records())}
    oa = rows[("dist", "oa")]
    assert oa["n_pairs"] == 3 and oa["mean_diff"] == pytest.approx(0.04)
    assert (oa["ci_low"], oa["ci_high"]) == pytest.approx((0.04 - 0.049683, 0.04 + 0.049683), abs=1e-6)
    ece = rows[("dist", "ece")]
    assert ece["mean_diff"] == pytest.approx(-0.05)
    assert (ece["ci_low"], ece["ci_high"]) == pytest.approx((-0.05, -0.05), abs=1e-9)


def test_bootstrap_ci_brackets_and_degenerate():
    rng = np.random.default_rng(0)
    d = rng.normal(1.0, 0.5, 200)
    lo, hi = bootstrap_ci(d, n_boot=4000)
    se = d.std(ddof=1) / math.sqrt(d.size)
    assert lo < d.mean() < hi
    assert hi - lo == pytest.approx(2 * 1.96 * se, rel=0.15)
    assert all(math.isnan(v) for v in bootstrap_ci(np.array([1.0])))


def test_write_summary_files(tmp_path):
    paths = write_summary(tmp_path, _records(), [])
    rows = list(csv.DictReader(open(paths["summary.csv"])))
    assert {"regime", "method", "n_runs", "oa_mean", "oa_std", "ece_mean"} <= set(rows[0])
    ens = [r for r in rows if r["method"] == "ensemble"][0]
    assert ens["oa_std"] == ""
    md = paths["summary.md"].read_text()
    assert "| dist | plain | 3 |" in md and "dist − onehot" in md
    assert list(csv.DictReader(open(paths["paired.csv"])))[0]["metric"] == "oa"
    assert paths["verdict.csv"].read_text().startswith("regime,baseline,method,metric,n_pairs")


# ---------------------------------------------------------------- end to end

torch = pytest.importorskip("torch")


def _write_store(root, n=(24, 16, 20)):
    rng = np.random.default_rng(0)
    splits = {}
    for name, k in zip(("train", "val", "test"), n, strict=True):
        d = root / name
        d.mkdir(parents=True)
        votes = np.zeros((k, 11), np.int8)
        votes[:, :8] = rng.integers(1, 11, (k, 8))
        counts = np.stack([(votes == c + 1).sum(1) for c in range(10)], 1).astype(np.float32)
        dist = counts / counts.sum(1, keepdims=True)
        ent = -(np.where(dist > 0, dist * np.log(np.where(dist > 0, dist, 1)), 0)).sum(1)
        np.save(d / "image.npy", rng.integers(0, 3000, (k, 10, 32, 32)).astype(np.uint16))
        np.save(d / "label.npy", dist.argmax(1).astype(np.int64))
        np.save(d / "distribution.npy", dist)
        np.save(d / "dawid_skene.npy", dist)
        np.save(d / "votes.npy", votes)
        np.save(d / "original.npy", np.full(k, 2, np.int8))
        np.save(d / "city.npy", np.zeros(k, np.int16))
        np.save(d / "vote_entropy.npy", ent.astype(np.float32))
        splits[name] = {"n": k}
    (root / "manifest.json").write_text(json.dumps({"format": "lczldl-store", "version": 1,
                                                    "splits": splits, "cities": ["x"]}))


def _write_run(runs, store, regime, seed, status="finished", ckpt=True):
    from lczldl.models.io import save_model
    from lczldl.models.sen2lcz import Sen2LCZ

    run = runs / regime / f"seed{seed}"
    (run / "checkpoints").mkdir(parents=True)
    torch.manual_seed(seed)
    model = Sen2LCZ(num_classes=10, width=4)
    if ckpt:
        save_model(model, run / "checkpoints" / "best.ckpt")
    (run / "run.json").write_text(json.dumps({"status": status, "regime": regime, "seed": seed,
                                              "data": str(store)}))
    return run


def test_run_folder_names_round_trip_and_find_runs(tmp_path):
    from lczldl import layout
    from lczldl.evaluation.runs import find_runs

    for seed in (0, 7, 12):
        assert layout.seed_of(layout.run_dir(tmp_path, "dist", seed).name) == seed
    for name in ("seedx", "seed", "seed-1", "seed 3", "Seed3", "seed3.bak", "logs"):
        assert layout.seed_of(name) is None, name
    for regime, name in (("dist", "seed10"), ("dist", "seed2"), ("dist", "seedx"), ("onehot", "seed1")):
        (tmp_path / regime / name).mkdir(parents=True)
        (tmp_path / regime / name / "run.json").write_text("{}")
    assert [(p.parent.name, p.name) for p in find_runs(tmp_path)] == [          # seed order, not text
        ("dist", "seed2"), ("dist", "seed10"), ("onehot", "seed1")]


def _check_schema(path, n, n_val):
    """Every array of a predictions.npz is one of lczldl.evaluation.predictions.ARRAYS, with the
    shape and dtype it documents (N test, V validation images, K = 10 classes, E = 11 votes)."""
    from lczldl.evaluation.predictions import ARRAYS

    dims = {"N": n, "V": n_val, "K": 10, "E": 11}
    with np.load(path) as z:
        assert z.files
        for key in z.files:
            shape, dtype, _ = ARRAYS[key]
            assert z[key].shape == tuple(dims[d] for d in shape) and z[key].dtype == np.dtype(dtype), key


def test_evaluate_runs_end_to_end(tmp_path):
    from lczldl.config import EvaluationConfig
    from lczldl.evaluation.runs import evaluate_runs

    store, runs, out = tmp_path / "store", tmp_path / "runs", tmp_path / "eval"
    _write_store(store)
    for regime in ("onehot", "dist"):
        for seed in (0, 1):
            _write_run(runs, store, regime, seed)
    _write_run(runs, store, "dist", 2, ckpt=False)                   # broken: no best checkpoint
    _write_run(runs, store, "onehot", 3, status="running")           # not finished: skipped
    settings = EvaluationConfig(mc_passes=3, n_bins=10)
    res = evaluate_runs(runs, settings, out=out, progress=False)
    assert len(res["evaluated"]) == 4 and len(res["skipped"]) == 1
    bad = str(runs / "dist" / "seed2")
    assert list(res["failed"]) == [bad] and "best.ckpt" in res["failed"][bad]
    assert "best.ckpt" in (runs / "dist" / "seed2" / "eval_error.txt").read_text()
    assert json.loads((runs / "dist" / "seed2" / "run.json").read_text())["status"] == "finished"
    run = runs / "dist" / "seed0"
    with np.load(run / "predictions.npz") as z:
        for key in ("probs", "log_probs", "labels", "distributions", "vote_entropy", "votes", "city",
                    "val_log_probs", "val_labels", "val_distributions", "mc_probs", "mc_entropy",
                    "mc_mutual_info", "val_mc_probs"):
            assert key in z.files, key
        assert z["probs"].shape == (20, 10) and z["val_log_probs"].shape == (16, 10)
        assert z["val_mc_probs"].shape == (16, 10)
        probs = z["probs"]
    _check_schema(run / "predictions.npz", 20, 16)
    _check_schema(out / "ensemble" / "dist" / "predictions.npz", 20, 16)
    assert json.loads((run / "metrics.json").read_text())["meta"]["n_bins"] == 10
    assert json.loads((run / "metrics_mc.json").read_text())["meta"]["passes"] == 3
    # predictions equal the model's own output
    from lczldl.models.io import load_model
    m = load_model(run / "checkpoints" / "best.ckpt")
    x = np.load(tmp_path / "store" / "test" / "image.npy").astype(np.float32) / 10000
    np.testing.assert_allclose(probs, m.predict_proba(x).numpy(), atol=1e-5)
    ts = json.loads((run / "metrics_ts.json").read_text())
    assert ts["temperature"] > 0 and ts["meta"]["target"] == "distribution"
    assert "oa" in json.loads((run / "metrics.json").read_text())
    assert "ece" in json.loads((run / "metrics_mc.json").read_text())
    assert (out / "ensemble" / "dist" / "metrics.json").is_file()
    assert (out / "ensemble" / "dist" / "predictions.npz").is_file()
    rows = list(csv.DictReader(open(out / "summary.csv")))
    got = {(r["regime"], r["method"]): r["n_runs"] for r in rows}
    assert got == {(g, m): "2" for g in ("onehot", "dist") for m in ("plain", "temperature", "mc_dropout", "ensemble")}
    assert (out / "paired.csv").is_file() and (out / "summary.md").is_file()
    _check_ensemble_and_mc_from_files(runs, out, tmp_path / "store")
    _check_beyond_files(runs, out)
    # second call: predictions are not redone
    mtime = (run / "predictions.npz").stat().st_mtime_ns
    evaluate_runs(runs, settings, out=out, progress=False)
    assert (run / "predictions.npz").stat().st_mtime_ns == mtime


def _check_ensemble_and_mc_from_files(runs, out, store):
    """The ensemble is the mean of its members' saved probabilities; MC-dropout arrays equal the
    passes redone by hand with the evaluation's seed (0) and batches."""
    from lczldl.models.io import load_model

    members = []
    for seed in (0, 1):                                   # dist seed2 failed: not a member
        with np.load(runs / "dist" / f"seed{seed}" / "predictions.npz") as z:
            members.append((z["probs"].astype(np.float64), z["labels"]))
    mean = (members[0][0] + members[1][0]) / 2
    labels = members[0][1]
    with np.load(out / "ensemble" / "dist" / "predictions.npz") as z:
        np.testing.assert_allclose(z["probs"], mean, atol=1e-7)
        np.testing.assert_array_equal(z["labels"], labels)
        np.testing.assert_allclose(z["mean_member_confidence"],
                                   (members[0][0].max(1) + members[1][0].max(1)) / 2, atol=1e-7)
    ens = json.loads((out / "ensemble" / "dist" / "metrics.json").read_text())
    assert ens["oa"] == pytest.approx(float((mean.argmax(1) == labels).mean()))
    assert ens["mean_confidence"] == pytest.approx(float(mean.max(1).mean()), abs=1e-7)
    assert ens["meta"]["seeds"] == [0, 1] and ens["meta"]["n_bins"] == 10
    rows = list(csv.DictReader(open(out / "summary.csv")))
    row = next(r for r in rows if r["regime"] == "dist" and r["method"] == "ensemble")
    assert float(row["oa_mean"]) == pytest.approx(ens["oa"]) and row["oa_std"] == ""

    run = runs / "dist" / "seed0"
    model = load_model(run / "checkpoints" / "best.ckpt")
    x = torch.from_numpy(np.load(store / "test" / "image.npy").astype(np.float32) / 10000)
    model.eval()
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.train()
    torch.manual_seed(0)
    with torch.no_grad():
        passes = [model(x).double().exp().numpy() for _ in range(3)]
    mc_mean = np.mean(passes, axis=0)
    h = -(mc_mean * np.log(mc_mean)).sum(1)
    mi = h - np.mean([-(p * np.log(p)).sum(1) for p in passes], axis=0)
    with np.load(run / "predictions.npz") as z:
        np.testing.assert_allclose(z["mc_probs"], mc_mean, atol=1e-6)
        np.testing.assert_allclose(z["mc_entropy"], h, atol=1e-6)
        np.testing.assert_allclose(z["mc_mutual_info"], mi, atol=1e-6)
    xv = torch.from_numpy(np.load(store / "val" / "image.npy").astype(np.float32) / 10000)
    torch.manual_seed(0)                                  # val gets its own seeded passes
    with torch.no_grad():
        val_mc = np.mean([model(xv).double().exp().numpy() for _ in range(3)], axis=0)
    with np.load(run / "predictions.npz") as z:
        np.testing.assert_allclose(z["val_mc_probs"], val_mc, atol=1e-6)
    mc = json.loads((run / "metrics_mc.json").read_text())
    assert mc["mean_mutual_info"] == pytest.approx(float(mi.mean()), abs=1e-6)
    assert mc["oa"] == pytest.approx(float((mc_mean.argmax(1) == labels).mean()))


def _lac_set_size(cal_p, cal_y, p, level):
    """LAC sets by hand: q = the ceil((n + 1) level)-th smallest 1 - p_y on calibration."""
    scores = np.sort(1.0 - cal_p[np.arange(len(cal_y)), cal_y])
    k = math.ceil((len(scores) + 1) * level)
    q = np.inf if k > len(scores) else scores[k - 1]
    return float(((1.0 - p) <= q).sum(1).mean())


def _check_beyond_files(runs, out):
    """beyond_<method>.json per run and method with headline numbers checked by hand, their columns
    in summary.csv, and the ensemble's bootstrap interval equal to a plain loop over index draws."""
    from lczldl.evaluation.intervals import bootstrap_interval_loop

    run = runs / "dist" / "seed0"
    with np.load(run / "predictions.npz") as z:
        pred = {k: z[k] for k in z.files}
    for method, cal, test in (("plain", None, pred["probs"]), ("mc_dropout", pred["val_mc_probs"], pred["mc_probs"])):
        obj = json.loads((run / f"beyond_{method}.json").read_text())
        if cal is None:
            cal = np.exp(pred["val_log_probs"].astype(np.float64))
            cal /= cal.sum(1, keepdims=True)
        for lv in (0.9, 0.95):
            want = _lac_set_size(cal.astype(np.float64), pred["val_labels"], test.astype(np.float64), lv)
            assert obj[f"lac_{100 * lv:g}_set_size"] == pytest.approx(want, abs=1e-12), (method, lv)
        err = test.argmax(1) != pred["labels"]
        assert obj["meta"]["levels"] == [0.9, 0.95] and obj["detail"]["n"] == 20
        assert obj["detail"]["risk_coverage"]["risk"][-1] == pytest.approx(err.mean())
        assert ("auroc_mutual_info" in obj) == (method == "mc_dropout")
    assert (run / "beyond_temperature.json").is_file()
    rows = list(csv.DictReader(open(out / "summary.csv")))
    row = next(r for r in rows if r["regime"] == "dist" and r["method"] == "plain")
    per_seed = [json.loads((runs / "dist" / f"seed{s}" / "beyond_plain.json").read_text())["aurc"] for s in (0, 1)]
    assert float(row["aurc_mean"]) == pytest.approx(np.mean(per_seed))
    half = 12.706204736 * np.std(per_seed, ddof=1) / math.sqrt(2)    # t_{0.975, 1}: 2 seeds
    assert float(row["aurc_lo"]) == pytest.approx(np.mean(per_seed) - half, abs=1e-8)
    ens = next(r for r in rows if r["regime"] == "dist" and r["method"] == "ensemble")
    with np.load(out / "ensemble" / "dist" / "predictions.npz") as z:
        p, y = z["probs"].astype(np.float64), z["labels"]
        assert z["disagreement"].shape == (20,)
    lo, hi = bootstrap_interval_loop(lambda pp, yy: float((pp.argmax(1) == yy).mean()), [p, y])
    assert (float(ens["oa_lo"]), float(ens["oa_hi"])) == pytest.approx((lo, hi), abs=1e-12)
    assert "auroc_disagreement_mean" in ens and float(ens["lac_90_set_size_lo"]) <= float(ens["lac_90_set_size_mean"])
    assert (out / "ensemble" / "dist" / "beyond_ensemble.json").is_file()
