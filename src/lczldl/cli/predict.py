"""``lczldl predict``: LCZ maps with uncertainty from a Sentinel-2 product or scene.

The settings are the ``maps:`` config section (:class:`lczldl.config.MapsConfig`), resolved once
(:func:`lczldl.cli.options.resolve`): defaults <- ``--config`` file <- ``--set`` <- the options
typed here. Errors of :mod:`lczldl.maps` name parameters; the CLI writes them as flags
(:data:`lczldl.cli.options.PARAM_FLAGS`).
"""

from __future__ import annotations

from pathlib import Path

import typer

from lczldl.cli.options import config_default, resolve
from lczldl.cli.weights import TRUST_HELP
from lczldl.errors import ConfigError
from lczldl.layout import MAP_GEOTIFFS, MAP_PREVIEW, MAP_RECORD, MAP_STAC_ITEM


def check_model_choice(checkpoints: list[Path] | None, weights: str | None) -> None:
    """ConfigError (one line) unless exactly one of ``--checkpoint`` and ``--weights`` is given."""
    if bool(checkpoints) == bool(weights):
        raise ConfigError("give either checkpoints or weights (one of them, not both)",
                          params=("checkpoints", "weights"))


def model_files(checkpoints: list[Path] | None, weights: str | None) -> list[Path]:
    """The model files of ``--checkpoint`` (repeatable) or ``--weights`` (a registry name, fetched
    into the cache, or a file); exactly one of the two (:func:`check_model_choice`)."""
    check_model_choice(checkpoints, weights)
    if checkpoints:
        return list(checkpoints)
    from lczldl.models.weights import resolve_weights  # deferred: torch

    return [resolve_weights(weights)]


def register(app: typer.Typer) -> None:
    @app.command("predict")
    def predict(
        checkpoint: list[Path] = typer.Option(None, "--checkpoint", help="Run checkpoint or weights file; repeat for an ensemble."),
        weights: str = typer.Option(None, "--weights", help="Named pretrained weights (lczldl weights list; "
                                                            "downloaded once) or a weights file."),
        scene: list[Path] = typer.Option(
            ..., "--scene",
            help="Sentinel-2 L1C/L2A .SAFE folder or its .zip; a STAC Item (ITEM.json) with per-band COG assets; "
                 "a folder of per-band files (..._B02.jp2, ..._B8A_20m.jp2, B02.tif), or repeat --scene once per "
                 "band file; or one stacked 10-band GeoTIFF."),
        out: Path = typer.Option(..., "--out", help="Output folder."),
        bbox: tuple[float, float, float, float] = typer.Option(
            None, "--bbox", metavar="WEST SOUTH EAST NORTH",
            help="Map only this box (longitude/latitude degrees); only its windows are read."),
        aoi: Path = typer.Option(None, "--aoi", help="Map only the bounding box of this GeoJSON (lon/lat)."),
        config: Path = typer.Option(None, "--config", help="YAML config file (its maps section)."),
        set_: list[str] = typer.Option(None, "--set", help="Override, key=value (repeatable), e.g. maps.batch_size=512."),
        stride: int = typer.Option(None, "--stride", help=f"Window stride in pixels (10 px = 100 m) {config_default('maps.stride')}."),
        mc: int = typer.Option(None, "--mc", help=f"MC dropout passes (0 = off) {config_default('maps.mc_passes')}."),
        temperature: str = typer.Option(None, "--temperature",
                                        help=f"auto (from the run) or a number {config_default('maps.temperature')}."),
        cloud_classes: str = typer.Option(
            None, "--cloud-classes",
            help="L2A SCL classes to mask, e.g. 3,8,9 (1 saturated, 3 cloud shadow, 8/9 cloud medium/high "
                 "probability, 10 thin cirrus); 'none' turns every cloud mask off (L1C's MSK_CLASSI too) "
                 f"{config_default('maps.cloud_classes')}."),
        max_cloud_share: float = typer.Option(
            None, "--max-cloud-share",
            help=f"A 32x32 window with a larger share of masked pixels is no-data in every output "
                 f"{config_default('maps.max_cloud_share')}."),
        bands: str = typer.Option(None, "--bands", help="Band order of a stacked GeoTIFF, e.g. B02,B03,B04,B08,... "
                                                        f"(none: So2Sat's B02,B03,B04,B05,B06,B07,B08,B8A,B11,B12) "
                                                        f"{config_default('maps.bands')}."),
        scale: float = typer.Option(None, "--scale", help="Files without product metadata: reflectance = "
                                                          "(value + offset) / scale (e.g. 10000); required for "
                                                          f"integer data {config_default('maps.scale')}."),
        offset: float = typer.Option(None, "--offset", help="Files without product metadata: additive offset "
                                                            "(-1000 for processing baseline 04.00 and later; none: 0) "
                                                            f"{config_default('maps.offset')}."),
        filter_sigma: str = typer.Option(
            None, "--filter-sigma",
            help="Gaussian filter of lcz_filter: 'published' (the LCZ Generator's and global map's class-specific "
                 "kernels, sigma 25-250 m) or one sigma in metres for every class (0 = no smoothing) "
                 f"{config_default('maps.filter_sigma_m')}."),
        allow_resolution: bool = typer.Option(
            None, "--allow-resolution/--refuse-resolution",
            help="Map bands whose pixel size is not Sentinel-2's (10 m B02 B03 B04 B08, 20 m B05 B06 B07 B8A B11 "
                 f"B12) instead of refusing them {config_default('maps.allow_resolution')}."),
        conformal_set: str = typer.Option(
            None, "--conformal-set",
            help="uncertainty.tif's set_size band: the conformal set (e.g. lac_90, aps_95) whose threshold a "
                 "single model file from lczldl export-weights carries; 'none' for no set_size "
                 f"{config_default('maps.conformal_set')}."),
        trust_checkpoint: bool = typer.Option(False, "--trust-checkpoint", help=TRUST_HELP),
    ) -> None:
        """Slide Sen2LCZ-Net over a Sentinel-2 scene; write the LCZ map (raw, filtered, probability), uncertainty and per-class probabilities as COGs, a STAC Item, a preview and predict.json."""
        typed = {"maps.stride": ("--stride", stride), "maps.mc_passes": ("--mc", mc),
                 "maps.temperature": ("--temperature", temperature),
                 "maps.cloud_classes": ("--cloud-classes", cloud_classes),
                 "maps.max_cloud_share": ("--max-cloud-share", max_cloud_share), "maps.bands": ("--bands", bands),
                 "maps.scale": ("--scale", scale), "maps.offset": ("--offset", offset),
                 "maps.filter_sigma_m": ("--filter-sigma", filter_sigma),
                 "maps.allow_resolution": ("--allow-resolution", allow_resolution),
                 "maps.conformal_set": ("--conformal-set", conformal_set)}
        settings = resolve(config, typed, overrides=set_).maps
        models = model_files(checkpoint, weights)
        from lczldl.maps.predict import predict_scene  # deferred: torch, rasterio

        def say(line: str) -> None:
            typer.echo(line, err=line.startswith("warning:"))

        rec = predict_scene(models, scene, out, settings, bbox=bbox, aoi=aoi, say=say,
                            trust_checkpoint=trust_checkpoint)
        if rec.get("classes_note"):
            typer.echo(f"note: {rec['classes_note']}")
        n = rec["windows"]
        typer.echo(f"done: {rec['windows_predicted']} of {n} windows predicted, {rec['windows_cloud']} no-data for "
                   f"clouds (cloud-masked share {100 * rec['cloud_masked_share']:.1f} %, mean masked pixels "
                   f"{100 * rec['cloud_pixel_share']:.1f} %), {rec['windows_nodata']} touching no-data pixels")
        typer.echo(f"wrote {out}/{', '.join((*MAP_GEOTIFFS, MAP_STAC_ITEM, MAP_PREVIEW, MAP_RECORD))}")
