"""Owns the study's figures folder and report: which figures are drawn from which saved files
(:func:`draw_figures`), the report's sections (:func:`write_report`), and
``lczldl figures --study`` (:func:`redraw_study`). Inputs come from :mod:`lczldl.viz.reader`
(saved files only; no model is run and no summary is recomputed), the tables' cells from
:mod:`lczldl.viz.tables`, the text is laid out by :mod:`lczldl.viz.render`.

Writes ``STUDY/figures/*.png|pdf``, ``STUDY/report.html`` and ``STUDY/report.md`` (atomically).
Missing inputs leave their figure or table out and are listed in the report; they are not errors
(a study with failed runs still gets a report).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lczldl import layout
from lczldl.data.store import manifest_has_votes
from lczldl.evaluation import predictions as P
from lczldl.evaluation import verdict
from lczldl.evaluation.files import read_verdict
from lczldl.evaluation.registry import ENTROPY_BIN, METRICS
from lczldl.evaluation.temperature import apply_temperature
from lczldl.fileio import atomic_write_text
from lczldl.regimes import regime_label
from lczldl.viz.beyond_section import beyond_section, draw_beyond
from lczldl.viz.figures.confusion import plot_confusion_matrices, plot_voting_confusion
from lczldl.viz.figures.entropy import (
    plot_entropy_hexbin,
    plot_metrics_by_entropy_bin,
    plot_vote_entropy_bars,
)
from lczldl.viz.figures.reliability import plot_reliability_grid
from lczldl.viz.figures.seeds import plot_seed_dots
from lczldl.viz.reader import (
    ReleaseVotes,
    Study,
    load_study,
    paired_rows,
    release_votes,
    run_predictions,
    summary_rows,
)
from lczldl.viz.render import Document
from lczldl.viz.style import figure_formats
from lczldl.viz.tables import (
    RESULT_GROUPS,
    TEST_SAMPLING_MARK,
    class_names,
    data_tables,
    metric_groups,
    paired_table,
    paired_title,
    per_class_table,
    results_table,
    sort_rows,
)

#: Figure file stems (STUDY/figures/STEM.png|pdf).
CONFUSION, RELIABILITY, VOTE_ENTROPY, VOTING, ENTROPY_BINS, HEXBIN, SEEDS = (
    "confusion_matrices", "reliability", "vote_entropy_bars", "voting_confusion", "metrics_by_entropy_bin",
    "entropy_hexbin", "seed_metrics")
#: Figure file stems in report order, with their one-line captions ({n_bins}: the study's bins).
FIGURES: tuple[tuple[str, str], ...] = (
    (CONFUSION, "Confusion matrices on the test set, percent of each majority-vote class "
                           "(rows), predictions of all seeds pooled, one panel per regime."),
    (RELIABILITY, "Reliability diagrams ({n_bins} confidence bins (lo, hi], bar opacity = share of "
                    "samples, hatched = gap to calibration) before and after temperature scaling, lowest "
                    "seed of each regime; confidence histogram below."),
    (VOTE_ENTROPY, "Share of images per vote-entropy bin (the paper's bins, entropy of all 17 "
                          "classes' votes) for urban and non-urban majority classes."),
    (VOTING, "Original So2Sat label vs individual expert votes, percent of each row's votes "
                         "for LCZ 1-10."),
    (ENTROPY_BINS, "Accuracy and ECE per vote-entropy bin of the test images, mean over "
                               "seeds (error bars: std), plain models."),
    (HEXBIN, "Predictive entropy of the model vs entropy of the expert votes (test images, "
                       "seeds pooled); dashed: y = x."),
    (SEEDS, "Key test metrics of every seed (dots) and their mean (bar), plain models."),
)
#: How the report's intervals were computed (docs/metrics.md, "Intervals").
INTERVALS_NOTE = ("With --intervals the cells are mean [95 % interval] (summary.csv <metric>_lo / _hi): "
                  "over seeds a Student t interval of the mean, honest but very wide with 2 seeds "
                  f"(t = 12.7); for the ensemble ({TEST_SAMPLING_MARK}: one model) a percentile bootstrap "
                  "over test images (1,000 draws, validation-fitted parts not resampled), which reflects "
                  "test sampling only, not training variability.")
#: Why a study on a store without votes has no vote metrics or vote figures (one line in the report).
#: the verdict section of a study on a store without votes
NO_VERDICT_WITHOUT_VOTES = ("None: the paper's claims compare distribution training with one-hot training on the "
                            "experts' votes, which this store does not have.")
NO_VOTES_NOTE = ("This store has no expert votes (one label per image, So2Sat LCZ42), so the vote entropy, the "
                 "metrics against the vote distribution (ce_distr, Brier / KL / JS / TV), vote coverage and the "
                 "per-vote-entropy-bin metrics and figures are left out.")
#: Source line of the vote figures for a store prepared before the manifest had ``release_votes``:
#: its own rows, which are urban-majority images only.
STORE_VOTES_NOTE = ("Source: prepared store (urban-majority images only; non-urban images were dropped "
                    "when preparing).")


def vote_source_note(rv: ReleaseVotes) -> str:
    """The source line under the vote-entropy figure: every image of the raw release (and how many
    had no vote, so no entropy), or :data:`STORE_VOTES_NOTE` for an older store's own rows."""
    if not rv.whole_release:
        return STORE_VOTES_NOTE
    left_out = f"; {rv.rows_without_votes:,} without any vote left out" if rv.rows_without_votes else ""
    return f"Source: all {rv.rows:,} images of the raw release, counted when the store was prepared{left_out}."


# ---------------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------------


def draw_figures(study: Path, pdf: bool | None = None) -> list[Path]:
    """Draw every figure whose inputs exist into STUDY/figures/ (PNG, and PDF when ``pdf``; None:
    the study's ``study.figures_pdf``); returns the paths."""
    return _draw(load_study(Path(study)), pdf)


def _prediction_figures(st: Study, fig_dir: Path) -> list[Path]:
    """Confusion matrices, reliability grid, per-entropy-bin metrics and hexbin from predictions
    (the binned figures in the study's recorded bins; left out, and noted, without them)."""
    preds = run_predictions(st)
    if not preds:
        return []
    k = next(iter(preds.values()))[0][1][P.PROBS].shape[1]
    written = plot_confusion_matrices(
        {reg: (np.concatenate([p[P.LABELS] for _, p in rp]),
               np.concatenate([p[P.PROBS].argmax(axis=1) for _, p in rp])) for reg, rp in preds.items()},
        fig_dir / CONFUSION, k=k)
    with_ent = {reg: [(p[P.PROBS], p[P.LABELS], p[P.VOTE_ENTROPY]) for _, p in rp if P.VOTE_ENTROPY in p]
                for reg, rp in preds.items()}
    with_ent = {k: v for k, v in with_ent.items() if v}
    if st.n_bins is None:
        st.notes.append(f"calibration bins recorded neither in the runs' {layout.METRICS} nor in "
                        f"{layout.STUDY_INFO}: reliability and per-entropy-bin figures left out")
    else:
        panels: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
        for reg, rp in preds.items():
            run, p = rp[0]
            panels[reg] = {"plain": (p[P.PROBS], p[P.LABELS])}
            if run.temperature is not None and P.LOG_PROBS in p:
                panels[reg]["temperature"] = (apply_temperature(p[P.LOG_PROBS], run.temperature), p[P.LABELS])
        written += plot_reliability_grid(panels, fig_dir / RELIABILITY, n_bins=st.n_bins)
        if with_ent:
            written += plot_metrics_by_entropy_bin(with_ent, fig_dir / ENTROPY_BINS, n_bins=st.n_bins)
    if with_ent:
        written += plot_entropy_hexbin(
            {reg: (np.concatenate([t[0] for t in v]), np.concatenate([t[2] for t in v]))
             for reg, v in with_ent.items()}, fig_dir / HEXBIN)
    return written


def _draw(st: Study, pdf: bool | None = None) -> list[Path]:
    with figure_formats(st.figures_pdf if pdf is None else pdf):
        return _draw_all(st)


def _draw_all(st: Study) -> list[Path]:
    fig_dir = st.path / layout.FIGURES_DIR
    written = _prediction_figures(st, fig_dir)
    rv = release_votes(st)
    if rv is not None:
        written += plot_vote_entropy_bars(rv.urban, rv.non_urban, fig_dir / VOTE_ENTROPY,
                                            note=vote_source_note(rv))
        written += plot_voting_confusion(rv.voting, fig_dir / VOTING)
    per_seed = {reg: [r.metrics["plain"] for _, r in sorted(st.runs.get(reg, {}).items()) if "plain" in r.metrics]
                for reg in st.regimes}
    per_seed = {k: v for k, v in per_seed.items() if v}
    if per_seed:
        written += plot_seed_dots(per_seed, fig_dir / SEEDS)
    return written + draw_beyond(st, fig_dir)


# ---------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------


def study_status(info: dict[str, Any]) -> str:
    """The study's status as the report should state it. The report is the study's last unit, so
    while it runs study.json still says "running"; when every other unit has ended, the results
    are final: "finished" (or "finished_with_failures" when a unit failed or was skipped)."""
    status = str(info.get("status", "unknown"))
    units = [u for u in (info.get("units") or {}).values() if u.get("kind") != "report"]
    if status == "running" and units and all(u.get("status") in ("done", "failed", "skipped") for u in units):
        return "finished" if all(u.get("status") == "done" for u in units) else "finished_with_failures"
    return status


def _status_section(d: Document, st: Study) -> None:
    info = st.info
    meta = [f"status: {study_status(info)}",
            f"regimes: {', '.join(regime_label(r) for r in st.regimes) or 'none'}",
            f"seeds: {', '.join(map(str, st.seeds)) or 'none'}"]
    meta += [f"{k}: {info[k]}" for k in ("created", "updated", "executor", "workers") if info.get(k) is not None]
    d.para(" · ".join(meta), "meta")
    if info.get("notes"):
        d.heading("About this study")
        d.items([str(n) for n in info["notes"]])
    failures, skipped = info.get("failures") or [], info.get("skipped") or []
    if failures or skipped:
        d.heading("Failed units")
        lines = [f"FAILED {f.get('id')}: {f.get('error') or 'error'} (log: {f.get('log')})" for f in failures]
        lines += [f"skipped {s.get('id')}: {s.get('reason') or 'upstream failed'}" for s in skipped]
        d.items(lines, "warn")
    if st.notes:
        d.heading("Missing inputs")
        d.items(st.notes, "warn")


def _data_section(d: Document, st: Study) -> None:
    d.heading("Data")
    if not st.manifest:
        d.para("No prepared store found.", "warn")
        return
    m = st.manifest
    d.para(f"Prepared store {st.store} (created {m.get('created', '?')}, lczldl {m.get('package_version', '?')}); "
           f"split: {(m.get('config') or {}).get('split', '?')}.")
    for t, header, cells in data_tables(m):
        d.heading(t, 3)
        d.table(header, cells)


def _results_section(d: Document, st: Study, intervals: bool) -> None:
    rows = sort_rows(summary_rows(st))
    d.heading("Results (test set, " + ("mean [95 % interval])" if intervals else "mean ± std over seeds)"))
    if st.manifest and not manifest_has_votes(st.manifest):
        d.para(NO_VOTES_NOTE)
    if not rows:
        d.para(f"No {layout.SUMMARY_CSV} in the study folder yet (it is written when the runs are "
               "aggregated: the study's aggregate unit or `lczldl evaluate`).", "warn")
        return
    d.para(f"Source: {layout.SUMMARY_CSV}. Best mean of each column in bold (accuracies, kappa: higher is "
           "better; cross-entropies and calibration errors: lower is better; mean confidence and "
           "over-confidence (mean confidence minus accuracy) are not ranked). Ensemble rows are one model "
           "(the mean of the seeds' probabilities), so they have no std. " + INTERVALS_NOTE)
    for title, groups, cols in metric_groups(rows):
        if cols:
            header = [METRICS[k].label for k in cols] if ENTROPY_BIN in groups else None
            d.heading(title, 3)
            d.table(*results_table(rows, cols, header, intervals), text_cols=2)


def _verdict_section(d: Document, st: Study) -> None:
    """The answer to each of the paper's claims (verdict.csv), first thing after the status."""
    d.heading("Verdict on the paper's claims")
    if st.manifest and not manifest_has_votes(st.manifest):
        d.para(NO_VERDICT_WITHOUT_VOTES)
        return
    rows = read_verdict(st.path / layout.VERDICT_CSV)
    if not rows:
        d.para(f"No verdict yet ({layout.VERDICT_CSV}): the study's aggregate unit or `lczldl evaluate` "
               "writes it once one-hot and a distributional regime (dist, dist_ls) have evaluated runs.", "warn")
        return
    d.para(verdict.CAPTION)
    cells = [list(c) for c in verdict.table_cells(rows)]
    marked = {(i, len(verdict.HEADER) - 1) for i, r in enumerate(rows)
              if r["verdict"] in (verdict.LOWER, verdict.HIGHER)}
    d.table(list(verdict.HEADER), cells, marked, cls="sig", text_cols=2)


def _per_class_section(d: Document, st: Study) -> None:
    """Precision, recall and F1 per class of each regime's plain runs (mean over seeds)."""
    per_class = {reg: [r.metrics["plain"]["per_class"] for _, r in sorted(st.runs.get(reg, {}).items())
                       if isinstance((r.metrics.get("plain") or {}).get("per_class"), dict)] for reg in st.regimes}
    per_class = {reg: objs for reg, objs in per_class.items() if objs}
    if not per_class:
        return
    k = len(next(iter(per_class.values()))[0].get("support") or [])
    d.heading("Per class (test set, plain models, mean over seeds)", 3)
    d.para(f"Source: the runs' {layout.METRICS} (per_class). Precision is undefined (–) for a class the "
           "model never predicts, recall for a class without test images.")
    d.table(*per_class_table(per_class, class_names(st.manifest, k)[:k]), text_cols=2)


def _paired_section(d: Document, st: Study) -> None:
    d.heading("Paired comparisons with one-hot")
    rows = paired_rows(st)
    if not rows:
        d.para(f"No {layout.PAIRED_CSV} in the study folder.")
        return
    by_title = {title: [r for r in rows if paired_title(r["metric"]) == title] for title, _ in RESULT_GROUPS}
    left = len(rows) - sum(len(v) for v in by_title.values())
    d.para("Mean over seeds of the paired difference (regime minus one-hot, same seed) with its "
           "95 % paired Student t interval over seeds (n - 1 df; the test set held fixed); * = interval "
           "excludes 0, one comparison at a time (the verdict above reads its claims as one family)."
           + (f" The {left:,} rows of the beyond-the-paper metrics (conformal sets, selective "
              f"prediction, uncertainty signals) are in {layout.PAIRED_CSV}." if left else ""))
    for title, shown in by_title.items():
        if shown:
            d.heading(title, 3)
            header, cells, marked = paired_table(shown)
            d.table(header, cells, marked, cls="sig", text_cols=len(header) - 1)


def _figures_section(d: Document, st: Study) -> None:
    d.heading("Figures")
    fig_dir = st.path / layout.FIGURES_DIR
    shown = [(stem, cap) for stem, cap in FIGURES if (fig_dir / f"{stem}.png").is_file()]
    for stem, caption in shown:
        d.figure(fig_dir / f"{stem}.png", f"{layout.FIGURES_DIR}/{stem}.png", caption.format(n_bins=st.n_bins or "?"))
    if not shown:
        d.para("No figures (run `lczldl figures --study` once predictions exist).", "warn")


def _config_section(d: Document, st: Study) -> None:
    import yaml

    d.heading("Configuration and versions")
    for key, title in (("run_config", "Run config"), ("study_config", "Study config")):
        if st.info.get(key):
            d.heading(title, 3)
            d.pre(yaml.safe_dump(st.info[key], sort_keys=False))
    vers = st.info.get("versions") or {}
    if vers:
        d.heading("Package versions", 3)
        d.table(["package", "version"], [[k, str(v)] for k, v in vers.items()])
    if st.manifest and st.manifest.get("sources"):
        d.heading("Data checksums (sha256)", 3)
        d.table(["file", "sha256"], [[k, str(v)] for k, v in st.manifest["sources"].items()])


def _write(st: Study, intervals: bool | None = None) -> tuple[Path, Path]:
    ci = st.intervals if intervals is None else intervals
    d = Document()
    title = f"LCZ label-distribution study: {st.path.name}"
    d.heading(title, 1)
    _status_section(d, st)
    _verdict_section(d, st)
    _data_section(d, st)
    _results_section(d, st, ci)
    _per_class_section(d, st)
    _paired_section(d, st)
    _figures_section(d, st)
    beyond_section(d, st, ci)
    _config_section(d, st)
    return (atomic_write_text(st.path / layout.REPORT_HTML, d.html_page(title)),
            atomic_write_text(st.path / layout.REPORT_MD, d.markdown()))


def write_report(study: Path, intervals: bool | None = None) -> tuple[Path, Path]:
    """Write STUDY/report.html (self-contained) and STUDY/report.md from the saved files and the
    figures already in STUDY/figures/. ``intervals``: tables as mean [lo, hi] (None: the study's
    ``study.intervals``). Returns (html path, md path)."""
    return _write(load_study(Path(study)), intervals)


def redraw_study(study: Path, intervals: bool | None = None, pdf: bool | None = None) -> None:
    """Redraw every figure and rewrite report.html / report.md (``lczldl figures --study``).
    ``intervals`` / ``pdf`` (figures also as PDF): None = the study's own settings."""
    st = load_study(Path(study))
    _draw(st, pdf)
    _write(st, intervals)


__all__ = ["FIGURES", "draw_figures", "load_study", "redraw_study", "study_status", "write_report"]
