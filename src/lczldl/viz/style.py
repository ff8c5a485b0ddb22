"""One visual style for every lczldl figure: rc settings, regime colours/names, atomic saving.

Figures are built on :class:`matplotlib.figure.Figure` objects directly (no pyplot state, no
interactive backend), rendered with the Agg canvas and saved as PNG (150 dpi) and PDF.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import matplotlib as mpl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from lczldl.constants import LCZ_CODES, LCZ_COLORS, LCZ_NAMES, REGIMES

#: rc settings applied while a figure is built and saved.
RC: dict[str, object] = {
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.labelsize": 9,
    "axes.edgecolor": "#333333",
    "axes.linewidth": 0.8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": False,
    "grid.color": "#dddddd",
    "grid.linewidth": 0.6,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "figure.titlesize": 12,
    "figure.titleweight": "bold",
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.08,
    "pdf.fonttype": 42,
    "image.cmap": "Blues",
}

PNG_DPI = 150

#: Display names of the training regimes.
REGIME_LABELS: dict[str, str] = {
    "onehot": "one-hot",
    "onehot_ls": "one-hot + LS",
    "dist": "distribution",
    "dist_ls": "distribution + LS",
    "dawid_skene": "Dawid-Skene",
}
#: One colour per regime (colour-blind safe, Okabe-Ito).
REGIME_COLORS: dict[str, str] = {
    "onehot": "#7f7f7f",
    "onehot_ls": "#e69f00",
    "dist": "#0072b2",
    "dist_ls": "#009e73",
    "dawid_skene": "#cc79a7",
}
_EXTRA_COLORS = ("#d55e00", "#56b4e9", "#f0e442", "#000000")

#: Display names of the post-hoc methods of the summary tables.
METHOD_LABELS: dict[str, str] = {
    "plain": "plain",
    "temperature": "temperature scaling",
    "mc_dropout": "MC dropout",
    "ensemble": "ensemble",
}

ACCENT = "#0072b2"     # bars, accuracy
GAP = "#d55e00"        # calibration gaps
NEUTRAL = "#555555"


def regime_label(regime: str) -> str:
    """Display name of a regime (unknown names pass through)."""
    return REGIME_LABELS.get(regime, regime)


def regime_color(regime: str, i: int = 0) -> str:
    """Colour of a regime; unknown regimes get a fallback colour by position ``i``."""
    return REGIME_COLORS.get(regime, _EXTRA_COLORS[i % len(_EXTRA_COLORS)])


def order_regimes(regimes: list[str] | tuple[str, ...]) -> list[str]:
    """Known regimes in :data:`lczldl.constants.REGIMES` order, unknown ones after, sorted."""
    known = [r for r in REGIMES if r in regimes]
    return known + sorted(r for r in regimes if r not in REGIMES)


def lcz_label(index: int, with_name: bool = True) -> str:
    """Class index 0..16 -> "1 Compact high-rise" (or just the code "1")."""
    return f"{LCZ_CODES[index]} {LCZ_NAMES[index]}" if with_name else LCZ_CODES[index]


def lcz_color(index: int) -> str:
    """Standard LCZ colour of class index 0..16."""
    return LCZ_COLORS[index]


@contextlib.contextmanager
def styled() -> Iterator[None]:
    """Context in which figures are built and saved with :data:`RC`."""
    with mpl.rc_context(RC):
        yield


def new_figure(width: float, height: float) -> Figure:
    """A pyplot-free figure (inches) with an Agg canvas attached."""
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, out_stem: Path | str) -> list[Path]:
    """Write ``out_stem``.png and ``out_stem``.pdf atomically (temp name + os.replace).

    Returns the two paths. The parent folder is created. PDF/PNG carry no creation date so
    redrawing the same data gives the same files.
    """
    stem = Path(out_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for ext in ("png", "pdf"):
        final = stem.parent / f"{stem.name}.{ext}"
        tmp = stem.parent / f".{stem.name}.tmp-{os.getpid()}.{ext}"
        meta = {"Software": None} if ext == "png" else {"CreationDate": None, "Creator": None,
                                                         "Producer": None}
        try:
            fig.savefig(tmp, format=ext, dpi=PNG_DPI, metadata=meta)
            os.replace(tmp, final)
        finally:
            if tmp.exists():
                tmp.unlink()
        written.append(final)
    return written
