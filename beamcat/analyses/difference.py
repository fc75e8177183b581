"""Difference images: frames minus a reference, with a percentile contrast stretch per frame.

The original (``04c_Difference_Image.py:180-188``) subtracts a reference frame
and stretches each difference frame from its 2-95 % percentiles to 0-1. The
reference is a frame, the mean of a window of frames (positions or times), or
an image given by the caller.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from beamcat.analyses._frames import (
    PIXEL_DIMS,
    as_image,
    describe,
    frame_dim,
    reference_frame,
    whole_frames,
)
from beamcat.analyses._history import history
from beamcat.errors import OptionError

__all__ = ["difference"]


def _stretch(frames: np.ndarray, low: float, high: float) -> np.ndarray:
    """Per frame: map the `low`..`high` percentiles to 0..1 and clip; 0.5 where they are equal."""
    p = np.nanpercentile(frames, [low, high], axis=(-2, -1), keepdims=True)
    span = p[1] - p[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = np.where(span > 0, (frames - p[0]) / span, 0.5)
    return np.clip(scaled, 0.0, 1.0).astype(np.float32)


def difference(
    transmission: xr.DataArray,
    *,
    reference: int | np.datetime64 | str | slice | xr.DataArray = 0,
    stretch: tuple[float, float] = (2.0, 95.0),
) -> xr.Dataset:
    """Difference images against a reference frame, with a percentile contrast stretch.

    Parameters
    ----------
    transmission : DataArray (time, y, x) or (frame, y, x)
        Calibrated frames (`calibrate`).
    reference : int, time, slice or DataArray (y, x)
        The reference: a frame index; a time (``np.datetime64``, ISO string or
        ``pd.Timestamp``; naive = UTC), meaning the nearest frame; a slice of
        indices or of times, meaning the mean of the frames in that window
        (both ends included for times, as in ``.sel``); or a reference image
        ``(y, x)`` of the frames' shape (e.g. a mean computed once, or the
        transmission of another run), matched pixel by pixel.
    stretch : (low, high)
        Percentiles of each difference frame mapped to 0 and 1 for display
        (the original's default 2-95; each frame is stretched on its own, as in
        the original, from exact percentiles of that frame).

    Returns
    -------
    Dataset
        ``difference`` (same dims as `transmission`, float32, units "1") and
        ``display`` (float32 in [0, 1]; a frame without spread, such as the
        reference itself, is 0.5). Lazy when `transmission` is.

    Raises
    ------
    OptionError
        When the reference index or time lies outside the frames, a window
        holds no frame, or a reference image does not match the frames' shape.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> t = xr.DataArray(np.arange(3 * 4.0).reshape(3, 2, 2), dims=("frame", "y", "x"))
    >>> difference(t, reference=0).difference[2].values.tolist()
    [[8.0, 8.0], [8.0, 8.0]]
    """
    dim = frame_dim(transmission, "transmission")
    low, high = stretch
    if not 0 <= low < high <= 100:
        raise OptionError(
            f"difference: stretch must be percentiles 0 <= low < high <= 100, got {stretch!r}"
        )
    ref, described = _reference(transmission, dim, reference)
    diff = (transmission - ref).astype(np.float32)
    display = xr.apply_ufunc(
        _stretch,
        whole_frames(diff),
        input_core_dims=[list(PIXEL_DIMS)],
        output_core_dims=[list(PIXEL_DIMS)],
        kwargs={"low": float(low), "high": float(high)},
        dask="parallelized",
        output_dtypes=[np.float32],
    )
    line = f"difference(reference={described}, stretch={tuple(stretch)!r})"
    return xr.Dataset(
        {
            "difference": diff.assign_attrs(
                units=transmission.attrs.get("units", "1"),
                long_name=f"{transmission.attrs.get('long_name', 'signal')} minus reference",
            ),
            "display": display.assign_attrs(
                units="1", long_name=f"difference stretched {low:g}-{high:g} % to 0-1"
            ),
        },
        attrs={"signal": "difference", "history": history(transmission.attrs, line)},
    )


def _reference(transmission: xr.DataArray, dim: str, reference) -> tuple[xr.DataArray, str]:
    """The reference image (y, x) without coordinates, and how the history names it."""
    if isinstance(reference, xr.DataArray):
        image = as_image(reference, "reference", transmission.shape[-2:], "the frames")
        return image, describe(reference, "image")
    ref = reference_frame(transmission, dim, reference, what="difference", coord="time")
    if dim in ref.dims:  # a window: its mean
        ref = ref.mean(dim, skipna=True, dtype=np.float64).astype(np.float32)
    return xr.DataArray(ref.data, dims=PIXEL_DIMS), repr(reference)
