"""Deterministic kill points for the resume tests: a training run that blocks for good right after
``last.ckpt`` of a given epoch is on disk, so a test can kill it there (no timing involved).
Worker and CLI subprocesses import this module with the tests folder on PYTHONPATH."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from lczldl.fileio import atomic_write_text

#: the tests folder: put it on PYTHONPATH so that subprocesses can import this module
TESTS = Path(__file__).resolve().parent


def write_pid(marker: Path) -> None:
    """Write this process's pid to ``marker`` whole (temp name, then rename): a test waiting for
    the file never reads it half-written."""
    atomic_write_text(marker, str(os.getpid()))


def block_forever(folder: Path) -> None:
    """Block without polling: open a FIFO for reading that nobody ever writes to."""
    fifo = Path(folder) / "never-written.fifo"
    try:
        os.mkfifo(fifo)
    except FileExistsError:
        pass
    open(fifo).close()  # returns only if a writer appears (none does)
    raise RuntimeError("the FIFO was opened for writing")


def block_after_epoch(epoch: int, marker: Path) -> None:
    """From now on in this process, training writes ``marker`` (its pid) and blocks for good once
    the ``last.ckpt`` of ``epoch`` is saved."""
    from lczldl.training.callbacks import LastCheckpoint

    real = LastCheckpoint.on_train_epoch_end

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        real(self, trainer, pl_module)
        if trainer.current_epoch == epoch:
            write_pid(Path(marker))
            block_forever(Path(marker).parent)

    LastCheckpoint.on_train_epoch_end = on_train_epoch_end


def block_after_pack_epoch(epoch: int, marker: Path) -> None:
    """From now on in this process, a pack (``training.packed.train_pack``) writes ``marker`` (its
    pid) and blocks for good once every member's checkpoints of ``epoch`` are committed (its
    ``on_epoch`` callback runs after the commit)."""
    from lczldl.training import packed

    real = packed.train_pack

    def train_pack(*args, on_epoch=None, **kwargs):
        def hook(e, results):
            if on_epoch is not None:
                on_epoch(e, results)
            if e == epoch:
                write_pid(Path(marker))
                block_forever(Path(marker).parent)
        return real(*args, on_epoch=hook, **kwargs)

    packed.train_pack = train_pack


def pythonpath() -> str:
    """PYTHONPATH for subprocesses that import this module (or the tests' fake study work)."""
    return os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])


if __name__ == "__main__":  # python -m killpoint EPOCH MARKER lczldl-arguments...
    block_after_epoch(int(sys.argv[1]), Path(sys.argv[2]))
    from lczldl.cli.main import main

    main(sys.argv[3:])
