"""Radiography calibration: transmission ``T = (I - D) / (F - D)``, normalised by open beam.

What the original IMAT scripts compute (hamishcavaye/imat_roi_analysis, see
``shared/reference/algorithms.md`` seed 000) and where beamcat departs from it
(``03_Image_Processing.py:111,174,178-179``): ``T = (I - D) / max(F - D, 1e-6)``
with ``F - D`` the dark-subtracted flat master (`beamcat.analyses.masters`),
then each frame divided by its mean over an open-beam (air) rectangle. A dead
flat pixel (``F - D`` near 0) makes the original's ``T`` explode to ~1e6 and
poisons the air mean; beamcat sets ``T`` to NaN there by default
(``invalid="nan"``) and the air mean skips NaN; ``invalid="clip"`` reproduces
the original. Masters, outlier removal and difference images have their own
modules (`masters`, `outliers`, `difference`).

Examples
--------
>>> from beamcat.analyses.masters import dark_master, flat_master
>>> dark = xr.DataArray(np.full((3, 4, 5), 100, np.uint16), dims=("frame", "y", "x"))
>>> flat = xr.DataArray(np.full((3, 4, 5), 1100, np.uint16), dims=("frame", "y", "x"))
>>> run = xr.DataArray(np.full((2, 4, 5), 600, np.uint16), dims=("frame", "y", "x"))
>>> d = dark_master(dark)
>>> float(calibrate(run, d, flat_master(flat, d))[0, 0, 0])
0.5
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numba
import numpy as np
import xarray as xr

from beamcat.analyses._frames import (
    PIXEL_DIMS,
    as_image,
    check_shape,
    describe,
    frame_dim,
    whole_frames,
)
from beamcat.analyses._history import history
from beamcat.analyses.masters import as_master, flat_master
from beamcat.analyses.outliers import remove_outliers
from beamcat.errors import OptionError
from beamcat.rois import check_rect

__all__ = [
    "KERNELS",
    "air_mean_kernel",
    "as_transmission",
    "calibrate",
    "calibrate_reference",
    "calibration_inputs",
    "inverse_flat",
    "transmission_kernel",
]


def inverse_flat(flat: np.ndarray, eps: float, invalid: str) -> np.ndarray:
    """``1 / (F - D)`` in float32; NaN (``"nan"``) or ``1 / eps`` (``"clip"``) where ``<= eps``."""
    flat = flat.astype(np.float32)
    if invalid == "clip":
        return 1.0 / np.maximum(flat, np.float32(eps))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(flat > eps, 1.0 / flat, np.float32(np.nan)).astype(np.float32)


@numba.njit(nogil=True, cache=True)
def transmission_kernel(frames, dark, inverse, scale, out):  # pragma: no cover - compiled
    """``out[i] = float32((I_i - D) * inv) / scale[i]`` for frames (n, y, x) of any dtype.

    The float32 ``(I - D) * inv`` of the original, then a float64 division by the
    frame's air mean rounded to float32: `calibrate_reference`'s numbers in one
    pass over memory instead of four temporary arrays.
    """
    for i in range(frames.shape[0]):
        s = scale[i]
        for yy in range(frames.shape[1]):
            for xx in range(frames.shape[2]):
                t = (np.float32(frames[i, yy, xx]) - dark[yy, xx]) * inverse[yy, xx]
                out[i, yy, xx] = np.float32(np.float64(t) / s)


@numba.njit(nogil=True, cache=True, fastmath={"reassoc"})
def air_mean_kernel(frames, dark, inverse, out):  # pragma: no cover - compiled
    """``out[i]``: float64 mean of the non-NaN float32 ``(I_i - D) * inv`` of frames (n, y, x).

    NaN where none is (as ``np.nanmean``); reassociation only lets the sum vectorise.
    """
    for i in range(frames.shape[0]):
        total = 0.0
        count = 0
        for yy in range(frames.shape[1]):
            for xx in range(frames.shape[2]):
                t = (np.float32(frames[i, yy, xx]) - dark[yy, xx]) * inverse[yy, xx]
                ok = t == t
                total += np.float64(t) if ok else 0.0
                count += ok
        out[i] = total / count if count else np.nan


def _transmission_block(frames, dark, inverse, scale=None) -> np.ndarray:
    """Chunk step: float32 transmission of frames (n, y, x), each divided by `scale` (n, 1, 1).

    The kernels get C-contiguous arrays: on a strided view (an ``x`` tile cut from
    a band of rows) they run five times slower than a copy and a contiguous pass.
    """
    n = frames.shape[0]
    scale = np.ones(n) if scale is None else np.asarray(scale, np.float64).reshape(n)
    out = np.empty(frames.shape, np.float32)
    transmission_kernel(np.ascontiguousarray(frames), *_images(dark, inverse, frames), scale, out)
    return out


def _air_mean_block(frames, dark, inverse) -> np.ndarray:
    """Chunk step: float64 air mean (n,) of the calibrated frames (n, h, w) of the air region."""
    out = np.empty(frames.shape[0])
    air_mean_kernel(np.ascontiguousarray(frames), *_images(dark, inverse, frames), out)
    return out


def _images(dark, inverse, frames) -> tuple[np.ndarray, np.ndarray]:
    """Dark and inverse flat blocks as C-contiguous float32 ``(y, x)`` of `frames`' pixels."""
    return tuple(
        np.ascontiguousarray(np.broadcast_to(np.asarray(a, np.float32), frames.shape[1:]))
        for a in (dark, inverse)
    )


def calibrate_reference(
    frames: np.ndarray,
    dark: np.ndarray,
    flat: np.ndarray,
    *,
    air_roi: Sequence[int] | None = None,
    eps: float = 1e-6,
    invalid: Literal["nan", "clip"] = "nan",
) -> np.ndarray:
    """NumPy twin of `calibrate`'s kernels, on arrays: the numbers it must give.

    ``(I - D) * inv`` in float32 (the original's arithmetic,
    03_Image_Processing.py:174, with `calibrate`'s `eps`/`invalid` rule for
    ``inv``), then each frame divided by the float64 mean of its non-NaN
    pixels in `air_roi` and rounded to float32.

    Parameters
    ----------
    frames : ndarray (n, y, x)
    dark, flat : ndarray (y, x)
        Master dark and dark-subtracted flat master.

    Returns
    -------
    ndarray (n, y, x) float32
    """
    inverse = inverse_flat(np.asarray(flat), eps, invalid)
    t = (np.asarray(frames).astype(np.float32) - np.asarray(dark).astype(np.float32)) * inverse
    if air_roi is None:
        return t
    x, y, w, h = air_roi
    air = t[:, y : y + h, x : x + w].astype(np.float64)
    valid = ~np.isnan(air)
    with np.errstate(invalid="ignore", divide="ignore"):  # no valid pixel: NaN
        mean = np.where(valid, air, 0.0).sum(axis=(1, 2)) / valid.sum(axis=(1, 2))
    return (t / mean[:, None, None]).astype(np.float32)


def calibrate(
    frames: xr.DataArray,
    dark: xr.DataArray,
    flat: xr.DataArray,
    *,
    air_roi: Sequence[int] | None = None,
    outliers: Mapping | None = None,
    eps: float = 1e-6,
    invalid: Literal["nan", "clip"] = "nan",
) -> xr.DataArray:
    """Transmission ``T = (I - D) / (F - D)``, optionally normalised by an open-beam region.

    Parameters
    ----------
    frames : DataArray (frame, y, x)
        Raw frames ``I`` in counts; a ``time`` coordinate along ``frame`` (from
        the frame log or the TIFF tags) becomes the output's leading dim (its
        index: a dask-backed ``time`` coordinate is loaded for that).
    dark : DataArray (y, x) or (frame, y, x)
        Master dark ``D`` (`dark_master`), or dark frames whose mean is taken.
    flat : DataArray (y, x) or (frame, y, x)
        The *dark-subtracted* flat master ``F - D`` (`flat_master`), or raw
        open-beam frames from which `flat_master` makes it.
    air_roi : (x, y, w, h), optional
        Open-beam rectangle, pixels ``[y:y+h, x:x+w]`` (the original's
        ``calib_topleft``): each frame is divided by its mean of ``T`` there
        (NaN skipped), which removes source-intensity drift; the result is
        then the transmission relative to that region.
    outliers : mapping, optional
        Options of `remove_outliers` (e.g. ``{}`` for the defaults, or
        ``{"radius": 3, "bright": 1000, "dark": 1000}``), applied to every raw
        frame (and to dark/flat frames when frames are given); None skips it.
    eps : float
        Smallest usable ``F - D`` in counts.
    invalid : {"nan", "clip"}
        Pixels with ``F - D <= eps`` (dead or masked in the flat): ``"nan"``
        (default) gives NaN there; ``"clip"`` is the original's
        ``1 / max(F - D, eps)``, which turns them into values of order
        ``(I - D) / eps``.

    Returns
    -------
    DataArray "transmission" (time, y, x) or (frame, y, x)
        float32, units "1"; every coordinate of `frames` kept; lazy when
        `frames` is (nothing is computed).

    Raises
    ------
    OptionError
        When dark or flat do not match the frames' (y, x) shape, or `air_roi`
        is empty or lies outside the image.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> run = xr.DataArray(np.array([[[300, 500]], [[200, 600]]]), dims=("frame", "y", "x"))
    >>> dark = xr.DataArray(np.array([[100.0, 100.0]]), dims=("y", "x"))
    >>> flat = xr.DataArray(np.array([[400.0, 0.0]]), dims=("y", "x"))
    >>> calibrate(run, dark, flat).values.tolist()
    [[[0.5, nan]], [[0.25, nan]]]
    """
    frames, dark_image, inverse = calibration_inputs(frames, dark, flat, outliers, eps, invalid)
    inputs = [frames, dark_image, inverse]
    if air_roi is not None:
        # the air mean comes from the air region alone (a few tiles of raw counts,
        # calibrated twice there), so the transmission of every tile is one fused task
        y0, y1, x0, x1 = check_rect(air_roi, frames.shape[-2:], "air_roi").bounds()
        window = {"y": slice(y0, y1), "x": slice(x0, x1)}
        air_mean = xr.apply_ufunc(
            _air_mean_block,
            *(whole_frames(a.isel(window)) for a in inputs),
            input_core_dims=[list(PIXEL_DIMS)] * 3,
            dask="parallelized",
            output_dtypes=[np.float64],
        )
        inputs.append(air_mean)
    transmission = xr.apply_ufunc(
        _transmission_block, *inputs, dask="parallelized", output_dtypes=[np.float32]
    )
    return as_transmission(transmission, dark, flat, air_roi, outliers, eps, invalid)


def calibration_inputs(frames, dark, flat, outliers, eps, invalid) -> tuple:
    """Checked `calibrate` inputs: frames (outliers removed), the dark image, ``1 / (F - D)``."""
    frame_dim(frames, "frames")
    if invalid not in ("nan", "clip"):
        raise OptionError(f"calibrate: invalid must be 'nan' or 'clip', got {invalid!r}")
    shape = frames.shape[-2:]
    check_shape(flat, "flat", shape, "the frames")
    dark_image = as_master(dark, "dark", outliers, shape, "the frames")
    if flat.ndim == 3:
        flat = flat_master(flat, dark_image, outliers=outliers).assign_attrs(
            source=flat.attrs.get("source")
        )
    flat_image = as_image(flat, "flat", shape, "the frames")
    if outliers is not None:
        frames = remove_outliers(frames, **outliers)
    inverse = xr.apply_ufunc(
        inverse_flat,
        flat_image,
        kwargs={"eps": eps, "invalid": invalid},
        dask="parallelized",
        output_dtypes=[np.float32],
    )
    return frames, dark_image, inverse


def as_transmission(
    values: xr.DataArray, dark, flat, air_roi, outliers, eps, invalid
) -> xr.DataArray:
    """`values` (frames' dims and coordinates) labelled as `calibrate`'s result.

    The ``time`` coordinate becomes the leading dim; name, units and the
    history line are `calibrate`'s.
    """
    if "time" in values.coords and values["time"].dims == ("frame",):
        values = values.swap_dims(frame="time")
    line = (
        f"calibrate(dark={describe(dark, 'dark')}, flat={describe(flat, 'flat')}, "
        f"air_roi={None if air_roi is None else tuple(air_roi)}, outliers={outliers!r}, "
        f"eps={eps}, invalid={invalid!r})"
    )
    return values.rename("transmission").assign_attrs(
        units="1", long_name="transmission", history=history(values.attrs, line)
    )


def _transmission_twin(frames, dark, inverse, scale) -> np.ndarray:
    """NumPy twin of `transmission_kernel`: ``float32((I - D) * inv) / scale``, as float32."""
    t = (np.asarray(frames).astype(np.float32) - dark) * inverse
    return (t.astype(np.float64) / np.asarray(scale)[:, None, None]).astype(np.float32)


def _transmission_block_kernel(frames, dark, inverse, scale) -> np.ndarray:
    out = np.empty(frames.shape, np.float32)
    transmission_kernel(frames, dark, inverse, np.asarray(scale, np.float64), out)
    return out


#: kernel entry -> NumPy twin (frames (n, y, x), float32 dark and inverse (y, x), scale (n,))
KERNELS = {_transmission_block_kernel: _transmission_twin}
