"""``lczldl evaluate``."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("evaluate")
    def evaluate(
        runs: Path = typer.Option(..., "--runs", help="Folder holding REGIME/seedN run folders."),
        out: Path = typer.Option(None, "--out", help="Where summary.csv/md go (default: RUNS)."),
        mc_passes: int = typer.Option(20, "--mc-passes", help="MC dropout passes."),
        n_bins: int = typer.Option(20, "--bins", help="Calibration bins."),
    ) -> None:
        """Evaluate every finished run: predictions, metrics, temperature scaling, MC dropout, ensembles, summary."""
        from lczldl.evaluation.runs import evaluate_runs

        evaluate_runs(runs, out=out, mc_passes=mc_passes, n_bins=n_bins)
