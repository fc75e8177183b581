"""Time-series helpers for ROI and grid transmissions: smoothing, normalising, Beer-Lambert.

Every function takes a DataArray with a time-like dim (``time`` by default),
keeps its other dims, stays lazy on dask-backed input and appends one line to
``attrs["history"]``. They reproduce the steps of the original IMAT scripts
(hamishcavaye/imat_roi_analysis, 04/04b): Savitzky-Golay (21, 3) on ROI or
grid series and (181, 2) on the temperature log, normalisation to the first
frame (or the first of a crop), reduced transmission (1 - T) * 100 and the
Beer-Lambert concentration.
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from beamcat.analyses._frames import reference_frame
from beamcat.analyses._history import add_history
from beamcat.errors import BeamcatWarning, OptionError

#: Avogadro constant, mol^-1 (exact since the 2019 SI redefinition)
AVOGADRO = 6.02214076e23
#: the value the original scripts use; pass ``avogadro=AVOGADRO_ORIGINAL`` for parity
AVOGADRO_ORIGINAL = 6.02e23
_BARN_CM2 = 1e-24


def _check_dim(data: xr.DataArray, dim: str) -> None:
    if dim not in data.dims:
        raise OptionError(f"dim={dim!r}: not a dimension of {data.name!r}, which has {data.dims}")


def savgol(
    data: xr.DataArray, *, window: int = 21, order: int = 3, dim: str = "time"
) -> xr.DataArray:
    """Savitzky-Golay smoothing along `dim` (the original's ``savgol_filter(y, 21, 3)``).

    The filter assumes evenly spaced samples, as the original does (frames at a
    fixed cadence; the temperature log, smoothed with ``window=181, order=2``,
    is treated the same way). Edges use scipy's default ``mode="interp"``.

    NaN samples (a dropped frame, an empty ROI) are left out: the series is
    filled across them by linear interpolation, filtered, and the output is NaN
    at those samples again. A series with fewer than `window` valid samples
    comes out all NaN.

    Parameters
    ----------
    data : DataArray (..., dim, ...)
        ROI means, grid cells, a log variable.
    window : int
        Odd window length in samples, at most the length of `dim`.
    order : int
        Polynomial order, less than `window`.
    dim : str
        The dim to smooth along.

    Returns
    -------
    DataArray
        Same dims, coords and attrs; float32 input stays float32, anything else
        becomes float64. On dask input `dim` is rechunked to one chunk (time
        series are small: rois x frames), the other dims keep their chunks.

    Raises
    ------
    OptionError
        When `dim` is missing, `window` is not an odd integer greater than
        `order`, or longer than the series (pass a smaller window).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> t = xr.DataArray(np.linspace(0, 1, 50) ** 2, dims="time")
    >>> bool(abs(savgol(t, window=5, order=2) - t).max() < 1e-12)  # exact on a parabola
    True
    """
    _check_dim(data, dim)
    window, order = int(window), int(order)
    if window < 1 or window % 2 == 0 or not 0 <= order < window:
        raise OptionError(
            f"window={window}, order={order}: expected an odd window greater than order >= 0"
        )
    if window > data.sizes[dim]:
        raise OptionError(
            f"window={window}: longer than the series ({data.sizes[dim]} samples along "
            f"{dim!r}); pass window= at most {data.sizes[dim]} (odd)"
        )
    dtype = data.dtype if data.dtype == np.float32 else np.dtype(np.float64)
    if data.chunks is not None:
        data = data.chunk({dim: -1})
    out = xr.apply_ufunc(
        _savgol_last_axis,
        data,
        input_core_dims=[[dim]],
        output_core_dims=[[dim]],
        kwargs={"window": window, "order": order, "dtype": dtype},
        dask="parallelized",
        output_dtypes=[dtype],
        keep_attrs=True,
    ).transpose(*data.dims)
    out.attrs = add_history(data.attrs, f"savgol(window={window}, order={order}, dim={dim!r})")
    return out


def _savgol_last_axis(y: np.ndarray, *, window: int, order: int, dtype) -> np.ndarray:
    """Savitzky-Golay along the last axis, leaving NaN samples out (see `savgol`)."""
    from scipy.signal import savgol_filter  # scipy.signal takes ~1 s to import: not at import

    y = np.asarray(y, dtype=dtype)
    missing = np.isnan(y)
    if not missing.any():
        return savgol_filter(y, window, order, axis=-1).astype(dtype, copy=False)
    flat, holes = y.reshape(-1, y.shape[-1]).copy(), missing.reshape(-1, y.shape[-1])
    index = np.arange(y.shape[-1])
    too_few = (~holes).sum(axis=-1) < window
    for row, hole, skip in zip(flat, holes, too_few, strict=True):
        if skip:
            row[:] = 0.0  # placeholder: scipy's edge fits refuse NaN; the row ends up NaN
        elif hole.any():
            row[hole] = np.interp(index[hole], index[~hole], row[~hole])
    out = savgol_filter(flat, window, order, axis=-1)
    out[holes] = np.nan
    out[too_few] = np.nan
    return out.reshape(y.shape).astype(dtype, copy=False)


def normalise(
    data: xr.DataArray, *, dim: str = "time", reference: int | slice | object = 0
) -> xr.DataArray:
    """Divide a series by its value at a reference sample, or its mean over a window.

    The original normalises to the first frame, or to the first frame of a
    crop: crop first (``data.isel(time=slice(5, None))``) and keep
    ``reference=0``.

    Parameters
    ----------
    data : DataArray (..., dim, ...)
        Transmission per ROI, grid cell or pixel.
    dim : str
        The time-like dim.
    reference : int, slice or label
        An int is a position along `dim` (negative counts from the end); a
        slice of ints (or None) is a range of positions and a slice of labels
        (times, seconds) a range of coordinate values, whose mean (NaN
        skipped) is the reference; any other value is a coordinate label and
        the nearest sample is used (it must lie within the coordinate's range).

    Returns
    -------
    DataArray
        ``data / reference``, units "1"; NaN where the reference is 0 or NaN.

    Raises
    ------
    OptionError
        When `dim` is missing, the position is out of range or the window is empty.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> t = xr.DataArray([0.8, 0.4, 0.2], dims="time")
    >>> normalise(t).values.tolist()
    [1.0, 0.5, 0.25]
    """
    _check_dim(data, dim)
    ref = reference_frame(data, dim, reference, what="normalise")
    if dim in ref.dims:  # a window: its mean
        ref = ref.mean(dim)
    out = data / ref.where(ref != 0)
    out.attrs = add_history(
        {**data.attrs, "units": "1"}, f"normalise(dim={dim!r}, reference={reference!r})"
    )
    return out.rename(data.name)


def reduced_transmission(transmission: xr.DataArray) -> xr.DataArray:
    """Reduced transmission ``(1 - T) * 100`` in % (the original's plot without Beer-Lambert).

    Parameters
    ----------
    transmission : DataArray
        Transmission T (any dims), usually normalised to the first frame.

    Returns
    -------
    DataArray
        Named "reduced_transmission", units "%".

    Examples
    --------
    >>> import xarray as xr
    >>> reduced_transmission(xr.DataArray([1.0, 0.75])).values.tolist()
    [0.0, 25.0]
    """
    out = (1 - transmission) * 100
    out.attrs = add_history(
        {**transmission.attrs, "units": "%", "long_name": "reduced transmission (1 - T)"},
        "reduced_transmission()",
    )
    return out.rename("reduced_transmission")


def beer_lambert(
    transmission: xr.DataArray,
    *,
    thickness_cm: float,
    cross_section_barn: float,
    avogadro: float = AVOGADRO,
) -> xr.DataArray:
    """Concentration from transmission by Beer-Lambert, in mmol/cm3.

    ``c = 1000 * -ln(T) / thickness_cm / (cross_section_barn * 1e-24) / avogadro``,
    the original's formula. The original uses ``avogadro = 6.02e23``
    (`AVOGADRO_ORIGINAL`, 0.04 % higher concentrations than with the exact
    `AVOGADRO`); pass it for parity with results made by the scripts.

    T <= 0 (noise in an opaque region) has no concentration and gives NaN,
    never inf; on in-memory input a `BeamcatWarning` says how many samples
    (on dask input nothing is computed to count them: check ``isnull()``).

    Parameters
    ----------
    transmission : DataArray
        Transmission relative to the state without the species (normalise to
        a frame before the uptake first), any dims.
    thickness_cm : float
        Path length through the sample, cm (the original example: 1.3).
    cross_section_barn : float
        Neutron cross-section per molecule of the species, barn (the original
        example: 2 * 82.574 for H2).
    avogadro : float
        Avogadro constant, mol^-1.

    Returns
    -------
    DataArray
        Named "concentration", units "mmol/cm3".

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> t = xr.DataArray([1.0, np.exp(-0.1)])
    >>> c = beer_lambert(t, thickness_cm=1.3, cross_section_barn=2 * 82.574)
    >>> [round(v, 4) for v in c.values.tolist()]
    [0.0, 0.7735]
    """
    for name, value in (
        ("thickness_cm", thickness_cm),
        ("cross_section_barn", cross_section_barn),
        ("avogadro", avogadro),
    ):
        if not np.isfinite(value) or value <= 0:
            raise OptionError(f"{name}={value!r}: expected a positive number")
    if transmission.chunks is None:
        opaque = int((transmission <= 0).sum())
        if opaque:
            warnings.warn(
                f"beer_lambert: {opaque} samples of {transmission.name!r} have T <= 0; "
                "their concentration is NaN",
                BeamcatWarning,
                stacklevel=2,
            )
    scale = 1000.0 / thickness_cm / (cross_section_barn * _BARN_CM2) / avogadro
    out = (0.0 - np.log(transmission.where(transmission > 0))) * scale  # T = 1 -> +0.0
    out.attrs = add_history(
        {**transmission.attrs, "units": "mmol/cm3", "long_name": "concentration"},
        f"beer_lambert(thickness_cm={thickness_cm}, cross_section_barn={cross_section_barn}, "
        f"avogadro={avogadro})",
    )
    return out.rename("concentration")
