"""ROI and grid statistics over image stacks: `roi_means` and `grid_means`.

A ROI is a `beamcat.rois.Rect` ``(x, y, w, h)`` (pixels ``im[int(y):int(y+h),
int(x):int(x+w)]``, the original IMAT scripts' rule) or a boolean mask ``(y, x)``;
ROI files are read and written by `beamcat.rois.load_rois` / `save_rois`.

Both are lazy chunk/combine reductions over the pixel dims by the kernel of
`beamcat.analyses.region_stats` (count, mean and M2 per region and frame, merged
with `beamcat.analyses.moments`): memory is bounded by one chunk of the input,
however long the stack, and a grid of any size adds one small task per chunk.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal, NamedTuple

import numpy as np
import xarray as xr

from beamcat.analyses._frames import check_pixel_dims
from beamcat.analyses._history import carried, history
from beamcat.analyses.region_stats import rechunk_leading, region_stats, stat_variable
from beamcat.errors import OptionError
from beamcat.rois import Rect, Roi, check_roi, named_rois

__all__ = [
    "Rect",
    "grid_edges",
    "grid_means",
    "grid_regions",
    "roi_means",
    "roi_regions",
    "stats_dataset",
]


class Regions(NamedTuple):
    """Checked regions and how their statistics are labelled."""

    regions: list[Rect | np.ndarray]
    dims: tuple[str, ...]  # of the regions: ("roi",) or ("row", "col")
    shape: tuple[int, ...]  # sizes of `dims`
    coords: dict
    line: str  # of the history


def stats_dataset(frames: xr.DataArray, regions: Regions, stats) -> xr.Dataset:
    """Dataset(mean, std, count) over the region dims then the leading dims of `frames`.

    `stats` ``(..., k, 3)`` mean, std, count of the `regions` (NumPy or dask).
    """
    stats = rechunk_leading(stats)
    mean, std, count = (
        stat_variable(stats, i, regions.shape, kind)
        for i, kind in enumerate((np.float64, np.float64, np.int64))
    )
    lead = frames.dims[:-2]
    dims = (*regions.dims, *lead)
    units = frames.attrs.get("units")
    unit_attrs = {"units": units} if units else {}
    lead_coords = {k: v for k, v in frames.coords.items() if set(v.dims) <= set(lead)}
    name = frames.name or "frames"
    ds = xr.Dataset(
        {
            "mean": (dims, mean, {**unit_attrs, "long_name": f"mean of {name}"}),
            "std": (
                dims,
                std,
                {**unit_attrs, "long_name": f"standard deviation (ddof=0) of {name}"},
            ),
            "count": (
                dims,
                count,
                {"units": "1", "long_name": "finite pixels"},
            ),
        },
        coords={**lead_coords, **regions.coords},
    )
    ds.attrs = carried(frames.attrs)
    ds.attrs.update(signal="mean", history=history(frames.attrs, regions.line))
    return ds


def roi_regions(
    rois: Mapping[str, Roi] | Sequence[Roi], shape: tuple[int, int], dim: str = "roi"
) -> Regions:
    """The ROIs of `roi_means` checked against the image `shape`, with their coordinates."""
    named = {name: check_roi(name, roi, shape) for name, roi in named_rois(rois)}
    geometry = np.array(
        [roi if isinstance(roi, Rect) else (-1, -1, -1, -1) for roi in named.values()]
    )
    pixels = [
        int(roi.sum()) if not isinstance(roi, Rect) else _rect_pixels(roi) for roi in named.values()
    ]
    px = {"units": "pixel"}
    coords = {
        dim: (dim, list(named)),
        **{f"roi_{k}": (dim, geometry[:, i], px) for i, k in enumerate("xywh")},
        "roi_pixels": (dim, np.array(pixels), {"units": "1"}),
    }
    line = f"roi_means: {len(named)} ROIs ({', '.join(named)})"
    return Regions(list(named.values()), (dim,), (len(named),), coords, line)


def grid_regions(
    shape: tuple[int, int],
    rows: int,
    cols: int,
    *,
    region: Rect | tuple | None = None,
    edges: Literal["even", "original"] = "even",
) -> Regions:
    """The cells of `grid_means` checked against the image `shape`, with their coordinates."""
    for label, n in (("rows", rows), ("cols", cols)):
        if not isinstance(n, int | np.integer) or n < 1:
            raise OptionError(f"grid_means: {label}={n!r}, expected a positive integer")
    region = check_roi("grid region", region or Rect(0, 0, shape[1], shape[0]), shape)
    if not isinstance(region, Rect):
        raise OptionError("grid_means: region must be a rectangle (x, y, w, h), not a mask")
    y0, y1 = grid_edges(region.y, region.h, rows, edges=edges)
    x0, x1 = grid_edges(region.x, region.w, cols, edges=edges)
    if (y1 <= y0).any() or (x1 <= x0).any():
        raise OptionError(
            f"grid_means: {rows} x {cols} cells over region {tuple(region)} leave empty cells"
        )
    cells = [
        Rect(xa, ya, xb - xa, yb - ya)
        for ya, yb in zip(y0, y1, strict=True)
        for xa, xb in zip(x0, x1, strict=True)
    ]
    px = {"units": "pixel"}
    coords = {
        "row": ("row", np.arange(rows)),
        "col": ("col", np.arange(cols)),
        "roi_y": ("row", y0, px),
        "roi_h": ("row", y1 - y0, px),
        "roi_x": ("col", x0, px),
        "roi_w": ("col", x1 - x0, px),
    }
    line = f"grid_means: {rows} x {cols} cells over {tuple(region)}, edges={edges!r}"
    return Regions(cells, ("row", "col"), (rows, cols), coords, line)


# --------------------------------------------------------------------------- public


def roi_means(
    frames: xr.DataArray, rois: Mapping[str, Roi] | Sequence[Roi], *, dim: str = "roi"
) -> xr.Dataset:
    """Mean, standard deviation and finite-pixel count of each ROI in every frame.

    Parameters
    ----------
    frames : DataArray (..., y, x)
        Any leading dims (``frame``, ``time``, ``scan_y, scan_x``...), NumPy- or
        dask-backed, any dtype and chunking.
    rois : mapping str -> Rect, (x, y, w, h) or bool mask (y, x); or a sequence
        A sequence is named "ROI 1", "ROI 2"... like the original's CSV columns.
        Rectangles cover ``im[int(y):int(y+h), int(x):int(x+w)]``. ROIs may overlap.
    dim : str
        Name of the ROI dim.

    Returns
    -------
    Dataset
        ``mean``, ``std``, ``count`` over ``(roi, <leading dims>)``, dask-backed when
        `frames` is. NaN and infinite pixels (such as the safe division of a
        calibration leaves) are skipped: ``count`` is the number of finite pixels,
        and a ROI with none has NaN mean and std. ``std`` is the population
        standard deviation (ddof=0, NumPy's default; the original scripts only
        report means). Coordinates: those of `frames` on its leading dims, the ROI
        names, ``roi_x, roi_y, roi_w, roi_h`` (-1 for masks) and ``roi_pixels``
        (pixels of the ROI). ``attrs["history"]`` gains one line.

    Raises
    ------
    OptionError
        A ROI reaches outside the image, covers no pixel, or is malformed
        (the message names it and the image shape).

    Examples
    --------
    >>> frames = xr.DataArray(np.arange(24.0).reshape(2, 3, 4), dims=("frame", "y", "x"))
    >>> out = roi_means(frames, {"a": Rect(1, 0, 2, 2)})
    >>> out["mean"].values.tolist(), out["count"].values.tolist()
    ([[3.5, 15.5]], [[4, 4]])
    """
    regions = roi_regions(rois, check_pixel_dims(frames), dim)
    return stats_dataset(frames, regions, region_stats(frames.data, regions.regions))


def _rect_pixels(rect: Rect) -> int:
    y0, y1, x0, x1 = rect.bounds()
    return (y1 - y0) * (x1 - x0)


def grid_edges(
    start: float, size: float, n: int, *, edges: Literal["even", "original"] = "even"
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel bounds ``(starts, stops)`` of `n` cells over ``[start, start + size)``.

    ``edges="even"``: edge i at ``start + round(i * size / n)`` (halves rounded up),
    so the cells tile the region, every pixel in exactly one cell, widths differing
    by at most one. ``edges="original"``: 03_Image_Processing.py's rule, cell c
    from ``int(start + c*w)`` to ``int(start + c*w + w)`` with ``w = size / n`` as a
    float: widths follow the floor of the edges, and float rounding can leave a
    pixel in no cell (``start + c*w + w`` a hair below an integer).

    Examples
    --------
    A region 16 px wide in 6 columns (w = 2.67 px):

    >>> [a.tolist() for a in grid_edges(0, 16, 6)]
    [[0, 3, 5, 8, 11, 13], [3, 5, 8, 11, 13, 16]]
    >>> [a.tolist() for a in grid_edges(0, 16, 6, edges="original")]
    [[0, 2, 5, 8, 10, 13], [2, 5, 8, 10, 13, 15]]

    The original's last cell stops at column 15 (``13.33 + 2.67 = 15.999...``), so
    column 15 is in no cell.
    """
    if edges == "even":
        if float(start).is_integer() and float(size).is_integer():
            # integer arithmetic: round-half-up without float error
            i = np.arange(n + 1)
            bounds = int(start) + (2 * i * int(size) + n) // (2 * n)
        else:
            bounds = np.floor(start + np.arange(n + 1) * (size / n) + 0.5).astype(np.int64)
        return bounds[:-1], bounds[1:]
    if edges == "original":
        width = size / n
        starts = [start + c * width for c in range(n)]
        return (
            np.array([int(s) for s in starts]),
            np.array([int(s + width) for s in starts]),
        )
    raise OptionError(f"edges={edges!r}: expected 'even' or 'original'")


def grid_means(
    frames: xr.DataArray,
    rows: int,
    cols: int,
    *,
    region: Rect | tuple | None = None,
    edges: Literal["even", "original"] = "even",
) -> xr.Dataset:
    """Mean, standard deviation and finite-pixel count of each cell of a grid over a region.

    Parameters
    ----------
    frames : DataArray (..., y, x)
        As for `roi_means`.
    rows, cols : int
        Grid cells along y and x.
    region : Rect or (x, y, w, h), optional
        The gridded region; the whole image by default.
    edges : {"even", "original"}
        Cell bounds rule, see `grid_edges`: "even" tiles the region exactly
        (edges at ``round(i * w / cols)``), "original" reproduces the original
        script's ``int()`` truncation of float cell corners.

    Returns
    -------
    Dataset
        ``mean``, ``std``, ``count`` over ``(row, col, <leading dims>)``, computed
        like `roi_means` (one kernel call per chunk for all cells). Coordinates
        ``row``, ``col`` (cell indices), ``roi_y``, ``roi_h`` on ``row`` and
        ``roi_x``, ``roi_w`` on ``col`` (cell bounds in pixels), plus the leading
        coordinates of `frames`.

    Raises
    ------
    OptionError
        Region outside the image, non-positive `rows`/`cols`, or cells covering no
        pixel (more cells than pixels).

    Examples
    --------
    >>> frames = xr.DataArray(np.ones((2, 4, 6)), dims=("frame", "y", "x"))
    >>> grid_means(frames, 2, 3)["mean"].shape
    (2, 3, 2)
    """
    regions = grid_regions(check_pixel_dims(frames), rows, cols, region=region, edges=edges)
    return stats_dataset(frames, regions, region_stats(frames.data, regions.regions))
