"""``lczldl predict``: LCZ maps with uncertainty from a Sentinel-2 product or scene."""

from __future__ import annotations

from pathlib import Path

import typer

from lczldl.maps import radiometry


def register(app: typer.Typer) -> None:
    @app.command("predict")
    def predict(
        checkpoint: list[Path] = typer.Option(..., "--checkpoint", help="Run checkpoint or imported model; repeat for an ensemble."),
        scene: list[Path] = typer.Option(
            ..., "--scene",
            help="Sentinel-2 L1C/L2A .SAFE folder or its .zip; a folder of per-band files (..._B02.jp2, "
                 "..._B8A_20m.jp2, B02.tif), or repeat --scene once per band file; or one stacked 10-band GeoTIFF."),
        out: Path = typer.Option(..., "--out", help="Output folder."),
        bbox: tuple[float, float, float, float] = typer.Option(
            None, "--bbox", metavar="WEST SOUTH EAST NORTH",
            help="Map only this box (longitude/latitude degrees); only its windows are read."),
        aoi: Path = typer.Option(None, "--aoi", help="Map only the bounding box of this GeoJSON (lon/lat)."),
        stride: int = typer.Option(10, "--stride", help="Window stride in pixels (10 px = 100 m)."),
        mc: int = typer.Option(0, "--mc", help="MC dropout passes (0 = off)."),
        temperature: str = typer.Option("1", "--temperature", help="auto (from the run) or a number."),
        cloud_classes: str = typer.Option(
            None, "--cloud-classes",
            help=f"L2A SCL classes to mask, e.g. 3,8,9 (default {','.join(map(str, radiometry.DEFAULT_SCL_CLASSES))}: "
                 "saturated, cloud shadow, cloud "
                 "medium/high probability, thin cirrus); 'none' turns every cloud mask off (L1C's MSK_CLASSI too)."),
        max_cloud_share: float = typer.Option(
            None, "--max-cloud-share",
            help="A 32x32 window with a larger share of masked pixels is no-data in every output "
                 f"(default {radiometry.DEFAULT_MAX_CLOUD_SHARE})."),
        bands: str = typer.Option(None, "--bands", help="Band order of a stacked GeoTIFF, e.g. B02,B03,B04,B08,... "
                                                        "(default: So2Sat's B02,B03,B04,B05,B06,B07,B08,B8A,B11,B12)."),
        scale: float = typer.Option(None, "--scale", help="Files without product metadata: reflectance = "
                                                          "(value + offset) / scale (e.g. 10000); required for integer data."),
        offset: float = typer.Option(None, "--offset", help="Files without product metadata: additive offset "
                                                            "(-1000 for processing baseline 04.00 and later; default 0)."),
    ) -> None:
        """Slide Sen2LCZ-Net over a Sentinel-2 scene and write lcz/probability/entropy/confidence GeoTIFFs, a preview and predict.json."""
        from lczldl.maps.predict import predict_scene
        from lczldl.maps.radiometry import (
            DEFAULT_MAX_CLOUD_SHARE,
            DEFAULT_SCL_CLASSES,
            parse_band_list,
            parse_cloud_classes,
        )

        def say(line: str) -> None:
            typer.echo(line, err=line.startswith("warning:"))

        rec = predict_scene(
            checkpoints=checkpoint, scene=scene, out=out, stride=stride, mc=mc, temperature=temperature,
            scale=scale, offset=offset, bands=parse_band_list(bands) if bands is not None else None,
            bbox=bbox, aoi=aoi,
            cloud_classes=DEFAULT_SCL_CLASSES if cloud_classes is None else parse_cloud_classes(cloud_classes),
            max_cloud_share=DEFAULT_MAX_CLOUD_SHARE if max_cloud_share is None else max_cloud_share, say=say)
        n = rec["windows"]
        typer.echo(f"done: {rec['windows_predicted']} of {n} windows predicted, {rec['windows_cloud']} no-data for "
                   f"clouds (cloud-masked share {100 * rec['cloud_masked_share']:.1f} %, mean masked pixels "
                   f"{100 * rec['cloud_pixel_share']:.1f} %), {rec['windows_nodata']} touching no-data pixels")
        typer.echo(f"wrote {out}/lcz.tif, probability.tif, entropy.tif, confidence.tif, preview.png, predict.json")
