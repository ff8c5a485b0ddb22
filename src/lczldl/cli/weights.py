"""``lczldl weights list|show`` and ``lczldl export-weights``: the registry of named pretrained
weights and the self-describing weights file (docs/weights.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from lczldl.errors import ModelError

app = typer.Typer(help="Named pretrained weights: the registry and weights files.", no_args_is_help=True,
                  rich_markup_mode=None)

TRUST_HELP = ("Load a pickled checkpoint that needs full unpickling (it can run code from the file); "
              "only for files you trust.")


def _line(key: str, value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return f"{key}: {text}"


@app.command("list")
def list_weights() -> None:
    """Show the registry: name, classes, regime, sha256, whether it is in the cache."""
    from lczldl.models.classes import lcz_codes  # deferred: torch
    from lczldl.models.weights import cache_dir, iter_entries  # deferred: torch

    for w, cached in iter_entries():
        typer.echo(f"{w.name:<16} LCZ {lcz_codes(w.classes):<6} regime {w.regime:<7} sha256 {w.sha256[:12]}  "
                   f"{'cached' if cached else 'not downloaded'}")
        typer.echo(f"{'':16} {w.description}")
        typer.echo(f"{'':16} {w.url()}")
        typer.echo(f"{'':16} licence: {w.licence}")
    typer.echo(f"cache: {cache_dir()}")


def describe(name_or_file: str, trust: bool = False) -> dict[str, Any]:
    """What ``weights show`` prints: a registry entry (and its cached file's record), or a model
    file's record (a weights file's header; a checkpoint's model_kwargs and classes)."""
    from lczldl.models.classes import model_classes  # deferred: torch
    from lczldl.models.io import load_model  # deferred: torch
    from lczldl.models.weights import converted_path, registry  # deferred: torch
    from lczldl.models.weights_file import is_weights_file, read_weights_meta  # deferred: torch

    entry = registry().get(name_or_file)
    if entry is not None:
        path = converted_path(entry)
        meta = read_weights_meta(path) if path.is_file() else entry.meta()
        return {"registry": entry.name, "url": entry.url(), "sha256": entry.sha256,
                "cached": str(path) if path.is_file() else None, **meta}
    path = Path(name_or_file)
    if is_weights_file(path):
        return {"file": str(path), "format": "lczldl-weights (safetensors)", **read_weights_meta(path)}
    model = load_model(path, trust=trust)
    return {"file": str(path), "format": "pickled checkpoint (no record; lczldl export-weights writes one)",
            "model_kwargs": model.model_kwargs, "classes": model_classes(model)}


@app.command("show")
def show(
    name_or_file: str = typer.Argument(..., metavar="FILE_OR_NAME", help="A registry name or a model file."),
    as_json: bool = typer.Option(False, "--json", help="Print the record as JSON."),
    trust_checkpoint: bool = typer.Option(False, "--trust-checkpoint", help=TRUST_HELP),
) -> None:
    """Print a weights file's record (classes, bands, scaling, regime, temperature, conformal
    thresholds, store, source, citation, licence) or a registry entry's."""
    from lczldl.models.weights import registry  # deferred: torch

    if name_or_file not in registry() and not Path(name_or_file).exists():
        raise ModelError(f"{name_or_file}: neither a registry name ({', '.join(registry())}) nor a file")
    info = describe(name_or_file, trust_checkpoint)
    if as_json:
        typer.echo(json.dumps(info, indent=2, default=str))
        return
    for key, value in info.items():
        typer.echo(_line(key, value))


def register(main_app: typer.Typer) -> None:
    main_app.add_typer(app, name="weights")

    @main_app.command("export-weights")
    def export_weights(
        source: Path = typer.Argument(..., metavar="RUN_OR_CHECKPOINT",
                                      help="A run folder (RUNS/REGIME/seedN), a checkpoint or a model file."),
        out: Path = typer.Option(..., "--out", help="The weights file to write (.safetensors)."),
        trust_checkpoint: bool = typer.Option(False, "--trust-checkpoint", help=TRUST_HELP),
    ) -> None:
        """Write one self-describing weights file: weights, classes, bands, scaling, regime, the
        store's checksum, the fitted temperature and the conformal thresholds of an evaluated run."""
        from lczldl.models.export import export_weights as export  # deferred: torch

        export(source, out, trust=trust_checkpoint)
        typer.echo(f"wrote {out} (lczldl weights show {out})")
