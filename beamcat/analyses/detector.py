"""Frame corrections: dark level removal, zeroing below a threshold, flat-field (gain) division.

The first two are FemtoMAX's CMOS path (maxiv-science/drp-femtomax ``process_cmos``,
src/worker.py): ``img.clip(min=bg) - bg``, then ``dark_corr[dark_corr < thr] = 0``.
The defaults are the pipeline's: a uniform dark level of 100 ADU (every Zyla/Balor
pixel fluctuates around 100) and a threshold of 12 (the Zyla's). `flatfield`
divides by a pixel gain map (`beamcat.analyses.gainmap.gain_map`), pyFAI's
``flat=`` convention. All work on any ``(..., y, x)`` DataArray and stay lazy on
dask-backed input.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from beamcat.analyses._frames import PIXEL_DIMS, check_pixel_dims, pick
from beamcat.analyses._history import add_history
from beamcat.errors import OptionError

__all__ = ["as_background", "as_frames", "as_gain", "flatfield", "subtract_background", "threshold"]


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


def as_gain(gain, shape: tuple[int, int]) -> xr.DataArray:
    """A gain map as a float DataArray ``(y, x)``, NaN where it cannot correct a pixel.

    Parameters
    ----------
    gain : Dataset, DataArray or array (y, x)
        A `beamcat.analyses.gainmap.gain_map` result (its ``gain``, NaN where
        ``valid`` is False), a gain file opened with `beamcat.open_dataset`
        (its signal, one frame), or a plain map.
    shape : (int, int)
        The frames' ``(ny, nx)``.

    Returns
    -------
    DataArray (y, x) float64
        Finite, positive gains; NaN where the gain was NaN, 0, negative or invalid.
    """
    if isinstance(gain, xr.Dataset):
        valid = gain["valid"].astype(bool) if "valid" in gain else True
        data = gain["gain"] if "gain" in gain else pick(gain, what="a gain map")
        gain = data.where(valid)
    gain = gain if isinstance(gain, xr.DataArray) else xr.DataArray(np.asarray(gain))
    if gain.ndim > 2:  # a gain file opened with open_dataset: (frame=1, y, x)
        gain = gain.squeeze([d for d in gain.dims[:-2] if gain.sizes[d] == 1])
    if gain.ndim != 2 or gain.shape != tuple(shape):
        raise OptionError(
            f"gain: a map of shape {gain.shape}, expected the frame shape (y, x) = {tuple(shape)}"
        )
    gain = gain.rename(dict(zip(gain.dims, PIXEL_DIMS, strict=True))).astype(np.float64)
    return gain.where(np.isfinite(gain) & (gain > 0)).drop_vars(
        [c for c in gain.coords if c not in PIXEL_DIMS]
    )


def flatfield(frames: xr.DataArray, gain) -> xr.DataArray:
    """Divide frames by a pixel gain map: ``frames / gain``, NaN where the gain is invalid.

    This is pyFAI's ``flat=`` convention (a gain of 1.05 reads 5 % too high), so
    integrating flat-fielded frames equals integrating the raw ones with
    ``flat=gain``.

    Parameters
    ----------
    frames : DataArray (..., y, x)
    gain : Dataset, DataArray or array (y, x)
        See `as_gain`: a `gain_map` result, a gain file, or a map.

    Returns
    -------
    DataArray (..., y, x)
        Same dims, coords and attrs (history appended); ``np.result_type(frames,
        float32)`` (float32 for 16-bit and float32 frames, float64 for int32 and
        float64 ones); NaN where the gain is NaN, 0, negative or marked invalid.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> raw = xr.DataArray(np.array([[[105, 90, 50]]], np.int32), dims=("frame", "y", "x"))
    >>> flatfield(raw, np.array([[1.05, 0.9, 0.0]])).values.tolist()
    [[[100.0, 100.0, nan]]]
    """
    gain = as_gain(gain, check_pixel_dims(frames))
    dtype = np.result_type(frames.dtype, np.float32)
    out = (frames.astype(dtype) / gain.astype(dtype)).transpose(*frames.dims)
    return out.assign_attrs(add_history(frames.attrs, "flatfield(gain)")).rename(frames.name)
