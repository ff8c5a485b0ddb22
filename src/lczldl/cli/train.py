"""``lczldl train`` and ``lczldl import-keras``."""

from __future__ import annotations

from pathlib import Path

import typer

from lczldl.cli.options import config_choices, config_default, resolve


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train(
        data: Path = typer.Option(..., "--data", help="Prepared store (lczldl data prepare)."),
        out: Path = typer.Option(..., "--out", help="Runs folder; the run goes to OUT/REGIME/seedN/."),
        regime: str = typer.Option(None, "--regime", help=(
            f"{config_choices('train.regime')} {config_default('train.regime')}.")),
        seed: int = typer.Option(0, "--seed", min=0, help="Seed of the run."),
        config: Path = typer.Option(None, "--config", help="YAML config file (a study YAML works too)."),
        set_: list[str] = typer.Option(None, "--set", help="Override, key=value (repeatable)."),
        max_epochs: int = typer.Option(None, "--max-epochs", help=config_default("train.max_epochs")),
        resume: bool = typer.Option(False, "--resume", help="Continue from the run's last checkpoint."),
        trust_checkpoint: bool = typer.Option(False, "--trust-checkpoint", help=(
            "With --resume: load a last.ckpt that needs full unpickling (it can run code); only for "
            "files you trust.")),
    ) -> None:
        """Train Sen2LCZ-Net under one regime and seed."""
        cfg = resolve(config, {"train.regime": ("--regime", regime),
                               "train.max_epochs": ("--max-epochs", max_epochs)}, overrides=set_)
        from lczldl.training.run import train_run  # deferred: torch, lightning

        train_run(data, seed, out, cfg, resume=resume, trust_checkpoint=trust_checkpoint)

    @app.command("import-keras")
    def import_keras(
        weights: Path = typer.Argument(..., help="Keras 2.4 H5 weights of Sen2LCZ-Net."),
        out: Path = typer.Option(..., "--out", help="Output weights file (.safetensors)."),
    ) -> None:
        """Convert the authors' published Keras checkpoint into an lczldl model file."""
        from lczldl.models.io import save_model  # deferred: torch
        from lczldl.models.keras_import import from_keras  # deferred: torch

        save_model(from_keras(weights), out)
        typer.echo(f"wrote {out}")
