"""``lczldl predict``: LCZ maps with uncertainty from a Sentinel-2 product or scene.

The settings are the ``maps:`` config section (:class:`lczldl.config.MapsConfig`), resolved once:
defaults <- ``--config`` file <- ``--set`` <- the options typed here. Errors of :mod:`lczldl.maps`
name parameters; :data:`PARAM_FLAGS` writes them as this command's flags.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import typer

from lczldl.config import MapsConfig
from lczldl.errors import LczldlError
from lczldl.layout import MAP_GEOTIFFS, MAP_PREVIEW, MAP_RECORD

#: parameter names in the errors of lczldl.maps (predict_scene's arguments, MapsConfig's keys) ->
#: the flag of ``lczldl predict`` that sets them
PARAM_FLAGS: dict[str, str] = {
    "checkpoints": "--checkpoint", "scene": "--scene", "out": "--out", "bbox": "--bbox", "aoi": "--aoi",
    "stride": "--stride", "mc_passes": "--mc", "temperature": "--temperature", "cloud_classes": "--cloud-classes",
    "max_cloud_share": "--max-cloud-share", "bands": "--bands", "scale": "--scale", "offset": "--offset",
}


def _config(key: str) -> str:
    """``[config: X]``: the default of ``maps.KEY`` as MapsConfig declares it (lists as comma lists,
    an empty list or None as none)."""
    value = MapsConfig.model_fields[key].get_default(call_default_factory=True)
    if isinstance(value, list | tuple):
        value = ",".join(str(v) for v in value) or None
    return f"[config: {'none' if value is None else value}]"


def with_flags(exc: LczldlError, flags: Mapping[str, str] = PARAM_FLAGS) -> str:
    """The message of ``exc`` with each parameter it names (``exc.params``) written as its flag:
    ``name=value`` -> ``--flag value``, ``name`` -> ``--flag`` (whole words; not inside a path)."""
    message = str(exc)
    for param in getattr(exc, "params", ()):
        flag = flags.get(param)
        if flag is not None:
            pattern = re.compile(rf"(?<![\w./\\-]){re.escape(param)}(?:(=)|(?![\w/\\-]|\.\w))")
            message = pattern.sub(lambda m, f=flag: f"{f} " if m.group(1) else f, message)
    return message


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
        config: Path = typer.Option(None, "--config", help="YAML config file (its maps section)."),
        set_: list[str] = typer.Option(None, "--set", help="Override, key=value (repeatable), e.g. maps.batch_size=512."),
        stride: int = typer.Option(None, "--stride", help=f"Window stride in pixels (10 px = 100 m) {_config('stride')}."),
        mc: int = typer.Option(None, "--mc", help=f"MC dropout passes (0 = off) {_config('mc_passes')}."),
        temperature: str = typer.Option(None, "--temperature",
                                        help=f"auto (from the run) or a number {_config('temperature')}."),
        cloud_classes: str = typer.Option(
            None, "--cloud-classes",
            help="L2A SCL classes to mask, e.g. 3,8,9 (1 saturated, 3 cloud shadow, 8/9 cloud medium/high "
                 "probability, 10 thin cirrus); 'none' turns every cloud mask off (L1C's MSK_CLASSI too) "
                 f"{_config('cloud_classes')}."),
        max_cloud_share: float = typer.Option(
            None, "--max-cloud-share",
            help=f"A 32x32 window with a larger share of masked pixels is no-data in every output "
                 f"{_config('max_cloud_share')}."),
        bands: str = typer.Option(None, "--bands", help="Band order of a stacked GeoTIFF, e.g. B02,B03,B04,B08,... "
                                                        f"(none: So2Sat's B02,B03,B04,B05,B06,B07,B08,B8A,B11,B12) "
                                                        f"{_config('bands')}."),
        scale: float = typer.Option(None, "--scale", help="Files without product metadata: reflectance = "
                                                          "(value + offset) / scale (e.g. 10000); required for "
                                                          f"integer data {_config('scale')}."),
        offset: float = typer.Option(None, "--offset", help="Files without product metadata: additive offset "
                                                            "(-1000 for processing baseline 04.00 and later; none: 0) "
                                                            f"{_config('offset')}."),
    ) -> None:
        """Slide Sen2LCZ-Net over a Sentinel-2 scene and write lcz/probability/entropy/confidence GeoTIFFs, a preview and predict.json."""
        from lczldl.config import load_config

        typed = {"maps.stride": ("--stride", stride), "maps.mc_passes": ("--mc", mc),
                 "maps.temperature": ("--temperature", temperature),
                 "maps.cloud_classes": ("--cloud-classes", cloud_classes),
                 "maps.max_cloud_share": ("--max-cloud-share", max_cloud_share), "maps.bands": ("--bands", bands),
                 "maps.scale": ("--scale", scale), "maps.offset": ("--offset", offset)}
        settings = load_config(config, list(set_ or []), flags={k: f for k, (f, _) in typed.items()},
                               **{k: v for k, (_, v) in typed.items()}).maps
        from lczldl.maps.predict import predict_scene

        def say(line: str) -> None:
            typer.echo(line, err=line.startswith("warning:"))

        try:
            rec = predict_scene(checkpoint, scene, out, settings, bbox=bbox, aoi=aoi, say=say)
        except LczldlError as exc:
            raise type(exc)(with_flags(exc)) from exc
        n = rec["windows"]
        typer.echo(f"done: {rec['windows_predicted']} of {n} windows predicted, {rec['windows_cloud']} no-data for "
                   f"clouds (cloud-masked share {100 * rec['cloud_masked_share']:.1f} %, mean masked pixels "
                   f"{100 * rec['cloud_pixel_share']:.1f} %), {rec['windows_nodata']} touching no-data pixels")
        typer.echo(f"wrote {out}/{', '.join((*MAP_GEOTIFFS, MAP_PREVIEW, MAP_RECORD))}")
