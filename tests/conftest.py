"""Fixtures shared by the test folders."""

from __future__ import annotations

import json
import math
import os
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    """One intra-op thread for torch in the test process and the processes it starts, unless
    ``OMP_NUM_THREADS`` is set. On 2 shared cores torch's default (a thread per core) spin-waits:
    the maps tests' model fit took 420 s wall / 142 s CPU with 2 threads, 72 s / 23 s with 1.
    Set here, before any test module imports torch (torch reads it at import)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if "torch" in sys.modules:                       # imported early by a plugin: apply directly
        sys.modules["torch"].set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    if getattr(config, "workerinput", None) is None and config.getoption("numprocesses", None):
        return                  # pytest-xdist's controller runs no test: no Lightning to import
    # Lightning gives its logger a StreamHandler on sys.stderr when it is first imported. Imported
    # first inside a test that captures stderr (capsys), that handler keeps the test's stream, which
    # is closed afterwards, and every later Trainer prints a "Logging error" traceback to stderr: the
    # order of the tests decided what a CLI test saw. Import it here, before any test captures.
    import lightning.pytorch  # noqa: F401


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Heavy modules first: a module with a ``slow`` test moves ahead of the others (order kept
    within each group and module). Run in parallel (scripts/test.sh: one module per process at a
    time), the long modules start at once and the short ones fill in around them, instead of one
    process finishing a long module alone at the end."""
    slow = {item.module.__name__ for item in items
            if item.get_closest_marker("slow") is not None and getattr(item, "module", None)}
    items.sort(key=lambda item: getattr(item, "module", None) is None or item.module.__name__ not in slow)


#: where the shared files live; default: the repo's sibling folder ``../shared``
SHARED_DIR_ENV = "LCZLDL_SHARED_DIR"
#: set to 1 (CI does, .ci/run) to make a missing shared file a failure instead of a skip
REQUIRE_SHARED_ENV = "LCZLDL_REQUIRE_SHARED"


def shared_root() -> Path:
    """The shared folder: ``$LCZLDL_SHARED_DIR`` if set, else ``<repo>/../shared``."""
    return Path(os.environ.get(SHARED_DIR_ENV) or REPO / ".." / "shared")


def require_shared_file(relpath: str) -> Path:
    """Path of ``relpath`` (a file or folder) under :func:`shared_root`. Missing: the test skips
    with the reason, or fails when ``LCZLDL_REQUIRE_SHARED=1`` (the one rule for shared data)."""
    path = shared_root() / relpath
    if path.exists():
        return path
    reason = f"needs ../shared/{relpath} (not found: {path})"
    if os.environ.get(REQUIRE_SHARED_ENV, "") not in ("", "0"):
        pytest.fail(f"{reason}; {REQUIRE_SHARED_ENV} is set, so the shared files are required")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def shared_file() -> Callable[[str], Path]:
    """``shared_file("data/votes/x.h5")`` -> the path, or skip / fail per :func:`require_shared_file`.
    Every test that reads ``../shared`` goes through this."""
    return require_shared_file


@pytest.fixture
def store(tmp_path):
    """A folder that passes as a prepared store (a manifest with the format tag and version) and
    holds nothing else: enough for the study's bookkeeping with fake units."""
    s = tmp_path / "store"
    s.mkdir()
    (s / "manifest.json").write_text(json.dumps({"format": "lczldl-store", "version": 1}))
    return s


def release_votes_by_hand(raw: Path) -> dict:
    """What the manifest's ``release_votes`` should hold for the raw files in ``raw``, computed
    without lczldl: every row of every file, vote counts with a Counter, the majority with the
    release's tie rule (several top classes or no vote -> the original label, LCZ 7 for addons),
    the entropy of the vote shares over all 17 LCZ with math.log, the paper's left-closed bins."""
    edges = (0.2, 0.5, 0.7, 1.0, 1.3)
    bins = {"urban": [0] * 6, "non_urban": [0] * 6}
    voting = np.zeros((10, 10), dtype=np.int64)
    rows = no_votes = 0
    for path in sorted(raw.glob("*.h5")):
        with h5py.File(path, "r") as f:
            label = f["label"][()].astype(np.int64)
        if path.stem.endswith("_addon"):
            votes, original = label, np.full(len(label), 7)
        else:
            votes, original = label[:, :11], label[:, 11]
        for row, orig in zip(votes.tolist(), original.tolist(), strict=True):
            rows += 1
            cast = [v for v in row if v != 0]
            for v in cast:
                if 1 <= orig <= 10 and 1 <= v <= 10:
                    voting[orig - 1, v - 1] += 1
            if not cast:
                no_votes += 1
                continue
            n = Counter(cast)
            top = max(n.values())
            cands = [c for c, k in n.items() if k == top]
            majority = cands[0] if len(cands) == 1 else orig
            ent = -sum(k / len(cast) * math.log(k / len(cast)) for k in n.values())
            bins["urban" if majority <= 10 else "non_urban"][sum(ent >= e for e in edges)] += 1
    return {"rows": rows, "rows_without_votes": no_votes, "entropy_bins": bins, "voting_counts": voting}


@pytest.fixture(scope="session")
def tiny_twin(tmp_path_factory) -> tuple[Path, Path, dict]:
    """(raw folder, prepared store, :func:`release_votes_by_hand` of the raw files) of the tiny
    synthetic twin, seed 0 (it has rows with a non-urban majority and rows without any vote)."""
    from lczldl.data.prepare import prepare_store
    from lczldl.data.synth import synthesize

    root = tmp_path_factory.mktemp("tiny_twin")
    synthesize(root / "raw", seed=0, size="tiny", progress=False)
    prepare_store(root / "raw", root / "store", progress=False)
    return root / "raw", root / "store", release_votes_by_hand(root / "raw")
