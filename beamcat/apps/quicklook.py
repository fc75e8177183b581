"""Quick looks: a small, bounded preview of any beamcat Dataset, and its plot.

`quicklook` reads only a bounded amount of data (a few frames, one diffraction
pattern, one exposure, or a log) and returns it as NumPy-backed xarray objects;
`plot_quicklook` turns that into a HoloViews (bokeh) plot. Keeping the two apart
lets the app compute in a worker thread and build bokeh models on the server's
event loop.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import holoviews as hv
import hvplot.xarray  # noqa: F401  registers .hvplot
import numpy as np
import xarray as xr

from beamcat.errors import OptionError

#: attrs shown beside a quick look first, in this order, when present
KEY_ATTRS = ("source", "format", "signal", "units", "energy", "wavelength", "pixel_size")


@dataclass
class QuickLook:
    """A computed preview of a Dataset.

    Attributes
    ----------
    kind : {"image", "timeseries", "spectrum"}
        What `data` holds.
    data : list of DataArray
        ``image``: one (y, x) array with ``attrs["clim"]``; ``timeseries``: one
        (time,) array per log variable; ``spectrum``: one (wavelength,) array per
        spectral window.
    title : str
        What was previewed, e.g. ``"counts: mean of frame 0-3"``.
    """

    kind: str
    data: list[xr.DataArray]
    title: str
    attrs: dict = field(default_factory=dict)


def signal_name(ds: xr.Dataset) -> str:
    """The main variable: ``attrs["signal"]``, else the first data variable."""
    name = ds.attrs.get("signal")
    if name in ds.data_vars:
        return name
    if not ds.data_vars:
        raise OptionError(f"{ds.attrs.get('source', 'dataset')}: has no data variables to show")
    return next(iter(ds.data_vars))


def quicklook_kind(ds: xr.Dataset) -> str:
    """``"spectrum"``, ``"image"`` or ``"timeseries"``, from the signal's dims."""
    da = ds[signal_name(ds)]
    if any(str(d).startswith("wavelength") for d in da.dims) and da.dims[-2:] == ("y", "x"):
        return "spectrum"
    if da.dims[-2:] == ("y", "x"):
        return "image"
    if da.ndim == 1:
        return "timeseries"
    raise OptionError(
        f"{ds.attrs.get('source', 'dataset')}: no quick look for a signal with dims {da.dims}; "
        "expected (..., y, x), (time, wavelength, y, x) or (time,)"
    )


def quicklook(ds: xr.Dataset, *, frames: int = 4, max_pixels: int = 1024) -> QuickLook:
    """Compute a bounded preview of a Dataset.

    Parameters
    ----------
    ds : Dataset
        Any beamcat Dataset (lazy).
    frames : int
        Image stacks: mean of at most this many first frames.
    max_pixels : int
        Images larger than this along y or x are block-averaged down to it.

    Returns
    -------
    QuickLook
    """
    kind = quicklook_kind(ds)
    if kind == "image":
        image = preview_image(ds, frames=frames, max_pixels=max_pixels)
        return QuickLook(kind, [image], image.attrs["preview"], _shown_attrs(ds))
    if kind == "spectrum":
        spectra = preview_spectra(ds)
        return QuickLook(kind, spectra, "mean spectrum of the first exposure", _shown_attrs(ds))
    curves = preview_timeseries(ds)
    return QuickLook(kind, curves, "log variables vs time", _shown_attrs(ds))


def preview_image(
    ds: xr.Dataset, var: str | None = None, *, frames: int = 4, max_pixels: int = 1024
) -> xr.DataArray:
    """One (y, x) image computed from a bounded slice of an image signal.

    Scan dims (``scan_*``, e.g. a 4D-STEM scan) are taken at their centre
    (one diffraction pattern); the innermost other leading dim (``frame``,
    ``time``) is averaged over its first `frames` entries; any further leading
    dim is taken at index 0.

    Parameters
    ----------
    ds : Dataset
        Holds `var` with dims (..., y, x).
    var : str, optional
        Defaults to ``ds.attrs["signal"]``.
    frames, max_pixels : int
        See `quicklook`.

    Returns
    -------
    DataArray (y, x), float64, NumPy-backed
        ``attrs["preview"]`` says what was taken, ``attrs["clim"]`` holds
        robust colour limits and ``attrs["logz"]`` whether a log colour scale
        shows it better (diffraction patterns, sparse spots).
    """
    var = var or signal_name(ds)
    da = ds[var]
    leading = list(da.dims[:-2])
    picks, said = {}, []
    averaged = next((d for d in reversed(leading) if not str(d).startswith("scan")), None)
    for dim in leading:
        n = da.sizes[dim]
        if str(dim).startswith("scan"):
            picks[dim] = n // 2
            said.append(f"{dim} {n // 2}")
        elif dim == averaged:
            k = max(1, min(frames, n))
            picks[dim] = slice(0, k)
            said.append(f"{dim} 0" if k == 1 else f"mean of {dim} 0-{k - 1}")
        else:
            picks[dim] = 0
            said.append(f"{dim} 0")
    # pixel numbers as coords, so a binned preview keeps detector pixel axes
    image = da.isel(picks).assign_coords(
        {d: np.arange(da.sizes[d]) for d in ("y", "x") if d not in da.coords}
    )
    if averaged is not None:
        image = image.mean(averaged, skipna=True)
    factor = math.ceil(max(image.sizes["y"], image.sizes["x"]) / max_pixels)
    if factor > 1:
        image = image.coarsen(y=factor, x=factor, boundary="trim").mean()
        said.append(f"{factor}x{factor} binned")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN frames are shown as NaN
        image = image.astype("float64").compute()
    # integer detectors flag gaps and dead pixels with negative values: keep them out of clim
    ignore_negative = np.issubdtype(da.dtype, np.integer)
    clim = robust_limits(image.values, ignore_negative=ignore_negative)
    logz = _needs_log_colour(image.values, clim)
    if logz:
        clim = robust_limits(image.values[image.values > 0], percentiles=(1, 99.9))
    image.attrs = {
        **da.attrs,
        "preview": f"{var}: " + (", ".join(said) or "image"),
        "clim": clim,
        "logz": logz,
    }
    return image


def _needs_log_colour(values: np.ndarray, clim: tuple[float, float], ratio: float = 30) -> bool:
    """Whether a non-negative image is mostly far below its bright part (diffraction, spots).

    True when the median of the values inside `clim` is below ``clim[1] / ratio``:
    a linear scale would then show a bright disc on black.
    """
    inside = values[np.isfinite(values) & (values >= 0)]
    if clim[0] < 0 or inside.size == 0 or not (inside > 0).any():
        return False
    return bool(np.median(inside) < clim[1] / ratio)


def robust_limits(
    values: np.ndarray,
    *,
    percentiles: tuple[float, float] = (1.0, 99.5),
    ignore_negative: bool = False,
) -> tuple[float, float]:
    """Colour limits from percentiles of the finite values, so hot pixels do not wash out.

    Parameters
    ----------
    values : ndarray
        Any shape.
    percentiles : (float, float)
        Lower and upper percentile, 0-100.
    ignore_negative : bool
        Leave out values < 0 (gap and dead-pixel flags of counting detectors).

    Returns
    -------
    (float, float)
        ``lo < hi`` always; ``(0, 1)`` when nothing is finite.
    """
    v = np.asarray(values, dtype="float64").ravel()
    keep = np.isfinite(v)
    if ignore_negative:
        keep &= v >= 0
    v = v[keep]
    if v.size == 0:
        return (0.0, 1.0)
    lo, hi = (float(p) for p in np.percentile(v, percentiles))
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    return (lo, hi)


def preview_spectra(ds: xr.Dataset) -> list[xr.DataArray]:
    """Mean spectrum over spatial pixels of the first exposure, per spectral window.

    Every data variable with a ``wavelength*`` dim and (y, x) dims is a window.

    Returns
    -------
    list of DataArray (wavelength,), NumPy-backed
        NaN pixels (slit edges, missing rows) are left out of the mean.
    """
    spectra = []
    for name, da in ds.data_vars.items():
        wl = next((d for d in da.dims if str(d).startswith("wavelength")), None)
        if wl is None or da.dims[-2:] != ("y", "x"):
            continue
        first = da.isel({d: 0 for d in da.dims if d not in (wl, "y", "x")})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN wavelength bins -> NaN
            spectrum = first.mean(("y", "x"), skipna=True).compute()
        spectrum.name = name
        spectrum.attrs = dict(da.attrs)
        spectra.append(spectrum)
    return spectra


def preview_timeseries(ds: xr.Dataset, *, max_points: int = 100_000) -> list[xr.DataArray]:
    """Every numeric 1-D variable along the signal's dim (a log), strided to `max_points`.

    Returns
    -------
    list of DataArray (time,), NumPy-backed
    """
    dim = ds[signal_name(ds)].dims[0]
    step = max(1, math.ceil(ds.sizes[dim] / max_points))
    curves = []
    for name, da in ds.data_vars.items():
        if da.dims == (dim,) and np.issubdtype(da.dtype, np.number):
            curves.append(da.isel({dim: slice(None, None, step)}).compute().rename(name))
    return curves


def _shown_attrs(ds: xr.Dataset) -> dict:
    """Key attrs first (signal units included), then the rest of ``ds.attrs``."""
    sig = ds[signal_name(ds)]
    merged = {**ds.attrs, "signal": sig.name}
    if "units" in sig.attrs:
        merged["units"] = sig.attrs["units"]
    merged["dims"] = dict(sig.sizes)
    merged["dtype"] = str(sig.dtype)
    for coord in ds.coords.values():
        if "units" in coord.attrs:
            merged[f"{coord.name} units"] = coord.attrs["units"]
    first = {k: merged[k] for k in KEY_ATTRS if k in merged}
    return {**first, **{k: v for k, v in merged.items() if k not in first}}


def plot_quicklook(ql: QuickLook, *, height: int = 420, max_width: int = 480):
    """A HoloViews plot of a `QuickLook`: image, curves vs time, or spectra.

    Parameters
    ----------
    ql : QuickLook
    height : int
        Plot height in screen pixels (images: at most this high).
    max_width : int
        Images: at most this wide (square pixels, so wide detectors get less height).

    Returns
    -------
    holoviews.Element or Layout
    """
    if ql.kind == "image":
        image = ql.data[0]
        wide = image.sizes["x"] * height > image.sizes["y"] * max_width
        return image.hvplot.image(
            x="x",
            y="y",
            clim=image.attrs["clim"],
            logz=image.attrs["logz"],
            cmap="gray",
            flip_yaxis=True,
            data_aspect=1,
            **({"frame_width": max_width} if wide else {"frame_height": height}),
            colorbar=True,
            title=ql.title,
        )
    if ql.kind == "spectrum":
        plots = [
            s.hvplot.line(
                x=s.dims[0],
                height=height // max(1, len(ql.data)) + 60,
                responsive=True,
                title=f"{s.name}: {ql.title}",
                ylabel=s.attrs.get("units", ""),
            )
            for s in ql.data
        ]
        return hv.Layout(plots).cols(1) if len(plots) > 1 else plots[0]
    by_units: dict[str, list[xr.DataArray]] = {}
    for curve in ql.data:
        by_units.setdefault(curve.attrs.get("units", ""), []).append(curve)
    plots = [
        hv.Overlay(
            [c.hvplot.line(x=c.dims[0], label=str(c.name), responsive=True) for c in curves]
        ).opts(
            ylabel=units or "value",
            logy=_spans_decades(curves),
            height=max(180, height // len(by_units)),
            title=ql.title,
        )
        for units, curves in by_units.items()
    ]
    return hv.Layout(plots).cols(1) if len(plots) > 1 else plots[0]


def _spans_decades(curves: list[xr.DataArray], decades: float = 2.0) -> bool:
    """Whether positive curves span more than `decades` (partial pressures do): plot log y."""
    values = np.concatenate([np.asarray(c.values, dtype="float64") for c in curves])
    values = values[np.isfinite(values)]
    return bool(
        values.size and values.min() > 0 and np.log10(values.max() / values.min()) > decades
    )
