"""Calibrated ROI and grid means in one pass over the raw frames.

`calibrated_means` gives the numbers of ``roi_means(calibrate(frames, dark,
flat, air_roi=...), rois)`` and of `grid_means` on the same calibration, but
the transmission of whole frames never exists. Each chunk of raw frames is cut
to the box around the ROIs, the grid and the air region before it is read (a
TIFF stack then reads only the box's rows of each file). One task per chunk
then copies out just the regions' box and the air region (whatever bands of
rows the chunk came in) and, frame by frame, calibrates them into one reused
buffer with `calibrate`'s kernels and reduces it with `roi_means`' kernel
(`beamcat.analyses.region_stats`), merging as `beamcat.analyses.moments` does. So
the work per frame is the box's pixels, the dask graph has a task per band and
one per chunk of frames, and memory is bounded by one chunk of the box's rows.

Examples
--------
>>> import numpy as np, xarray as xr
>>> run = xr.DataArray(np.full((2, 4, 6), 600, np.uint16), dims=("frame", "y", "x"))
>>> dark = xr.DataArray(np.full((4, 6), 100.0), dims=("y", "x"))
>>> flat = xr.DataArray(np.full((4, 6), 1000.0), dims=("y", "x"))
>>> out = calibrated_means(run, dark, flat, rois={"a": (0, 0, 2, 2)}, grid=(2, 3))
>>> out["rois"]["mean"].values.tolist(), out["grid"]["mean"].shape
([[0.5, 0.5]], (2, 3, 2))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Literal

import dask.array as da
import numba
import numpy as np
import xarray as xr

from beamcat.analyses.calibration import (
    air_mean_kernel,
    as_transmission,
    calibration_inputs,
    transmission_kernel,
)
from beamcat.analyses.moments import STATS, combine
from beamcat.analyses.region_stats import Plan, plan, rechunk_leading, roi_stats_frame
from beamcat.analyses.roi import grid_regions, roi_regions, stats_dataset
from beamcat.errors import OptionError
from beamcat.rois import Rect, Roi, bounds, check_rect

__all__ = ["calibrated_means"]


@numba.njit(nogil=True, cache=True)
def _calibrated_stats_kernel(
    frames, dark, inverse, air, air_dark, air_inverse, boxes, masks, offsets, out
):  # pragma: no cover - numba
    """Count, mean, M2 ``out (n, k, 3)`` of each region of each calibrated frame.

    frames : (n, h, w) raw counts of the regions' box; dark, inverse : (h, w)
    float32 there; air : (n, ha, wa) raw counts of the air region (no pixel:
    no normalisation), air_dark, air_inverse : (ha, wa) float32 there. Frame by
    frame: the air mean and the transmission as `calibrate` computes them, into
    one buffer, then `roi_stats_frame`.
    """
    buffer = np.empty((1, frames.shape[1], frames.shape[2]), np.float32)
    scale = np.ones(1)
    for i in range(frames.shape[0]):
        if air.size:
            air_mean_kernel(air[i : i + 1], air_dark, air_inverse, scale)
        transmission_kernel(frames[i : i + 1], dark, inverse, scale, buffer)
        roi_stats_frame(buffer[0], boxes, masks, offsets, out[i])


def _cut(bands: list[np.ndarray], starts: list[int], window) -> np.ndarray:
    """The pixels ``[y0:y1, x0:x1]`` of the frames in row `bands` (starting at rows `starts`).

    One C-contiguous copy of just those pixels, whatever the bands and strides.
    """
    y0, y1, x0, x1 = window
    pieces = [
        band[:, max(y0 - start, 0) : max(min(y1 - start, band.shape[1]), 0), x0:x1]
        for band, start in zip(bands, starts, strict=True)
    ]
    return np.concatenate(pieces, axis=1)


def _calibrated_block(bands, *images, starts, inner, air, plan: Plan) -> np.ndarray:
    """Chunk step: row bands of the box of a chunk of frames -> mean, std, count ``(n, k, 3)``.

    `images`: dark and inverse flat of the regions' box, then of the air region.
    """
    frames = _cut(bands, starts, inner)
    if air is None:  # no pixel: no normalisation
        air, images = np.empty((len(frames), 0, 0), frames.dtype), (*images, *images)
    else:
        air = _cut(bands, starts, air)
    images = [np.ascontiguousarray(image, np.float32) for image in images]
    out = np.empty((frames.shape[0], plan.boxes.shape[0], STATS))
    _calibrated_stats_kernel(frames, *images[:2], air, *images[2:], *plan, out)
    return combine(out)


def _chunk_stats(bands: list, *images: list, **kwargs) -> np.ndarray:
    """`_calibrated_block` on the nested lists of blocks blockwise hands over.

    The box's row bands (one block each along x), the images as ``[[image]]``.
    Without ``concatenate=True``, which copies the bands into one array.
    """
    return _calibrated_block(
        [band[0] for band in bands], *(image[0][0] for image in images), **kwargs
    )


def _around(bounds) -> np.ndarray:
    """The box ``(y0, y1, x0, x1)`` around boxes ``(k, 4)`` of the same form."""
    bounds = np.asarray(bounds)
    low, high = bounds.min(axis=0), bounds.max(axis=0)
    return np.array([low[0], high[1], low[2], high[3]])


def _calibrated_stats(frames, dark, inverse, air: Rect | None, regions: list):
    """mean, std, count ``(n, k, 3)`` of the regions in the calibrated frames (NumPy or dask).

    The frames are cut to the box around the regions and the air region (in
    dask, before they are read); each chunk step cuts the regions' box and the
    air region out of it.
    """
    inner = _around([bounds(r) for r in regions])
    windows = [inner] if air is None else [inner, np.array(air.bounds())]
    y0, y1, x0, x1 = _around(windows)
    corner = np.array([y0, y0, x0, x0])
    images = [a[w[0] : w[1], w[2] : w[3]] for w in windows for a in (dark, inverse)]
    kwargs = {
        "inner": inner - corner,
        "air": None if air is None else windows[1] - corner,
        # regions relative to their box, as the kernel sees them
        "plan": plan(regions, slice(inner[0], inner[1]), slice(inner[2], inner[3])),
    }
    frames = frames[:, y0:y1, x0:x1]
    if not isinstance(frames, da.Array):
        return _calibrated_block(
            [np.asarray(frames)], *map(np.asarray, images), starts=[0], **kwargs
        )
    frames = frames.rechunk({2: -1})
    kwargs["starts"] = np.cumsum((0, *frames.chunks[1][:-1])).tolist()
    images = [da.asarray(image).rechunk(-1) for image in images]
    pairs = [(image, (f"a{n}", f"b{n}")) for n, image in enumerate(images)]
    return da.blockwise(
        partial(_chunk_stats, **kwargs),
        "fkr",
        frames,
        "fyx",
        *(item for pair in pairs for item in pair),
        new_axes={"k": len(regions), "r": STATS},
        meta=np.empty((0, 0, 0), np.float64),
    )


def calibrated_means(
    frames: xr.DataArray,
    dark: xr.DataArray,
    flat: xr.DataArray,
    *,
    rois: Mapping[str, Roi] | Sequence[Roi] | None = None,
    grid: tuple[int, int] | None = None,
    grid_region: Roi | None = None,
    grid_edges: Literal["even", "original"] = "even",
    air_roi: Sequence[int] | None = None,
    outliers: Mapping | None = None,
    eps: float = 1e-6,
    invalid: Literal["nan", "clip"] = "nan",
) -> dict[str, xr.Dataset]:
    """ROI and grid means of the calibrated frames, computed in one pass from raw counts.

    The same numbers as `roi_means` and `grid_means` of `calibrate`'s result
    (up to float64 summation order), without the transmission of whole frames:
    see the module docstring. Use `calibrate` to get the transmission images.

    Parameters
    ----------
    frames, dark, flat, air_roi, outliers, eps, invalid
        As for `beamcat.analyses.calibration.calibrate`. With `outliers`, the
        whole frames are filtered first, so they are read whole.
    rois : mapping or sequence, optional
        As for `beamcat.analyses.roi.roi_means`.
    grid : (rows, cols), optional
        Grid cells over `grid_region` (default the whole image), bounds by
        `grid_edges`, as for `beamcat.analyses.roi.grid_means`.

    Returns
    -------
    dict
        ``"rois"``: `roi_means`' Dataset (roi, time); ``"grid"``: `grid_means`'
        Dataset (row, col, time); those asked for. Lazy when `frames` is: one
        computation of both (``dask.compute(out)``) reads the frames once.

    Raises
    ------
    OptionError
        Neither `rois` nor `grid` given, and every error `calibrate`,
        `roi_means` and `grid_means` raise.
    """
    if rois is None and grid is None:
        raise OptionError("calibrated_means: give rois, grid or both")
    raw, dark_image, inverse = calibration_inputs(frames, dark, flat, outliers, eps, invalid)
    shape = raw.shape[-2:]
    sets = {}
    if rois is not None:
        sets["rois"] = roi_regions(rois, shape)
    if grid is not None:
        rows, cols = grid
        sets["grid"] = grid_regions(shape, rows, cols, region=grid_region, edges=grid_edges)
    air = None if air_roi is None else check_rect(air_roi, shape, "air_roi")
    regions = [r for s in sets.values() for r in s.regions]
    stats = rechunk_leading(
        _calibrated_stats(raw.data, dark_image.data, inverse.data, air, regions)
    )
    template = as_transmission(raw, dark, flat, air_roi, outliers, eps, invalid)
    out, start = {}, 0
    for key, labelled in sets.items():
        stop = start + len(labelled.regions)
        out[key] = stats_dataset(template, labelled, stats[:, start:stop])
        start = stop
    return out
