"""4D-STEM overview: mean/max/sum patterns, virtual images, centre of mass; radial profiles.

Every function takes a DataArray ``(scan_y, scan_x, y, x)`` or ``(frame, y,
x)`` (any leading dims, detector pixels ``(y, x)`` last) or a Dataset (its
signal, ``attrs["signal"]``), NumPy- or dask-backed, and returns a lazy result:
one task per chunk of whole frames, memory bounded by a chunk.

- `mean_pattern`, `max_pattern`, `sum_pattern`: reductions over the scan.
- `sum_image`: the total of every frame (LiberTEM's ``SumSigUDF``), a numba
  integer sum: ~7x NumPy's ``uint16`` sum, whose casting loop bounds it.
- `virtual_images`: one pass over the data, a matrix product of each chunk of
  frames ``(n, y*x)`` with the stacked masks ``(y*x, mask)``; `disc_mask` and
  `annulus_mask` draw bright-field and annular dark-field detectors.
- `centre_of_mass`: the same product with the masks ``w``, ``w*y``, ``w*x``.
- `radial_profiles`, `radial_bins`, `save_profiles` (`beamcat.analyses._stem4d_radial`):
  elliptical radial mean and variance through the per-pixel-label reduction.

Masks here follow LiberTEM and py4DSTEM: True (or a weight > 0) marks a pixel
that is *used* (a virtual detector), not pyFAI's "True = masked".

Examples
--------
>>> frames = xr.DataArray(np.arange(2 * 3 * 3.0).reshape(2, 3, 3), dims=("frame", "y", "x"))
>>> bf = disc_mask((3, 3), (1, 1), 1)
>>> virtual_images(frames, {"bf": bf}).values.tolist()
[[20.0, 65.0]]
>>> centre_of_mass(frames)["com_y"].values.round(3).tolist()
[1.5, 1.154]
"""

from __future__ import annotations

from collections.abc import Mapping

import numba
import numpy as np
import xarray as xr

from beamcat.analyses._frames import PIXEL_DIMS, describe, map_frames
from beamcat.analyses._history import carried, history
from beamcat.analyses._stem4d_radial import (
    RadialBins,
    check_centre,
    frames_of,
    radial_bins,
    radial_profiles,
    save_profiles,
)
from beamcat.analyses.ellipse import elliptical_radius
from beamcat.errors import OptionError

__all__ = [
    "RadialBins",
    "annulus_mask",
    "centre_of_mass",
    "disc_mask",
    "max_pattern",
    "mean_pattern",
    "radial_bins",
    "radial_profiles",
    "save_profiles",
    "sum_image",
    "sum_pattern",
    "virtual_images",
]


def _scan_dims(frames: xr.DataArray) -> list[str]:
    return [d for d in frames.dims if d not in PIXEL_DIMS]


def _pattern(data, how: str) -> xr.DataArray:
    frames = frames_of(data, f"{how}_pattern")
    scan = _scan_dims(frames)
    out = getattr(frames, how)(scan)
    unit = frames.attrs.get("units")
    attrs = {**carried(frames.attrs), "long_name": f"{how} pattern over {', '.join(scan)}"}
    if unit:
        attrs["units"] = unit
    attrs["history"] = history(frames.attrs, f"{how}_pattern over {scan}")
    return out.rename(f"{how}_pattern").assign_attrs(attrs)


def mean_pattern(data) -> xr.DataArray:
    """The mean diffraction pattern over every scan position: DataArray (y, x), float64, lazy.

    Examples
    --------
    >>> f = xr.DataArray(np.arange(8).reshape(2, 2, 2), dims=("frame", "y", "x"))
    >>> mean_pattern(f).values.tolist()
    [[2.0, 3.0], [4.0, 5.0]]
    """
    return _pattern(data, "mean")


def max_pattern(data) -> xr.DataArray:
    """The pixel-wise maximum over every scan position: DataArray (y, x), the data's dtype, lazy."""
    return _pattern(data, "max")


def sum_pattern(data) -> xr.DataArray:
    """The pattern summed over every scan position: DataArray (y, x), lazy (integers stay exact)."""
    return _pattern(data, "sum")


@numba.njit(nogil=True, cache=True)
def _integer_sums(frames, out):  # pragma: no cover - numba
    """The int64 sum of each integer frame of (n, y, x) into out (n,): exact, vectorised."""
    for i in range(frames.shape[0]):
        total = np.int64(0)
        for y in range(frames.shape[1]):
            for x in range(frames.shape[2]):
                total += frames[i, y, x]
        out[i] = total


def frame_sums(block: np.ndarray) -> np.ndarray:
    """The sum of each frame of ``(..., y, x)``: ``(...)`` float64 (the kernel of `sum_image`).

    Integers up to 32 bits are summed exactly in int64 by a numba loop (NumPy's
    ``uint16`` sum converts element by element: ~5 GB/s, this ~30 GB/s a core);
    floats by NumPy in float64 (NaN propagates, as in ``sum``).
    """
    stack = block.reshape(-1, *block.shape[-2:])
    if block.dtype.kind in "biu" and block.dtype.itemsize <= 4:
        totals = np.empty(len(stack), np.int64)
        _integer_sums(stack.view(np.uint8) if block.dtype == bool else stack, totals)
    else:
        totals = stack.sum(axis=(1, 2), dtype=np.float64)
    return totals.astype(np.float64).reshape(block.shape[:-2])


def sum_image(data) -> xr.DataArray:
    """The total of every frame: ``(scan_y, scan_x)`` or ``(frame,)`` float64, lazy.

    What LiberTEM's ``SumSigUDF`` and a HyperSpy signal-axes sum give: the
    bright-field-like overview of a scan and a check of the beam current.

    Examples
    --------
    >>> f = xr.DataArray(np.arange(8, dtype=np.uint16).reshape(2, 2, 2), dims=("frame", "y", "x"))
    >>> sum_image(f).values.tolist()
    [6.0, 22.0]
    """
    frames = frames_of(data, "sum_image")
    out = map_frames(frame_sums, frames, dims=(), sizes={})
    attrs = {**carried(frames.attrs), "long_name": "sum of each frame"}
    if frames.attrs.get("units"):
        attrs["units"] = frames.attrs["units"]
    attrs["history"] = history(frames.attrs, "sum_image")
    return out.rename("sum_image").assign_attrs(attrs)


# --------------------------------------------------------------------------- masks


def _grid(shape: tuple[int, int], centre, where: str) -> np.ndarray:
    """Distance (px) of every pixel centre from `centre` = (x, y), checked inside the frame."""
    x0, y0 = check_centre(centre, shape, where)
    return elliptical_radius(shape, x0=x0, y0=y0, a=1.0, b=1.0, theta=0.0)


def disc_mask(shape: tuple[int, int], centre, radius: float) -> np.ndarray:
    """A bright-field detector: pixels whose centre lies within `radius` of `centre`.

    Parameters
    ----------
    shape : (ny, nx)
        The frame's shape.
    centre : (x, y)
        Disc centre (px; x = column, y = row, pixel centres at integer indices).
    radius : float
        Radius (px); a pixel at exactly `radius` is in (LiberTEM's ``circular``).

    Returns
    -------
    ndarray (ny, nx) of bool

    Examples
    --------
    >>> disc_mask((3, 3), (1, 1), 1).astype(int).tolist()
    [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
    """
    if not radius > 0:
        raise OptionError(f"disc_mask: radius={radius!r}, expected a positive number of px")
    return _grid(shape, centre, "disc_mask") <= radius


def annulus_mask(shape: tuple[int, int], centre, inner: float, outer: float) -> np.ndarray:
    """An annular dark-field detector: ``inner < distance <= outer`` (LiberTEM's ``ring``).

    Parameters
    ----------
    shape : (ny, nx)
    centre : (x, y)
        Centre (px, pixel centres at integer indices).
    inner, outer : float
        Radii (px), ``0 <= inner < outer``.

    Returns
    -------
    ndarray (ny, nx) of bool

    Examples
    --------
    >>> annulus_mask((3, 3), (1, 1), 0.5, 1).astype(int).tolist()
    [[0, 1, 0], [1, 0, 1], [0, 1, 0]]
    """
    if not 0 <= inner < outer:
        raise OptionError(
            f"annulus_mask: inner={inner!r}, outer={outer!r}; expected 0 <= inner < outer (px)"
        )
    r = _grid(shape, centre, "annulus_mask")
    return (r > inner) & (r <= outer)


def _one_mask(mask, shape: tuple[int, int], where: str) -> np.ndarray:
    values = np.asarray(mask.data if isinstance(mask, xr.DataArray) else mask)
    if values.shape != tuple(shape) or values.dtype.kind not in "biuf":
        raise OptionError(
            f"{where}: shape {values.shape} and dtype {values.dtype}; expected booleans or "
            f"weights of the frames' (y, x) shape {tuple(shape)}"
        )
    values = values.astype(np.float64)
    if not np.isfinite(values).all():
        raise OptionError(f"{where}: holds NaN or inf; expected finite weights")
    return values


def stack_masks(masks, shape: tuple[int, int], where: str) -> tuple[list, np.ndarray]:
    """Mask names and the masks as float64 ``(mask, y, x)``, each checked against `shape`.

    `masks`: one ``(y, x)`` array or DataArray; a dict name -> mask; a DataArray
    ``(mask, y, x)`` (names from its ``mask`` coordinate); or an ndarray
    ``(n, y, x)``.
    """
    if isinstance(masks, Mapping):
        if not masks:
            raise OptionError(f"{where}: masks is an empty dict; expected name -> (y, x) mask")
        names = list(masks)
        stack = [_one_mask(m, shape, f"{where}: mask {k!r}") for k, m in masks.items()]
        return names, np.stack(stack)
    ndim = np.ndim(masks.data if isinstance(masks, xr.DataArray) else masks)
    if ndim == 3:
        if isinstance(masks, xr.DataArray):
            lead = masks.dims[0]
            if tuple(masks.dims[1:]) != PIXEL_DIMS:
                raise OptionError(f"{where}: masks of dims {masks.dims}; expected (mask, y, x)")
            names = list(masks[lead].values) if lead in masks.coords else list(range(len(masks)))
        else:
            names = list(range(np.shape(masks)[0]))
        pairs = zip(names, masks, strict=True)
        stack = [_one_mask(m, shape, f"{where}: mask {k!r}") for k, m in pairs]
        return names, np.stack(stack)
    name = masks.name if isinstance(masks, xr.DataArray) and masks.name is not None else "mask"
    return [name], _one_mask(masks, shape, f"{where}: mask")[None]


@numba.njit(nogil=True, cache=True)
def _integer_products(frames, rows, out):  # pragma: no cover - numba
    """out[i, k] = Σ_p frames[i, p]·rows[k, p] in int64: integer frames and rows, exact."""
    for i in range(frames.shape[0]):
        for k in range(rows.shape[0]):
            total = np.int64(0)
            for p in range(frames.shape[1]):  # vectorised: a frame in a few microseconds
                total += np.int64(frames[i, p]) * rows[k, p]
            out[i, k] = total


def _products(block: np.ndarray, matrix, integer_rows, support, threshold) -> np.ndarray:
    """`map_frames` step: frames ``(..., y, x)`` -> ``(..., k)``, each frame dotted with k rows.

    Integer frames of up to 16 bits against integer rows (`integer_rows`, int32:
    0/1 masks, pixel indices) take a numba loop summing in int64, exact and ~8x
    ``np.einsum``. Otherwise `support`, the pixels where some row is not 0
    (None: all), are the only ones read (``np.take``: a bright-field disc costs
    a few per cent of a frame), and ``np.einsum`` multiplies the frames' own
    numbers by the float64 rows and adds in float64 without a converted copy,
    and without BLAS, whose threads would fight dask's for the cores.
    """
    flat = block.reshape(-1, block.shape[-2] * block.shape[-1])
    if integer_rows is not None and threshold is None and _small_integers(block):
        out = np.empty((flat.shape[0], integer_rows.shape[0]), np.int64)
        _integer_products(flat, integer_rows, out)
        return out.astype(np.float64).reshape(*block.shape[:-2], matrix.shape[0])
    if support is not None:
        flat = np.take(flat, support, axis=1)  # `matrix` holds these columns only
    if threshold is not None:
        flat = np.where(flat < threshold, 0, flat)
    out = np.einsum("fp,kp->fk", flat, matrix, dtype=np.float64, casting="unsafe")
    return out.reshape(*block.shape[:-2], matrix.shape[0])


def _small_integers(block: np.ndarray) -> bool:
    return block.dtype.kind in "iu" and block.dtype.itemsize <= 2


def _mask_sums(frames: xr.DataArray, matrix: np.ndarray, dim: str, threshold=None):
    """Σ row·frame for each row of `matrix` (k, y*x) and each frame: lazy, one pass."""
    support = np.flatnonzero(matrix.any(axis=0))
    if support.size > matrix.shape[1] // 2:  # gathering most of a frame costs more than it saves
        support = None
    exact = np.array_equal(matrix, np.round(matrix)) and np.abs(matrix).max() <= 2**16
    rows = np.ascontiguousarray(matrix, np.int32) if exact else None
    columns = matrix if support is None else matrix[:, support]
    options = {"matrix": columns, "integer_rows": rows, "support": support}
    options["threshold"] = threshold
    return map_frames(_products, frames, dims=(dim,), sizes={dim: matrix.shape[0]}, **options)


def virtual_images(data, masks) -> xr.DataArray:
    """Virtual detector images: Σ mask·frame of every frame, for one or several masks at once.

    Parameters
    ----------
    data : DataArray (..., y, x) or Dataset
        Frames ``(scan_y, scan_x, y, x)`` or ``(frame, y, x)``; a Dataset's signal.
    masks : array, dict or DataArray
        One ``(y, x)`` mask (bool, or float weights); a dict name -> mask; a
        DataArray ``(mask, y, x)``. `disc_mask` (bright field) and
        `annulus_mask` (ADF) draw the usual ones.

    Returns
    -------
    DataArray (mask, ...) of float64
        ``(mask, scan_y, scan_x)`` or ``(mask, frame)``, with the mask names as
        the ``mask`` coordinate; lazy: one pass over the data (each chunk of
        frames times the stacked masks).

    Raises
    ------
    OptionError
        A mask not of the frames' (y, x) shape, not numeric, or not finite.
    """
    frames = frames_of(data, "virtual_images")
    where = describe(frames, "virtual_images")
    names, stack = stack_masks(masks, frames.shape[-2:], where)
    out = _mask_sums(frames, stack.reshape(len(names), -1), "mask")
    out = out.transpose("mask", ...).assign_coords(mask=names)
    attrs = {**carried(frames.attrs), "long_name": "virtual detector image"}
    if frames.attrs.get("units"):
        attrs["units"] = frames.attrs["units"]
    attrs["history"] = history(frames.attrs, f"virtual_images: masks {names}")
    return out.rename("virtual_image").assign_attrs(attrs)


def centre_of_mass(data, *, mask=None, threshold: float | None = None) -> xr.Dataset:
    """Centre of mass of every pattern and its shift from the mean pattern's (DPC-like maps).

    Parameters
    ----------
    data : DataArray (..., y, x) or Dataset
    mask : ndarray or DataArray (y, x), optional
        Pixels used (True, or weights), e.g. `disc_mask` around the bright-field
        disc; default all.
    threshold : float, optional
        Pixel values below it count 0 (before the mask weights).

    Returns
    -------
    Dataset (...)
        ``com_y``, ``com_x`` (px; row and column, pixel centres at integer
        indices): Σ y·w·s / Σ w·s per frame (NaN where Σ w·s is 0); ``shift_y``,
        ``shift_x`` (px): minus the centre of mass of the mean pattern (the
        same sums over all frames, so no second pass). Lazy.

    Raises
    ------
    OptionError
        A mask not of the frames' (y, x) shape, or a threshold that is not a number.
    """
    frames = frames_of(data, "centre_of_mass")
    where = describe(frames, "centre_of_mass")
    shape = frames.shape[-2:]
    weights = np.ones(shape) if mask is None else _one_mask(mask, shape, f"{where}: mask")
    if threshold is not None and not np.isfinite(threshold):
        raise OptionError(f"{where}: threshold={threshold!r}, expected a finite number")
    yy, xx = np.indices(shape, dtype=np.float64)
    matrix = np.stack([weights, weights * yy, weights * xx]).reshape(3, -1)
    sums = _mask_sums(frames, matrix, "_moment", threshold)
    total, my, mx = (sums.isel(_moment=i, drop=True) for i in range(3))
    scan = _scan_dims(frames)
    whole = total.sum(scan)
    valid = total != 0
    com_y, com_x = (m / total.where(valid) for m in (my, mx))
    line = f"centre_of_mass: mask={'yes' if mask is not None else 'no'}, threshold={threshold}"
    px = {"units": "px"}
    return xr.Dataset(
        {
            "com_y": com_y.assign_attrs(long_name="centre of mass, row", **px),
            "com_x": com_x.assign_attrs(long_name="centre of mass, column", **px),
            "shift_y": (com_y - my.sum(scan) / whole).assign_attrs(
                long_name="centre of mass minus the mean pattern's, row", **px
            ),
            "shift_x": (com_x - mx.sum(scan) / whole).assign_attrs(
                long_name="centre of mass minus the mean pattern's, column", **px
            ),
        },
        attrs={**carried(frames.attrs), "history": history(frames.attrs, line)},
    )
