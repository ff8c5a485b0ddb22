"""``lczldl train`` and ``lczldl import-keras``."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train(
        data: Path = typer.Option(..., "--data", help="Prepared store (lczldl data prepare)."),
        out: Path = typer.Option(..., "--out", help="Runs folder; the run goes to OUT/REGIME/seedN/."),
        regime: str = typer.Option(None, "--regime",
                                   help="onehot | onehot_ls | dist | dist_ls | dawid_skene [config: onehot]."),
        seed: int = typer.Option(0, "--seed", min=0, help="Seed of the run."),
        config: Path = typer.Option(None, "--config", help="YAML config file (a study YAML works too)."),
        set_: list[str] = typer.Option(None, "--set", help="Override, key=value (repeatable)."),
        max_epochs: int = typer.Option(None, "--max-epochs", help="[config: 300]"),
        resume: bool = typer.Option(False, "--resume", help="Continue from the run's last checkpoint."),
    ) -> None:
        """Train Sen2LCZ-Net under one regime and seed."""
        from lczldl.training.run import train_run

        train_run(data=data, regime=regime, seed=seed, out=out, config=config,
                  overrides=list(set_ or []), max_epochs=max_epochs, resume=resume)

    @app.command("import-keras")
    def import_keras(
        weights: Path = typer.Argument(..., help="Keras 2.4 H5 weights of Sen2LCZ-Net."),
        out: Path = typer.Option(..., "--out", help="Output model file (.pt)."),
    ) -> None:
        """Convert the authors' published Keras checkpoint into an lczldl model file."""
        from lczldl.models import from_keras
        from lczldl.models.io import save_model

        save_model(from_keras(weights), out)
        typer.echo(f"wrote {out}")
