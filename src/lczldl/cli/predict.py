"""``lczldl predict``: LCZ maps with uncertainty from a Sentinel-2 scene."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("predict")
    def predict(
        checkpoint: list[Path] = typer.Option(..., "--checkpoint", help="Run checkpoint or imported model; repeat for an ensemble."),
        scene: Path = typer.Option(..., "--scene", help="Sentinel-2 GeoTIFF, 10 bands in So2Sat order."),
        out: Path = typer.Option(..., "--out", help="Output folder."),
        stride: int = typer.Option(10, "--stride", help="Window stride in pixels (10 px = 100 m)."),
        mc: int = typer.Option(0, "--mc", help="MC dropout passes (0 = off)."),
        temperature: str = typer.Option("1", "--temperature", help="auto (from the run) or a number."),
        scale: float = typer.Option(None, "--scale", help="Divide pixels by this to get reflectance (default: auto)."),
    ) -> None:
        """Slide Sen2LCZ-Net over a scene and write lcz/probability/entropy/confidence GeoTIFFs and a preview."""
        from lczldl.maps.predict import predict_scene

        predict_scene(checkpoints=checkpoint, scene=scene, out=out, stride=stride, mc=mc,
                      temperature=temperature, scale=scale)
