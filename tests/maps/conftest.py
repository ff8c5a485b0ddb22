"""Synthetic Sentinel-2 products (scripts/make_s2_products.py) and a random-init Sen2LCZ checkpoint."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


def _load_generator():
    spec = importlib.util.spec_from_file_location("make_s2_products", REPO / "scripts" / "make_s2_products.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def s2():
    """The generator module (write_product, write_stack, constants such as CLOUD_BLOCK_10M)."""
    return _load_generator()


@pytest.fixture(scope="session")
def products(tmp_path_factory, s2):
    """Folders of the four kinds: (level, baseline) -> .SAFE path; L1C 05.09 also zipped ("zip")."""
    root = tmp_path_factory.mktemp("s2")
    out = {(level, baseline): s2.write_product(root / f"{level}_{baseline}", level, baseline)
           for level in ("L1C", "L2A") for baseline in ("05.09", "03.01")}
    out["zip"] = s2.write_product(root / "zip", "L1C", "05.09", as_zip=True)
    return out


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory):
    """A randomly initialised 10-class Sen2LCZ-Net (its outputs still depend on every input value)."""
    from lczldl.models.io import save_model
    from lczldl.models.sen2lcz import Sen2LCZ

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "random.pt"
    save_model(Sen2LCZ(num_classes=10), path)
    return path

