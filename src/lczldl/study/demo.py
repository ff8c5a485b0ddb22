"""Owns ``lczldl demo``: its profiles (twin + packaged config + notes), and synthesise, prepare,
run the reduced study, report.

Layout of OUT: ``raw/`` (the twin's vote files), then the study layout of
:mod:`lczldl.study.runner` (``store/``, ``runs/``, ``summary.csv``, ``report.html`` ...).
Rerunning resumes: finished steps are skipped.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from lczldl.errors import ConfigError
from lczldl.fileio import atomic_write_json
from lczldl.layout import (
    MARKER_SUFFIX,
    REPORT_HTML,
    REPORT_MD,
    SPEC_SUFFIX,
    STUDY_UNITS,
    SUMMARY_CSV,
    TWIN_MARKER,
    VERDICT_CSV,
)

#: the raw vote files' folder inside the demo folder
RAW_DIR = "raw"


@dataclass(frozen=True)
class DemoProfile:
    """One way to run the demo: the twin it synthesises (size, seed), the packaged config it runs
    with (a file in ``lczldl/resources``, study section included) and the notes for the report."""

    twin_size: str
    twin_seed: int
    config: str
    notes: tuple[str, ...]
    help: str


#: the report note of every demo on the small twin
SMALL_TWIN_NOTE = "Demo on the synthetic twin (size small, seed 0), not the real votes."
#: the schedule reductions the cpu and cpu-full profiles share (demo.yaml, demo_full.yaml)
CPU_SCHEDULE_NOTE = ("12 epochs instead of up to 300, learning rate halved every 3 epochs instead of 5, early "
                     "stopping effectively off (patience 12); 10 MC-dropout passes instead of 20. Model, "
                     "optimiser, losses and post-hoc methods are the paper's.")

#: the demo's profiles (docs/study.md); ``lczldl demo`` runs :func:`default_profile`'s
PROFILES: dict[str, DemoProfile] = {
    "cpu": DemoProfile(
        twin_size="small", twin_seed=0, config="demo.yaml",
        notes=(SMALL_TWIN_NOTE,
               "Reduced for time (within 10 minutes on 2 CPU cores): regimes onehot and dist only "
               f"(--profile cpu-full adds onehot_ls and dist_ls); 2 seeds instead of 5; {CPU_SCHEDULE_NOTE}"),
        help="the paper's central comparison, onehot vs dist x 2 seeds on the small twin, within 10 min "
             "on 2 CPU cores"),
    "cpu-full": DemoProfile(
        twin_size="small", twin_seed=0, config="demo_full.yaml",
        notes=(SMALL_TWIN_NOTE,
               f"Reduced for time: the paper's four regimes x 2 seeds instead of 5; {CPU_SCHEDULE_NOTE}"),
        help="the paper's four regimes x 2 seeds on the small twin, ~19 min on 2 CPU cores (AVX2); in "
             "the folder of a cpu demo it trains only the two label-smoothing regimes"),
    "paper": DemoProfile(
        twin_size="medium", twin_seed=0, config="demo_paper.yaml",
        notes=("The paper's protocol on the synthetic twin (size medium, seed 0), not the real votes: the "
               "four regimes x 5 seeds, up to 300 epochs, early stopping with patience 20, learning rate "
               "halved every 5 epochs, 20 MC-dropout passes.",),
        help="the paper's protocol (4 regimes x 5 seeds, up to 300 epochs, patience 20) on the medium "
             "twin; a GPU job (the runs are packed on CUDA), wall time not measured yet"),
    "tiny": DemoProfile(
        twin_size="tiny", twin_seed=0, config="demo_tiny.yaml",
        notes=("Smoke test on the tiny synthetic twin with a tiny network: the numbers mean nothing.",),
        help="a smoke test: tiny twin, tiny network, 2 regimes x 1 seed, 2 epochs (~1 min)"),
}
#: the profile of a machine without CUDA (``paper`` where CUDA is: :func:`default_profile`)
DEFAULT_PROFILE = "cpu"
#: older names of profiles, still accepted
ALIASES: dict[str, str] = {"default": "cpu"}


def default_profile(cuda: bool | None = None) -> str:
    """``paper`` where CUDA is available (``cuda``; None: ask torch), else ``cpu``."""
    if cuda is None:
        from lczldl.training.fastpath import cuda_devices  # deferred: torch

        cuda = cuda_devices()[0]
    return "paper" if cuda else DEFAULT_PROFILE


def profile(name: str) -> DemoProfile:
    """The demo profile called ``name`` (or an alias of it); ConfigError naming the choices otherwise."""
    name = ALIASES.get(name, name)
    if name not in PROFILES:
        raise ConfigError(f"profile={name!r}: choose one of {', '.join(PROFILES)}", params=("profile",))
    return PROFILES[name]


def demo_config(name: str = DEFAULT_PROFILE) -> Path:
    """Path of a profile's packaged config (resources/demo.yaml for the default)."""
    return Path(str(resources.files("lczldl") / "resources" / profile(name).config))


def twin_record(prof: DemoProfile) -> dict[str, Any]:
    """What the twin marker records: the twin's seed and size."""
    return {"seed": prof.twin_seed, "size": prof.twin_size}


def synthesize_once(raw: Path, console: Any, prof: DemoProfile | None = None) -> None:
    """Write the profile's twin into ``raw`` unless a completed earlier call left its marker."""
    prof = prof or PROFILES[DEFAULT_PROFILE]
    marker = raw / TWIN_MARKER
    try:
        if json.loads(marker.read_text()) == twin_record(prof):
            return
    except (OSError, ValueError):
        pass
    from lczldl.data.synth import synthesize  # deferred: numpy, h5py (lczldl --help)

    console.print(f"synthesising the twin ({prof.twin_size}, seed {prof.twin_seed}) -> {raw}")
    synthesize(raw, seed=prof.twin_seed, size=prof.twin_size)
    atomic_write_json(marker, twin_record(prof))


def read_summary(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


#: columns of the demo's closing table; overconfidence = mean confidence - oa (signed)
KEY_METRICS = ("ce_distr", "ece", "overconfidence", "oa")


def key_comparison(rows: list[dict[str, str]]) -> dict[str, dict[str, float]]:
    """{regime: {ce_distr, ece, overconfidence, oa}} of the plain (uncalibrated) models, means over
    seeds; a metric missing from the summary is left out."""
    out: dict[str, dict[str, float]] = {}
    for r in rows:
        if r.get("method") == "plain":
            out[r["regime"]] = {m: float(r[f"{m}_mean"]) for m in KEY_METRICS
                                if r.get(f"{m}_mean") not in (None, "")}
    return out


def print_comparison(console: Any, rows: list[dict[str, str]]) -> None:
    """Print the plain models' key metrics (means over seeds; what the verdict below judges)."""
    from rich.table import Table

    cmp = key_comparison(rows)
    cols = [k for k in KEY_METRICS if any(k in m for m in cmp.values())]
    table = Table(title="plain models, mean over seeds (lower ce_distr / ece is better; "
                        "overconfidence = mean confidence - accuracy, < 0: under-confident)")
    for col in ("regime", *cols):
        table.add_column(col, justify="left" if col == "regime" else "right")
    for regime, m in cmp.items():
        table.add_row(regime, *(f"{m[k]:.4f}" if k in m else "-" for k in cols))
    console.print(table)


def print_verdict(console: Any, rows: list[dict[str, Any]]) -> None:
    """Print the verdict table (verdict.csv rows, :func:`lczldl.evaluation.files.read_verdict`),
    one line per claim in 80 columns: the claim as "regime: metric", "not resolved with N seeds at
    this budget" shortened to "not resolved" and spelled out once below the table."""
    from rich import box
    from rich.table import Table

    from lczldl.evaluation import verdict  # deferred: numpy, scipy (lczldl --help)

    table = Table(title="verdict on the paper's claims (regime minus one-hot, same seed)",
                  box=box.SIMPLE_HEAD, padding=0, pad_edge=False, show_edge=False)
    for col, justify in (("claim", "left"), ("method", "left"), ("mean diff", "right"),
                         ("95 % interval", "right"), ("Holm p", "right"), ("verdict", "left")):
        table.add_column(col, justify=justify, no_wrap=True)
    unresolved = []
    for r, cells in zip(rows, verdict.table_cells(rows), strict=True):
        cell = dict(zip(verdict.HEADER, cells, strict=True))
        word = r["verdict"]
        if word not in (verdict.LOWER, verdict.HIGHER):
            unresolved.append(word)
            word = "not resolved"
        table.add_row(f"{r['regime']}: {r['metric']}", r["method"], cell["mean diff"], cell["95 % interval"],
                      cell["Holm p"], word)
    console.print(table)
    for word in dict.fromkeys(unresolved):
        console.print(f"(\"not resolved\": {word})", highlight=False)
    console.print(verdict.CAPTION, highlight=False)


#: what the demo says when none of the paper's claims is resolved at its budget
NOT_RESOLVED_NOTE = ("None of the paper's claims is resolved at this budget: the seeds disagree by more than the "
                     "difference (docs/study.md, \"Choosing the demo's design\", measures how many seeds it would "
                     "take). The paper-scale answer is `lczldl demo --profile paper` on a GPU.")


def where_the_time_went(study: Path) -> str:
    """"train 6.1 min, calibrate 1.2 min, ..." from the study's unit markers: each unit kind's summed
    wall seconds, largest first (units of one kind may run side by side, so the sum can exceed the
    wall time)."""
    spent: dict[str, float] = {}
    for marker in sorted((Path(study) / STUDY_UNITS).glob(f"*{MARKER_SUFFIX}")):
        if marker.name.endswith(SPEC_SUFFIX):
            continue
        try:
            m = json.loads(marker.read_text())
            spent[m["kind"]] = spent.get(m["kind"], 0.0) + float(m["wall_s"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    ranked = sorted(spent.items(), key=lambda kv: -kv[1])                   # where most of it went first
    return ", ".join(f"{kind} {s / 60:.1f} min" for kind, s in ranked) + (
        " summed over units" if spent else "no unit markers")


def run_demo(out: Path, profile_name: str | None = None, console: Any = None) -> None:
    """Synthesise + prepare the profile's twin (``profile_name``; None: :func:`default_profile`),
    run its study into ``out``, print the key comparison and where the report is."""
    from rich.console import Console

    from lczldl.study.runner import run_study  # deferred: numpy, h5py (lczldl --help)

    profile_name = profile_name or default_profile()
    prof = profile(profile_name)
    console = console or Console()
    out = Path(out)
    if profile_name == "paper" and default_profile() != "paper":      # asked for, without CUDA
        console.print("note: --profile paper without CUDA trains 20 runs of up to 300 epochs on the medium "
                      "twin on this CPU: expect many hours (--profile cpu is the reduced demo)")
    t0 = time.time()
    synthesize_once(out / RAW_DIR, console, prof)
    run_study(data=out / RAW_DIR, out=out, config=demo_config(profile_name), console=console,
              notes=prof.notes)
    console.print(f"demo finished in {(time.time() - t0) / 60:.1f} min ({where_the_time_went(out)})",
                  highlight=False)
    summary = out / SUMMARY_CSV
    if summary.is_file():
        print_comparison(console, read_summary(summary))
    from lczldl.evaluation.files import read_verdict  # deferred: numpy (lczldl --help)
    from lczldl.evaluation.verdict import HIGHER, LOWER  # deferred: numpy, scipy (lczldl --help)

    rows = read_verdict(out / VERDICT_CSV)
    if rows:
        print_verdict(console, rows)
        if not any(r["verdict"] in (LOWER, HIGHER) for r in rows):
            console.print(NOT_RESOLVED_NOTE, highlight=False)
    for name in (REPORT_HTML, REPORT_MD):
        if (out / name).is_file():
            console.print(f"report: {out / name}")
