"""Dark and flat masters: the mean (or median) of dark and open-beam frames, pixel by pixel.

What the original IMAT scripts compute (``01_Dark_Flat_Processing.py``): the
mean of the dark frames, and the mean of the flats with the master dark
subtracted from each. Here the mean is the frame-sum reduction of
`beamcat.analyses.moments` (sum per chunk, combined, divided), so memory is
bounded by a chunk however many frames there are; a median master is offered
too (see `dark_master`).

Examples
--------
>>> dark = xr.DataArray(np.full((3, 4, 5), 100, np.uint16), dims=("frame", "y", "x"))
>>> flat = xr.DataArray(np.full((3, 4, 5), 1100, np.uint16), dims=("frame", "y", "x"))
>>> float(flat_master(flat, dark_master(dark))[0, 0])
1000.0
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import numpy as np
import xarray as xr

from beamcat.analyses._frames import PIXEL_DIMS, as_image, check_shape, frame_dim
from beamcat.analyses._history import history
from beamcat.analyses.moments import sum_frames
from beamcat.analyses.outliers import remove_outliers
from beamcat.errors import OptionError

__all__ = ["as_master", "dark_master", "flat_master", "reduce_frames"]


def dark_master(
    dark: xr.DataArray,
    *,
    method: Literal["mean", "median"] = "mean",
    outliers: Mapping | None = None,
) -> xr.DataArray:
    """Master dark: the mean (or median) of dark frames, pixel by pixel.

    Parameters
    ----------
    dark : DataArray (frame, y, x)
        Dark frames in counts (any dtype); lazy or in memory.
    method : {"mean", "median"}
        ``"mean"`` (the original's) is a dask tree reduction (sums and counts per
        chunk, combined, divided): memory is bounded by a chunk. ``"median"``
        needs every frame of a pixel at once, so the frames are rechunked into
        (y, x) tiles each holding all frames, sized by dask's ``array.chunk-size``
        (128 MiB by default); memory stays bounded by a few tiles.
    outliers : mapping, optional
        Options of `remove_outliers` applied to each frame first (as the
        original does when ``remove_outliers`` is on); None skips it.

    Returns
    -------
    DataArray (y, x)
        float32 (as the original saves it), units of `dark`; lazy when `dark` is.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> frames = xr.DataArray(np.arange(3 * 2 * 2).reshape(3, 2, 2), dims=("frame", "y", "x"))
    >>> dark_master(frames).values.tolist()
    [[4.0, 5.0], [6.0, 7.0]]
    """
    dim = frame_dim(dark, "dark")
    if outliers is not None:
        dark = remove_outliers(dark, **outliers)
    master = reduce_frames(dark, dim, method, "dark")
    return master.astype(np.float32).assign_attrs(
        units=dark.attrs.get("units", "counts"),
        long_name="master dark",
        history=history(dark.attrs, f"dark_master(method={method!r}, outliers={outliers!r})"),
    )


def flat_master(
    flat: xr.DataArray,
    dark: xr.DataArray,
    *,
    method: Literal["mean", "median"] = "mean",
    outliers: Mapping | None = None,
) -> xr.DataArray:
    """Dark-subtracted flat master: the mean (or median) over frames of ``flat - dark``.

    Subtracting the master dark from each flat before averaging (the original's
    order) equals subtracting it from the average, for the mean and the median
    alike, since the dark is the same in every frame; the latter is computed.

    Parameters
    ----------
    flat : DataArray (frame, y, x)
        Open-beam frames in counts.
    dark : DataArray (y, x) or (frame, y, x)
        Master dark (`dark_master`), or dark frames whose mean master is made.
    method : {"mean", "median"}
        Reduction over frames, as in `dark_master`.
    outliers : mapping, optional
        Options of `remove_outliers` applied to each flat (and dark) frame first.

    Returns
    -------
    DataArray (y, x)
        float32 ``F - D`` in counts; lazy when the inputs are.

    Raises
    ------
    OptionError
        When the dark's (y, x) shape differs from the flats'.
    """
    dim = frame_dim(flat, "flat")
    dark = as_master(dark, "dark", outliers, flat.shape[-2:], "the flats")
    if outliers is not None:
        flat = remove_outliers(flat, **outliers)
    master = reduce_frames(flat, dim, method, "flat") - dark
    return master.astype(np.float32).assign_attrs(
        units=flat.attrs.get("units", "counts"),
        long_name="dark-subtracted master flat",
        history=history(flat.attrs, f"flat_master(method={method!r}, outliers={outliers!r})"),
    )


def reduce_frames(frames: xr.DataArray, dim: str, method: str, name: str) -> xr.DataArray:
    """Mean or median over `dim` in float64, without coordinates on (y, x)."""
    frames = xr.DataArray(frames.data, dims=frames.dims)
    if method == "mean" and frames.chunks is not None and frames.dtype.kind in "iu":
        # integer counts have no NaN to skip: float64 sums of the frames, then divided
        sums = sum_frames(frames.data, axis=frames.get_axis_num(dim))
        return xr.DataArray(sums / frames.sizes[dim], dims=PIXEL_DIMS)
    if method == "mean":
        return frames.mean(dim, dtype=np.float64)
    if method == "median":
        if frames.chunks is not None:
            frames = frames.chunk({dim: -1, "y": "auto", "x": "auto"})
        return xr.apply_ufunc(
            np.median,
            frames,
            input_core_dims=[[dim]],
            kwargs={"axis": -1},
            dask="parallelized",
            output_dtypes=[np.float64],
        )
    raise OptionError(f"{name} master: method must be 'mean' or 'median', got {method!r}")


def as_master(
    obj: xr.DataArray, name: str, outliers: Mapping | None, shape: tuple[int, int], against: str
) -> xr.DataArray:
    """`obj` as a bare (y, x) image: itself if a master, else the mean master of its frames.

    `outliers` (options of `remove_outliers`) apply to the frames; `shape` is the
    frames' (y, x) shape, `against` how messages name them.
    """
    check_shape(obj, name, shape, against)
    if obj.ndim == 3:
        obj = dark_master(obj, outliers=outliers).assign_attrs(source=obj.attrs.get("source"))
    return as_image(obj, name, shape, against)
