"""Radiography figures: the double plot, ROI image, grid heat maps and difference frames.

The figures users of the original IMAT scripts (hamishcavaye/imat_roi_analysis,
04_Figure_Plotting.py, 04b_Grid_Plotting.py, 04c_Difference_Image.py) publish:

- `double_plot`: mass spectrometer (log y, one line per species) and
  temperature (twin axis, dashed) on top, ROI transmission below, one shared
  time axis (elapsed from an origin, or absolute); several runs on one axis.
- `roi_image`: the reference image with coloured, labelled ROIs.
- `grid_heatmap` / `save_grid_frames`: grid cell values (reduced transmission
  or Beer-Lambert concentration) over the reference image, one frame per time
  step, as an image sequence and an animation.
- `difference_frame` / `save_difference_frames`: stretched difference images
  with the elapsed time and a scale bar.

Each has an interactive HoloViews twin for notebooks (``*_hv``). Matplotlib
figures are made without pyplot (see `beamcat.figures`); save them with
`beamcat.figures.save_figure`.

Where beamcat departs from the original drawings: rectangles are drawn on the
pixel edges (a ROI ``(x, y, w, h)`` spans ``x - 0.5 .. x + w - 0.5`` in image
coordinates, pixel centres at integers) where the original draws them half a
pixel off; colour limits of a heat-map sequence default to the 1-99 %
percentiles of all frames (fixed across frames so they compare), not (0, 1);
the scale bar is drawn with matplotlib's `AnchoredSizeBar` (no
matplotlib-scalebar dependency) with a round length chosen from the image width.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import matplotlib as mpl
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib import patheffects
from matplotlib.collections import PatchCollection
from matplotlib.colors import Normalize
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from beamcat._util import to_utc
from beamcat.analyses import timeseries
from beamcat.analyses.roi import Rect
from beamcat.analyses.timeline import timeline
from beamcat.errors import OptionError
from beamcat.figures import save_frames
from beamcat.figures._common import (
    _OUTLINE,
    ROI_COLOURS,
    _add_rectangle,
    _check_image,
    _colour,
    _contrast_colour,
    _figure,
    _holoviews,
    _label,
    _limits,
    _pixel_size,
    scale_bar,
)

__all__ = [
    "ROI_COLOURS",
    "difference_frame",
    "difference_hv",
    "double_plot",
    "double_plot_hv",
    "grid_heatmap",
    "grid_heatmap_hv",
    "roi_image",
    "roi_image_hv",
    "save_difference_frames",
    "save_grid_frames",
    "scale_bar",
]

_TIME_UNITS = {"s": 1.0, "min": 60.0, "h": 3600.0}
TimeAxis = Literal["s", "min", "h", "absolute"]


# --------------------------------------------------------------------------- helpers


def _show_image(ax, image: xr.DataArray, **kwargs):
    """Grey image, pixel centres at integer (x, y), rows downwards, no axes."""
    values = np.asarray(image.values, dtype=np.float32)
    vmin, vmax = _limits(values)
    shown = ax.imshow(values, cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest", **kwargs)
    ax.set_axis_off()
    return shown


def _elapsed(data: xr.DataArray, origin) -> xr.DataArray:
    """`data` along ``time`` with an ``elapsed`` coordinate in s from `origin` (default: first)."""
    if "time" not in data.coords:
        raise OptionError(f"{data.name!r}: no 'time' coordinate to put on a time axis")
    (aligned,) = timeline(data, names=["data"], origin=origin).values()
    return aligned


def _time_text(seconds: float, unit: str) -> str:
    value = seconds / _TIME_UNITS[unit]
    return f"{value:.0f} {unit}" if unit == "s" else f"{value:.1f} {unit}"


def _check_time_axis(time_axis: str, allowed=(*_TIME_UNITS, "absolute")) -> None:
    if time_axis not in allowed:
        raise OptionError(f"time_axis={time_axis!r}: expected one of {', '.join(allowed)}")


def _rois(rois) -> dict[str, Rect | np.ndarray]:
    """ROIs by name: rectangles as `Rect`, masks as bool arrays."""
    if not isinstance(rois, Mapping):
        rois = {f"ROI {i + 1}": roi for i, roi in enumerate(rois)}
    out = {}
    for name, roi in rois.items():
        if isinstance(roi, np.ndarray | xr.DataArray) and np.asarray(roi).dtype == bool:
            out[str(name)] = np.asarray(roi)
        else:
            out[str(name)] = Rect(*roi)
    return out


# --------------------------------------------------------------------------- ROI image


def roi_image(
    reference: xr.DataArray,
    rois,
    *,
    colours: Sequence[str] | None = None,
    pixel_size: float | None = None,
    scale_bar_length: float | None = None,
    title: str | None = None,
    width: float = 6.0,
) -> Figure:
    """The reference image with coloured, labelled ROIs.

    Parameters
    ----------
    reference : DataArray (y, x)
        E.g. the mean of the first calibrated frames; shown in grey between its
        1st and 99th percentiles.
    rois : mapping name -> (x, y, w, h) / `Rect` / bool mask (y, x), or a sequence
        Rectangles are drawn on their pixel edges; masks as outlines.
    colours : sequence of str, optional
        One per ROI, cycled; default `ROI_COLOURS`.
    pixel_size : float, optional
        Metres per pixel for a scale bar (default ``reference.attrs["pixel_size"]``;
        no bar when unknown).
    scale_bar_length : float, optional
        Bar length in metres; default a round length near 1/5 of the width.
    title : str, optional
    width : float
        Figure width in inches (height follows the image's aspect).

    Returns
    -------
    Figure
        One axes (label ``"image"``); each rectangle is a `Rectangle` patch with
        gid ``"roi:<name>"``.

    Examples
    --------
    >>> fig = roi_image(reference, {"bed": (134, 75, 52, 30)})  # doctest: +SKIP
    """
    _check_image(reference, "reference")
    ny, nx = reference.shape
    fig = _figure((width, width * ny / nx + (0.3 if title else 0.0)), layout="constrained")
    ax = fig.add_subplot(label="image")
    _show_image(ax, reference)
    for i, (name, roi) in enumerate(_rois(rois).items()):
        colour = _colour(colours, i)
        if isinstance(roi, Rect):
            patch = _add_rectangle(ax, roi, colour=colour, gid=f"roi:{name}")
            anchor = (patch.get_x(), patch.get_y() - 1.0)
        else:
            ax.contour(roi.astype(np.float32), levels=[0.5], colors=[colour], linewidths=1.5)
            rows, cols = np.nonzero(roi)
            anchor = (cols.min() - 0.5, rows.min() - 1.5)
        text = ax.annotate(
            name, anchor, color=colour, fontsize=8, fontweight="bold", va="bottom", ha="left"
        )
        text.set_path_effects([patheffects.withStroke(linewidth=2, foreground="white")])
    size = _pixel_size(reference, pixel_size)
    if size:
        scale_bar(
            ax,
            size,
            nx,
            length=scale_bar_length,
            colour=_contrast_colour(reference.values, "lower right"),
        )
    if title:
        ax.set_title(title)
    return fig


def roi_image_hv(reference: xr.DataArray, rois, *, colours: Sequence[str] | None = None):
    """Interactive twin of `roi_image`: HoloViews image with ROI outlines and labels.

    Returns
    -------
    holoviews.Overlay
        ``Image * Rectangles * Labels``; rectangles carry the ROI name as a value.
    """
    hv = _holoviews()

    _check_image(reference, "reference")
    image = _hv_image(reference)
    rects, labels, palette = [], [], []
    for i, (name, roi) in enumerate(_rois(rois).items()):
        if not isinstance(roi, Rect):
            rows, cols = np.nonzero(roi)
            roi = Rect(
                cols.min(), rows.min(), cols.max() + 1 - cols.min(), rows.max() + 1 - rows.min()
            )
        y0, y1, x0, x1 = roi.bounds()
        rects.append((x0 - 0.5, y0 - 0.5, x1 - 0.5, y1 - 0.5, name))
        labels.append((x0, y0 - 2, name))
        palette.append(_colour(colours, i))
    boxes = hv.Rectangles(rects, vdims="roi").opts(
        fill_alpha=0, line_width=2, line_color="roi", cmap=palette, tools=["hover"]
    )
    names = hv.Labels(labels, vdims="text").opts(text_color="white", text_font_size="9pt")
    return image * boxes * names


def _hv_image(image: xr.DataArray):
    hv = _holoviews()

    ny, nx = image.shape
    values = np.asarray(image.values, dtype=np.float32)
    element = hv.Image(
        (np.arange(nx), np.arange(ny), values), kdims=["x", "y"], vdims=[image.name or "value"]
    )
    return element.opts(
        cmap="gray", clim=_limits(values), invert_yaxis=True, data_aspect=1, responsive=True
    )


# --------------------------------------------------------------------------- double plot


def _run_series(runs) -> xr.DataArray:
    """One (roi, time) DataArray of all runs, sorted by time, with a ``run`` coordinate."""
    if isinstance(runs, xr.Dataset | xr.DataArray):
        runs = {"run": runs}
    elif not isinstance(runs, Mapping):
        runs = {f"run {i + 1}": r for i, r in enumerate(runs)}
    if not runs:
        raise OptionError("double_plot: no run given")
    parts = []
    for name, run in runs.items():
        if isinstance(run, xr.Dataset):
            var = run.attrs.get("signal", "mean")
            if var not in run.data_vars:
                raise OptionError(f"run {name!r}: no variable {var!r}; has {list(run.data_vars)}")
            run = run[var]
        if "roi" not in run.dims or "time" not in run.coords or run.ndim != 2:
            raise OptionError(
                f"run {name!r}: expected ROI means over (roi, time) with a time coordinate, "
                f"got dims {run.dims}"
            )
        (dim,) = run["time"].dims
        run = run.swap_dims({dim: "time"}) if dim != "time" else run
        run = run.reset_coords(drop=True).transpose("roi", "time")
        parts.append(run.assign_coords(run=("time", [str(name)] * run.sizes["time"])))
    series = xr.concat(parts, dim="time", join="outer", combine_attrs="drop_conflicts")
    return series.sortby("time").compute()


def _log_variables(log: xr.Dataset | xr.DataArray, species: Sequence[str] | None, what: str):
    """The numeric (time,) variables of a log, as a Dataset."""
    if isinstance(log, xr.DataArray):
        log = log.to_dataset(name=log.name or what)
    names = (
        list(species)
        if species is not None
        else [k for k, v in log.data_vars.items() if v.dims == ("time",) and v.dtype.kind in "fiu"]
    )
    unknown = [s for s in names if s not in log.data_vars]
    if unknown or not names:
        raise OptionError(f"{what}: no variable(s) {unknown or names}; has {list(log.data_vars)}")
    return log[names]


def _double_plot_data(
    runs, massspec, temperature, *, species, origin, normalise, smooth, smooth_temperature
) -> dict[str, xr.Dataset | xr.DataArray]:
    """Runs (smoothed, normalised), mass spec and temperature on one elapsed axis.

    The logs are cropped to the runs' time span, as in the original.
    """
    series = _run_series(runs)
    if smooth:
        series = timeseries.savgol(series, window=smooth[0], order=smooth[1])
    if normalise:
        series = timeseries.normalise(series, reference=0)
    sources = {"runs": series}
    if massspec is not None:
        sources["massspec"] = _log_variables(massspec, species, "massspec")
    if temperature is not None:
        temp = _log_variables(temperature, None, "temperature")
        sources["temperature"] = temp[[next(iter(temp.data_vars))]]
    aligned = timeline(sources, origin="runs" if origin is None else origin)
    start, stop = series["time"].values[[0, -1]]
    for name in ("massspec", "temperature"):
        if name in aligned:
            aligned[name] = aligned[name].sel(time=slice(start, stop)).compute()
    if smooth_temperature and "temperature" in aligned:
        temp = aligned["temperature"]
        var = next(iter(temp.data_vars))
        smoothed = timeseries.savgol(
            temp[var], window=smooth_temperature[0], order=smooth_temperature[1]
        )
        aligned["temperature"] = temp.assign({var: smoothed})
    return aligned


def _x(data: xr.Dataset | xr.DataArray, time_axis: str) -> np.ndarray:
    if time_axis == "absolute":
        return data["time"].values
    return data["elapsed"].values / _TIME_UNITS[time_axis]


def _x_label(aligned, time_axis: str) -> str:
    if time_axis == "absolute":
        return "Time (UTC)"
    return f"Time ({time_axis})"


def _event_x(when, aligned, time_axis: str, timezone: str):
    """The x position of an event time (naive = `timezone`) on the plot's time axis."""
    at = to_utc([when], timezone)[0]
    if time_axis == "absolute":
        return at
    runs = aligned["runs"]
    zero = runs["time"].values[0] - np.timedelta64(int(runs["elapsed"].values[0] * 1e9), "ns")
    return (at - zero) / np.timedelta64(1, "s") / _TIME_UNITS[time_axis]


def double_plot(
    runs,
    *,
    massspec: xr.Dataset | None = None,
    temperature: xr.Dataset | xr.DataArray | None = None,
    species: Sequence[str] | None = None,
    origin=None,
    time_axis: TimeAxis = "min",
    normalise: bool = True,
    smooth: tuple[int, int] | None = None,
    smooth_temperature: tuple[int, int] | None = None,
    events: Mapping[str, object] | None = None,
    timezone: str = "UTC",
    colours: Sequence[str] | None = None,
    ylabel: str | None = None,
    figsize: tuple[float, float] = (7.0, 6.0),
) -> Figure:
    """Mass spec and temperature on top, ROI transmission below, on one time axis.

    Parameters
    ----------
    runs : Dataset or DataArray (roi, time), or a mapping name -> one, or a sequence
        ROI means (`beamcat.analyses.roi.roi_means` of a calibrated run; a
        Dataset's ``attrs["signal"]``, i.e. ``mean``). Several runs are put on
        one axis as the original does (concatenated in time, normalised to the
        first frame of the earliest run); each ROI keeps its colour.
    massspec : Dataset (time,), optional
        Partial pressures, one variable per species (log y axis).
    temperature : Dataset or DataArray (time,), optional
        A temperature log (its first variable), on a twin axis, black dashed.
    species : sequence of str, optional
        Mass-spec variables to plot; default all numeric ones.
    origin : None, str or time
        Where elapsed time is 0: default the first frame of the runs; else as
        `beamcat.analyses.timeline.timeline` (e.g. the gas switch time).
    time_axis : {"s", "min", "h", "absolute"}
        Elapsed time in these units, or absolute UTC times.
    normalise : bool
        Divide each ROI by its first value (the original's default).
    smooth : (window, order), optional
        Savitzky-Golay smoothing of the ROI series (the original: (21, 3)).
    smooth_temperature : (window, order), optional
        Smoothing of the temperature (the original: (181, 2)).
    events : mapping label -> time, optional
        Vertical dashed lines (e.g. ``{"H2 on": "2024-12-13T14:10"}``); naive
        times are local times of `timezone`.
    timezone : str
        IANA zone of naive times in `events` and `origin`.
    colours : sequence of str, optional
        ROI colours, default `ROI_COLOURS`.
    ylabel : str, optional
        Label of the ROI axis.
    figsize : (width, height)
        Inches.

    Returns
    -------
    Figure
        Axes labelled ``"ms"`` (top; with a twin ``"temperature"``) and ``"n"``
        (ROI transmission), sharing x. Each ROI line has gid ``"roi:<name>"``
        (one line per run), each species ``"species:<name>"``.

    Raises
    ------
    OptionError
        Inputs of the wrong shape, unknown species, logs whose times do not
        overlap the runs, a smoothing window longer than the data.

    Examples
    --------
    >>> fig = double_plot(means, massspec=ms, temperature=temp, smooth=(21, 3))  # doctest: +SKIP
    >>> save_figure(fig, "double_plot", formats=("png", "pdf"))  # doctest: +SKIP
    """
    _check_time_axis(time_axis)
    aligned = _double_plot_data(
        runs,
        massspec,
        temperature,
        species=species,
        origin=origin,
        normalise=normalise,
        smooth=smooth,
        smooth_temperature=smooth_temperature,
    )
    series = aligned["runs"]
    top = "massspec" in aligned or "temperature" in aligned
    # no layout engine: the panels touch (hspace 0, as the original); save with a tight box
    fig = _figure(figsize)
    if top:
        ax_top, ax_n = fig.subplots(
            2, 1, sharex=True, gridspec_kw={"hspace": 0.0, "height_ratios": (1, 1.3)}
        )
        ax_top.set_label("ms")
        _plot_logs(ax_top, aligned, time_axis)
        ax_top.tick_params(labelbottom=False)
        axes = [ax_top, ax_n]
    else:
        ax_n = fig.add_subplot()
        axes = [ax_n]
    ax_n.set_label("n")
    for i, roi in enumerate(series["roi"].values):
        for j, run in enumerate(pd.unique(series["run"].values)):
            part = series.sel(roi=roi).isel(time=series["run"].values == run)
            ax_n.plot(
                _x(part, time_axis),
                part.values,
                color=_colour(colours, i),
                label=str(roi) if j == 0 else "_nolegend_",
                gid=f"roi:{roi}",
            )
    default = "Transmission (norm.)" if normalise else "Transmission"
    ax_n.set_ylabel(ylabel or default)
    ax_n.set_xlabel(_x_label(aligned, time_axis))
    ax_n.legend(ncols=min(3, series.sizes["roi"]), loc="best")
    if time_axis == "absolute":
        locator = AutoDateLocator()
        ax_n.xaxis.set_major_locator(locator)
        ax_n.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    else:
        ax_n.set_xlim(_x(series, time_axis)[[0, -1]])
    for label, when in (events or {}).items():
        x = _event_x(when, aligned, time_axis, timezone)
        for ax in axes:
            ax.axvline(x, color="red", linestyle="--", linewidth=1.0, gid=f"event:{label}")
        axes[0].annotate(
            label,
            (x, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(2, -2),
            textcoords="offset points",
            va="top",
            color="red",
            fontsize=8,
        )
    for letter, ax in zip("ab", axes, strict=False):  # panel letters where the original puts them
        ax.annotate(
            letter,
            (0.98, 0.03),
            xycoords="axes fraction",
            ha="right",
            fontweight="bold",
            fontsize=11,
        )
    return fig


def _plot_logs(ax, aligned: dict, time_axis: str) -> None:
    """Mass spec (log y) and temperature (twin axis when both) on `ax`."""
    handles = []
    if "massspec" in aligned:
        ms = aligned["massspec"]
        colours = mpl.rcParams["axes.prop_cycle"].by_key()["color"]
        for i, (name, values) in enumerate(ms.data_vars.items()):
            (line,) = ax.plot(
                _x(ms, time_axis),
                values.values,
                color=colours[i % len(colours)],
                label=str(name),
                gid=f"species:{name}",
            )
            handles.append(line)
        ax.set_yscale("log")
        first = next(iter(ms.data_vars.values()))
        units = first.attrs.get("units")
        ax.set_ylabel(f"Partial pressure ({units})" if units else "Partial pressure (arb. u.)")
    if "temperature" in aligned:
        temp = aligned["temperature"]
        var = next(iter(temp.data_vars))
        tax = ax.twinx(label="temperature") if "massspec" in aligned else ax
        (line,) = tax.plot(
            _x(temp, time_axis),
            temp[var].values,
            color="black",
            linestyle="--",
            label="Temperature",
            gid="temperature",
        )
        handles.append(line)
        tax.set_ylabel(_label(temp[var].assign_attrs(long_name="temperature"), "temperature"))
    # above the panel, out of the curves' way
    ax.legend(
        handles=handles,
        ncols=min(6, len(handles)),
        loc="lower center",
        bbox_to_anchor=(0.5, 1.0),
        handlelength=1.5,
        columnspacing=1.0,
    )


def double_plot_hv(
    runs,
    *,
    massspec: xr.Dataset | None = None,
    temperature: xr.Dataset | xr.DataArray | None = None,
    species: Sequence[str] | None = None,
    origin=None,
    time_axis: Literal["s", "min", "h"] = "min",
    normalise: bool = True,
    smooth: tuple[int, int] | None = None,
    smooth_temperature: tuple[int, int] | None = None,
    colours: Sequence[str] | None = None,
):
    """Interactive twin of `double_plot` (elapsed time axis, shared between the panels).

    Returns
    -------
    holoviews.Layout
        One column: the logs overlay (mass spec log y, temperature on its own
        y axis) above the ROI overlay; or the ROI overlay alone. Curves are
        labelled by ROI (runs of one ROI share its colour) and species.
    """
    hv = _holoviews()

    _check_time_axis(time_axis, tuple(_TIME_UNITS))
    aligned = _double_plot_data(
        runs,
        massspec,
        temperature,
        species=species,
        origin=origin,
        normalise=normalise,
        smooth=smooth,
        smooth_temperature=smooth_temperature,
    )
    time = hv.Dimension("elapsed", label="Time", unit=time_axis)
    series = aligned["runs"]
    value = hv.Dimension(
        "transmission", label="Transmission (norm.)" if normalise else "Transmission"
    )
    curves = []
    for i, roi in enumerate(series["roi"].values):
        for run in pd.unique(series["run"].values):
            part = series.sel(roi=roi).isel(time=series["run"].values == run)
            curves.append(
                hv.Curve((_x(part, time_axis), part.values), time, value, label=str(roi)).opts(
                    color=_colour(colours, i)
                )
            )
    bottom = hv.Overlay(curves).opts(responsive=True, min_height=300, legend_position="right")
    panels = []
    if "massspec" in aligned:
        ms = aligned["massspec"]
        pressure = hv.Dimension("pressure", label="Partial pressure")
        panels += [
            hv.Curve((_x(ms, time_axis), v.values), time, pressure, label=str(k)).opts(logy=True)
            for k, v in ms.data_vars.items()
        ]
    if "temperature" in aligned:
        temp = aligned["temperature"]
        var = next(iter(temp.data_vars))
        degrees = hv.Dimension("temperature", label="Temperature", unit="°C")
        panels.append(
            hv.Curve(
                (_x(temp, time_axis), temp[var].values), time, degrees, label="Temperature"
            ).opts(color="black", line_dash="dashed")
        )
    if not panels:
        return hv.Layout([bottom]).cols(1)
    top = hv.Overlay(panels).opts(
        multi_y="massspec" in aligned and "temperature" in aligned,
        responsive=True,
        min_height=250,
        legend_position="right",
    )
    return (top + bottom).cols(1)


# --------------------------------------------------------------------------- grid heat maps


def _cells(values: xr.DataArray) -> list[tuple[int, int, int, int]]:
    """Cell rectangles (x, y, w, h), row-major, from `grid_means` coordinates."""
    needed = ("roi_x", "roi_w", "roi_y", "roi_h")
    missing = [c for c in needed if c not in values.coords]
    if missing:
        raise OptionError(
            f"grid values: no {missing} coordinates; pass grid_means output (row, col, ...)"
        )
    xs, ws = values["roi_x"].values, values["roi_w"].values
    ys, hs = values["roi_y"].values, values["roi_h"].values
    return [
        (int(xs[c]), int(ys[r]), int(ws[c]), int(hs[r]))
        for r in range(values.sizes["row"])
        for c in range(values.sizes["col"])
    ]


class _GridFigure:
    """A heat-map figure whose cell colours and timestamp are updated in place."""

    def __init__(self, reference, cells, *, norm, cmap, alpha, label, pixel_size, width):
        ny, nx = reference.shape
        self.fig = _figure((width, width * ny / nx * 0.85), layout="constrained")
        ax = self.fig.add_subplot(label="image")
        _show_image(ax, reference)
        self.cells = PatchCollection(
            [Rectangle((x - 0.5, y - 0.5), w, h) for x, y, w, h in cells],
            cmap=cmap,
            norm=norm,
            alpha=alpha,
            linewidth=0,
            gid="cells",
        )
        ax.add_collection(self.cells)
        colourbar = self.fig.colorbar(self.cells, ax=ax, shrink=0.9)
        colourbar.set_label(label)
        self.stamp = ax.annotate(
            "",
            (0.03, 0.97),
            xycoords="axes fraction",
            va="top",
            color="white",
            fontsize=12,
            fontweight="bold",
            path_effects=_OUTLINE,
        )
        if pixel_size:
            colour = _contrast_colour(reference.values, "lower left")
            scale_bar(ax, pixel_size, nx, location="lower left", colour=colour)

    def show(self, cell_values: np.ndarray, stamp: str) -> None:
        self.cells.set_array(np.asarray(cell_values, dtype=np.float64).ravel())
        self.stamp.set_text(stamp)


def _grid_setup(values, reference, *, cmap, vmin, vmax, alpha, pixel_size, width):
    _check_image(reference, "reference")
    if values.dims[:2] != ("row", "col"):
        raise OptionError(f"grid values: expected dims (row, col, ...), got {values.dims}")
    data = np.asarray(values.values, dtype=np.float64)
    lo, hi = _limits(data)
    norm = Normalize(vmin=lo if vmin is None else vmin, vmax=hi if vmax is None else vmax)
    return _GridFigure(
        reference,
        _cells(values),
        norm=norm,
        cmap=cmap,
        alpha=alpha,
        label=_label(values, "value"),
        pixel_size=_pixel_size(reference, pixel_size),
        width=width,
    ), data


def grid_heatmap(
    values: xr.DataArray,
    reference: xr.DataArray,
    *,
    timestamp: str | None = None,
    cmap: str = "inferno",
    vmin: float | None = None,
    vmax: float | None = None,
    alpha: float = 0.7,
    pixel_size: float | None = None,
    width: float = 6.0,
) -> Figure:
    """One grid heat map: cell values as coloured rectangles over the reference image.

    Parameters
    ----------
    values : DataArray (row, col)
        One time step of `beamcat.analyses.roi.grid_means` output (or a
        transform of it: reduced transmission, Beer-Lambert concentration),
        with its cell coordinates ``roi_x, roi_w`` (col) and ``roi_y, roi_h`` (row).
        The colour bar is labelled from ``long_name`` and ``units``.
    reference : DataArray (y, x)
        Image under the grid.
    timestamp : str, optional
        Text in the top-left corner, e.g. ``"12.4 min"``.
    cmap : str
        Matplotlib colour map (the original's: inferno).
    vmin, vmax : float, optional
        Colour limits; default the 1st and 99th percentiles of `values`.
    alpha : float
        Opacity of the cells (the original's 0.7).
    pixel_size : float, optional
        Metres per pixel for a scale bar (default ``reference.attrs["pixel_size"]``).
    width : float
        Figure width in inches.

    Returns
    -------
    Figure
        The cells are one `PatchCollection` (gid ``"cells"``), row-major, whose
        array holds the values.
    """
    grid, data = _grid_setup(
        values,
        reference,
        cmap=cmap,
        vmin=vmin,
        vmax=vmax,
        alpha=alpha,
        pixel_size=pixel_size,
        width=width,
    )
    grid.show(data, timestamp or "")
    return grid.fig


def save_grid_frames(
    values: xr.DataArray,
    reference: xr.DataArray,
    folder: str | os.PathLike,
    *,
    name: str = "grid",
    origin=None,
    time_unit: Literal["s", "min", "h"] = "min",
    formats: Sequence[str] = ("png",),
    dpi: float = 150,
    animation: Literal["gif", "mp4"] | None = "gif",
    fps: float = 4.0,
    progress: bool = False,
    cmap: str = "inferno",
    vmin: float | None = None,
    vmax: float | None = None,
    alpha: float = 0.7,
    pixel_size: float | None = None,
    width: float = 6.0,
) -> dict[str, list[Path]]:
    """Grid heat maps of every time step: an image sequence and an animation.

    Parameters
    ----------
    values : DataArray (row, col, time)
        Cell values with a ``time`` coordinate (see `grid_heatmap`); computed
        here if lazy (a grid is small).
    reference : DataArray (y, x)
    folder : path
        Frames go to ``folder/name/name_NNNN.<fmt>``, the animation to ``folder/name.gif``.
    origin : None, str or time
        Zero of the elapsed time stamped on each frame (default the first frame).
    time_unit : {"s", "min", "h"}
    formats, dpi, animation, fps, progress
        See `beamcat.figures.save_frames`.
    cmap, vmin, vmax, alpha, pixel_size, width
        See `grid_heatmap`; the colour limits are the same in every frame.

    Returns
    -------
    dict
        ``{"frames": [...], "animation": [...]}``.
    """
    _check_time_axis(time_unit, tuple(_TIME_UNITS))
    values = _elapsed(values, origin).transpose("row", "col", "time").compute()
    grid, data = _grid_setup(
        values,
        reference,
        cmap=cmap,
        vmin=vmin,
        vmax=vmax,
        alpha=alpha,
        pixel_size=pixel_size,
        width=width,
    )
    elapsed = values["elapsed"].values

    def update(i: int) -> None:
        grid.show(data[..., i], _time_text(elapsed[i], time_unit))

    return save_frames(
        grid.fig,
        update,
        values.sizes["time"],
        folder,
        name=name,
        formats=formats,
        dpi=dpi,
        animation=animation,
        fps=fps,
        progress=progress,
    )


def grid_heatmap_hv(
    values: xr.DataArray,
    reference: xr.DataArray,
    *,
    origin=None,
    time_unit: Literal["s", "min", "h"] = "min",
    cmap: str = "inferno",
    vmin: float | None = None,
    vmax: float | None = None,
    alpha: float = 0.7,
):
    """Interactive twin of `save_grid_frames`: a heat map over the image with a time slider.

    Returns
    -------
    holoviews.HoloMap
        Keyed by elapsed time in `time_unit`; each frame is ``Image * Rectangles``
        with the cell value as the rectangles' colour.
    """
    hv = _holoviews()

    _check_time_axis(time_unit, tuple(_TIME_UNITS))
    _check_image(reference, "reference")
    values = _elapsed(values, origin).transpose("row", "col", "time").compute()
    data = np.asarray(values.values, dtype=np.float64)
    lo, hi = _limits(data)
    clim = (lo if vmin is None else vmin, hi if vmax is None else vmax)
    image = _hv_image(reference)
    corners = np.array(
        [(x - 0.5, y - 0.5, x + w - 0.5, y + h - 0.5) for x, y, w, h in _cells(values)]
    )
    label = _label(values, "value")
    frames = {}
    for i, seconds in enumerate(values["elapsed"].values):
        cells = hv.Rectangles(
            np.column_stack([corners, data[..., i].ravel()]),
            vdims=hv.Dimension("value", label=label),
        ).opts(
            color="value",
            cmap=cmap,
            clim=clim,
            fill_alpha=alpha,
            line_alpha=0,
            colorbar=True,
            tools=["hover"],
        )
        frames[round(seconds / _TIME_UNITS[time_unit], 3)] = image * cells
    return hv.HoloMap(frames, kdims=hv.Dimension("elapsed", label="Time", unit=time_unit))


# --------------------------------------------------------------------------- difference frames


class _DifferenceFigure:
    """A full-bleed grey image with a timestamp and a scale bar, updated in place."""

    def __init__(self, shape, *, pixel_size, scale_bar_length, location, width, first):
        ny, nx = shape
        self.fig = _figure((width, width * ny / nx))
        ax = self.fig.add_axes((0.0, 0.0, 1.0, 1.0), label="image")
        self.image = ax.imshow(first, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_axis_off()
        self.stamp = ax.annotate(
            "",
            (0.03, 0.97),
            xycoords="axes fraction",
            va="top",
            color="white",
            fontsize=14,
            fontweight="bold",
            path_effects=_OUTLINE,
        )
        if pixel_size:
            scale_bar(
                ax,
                pixel_size,
                nx,
                length=scale_bar_length,
                location=location,
                colour=_contrast_colour(first, location),
            )

    def show(self, frame: np.ndarray, stamp: str) -> None:
        self.image.set_data(frame)
        self.stamp.set_text(stamp)


def difference_frame(
    display: xr.DataArray,
    *,
    timestamp: str | None = None,
    pixel_size: float | None = None,
    scale_bar_length: float | None = None,
    location: str = "lower right",
    width: float = 5.0,
) -> Figure:
    """One difference frame: grey image filling the figure, timestamp, scale bar.

    Parameters
    ----------
    display : DataArray (y, x)
        The ``display`` variable of `beamcat.analyses.calibration.difference`
        (stretched to 0-1) for one frame.
    timestamp : str, optional
        Text in the top-left corner.
    pixel_size : float, optional
        Metres per pixel (default ``display.attrs["pixel_size"]``); no bar when unknown.
    scale_bar_length : float, optional
        Metres; default a round length near 1/5 of the width.
    location : str
        Matplotlib location of the bar, e.g. "lower right" (its colour, black or
        white, follows the brightness of that corner, as in the original).
    width : float
        Figure width in inches.

    Returns
    -------
    Figure
        The scale bar is the artist with gid ``"scale_bar"``.
    """
    _check_image(display, "display")
    frame = np.asarray(display.values, dtype=np.float32)
    fig = _DifferenceFigure(
        frame.shape,
        pixel_size=_pixel_size(display, pixel_size),
        scale_bar_length=scale_bar_length,
        location=location,
        width=width,
        first=frame,
    )
    fig.show(frame, timestamp or "")
    return fig.fig


def save_difference_frames(
    display: xr.DataArray,
    folder: str | os.PathLike,
    *,
    name: str = "difference",
    origin=None,
    time_unit: Literal["s", "min", "h"] = "min",
    pixel_size: float | None = None,
    scale_bar_length: float | None = None,
    location: str = "lower right",
    width: float = 5.0,
    formats: Sequence[str] = ("png",),
    dpi: float = 150,
    animation: Literal["gif", "mp4"] | None = "gif",
    fps: float = 4.0,
    progress: bool = False,
) -> dict[str, list[Path]]:
    """Difference frames of every time step: an image sequence and an animation.

    Lazy input is computed one dask chunk of frames at a time, so memory stays
    bounded by a chunk however long the run (the GIF writer keeps its own
    reduced frames, see `beamcat.figures.save_frames`).

    Parameters
    ----------
    display : DataArray (time, y, x)
        ``difference(...).display``, with a ``time`` coordinate.
    folder, name, formats, dpi, animation, fps, progress
        See `beamcat.figures.save_frames`.
    origin, time_unit
        Zero and unit of the elapsed time stamped on each frame.
    pixel_size, scale_bar_length, location, width
        See `difference_frame`.

    Returns
    -------
    dict
        ``{"frames": [...], "animation": [...]}``.
    """
    _check_time_axis(time_unit, tuple(_TIME_UNITS))
    _check_image(display, "display", dims=("time", "y", "x"))
    elapsed = _elapsed(display["time"].reset_coords(drop=True), origin)["elapsed"].values
    chunks = display.chunks[0] if display.chunks else (display.sizes["time"],)
    bounds = np.cumsum((0, *chunks))
    cache = {"block": None, "start": -1}

    def frame(i: int) -> np.ndarray:
        block = np.searchsorted(bounds, i, side="right") - 1
        if cache["start"] != bounds[block]:  # next chunk of frames: compute it whole
            cache["block"] = np.asarray(
                display.isel(time=slice(bounds[block], bounds[block + 1])).values, np.float32
            )
            cache["start"] = bounds[block]
        return cache["block"][i - cache["start"]]

    fig = _DifferenceFigure(
        display.shape[1:],
        pixel_size=_pixel_size(display, pixel_size),
        scale_bar_length=scale_bar_length,
        location=location,
        width=width,
        first=frame(0),
    )

    def update(i: int) -> None:
        fig.show(frame(i), _time_text(elapsed[i], time_unit))

    return save_frames(
        fig.fig,
        update,
        display.sizes["time"],
        folder,
        name=name,
        formats=formats,
        dpi=dpi,
        animation=animation,
        fps=fps,
        progress=progress,
    )


def difference_hv(
    display: xr.DataArray, *, origin=None, time_unit: Literal["s", "min", "h"] = "min"
):
    """Interactive twin of `save_difference_frames`: the frames with a time slider.

    Frames are computed one at a time as the slider moves (a DynamicMap over a
    lazy `display`).

    Returns
    -------
    holoviews.DynamicMap
        Keyed by elapsed time in `time_unit`.
    """
    hv = _holoviews()

    _check_time_axis(time_unit, tuple(_TIME_UNITS))
    _check_image(display, "display", dims=("time", "y", "x"))
    elapsed = _elapsed(display["time"].reset_coords(drop=True), origin)["elapsed"].values
    keys = [round(s / _TIME_UNITS[time_unit], 3) for s in elapsed]
    ny, nx = display.shape[1:]

    def show(t):
        frame = np.asarray(display.isel(time=keys.index(t)).values, np.float32)
        return hv.Image((np.arange(nx), np.arange(ny), frame), kdims=["x", "y"]).opts(
            cmap="gray", clim=(0, 1), invert_yaxis=True, data_aspect=1, responsive=True
        )

    dimension = hv.Dimension("elapsed", label="Time", unit=time_unit, values=keys)
    return hv.DynamicMap(show, kdims=dimension)
