"""Radiography grid heat maps: cell values over the reference image, one frame per time step.

`grid_heatmap` (one frame), `save_grid_frames` (an image sequence and an
animation, drawn by updating one figure and blitting only what changes, see
`beamcat.figures.saving.save_frames`) and the HoloViews twin `grid_heatmap_hv`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import xarray as xr
from matplotlib.collections import PatchCollection
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from beamcat.analyses._frames import pick
from beamcat.errors import OptionError
from beamcat.figures._common import (
    _TIME_UNITS,
    _check_image,
    _check_time_axis,
    _contrast_colour,
    _corner_text,
    _elapsed,
    _figure,
    _holoviews,
    _hv_image,
    _label,
    _limits,
    _pixel_size,
    _show_image,
    _time_text,
    scale_bar,
)
from beamcat.figures.saving import save_frames

__all__ = ["grid_heatmap", "grid_heatmap_hv", "save_grid_frames"]


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
        self.stamp = _corner_text(ax, "", fontsize=12)
        #: what changes from frame to frame, and what lies on it (for blitting)
        self.animated = [self.cells, self.stamp]
        if pixel_size:
            colour = _contrast_colour(reference.values, "lower left")
            bar = scale_bar(ax, pixel_size, nx, location="lower left", colour=colour)
            self.animated.append(bar)  # above the cells where they meet

    def show(self, cell_values: np.ndarray, stamp: str) -> None:
        self.cells.set_array(np.asarray(cell_values, dtype=np.float64).ravel())
        self.stamp.set_text(stamp)


def _grid_values(values: xr.DataArray | xr.Dataset) -> xr.DataArray:
    """Grid means (a DataArray, or the Dataset `roi.grid` returns) over ``(row, col, ...)``."""
    values = pick(values, default="mean", what="grid means")
    if values.dims[:2] != ("row", "col"):
        raise OptionError(f"grid values: expected dims (row, col, ...), got {values.dims}")
    return values


def _grid_setup(values, reference, *, cmap, vmin, vmax, alpha, pixel_size, width):
    reference = _check_image(reference, "reference")
    values = _grid_values(values)
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
    values = _elapsed(_grid_values(values), origin).transpose("row", "col", "time").compute()
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
        animated=grid.animated,
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
    reference = _check_image(reference, "reference")
    values = _elapsed(_grid_values(values), origin).transpose("row", "col", "time").compute()
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
