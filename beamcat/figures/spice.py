"""Figures of a line fit: maps per line (intensity, velocity, width), χ², status; a pixel's fit.

`line_maps_figure` draws what ``ds.spice.fit()`` returns (one raster: the
first ``time``); `pixel_fit_figure` draws one spectrum with its error bars,
the fitted model, each component and the residuals (``ds.spice.model()``).
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from matplotlib import colormaps
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure

from beamcat.analyses.linefit import FitStatus
from beamcat.figures._common import _figure, _limits, _styled

__all__ = ["STATUS_COLOURS", "line_maps_figure", "pixel_fit_figure"]

#: one colour per `FitStatus`, in its order (converged green ... no data grey)
STATUS_COLOURS = ("#1a9850", "#fdae61", "#d73027", "#7b3294", "#4575b4", "#bdbdbd")
_MAPS = (("intensity", "viridis"), ("velocity", "RdBu_r"), ("width", "magma"))


def _map(result: xr.DataArray) -> np.ndarray:
    """The (y, x) map of one raster: the first exposure of a ``time`` dim."""
    if "time" in result.dims:
        result = result.isel(time=0)
    return np.asarray(result.transpose("y", "x").values, dtype=float)


def _image(fig, ax, values, cmap, *, symmetric=False, label=""):
    vmin, vmax = _limits(values)
    if symmetric and np.isfinite(vmax):
        vmax = max(abs(vmin), abs(vmax))
        vmin = -vmax
    image = ax.imshow(
        np.ma.masked_invalid(values),
        cmap=colormaps[cmap].with_extremes(bad="0.6"),
        vmin=vmin,
        vmax=vmax,
        origin="lower",
        aspect="auto",
        interpolation="nearest",
    )
    fig.colorbar(image, ax=ax, shrink=0.85, label=label)
    return image


@_styled
def line_maps_figure(result: xr.Dataset, *, width: float = 7.0) -> Figure:
    """Intensity, velocity and width maps of every line, then χ²ᵣ and the fit status.

    Parameters
    ----------
    result : Dataset
        `beamcat.analyses.linefit.fit_lines` output (computed or lazy: it is read here).
    width : float
        Inches.

    Returns
    -------
    Figure
        Axes ``"<kind>:<line>"`` (kind intensity, velocity, width) with image gid
        the same, ``"reduced_chi2"`` and ``"status"`` (colours `STATUS_COLOURS`).
    """
    lines = [str(line) for line in result["line"].values]
    rows = len(lines) + 1
    fig = _figure((width, 2.2 * rows), layout="constrained")
    grid = fig.add_gridspec(rows, 3)
    for r, line in enumerate(lines):
        for c, (kind, cmap) in enumerate(_MAPS):
            ax = fig.add_subplot(grid[r, c], label=f"{kind}:{line}")
            unit = result[kind].attrs.get("units", "")
            values = _map(result[kind].sel(line=line))
            image = _image(fig, ax, values, cmap, symmetric=kind == "velocity", label=unit)
            image.set_gid(f"{kind}:{line}")
            ax.set_title(f"{line} {kind}", fontsize=9)
    ax = fig.add_subplot(grid[rows - 1, 0], label="reduced_chi2")
    _image(fig, ax, _map(result["reduced_chi2"]), "cividis").set_gid("reduced_chi2")
    ax.set_title("reduced χ²", fontsize=9)
    ax = fig.add_subplot(grid[rows - 1, 1:], label="status")
    n = len(FitStatus)
    image = ax.imshow(
        _map(result["status"]),
        cmap=ListedColormap(STATUS_COLOURS[:n]),
        norm=BoundaryNorm(np.arange(n + 1) - 0.5, n),
        origin="lower",
        aspect="auto",
        interpolation="nearest",
    )
    image.set_gid("status")
    bar = fig.colorbar(image, ax=ax, ticks=range(n), shrink=0.85)
    bar.ax.set_yticklabels([s.name.lower().replace("_", " ") for s in FitStatus])
    ax.set_title("fit status", fontsize=9)
    for ax in fig.axes:
        if ax.get_label() not in ("<colorbar>",) and ax.images:
            ax.set_xlabel("x (slit position)")
            ax.set_ylabel("y (along the slit)")
    return fig


@_styled
def pixel_fit_figure(
    window: xr.Dataset, result: xr.Dataset, model: xr.Dataset, *, y: int, x: int, width: float = 6.0
) -> Figure:
    """One pixel's spectrum (with σ when known), the fitted model, its components and residuals.

    Parameters
    ----------
    window : Dataset
        The window fitted (its signal over ``wavelength``; ``sigma`` drawn as error bars).
    result, model : Dataset
        ``window.spice.fit()`` and ``window.spice.model(result)``.
    y, x : int
        The pixel (positions; the first ``time``).

    Returns
    -------
    Figure
        Axes ``"spectrum"`` (lines gid ``"data"``, ``"model"``,
        ``"component:<name>"``) and ``"residual"``.
    """
    where = {"y": y, "x": x} | ({"time": 0} if "time" in model.dims else {})
    signal = window[window.attrs.get("signal", "radiance")]
    pick = {k: v for k, v in where.items() if k in signal.dims}
    wave = signal["wavelength"].values
    data = np.asarray(signal.isel(pick).values, float)
    fig = _figure((width, 4.2), layout="constrained")
    grid = fig.add_gridspec(2, 1, height_ratios=[3, 1])
    ax = fig.add_subplot(grid[0], label="spectrum")
    sigma = window["sigma"].isel(pick).values if "sigma" in window else None
    ax.errorbar(wave, data, yerr=sigma, fmt=".", color="k", ms=3, lw=0.8, gid="data", label="data")
    ax.plot(wave, model["model"].isel(where).values, color="C3", gid="model", label="model")
    for name in model["component"].values:
        part = model["components"].isel(where).sel(component=name).values
        ax.plot(wave, part, ls="--", lw=0.9, gid=f"component:{name}", label=str(name))
    status = FitStatus(int(result["status"].isel(where).values)).name.lower()
    chi2 = float(result["reduced_chi2"].isel(where).values)
    ax.set_title(f"pixel y={y}, x={x}: {status}, reduced χ² {chi2:.2f}", fontsize=9)
    ax.set_ylabel(signal.attrs.get("units", "signal"))
    ax.legend(loc="upper right", ncols=2)
    res = fig.add_subplot(grid[1], sharex=ax, label="residual")
    res.axhline(0, color="0.5", lw=0.8)
    res.plot(wave, model["residual"].isel(where).values, ".", color="k", ms=3)
    res.set_xlabel("wavelength (Å)")
    res.set_ylabel("residual")
    return fig
