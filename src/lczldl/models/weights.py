"""Owns the registry of named pretrained weights and their download cache (docs/weights.md).

In the style TorchGeo users know (``WeightsEnum``): each member of :class:`Sen2LCZWeights` is a
:class:`Weights` entry (name, URL pinned to a commit, sha256, classes, bands, input scaling, regime,
source, citation, licence note). :func:`weights_path` gives the local lczldl weights file of a name:
downloaded once through torch's hub helper (``torch.hub.download_url_to_file``), checked against the
sha256, kept in the cache, converted on first use into an lczldl weights file.

Cache: ``$LCZLDL_CACHE`` or ``$XDG_CACHE_HOME/lczldl`` (default ``~/.cache/lczldl``); downloads in
``downloads/`` under their file names, converted files in ``weights/``. ``$LCZLDL_WEIGHTS_MIRROR``
replaces the URLs' base (``https://raw.githubusercontent.com``) with a mirror holding the same paths.
"""

from __future__ import annotations

import os
import re
import urllib.error
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from lczldl.constants import BANDS
from lczldl.errors import ModelError
from lczldl.fileio import file_sha256
from lczldl.models.io import save_model
from lczldl.models.keras_import import from_keras
from lczldl.models.weights_file import SCALING, is_weights_file, read_weights_meta

#: environment variable naming the cache folder
CACHE_ENV = "LCZLDL_CACHE"
#: environment variable naming a mirror base URL (what tests use: a local HTTP server)
MIRROR_ENV = "LCZLDL_WEIGHTS_MIRROR"
#: where the registry's files are, unless a mirror is named
DEFAULT_BASE = "https://raw.githubusercontent.com"
DOWNLOADS = "downloads"
CONVERTED = "weights"

#: the authors' repository and the commit every URL is pinned to
AUTHORS_REPO = "ChrisKo94/LCZ_LDL"
AUTHORS_COMMIT = "c7e9a352715c9fedb891818e4611889626d4f196"
AUTHORS_CITATION = ("Koller, C., Kauermann, G., Zhu, X. X. (2024): Going Beyond One-Hot Encoding in "
                    "Classification: Can Human Uncertainty Improve Model Performance in Earth Observation? "
                    "IEEE Transactions on Geoscience and Remote Sensing 62, 5400211. "
                    "doi:10.1109/TGRS.2023.3336357")
AUTHORS_LICENCE = ("no licence: the repository ChrisKo94/LCZ_LDL has no licence file, so no licence "
                   "grants reuse; ask the authors before redistributing the weights or maps made with them")


@dataclass(frozen=True)
class Weights:
    """One named set of pretrained weights.

    ``path`` is the file's path under the base URL (``<base>/<path>``); ``sha256`` the hex digest
    of the downloaded file; ``classes`` the LCZ id of each class index; ``bands`` the input bands in
    order; ``scaling`` how pixels become the input; ``regime`` the training regime; ``fmt`` the
    downloaded file's format (``keras_h5``: converted with :func:`lczldl.models.keras_import.from_keras`).
    """

    name: str
    path: str
    sha256: str
    classes: tuple[int, ...]
    bands: tuple[str, ...]
    regime: str
    description: str
    source: str
    citation: str
    licence: str
    fmt: str = "keras_h5"

    @property
    def filename(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def url(self, base: str | None = None) -> str:
        """The download URL: ``base`` (default: ``$LCZLDL_WEIGHTS_MIRROR`` or :data:`DEFAULT_BASE`)
        joined with :attr:`path`."""
        base = base or os.environ.get(MIRROR_ENV) or DEFAULT_BASE
        return f"{base.rstrip('/')}/{self.path}"

    def meta(self) -> dict[str, Any]:
        """The record of this entry as a weights file keeps it (JSON-friendly)."""
        return {"name": self.name, "classes": list(self.classes), "bands": list(self.bands),
                "scaling": dict(SCALING), "regime": self.regime, "description": self.description,
                "source": {"kind": self.fmt, "url": self.url(DEFAULT_BASE), "file": self.filename,
                           "sha256": self.sha256, "repository": self.source},
                "citation": self.citation, "licence": self.licence, "temperature": None}


def _authors(name: str, file: str, sha256: str, regime: str, what: str) -> Weights:
    return Weights(name=name, path=f"{AUTHORS_REPO}/{AUTHORS_COMMIT}/results/{file}", sha256=sha256,
                   classes=tuple(range(1, 11)), bands=BANDS, regime=regime,
                   description=f"Sen2LCZ-Net (seed 1234) by the paper's authors, trained on {what}; "
                               "10 urban classes, LCZ 1-10",
                   source=f"https://github.com/{AUTHORS_REPO}/tree/{AUTHORS_COMMIT}",
                   citation=AUTHORS_CITATION, licence=AUTHORS_LICENCE)


class WeightsEnum(Enum):
    """Base of weight registries, as TorchGeo's: members' values are :class:`Weights`."""

    @property
    def weights(self) -> Weights:
        return self.value

    @property
    def url(self) -> str:
        return self.value.url()

    @property
    def meta(self) -> dict[str, Any]:
        return self.value.meta()


class Sen2LCZWeights(WeightsEnum):
    """Pretrained Sen2LCZ-Net weights (``lczldl weights list``)."""

    AUTHORS_ONEHOT = _authors("authors-onehot", "Sen2LCZ_bs_64_lr_0.002_seed_1234_weights_best.hdf5",
                              "e3af547d974581a961e74695ebe4cbce8d68d6085c884351dad54ae9845e7d2f",
                              "onehot", "one-hot majority labels (cross-entropy)")
    AUTHORS_DIST = _authors("authors-dist", "Sen2LCZ_bs_64_lr_0.002_seed_1234_d_weights_best.hdf5",
                            "d260fd73f46b86d22be2472c930651dc660ed97ffa334edd0e676c2b7fc00728",
                            "dist", "the experts' vote distributions (KL)")


def registry() -> dict[str, Weights]:
    """Every entry by name, in registry order."""
    return {w.value.name: w.value for w in Sen2LCZWeights}


def get_weights(name: str) -> Weights:
    """The entry called ``name``; ModelError listing the names otherwise."""
    found = registry().get(name)
    if found is None:
        raise ModelError(f"weights={name!r}: no such weights; choose one of {', '.join(registry())} "
                         "(lczldl weights list) or pass a weights file", params=("weights",))
    return found


def cache_dir() -> Path:
    """The cache folder: ``$LCZLDL_CACHE``, else ``$XDG_CACHE_HOME/lczldl`` (``~/.cache/lczldl``)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "lczldl"


def download_path(w: Weights) -> Path:
    """Where the downloaded file is kept (and where a user may put it by hand)."""
    return cache_dir() / DOWNLOADS / w.filename


def converted_path(w: Weights) -> Path:
    """Where the converted lczldl weights file is kept (the sha256's start names the version)."""
    return cache_dir() / CONVERTED / f"{w.name}-{w.sha256[:12]}.safetensors"


def _made_dirs(path: Path) -> list[Path]:
    """Create ``path`` and its missing parents; return those created, deepest first."""
    made = []
    p = path
    while not p.exists():
        made.append(p)
        p = p.parent
    path.mkdir(parents=True, exist_ok=True)
    return made


def _remove_empty(dirs: list[Path]) -> None:
    for d in dirs:
        try:
            d.rmdir()
        except OSError:
            pass


def _download(w: Weights, dst: Path, progress: bool) -> None:
    """Fetch ``w`` to ``dst`` through torch's hub helper, checked against the sha256; on any failure
    nothing is left in the cache (the helper removes its partial file, we the folders we made)."""
    from torch.hub import download_url_to_file

    url = w.url()
    made = _made_dirs(dst.parent)
    try:
        download_url_to_file(url, str(dst), hash_prefix=w.sha256, progress=progress)
    except RuntimeError as exc:
        _remove_empty(made)
        if "invalid hash value" in str(exc):
            got = re.findall(r'got "(\w+)"', str(exc))
            raise ModelError(f"{w.name}: the file from {url} has the wrong sha256 ({got[0] if got else '?'}, "
                             f"expected {w.sha256}); "
                             "refused and not cached; check the mirror "
                             f"(${MIRROR_ENV}) or try again later") from None
        raise ModelError(f"{w.name}: download of {url} failed ({str(exc).splitlines()[0]})") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        _remove_empty(made)
        reason = getattr(exc, "reason", None) or exc
        raise ModelError(f"{w.name}: cannot download {url} ({reason}); offline? put the file there by hand: "
                         f"{dst} (sha256 {w.sha256})") from None
    except BaseException:
        _remove_empty(made)
        raise


def _check_download(w: Weights, path: Path) -> None:
    digest = file_sha256(path)
    if digest != w.sha256:
        raise ModelError(f"{path}: sha256 {digest}, expected {w.sha256} for {w.name}; delete the file "
                         f"and download it again (or put the right file there by hand from {w.url()})")


def _converted_ok(w: Weights, path: Path) -> bool:
    if not (path.is_file() and is_weights_file(path)):
        return False
    try:
        meta = read_weights_meta(path)
    except ModelError:
        return False
    return (meta.get("source") or {}).get("sha256") == w.sha256


def weights_path(name: str, progress: bool = True) -> Path:
    """The local lczldl weights file of the registry entry ``name``: from the cache, else converted
    from the downloaded file (downloaded first when absent). ModelError (one line) for an unknown
    name, a file with the wrong sha256, or a failed download (naming the URL and where to put the
    file by hand)."""
    w = get_weights(name)
    out = converted_path(w)
    if _converted_ok(w, out):
        return out
    raw = download_path(w)
    if raw.is_file():
        _check_download(w, raw)
    else:
        _download(w, raw, progress)
    save_model(from_keras(raw), out, meta=w.meta())
    return out


def resolve_weights(name_or_path: str | Path, progress: bool = True) -> Path:
    """A registry name -> its local weights file (:func:`weights_path`); an existing file -> itself."""
    text = str(name_or_path)
    if text in registry():
        return weights_path(text, progress)
    path = Path(text).expanduser()
    if path.exists():
        return path
    raise ModelError(f"weights={text!r}: neither a registry name ({', '.join(registry())}) nor an existing "
                     "file", params=("weights",))


def iter_entries() -> Iterator[tuple[Weights, bool]]:
    """(entry, whether its converted file is in the cache) for every registry entry."""
    for w in registry().values():
        yield w, converted_path(w).is_file()
