"""``lczldl study``, ``lczldl figures`` and ``lczldl demo``."""

from __future__ import annotations

from pathlib import Path

import typer

from lczldl.cli.options import config_choices, config_default, regime_choices, resolve
from lczldl.study.demo import PROFILES, run_demo


def register(app: typer.Typer) -> None:
    @app.command("study")
    def study(
        data: Path = typer.Option(..., "--data", help="Prepared store or folder of raw vote files."),
        out: Path = typer.Option(..., "--out", help="Study folder."),
        config: Path = typer.Option(None, "--config", help="YAML config file (run sections + study section)."),
        regimes: str = typer.Option(None, "--regimes", help=(
            f"Comma list of {regime_choices()} {config_default('study.regimes')}.")),
        seeds: str = typer.Option(None, "--seeds", help=f"e.g. 0-4 or 0,1,2 {config_default('study.seeds')}."),
        workers: int = typer.Option(None, "--workers", help=(
            f"Units run at once on this machine {config_default('study.workers')}.")),
        executor: str = typer.Option(None, "--executor", help=(
            f"{config_choices('study.executor')} {config_default('study.executor')}.")),
        intervals: bool = typer.Option(None, "--intervals/--no-intervals", help=(
            "Report tables show mean [lo, hi] (95 %) instead of mean ± std "
            f"{config_default('study.intervals')}.")),
        pack: int = typer.Option(None, "--pack", help="Runs trained together in one process; 1 = one process "
                                                      "per run. Else the config's study.pack, else one pack "
                                                      "per GPU where CUDA is and 1 on CPU."),
        vote_budget: str = typer.Option(None, "--vote-budget", help=(
            "Also train the regimes and seeds on k votes per image for each k, e.g. 1,3,5,all (all = the "
            "study's own runs): STUDY/budget/, the budget table and figure "
            f"{config_default('study.vote_budget.k')}. How the k votes are drawn: study.vote_budget.mode "
            f"({config_choices('study.vote_budget.mode')}) and .seed.")),
    ) -> None:
        """Run the whole study: train the grid, evaluate, calibrate, summarise, draw, report.

        Options you type win over the config's study section, which wins over the defaults."""
        settings = resolve(config, {
            "study.regimes": ("--regimes", regimes), "study.seeds": ("--seeds", seeds),
            "study.workers": ("--workers", workers), "study.executor": ("--executor", executor),
            "study.intervals": ("--intervals", intervals), "study.pack": ("--pack", pack),
            "study.vote_budget.k": ("--vote-budget", vote_budget)})
        from lczldl.study.runner import run_study  # deferred: numpy, h5py (lczldl --help)

        run_study(data=data, out=out, config=config, settings=settings, regimes=regimes, seeds=seeds,
                  workers=workers, executor=executor, intervals=intervals, pack=pack, vote_budget=vote_budget)

    @app.command("figures")
    def figures(
        study: Path = typer.Option(..., "--study", help="Study folder."),
        intervals: bool = typer.Option(None, "--intervals/--no-intervals", help=(
            "Report tables show mean [lo, hi] (95 %: over seeds, Student t; ensemble: bootstrap over "
            "test images) instead of mean ± std [default: the study's study.intervals].")),
        pdf: bool = typer.Option(None, "--pdf/--no-pdf", help=(
            "Figures also as PDF beside the PNGs; --no-pdf: PNG only, faster "
            "[default: the study's study.figures_pdf].")),
    ) -> None:
        """Redraw every figure and the report from saved predictions."""
        from lczldl.viz.report import redraw_study  # deferred: matplotlib

        redraw_study(study, intervals=intervals, pdf=pdf)

    @app.command("demo")
    def demo(
        out: Path = typer.Option(Path("lczldl-demo"), "--out", help="Demo folder."),
        profile: str = typer.Option(None, "--profile", help="; ".join(
            f"{name}: {p.help}" for name, p in PROFILES.items()) + ". Default: paper where CUDA is, else cpu."),
    ) -> None:
        """Synthesise the twin, prepare it, run a reduced study and write the report."""
        run_demo(out, profile)
