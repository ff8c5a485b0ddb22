"""``lczldl evaluate``: every run under ``--runs``, or one model (``--weights`` / ``--checkpoint``)
on a store's test split (``--data``)."""

from __future__ import annotations

from pathlib import Path

import typer

from lczldl.cli.options import config_default, resolve
from lczldl.cli.predict import check_model_choice, model_files
from lczldl.cli.weights import TRUST_HELP
from lczldl.errors import ConfigError


def register(app: typer.Typer) -> None:
    @app.command("evaluate")
    def evaluate(
        runs: Path = typer.Option(None, "--runs", help="Folder holding REGIME/seedN run folders."),
        out: Path = typer.Option(None, "--out", help="Where summary.csv/md go (default: RUNS); with "
                                                     "--weights/--checkpoint: the output folder (required)."),
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
        weights: str = typer.Option(None, "--weights", help=(
            "Evaluate named pretrained weights (lczldl weights list) or a weights file on --data's test split.")),
        checkpoint: Path = typer.Option(None, "--checkpoint", help=(
            "Evaluate this run checkpoint or weights file on --data's test split.")),
        data: Path = typer.Option(None, "--data", help="Prepared store (with --weights / --checkpoint)."),
        fit_temperature: bool = typer.Option(False, "--fit-temperature", help=(
            "With --weights/--checkpoint: also fit a temperature on the store's validation split "
            "(metrics_ts.json); without, temperature 1.")),
        trust_checkpoint: bool = typer.Option(False, "--trust-checkpoint", help=TRUST_HELP),
    ) -> None:
        """Evaluate every finished run: predictions, metrics, temperature scaling, MC dropout, conformal
        sets, selective prediction, ensembles, summary. With --weights or --checkpoint: one model on
        a store's test split."""
        ev = resolve(config, {"evaluation.mc_passes": ("--mc-passes", mc_passes),
                              "evaluation.n_bins": ("--bins", n_bins),
                              "evaluation.conformal": ("--conformal", conformal),
                              "evaluation.selective": ("--selective", selective),
                              "evaluation.conformal_levels": ("--levels", levels)}).evaluation
        if weights is None and checkpoint is None:
            if runs is None:
                raise ConfigError("give runs, or weights or checkpoints with data",
                                  params=("runs", "weights", "checkpoints", "data"))
            from lczldl.evaluation.runs import evaluate_runs  # deferred: numpy (lczldl --help)

            evaluate_runs(runs, evaluation=ev, out=out)
            return
        _evaluate_model(weights, checkpoint, runs, data, out, ev, fit_temperature, trust_checkpoint)


def _evaluate_model(weights, checkpoint, runs, data, out, ev, fit_temperature: bool, trust: bool) -> None:
    """``evaluate --weights/--checkpoint``: checks, then :func:`lczldl.evaluation.model_eval.evaluate_model`."""
    check_model_choice([checkpoint] if checkpoint else None, weights)
    if runs is not None:
        raise ConfigError("give either runs or a single model (weights or checkpoints), not both",
                          params=("runs", "weights", "checkpoints"))
    if data is None or out is None:
        raise ConfigError("a single model is evaluated on a store: give data and out",
                          params=("data", "out"))
    (path,) = model_files([checkpoint] if checkpoint else None, weights)
    from lczldl.evaluation.model_eval import evaluate_model  # deferred: numpy (lczldl --help)

    res = evaluate_model(path, data, out, ev, fit_temp=fit_temperature, trust=trust,
                         label=weights or str(checkpoint), say=lambda line: typer.echo(line, err=True))
    m = res["metrics"]
    typer.echo(f"{res['meta']['n']:,} test images: oa {m['oa']:.4f}, ece {m['ece']:.4f}, nll {m.get('nll', float('nan')):.4f}")
    if res["metrics_ts"] is not None:
        t = res["metrics_ts"]
        typer.echo(f"temperature {res['temperature']:.4f} (fitted on val): oa {t['oa']:.4f}, ece {t['ece']:.4f}, "
                   f"nll {t.get('nll', float('nan')):.4f}")
    typer.echo(f"wrote {out}")
