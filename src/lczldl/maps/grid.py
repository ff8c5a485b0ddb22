"""Owns the map grid: which 32 x 32 window gives which output pixel, the sub-grid of an area of
interest, and the chunks a map is computed in. Pure functions, no file access; their arguments
are checked before they are called (stride and chunk sizes >= 1: ``lczldl.config.MapsConfig``).

Conventions
- A window whose top-left scene pixel is (row, col) = (i*stride, j*stride) gives output pixel
  (i, j). The output pixel is the stride x stride cell centred on the window centre, so the output
  transform is ``scene_transform @ translation(16 - stride/2, 16 - stride/2) @ scale(stride)``.
- A sub-grid keeps the full grid's cells; ``row0`` / ``col0`` say where it starts in the full grid.
- Bounds are (left, bottom, right, top) in the scene CRS; the scene grid is north-up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from affine import Affine

from lczldl.constants import PATCH_SIZE

#: scene pixels a chunk spans per side, about, when its size is not given
CHUNK_PX = 256


@dataclass(frozen=True)
class OutputGrid:
    """The map grid: one output pixel per window position. Its pixel (i, j) is window
    (row0 + i, col0 + j) of the scene's full grid."""

    rows: int
    cols: int
    stride: int
    transform: Affine
    row0: int = 0
    col0: int = 0

    def window_origin(self, i: int, j: int) -> tuple[int, int]:
        """Scene pixel (row, col) of the top-left corner of the window of output pixel (i, j)."""
        return (self.row0 + i) * self.stride, (self.col0 + j) * self.stride


def output_grid(width: int, height: int, transform: Affine, stride: int) -> OutputGrid:
    """Full map grid of a ``width`` x ``height`` px scene for windows at ``stride`` (>= 1) px."""
    rows = (height - PATCH_SIZE) // stride + 1
    cols = (width - PATCH_SIZE) // stride + 1
    half = PATCH_SIZE / 2 - stride / 2
    return OutputGrid(rows=rows, cols=cols, stride=stride,
                      transform=transform @ Affine.translation(half, half) @ Affine.scale(stride))


def sub_grid(grid: OutputGrid, i0: int, i1: int, j0: int, j1: int) -> OutputGrid:
    """Rows [i0, i1) and columns [j0, j1) of ``grid`` as a grid of their own."""
    return replace(grid, rows=i1 - i0, cols=j1 - j0, row0=grid.row0 + i0, col0=grid.col0 + j0,
                   transform=grid.transform @ Affine.translation(j0, i0))


def cells_in_bounds(grid: OutputGrid, bounds: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
    """(i0, i1, j0, j1): the output cells of ``grid`` that overlap ``bounds`` (scene CRS), clipped
    to the grid; empty ranges (i0 >= i1 or j0 >= j1) when none does. A cell touching the box only
    along an edge does not count."""
    t = grid.transform
    left, bottom, right, top = bounds
    # box in output-cell coordinates (col, row) of the grid: cell k spans [k, k + 1)
    # rounded to 1e-9 cells so that a box edge on a cell edge is not moved across it by float error
    x0, x1 = sorted((round((left - t.c) / t.a, 9), round((right - t.c) / t.a, 9)))
    y0, y1 = sorted((round((top - t.f) / t.e, 9), round((bottom - t.f) / t.e, 9)))
    j0, j1 = max(0, math.floor(x0)), min(grid.cols, math.ceil(x1))
    i0, i1 = max(0, math.floor(y0)), min(grid.rows, math.ceil(y1))
    return i0, i1, j0, j1


def default_block(stride: int) -> int:
    """Output pixels per chunk side when none is given: windows spanning about :data:`CHUNK_PX`
    scene pixels (25 at stride 10), at least 1."""
    return max(1, CHUNK_PX // stride)


def chunks(grid: OutputGrid, block_rows: int, block_cols: int) -> list[tuple[int, int, int, int]]:
    """Blocks (r0, r1, c0, c1) of at most ``block_rows`` x ``block_cols`` (>= 1) output pixels
    covering ``grid`` row by row; each is read and predicted at once (memory ~ block size, not
    scene size) and saved for resuming."""
    return [(r, min(r + block_rows, grid.rows), c, min(c + block_cols, grid.cols))
            for r in range(0, grid.rows, block_rows) for c in range(0, grid.cols, block_cols)]


def chunk_pixels(grid: OutputGrid, chunk: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """Scene pixels (row, col, height, width) that the windows of ``chunk`` cover."""
    r0, r1, c0, c1 = chunk
    row, col = grid.window_origin(r0, c0)
    return row, col, (r1 - r0 - 1) * grid.stride + PATCH_SIZE, (c1 - c0 - 1) * grid.stride + PATCH_SIZE
