"""Radiography calibration: dark/flat masters, outlier removal, transmission, difference images.

What the original IMAT scripts compute (hamishcavaye/imat_roi_analysis, see
``shared/reference/algorithms.md`` seed 000) and where beamcat departs from it:

- Masters (``01_Dark_Flat_Processing.py``): the mean of the dark frames, and
  the mean of the flats with the master dark subtracted from each. Here they
  are dask reductions (sum and count per chunk, combined, divided), so memory
  is bounded by a chunk however many frames there are; a median master is
  offered too (see `dark_master`).
- Outlier removal (``scripts/utils.py:27-30``): a pixel is replaced by the
  median of its ``(r, r)`` neighbourhood (`scipy.ndimage.median_filter`, edge
  mode ``"reflect"``) where it exceeds it by more than ``bright`` or falls
  below it by more than ``dark``. The original subtracts the raw ``uint16``
  arrays, which wraps around: every pixel that differs from its median at all
  is then replaced and the rule degenerates into a plain median filter. Here the
  differences are taken in float64, which is the rule as written.
- Calibration (``03_Image_Processing.py:111,174,178-179``): ``T = (I - D) /
  max(F - D, 1e-6)`` with ``F - D`` the dark-subtracted flat master, then each
  frame divided by its mean over an open-beam (air) rectangle. A dead flat pixel
  (``F - D`` near 0) makes the original's ``T`` explode to ~1e6 and poisons the
  air mean; beamcat sets ``T`` to NaN there by default (``invalid="nan"``) and
  the air mean skips NaN; ``invalid="clip"`` reproduces the original.
- Difference images (``04c_Difference_Image.py:180-188``): frame minus a
  reference frame, then a percentile contrast stretch per frame (2-95 %).

Examples
--------
>>> import numpy as np, xarray as xr
>>> from beamcat.analyses.calibration import calibrate, dark_master, flat_master
>>> dark = xr.DataArray(np.full((3, 4, 5), 100, np.uint16), dims=("frame", "y", "x"))
>>> flat = xr.DataArray(np.full((3, 4, 5), 1100, np.uint16), dims=("frame", "y", "x"))
>>> run = xr.DataArray(np.full((2, 4, 5), 600, np.uint16), dims=("frame", "y", "x"))
>>> d = dark_master(dark)
>>> float(calibrate(run, d, flat_master(flat, d))[0, 0, 0])
0.5
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Literal

import dask.array as da
import numba
import numpy as np
import pandas as pd
import xarray as xr
from scipy import ndimage

from beamcat.analyses._history import history
from beamcat.analyses.roi import check_rect
from beamcat.errors import OptionError

__all__ = [
    "calibrate",
    "calibrate_reference",
    "dark_master",
    "difference",
    "flat_master",
    "remove_outliers",
    "remove_outliers_reference",
]

PIXEL_DIMS = ("y", "x")


# --------------------------------------------------------------------------- helpers


def _describe(obj: xr.DataArray, name: str) -> str:
    """`name`, with the file it came from when known (for messages and history)."""
    source = obj.attrs.get("source")
    return f"{name} ({source})" if source else name


def _frame_dim(frames: xr.DataArray, name: str) -> str:
    """The one dim of `frames` besides ``(y, x)``: ``frame`` or ``time``."""
    _check_pixel_dims(frames, name)
    others = [d for d in frames.dims if d not in PIXEL_DIMS]
    if len(others) != 1:
        raise OptionError(
            f"{_describe(frames, name)}: expected dims (frame, y, x), got {frames.dims}"
        )
    return others[0]


def _check_pixel_dims(obj: xr.DataArray, name: str) -> None:
    if not isinstance(obj, xr.DataArray):
        raise OptionError(f"{name}: expected an xarray.DataArray, got {type(obj).__name__}")
    if obj.dims[-2:] != PIXEL_DIMS:
        raise OptionError(
            f"{_describe(obj, name)}: expected detector dims (..., y, x) last, got {obj.dims}"
        )


def _whole_frames(frames: xr.DataArray) -> xr.DataArray:
    """`frames` with each (y, x) frame in one dask chunk (per-frame kernels need it)."""
    if frames.chunks is None:
        return frames
    # rechunk the data only: DataArray.chunk would make coordinates (time) dask-backed too
    whole = {frames.get_axis_num(d): -1 for d in PIXEL_DIMS}
    return frames.copy(data=frames.data.rechunk(whole))


def _check_shape(obj: xr.DataArray, name: str, shape: tuple[int, int], against: str) -> None:
    _check_pixel_dims(obj, name)
    if obj.shape[-2:] != tuple(shape):
        ny, nx = obj.shape[-2:]
        raise OptionError(
            f"{_describe(obj, name)}: shape (y: {ny}, x: {nx}) does not match {against} "
            f"(y: {shape[0]}, x: {shape[1]})"
        )


def _image(obj: xr.DataArray, name: str, shape: tuple[int, int], against: str) -> xr.DataArray:
    """A (y, x) master stripped of coordinates, checked against the frames' `shape`.

    Coordinates are dropped so that a master never aligns (and silently crops)
    against the frames' pixel coordinates: masters are matched pixel by pixel.
    """
    _check_shape(obj, name, shape, against)
    if obj.dims != PIXEL_DIMS:
        raise OptionError(f"{_describe(obj, name)}: expected dims (y, x), got {obj.dims}")
    return xr.DataArray(obj.data, dims=PIXEL_DIMS)


# --------------------------------------------------------------------------- masters


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
    dim = _frame_dim(dark, "dark")
    if outliers is not None:
        dark = remove_outliers(dark, **outliers)
    master = _reduce_frames(dark, dim, method, "dark")
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
    dim = _frame_dim(flat, "flat")
    dark = _master(dark, "dark", outliers, flat.shape[-2:], "the flats")
    if outliers is not None:
        flat = remove_outliers(flat, **outliers)
    master = _reduce_frames(flat, dim, method, "flat") - dark
    return master.astype(np.float32).assign_attrs(
        units=flat.attrs.get("units", "counts"),
        long_name="dark-subtracted master flat",
        history=history(flat.attrs, f"flat_master(method={method!r}, outliers={outliers!r})"),
    )


def _reduce_frames(frames: xr.DataArray, dim: str, method: str, name: str) -> xr.DataArray:
    """Mean or median over `dim` in float64, without coordinates on (y, x)."""
    frames = xr.DataArray(frames.data, dims=frames.dims)
    if method == "mean" and frames.chunks is not None and frames.dtype.kind in "iu":
        # integer counts have no NaN to skip: float64 sums of the frames, then divided
        sums = da.reduction(
            frames.data,
            _frame_sums,
            _add_sums,
            combine=_add_sums,
            axis=0,
            keepdims=False,
            dtype=np.float64,
            concatenate=False,
        )
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


def _frame_sums(block: np.ndarray, axis, keepdims) -> np.ndarray:
    """Reduction chunk step: float64 sum ``(1, y, x)`` of the frames of a block.

    Frame by frame: numpy's ``sum(axis=0, dtype=float64)`` of integers is
    several times slower (a buffered cast over the whole block).
    """
    total = np.zeros((1, *block.shape[1:]))
    for frame in block:
        np.add(total[0], frame, out=total[0])
    return total


def _add_sums(parts, axis, keepdims) -> np.ndarray:
    """Reduction combine step: partial sums added (no concatenation of them first)."""
    total = functools.reduce(np.add, parts if isinstance(parts, list) else [parts])
    return total if keepdims else total[0]


def _master(
    obj: xr.DataArray, name: str, outliers: Mapping | None, shape: tuple[int, int], against: str
) -> xr.DataArray:
    """`obj` as a bare (y, x) image: itself if a master, else the mean master of its frames."""
    _check_shape(obj, name, shape, against)
    if obj.ndim == 3:
        obj = dark_master(obj, outliers=outliers).assign_attrs(source=obj.attrs.get("source"))
    return _image(obj, name, shape, against)


# --------------------------------------------------------------------------- outliers


@numba.njit(nogil=True, cache=True)
def _reflect(i, n):  # pragma: no cover - compiled
    """Index `i` folded into ``[0, n)`` like scipy.ndimage mode "reflect" (d c b a | a b c d)."""
    i = i % (2 * n)
    return 2 * n - 1 - i if i >= n else i


@numba.njit(nogil=True, cache=True)
def _remove_outliers_frame(frame, radius, bright, dark):  # pragma: no cover - compiled
    """One (y, x) frame with its outliers replaced by the median of their (r, r) window.

    Equal, edges included, to `remove_outliers_reference`. The median is needed
    only where the pixel is replaced, and whether it is can be decided without
    sorting: ``v - w > bright`` is monotone in the window value ``w`` (floating-
    point subtraction is monotone), so it holds for the median (rank ``k`` of
    ``n``) exactly when it holds for at least ``k + 1`` window values; likewise
    ``w - v > dark`` holds for the median exactly when it holds for at least
    ``n - k`` values. So each pixel costs one pass of comparisons, and only
    outliers pay for a sort.
    """
    ny, nx = frame.shape
    half = radius // 2  # scipy's window for size r covers offsets -(r // 2) .. r - r // 2 - 1
    rows = np.empty((ny, radius), np.int64)
    cols = np.empty((nx, radius), np.int64)
    for i in range(ny):
        for a in range(radius):
            rows[i, a] = _reflect(i - half + a, ny)
    for j in range(nx):
        for b in range(radius):
            cols[j, b] = _reflect(j - half + b, nx)
    n = radius * radius
    k = n // 2  # scipy's median rank (the upper middle when n is even)
    window = np.empty(n, np.float64)
    out = frame.copy()
    for i in range(ny):
        for j in range(nx):
            v = np.float64(frame[i, j])
            above = 0
            below = 0
            m = 0
            for a in range(radius):
                ii = rows[i, a]
                for b in range(radius):
                    w = np.float64(frame[ii, cols[j, b]])
                    window[m] = w
                    m += 1
                    if v - w > bright:
                        above += 1
                    if w - v > dark:
                        below += 1
            if above > k or below >= n - k:
                window.sort()
                out[i, j] = window[k]
    return out


def _remove_outliers_stack(block: np.ndarray, radius: int, bright: float, dark: float):
    """Apply the numba kernel to every (y, x) frame of a block (..., y, x)."""
    stack = np.ascontiguousarray(block).reshape(-1, *block.shape[-2:])
    out = np.empty_like(stack)
    for i, frame in enumerate(stack):
        out[i] = _remove_outliers_frame(frame, radius, bright, dark)
    return out.reshape(block.shape)


def remove_outliers_reference(
    frame: np.ndarray, *, radius: int = 3, bright: float = 1000.0, dark: float = 1000.0
) -> np.ndarray:
    """The original's outlier rule on one frame, with scipy: the reference twin of the kernel.

    ``med = scipy.ndimage.median_filter(frame, size=(radius, radius))`` (edge
    mode "reflect"); a pixel becomes ``med`` where ``frame - med > bright`` or
    ``med - frame > dark``. Differences are taken in float64 (the original takes
    them in the frame's dtype, which wraps around for unsigned integers).

    Parameters
    ----------
    frame : ndarray (y, x)
    radius : int
        Side of the square median window (the original's ``outlier_radius``).
    bright, dark : float
        Thresholds above and below the median, in the frame's units.

    Returns
    -------
    ndarray (y, x)
        Same dtype as `frame`.
    """
    image = np.asarray(frame, dtype=np.float64)
    median = ndimage.median_filter(image, size=(radius, radius))
    outliers = ((image - median) > bright) | ((median - image) > dark)
    return np.where(outliers, median, image).astype(np.asarray(frame).dtype)


def _check_outlier_options(radius, bright, dark) -> None:
    if isinstance(radius, bool) or not isinstance(radius, int | np.integer) or radius < 1:
        raise OptionError(f"remove_outliers: radius must be an integer >= 1, got {radius!r}")
    for name, value in (("bright", bright), ("dark", dark)):
        if not np.isfinite(value) or value < 0:
            raise OptionError(
                f"remove_outliers: {name} must be a finite number >= 0, got {value!r}"
            )


def remove_outliers(
    frames: xr.DataArray, *, radius: int = 3, bright: float = 1000.0, dark: float = 1000.0
) -> xr.DataArray:
    """Replace bright and dark outliers (gamma spots, dead pixels) by their local median.

    A pixel ``v`` is replaced by the median ``m`` of its ``(radius, radius)``
    window (scipy "reflect" edges) where ``v - m > bright`` or ``m - v > dark``:
    the original's rule, run frame by frame by a numba kernel that equals
    `remove_outliers_reference` exactly.

    Parameters
    ----------
    frames : DataArray (..., y, x)
        Frames (any leading dims), counts or transmission; finite values.
    radius : int
        Side of the square median window (the original's default 3).
    bright, dark : float
        Thresholds above and below the local median, in the units of `frames`
        (the original's config: 1000 counts each).

    Returns
    -------
    DataArray (..., y, x)
        Same dims, coordinates and dtype; lazy (``apply_ufunc``, one task per
        chunk of whole frames: (y, x) are rechunked to one chunk).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> im = xr.DataArray(np.full((1, 5, 5), 100, np.uint16), dims=("frame", "y", "x"))
    >>> im[0, 2, 2] = 9000
    >>> int(remove_outliers(im)[0, 2, 2])
    100
    """
    _check_pixel_dims(frames, "frames")
    _check_outlier_options(radius, bright, dark)
    out = xr.apply_ufunc(
        _remove_outliers_stack,
        _whole_frames(frames),
        input_core_dims=[list(PIXEL_DIMS)],
        output_core_dims=[list(PIXEL_DIMS)],
        kwargs={"radius": int(radius), "bright": float(bright), "dark": float(dark)},
        dask="parallelized",
        output_dtypes=[frames.dtype],
    )
    line = f"remove_outliers(radius={radius}, bright={bright}, dark={dark})"
    return out.assign_attrs(frames.attrs).assign_attrs(history=history(frames.attrs, line))


# --------------------------------------------------------------------------- calibration


def _inverse_flat(flat: np.ndarray, eps: float, invalid: str) -> np.ndarray:
    """``1 / (F - D)`` in float32; NaN (``"nan"``) or ``1 / eps`` (``"clip"``) where ``<= eps``."""
    flat = flat.astype(np.float32)
    if invalid == "clip":
        return 1.0 / np.maximum(flat, np.float32(eps))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(flat > eps, 1.0 / flat, np.float32(np.nan)).astype(np.float32)


@numba.njit(nogil=True, cache=True)
def _transmission_kernel(frames, dark, inverse, scale, out):  # pragma: no cover - compiled
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
def _air_mean_kernel(frames, dark, inverse, out):  # pragma: no cover - compiled
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
    _transmission_kernel(np.ascontiguousarray(frames), *_images(dark, inverse, frames), scale, out)
    return out


def _air_mean_block(frames, dark, inverse) -> np.ndarray:
    """Chunk step: float64 air mean (n,) of the calibrated frames (n, h, w) of the air region."""
    out = np.empty(frames.shape[0])
    _air_mean_kernel(np.ascontiguousarray(frames), *_images(dark, inverse, frames), out)
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
    inverse = _inverse_flat(np.asarray(flat), eps, invalid)
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
    frames, dark_image, inverse = _calibration_inputs(frames, dark, flat, outliers, eps, invalid)
    inputs = [frames, dark_image, inverse]
    if air_roi is not None:
        # the air mean comes from the air region alone (a few tiles of raw counts,
        # calibrated twice there), so the transmission of every tile is one fused task
        y0, y1, x0, x1 = check_rect(air_roi, frames.shape[-2:], "air_roi").bounds()
        window = {"y": slice(y0, y1), "x": slice(x0, x1)}
        air_mean = xr.apply_ufunc(
            _air_mean_block,
            *(_whole_frames(a.isel(window)) for a in inputs),
            input_core_dims=[list(PIXEL_DIMS)] * 3,
            dask="parallelized",
            output_dtypes=[np.float64],
        )
        inputs.append(air_mean)
    transmission = xr.apply_ufunc(
        _transmission_block, *inputs, dask="parallelized", output_dtypes=[np.float32]
    )
    return _as_transmission(transmission, dark, flat, air_roi, outliers, eps, invalid)


def _calibration_inputs(frames, dark, flat, outliers, eps, invalid) -> tuple:
    """Checked `calibrate` inputs: frames (outliers removed), the dark image, ``1 / (F - D)``."""
    _frame_dim(frames, "frames")
    if invalid not in ("nan", "clip"):
        raise OptionError(f"calibrate: invalid must be 'nan' or 'clip', got {invalid!r}")
    shape = frames.shape[-2:]
    _check_shape(flat, "flat", shape, "the frames")
    dark_image = _master(dark, "dark", outliers, shape, "the frames")
    if flat.ndim == 3:
        flat = flat_master(flat, dark_image, outliers=outliers).assign_attrs(
            source=flat.attrs.get("source")
        )
    flat_image = _image(flat, "flat", shape, "the frames")
    if outliers is not None:
        frames = remove_outliers(frames, **outliers)
    inverse = xr.apply_ufunc(
        _inverse_flat,
        flat_image,
        kwargs={"eps": eps, "invalid": invalid},
        dask="parallelized",
        output_dtypes=[np.float32],
    )
    return frames, dark_image, inverse


def _as_transmission(
    values: xr.DataArray, dark, flat, air_roi, outliers, eps, invalid
) -> xr.DataArray:
    """`values` (frames' dims and coordinates) labelled as `calibrate`'s result.

    The ``time`` coordinate becomes the leading dim; name, units and the
    history line are `calibrate`'s.
    """
    if "time" in values.coords and values["time"].dims == ("frame",):
        values = values.swap_dims(frame="time")
    line = (
        f"calibrate(dark={_describe(dark, 'dark')}, flat={_describe(flat, 'flat')}, "
        f"air_roi={None if air_roi is None else tuple(air_roi)}, outliers={outliers!r}, "
        f"eps={eps}, invalid={invalid!r})"
    )
    return values.rename("transmission").assign_attrs(
        units="1", long_name="transmission", history=history(values.attrs, line)
    )


# --------------------------------------------------------------------------- difference


def _reference_image(transmission: xr.DataArray, dim: str, reference) -> xr.DataArray:
    """The reference frame: an index, a time (nearest frame) or the mean over a window."""
    n = transmission.sizes[dim]
    if isinstance(reference, int | np.integer) and not isinstance(reference, bool):
        if not -n <= reference < n:
            raise OptionError(f"difference: reference index {reference} outside 0 .. {n - 1}")
        return transmission.isel({dim: int(reference)})
    if isinstance(reference, slice):
        if reference.step is not None:
            raise OptionError(f"difference: a reference window takes no step, got {reference}")
        ends = (reference.start, reference.stop)
        if all(e is None or isinstance(e, int | np.integer) for e in ends):
            window = transmission.isel({dim: reference})
        else:
            times = _times(transmission)
            start, stop = (
                default if e is None else _timestamp(e, times)
                for e, default in zip(ends, (times.min(), times.max()), strict=True)
            )
            window = transmission.isel({dim: np.flatnonzero((times >= start) & (times <= stop))})
        if window.sizes[dim] == 0:
            raise OptionError(
                f"difference: the reference window {reference} holds no frame "
                f"(frames {_range_text(transmission, dim)})"
            )
        return window.mean(dim, skipna=True, dtype=np.float64).astype(np.float32)
    times = _times(transmission)
    at = _timestamp(reference, times)
    return transmission.isel({dim: int(np.argmin(np.abs(times - at)))})


def _times(transmission: xr.DataArray) -> pd.DatetimeIndex:
    if "time" not in transmission.coords:
        raise OptionError("difference: a reference time needs a time coordinate; give an index")
    return pd.DatetimeIndex(transmission["time"].values)


def _timestamp(value, times: pd.DatetimeIndex) -> pd.Timestamp:
    """`value` as a timestamp inside the frames' time range, else OptionError."""
    try:
        at = pd.Timestamp(value)
    except (TypeError, ValueError):
        raise OptionError(
            f"difference: reference must be an index, a time or a slice, got {value!r}"
        ) from None
    if at.tzinfo is not None:  # frame times are naive UTC
        at = at.tz_convert("UTC").tz_localize(None)
    if not times.min() <= at <= times.max():
        raise OptionError(
            f"difference: reference time {at} outside the frames' time range "
            f"{times.min()} .. {times.max()}"
        )
    return at


def _range_text(transmission: xr.DataArray, dim: str) -> str:
    if "time" in transmission.coords:
        times = transmission["time"].values
        return f"{times.min()} .. {times.max()}"
    return f"0 .. {transmission.sizes[dim] - 1}"


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
    reference: int | np.datetime64 | str | slice = 0,
    stretch: tuple[float, float] = (2.0, 95.0),
) -> xr.Dataset:
    """Difference images against a reference frame, with a percentile contrast stretch.

    Parameters
    ----------
    transmission : DataArray (time, y, x) or (frame, y, x)
        Calibrated frames (`calibrate`).
    reference : int, time or slice
        The reference: a frame index; a time (``np.datetime64``, ISO string or
        ``pd.Timestamp``; naive = UTC), meaning the nearest frame; or a slice of
        indices or of times, meaning the mean of the frames in that window
        (both ends included for times, as in ``.sel``).
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
        When the reference index or time lies outside the frames, or a window
        holds no frame.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> t = xr.DataArray(np.arange(3 * 4.0).reshape(3, 2, 2), dims=("frame", "y", "x"))
    >>> difference(t, reference=0).difference[2].values.tolist()
    [[8.0, 8.0], [8.0, 8.0]]
    """
    dim = _frame_dim(transmission, "transmission")
    low, high = stretch
    if not 0 <= low < high <= 100:
        raise OptionError(
            f"difference: stretch must be percentiles 0 <= low < high <= 100, got {stretch!r}"
        )
    ref = _reference_image(transmission, dim, reference)
    diff = (transmission - xr.DataArray(ref.data, dims=PIXEL_DIMS)).astype(np.float32)
    display = xr.apply_ufunc(
        _stretch,
        _whole_frames(diff),
        input_core_dims=[list(PIXEL_DIMS)],
        output_core_dims=[list(PIXEL_DIMS)],
        kwargs={"low": float(low), "high": float(high)},
        dask="parallelized",
        output_dtypes=[np.float32],
    )
    line = f"difference(reference={reference!r}, stretch={tuple(stretch)!r})"
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
