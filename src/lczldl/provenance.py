"""Owns the record of what produced an output: ``versions()`` of python, the platform, lczldl and
the packages that shape results. (Atomic writers and checksums live in :mod:`lczldl.fileio`.)"""

from __future__ import annotations

import platform
from importlib import metadata

from lczldl import __version__

#: packages whose versions every reproducible output records (missing ones are omitted)
PACKAGES = ("torch", "lightning", "numpy", "scipy", "h5py", "pydantic", "torchmetrics", "rasterio",
            "submitit")


def versions() -> dict[str, str]:
    """Versions of python, the platform, lczldl and :data:`PACKAGES`."""
    out = {"python": platform.python_version(), "platform": platform.platform(), "lczldl": __version__}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out
