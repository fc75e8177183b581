"""The radiography double plot: mass spec and temperature above ROI transmission.

`double_plot` (matplotlib) and its HoloViews twin `double_plot_hv`: the logs on
top (mass spec on a log axis, temperature dashed on a twin axis), the ROI
transmission of one or several runs below, on one shared time axis (elapsed
from an origin, or absolute). Panel letters sit in the panels' top-left corners
outside the data area, on a white box, clear of the curves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import matplotlib as mpl
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

from beamcat._util import to_utc
from beamcat.analyses import timeseries
from beamcat.analyses._frames import pick
from beamcat.analyses.timeline import timeline
from beamcat.errors import OptionError
from beamcat.figures._common import (
    _TIME_UNITS,
    TimeAxis,
    _check_time_axis,
    _colour,
    _figure,
    _holoviews,
    _label,
)

__all__ = ["double_plot", "double_plot_hv"]


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
        run = pick(run, default="mean", what=f"run {name!r}'s ROI means")
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
        (one line per run), each species ``"species:<name>"``; the panel letters are
        texts with gid ``"panel:a"``, ``"panel:b"``.

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
    for letter, ax in zip("ab", axes, strict=False):
        # in the figure's left margin at the top of each panel: outside the data area, so
        # never on a curve (the original's sat on the data in the panels' lower right)
        ax.annotate(
            letter,
            (0.01, 1.0),
            xycoords=("figure fraction", "axes fraction"),
            ha="left",
            va="top",
            fontweight="bold",
            fontsize=11,
            gid=f"panel:{letter}",
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
