"""The per-pixel-label reduction: per-label sum, sum of squares and count of every frame.

A label map gives each detector pixel an integer bin (``-1``: excluded). The
reduction of a frame is, per bin, the sum of its pixels' values, the sum of
their squares and their number (float64), with optional per-pixel weights
multiplying each value first. Azimuthal integration (bins of 2θ), 4D-STEM radial
profiles (bins of elliptical radius) and masked ROI statistics (a bin per ROI)
are all this one reduction with different label maps.

One module-level numba kernel (`label_sums`, ``nogil``, ``cache``) reduces a
chunk of frames; `label_sums_reference` is its ``np.bincount`` twin; `KERNELS`
maps one to the other for the tests and the benchmarks. `label_stats` wraps the
kernel lazily with ``xr.apply_ufunc(dask="parallelized")`` over any leading dims
(``frame``, ``time``, ``scan_y, scan_x``): one task per chunk of whole frames.

Non-finite values (NaN, inf: dead pixels, a calibration's safe division) are
skipped and not counted, as `beamcat.analyses.roi.roi_means` does.

Examples
--------
>>> frames = xr.DataArray(np.arange(8.0).reshape(2, 2, 2), dims=("frame", "y", "x"))
>>> labels = np.array([[0, 0], [1, -1]])
>>> out = label_stats(frames, labels)
>>> out["sum"].values.tolist(), out["count"].values.tolist()
([[1.0, 2.0], [9.0, 6.0]], [[2.0, 1.0], [2.0, 1.0]])
>>> out["mean"].values.tolist()
[[0.5, 2.0], [4.5, 6.0]]
"""

from __future__ import annotations

import numba
import numpy as np
import xarray as xr

from beamcat.analyses._frames import PIXEL_DIMS, check_pixel_dims, describe, whole_frames
from beamcat.analyses._history import carried, history
from beamcat.errors import OptionError

__all__ = ["KERNELS", "label_stats", "label_sums", "label_sums_reference"]

#: per label: sum, sum of squares, count
SUMS = 3


@numba.njit(nogil=True, cache=True)
def _label_sums_kernel(frames, labels, weights, out):  # pragma: no cover - numba
    """Per-label sums of frames (n, p) into zeroed out (n, k, 3); labels (p,), weights (p,).

    In pixel order, as ``np.bincount`` adds: the twin's numbers to the last bit.
    """
    for i in range(frames.shape[0]):
        for p in range(labels.shape[0]):
            b = labels[p]
            if b < 0:
                continue
            v = np.float64(frames[i, p]) * weights[p]
            if v - v == 0.0:  # finite
                out[i, b, 0] += v
                out[i, b, 1] += v * v
                out[i, b, 2] += 1.0


def _flat_inputs(frames, labels, weights):
    frames = np.asarray(frames)
    lead = frames.shape[:-2]
    flat = np.ascontiguousarray(frames.reshape(-1, frames.shape[-2] * frames.shape[-1]))
    labels = np.ascontiguousarray(np.asarray(labels, np.int64).ravel())
    if weights is None:
        weights = np.ones(labels.shape[0])
    weights = np.ascontiguousarray(np.asarray(weights, np.float64).ravel())
    return lead, flat, labels, weights


def label_sums(frames: np.ndarray, labels: np.ndarray, weights, n_labels: int) -> np.ndarray:
    """The kernel: frames ``(..., y, x)`` -> ``(..., n_labels, 3)`` sum, sum of squares, count.

    Parameters
    ----------
    frames : ndarray (..., y, x)
        Any numeric dtype.
    labels : ndarray (y, x) of int
        Bin of each pixel, ``0 .. n_labels - 1``, or -1 to exclude it (checked by
        `label_stats`, not here).
    weights : ndarray (y, x) or None
        Multiplies each pixel's value before it is summed.
    n_labels : int
        Number of bins.
    """
    lead, flat, labels, weights = _flat_inputs(frames, labels, weights)
    out = np.zeros((flat.shape[0], n_labels, SUMS))
    _label_sums_kernel(flat, labels, weights, out)
    return out.reshape((*lead, n_labels, SUMS))


def label_sums_reference(
    frames: np.ndarray, labels: np.ndarray, weights, n_labels: int
) -> np.ndarray:
    """NumPy twin of `label_sums`: ``np.bincount`` per frame, same arguments and result."""
    lead, flat, labels, weights = _flat_inputs(frames, labels, weights)
    out = np.zeros((flat.shape[0], n_labels, SUMS))
    for i, frame in enumerate(flat):
        values = frame.astype(np.float64) * weights
        keep = (labels >= 0) & np.isfinite(values)
        bins, values = labels[keep], values[keep]
        out[i, :, 0] = np.bincount(bins, values, minlength=n_labels)
        out[i, :, 1] = np.bincount(bins, values * values, minlength=n_labels)
        out[i, :, 2] = np.bincount(bins, minlength=n_labels)
    return out.reshape((*lead, n_labels, SUMS))


#: kernel -> NumPy twin (frames (..., y, x), labels (y, x), weights (y, x) or None, n_labels)
KERNELS = {label_sums: label_sums_reference}


def _check_labels(labels, shape: tuple[int, int], n_labels: int | None, where: str):
    """The label map as int64 ``(y, x)`` and the number of bins; OptionError if it does not fit."""
    values = np.asarray(labels.data if isinstance(labels, xr.DataArray) else labels)
    if values.shape != tuple(shape):
        raise OptionError(
            f"{where}: label map of shape {values.shape}, expected the frames' (y, x) {shape}"
        )
    if values.dtype.kind not in "iu":
        raise OptionError(f"{where}: label map of dtype {values.dtype}, expected integers")
    values = values.astype(np.int64)
    top = int(values.max()) if values.size else -1
    if n_labels is None:
        n_labels = top + 1
    if isinstance(n_labels, bool) or not isinstance(n_labels, int | np.integer) or n_labels < 1:
        raise OptionError(f"{where}: n_labels={n_labels!r}, expected a positive integer")
    bad = (values < -1) | (values >= n_labels)
    if bad.any():
        y, x = np.argwhere(bad)[0]
        raise OptionError(
            f"{where}: {int(bad.sum())} labels outside -1 .. {n_labels - 1} "
            f"(first at y={y}, x={x}: {values[y, x]}); -1 excludes a pixel"
        )
    return values, int(n_labels)


def _check_weights(weights, shape: tuple[int, int], where: str):
    if weights is None:
        return None
    values = np.asarray(weights.data if isinstance(weights, xr.DataArray) else weights)
    if values.shape != tuple(shape) or values.dtype.kind not in "biuf":
        raise OptionError(
            f"{where}: weights of shape {values.shape} and dtype {values.dtype}, "
            f"expected numbers of the frames' (y, x) shape {shape}"
        )
    return values.astype(np.float64)


def _chunk(block: np.ndarray, labels, weights, n_labels: int) -> np.ndarray:
    """apply_ufunc step: ``(..., y, x)`` -> ``(..., n_labels, 3)``."""
    return label_sums(block, labels, weights, n_labels)


def label_stats(
    frames: xr.DataArray,
    labels,
    *,
    weights=None,
    n_labels: int | None = None,
    dim: str = "label",
) -> xr.Dataset:
    """Per-label sum, sum of squares, count, mean and variance of every frame.

    Parameters
    ----------
    frames : DataArray (..., y, x)
        Any leading dims (``frame``, ``time``, ``scan_y, scan_x``), NumPy- or
        dask-backed, any numeric dtype.
    labels : ndarray or DataArray (y, x) of int
        Bin of each pixel, ``0 .. n_labels - 1``; -1 excludes the pixel. Kept in
        memory (a geometry, the size of one frame).
    weights : ndarray or DataArray (y, x), optional
        Multiplies each pixel's value before it is summed (solid angle,
        polarisation, flat field ...).
    n_labels : int, optional
        Number of bins (default: the largest label + 1). Bins without pixels
        give count 0 and NaN mean.
    dim : str
        Name of the label dim.

    Returns
    -------
    Dataset
        ``sum``, ``sum_sq``, ``count`` (float64; count of finite pixels) and
        ``mean = sum / count``, ``variance = sum_sq / count - mean**2``
        (population variance, clipped at 0; NaN where count is 0), over the
        leading dims of `frames` then `dim`. Lazy when `frames` is: one
        ``apply_ufunc`` task per chunk of whole frames (``y``/``x`` are
        rechunked to one chunk), nothing computed here.

    Raises
    ------
    OptionError
        `frames` without pixel dims (y, x) last, a label map or weights not of
        the frames' (y, x) shape, non-integer labels, or labels outside
        ``-1 .. n_labels - 1``.
    """
    shape = check_pixel_dims(frames)
    where = describe(frames, "label_stats")
    labels, n_labels = _check_labels(labels, shape, n_labels, where)
    weights = _check_weights(weights, shape, where)
    sums = xr.apply_ufunc(
        _chunk,
        whole_frames(frames),
        input_core_dims=[list(PIXEL_DIMS)],
        output_core_dims=[[dim, "_sums"]],
        kwargs={"labels": labels, "weights": weights, "n_labels": n_labels},
        dask="parallelized",
        output_dtypes=[np.float64],
        dask_gufunc_kwargs={"output_sizes": {dim: n_labels, "_sums": SUMS}},
    )
    total, squares, count = (sums.isel(_sums=i, drop=True) for i in range(SUMS))
    empty = count == 0
    mean = (total / count.where(~empty)).where(~empty)
    variance = (squares / count.where(~empty) - mean**2).clip(min=0)
    units = frames.attrs.get("units")
    unit = {"units": units} if units else {}
    square = {"units": f"({units})^2"} if units else {}
    ds = xr.Dataset(
        {
            "sum": total.assign_attrs(long_name="sum per label", **unit),
            "sum_sq": squares.assign_attrs(long_name="sum of squares per label", **square),
            "count": count.assign_attrs(long_name="finite pixels per label", units="1"),
            "mean": mean.assign_attrs(long_name="mean per label", **unit),
            "variance": variance.assign_attrs(long_name="variance (ddof=0) per label", **square),
        },
        coords={dim: np.arange(n_labels)},
    )
    line = f"label_stats: {n_labels} labels, weights={'yes' if weights is not None else 'no'}"
    ds.attrs = {**carried(frames.attrs), "signal": "mean", "history": history(frames.attrs, line)}
    return ds
