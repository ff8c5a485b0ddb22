"""Report of a study folder built in tmp_path (runs by hand, summary files by the evaluation's
writer): figures, tables read back against summary.csv / paired.csv, failures, browser render."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from lczldl.errors import RunError
from lczldl.evaluation.beyond import VoteSettings, evaluate_prediction
from lczldl.evaluation.files import write_metrics
from lczldl.evaluation.metrics import compute_metrics
from lczldl.viz import beyond_section as BS
from lczldl.viz import report as R

K = 10
PAPER = ("oa", "maa", "waa", "kappa", "ce_one_hot", "ce_distr", "ece", "mce", "sce")


def _predictions(rng, n, sharp):
    labels = rng.integers(0, K, n)
    dist = rng.dirichlet(np.full(K, 0.2), n) * 0.5
    dist[np.arange(n), labels] += 0.5
    z = rng.normal(size=(n, K)) + sharp * np.eye(K)[labels]
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    probs = np.exp(logp)
    ent = -(dist * np.log(np.where(dist > 0, dist, 1))).sum(1)
    votes = np.zeros((n, 11), dtype=np.int8)
    votes[:, :8] = (labels + 1)[:, None]
    return dict(probs=probs.astype(np.float32), log_probs=logp.astype(np.float32), labels=labels,
                distributions=dist.astype(np.float32), vote_entropy=ent.astype(np.float32), votes=votes,
                city=np.zeros(n, dtype=np.int16))


def _write_store(store: Path, rng) -> None:
    """A prepared store in the documented layout (readable by lczldl.data.store.open_store)."""
    splits = {}
    for s, n in (("train", 60), ("val", 20), ("test", 20)):
        d = store / s
        d.mkdir(parents=True)
        label = rng.integers(0, K, n)
        votes = np.zeros((n, 11), dtype=np.int8)
        votes[:, :7] = (label + 1)[:, None]
        votes[:, 7:10] = rng.integers(1, 18, (n, 3))
        dist = np.stack([(votes == c + 1).sum(1) for c in range(K)], 1).astype(np.float32)
        dist /= dist.sum(1, keepdims=True)
        np.save(d / "image.npy", np.zeros((n, 10, 32, 32), dtype=np.uint16))
        np.save(d / "label.npy", label.astype(np.int64))
        np.save(d / "distribution.npy", dist)
        np.save(d / "dawid_skene.npy", dist)
        np.save(d / "votes.npy", votes)
        np.save(d / "original.npy", (label + 1).astype(np.int8))
        np.save(d / "city.npy", np.zeros(n, dtype=np.int16))
        np.save(d / "vote_entropy.npy", np.zeros(n, dtype=np.float32))
        splits[s] = {"n": n, "class_counts": np.bincount(label, minlength=K).tolist(),
                     "entropy_bins": [n - 10, 6, 2, 1, 1, 0], "cities": {"berlin": n}}
    (store / "manifest.json").write_text(json.dumps({
        "format": "lczldl-store", "version": 1, "package_version": "0.1", "created": "2024-01-01",
        "splits": splits, "dropped": {"non_urban_majority": 123}, "cities": ["berlin"],
        "sources": {"berlin.h5": "ab" * 32}, "config": {"split": "authors"}}))


def make_study(root: Path, summary: bool = True, bins: int = 20) -> Path:
    """A finished-with-failures study: onehot seeds 0-2, dist seeds 0 and 2; dist seed 1 failed.
    summary.csv / paired.csv are written by the evaluation's own writer; metrics in ``bins``
    calibration bins (the paper's 20), recorded in metrics.json and study.json as the evaluation does."""
    from lczldl.evaluation.intervals import bootstrap_counts
    from lczldl.evaluation.summary import write_summary
    from lczldl.evaluation.verdict import claim_draws, verdict_rows

    rng = np.random.default_rng(0)
    claims = {}
    study = root / "study"
    store = study / "store"
    _write_store(store, rng)
    info = {
        "format": "lczldl-study", "version": 1, "data": str(store), "store": str(store),
        "regimes": ["onehot", "dist"], "seeds": [0, 1, 2], "status": "finished_with_failures",
        "run_config": {"evaluation": {"mc_passes": 20}, "train": {"max_epochs": 3}},
        "resolved_config": {"evaluation": {"n_bins": bins, "mc_passes": 20}},
        "study_config": {"workers": 1}, "versions": {"python": "3.11", "numpy": np.__version__},
        "failures": [{"id": "train-dist-seed1", "log": str(study / "logs" / "train-dist-seed1.log"),
                      "error": "RuntimeError: boom"}],
        "skipped": [{"id": "evaluate-dist-seed1", "reason": "upstream train-dist-seed1 failed"}],
        "notes": ["Reduced for time: 3 epochs instead of up to 300."],
    }
    (study / "study.json").write_text(json.dumps(info))
    records = []
    for reg, seed, sharp in (("onehot", 0, 3.0), ("onehot", 1, 3.2), ("onehot", 2, 3.1), ("dist", 0, 2.0),
                             ("dist", 2, 2.2)):
        run = study / "runs" / reg / f"seed{seed}"
        run.mkdir(parents=True)
        p = _predictions(rng, 200, sharp)
        np.savez(run / "predictions.npz", **p)
        m = compute_metrics(p["probs"], p["labels"], p["distributions"], bins)
        write_metrics(run / "metrics.json", m, {"n_bins": bins, "seed": seed})
        ts = np.exp(p["log_probs"] / 1.5)
        m_ts = {**compute_metrics(ts / ts.sum(1, keepdims=True), p["labels"], p["distributions"], bins),
                "temperature": 1.5}
        (run / "metrics_ts.json").write_text(json.dumps(m_ts))
        (run / "run.json").write_text(json.dumps({"status": "finished"}))
        val = _predictions(rng, 200, sharp)                 # the conformal calibration split
        head, detail, *_ = evaluate_prediction(p["probs"], p["labels"], p["votes"], p["vote_entropy"],
                                               cal_probs=val["probs"], cal_labels=val["labels"],
                                               cal_votes=val["votes"], vote=VoteSettings(m=10, variant="ecdf"))
        write_metrics(run / "beyond_plain.json", head, {"method": "plain", "levels": [0.9, 0.95]}, detail=detail)
        w = bootstrap_counts(len(p["labels"]), 50)
        claims[(reg, "plain", seed)] = claim_draws(p["probs"], p["labels"], p["distributions"], bins, w)
        claims[(reg, "temperature", seed)] = claim_draws(ts / ts.sum(1, keepdims=True), p["labels"],
                                                         p["distributions"], bins, w)
        records += [{"regime": reg, "method": "plain", "seed": seed, "metrics": {**m, **head}},
                    {"regime": reg, "method": "temperature", "seed": seed, "metrics": m_ts}]
    (study / "runs" / "dist" / "seed1").mkdir()          # failed run: folder without outputs
    if summary:
        write_summary(study, records, verdict_rows(claims))
        _write_budget_table(study, records)
    return study


def _write_budget_table(study: Path, records: list[dict]) -> None:
    """A vote-budget table by the evaluation's own rows and writer: "all" = the plain records, k = 1
    and 3 the same numbers shifted (the report reads, never recomputes them)."""
    from lczldl.evaluation.budget import budget_rows
    from lczldl.evaluation.summary import to_csv

    plain = [r for r in records if r["method"] == "plain"]
    metrics = ["ce_distr", "ece", "aps_90_vote_coverage", "oa"]
    values = {k: {reg: [{m: r["metrics"][m] + shift for m in metrics} for r in plain if r["regime"] == reg]
                  for reg in ("onehot", "dist")} for k, shift in (("1", 0.05), ("3", 0.02), ("all", 0.0))}
    counts = {k: {"train_kept": n, "train_short_rows": 0, "train_no_urban_rows": 2, "train_non_urban_majority": 1}
              for k, n in (("1", 97), ("3", 99), ("all", 100))}
    (study / "budget").mkdir()
    (study / "budget" / "budget.csv").write_text(to_csv(budget_rows(values, counts, metrics, "random", 0)))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The hand-made study after `lczldl figures --study STUDY --pdf`: every figure and the report
    drawn from its saved files (~15 s of CPU: its tests are ``slow``)."""
    from lczldl.cli.main import main

    study = make_study(tmp_path_factory.mktemp("rep"))
    assert not (study / "figures").exists() and not (study / "report.html").exists()
    main(["figures", "--study", str(study), "--pdf"])
    return study


@pytest.mark.slow
def test_the_report_opens_with_the_verdict(built):
    """The verdict table (verdict.csv, 4 claims of dist: seeds 0 and 2 paired with one-hot) comes
    right after the status, before the data and the results."""
    md = (built / "report.md").read_text()
    assert md.index("Verdict on the paper's claims") < md.index("Prepared store") < md.index("Results (test set")
    section = md[md.index("Verdict on the paper's claims"):md.index("Prepared store")]
    assert section.count("dist vs onehot:") == 4 and "not resolved with 2 seeds at this budget" in section
    assert "Holm" in section


@pytest.mark.slow
def test_every_figure_written(built):
    for stem, _ in R.FIGURES + BS.FIGURES:
        for ext in ("png", "pdf"):
            f = built / "figures" / f"{stem}.{ext}"
            assert f.is_file() and f.stat().st_size > 2000, f
    assert not [p for p in built.rglob("*") if ".tmp" in p.name]


@pytest.mark.slow
def test_html_is_self_contained(built):
    html = (built / "report.html").read_text()
    imgs = re.findall(r"<img [^>]*src=\"([^\"]+)\"", html)
    assert len(imgs) == len(R.FIGURES) + len(BS.FIGURES)
    assert all(s.startswith("data:image/png;base64,") for s in imgs)
    assert not re.search(r"(src|href)=\"(https?:)?//", html)
    assert "http://" not in html and "https://" not in html
    assert "<link" not in html and "<script" not in html


@pytest.mark.slow
def test_tables_hold_the_summary_values(built):
    html = (built / "report.html").read_text()
    rows = list(csv.DictReader(open(built / "summary.csv")))
    oh = next(r for r in rows if r["regime"] == "onehot" and r["method"] == "plain")
    assert f"{float(oh['oa_mean']):.4f} ± {float(oh['oa_std']):.4f}" in html
    d = next(r for r in rows if r["regime"] == "dist" and r["method"] == "temperature")
    assert f"{float(d['ece_mean']):.4f} ± {float(d['ece_std']):.4f}" in html
    for m in PAPER:
        assert f"<th>{m}</th>" in html
    assert "<th>balanced_accuracy</th>" in html and "<th>temperature</th>" in html   # extras table
    assert "<th>oa &lt; 0.2</th>" in html                                            # per entropy bin
    # every paired row as "diff [lo, hi]", marked exactly when the interval excludes 0
    marked, beyond = 0, 0
    for r in csv.DictReader(open(built / "paired.csv")):
        if "" in (r["mean_diff"], r["ci_low"]):                 # undefined (e.g. an empty entropy bin)
            continue
        if r["metric"].startswith(("lac_", "aps_", "raps_", "votecal_", "aurc", "eaurc", "acc_at_", "auroc_",
                                   "spearman_")):
            beyond += 1                                         # the beyond-the-paper metrics: paired.csv only
            continue
        d, lo, hi = float(r["mean_diff"]), float(r["ci_low"]), float(r["ci_high"])
        sig = lo > 0 or hi < 0
        cell = f"{d:+.4f} [{lo:+.4f}, {hi:+.4f}]" + (" *" if sig else "")
        assert f">{cell}</td>" in html, cell
        marked += sig
    assert 0 < marked == html.count('class="sig"')
    assert beyond > 0 and "rows of the beyond-the-paper metrics (conformal sets" in html
    # results and paired comparisons each in their three tables
    assert html.count("<h3>Paper metrics</h3>") == html.count("<h3>Further metrics</h3>") == 2


@pytest.mark.slow
def test_best_value_is_marked(built):
    html = (built / "report.html").read_text()
    rows = list(csv.DictReader(open(built / "summary.csv")))
    best = min(float(r["ece_mean"]) for r in rows)                # lower is better
    assert re.search(rf'<td class="best">{best:.4f}', html)
    best = max(float(r["kappa_mean"]) for r in rows)              # higher is better
    assert re.search(rf'<td class="best">{best:.4f}', html)
    worst = max(float(r["mean_confidence_mean"]) for r in rows)   # descriptive: never marked
    assert not re.search(rf'<td class="best">{worst:.4f}', html)


@pytest.mark.slow
def test_failures_missing_runs_data_and_config(built):
    html = (built / "report.html").read_text()
    md = (built / "report.md").read_text()
    for text in (html, md):
        assert "train-dist-seed1" in text and "boom" in text
        assert "dist seed 1: no test metrics" in text
        assert "non_urban_majority" in text and "123" in text
        assert "mc_passes" in text and np.__version__ in text
        assert "About this study" in text and "3 epochs instead of up to 300" in text
    # markdown references the figures by relative path and they exist
    refs = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(refs) == len(R.FIGURES) + len(BS.FIGURES)
    assert all(not Path(r).is_absolute() and (built / r).is_file() for r in refs)


@pytest.mark.slow
def test_beyond_the_paper_section(built):
    md = (built / "report.md").read_text()
    sec = md[md.index("## Beyond the paper"):md.index("## Configuration and versions")]
    for stem, caption in BS.FIGURES:                       # every figure with its one-line caption
        assert f"![{stem}](figures/{stem}.png)" in sec
        assert f"*{caption.format(level='90', score='APS', vote_m=10, vote_variant='ecdf', budget_set='APS 90 %')}*" in sec
    rows = list(csv.DictReader(open(built / "summary.csv")))
    oh = next(r for r in rows if r["regime"] == "onehot" and r["method"] == "plain")
    for key in ("aps_90_set_size", "raps_95_plausible_jaccard", "aurc", "acc_at_90", "auroc_max_prob"):
        assert f"{float(oh[key + '_mean']):.4f} ± {float(oh[key + '_std']):.4f}" in sec, key
    assert "### Conformal prediction sets at 90 %" in sec and "### Conformal prediction sets at 95 %" in sec
    assert "| LAC coverage | LAC size | LAC vote cov. | LAC Jaccard |" in sec
    for key in ("votecal_aps_90_set_size", "votecal_lac_95_vote_coverage", "aps_90_covgap_votes",
                "votecal_aps_90_sscv_label"):
        assert f"{float(oh[key + '_mean']):.4f} ± {float(oh[key + '_std']):.4f}" in sec, key
    assert "### Sets calibrated on the experts' votes at 95 % (Monte Carlo conformal)" in sec
    # the vote-budget table: every row of budget.csv, mean [lo, hi] and the counts
    assert "### How many votes per image does training need? (vote budget)" in sec
    for r in csv.DictReader(open(built / "budget" / "budget.csv")):
        lo = float(r["oa_lo"]) if r["oa_lo"] else float("nan")
        cell = (f"{float(r['oa_mean']):.4f} [{lo:.4f}, {float(r['oa_hi']):.4f}]" if r["oa_lo"]
                else f"{float(r['oa_mean']):.4f}")
        assert f"| {r['k']} | {'one-hot' if r['regime'] == 'onehot' else 'distribution'} | {r['n_runs']} | " \
               f"{int(r['train_kept']):,} |" in sec and cell in sec
    # the temperature rows have no beyond file here: they are not listed in the beyond tables
    assert "temperature scaling" not in sec.split("### Selective prediction")[1].split("###")[0]


@pytest.mark.slow
def test_report_with_intervals(built, tmp_path):
    """--intervals: every results cell is mean [lo, hi] with the lo / hi of summary.csv (Student t over
    the seeds, checked by hand for one cell)."""
    study = tmp_path / "study"
    shutil.copytree(built, study)
    R.write_report(study, intervals=True)
    html = (study / "report.html").read_text()
    rows = list(csv.DictReader(open(study / "summary.csv")))
    oh = next(r for r in rows if r["regime"] == "onehot" and r["method"] == "plain")
    lo, hi = float(oh["oa_lo"]), float(oh["oa_hi"])
    runs = [json.loads((study / "runs" / "onehot" / f"seed{s}" / "metrics.json").read_text())["oa"] for s in range(3)]
    half = 4.302652729911275 * np.std(runs, ddof=1) / np.sqrt(3)          # t_{0.975, 2}
    assert (lo, hi) == pytest.approx((np.mean(runs) - half, np.mean(runs) + half), abs=1e-9)
    assert f"{float(oh['oa_mean']):.4f} [{lo:.4f}, {hi:.4f}]" in html
    assert f"{float(oh['oa_mean']):.4f} ± " not in html and "mean [95 % interval]" in html


def test_status_while_the_report_unit_runs():
    """study.json says "running" while the report (the last unit) is written; the report states the
    final status once every other unit has ended, and keeps "running" otherwise."""
    def info(*states: str) -> dict:
        units = {f"u{i}": {"kind": "train", "status": s} for i, s in enumerate(states)}
        units["report"] = {"kind": "report", "status": "running"}
        return {"status": "running", "units": units}

    assert R.study_status(info("done", "done")) == "finished"
    assert R.study_status(info("done", "failed")) == "finished_with_failures"
    assert R.study_status(info("done", "skipped")) == "finished_with_failures"
    assert R.study_status(info("done", "running")) == "running"
    assert R.study_status({"status": "interrupted", "units": {}}) == "interrupted"
    assert R.study_status({}) == "unknown"


def test_without_summary_files_the_report_says_so(tmp_path):
    """The report reads the evaluation's summary files; it does not recompute them."""
    study = make_study(tmp_path, summary=False)
    st = R.load_study(study)
    assert st.runs["onehot"][0].temperature == 1.5
    html, md = R.write_report(study)
    text = html.read_text()
    assert "No summary.csv in the study folder yet" in text and "<th>oa</th>" not in text
    assert "No paired.csv" in text
    assert "No figures" in text                              # write_report alone draws nothing


@pytest.fixture
def unrendered(monkeypatch):
    """Figures built but not rendered (``savefig`` writes a placeholder into save_figure's buffer):
    for tests of what goes into the figures and which files are written, not of their pixels
    (the ``built`` study renders every figure as PNG and PDF)."""
    from matplotlib.figure import Figure

    monkeypatch.setattr(Figure, "savefig", lambda self, buf, **kw: buf.write(b"unrendered"))


def test_binned_figures_use_the_recorded_bins(tmp_path, monkeypatch, unrendered):
    """The reliability and per-entropy-bin figures bin as the runs' metrics.json record (else as
    study.json's resolved evaluation settings); with neither they are left out, and noted."""
    seen = []
    for name in ("plot_reliability_grid", "plot_metrics_by_entropy_bin"):
        monkeypatch.setattr(R, name, lambda *a, n_bins, _name=name, **kw: seen.append((_name, n_bins)) or [])
    study = make_study(tmp_path, bins=10)
    info = json.loads((study / "study.json").read_text())
    info["resolved_config"]["evaluation"]["n_bins"] = 15             # the runs' own record wins
    (study / "study.json").write_text(json.dumps(info))
    assert R.load_study(study).n_bins == 10
    R.draw_figures(study, pdf=False)                                 # (the bins, not the formats)
    assert seen == [("plot_reliability_grid", 10), ("plot_metrics_by_entropy_bin", 10)]
    for run in (study / "runs").glob("*/seed*"):
        if (run / "metrics.json").is_file():                         # metrics without their "meta"
            m = json.loads((run / "metrics.json").read_text())
            (run / "metrics.json").write_text(json.dumps({k: v for k, v in m.items() if k != "meta"}))
    assert R.load_study(study).n_bins == 15
    del info["resolved_config"]
    (study / "study.json").write_text(json.dumps(info))
    seen.clear()
    st = R.load_study(study)
    assert st.n_bins is None
    assert study / "figures" / "confusion_matrices.png" in R._draw(st, pdf=False) and seen == []
    assert any("reliability and per-entropy-bin figures left out" in n for n in st.notes)


def test_not_a_study_and_corrupt_files(tmp_path):
    with pytest.raises(RunError, match="not a study folder"):
        R.draw_figures(tmp_path)
    study = make_study(tmp_path)
    (study / "runs" / "onehot" / "seed0" / "metrics.json").write_text("{not json")
    with pytest.raises(RunError, match="metrics.json: not valid JSON"):
        R.write_report(study)


def _capture_figures(monkeypatch) -> dict[str, object]:
    """Keep the Figure of every entropy / confusion figure the report saves, by file stem."""
    from lczldl.viz.figures import confusion, entropy

    figs: dict[str, object] = {}
    for mod in (entropy, confusion):
        real = mod.save_figure

        def save(fig, stem, _real=real):
            figs[Path(stem).name] = fig
            return _real(fig, stem)

        monkeypatch.setattr(mod, "save_figure", save)
    return figs


def _vote_figures(figs: dict) -> tuple[list[float], list[float], list[str], str, np.ndarray]:
    """(urban bar heights, non-urban bar heights, legend labels, note, voting image) drawn."""
    ax = figs["vote_entropy_bars"].axes[0]
    urban, non_urban = (c for c in ax.containers if c.__class__.__name__ == "BarContainer")
    note = " ".join(t.get_text() for t in figs["vote_entropy_bars"].texts)
    return ([b.get_height() for b in urban], [b.get_height() for b in non_urban],
            [urban.get_label(), non_urban.get_label()], note,
            np.ma.filled(figs["voting_confusion"].axes[0].images[0].get_array(), np.nan))


def _row_percent_by_hand(counts: np.ndarray) -> np.ndarray:
    out = np.full(counts.shape, np.nan)
    for i, row in enumerate(counts):
        if row.sum():
            out[i] = [100 * c / row.sum() for c in row]
    return out


def _twin_study(root: Path, store: Path) -> Path:
    study = root / "twin_study"
    study.mkdir()
    (study / "study.json").write_text(json.dumps({"format": "lczldl-study", "version": 1, "store": str(store),
                                                  "regimes": [], "seeds": []}))
    return study


def test_vote_figures_show_every_raw_image_from_the_manifest(tmp_path, tiny_twin, monkeypatch):
    _, store, want = tiny_twin
    figs = _capture_figures(monkeypatch)
    study = _twin_study(tmp_path, store)
    paths = R.draw_figures(study, pdf=False)
    assert study / "figures" / "vote_entropy_bars.png" in paths and study / "figures" / "voting_confusion.png" in paths
    urban, non_urban, labels, note, img = _vote_figures(figs)
    for got, group in ((urban, "urban"), (non_urban, "non_urban")):
        c = want["entropy_bins"][group]
        np.testing.assert_allclose(got, [100 * x / sum(c) for x in c])
    assert sum(want["entropy_bins"]["non_urban"]) > 0 and max(non_urban) > 0      # the bars are there
    assert labels == [f"urban majority (n = {sum(want['entropy_bins']['urban']):,})",
                      f"non-urban majority (n = {sum(want['entropy_bins']['non_urban']):,})"]
    assert f"all {want['rows']:,} images of the raw release" in note
    assert f"{want['rows_without_votes']} without any vote" in note and R.STORE_VOTES_NOTE not in note
    np.testing.assert_allclose(img, _row_percent_by_hand(want["voting_counts"]))
    assert f"({int(want['voting_counts'].sum()):,} votes)" in figs["voting_confusion"].axes[0].get_title()


def _store_rows_by_hand(store: Path) -> tuple[list[int], np.ndarray]:
    """Entropy-bin counts (all 17 LCZ, paper bins) and original x vote counts of the store's own rows."""
    bins, voting = [0] * 6, np.zeros((10, 10), dtype=np.int64)
    for s in ("train", "val", "test"):
        for row, orig in zip(np.load(store / s / "votes.npy").tolist(), np.load(store / s / "original.npy").tolist(),
                             strict=True):
            cast = [v for v in row if v]
            shares = [cast.count(c) / len(cast) for c in set(cast)]
            ent = -sum(q * np.log(q) for q in shares)
            bins[sum(ent >= e for e in (0.2, 0.5, 0.7, 1.0, 1.3))] += 1
            for v in cast:
                if 1 <= v <= 10 and 1 <= orig <= 10:
                    voting[orig - 1, v - 1] += 1
    return bins, voting


def test_store_prepared_before_release_votes_falls_back_to_its_rows(tmp_path, tiny_twin, monkeypatch):
    _, twin_store, _ = tiny_twin
    store = tmp_path / "old_store"
    shutil.copytree(twin_store, store)
    manifest = json.loads((store / "manifest.json").read_text())
    del manifest["release_votes"]                            # as prepare wrote it before the key existed
    (store / "manifest.json").write_text(json.dumps(manifest))
    figs = _capture_figures(monkeypatch)
    R.draw_figures(_twin_study(tmp_path, store))
    urban, non_urban, labels, note, img = _vote_figures(figs)
    bins, voting = _store_rows_by_hand(store)
    np.testing.assert_allclose(urban, [100 * x / sum(bins) for x in bins])
    assert non_urban == [0.0] * 6 and labels[1] == "non-urban majority (n = 0)"
    assert labels[0] == f"urban majority (n = {sum(s['n'] for s in manifest['splits'].values()):,})"
    assert note == R.STORE_VOTES_NOTE
    np.testing.assert_allclose(img, _row_percent_by_hand(voting))


def test_vote_figures_read_the_store_never_raw_files(tmp_path, unrendered):
    from lczldl.viz import reader

    study = make_study(tmp_path)
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "berlin.h5").write_bytes(b"not an hdf5 file: reading it would fail")
    info = json.loads((study / "study.json").read_text())
    info["data"] = str(raw)                                  # the study was started on raw files
    (study / "study.json").write_text(json.dumps(info))
    rv = reader.release_votes(R.load_study(study))           # hand-made manifest: no release_votes
    bins, voting = _store_rows_by_hand(study / "store")
    assert not rv.whole_release and rv.rows == 100 and rv.rows_without_votes == 0
    np.testing.assert_array_equal(rv.urban, bins)
    np.testing.assert_array_equal(rv.voting, voting)
    # the store's votes include non-urban ones (LCZ 11-17), but its majorities are all urban
    np.testing.assert_array_equal(rv.non_urban, np.zeros(6))
    paths = R.draw_figures(study, pdf=False)
    assert study / "figures" / "vote_entropy_bars.png" in paths


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars"]


@pytest.mark.browser
@pytest.mark.skipif(_chromium() is None, reason="no chromium binary on PATH (CI installs the Debian package)")
@pytest.mark.slow
def test_report_renders_in_headless_chromium(built, tmp_path):
    url = (built / "report.html").resolve().as_uri()
    cmd = [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(cmd + ["--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    imgs = re.findall(r"<img [^>]*src=\"data:image/png;base64,", dom)
    # every figure the page embeds (the paper's figures and the beyond-the-paper ones) reached the DOM
    written = (built / "report.html").read_text(encoding="utf-8").count("<img ")
    assert len(imgs) == written >= len(R.FIGURES)
    tables = re.findall(r"<table>.*?</table>", dom, flags=re.S)
    results = next(t for t in tables if "<th>ce_distr</th>" in t)
    assert len(re.findall(r"<tr>", results)) == 1 + 4      # header + onehot/dist x plain/temperature
    assert "train-dist-seed1" in dom
    shot = tmp_path / "report.png"
    subprocess.run(cmd + ["--window-size=1280,2400", f"--screenshot={shot}", url],
                   capture_output=True, timeout=120)
    assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # decoded images really are PNGs that the browser laid out with a size
    assert shot.stat().st_size > 50_000


def test_text_columns_are_left_aligned_and_numbers_right():
    from lczldl.viz.render import _html_table

    page = _html_table(["claim", "n", "interval", "verdict", "cities"],
                       [["dist: ece", "2", "[-0.12, +0.18]", "not resolved with 2 seeds at this budget", "rome 553"],
                        ["dist: ce_distr", "5", "[-0.09, -0.03]", "lower", "–"]])
    heads = re.findall(r"<th( class=\"txt\")?>([^<]*)</th>", page)
    assert [h for klass, h in heads if klass] == ["claim", "verdict", "cities"]   # words: left
    assert [h for klass, h in heads if not klass] == ["n", "interval"]          # numbers: right
    assert '<td class="txt">lower</td>' in page and "<td>5</td>" in page
