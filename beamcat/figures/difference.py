"""Radiography difference frames: stretched difference images with elapsed time and a scale bar.

`difference_frame` (one frame), `save_difference_frames` (an image sequence and
an animation, one dask chunk of frames computed at a time) and the HoloViews
twin `difference_hv`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from beamcat.figures._common import (
    _TIME_UNITS,
    _check_image,
    _check_time_axis,
    _contrast_colour,
    _corner_text,
    _elapsed,
    _figure,
    _holoviews,
    _pixel_size,
    _time_text,
    scale_bar,
)
from beamcat.figures.saving import save_frames

__all__ = ["difference_frame", "difference_hv", "save_difference_frames"]


class _DifferenceFigure:
    """A full-bleed grey image with a timestamp and a scale bar, updated in place."""

    def __init__(self, shape, *, pixel_size, scale_bar_length, location, width, first):
        ny, nx = shape
        self.fig = _figure((width, width * ny / nx))
        ax = self.fig.add_axes((0.0, 0.0, 1.0, 1.0), label="image")
        self.image = ax.imshow(first, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_axis_off()
        self.stamp = _corner_text(ax, "", fontsize=14)
        #: what changes from frame to frame, and what lies on it (for blitting)
        self.animated = [self.image, self.stamp]
        if pixel_size:
            bar = scale_bar(
                ax,
                pixel_size,
                nx,
                length=scale_bar_length,
                location=location,
                colour=_contrast_colour(first, location),
            )
            self.animated.append(bar)

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
        The ``display`` variable of `beamcat.analyses.difference.difference`
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
    display = _check_image(display, "display")
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
    display = _check_image(display, "display", dims=("time", "y", "x"))
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
        animated=fig.animated,
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
    display = _check_image(display, "display", dims=("time", "y", "x"))
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
