"""``lczldl data``: synthesise the twin, prepare a store, inspect statistics."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Raw vote files -> prepared store; synthetic twin; statistics.",
                  no_args_is_help=True)


@app.command("synth")
def synth(
    out: Path = typer.Option(..., "--out", help="Folder for the 18 cities' raw vote files."),
    seed: int = typer.Option(0, "--seed", help="Random seed of the twin."),
    size: str = typer.Option("small", "--size", help="small (demo) | medium | full (like the real release)."),
) -> None:
    """Write a realistic synthetic twin of the label-evaluation release (raw vote-file format)."""
    from lczldl.data.synth import synthesize

    synthesize(out, seed=seed, size=size)


@app.command("prepare")
def prepare(
    raw: Path = typer.Option(..., "--raw", help="Folder with {city}.h5 / {city}_addon.h5 vote files."),
    out: Path = typer.Option(..., "--out", help="Folder of the prepared store."),
    split: str = typer.Option("authors", "--split", help="authors | random | cities."),
    seed: int = typer.Option(42, "--seed", help="Seed of the random / held-out split."),
    train_cities: str = typer.Option(None, "--train-cities", help="Comma list (with --split cities)."),
    val_cities: str = typer.Option(None, "--val-cities", help="Comma list (with --split cities)."),
    test_cities: str = typer.Option(None, "--test-cities", help="Comma list (with --split cities)."),
    smoothing: float = typer.Option(0.0, "--smoothing", help="Distribution smoothing a: (c+a)/(n(1+a))."),
    drop_nonfinite: bool = typer.Option(False, "--drop-nonfinite", help="Drop rows with NaN/inf pixels instead of failing."),
) -> None:
    """Read raw vote files, build labels and write train/val/test into a prepared store."""
    from lczldl.data.prepare import prepare_store

    def _split(s: str | None) -> list[str] | None:
        return [c.strip() for c in s.split(",") if c.strip()] if s else None

    m = prepare_store(raw, out, split=split, seed=seed, train_cities=_split(train_cities),
                      val_cities=_split(val_cities), test_cities=_split(test_cities),
                      smoothing=smoothing, drop_nonfinite=drop_nonfinite)
    sizes = ", ".join(f"{s} {v['n']}" for s, v in m["splits"].items())
    dropped = ", ".join(f"{k} {v}" for k, v in m["dropped"].items() if v) or "none"
    typer.echo(f"store {out}: {sizes}; dropped: {dropped}")


@app.command("inspect")
def inspect(
    path: Path = typer.Argument(..., help="A prepared store, a raw vote folder or a distributions .h5."),
    reference: Path = typer.Option(None, "--reference", help="Real distributions .h5 to compare against."),
    per_class: bool = typer.Option(False, "--per-class",
                                   help="Also show row shares and entropy bins per majority class."),
) -> None:
    """Print vote statistics (class shares, entropy bins, unanimity, disagreement pairs) and distances."""
    from lczldl.data.stats import inspect_path

    inspect_path(path, reference=reference, per_class=per_class)
