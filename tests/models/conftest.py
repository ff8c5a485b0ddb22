"""The authors' published Keras weights (../shared/data/lcz_ldl_keras) and a local HTTP mirror of
their repository's URL layout on 127.0.0.1 (what the registry tests download from)."""

from __future__ import annotations

import functools
import http.server
import importlib.util
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from lczldl.models.weights import CACHE_ENV, MIRROR_ENV, registry

REPO = Path(__file__).resolve().parents[2]
RESOURCES = REPO / "tests" / "resources"
#: registry name -> the reference outputs TensorFlow computed for that file (test_keras_import.py)
REFERENCE = {"authors-onehot": RESOURCES / "keras_reference_onehot.npz",
             "authors-dist": RESOURCES / "keras_reference_dist.npz"}


@pytest.fixture(scope="session")
def training_helpers():
    """tests/training/conftest.py as a module (its tiny store writer and tiny run config), for the
    model tests that train a run."""
    spec = importlib.util.spec_from_file_location("training_helpers", REPO / "tests" / "training" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def keras_dir(shared_file) -> Path:
    """../shared/data/lcz_ldl_keras through the shared-file rule of tests/conftest.py (skip with the
    reason when absent, fail under LCZLDL_REQUIRE_SHARED=1)."""
    return shared_file("data/lcz_ldl_keras")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # no request lines on stderr
        pass


class Mirror:
    """A folder served over HTTP on 127.0.0.1 (a thread); ``root`` mirrors the URL paths."""

    def __init__(self, root: Path) -> None:
        self.root = root
        handler = functools.partial(_Quiet, directory=str(root))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.running = True

    def put(self, name: str, source: Path) -> Path:
        """Serve ``source``'s bytes at the URL path of registry entry ``name``."""
        dst = self.root / registry()[name].path
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.unlink(missing_ok=True)
        shutil.copyfile(source, dst)
        return dst

    def stop(self) -> None:
        if self.running:
            self.server.shutdown()
            self.server.server_close()
            self.thread.join()
            self.running = False


@pytest.fixture
def mirror(tmp_path, keras_dir, monkeypatch) -> Iterator[Mirror]:
    """The authors' two files served at their registry paths; the registry points at it
    (LCZLDL_WEIGHTS_MIRROR) and caches into tmp_path/cache (LCZLDL_CACHE)."""
    m = Mirror(tmp_path / "mirror")
    for w in registry().values():
        m.put(w.name, keras_dir / w.filename)
    monkeypatch.setenv(MIRROR_ENV, m.base)
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    try:
        yield m
    finally:
        m.stop()


@pytest.fixture(scope="session")
def scene_tif(tmp_path_factory) -> Path:
    """A 96 x 96 px stacked 10-band GeoTIFF of reflectance (float32, UTM 32N, 10 m), random but
    plausible values: enough windows for a small map."""
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin

    rng = np.random.default_rng(0)
    img = (0.05 + 0.3 * rng.random((10, 96, 96))).astype(np.float32)
    path = tmp_path_factory.mktemp("scene") / "scene.tif"
    with rasterio.open(path, "w", driver="GTiff", width=96, height=96, count=10, dtype="float32",
                       crs="EPSG:32632", transform=from_origin(500000.0, 5300000.0, 10, 10), nodata=-9999.0) as dst:
        dst.write(img)
    return path
