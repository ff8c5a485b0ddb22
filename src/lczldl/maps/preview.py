"""PNG preview of an LCZ map and its Gaussian-filtered map (official LCZ colours, legend) beside the
entropy map."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from lczldl.constants import LCZ_CODES, LCZ_COLORS, LCZ_NAMES
from lczldl.fileio import atomic_path


def write_preview(lcz: np.ndarray, lcz_filter: np.ndarray, entropy: np.ndarray, path: Path,
                  num_classes: int = 10, note: str | None = None) -> Path:
    """lcz and lcz_filter (rows, cols) uint8 LCZ id (0 = nodata), entropy (rows, cols) nats -> PNG
    at ``path``: the two class maps with one legend, then the entropy; ``note`` (e.g. that the model
    names only LCZ 1-10) is the legend's title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    rows, cols = lcz.shape
    aspect = rows / max(cols, 1)
    fig, axes = plt.subplots(1, 3, figsize=(16, max(3.5, 4.8 * aspect + 1.8)),
                             gridspec_kw={"width_ratios": [1, 1, 1]}, constrained_layout=True)
    cmap = ListedColormap(["#ffffff"] + list(LCZ_COLORS[:num_classes]))
    for ax, img, title in ((axes[0], lcz, "LCZ (argmax)"), (axes[1], lcz_filter, "LCZ filtered (lcz_filter)")):
        ax.imshow(img, cmap=cmap, vmin=-0.5, vmax=num_classes + 0.5, interpolation="nearest")
        ax.set_title(title)
    present = sorted(int(v) for v in np.union1d(np.unique(lcz), np.unique(lcz_filter)) if v > 0)
    handles = [Patch(facecolor=LCZ_COLORS[k - 1], edgecolor="0.3",
                     label=f"{LCZ_CODES[k - 1]}  {LCZ_NAMES[k - 1]}") for k in present]
    if (lcz == 0).any():
        handles.append(Patch(facecolor="#ffffff", edgecolor="0.3", label="no data"))
    fig.legend(handles=handles, loc="outside lower center", ncol=min(6, len(handles)), fontsize=8,
               frameon=False, title="\n".join(textwrap.wrap(note, 110)) if note else None, title_fontsize=8)
    vmax = float(np.log(num_classes))
    im = axes[2].imshow(np.ma.masked_invalid(entropy), cmap="magma", vmin=0.0, vmax=vmax,
                        interpolation="nearest")
    axes[2].set_title("Predictive entropy (nats)")
    fig.colorbar(im, ax=axes[2], shrink=0.8, label=f"entropy, max ln {num_classes} = {vmax:.2f}")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    path = Path(path)
    try:
        with atomic_path(path, suffix=".png") as tmp:  # savefig takes the format from the name
            fig.savefig(tmp, dpi=110)
    finally:
        plt.close(fig)
    return path
