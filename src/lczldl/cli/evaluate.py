"""``lczldl evaluate``."""

from __future__ import annotations

from pathlib import Path

import typer

from lczldl.cli.options import config_default, resolve


def register(app: typer.Typer) -> None:
    @app.command("evaluate")
    def evaluate(
        runs: Path = typer.Option(..., "--runs", help="Folder holding REGIME/seedN run folders."),
        out: Path = typer.Option(None, "--out", help="Where summary.csv/md go (default: RUNS)."),
        config: Path = typer.Option(None, "--config", help="YAML config file (its evaluation section)."),
        mc_passes: int = typer.Option(None, "--mc-passes", help=(
            f"MC dropout passes {config_default('evaluation.mc_passes')}.")),
        n_bins: int = typer.Option(None, "--bins", help=f"Calibration bins {config_default('evaluation.n_bins')}."),
        conformal: bool = typer.Option(None, "--conformal/--no-conformal", help=(
            "Split-conformal sets (LAC, APS, RAPS) calibrated on val "
            f"{config_default('evaluation.conformal')}.")),
        selective: bool = typer.Option(None, "--selective/--no-selective", help=(
            "Selective prediction (AURC, accuracy at coverage) and uncertainty signals "
            f"{config_default('evaluation.selective')}.")),
        levels: str = typer.Option(None, "--levels", help=(
            f"Conformal coverage levels, comma list {config_default('evaluation.conformal_levels')}.")),
    ) -> None:
        """Evaluate every finished run: predictions, metrics, temperature scaling, MC dropout, conformal
        sets, selective prediction, ensembles, summary."""
        ev = resolve(config, {"evaluation.mc_passes": ("--mc-passes", mc_passes),
                              "evaluation.n_bins": ("--bins", n_bins),
                              "evaluation.conformal": ("--conformal", conformal),
                              "evaluation.selective": ("--selective", selective),
                              "evaluation.conformal_levels": ("--levels", levels)}).evaluation
        from lczldl.evaluation.runs import evaluate_runs  # deferred: numpy (lczldl --help)

        evaluate_runs(runs, evaluation=ev, out=out)
