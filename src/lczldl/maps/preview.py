"""PNG preview of an LCZ map (standard LCZ colours, legend) beside its entropy map."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from lczldl.constants import LCZ_CODES, LCZ_COLORS, LCZ_NAMES
from lczldl.fileio import atomic_path


def write_preview(lcz: np.ndarray, entropy: np.ndarray, path: Path, num_classes: int = 10,
                  note: str | None = None) -> Path:
    """lcz (rows, cols) uint8 LCZ id (0 = nodata), entropy (rows, cols) nats -> PNG at ``path``;
    ``note`` (e.g. that the model names only LCZ 1-10) is the legend's title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    rows, cols = lcz.shape
    aspect = rows / max(cols, 1)
    fig, axes = plt.subplots(1, 2, figsize=(12, max(3.5, 5.2 * aspect + 0.8)),
                             gridspec_kw={"width_ratios": [1, 1]}, constrained_layout=True)
    cmap = ListedColormap(["#ffffff"] + list(LCZ_COLORS[:num_classes]))
    axes[0].imshow(lcz, cmap=cmap, vmin=-0.5, vmax=num_classes + 0.5, interpolation="nearest")
    axes[0].set_title("LCZ (argmax)")
    present = sorted(int(v) for v in np.unique(lcz) if v > 0)
    handles = [Patch(facecolor=LCZ_COLORS[k - 1], edgecolor="0.3",
                     label=f"{LCZ_CODES[k - 1]}  {LCZ_NAMES[k - 1]}") for k in present]
    if (lcz == 0).any():
        handles.append(Patch(facecolor="#ffffff", edgecolor="0.3", label="no data"))
    axes[0].legend(handles=handles, loc="upper left", bbox_to_anchor=(0.0, -0.02), ncol=2,
                   fontsize=8, frameon=False, title="\n".join(textwrap.wrap(note, 70)) if note else None,
                   title_fontsize=8)
    vmax = float(np.log(num_classes))
    im = axes[1].imshow(np.ma.masked_invalid(entropy), cmap="magma", vmin=0.0, vmax=vmax,
                        interpolation="nearest")
    axes[1].set_title("Predictive entropy (nats)")
    fig.colorbar(im, ax=axes[1], shrink=0.8, label=f"entropy, max ln {num_classes} = {vmax:.2f}")
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
