"""``lczldl data``: synthesise the twin, prepare a store, inspect statistics."""

from __future__ import annotations

from pathlib import Path

import typer

from lczldl.cli.options import config_choices, config_default, resolve
from lczldl.config import PrepareConfig
from lczldl.constants import SOFT_AGGREGATORS

P = "study.prepare."  # the config section of prepare's settings

app = typer.Typer(help="Raw vote files (or So2Sat LCZ42) -> prepared store; synthetic twin; statistics.",
                  no_args_is_help=True)


@app.command("synth")
def synth(
    out: Path = typer.Option(..., "--out", help="Folder for the 18 cities' raw vote files."),
    seed: int = typer.Option(0, "--seed", min=0, help="Random seed of the twin."),
    size: str = typer.Option("small", "--size", help="tiny (tests) | small (demo) | medium | full (like the real release)."),
) -> None:
    """Write a realistic synthetic twin of the label-evaluation release (raw vote-file format)."""
    from lczldl.data.synth import synthesize  # deferred: numpy, h5py (lczldl --help)

    written = synthesize(out, seed=seed, size=size)
    typer.echo(f"twin {out}: {len(written)} files, {sum(written.values())} patches")


@app.command("prepare")
def prepare(
    raw: Path = typer.Option(None, "--raw", help="Folder with {city}.h5 / {city}_addon.h5 vote files."),
    so2sat: Path = typer.Option(None, "--so2sat", help=(
        "So2Sat LCZ42 in TorchGeo's layout instead of --raw: a v2 folder (training/validation/testing.h5) "
        "or a v3 folder (random/, block/, culture_10/ with training/testing.h5; choose --variant). "
        "17 classes, no votes: only the regimes onehot and onehot_ls apply.")),
    variant: str = typer.Option(None, "--variant", help=(
        "With --so2sat v3: random | block | culture_10. Validation is carved from its training file "
        "(seeded by --seed, class-stratified 10 %).")),
    out: Path = typer.Option(..., "--out", help="Folder of the prepared store."),
    config: Path = typer.Option(None, "--config", help="YAML config file (its study.prepare section)."),
    split: str = typer.Option(None, "--split", help=(
        f"{config_choices(P + 'split')} {config_default(P + 'split')}.")),
    seed: int = typer.Option(None, "--seed", help=(
        f"Seed of the random / held-out split {config_default(P + 'seed')}.")),
    train_cities: str = typer.Option(None, "--train-cities", help="Comma list (with --split cities)."),
    val_cities: str = typer.Option(None, "--val-cities", help="Comma list (with --split cities)."),
    test_cities: str = typer.Option(None, "--test-cities", help="Comma list (with --split cities)."),
    smoothing: float = typer.Option(None, "--smoothing", help=(
        f"Distribution smoothing a: (c+a)/(n(1+a)) {config_default(P + 'smoothing')}.")),
    drop_nonfinite: bool = typer.Option(None, "--drop-nonfinite/--keep-nonfinite", help=(
        f"Drop rows with NaN/inf pixels instead of failing {config_default(P + 'drop_nonfinite')}.")),
    aggregators: str = typer.Option(None, "--aggregators", help=(
        "Comma list of crowd-kit aggregators whose posteriors become soft targets agg_<name>: "
        f"{', '.join(SOFT_AGGREGATORS)} (needs crowd-kit; GLAD is slow on large stores) "
        f"{config_default(P + 'aggregators')}.")),
) -> None:
    """Read raw vote files (or So2Sat LCZ42), build labels and write train/val/test into a prepared store."""
    if (raw is None) == (so2sat is None):
        raise typer.BadParameter("give exactly one of --raw (vote files) or --so2sat (So2Sat LCZ42)")
    if variant is not None and so2sat is None:
        raise typer.BadParameter("--variant goes with --so2sat", param_hint="--variant")
    if so2sat is not None:
        vote_only = {"--split": split, "--train-cities": train_cities, "--val-cities": val_cities,
                     "--test-cities": test_cities, "--smoothing": smoothing, "--aggregators": aggregators}
        bad = [flag for flag, v in vote_only.items() if v is not None]
        if bad:
            raise typer.BadParameter(f"{', '.join(bad)}: settings of the vote files, not of --so2sat "
                                     "(So2Sat has its own splits and no votes)")
    given = {"split": ("--split", split), "seed": ("--seed", seed),
             "train_cities": ("--train-cities", train_cities), "val_cities": ("--val-cities", val_cities),
             "test_cities": ("--test-cities", test_cities), "smoothing": ("--smoothing", smoothing),
             "drop_nonfinite": ("--drop-nonfinite", drop_nonfinite),
             "aggregators": ("--aggregators", aggregators)}
    settings = resolve(config, {f"study.prepare.{k}": v for k, v in given.items()}).study
    from lczldl.data.prepare import (  # deferred: numpy, h5py (lczldl --help)
        prepare_so2sat_store,
        prepare_store,
    )

    resolved = settings.prepare if settings is not None else PrepareConfig()
    m = (prepare_store(raw, out, resolved) if so2sat is None
         else prepare_so2sat_store(so2sat, out, variant, resolved))
    sizes = ", ".join(f"{s} {v['n']}" for s, v in m["splits"].items())
    dropped = ", ".join(f"{k} {v}" for k, v in m["dropped"].items() if v) or "none"
    kind = "" if m.get("votes", True) else f" (So2Sat LCZ42 {m.get('so2sat_version')}, 17 classes, no votes)"
    typer.echo(f"store {out}{kind}: {sizes}; dropped: {dropped}")


@app.command("inspect")
def inspect(
    path: Path = typer.Argument(..., help="A prepared store, a raw vote folder or a distributions .h5."),
    reference: Path = typer.Option(None, "--reference", help="Real distributions .h5 to compare against."),
    per_class: bool = typer.Option(False, "--per-class",
                                   help="Also show row shares and entropy bins per majority class."),
) -> None:
    """Print vote statistics (class shares, entropy bins, unanimity, disagreement pairs) and distances."""
    from lczldl.data.stats import inspect_path  # deferred: numpy, h5py (lczldl --help)

    inspect_path(path, reference=reference, per_class=per_class)
