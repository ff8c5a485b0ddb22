"""Entry point of the ``lczldl`` command.

Every command module registers itself on ``app``. Heavy imports (torch, lightning) happen inside
the command functions so that ``lczldl --help`` stays fast. Any :class:`~lczldl.errors.LczldlError`
becomes one line on stderr and exit code 2, without a traceback.
"""

from __future__ import annotations

import sys

import click
import typer

from lczldl import __version__
from lczldl.cli import data as data_cmds
from lczldl.cli import evaluate as evaluate_cmds
from lczldl.cli import predict as predict_cmds
from lczldl.cli import study as study_cmds
from lczldl.cli import train as train_cmds
from lczldl.errors import LczldlError

app = typer.Typer(
    name="lczldl",
    help="Learn Local Climate Zone classifiers from human label uncertainty (So2Sat LCZ42 votes).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"lczldl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """lcz-ldl command line."""


app.add_typer(data_cmds.app, name="data")
train_cmds.register(app)
evaluate_cmds.register(app)
study_cmds.register(app)
predict_cmds.register(app)


def fail(message: str) -> None:
    """Print one error line and exit with code 2."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    sys.exit(2)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; user errors exit 2 with one line, no traceback."""
    try:
        app(args=argv, standalone_mode=False)
    except LczldlError as exc:
        fail(str(exc))
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        typer.secho("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2)
    except KeyboardInterrupt:
        typer.secho("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
