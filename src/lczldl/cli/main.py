"""Owns the ``lczldl`` entry point: wires up the command modules and is the one place where an
exception becomes what the user sees (one line on stderr, exit 2, no traceback).

Every command module registers itself on ``app``. Heavy imports (torch, lightning) happen inside
the command functions so that ``lczldl --help`` stays fast. What :func:`main` turns into one line:

- a usage error (unknown option, missing or bad value): the usual usage line, the hint and the
  problem, exit 2. Typer >= 0.2x runs on its own copy of click, so the click exceptions are
  taken from the class typer's ``BadParameter`` derives from, never from the ``click`` package;
- :class:`~lczldl.errors.LczldlError` (data, config, run, model, scene errors): its message, the
  parameters it names written as their flags (``lczldl.cli.options.with_flags``);
- ``OSError`` (full disk, no permission, missing folder): the path and the cause;
- ``ValueError`` from a pure function that an up-front check missed: its message.
Set ``LCZLDL_DEBUG=1`` to get the traceback instead.
"""

from __future__ import annotations

import errno
import os
import sys

import typer

from lczldl import __version__
from lczldl.cli import data as data_cmds
from lczldl.cli import evaluate as evaluate_cmds
from lczldl.cli import predict as predict_cmds
from lczldl.cli import study as study_cmds
from lczldl.cli import train as train_cmds
from lczldl.cli import weights as weights_cmds
from lczldl.cli.options import with_flags
from lczldl.errors import LczldlError

app = typer.Typer(
    name="lczldl",
    help="Learn Local Climate Zone classifiers from human label uncertainty (So2Sat LCZ42 votes).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,      # help texts say [config: X]: plain text, not rich markup
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
weights_cmds.register(app)

#: the click that typer runs on (its own vendored copy in typer >= 0.2x, the click package before)
ClickException: type[Exception] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")

#: how to fix the common operating-system failures
_OS_HINTS = {
    errno.ENOSPC: "free some space or choose another --out",
    errno.EDQUOT: "free some space or choose another --out",
    errno.EACCES: "choose a folder you may write to",
    errno.EPERM: "choose a folder you may write to",
    errno.EROFS: "the file system is read-only; choose another --out",
    errno.ENOENT: "check the path",
    errno.ENOTDIR: "a part of the path is a file, not a folder; choose another path",
    errno.EEXIST: "a file is in the way of a folder; choose another path",
}


def os_error_line(exc: OSError) -> str:
    """``PATH: cause; how to fix`` for an operating-system failure."""
    cause = os.strerror(exc.errno) if exc.errno else (exc.strerror or str(exc))
    where = exc.filename if exc.filename is not None else "file system"
    hint = _OS_HINTS.get(exc.errno or -1)
    return f"{where}: {cause}" + (f"; {hint}" if hint else "")


def error_line(exc: BaseException) -> str | None:
    """The one line a user sees for ``exc``, or None when it is a bug (shown with its traceback)."""
    if isinstance(exc, LczldlError):
        return with_flags(exc)
    if isinstance(exc, OSError):
        return os_error_line(exc)
    if isinstance(exc, ValueError):
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return None


def fail(message: str) -> None:
    """Print one error line and exit with code 2."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    sys.exit(2)


def _context_of(argv: list[str]) -> object | None:
    """The click context of the (sub)command that ``argv`` names, for usage errors click raised
    without one (a missing option value), so that they too show the command's usage line."""
    cmd: object = typer.main.get_command(app)
    ctx = cmd.make_context("lczldl", [], resilient_parsing=True)  # type: ignore[attr-defined]
    for word in argv:
        sub = getattr(cmd, "commands", {}).get(word)
        if sub is None:
            break
        cmd = sub
        ctx = sub.make_context(word, [], parent=ctx, resilient_parsing=True)
    return ctx


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; user errors exit 2 with one line (usage errors with the usage line), no traceback."""
    try:
        code = app(args=argv, prog_name="lczldl", standalone_mode=False)
    except ClickException as exc:  # usage errors (exit 2) and other click errors
        if hasattr(exc, "ctx") and exc.ctx is None:
            exc.ctx = _context_of(sys.argv[1:] if argv is None else argv)
        exc.show()  # type: ignore[attr-defined]
        sys.exit(getattr(exc, "exit_code", 2))
    except typer.Abort:
        typer.secho("aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        typer.secho("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:
        line = error_line(exc)
        if line is None or os.environ.get("LCZLDL_DEBUG"):
            raise
        fail(line)
    else:
        if isinstance(code, int) and code != 0:
            sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
