"""Region-of-interest statistics over image stacks: ROI means, grid cell means, ROI files.

A ROI is a rectangle `Rect` ``(x, y, w, h)`` in the original IMAT scripts' convention
(x = column of the left edge, y = row of the top edge, pixels ``im[y:y+h, x:x+w]``;
non-integral numbers are cut as the original's ``roi_to_slice`` does:
``im[int(y):int(y+h), int(x):int(x+w)]``) or a boolean mask ``(y, x)``.

`roi_means` and `grid_means` are lazy chunk/combine reductions over the pixel dims:
one numba kernel call per dask chunk computes, for every ROI and frame of the chunk,
the number of finite pixels, their mean and their sum of squared deviations (two
passes over the ROI, in float64, so uint16 sums and near-constant transmissions lose
nothing); one combine task per chunk of frames merges the chunks split along
``y``/``x`` with Chan's pairwise formula and turns ``M2`` into the population
standard deviation. Memory is bounded by one chunk of the input, however long the
stack, and a grid of any size adds one small task per chunk, not one slice per cell.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Literal, NamedTuple

import dask.array as da
import numba
import numpy as np
import xarray as xr
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from beamcat._util import atomic_open
from beamcat.analyses._history import carried, history
from beamcat.errors import FormatError, OptionError, SourceNotFoundError

__all__ = [
    "Rect",
    "grid_edges",
    "grid_means",
    "load_rois",
    "roi_means",
    "roi_stats_reference",
    "save_rois",
]

PIXEL_DIMS = ("y", "x")
_STATS = 3  # count, mean, M2 (sum of squared deviations from the mean); then mean, std, count


class Rect(NamedTuple):
    """A rectangle in pixels: left column `x`, top row `y`, width `w`, height `h`.

    It covers ``im[int(y):int(y+h), int(x):int(x+w)]``, the original scripts' rule.
    """

    x: float
    y: float
    w: float
    h: float

    def bounds(self) -> tuple[int, int, int, int]:
        """Pixel bounds ``(y0, y1, x0, x1)``, end-exclusive, as the original cuts them."""
        return int(self.y), int(self.y + self.h), int(self.x), int(self.x + self.w)


Roi = Rect | tuple | np.ndarray


# --------------------------------------------------------------------------- kernels


@numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract"})
def _roi_stats_frame(frame, boxes, masks, offsets, out):  # pragma: no cover - numba
    """Count, mean and M2 of the finite pixels of each ROI of one frame.

    frame : (ny, nx); boxes : (k, 5) int64 ``y0, y1, x0, x1, mask row stride``;
    masks : uint8 buffer of the ROIs' masks cropped to their box, row-major;
    offsets : (k,) start of each ROI's mask in `masks` (rectangles: a row of ones,
    stride 0); out : (k, 3) float64. Two passes (mean, then squared deviations)
    keep M2 exact whatever the offset of the values; the branch-free row loops
    vectorise (fastmath reassociation only: NaN/inf tests stay exact).
    """
    for r in range(boxes.shape[0]):
        y0, y1, x0, x1, stride = boxes[r]
        n = 0
        total = 0.0
        for yy in range(y0, y1):
            row = frame[yy, x0:x1]
            inside = masks[offsets[r] + (yy - y0) * stride :][: x1 - x0]
            for i in range(row.shape[0]):
                v = np.float64(row[i])
                ok = (v - v == 0.0) & (inside[i] != 0)  # finite and in the mask
                n += ok
                total += v if ok else 0.0
        mean = total / max(n, 1)
        m2 = 0.0
        for yy in range(y0, y1):
            row = frame[yy, x0:x1]
            inside = masks[offsets[r] + (yy - y0) * stride :][: x1 - x0]
            for i in range(row.shape[0]):
                v = np.float64(row[i])
                m2 += (v - mean) ** 2 if (v - v == 0.0) & (inside[i] != 0) else 0.0
        out[r, 0] = n
        out[r, 1] = mean
        out[r, 2] = m2


@numba.njit(nogil=True, cache=True)
def _roi_stats_stack(frames, boxes, masks, offsets, out):  # pragma: no cover - numba
    """`_roi_stats_frame` on each frame of ``frames (n, ny, nx)`` into ``out (n, k, 3)``."""
    for i in range(frames.shape[0]):
        _roi_stats_frame(frames[i], boxes, masks, offsets, out[i])


def roi_stats_reference(frame: np.ndarray, rois: Sequence[Rect | np.ndarray]) -> np.ndarray:
    """NumPy twin of the kernel: ``(k, 3)`` count, mean, M2 of the finite pixels per ROI.

    The ROIs must lie inside `frame` (``(y, x)``); a ROI without finite pixels gives
    ``(0, 0, 0)`` as the kernel does.
    """
    out = np.zeros((len(rois), _STATS))
    for r, roi in enumerate(rois):
        if isinstance(roi, Rect):
            y0, y1, x0, x1 = roi.bounds()
            values = frame[y0:y1, x0:x1].astype(np.float64).ravel()
        else:
            values = frame[roi].astype(np.float64)
        values = values[np.isfinite(values)]
        if values.size:
            out[r] = values.size, values.mean(), ((values - values.mean()) ** 2).sum()
    return out


# --------------------------------------------------------------------------- ROI sets


class _Plan(NamedTuple):
    """The ROIs in kernel form, clipped to one spatial block."""

    boxes: np.ndarray  # (k, 5) int64 y0, y1, x0, x1 relative to the block, mask row stride
    masks: np.ndarray  # uint8 buffer: a row of ones (for rectangles), then the mask crops
    offsets: np.ndarray  # (k,) int64 start of each ROI's mask in `masks`


def _as_roi(name: str, roi, shape: tuple[int, int]) -> Rect | np.ndarray:
    """Check one ROI against the image `shape` ``(ny, nx)``; return a Rect or a bool mask."""
    if _is_mask(roi):
        mask = np.asarray(roi)
        if mask.shape != shape:
            raise OptionError(
                f"ROI {name!r}: mask of shape {mask.shape}, expected the image shape {shape}"
            )
        if not mask.any():
            raise OptionError(f"ROI {name!r}: the mask selects no pixel")
        return mask
    return check_rect(roi, shape, f"ROI {name!r}", mask_ok=True)


def check_rect(roi, shape: tuple[int, int], label: str = "roi", *, mask_ok: bool = False) -> Rect:
    """A rectangle ``(x, y, w, h)`` checked to cover pixels inside an image of `shape`.

    Every analysis taking a rectangle (ROIs, the air region, a detection ROI)
    checks it here, so the messages name the same things.

    Parameters
    ----------
    roi : (x, y, w, h) numbers
        Pixels ``[int(y):int(y+h), int(x):int(x+w)]``.
    shape : (ny, nx)
        The image shape.
    label : str
        How messages name the rectangle, e.g. ``"air_roi"``.

    Returns
    -------
    Rect
        With integer fields where the numbers are whole.

    Raises
    ------
    OptionError
        Not four finite numbers, no pixel covered, or outside the image.
    """
    try:
        rect = Rect(*(float(v) for v in roi))
    except (TypeError, ValueError):
        also = f" or a boolean mask {shape}" if mask_ok else ""
        message = f"{label}: expected a rectangle (x, y, w, h){also}, got {roi!r}"
        raise OptionError(message) from None
    if not all(np.isfinite(rect)):
        raise OptionError(f"{label}: {tuple(rect)} has a non-finite number")
    y0, y1, x0, x1 = rect.bounds()
    if y1 <= y0 or x1 <= x0:
        raise OptionError(f"{label}: (x, y, w, h) = {tuple(rect)} is empty: covers no pixel")
    if rect.x < 0 or rect.y < 0 or x1 > shape[1] or y1 > shape[0]:
        raise OptionError(
            f"{label}: (x, y, w, h) = {tuple(rect)} (rows {y0}:{y1}, columns {x0}:{x1}) "
            f"reaches outside the image of shape (y, x) = {shape}"
        )
    return Rect(*(int(v) if float(v).is_integer() else v for v in rect))


def _normalise_rois(rois, shape: tuple[int, int]) -> dict[str, Rect | np.ndarray]:
    """Checked ROIs by name (see `_named_items`)."""
    return {name: _as_roi(name, roi, shape) for name, roi in _named_items(rois)}


def _bounds(roi: Rect | np.ndarray) -> tuple[int, int, int, int]:
    """``(y0, y1, x0, x1)`` of a rectangle, or of the box around a mask's pixels."""
    if isinstance(roi, Rect):
        return roi.bounds()
    rows, cols = np.nonzero(roi.any(axis=1))[0], np.nonzero(roi.any(axis=0))[0]
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _plan(rois: Sequence[Rect | np.ndarray], ys: slice, xs: slice) -> _Plan:
    """Clip every ROI to the block ``[ys, xs]``: boxes relative to it, masks cropped."""
    boxes = np.zeros((len(rois), 5), np.int64)
    offsets = np.zeros(len(rois), np.int64)
    buffers = [np.ones(xs.stop - xs.start, np.uint8)]  # rectangles: stride 0 over this row
    used = buffers[0].size
    for r, roi in enumerate(rois):
        y0, y1, x0, x1 = _bounds(roi)
        y0, y1 = max(y0, ys.start), min(y1, ys.stop)
        x0, x1 = max(x0, xs.start), min(x1, xs.stop)
        if y1 <= y0 or x1 <= x0:
            continue  # no pixel in this block: count 0
        boxes[r, :4] = y0 - ys.start, y1 - ys.start, x0 - xs.start, x1 - xs.start
        if not isinstance(roi, Rect):
            crop = roi[y0:y1, x0:x1].astype(np.uint8)
            boxes[r, 4], offsets[r] = crop.shape[1], used
            buffers.append(crop.ravel())
            used += crop.size
    return _Plan(boxes, np.concatenate(buffers), offsets)


def _block_stats(block: np.ndarray, plan: _Plan) -> np.ndarray:
    """Chunk step: ``(..., ny, nx)`` block -> ``(..., k, 3)`` count, mean, M2 per ROI."""
    lead = block.shape[:-2]
    frames = block.reshape((-1, *block.shape[-2:]))
    out = np.empty((frames.shape[0], plan.boxes.shape[0], _STATS))
    _roi_stats_stack(frames, plan.boxes, plan.masks, plan.offsets, out)
    return out.reshape((*lead, *out.shape[1:]))


def _merge(parts: np.ndarray) -> tuple:
    """Chan et al.: ``(..., tiles, k, 3)`` partials -> count, mean, M2 ``(..., k)``.

    The partials of the spatial tiles merge exactly: N = sum n, mean = sum(n m) / N,
    M2 = sum M2 + sum n (m - mean)^2.
    """
    n, mean, m2 = parts[..., 0], parts[..., 1], parts[..., 2]
    total = n.sum(axis=-2)
    grand = (n * mean).sum(axis=-2) / np.maximum(total, 1)
    spread = (n * (mean - grand[..., None, :]) ** 2).sum(axis=-2)
    return total, grand, m2.sum(axis=-2) + spread


def _combine(*parts: np.ndarray) -> np.ndarray:
    """Combine step: the tiles' ``(..., k, 3)`` partials -> mean, std (ddof=0), count.

    One task per chunk of frames (a few small arrays: its cost is the task's).
    Mean and std are NaN where a ROI has no finite pixel.
    """
    if len(parts) == 1:  # every ROI in one tile: nothing to merge
        count, mean, m2 = parts[0][..., 0], parts[0][..., 1], parts[0][..., 2]
    else:
        count, mean, m2 = _merge(np.stack(parts, axis=-3))
    empty = count == 0
    std = (m2 / np.maximum(count, 1)) ** 0.5
    return np.stack([np.where(empty, np.nan, mean), np.where(empty, np.nan, std), count], -1)


def _stats(data, rois: list[Rect | np.ndarray]):
    """mean, std, count ``(..., k, 3)`` over the last two axes of `data` (NumPy or dask).

    A dask input chunked along ``y``/``x`` is reduced by one task per chunk of
    frames, taking only the tiles that hold ROI pixels: the others (and whatever
    computes them, such as a calibration) are never computed. One task rather
    than one per tile plus a combine: per-task overhead is what a ROI reduction
    costs next to the calibration that feeds it.
    """
    if not isinstance(data, da.Array):
        plan = _plan(rois, slice(0, data.shape[-2]), slice(0, data.shape[-1]))
        return _combine(_block_stats(np.asarray(data), plan))
    ybounds = np.cumsum((0, *data.chunks[-2]))
    xbounds = np.cumsum((0, *data.chunks[-1]))
    tiles, plans = [], []
    for i, j in np.ndindex(len(ybounds) - 1, len(xbounds) - 1):
        plan = _plan(rois, slice(ybounds[i], ybounds[i + 1]), slice(xbounds[j], xbounds[j + 1]))
        if (plan.boxes[:, 1] > plan.boxes[:, 0]).any():
            tiles.append((i, j))
            plans.append(plan)
    # "roi-stats" and a token: keys stay unique per input and ROI set
    name = f"roi-stats-{tokenize(data.name, plans)}"
    step = partial(_tiles_stats, plans=plans)  # opaque to dask: plans are not keys
    graph = {
        (name, *lead, 0, 0): (step, [(data.name, *lead, i, j) for i, j in tiles])
        for lead in np.ndindex(*data.numblocks[:-2])
    }
    return da.Array(
        HighLevelGraph.from_collections(name, graph, dependencies=[data]),
        name,
        chunks=(*data.chunks[:-2], (len(rois),), (_STATS,)),
        meta=np.empty((0,) * data.ndim, np.float64),
    )


def _tiles_stats(blocks: list[np.ndarray], plans: list[_Plan]) -> np.ndarray:
    """Chunk step: the tiles of one chunk of frames -> mean, std, count ``(..., k, 3)``."""
    return _combine(*(_block_stats(block, plan) for block, plan in zip(blocks, plans, strict=True)))


def _pick(stats: np.ndarray, index: int, shape: tuple, kind) -> np.ndarray:
    """Statistic `index` of ``(lead..., k, 3)`` stats as ``(*shape, lead...)`` (ROI dims first)."""
    lead = stats.ndim - 2
    values = stats[..., index].astype(kind).reshape(*stats.shape[:-2], *shape)
    return np.moveaxis(values, list(range(lead)), list(range(len(shape), len(shape) + lead)))


def _variable(stats, index: int, shape: tuple, kind) -> np.ndarray | da.Array:
    """`_pick` on NumPy or dask stats; one task per chunk (no slice, reshape, transpose chain)."""
    if not isinstance(stats, da.Array):
        return _pick(stats, index, shape, kind)
    lead = tuple(range(stats.ndim - 2))
    new = tuple(range(stats.ndim, stats.ndim + len(shape)))
    return da.blockwise(
        _pick,
        new + lead,
        stats,
        (*lead, -1, -2),
        new_axes=dict(zip(new, shape, strict=True)),
        concatenate=True,
        meta=np.empty((0,) * (len(new) + len(lead)), kind),
        index=index,
        shape=shape,
        kind=kind,
    )


def _check_frames(frames: xr.DataArray) -> tuple[int, int]:
    if not isinstance(frames, xr.DataArray) or frames.dims[-2:] != PIXEL_DIMS:
        dims = getattr(frames, "dims", type(frames).__name__)
        raise OptionError(f"frames: expected a DataArray with dims (..., 'y', 'x'), got {dims}")
    return frames.sizes["y"], frames.sizes["x"]


class _Regions(NamedTuple):
    """Checked regions and how their statistics are labelled."""

    regions: list[Rect | np.ndarray]
    dims: tuple[str, ...]  # of the regions: ("roi",) or ("row", "col")
    shape: tuple[int, ...]  # sizes of `dims`
    coords: dict
    line: str  # of the history


def _merged(stats):
    """Dask stats ``(..., k, 3)`` in chunks of dask's usual size along the leading dims.

    A few numbers per frame: one chunk for a run of any usual length, so the
    results cost a few tasks rather than several per chunk of frames.
    """
    if not isinstance(stats, da.Array):
        return stats
    return stats.rechunk({i: "auto" for i in range(stats.ndim - 2)})


def _result(frames: xr.DataArray, regions: _Regions, stats) -> xr.Dataset:
    """Dataset(mean, std, count) over the region dims then the leading dims of `frames`."""
    stats = _merged(stats)
    mean, std, count = (
        _variable(stats, i, regions.shape, kind)
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


def _roi_regions(
    rois: Mapping[str, Roi] | Sequence[Roi], shape: tuple[int, int], dim: str = "roi"
) -> _Regions:
    """The ROIs of `roi_means` checked against the image `shape`, with their coordinates."""
    named = _normalise_rois(rois, shape)
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
    return _Regions(list(named.values()), (dim,), (len(named),), coords, line)


def _grid_regions(
    shape: tuple[int, int],
    rows: int,
    cols: int,
    *,
    region: Rect | tuple | None = None,
    edges: Literal["even", "original"] = "even",
) -> _Regions:
    """The cells of `grid_means` checked against the image `shape`, with their coordinates."""
    for label, n in (("rows", rows), ("cols", cols)):
        if not isinstance(n, int | np.integer) or n < 1:
            raise OptionError(f"grid_means: {label}={n!r}, expected a positive integer")
    region = _as_roi("grid region", region or Rect(0, 0, shape[1], shape[0]), shape)
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
    return _Regions(cells, ("row", "col"), (rows, cols), coords, line)


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
    regions = _roi_regions(rois, _check_frames(frames), dim)
    return _result(frames, regions, _stats(frames.data, regions.regions))


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
    regions = _grid_regions(_check_frames(frames), rows, cols, region=region, edges=edges)
    return _result(frames, regions, _stats(frames.data, regions.regions))


# --------------------------------------------------------------------------- files


def load_rois(path: str | os.PathLike) -> dict[str, Rect | np.ndarray]:
    """Read a ROI set from JSON or CSV.

    JSON: ``{"rois": {"name": {"x": .., "y": .., "w": .., "h": ..}, ...}}``; a mask
    ROI is ``{"mask": "<file>.npz"}`` naming an ``.npz`` beside the JSON whose
    array under the ROI's name is the boolean mask (`save_rois` writes it). Also
    the original config's style: a list of ``[x, y, w, h]`` (top level or under
    ``"rois"``), named "ROI 1", "ROI 2"... CSV: a header ``name,x,y,w,h`` and
    one row per ROI.

    Returns
    -------
    dict
        name -> `Rect` or bool mask ``(y, x)``, in file order.

    Raises
    ------
    SourceNotFoundError
        The file (or the mask file it names) does not exist.
    FormatError
        Not JSON/CSV of this layout; the message names the file and the key or row.
    """
    path = Path(path)
    if not path.is_file():
        raise SourceNotFoundError(f"{path}: no such ROI file")
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".csv":
        return _rois_from_csv(path, text)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise FormatError(f"{path}: not JSON ({err}); expected a ROI set") from None
    body = doc.get("rois") if isinstance(doc, dict) else doc
    if isinstance(body, list):
        body = {f"ROI {i + 1}": v for i, v in enumerate(body)}
    if not isinstance(body, dict) or not body:
        raise FormatError(f'{path}: expected {{"rois": {{name: {{"x", "y", "w", "h"}}}}}}')
    return {str(name): _roi_from_json(path, str(name), spec) for name, spec in body.items()}


def _roi_from_json(path: Path, name: str, spec) -> Rect | np.ndarray:
    if isinstance(spec, dict) and "mask" in spec:
        npz = path.parent / spec["mask"]
        if not npz.is_file():
            raise SourceNotFoundError(f"{path}: ROI {name!r} names mask file {npz}, not found")
        with np.load(npz) as masks:
            if name not in masks:
                raise FormatError(f"{npz}: no mask for ROI {name!r} (has {sorted(masks)})")
            return masks[name].astype(bool)
    try:
        values = [spec[k] for k in "xywh"] if isinstance(spec, dict) else list(spec)
        rect = Rect(*(float(v) for v in values))
    except (KeyError, TypeError, ValueError):
        raise FormatError(
            f"{path}: ROI {name!r} is {spec!r}; expected {{'x', 'y', 'w', 'h'}} numbers"
        ) from None
    return Rect(*(int(v) if v.is_integer() else v for v in rect))


def _rois_from_csv(path: Path, text: str) -> dict[str, Rect]:
    reader = csv.reader(io.StringIO(text))
    header = [h.strip().lower() for h in next(reader, [])]
    if header != ["name", "x", "y", "w", "h"]:
        raise FormatError(f"{path}: header {header}, expected name,x,y,w,h")
    rois = {}
    for row_no, row in enumerate(reader, start=2):
        if not row:
            continue
        try:
            name, *numbers = row
            rect = Rect(*(float(v) for v in numbers))
        except (TypeError, ValueError):
            raise FormatError(f"{path}: row {row_no} is {row}; expected name,x,y,w,h") from None
        rois[name.strip()] = Rect(*(int(v) if v.is_integer() else v for v in rect))
    if not rois:
        raise FormatError(f"{path}: no ROI rows")
    return rois


def save_rois(rois: Mapping[str, Roi] | Sequence[Roi], path: str | os.PathLike) -> Path:
    """Write a ROI set as JSON (masks into ``<stem>.masks.npz`` beside it) or CSV.

    The format follows the suffix (``.json`` or ``.csv``; CSV holds rectangles
    only). Writes are atomic: a reader sees the old file or the new one, never a
    part. `load_rois` reads the file back.

    Returns
    -------
    Path
        The file written.
    """
    path = Path(path)
    # no image here to check against: only that each ROI is well formed and not empty
    named = {
        name: _as_roi(name, roi, np.shape(roi) if _is_mask(roi) else (np.inf, np.inf))
        for name, roi in _named_items(rois)
    }
    suffix = path.suffix.lower()
    if suffix == ".csv":
        if any(not isinstance(r, Rect) for r in named.values()):
            raise OptionError(f"{path}: CSV holds rectangles only; save masks as .json")
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["name", "x", "y", "w", "h"])
        writer.writerows([name, *rect] for name, rect in named.items())
        with atomic_open(path, "w", encoding="utf-8") as f:
            f.write(buffer.getvalue())
        return path
    if suffix != ".json":
        raise OptionError(f"{path}: expected a .json or .csv file name")
    masks = {n: r for n, r in named.items() if not isinstance(r, Rect)}
    npz = path.with_name(f"{path.stem}.masks.npz")
    if masks:
        with atomic_open(npz, "wb") as f:
            np.savez_compressed(f, **masks)
    doc = {
        "rois": {
            name: {"mask": npz.name} if name in masks else dict(zip("xywh", rect, strict=True))
            for name, rect in named.items()
        }
    }
    with atomic_open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    return path


def _is_mask(roi) -> bool:
    return isinstance(roi, np.ndarray | xr.DataArray) and np.asarray(roi).dtype == bool


def _named_items(rois) -> list[tuple[str, Roi]]:
    """Mapping name -> ROI, or a sequence of ROIs named "ROI 1", "ROI 2"... (the original's)."""
    if isinstance(rois, Mapping):
        items = [(str(k), v) for k, v in rois.items()]
    elif isinstance(rois, Sequence | np.ndarray) and not isinstance(rois, str):
        if _is_mask(rois) and np.ndim(rois) == 2:
            rois = [rois]
        items = [(f"ROI {i + 1}", v) for i, v in enumerate(rois)]
    else:
        raise OptionError(f"rois: expected a mapping name -> (x, y, w, h) or mask, got {rois!r}")
    if not items:
        raise OptionError("rois: no ROI given")
    return items
