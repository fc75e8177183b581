"""CMOS frame corrections: dark level removal and zeroing below a threshold.

These are FemtoMAX's CMOS path (maxiv-science/drp-femtomax ``process_cmos``,
src/worker.py): ``img.clip(min=bg) - bg``, then ``dark_corr[dark_corr < thr] = 0``.
The defaults are the pipeline's: a uniform dark level of 100 ADU (every Zyla/Balor
pixel fluctuates around 100) and a threshold of 12 (the Zyla's). Both functions
work on any ``(..., y, x)`` DataArray and stay lazy on dask-backed input.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from beamcat.analyses._frames import PIXEL_DIMS, check_pixel_dims
from beamcat.analyses._history import add_history
from beamcat.errors import OptionError

__all__ = ["as_background", "as_frames", "subtract_background", "threshold"]


def as_frames(frames: xr.DataArray | np.ndarray) -> xr.DataArray:
    """`frames` as a DataArray; a NumPy array gets dims ``(frame, y, x)`` or ``(y, x)``."""
    if isinstance(frames, xr.DataArray):
        return frames
    frames = np.asarray(frames)
    if frames.ndim not in (2, 3):
        raise OptionError(f"frames: expected a (frame, y, x) or (y, x) array, got {frames.shape}")
    return xr.DataArray(frames, dims=("frame", "y", "x")[-frames.ndim :])


def as_background(
    background: float | np.ndarray | xr.DataArray, shape: tuple[int, int]
) -> float | xr.DataArray:
    """Check a dark level: a finite number, or a dark frame of the image `shape` ``(ny, nx)``.

    Returns the number as a float, or the frame as a float DataArray ``(y, x)``.
    """
    if np.ndim(background) == 0:
        value = float(background)
        if not np.isfinite(value):
            raise OptionError(f"background={background!r}: expected a finite number")
        return value
    dark = background if isinstance(background, xr.DataArray) else xr.DataArray(background)
    if dark.ndim != 2 or dark.shape != shape:
        raise OptionError(
            f"background: a dark frame of shape {dark.shape}, expected the frame shape "
            f"(y, x) = {shape} or a single number"
        )
    dark = dark.rename(dict(zip(dark.dims, PIXEL_DIMS, strict=True)))
    return dark.astype(np.result_type(dark.dtype, np.float32))


def subtract_background(
    frames: xr.DataArray,
    background: float | np.ndarray | xr.DataArray = 100,
    *,
    clip: bool = True,
) -> xr.DataArray:
    """Remove the dark level: ``frames - background``, negatives set to 0 when `clip`.

    With ``clip=True`` this is the original's ``img.clip(min=bg) - bg``.

    Parameters
    ----------
    frames : DataArray (..., y, x)
        Raw detector frames (ADU).
    background : float or array (y, x)
        A uniform dark level (FemtoMAX CMOS: 100 ADU) or a dark frame / master dark.
    clip : bool
        Set negative differences (read noise below the dark level) to 0.

    Returns
    -------
    DataArray (..., y, x)
        Same dims, coords and attrs (history appended); float32 for integer or
        float32 input, float64 for float64 input or a float64 dark frame.

    Raises
    ------
    OptionError
        When the last dims are not ``("y", "x")`` or the dark frame has another shape.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> raw = xr.DataArray(np.array([[[95, 100, 130]]], np.uint16), dims=("frame", "y", "x"))
    >>> subtract_background(raw, 100).values.tolist()
    [[[0.0, 0.0, 30.0]]]
    """
    dark = as_background(background, check_pixel_dims(frames))
    dtype = np.result_type(frames.dtype, np.float32)
    if isinstance(dark, xr.DataArray):
        dtype = np.result_type(dtype, dark.dtype)
    out = frames.astype(dtype) - dark
    if clip:
        out = out.clip(min=0)
    where = "a dark frame" if isinstance(dark, xr.DataArray) else dark
    return (
        out.transpose(*frames.dims)
        .assign_attrs(add_history(frames.attrs, f"subtract_background({where}, clip={clip})"))
        .rename(frames.name)
    )


def threshold(frames: xr.DataArray, value: float = 12) -> xr.DataArray:
    """Zero every pixel below `value`; pixels at or above it keep their value.

    The original's ``dark_corr[dark_corr < thr] = 0`` (NaN pixels are kept as NaN).

    Parameters
    ----------
    frames : DataArray (..., y, x)
        Background-subtracted frames (see `subtract_background`).
    value : float
        The threshold in the units of `frames` (FemtoMAX Zyla: 12 ADU).

    Returns
    -------
    DataArray (..., y, x)
        Same dims, dtype, coords and attrs (history appended).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> im = xr.DataArray(np.array([[0.0, 11.0, 12.0, 40.0]]), dims=("y", "x"))
    >>> threshold(im, 12).values.tolist()
    [[0.0, 0.0, 12.0, 40.0]]
    """
    check_pixel_dims(frames)
    if not np.isfinite(value):
        raise OptionError(f"threshold value={value!r}: expected a finite number")
    out = frames.where(~(frames < value), 0).astype(frames.dtype)
    return out.assign_attrs(add_history(frames.attrs, f"threshold({value})"))
