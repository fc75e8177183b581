"""Outlier removal: bright and dark outliers (gamma spots, dead pixels) -> their local median.

The original's rule (``scripts/utils.py:27-30``): a pixel is replaced by the
median of its ``(r, r)`` neighbourhood (`scipy.ndimage.median_filter`, edge
mode ``"reflect"``) where it exceeds it by more than ``bright`` or falls below
it by more than ``dark``. The original subtracts the raw ``uint16`` arrays,
which wraps around: every pixel that differs from its median at all is then
replaced and the rule degenerates into a plain median filter. Here the
differences are taken in float64, which is the rule as written.

`KERNELS` maps the numba kernel to its scipy twin; the tests run over it.
"""

from __future__ import annotations

import numba
import numpy as np
import xarray as xr
from scipy import ndimage

from beamcat.analyses._frames import PIXEL_DIMS, check_pixel_dims, whole_frames
from beamcat.analyses._history import history
from beamcat.errors import OptionError

__all__ = ["KERNELS", "remove_outliers", "remove_outliers_frame", "remove_outliers_reference"]


@numba.njit(nogil=True, cache=True)
def _reflect(i, n):  # pragma: no cover - compiled
    """Index `i` folded into ``[0, n)`` like scipy.ndimage mode "reflect" (d c b a | a b c d)."""
    i = i % (2 * n)
    return 2 * n - 1 - i if i >= n else i


@numba.njit(nogil=True, cache=True)
def remove_outliers_frame(frame, radius, bright, dark):  # pragma: no cover - compiled
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
        out[i] = remove_outliers_frame(frame, radius, bright, dark)
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
    check_pixel_dims(frames, "frames")
    _check_outlier_options(radius, bright, dark)
    out = xr.apply_ufunc(
        _remove_outliers_stack,
        whole_frames(frames),
        input_core_dims=[list(PIXEL_DIMS)],
        output_core_dims=[list(PIXEL_DIMS)],
        kwargs={"radius": int(radius), "bright": float(bright), "dark": float(dark)},
        dask="parallelized",
        output_dtypes=[frames.dtype],
    )
    line = f"remove_outliers(radius={radius}, bright={bright}, dark={dark})"
    return out.assign_attrs(frames.attrs).assign_attrs(history=history(frames.attrs, line))


#: kernel -> scipy twin (one frame, keyword options radius, bright, dark)
KERNELS = {remove_outliers_frame: remove_outliers_reference}
