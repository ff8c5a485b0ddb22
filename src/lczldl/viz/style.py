"""Owns the look of every lczldl figure: rc settings, accent colours, LCZ names and colours on
axes, panel grids, and atomic saving (regime names and colours: :mod:`lczldl.regimes`).

Figures are built on :class:`matplotlib.figure.Figure` objects directly (no pyplot state, no
interactive backend), rendered with the Agg canvas and saved as PNG (150 dpi) and, unless a
:func:`figure_formats` context says PNG only, PDF.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path

import matplotlib as mpl
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from lczldl.constants import LCZ_CODES, LCZ_COLORS, LCZ_NAMES
from lczldl.fileio import atomic_write_bytes

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
#: what :func:`save_figure` writes: PNG always (the report embeds it), PDF unless switched off
_FORMATS: ContextVar[tuple[str, ...]] = ContextVar("lczldl_figure_formats", default=("png", "pdf"))

ACCENT = "#0072b2"     # bars, accuracy
GAP = "#d55e00"        # calibration gaps
NEUTRAL = "#555555"


#: the x label of every plot over the experts' vote entropy
ENTROPY_AXIS_LABEL = "vote entropy (nats)"


def grid_shape(n: int, max_cols: int = 3) -> tuple[int, int]:
    """(rows, cols) of a panel grid for ``n`` panels, at most ``max_cols`` wide (4 panels: 2 x 2)."""
    cols = min(n, max_cols) if n != 4 else 2
    return math.ceil(n / cols), cols


def entropy_bin_axes(ax: Axes, ticks: list[str], ylabel: str, tick_size: float | None = 7) -> None:
    """Style ``ax`` as bars over the paper's vote-entropy bins: one x tick per bin labelled
    ``ticks`` (font ``tick_size``, None = the style's), the x label in nats, ``ylabel``, a y grid
    behind the bars."""
    ax.set_xticks(range(len(ticks)))
    ax.set_xticklabels(ticks, **({} if tick_size is None else {"fontsize": tick_size}))
    ax.set_xlabel(ENTROPY_AXIS_LABEL)
    ax.set_ylabel(ylabel)
    ax.grid(True, axis="y")
    ax.set_axisbelow(True)


def panels_with_colorbar(n: int, rows: int, cols: int, panel: tuple[float, float], pad: tuple[float, float],
                         wspace: float) -> tuple[Figure, list[Axes], Axes]:
    """A figure of ``n`` panels (inches ``panel`` each, plus ``pad``) on a rows x cols grid, filled
    row by row, and a thin colour-bar axes on the right spanning all rows (created last)."""
    fig = new_figure(panel[0] * cols + pad[0], panel[1] * rows + pad[1])
    gs = fig.add_gridspec(rows, cols + 1, width_ratios=[1] * cols + [0.05], wspace=wspace, hspace=0.3)
    axes = [fig.add_subplot(gs[i // cols, i % cols]) for i in range(n)]
    return fig, axes, fig.add_subplot(gs[:, cols])


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


@contextlib.contextmanager
def figure_formats(pdf: bool) -> Iterator[None]:
    """Context in which :func:`save_figure` writes PNG and PDF (``pdf``) or PNG only (the study's
    ``study.figures_pdf``; the PDF's TrueType font subsetting and vector rendering take ~60 % of a
    report's drawing time)."""
    token = _FORMATS.set(("png", "pdf") if pdf else ("png",))
    try:
        yield
    finally:
        _FORMATS.reset(token)


def save_figure(fig: Figure, out_stem: Path | str) -> list[Path]:
    """Write ``out_stem``.png and ``out_stem``.pdf atomically (:func:`lczldl.fileio.atomic_write_bytes`);
    PNG only inside ``figure_formats(pdf=False)``, which also removes an older ``out_stem``.pdf so
    no figure is left from an earlier drawing.

    Returns the paths written. The parent folder is created. PDF/PNG carry no creation date so
    redrawing the same data gives the same files. Saved under :data:`RC` (:func:`styled`).
    """
    stem = Path(out_stem)
    written: list[Path] = []
    formats = _FORMATS.get()
    if "pdf" not in formats:
        (stem.parent / f"{stem.name}.pdf").unlink(missing_ok=True)
    with styled():
        for ext in formats:
            meta = {"Software": None} if ext == "png" else {"CreationDate": None, "Creator": None,
                                                             "Producer": None}
            buf = io.BytesIO()
            fig.savefig(buf, format=ext, dpi=PNG_DPI, metadata=meta)
            written.append(atomic_write_bytes(stem.parent / f"{stem.name}.{ext}", buf.getvalue()))
    return written
