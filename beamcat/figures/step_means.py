"""ROI means per motor step with error bars (the spread of the frames within a step).

`step_means_figure` (matplotlib) and its HoloViews twin `step_means_hv`, for
`beamcat.analyses.steps.step_means` tables; one colour per ROI.
"""

from __future__ import annotations

from collections.abc import Sequence

import xarray as xr
from matplotlib.figure import Figure

from beamcat.errors import OptionError
from beamcat.figures._common import (
    _colour,
    _figure,
    _holoviews,
    _styled,
)

__all__ = ["step_means_figure", "step_means_hv"]

#: step-table coordinates that are not a motor (the frame's own, when each frame is a step)
_NOT_MOTORS = ("step", "roi", "frame", "event_number", "time")


def _step_table(table: xr.Dataset, motor: str | None) -> tuple[xr.Dataset, str, str]:
    """The computed table, its x coordinate (a motor, else the frame/step) and x label."""
    if not isinstance(table, xr.Dataset) or not {"mean", "std"} <= set(table.data_vars):
        raise OptionError("step means: expected a Dataset with mean and std (step_means output)")
    if table["mean"].dims != ("roi", "step"):
        raise OptionError(f"step means: expected mean over (roi, step), got {table['mean'].dims}")
    along = [str(c) for c in table.coords if table[c].dims == ("step",)]
    if motor is not None and motor not in along:
        raise OptionError(f"motor={motor!r}: not a coordinate along step; coordinates: {along}")
    if motor is None:
        motors = [
            c for c in along if c not in _NOT_MOTORS and table[c].dtype.kind in "fiu"
        ]  # the reader's motor positions
        motor = motors[0] if motors else None
    if motor is not None:
        units = table[motor].attrs.get("units")
        return table.compute(), motor, f"{motor} ({units})" if units else motor
    # no motor: every frame is its own step (step_means), x is the frame number
    x = "frame" if "frame" in along else "step"
    return table.compute(), x, "Frame" if x == "frame" else "Scan point"


def _mean_label(table: xr.Dataset) -> str:
    units = table["mean"].attrs.get("units")
    return f"ROI mean ({units})" if units else "ROI mean"


@_styled
def step_means_figure(
    table: xr.Dataset,
    *,
    motor: str | None = None,
    colours: Sequence[str] | None = None,
    ylabel: str | None = None,
    figsize: tuple[float, float] = (5.0, 3.4),
) -> Figure:
    """ROI means against the motor position, with the spread within each step as error bars.

    Parameters
    ----------
    table : Dataset (roi, step)
        `beamcat.analyses.steps.step_means` (or ``ds.roi.step_means``) output:
        ``mean`` and ``std`` over ``(roi, step)`` and the motor positions as
        coordinates along ``step``; computed here if lazy.
    motor : str, optional
        The x coordinate; default the first motor coordinate along ``step``. With
        no motor (each frame its own step) x is the frame number.
    colours : sequence of str, optional
        One per ROI, cycled; default `beamcat.figures.radiography.ROI_COLOURS`.
    ylabel : str, optional
        Default ``"ROI mean (<units>)"``.
    figsize : (width, height)
        Inches.

    Returns
    -------
    Figure
        Axes ``"steps"``; each ROI an ``errorbar`` container whose data line
        has gid ``"roi:<name>"`` (x the positions, y the means; the bars are
        ``mean ± std``), labelled in the legend. The x label is the motor's
        name and units.

    Raises
    ------
    OptionError
        Not a step table, or `motor` is not a coordinate along ``step``.

    Examples
    --------
    >>> table = ds.roi.step_means({"ring": (600, 300, 300, 200)})  # doctest: +SKIP
    >>> fig = step_means_figure(table)  # doctest: +SKIP
    """
    table, x, xlabel = _step_table(table, motor)
    fig = _figure(figsize, layout="constrained")
    ax = fig.add_subplot(label="steps")
    positions = table[x].values
    for i, roi in enumerate(map(str, table["roi"].values)):
        row = table.sel(roi=roi)
        bars = ax.errorbar(
            positions,
            row["mean"].values,
            yerr=row["std"].values,
            fmt="o-",
            markersize=4,
            capsize=3,
            color=_colour(colours, i),
            label=roi,
        )
        bars.lines[0].set_gid(f"roi:{roi}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel or _mean_label(table))
    ax.legend(loc="best", ncols=min(3, table.sizes["roi"]))
    return fig


def step_means_hv(
    table: xr.Dataset, *, motor: str | None = None, colours: Sequence[str] | None = None
):
    """Interactive twin of `step_means_figure`.

    Returns
    -------
    holoviews.Overlay
        Per ROI ``ErrorBars * Curve * Scatter`` in its colour, labelled by ROI.
    """
    hv = _holoviews()

    table, x, xlabel = _step_table(table, motor)
    xdim = hv.Dimension(x, label=xlabel)
    ydim = hv.Dimension("mean", label=_mean_label(table))
    plots = []
    for i, roi in enumerate(map(str, table["roi"].values)):
        row = table.sel(roi=roi)
        data = (table[x].values, row["mean"].values, row["std"].values)
        colour = _colour(colours, i)
        plots += [
            hv.ErrorBars(data, xdim, [ydim, "std"]).opts(color=colour),
            hv.Curve(data[:2], xdim, ydim, label=roi).opts(color=colour),
            hv.Scatter(data[:2], xdim, ydim).opts(color=colour, size=6, tools=["hover"]),
        ]
    return hv.Overlay(plots).opts(responsive=True, min_height=250, legend_position="right")
