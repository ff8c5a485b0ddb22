"""Figures and report of a study folder, from saved files only (no model is ever run).

Reads (see docs/architecture.md and docs/study.md)::

    STUDY/study.json                      config, regimes, seeds, store, versions, failures
    STUDY/store/ or study.json["store"]   manifest.json, {split}/votes.npy, original.npy, label.npy
    STUDY/runs/REGIME/seedN/              predictions.npz, metrics.json, metrics_ts.json, metrics_mc.json
    STUDY/ensemble/REGIME/metrics.json    STUDY/summary.csv   STUDY/paired.csv

Writes ``STUDY/figures/*.png|pdf`` (:func:`draw_figures`), ``STUDY/report.html`` (self-contained:
inline CSS, images as base64 PNG, no external URL) and ``STUDY/report.md`` (images by relative path)
(:func:`write_report`). Every file is written atomically. Missing inputs leave their figure or table
out and are listed in the report; they are not errors (a study with failed runs still gets a report).
"""

from __future__ import annotations

import base64
import csv
import html
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lczldl.constants import LCZ_CODES, LCZ_NAMES, N_URBAN
from lczldl.distributions import N_ENTROPY_BINS, entropy_nats
from lczldl.errors import RunError
from lczldl.fileio import atomic_write_text
from lczldl.viz import figures as F
from lczldl.viz.style import METHOD_LABELS, order_regimes, regime_label

#: The paper's metrics (first results table) and whether higher is better.
PAPER_METRICS: tuple[tuple[str, bool], ...] = (
    ("oa", True), ("maa", True), ("waa", True), ("kappa", True), ("ce_one_hot", False),
    ("ce_distr", False), ("ece", False), ("mce", False), ("sce", False),
)
#: Extra metrics (second table) with direction (None: descriptive, not ranked); others found in
#: summary.csv are appended.
EXTRA_METRICS: tuple[tuple[str, bool | None], ...] = (
    ("balanced_accuracy", True), ("macro_f1", True), ("nll", False), ("brier_one_hot", False),
    ("brier_distr", False), ("kl_distr", False), ("js_distr", False), ("tv_distr", False),
    ("classwise_ece", False), ("adaptive_ece", False), ("mean_confidence", None),
    ("overconfidence", None), ("entropy_spearman", True),
)
METHODS: tuple[str, ...] = ("plain", "temperature", "mc_dropout", "ensemble")
_METRIC_FILES = {"plain": "metrics.json", "temperature": "metrics_ts.json", "mc_dropout": "metrics_mc.json"}

#: Figure file stems in report order, with their one-line captions.
FIGURES: tuple[tuple[str, str], ...] = (
    ("confusion_matrices", "Confusion matrices on the test set, percent of each majority-vote class "
                           "(rows), predictions of all seeds pooled, one panel per regime."),
    ("reliability", "Reliability diagrams (20 confidence bins (lo, hi], bar opacity = share of samples, "
                    "hatched = gap to calibration) before and after temperature scaling, lowest seed "
                    "of each regime; confidence histogram below."),
    ("vote_entropy_bars", "Share of images per vote-entropy bin (the paper's bins, entropy of all 17 "
                          "classes' votes) for urban and non-urban majority classes."),
    ("voting_confusion", "Original So2Sat label vs individual expert votes, percent of each row's votes "
                         "for LCZ 1-10."),
    ("metrics_by_entropy_bin", "Accuracy and ECE per vote-entropy bin of the test images, mean over "
                               "seeds (error bars: std), plain models."),
    ("entropy_hexbin", "Predictive entropy of the model vs entropy of the expert votes (test images, "
                       "seeds pooled); dashed: y = x."),
    ("seed_metrics", "Key test metrics of every seed (dots) and their mean (bar), plain models."),
)
_HIGHER_BETTER = {m: hb for m, hb in PAPER_METRICS + EXTRA_METRICS if hb is not None}


# ---------------------------------------------------------------------------------------------
# reading the study folder
# ---------------------------------------------------------------------------------------------


@dataclass
class Run:
    """Saved outputs of one run (any may be missing)."""

    regime: str
    seed: int
    path: Path
    metrics: dict[str, dict] = field(default_factory=dict)    # method -> metrics dict
    temperature: float | None = None

    def predictions(self) -> dict[str, np.ndarray] | None:
        p = self.path / "predictions.npz"
        if not p.is_file():
            return None
        try:
            with np.load(p) as z:
                return {k: z[k] for k in ("probs", "log_probs", "labels", "vote_entropy") if k in z.files}
        except (OSError, ValueError) as exc:
            raise RunError(f"{p}: cannot read predictions ({exc}); rerun `lczldl study` to redo the "
                           "evaluation of this run") from None


@dataclass
class Study:
    """Everything the report needs, read from one study folder."""

    path: Path
    info: dict[str, Any]
    regimes: list[str]
    seeds: list[int]
    runs: dict[str, dict[int, Run]]
    store: Path | None
    manifest: dict[str, Any] | None
    notes: list[str] = field(default_factory=list)

    @property
    def n_bins(self) -> int:
        try:
            return int(self.info["run_config"]["evaluation"]["n_bins"])
        except (KeyError, TypeError, ValueError):
            return 20


def _read_json(path: Path) -> dict[str, Any] | None:
    """JSON object of ``path`` or None if missing; RunError (one line) if unreadable."""
    if not path.is_file():
        return None
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RunError(f"{path}: not valid JSON ({exc}); delete it and rerun `lczldl study` to rewrite it") from None
    if not isinstance(obj, dict):
        raise RunError(f"{path}: expected a JSON object; delete it and rerun `lczldl study`")
    return obj


def load_study(study: Path) -> Study:
    """Read study.json, the store's manifest and every run's metrics (not the predictions)."""
    study = Path(study)
    info = _read_json(study / "study.json")
    if info is None and not (study / "runs").is_dir():
        raise RunError(f"{study}: not a study folder (no study.json and no runs/); run `lczldl study "
                       "--out` on it first")
    info = info or {}
    notes: list[str] = []
    runs_dir = study / "runs"
    found = sorted(p.name for p in runs_dir.iterdir() if p.is_dir()) if runs_dir.is_dir() else []
    regimes = order_regimes(list(dict.fromkeys(list(info.get("regimes") or []) + found)))
    seeds_set = {int(s) for s in info.get("seeds") or []}
    runs: dict[str, dict[int, Run]] = {}
    for reg in regimes:
        runs[reg] = {}
        rdir = runs_dir / reg
        if not rdir.is_dir():
            continue
        for sd in sorted(rdir.iterdir()):
            m = re.fullmatch(r"seed(\d+)", sd.name)
            if not (sd.is_dir() and m):
                continue
            seed = int(m.group(1))
            seeds_set.add(seed)
            run = Run(reg, seed, sd)
            for method, fname in _METRIC_FILES.items():
                obj = _read_json(sd / fname)
                if obj is not None:
                    run.metrics[method] = obj
            ts = run.metrics.get("temperature", {}).get("temperature")
            run.temperature = float(ts) if isinstance(ts, int | float) and ts > 0 else None
            runs[reg][seed] = run
    seeds = sorted(seeds_set)
    store = None
    for cand in ([Path(info["store"])] if info.get("store") else []) + [study / "store"]:
        if (cand / "manifest.json").is_file():
            store = cand
            break
    manifest = _read_json(store / "manifest.json") if store else None
    if manifest is None:
        notes.append("prepared store not found (study.json 'store' or STUDY/store): data summary and "
                      "vote figures left out")
    for reg in regimes:
        for seed in seeds:
            r = runs[reg].get(seed)
            if r is None or "plain" not in r.metrics:
                notes.append(f"{reg} seed {seed}: no test metrics (run missing or failed)")
    return Study(study, info, regimes, seeds, runs, store, manifest, notes)


def _vote_source(st: Study) -> tuple[np.ndarray, np.ndarray, str] | None:
    """(votes (N, V) LCZ ids, original (N,) LCZ id, description) of every image: the raw vote files
    when the study was started on them (non-urban majorities included), else the store's splits."""
    data = st.info.get("data")
    if data:
        from lczldl.data.prepare import is_raw_vote_folder

        raw = Path(data)
        if is_raw_vote_folder(raw):
            from lczldl.data.labels import pad_votes
            from lczldl.data.readers.votes import find_city_files, open_city

            vs, os_ = [], []
            for path in find_city_files(raw).values():
                cf = open_city(path)
                vs.append(pad_votes(cf.votes))
                os_.append(cf.original)
            return np.concatenate(vs), np.concatenate(os_), "raw vote files (all images)"
    if st.store is None or st.manifest is None:
        return None
    vs, os_ = [], []
    for split in st.manifest.get("splits", {}):
        v, o = st.store / split / "votes.npy", st.store / split / "original.npy"
        if v.is_file() and o.is_file():
            vs.append(np.load(v).astype(np.int64))
            os_.append(np.load(o).astype(np.int64))
    if not vs:
        return None
    return (np.concatenate(vs), np.concatenate(os_),
            "prepared store (urban-majority images only; non-urban images were dropped when preparing)")


def _votes_entropy_majority(votes: np.ndarray, original: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Entropy (nats) of each image's vote distribution over all 17 LCZ and its majority LCZ id
    (ties: original label), as the data preparation decides the majority."""
    from lczldl.data.labels import majority_vote, vote_counts

    counts = vote_counts(votes)
    maj = majority_vote(counts, original)
    tot = counts.sum(axis=1, keepdims=True)
    p = np.where(tot > 0, counts / np.maximum(tot, 1), 0.0)
    return entropy_nats(np.asarray(p, dtype=np.float64)), maj


# ---------------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------------


def _run_predictions(st: Study) -> dict[str, list[tuple[Run, dict[str, np.ndarray]]]]:
    out: dict[str, list[tuple[Run, dict[str, np.ndarray]]]] = {}
    for reg in st.regimes:
        for seed in sorted(st.runs.get(reg, {})):
            run = st.runs[reg][seed]
            pred = run.predictions()
            if pred is not None and "probs" in pred and "labels" in pred:
                out.setdefault(reg, []).append((run, pred))
    return out


def draw_figures(study: Path) -> list[Path]:
    """Draw every figure whose inputs exist into STUDY/figures/ (PNG + PDF); returns the paths."""
    st = load_study(Path(study))
    return _draw(st)


def _draw(st: Study) -> list[Path]:
    from lczldl.evaluation.temperature import apply_temperature

    fig_dir = st.path / "figures"
    written: list[Path] = []
    preds = _run_predictions(st)
    if preds:
        written += F.plot_confusion_matrices(
            {reg: (np.concatenate([p["labels"] for _, p in rp]),
                   np.concatenate([p["probs"].argmax(axis=1) for _, p in rp])) for reg, rp in preds.items()},
            fig_dir / "confusion_matrices")
        panels: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
        for reg, rp in preds.items():
            run, p = rp[0]
            panels[reg] = {"plain": (p["probs"], p["labels"])}
            if run.temperature is not None and "log_probs" in p:
                panels[reg]["temperature"] = (apply_temperature(p["log_probs"], run.temperature), p["labels"])
        titles = {"plain": "before TS", "temperature": "after TS"}
        written += F.plot_reliability_grid(panels, fig_dir / "reliability", n_bins=st.n_bins, method_titles=titles)
        with_ent = {reg: [(p["probs"], p["labels"], p["vote_entropy"]) for _, p in rp if "vote_entropy" in p]
                    for reg, rp in preds.items()}
        with_ent = {k: v for k, v in with_ent.items() if v}
        if with_ent:
            written += F.plot_metrics_by_entropy_bin(with_ent, fig_dir / "metrics_by_entropy_bin", n_bins=st.n_bins)
            written += F.plot_entropy_hexbin(
                {reg: (np.concatenate([t[0] for t in v]), np.concatenate([t[2] for t in v]))
                 for reg, v in with_ent.items()}, fig_dir / "entropy_hexbin")
    src = _vote_source(st)
    if src is not None:
        votes, original, desc = src
        ent, maj = _votes_entropy_majority(votes, original)
        note = None if "raw" in desc else f"Source: {desc}."
        written += F.plot_vote_entropy_bars(ent, maj, fig_dir / "vote_entropy_bars", note=note)
        written += F.plot_voting_confusion(votes, original, fig_dir / "voting_confusion")
    per_seed = {reg: [r.metrics["plain"] for _, r in sorted(st.runs.get(reg, {}).items()) if "plain" in r.metrics]
                for reg in st.regimes}
    per_seed = {k: v for k, v in per_seed.items() if v}
    if per_seed:
        written += F.plot_seed_dots(per_seed, fig_dir / "seed_metrics")
    return written


# ---------------------------------------------------------------------------------------------
# tables
# ---------------------------------------------------------------------------------------------


def _read_csv(path: Path) -> list[dict[str, str]] | None:
    if not path.is_file():
        return None
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _num(x: Any) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return float("nan")
    return v


def summary_rows(st: Study) -> tuple[list[dict[str, Any]], str]:
    """Rows {regime, method, n, <metric>: (mean, std)} from summary.csv, or computed from the runs'
    metrics files when there is none. Returns (rows, source description)."""
    rows = _read_csv(st.path / "summary.csv")
    out: list[dict[str, Any]] = []
    if rows:
        for r in rows:
            d: dict[str, Any] = {"regime": r.get("regime", ""), "method": r.get("method", "")}
            for k, v in r.items():
                if k.endswith("_mean"):
                    m = k[: -len("_mean")]
                    d[m] = (_num(v), _num(r.get(m + "_std")))
                elif k in ("n", "n_runs", "n_seeds", "runs"):
                    d["n"] = v
            out.append(d)
        return out, "summary.csv"
    for reg in st.regimes:
        for method in METHODS:
            if method == "ensemble":
                ens = _read_json(st.path / "ensemble" / reg / "metrics.json")
                vals = [ens] if ens else []
            else:
                vals = [r.metrics[method] for r in st.runs.get(reg, {}).values() if method in r.metrics]
            if not vals:
                continue
            d = {"regime": reg, "method": method, "n": str(len(vals))}
            keys = [k for k, v in vals[0].items() if isinstance(v, int | float) and not isinstance(v, bool)]
            for k in keys:
                a = np.array([_num(v.get(k)) for v in vals], dtype=np.float64)
                a = a[np.isfinite(a)]
                d[k] = (float(a.mean()) if a.size else float("nan"),
                        float(a.std(ddof=1)) if a.size > 1 else float("nan"))
            out.append(d)
    return out, "metrics files of the runs (no summary.csv)"


def _fmt(mean: float, std: float, digits: int = 4) -> str:
    if not math.isfinite(mean):
        return "–"
    s = f"{mean:.{digits}f}"
    return s + (f" ± {std:.{digits}f}" if math.isfinite(std) else "")


def _results_table(rows: list[dict[str, Any]], metrics: list[str]) -> tuple[list[str], list[list[str]], set]:
    """Header, cells and the (row, col) cells holding the best mean of their column."""
    header = ["regime", "method", "n"] + metrics
    cells: list[list[str]] = []
    best: set[tuple[int, int]] = set()
    for r in rows:
        cells.append([regime_label(r["regime"]), METHOD_LABELS.get(r["method"], r["method"]), str(r.get("n", ""))]
                     + [_fmt(*r.get(m, (float("nan"), float("nan")))) for m in metrics])
    for j, m in enumerate(metrics):
        vals = np.array([r.get(m, (float("nan"),))[0] for r in rows], dtype=np.float64)
        if not np.isfinite(vals).any() or m not in _HIGHER_BETTER:
            continue
        target = np.nanmax(vals) if _HIGHER_BETTER[m] else np.nanmin(vals)
        best |= {(i, j + 3) for i in range(len(rows)) if vals[i] == target}
    return header, cells, best


def _sort_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    order = {r: i for i, r in enumerate(order_regimes(list({r["regime"] for r in rows})))}
    mo = {m: i for i, m in enumerate(METHODS)}
    return sorted(rows, key=lambda r: (mo.get(r["method"], 99), order.get(r["regime"], 99)))


def paired_table(st: Study) -> tuple[list[str], list[list[str]], set] | None:
    """Paired differences vs one-hot with 95 % intervals from paired.csv (cell: diff [lo, hi],
    marked when the interval excludes 0)."""
    rows = _read_csv(st.path / "paired.csv")
    if not rows:
        return None
    cols = list(rows[0].keys())
    need = {"metric", "mean_diff", "ci_low", "ci_high"}
    if not need <= set(cols):
        return cols, [[r.get(c, "") for c in cols] for r in rows], set()
    keys = [c for c in cols if c not in need and not _is_numeric_col(rows, c)]
    header = keys + ["metric", "mean difference [95 % CI]"]
    cells, marked = [], set()
    for i, r in enumerate(rows):
        d, lo, hi = _num(r["mean_diff"]), _num(r["ci_low"]), _num(r["ci_high"])
        txt = f"{d:+.4f} [{lo:+.4f}, {hi:+.4f}]" if math.isfinite(d) else "–"
        sig = math.isfinite(lo) and math.isfinite(hi) and (lo > 0 or hi < 0)
        if sig:
            marked.add((i, len(header) - 1))
        cells.append([regime_label(r[k]) if k == "regime" else METHOD_LABELS.get(r[k], r[k]) for k in keys]
                     + [r["metric"], txt + (" *" if sig else "")])
    return header, cells, marked


def _is_numeric_col(rows: list[dict[str, str]], col: str) -> bool:
    return all(math.isfinite(_num(r.get(col))) for r in rows if r.get(col) not in (None, ""))


def data_tables(manifest: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, cells) tables of the manifest: splits, class counts, entropy bins, dropped."""
    splits = manifest.get("splits", {})
    tables = []
    cells = [[s, f"{int(d.get('n', 0)):,}", ", ".join(f"{c} {n:,}" for c, n in (d.get("cities") or {}).items())]
             for s, d in splits.items()]
    tables.append(("Images per split", ["split", "images", "cities"], cells))
    head = ["split"] + [f"{LCZ_CODES[i]} {LCZ_NAMES[i]}" for i in range(N_URBAN)]
    cells = [[s] + [f"{int(c):,}" for c in (d.get("class_counts") or [])] for s, d in splits.items()]
    tables.append(("Majority-vote class counts", head, cells))
    labels = F.entropy_bin_labels()
    cells = []
    for s, d in splits.items():
        cnt = d.get("entropy_bins") or []
        n = max(int(d.get("n", 0)), 1)
        cells.append([s] + [f"{int(c):,} ({100 * c / n:.1f} %)" for c in cnt])
    tables.append(("Vote entropy (nats) per paper bin: images (share)", ["split"] + labels, cells))
    dropped = manifest.get("dropped") or {}
    if dropped:
        tables.append(("Rows dropped when preparing", ["reason", "rows"],
                       [[k, f"{int(v):,}"] for k, v in dropped.items()]))
    return tables


# ---------------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------------

_CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:#222;max-width:1180px;
margin:2em auto;padding:0 1.5em;line-height:1.45;font-size:15px}
h1{font-size:1.7em;border-bottom:2px solid #0072b2;padding-bottom:.2em}
h2{font-size:1.3em;margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:.15em}
h3{font-size:1.05em;margin-top:1.4em}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.82em}
th,td{border:1px solid #d6d6d6;padding:.28em .55em;text-align:right;white-space:nowrap}
th{background:#f0f4f8;font-weight:600}
td:first-child,th:first-child,td.txt,th.txt{text-align:left}
tr:nth-child(even) td{background:#fafafa}
td.best{font-weight:700;color:#08519c}
td.sig{font-weight:700}
.wrap{overflow-x:auto}
figure{margin:1.5em 0;text-align:center}
figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.9em;color:#555;margin-top:.4em}
.warn{background:#fff4e5;border-left:4px solid #d55e00;padding:.5em 1em;margin:1em 0}
.ok{background:#eef7ee;border-left:4px solid #009e73;padding:.5em 1em;margin:1em 0}
pre{background:#f6f8fa;padding:.8em;overflow-x:auto;font-size:.8em}
.meta{color:#666;font-size:.9em}
"""


def _html_table(header: list[str], cells: list[list[str]], marked: set | None = None, cls: str = "best",
                text_cols: int = 1) -> str:
    marked = marked or set()
    h = "".join(f'<th class="txt">{html.escape(c)}</th>' if j < text_cols else f"<th>{html.escape(c)}</th>"
                for j, c in enumerate(header))
    body = []
    for i, row in enumerate(cells):
        tds = []
        for j, c in enumerate(row):
            klass = [cls] if (i, j) in marked else []
            if j < text_cols:
                klass.append("txt")
            attr = f' class="{" ".join(klass)}"' if klass else ""
            tds.append(f"<td{attr}>{html.escape(c)}</td>")
        body.append("<tr>" + "".join(tds) + "</tr>")
    return f'<div class="wrap"><table><thead><tr>{h}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _md_table(header: list[str], cells: list[list[str]], marked: set | None = None) -> str:
    marked = marked or set()

    def esc(s: str) -> str:
        return s.replace("|", "\\|")

    lines = ["| " + " | ".join(esc(c) for c in header) + " |", "|" + "---|" * len(header)]
    for i, row in enumerate(cells):
        lines.append("| " + " | ".join(f"**{esc(c)}**" if (i, j) in marked else esc(c)
                                       for j, c in enumerate(row)) + " |")
    return "\n".join(lines)


class _Doc:
    """Builds the HTML and the Markdown side by side."""

    def __init__(self) -> None:
        self.h: list[str] = []
        self.m: list[str] = []

    def heading(self, text: str, level: int = 2) -> None:
        self.h.append(f"<h{level}>{html.escape(text)}</h{level}>")
        self.m.append("#" * level + " " + text + "\n")

    def para(self, text: str, cls: str | None = None) -> None:
        attr = f' class="{cls}"' if cls else ""
        self.h.append(f"<p{attr}>{html.escape(text)}</p>")
        self.m.append(("> " if cls in ("warn", "ok") else "") + text + "\n")

    def items(self, items: list[str], cls: str | None = None) -> None:
        attr = f' class="{cls}"' if cls else ""
        self.h.append(f"<ul{attr}>" + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul>")
        self.m.append("\n".join(f"- {i}" for i in items) + "\n")

    def table(self, header: list[str], cells: list[list[str]], marked: set | None = None, cls: str = "best",
              text_cols: int = 1) -> None:
        self.h.append(_html_table(header, cells, marked, cls, text_cols))
        self.m.append(_md_table(header, cells, marked) + "\n")

    def figure(self, png: Path, rel: str, caption: str) -> None:
        b64 = base64.b64encode(png.read_bytes()).decode("ascii")
        self.h.append(f'<figure><img src="data:image/png;base64,{b64}" alt="{html.escape(png.stem)}">'
                      f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        self.m.append(f"![{png.stem}]({rel})\n\n*{caption}*\n")

    def pre(self, text: str) -> None:
        self.h.append(f"<pre>{html.escape(text)}</pre>")
        self.m.append("```\n" + text.rstrip() + "\n```\n")


def write_report(study: Path) -> tuple[Path, Path]:
    """Write STUDY/report.html (self-contained) and STUDY/report.md from the saved files and the
    figures already in STUDY/figures/. Returns (html path, md path)."""
    st = load_study(Path(study))
    return _write(st)


def study_status(info: dict[str, Any]) -> str:
    """The study's status as the report should state it. The report is the study's last unit, so
    while it runs study.json still says "running"; when every other unit has ended, the results
    are final: "finished" (or "finished_with_failures" when a unit failed or was skipped)."""
    status = str(info.get("status", "unknown"))
    units = [u for u in (info.get("units") or {}).values() if u.get("kind") != "report"]
    if status == "running" and units and all(u.get("status") in ("done", "failed", "skipped") for u in units):
        return "finished" if all(u.get("status") == "done" for u in units) else "finished_with_failures"
    return status


def _write(st: Study) -> tuple[Path, Path]:
    import yaml

    info = st.info
    d = _Doc()
    title = f"LCZ label-distribution study: {st.path.name}"
    d.heading(title, 1)
    meta = [f"status: {study_status(info)}",
            f"regimes: {', '.join(regime_label(r) for r in st.regimes) or 'none'}",
            f"seeds: {', '.join(map(str, st.seeds)) or 'none'}"]
    for k in ("created", "updated", "executor", "workers"):
        if info.get(k) is not None:
            meta.append(f"{k}: {info[k]}")
    d.para(" · ".join(meta), "meta")
    if info.get("notes"):
        d.heading("About this study")
        d.items([str(n) for n in info["notes"]])

    failures = info.get("failures") or []
    skipped = info.get("skipped") or []
    if failures or skipped:
        d.heading("Failed units")
        lines = [f"FAILED {f.get('id')}: {f.get('error') or 'error'} (log: {f.get('log')})" for f in failures]
        lines += [f"skipped {s.get('id')}: {s.get('reason') or 'upstream failed'}" for s in skipped]
        d.items(lines, "warn")
    if st.notes:
        d.heading("Missing inputs")
        d.items(st.notes, "warn")

    d.heading("Data")
    if st.manifest:
        m = st.manifest
        d.para(f"Prepared store {st.store} (created {m.get('created', '?')}, lczldl {m.get('package_version', '?')}); "
               f"split: {(m.get('config') or {}).get('split', '?')}.")
        for t, header, cells in data_tables(m):
            d.heading(t, 3)
            d.table(header, cells)
    else:
        d.para("No prepared store found.", "warn")

    rows, source = summary_rows(st)
    rows = _sort_rows(rows)
    d.heading("Results (test set, mean ± std over seeds)")
    if rows:
        d.para(f"Source: {source}. Best mean of each column in bold (accuracies, kappa: higher is better; "
               "cross-entropies and calibration errors: lower is better; mean confidence and over-confidence "
               "(mean confidence minus accuracy) are not ranked). Ensemble rows are one model "
               "(the mean of the seeds' probabilities), so they have no std.")
        present = {k for r in rows for k in r}
        paper = [m for m, _ in PAPER_METRICS if m in present]
        d.heading("Paper metrics", 3)
        d.table(*_results_table(rows, paper), text_cols=2)
        extras = [m for m, _ in EXTRA_METRICS if m in present]
        extras += sorted(k for k in present if k not in paper and k not in extras
                         and k not in ("regime", "method", "n") and "ebin" not in k)
        if extras:
            d.heading("Further metrics", 3)
            d.table(*_results_table(rows, extras), text_cols=2)
        ebin = [f"{p}_ebin{b}" for p in ("oa", "ece") for b in range(N_ENTROPY_BINS)]
        ebin = [k for k in ebin if k in present]
        if ebin:
            d.heading("Accuracy and ECE per vote-entropy bin", 3)
            lab = F.entropy_bin_labels()
            header, cells, best = _results_table(rows, ebin)
            header = header[:3] + [f"{k.split('_')[0]} {lab[int(k[-1])]}" for k in ebin]
            d.table(header, cells, best, text_cols=2)
    else:
        d.para("No metrics yet (no run finished its evaluation).", "warn")

    d.heading("Paired comparisons with one-hot")
    pt = paired_table(st)
    if pt:
        d.para("Mean over seeds of the paired difference (regime minus one-hot, same seed) with its "
               "95 % bootstrap interval; * = interval excludes 0.")
        d.table(pt[0], pt[1], pt[2], cls="sig", text_cols=len(pt[0]) - 1)
    else:
        d.para("No paired.csv in the study folder.")

    d.heading("Figures")
    fig_dir = st.path / "figures"
    any_fig = False
    for stem, caption in FIGURES:
        png = fig_dir / f"{stem}.png"
        if png.is_file():
            any_fig = True
            d.figure(png, f"figures/{stem}.png", caption)
    if not any_fig:
        d.para("No figures (run `lczldl figures --study` once predictions exist).", "warn")

    d.heading("Configuration and versions")
    if info.get("run_config"):
        d.heading("Run config", 3)
        d.pre(yaml.safe_dump(info["run_config"], sort_keys=False))
    if info.get("study_config"):
        d.heading("Study config", 3)
        d.pre(yaml.safe_dump(info["study_config"], sort_keys=False))
    vers = info.get("versions") or {}
    if vers:
        d.heading("Package versions", 3)
        d.table(["package", "version"], [[k, str(v)] for k, v in vers.items()])
    if st.manifest and st.manifest.get("sources"):
        d.heading("Data checksums (sha256)", 3)
        d.table(["file", "sha256"], [[k, str(v)] for k, v in st.manifest["sources"].items()])

    body = "\n".join(d.h)
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n<body>\n{body}\n</body></html>\n")
    html_path = atomic_write_text(st.path / "report.html", page)
    md_path = atomic_write_text(st.path / "report.md", "\n".join(d.m))
    return html_path, md_path


def redraw_study(study: Path) -> None:
    """Redraw every figure and rewrite report.html / report.md (``lczldl figures --study``)."""
    st = load_study(Path(study))
    _draw(st)
    _write(st)


__all__ = ["FIGURES", "draw_figures", "load_study", "redraw_study", "summary_rows", "write_report"]
