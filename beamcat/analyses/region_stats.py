"""The region-statistics kernel family: count, mean and M2 of ROIs (rectangles or masks) per frame.

One numba kernel call per dask chunk computes, for every region and frame of the
chunk, the number of finite pixels, their mean and their sum of squared
deviations (two passes over the region, in float64, so uint16 sums and
near-constant transmissions lose nothing); one task per chunk of frames merges
the chunks split along ``y``/``x`` with `beamcat.analyses.moments.combine`. So
memory is bounded by one chunk of the input, however long the stack, and a grid
of any size adds one small task per chunk, not one slice per cell.

`KERNELS` maps each kernel entry point to its NumPy twin; the tests and the
radiography benchmark run over it.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import NamedTuple

import dask.array as da
import numba
import numpy as np
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from beamcat.analyses.moments import STATS, combine
from beamcat.rois import Rect, bounds

__all__ = [
    "KERNELS",
    "Plan",
    "block_stats",
    "plan",
    "rechunk_leading",
    "region_stats",
    "region_stats_block",
    "region_stats_reference",
    "roi_stats_frame",
    "roi_stats_stack",
    "stat_variable",
]


@numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract"})
def roi_stats_frame(frame, boxes, masks, offsets, out):  # pragma: no cover - numba
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
def roi_stats_stack(frames, boxes, masks, offsets, out):  # pragma: no cover - numba
    """`roi_stats_frame` on each frame of ``frames (n, ny, nx)`` into ``out (n, k, 3)``."""
    for i in range(frames.shape[0]):
        roi_stats_frame(frames[i], boxes, masks, offsets, out[i])


def roi_stats_reference(frame: np.ndarray, rois: Sequence[Rect | np.ndarray]) -> np.ndarray:
    """NumPy twin of the kernel: ``(k, 3)`` count, mean, M2 of the finite pixels per ROI.

    The ROIs must lie inside `frame` (``(y, x)``); a ROI without finite pixels gives
    ``(0, 0, 0)`` as the kernel does.
    """
    out = np.zeros((len(rois), STATS))
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


class Plan(NamedTuple):
    """The ROIs in kernel form, clipped to one spatial block."""

    boxes: np.ndarray  # (k, 5) int64 y0, y1, x0, x1 relative to the block, mask row stride
    masks: np.ndarray  # uint8 buffer: a row of ones (for rectangles), then the mask crops
    offsets: np.ndarray  # (k,) int64 start of each ROI's mask in `masks`


def plan(rois: Sequence[Rect | np.ndarray], ys: slice, xs: slice) -> Plan:
    """Clip every ROI to the block ``[ys, xs]``: boxes relative to it, masks cropped."""
    boxes = np.zeros((len(rois), 5), np.int64)
    offsets = np.zeros(len(rois), np.int64)
    buffers = [np.ones(xs.stop - xs.start, np.uint8)]  # rectangles: stride 0 over this row
    used = buffers[0].size
    for r, roi in enumerate(rois):
        y0, y1, x0, x1 = bounds(roi)
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
    return Plan(boxes, np.concatenate(buffers), offsets)


def block_stats(block: np.ndarray, plan: Plan) -> np.ndarray:
    """Chunk step: ``(..., ny, nx)`` block -> ``(..., k, 3)`` count, mean, M2 per ROI."""
    lead = block.shape[:-2]
    frames = block.reshape((-1, *block.shape[-2:]))
    out = np.empty((frames.shape[0], plan.boxes.shape[0], STATS))
    roi_stats_stack(frames, plan.boxes, plan.masks, plan.offsets, out)
    return out.reshape((*lead, *out.shape[1:]))


def region_stats_block(frames: np.ndarray, rois: Sequence[Rect | np.ndarray]) -> np.ndarray:
    """The kernel on frames ``(n, y, x)`` in memory: ``(n, k, 3)`` count, mean, M2."""
    frames = np.asarray(frames)
    return block_stats(frames, plan(rois, slice(0, frames.shape[-2]), slice(0, frames.shape[-1])))


def region_stats_reference(frames: np.ndarray, rois: Sequence[Rect | np.ndarray]) -> np.ndarray:
    """NumPy twin of `region_stats_block`: `roi_stats_reference` frame by frame."""
    return np.stack([roi_stats_reference(frame, rois) for frame in np.asarray(frames)])


#: kernel -> NumPy twin (same arguments, same ``(n, k, 3)`` count, mean, M2)
KERNELS = {region_stats_block: region_stats_reference}


def region_stats(data, rois: list[Rect | np.ndarray]):
    """mean, std, count ``(..., k, 3)`` over the last two axes of `data` (NumPy or dask).

    A dask input chunked along ``y``/``x`` is reduced by one task per chunk of
    frames, taking only the tiles that hold ROI pixels: the others (and whatever
    computes them, such as a calibration) are never computed. One task rather
    than one per tile plus a combine: per-task overhead is what a ROI reduction
    costs next to the calibration that feeds it.
    """
    if not isinstance(data, da.Array):
        return combine(region_stats_block(data, rois))
    ybounds = np.cumsum((0, *data.chunks[-2]))
    xbounds = np.cumsum((0, *data.chunks[-1]))
    tiles, plans = [], []
    for i, j in np.ndindex(len(ybounds) - 1, len(xbounds) - 1):
        tile = plan(rois, slice(ybounds[i], ybounds[i + 1]), slice(xbounds[j], xbounds[j + 1]))
        if (tile.boxes[:, 1] > tile.boxes[:, 0]).any():
            tiles.append((i, j))
            plans.append(tile)
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
        chunks=(*data.chunks[:-2], (len(rois),), (STATS,)),
        meta=np.empty((0,) * data.ndim, np.float64),
    )


def _tiles_stats(blocks: list[np.ndarray], plans: list[Plan]) -> np.ndarray:
    """Chunk step: the tiles of one chunk of frames -> mean, std, count ``(..., k, 3)``."""
    return combine(*(block_stats(block, p) for block, p in zip(blocks, plans, strict=True)))


def rechunk_leading(stats):
    """Dask stats ``(..., k, 3)`` in chunks of dask's usual size along the leading dims.

    A few numbers per frame: one chunk for a run of any usual length, so the
    results cost a few tasks rather than several per chunk of frames.
    """
    if not isinstance(stats, da.Array):
        return stats
    return stats.rechunk({i: "auto" for i in range(stats.ndim - 2)})


def _pick(stats: np.ndarray, index: int, shape: tuple, kind) -> np.ndarray:
    """Statistic `index` of ``(lead..., k, 3)`` stats as ``(*shape, lead...)`` (ROI dims first)."""
    lead = stats.ndim - 2
    values = stats[..., index].astype(kind).reshape(*stats.shape[:-2], *shape)
    return np.moveaxis(values, list(range(lead)), list(range(len(shape), len(shape) + lead)))


def stat_variable(stats, index: int, shape: tuple, kind) -> np.ndarray | da.Array:
    """Statistic `index` of ``(lead..., k, 3)`` stats, regions first with `shape`.

    On NumPy or dask stats; one task per chunk (no slice, reshape, transpose chain).
    """
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
