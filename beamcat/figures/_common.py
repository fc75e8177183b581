"""Helpers shared by the figure modules: style, colour limits, scale bar, ROI outlines, HoloViews.

Private to `beamcat.figures`; the public names (`ROI_COLOURS`, `scale_bar`) are
re-exported by the figure modules that use them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

import matplotlib as mpl
import numpy as np
import xarray as xr
from matplotlib import patheffects
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.patches import Rectangle
from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

from beamcat.analyses._frames import pick
from beamcat.analyses.timeline import timeline
from beamcat.errors import OptionError
from beamcat.rois import Rect

#: the original's ROI colours (config DEFAULT_COLOURS) without white, which vanishes on paper
ROI_COLOURS = ("black", "blue", "green", "magenta", "orange", "red", "gold", "navy", "grey")
#: compact, print-sized defaults (a 7 in wide figure reads at journal size)
_STYLE = {
    "font.size": 9,
    "axes.labelsize": 10,
    "axes.linewidth": 1.0,
    "lines.linewidth": 1.4,
    "xtick.direction": "in",
    "ytick.direction": "in",
    "xtick.top": True,
    "ytick.right": True,
    "legend.frameon": False,
    "legend.fontsize": 8,
    "savefig.facecolor": "white",
}
_OUTLINE = [patheffects.withStroke(linewidth=2.5, foreground="black")]
#: elapsed-time units of the time axes, in s
_TIME_UNITS = {"s": 1.0, "min": 60.0, "h": 3600.0}
TimeAxis = Literal["s", "min", "h", "absolute"]
_PRETTY_UNITS = {"mmol/cm3": "mmol cm$^{-3}$", "degC": "°C", "1": ""}


def _styled(make: Callable[..., Figure]) -> Callable[..., Figure]:
    """Make a figure function draw under `_STYLE` (axes read rcParams when they are made)."""

    @functools.wraps(make)
    def styled(*args, **kwargs) -> Figure:
        with mpl.rc_context(_STYLE):
            return make(*args, **kwargs)

    return styled


def _figure(figsize: tuple[float, float], **kwargs) -> Figure:
    with mpl.rc_context(_STYLE):
        return Figure(figsize=figsize, **kwargs)


def _label(data: xr.DataArray, default: str) -> str:
    """Axis label ``"long_name (units)"`` from CF attrs."""
    name = data.attrs.get("long_name") or default
    units = _PRETTY_UNITS.get(data.attrs.get("units", ""), data.attrs.get("units", ""))
    return f"{name[:1].upper()}{name[1:]} ({units})" if units else f"{name[:1].upper()}{name[1:]}"


def _check_image(image: xr.DataArray | xr.Dataset, name: str, dims=("y", "x")) -> xr.DataArray:
    """`image` (a DataArray, or a Dataset's signal, as the accessors return) with `dims`."""
    if isinstance(image, xr.Dataset):
        image = pick(image, what=name)
    if not isinstance(image, xr.DataArray) or tuple(image.dims) != dims:
        got = getattr(image, "dims", type(image).__name__)
        raise OptionError(f"{name}: expected a DataArray with dims {dims}, got {got}")
    return image


def _limits(values: np.ndarray, low: float = 1.0, high: float = 99.0) -> tuple[float, float]:
    """Robust display limits: the low/high percentiles of the finite values."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(finite, [low, high])
    return (float(lo), float(hi)) if hi > lo else (float(lo) - 0.5, float(lo) + 0.5)


def _nice_length(longest: float) -> float:
    """The largest 1, 2 or 5 x 10^k not above `longest` (> 0)."""
    exponent = np.floor(np.log10(longest))
    for mantissa in (5.0, 2.0, 1.0):
        if mantissa * 10**exponent <= longest:
            return float(mantissa * 10**exponent)
    return float(10**exponent)  # pragma: no cover - mantissa 1 always fits


def _length_text(metres: float) -> str:
    if metres >= 1e-3:
        return f"{metres * 1e3:g} mm"
    return f"{metres * 1e6:g} µm"


def _contrast_colour(values: np.ndarray, location: str, limits: tuple | None = None) -> str:
    """White over a dark corner, black over a bright one (the original's local rule).

    `limits` are the colour scale's (default the 1-99 % percentiles); low is dark.
    """
    ny, nx = values.shape
    ph, pw = max(1, ny // 5), max(1, nx // 5)
    rows = slice(ny - ph, ny) if "lower" in location else slice(0, ph)
    cols = slice(nx - pw, nx) if "right" in location else slice(0, pw)
    lo, hi = _limits(values) if limits is None else limits
    patch = np.asarray(values[rows, cols], dtype=np.float64)
    level = (np.nanmedian(patch) - lo) / (hi - lo) if np.isfinite(patch).any() else 0.0
    return "white" if level < 0.5 else "black"


def scale_bar(
    ax,
    pixel_size: float,
    width_px: int,
    *,
    length: float | None = None,
    location: str = "lower right",
    colour: str = "white",
) -> AnchoredSizeBar:
    """Add a scale bar of `length` metres (default: a round length near 1/5 of the width).

    The bar is ``length / pixel_size`` data units (pixels) long; its artist has
    gid ``"scale_bar"`` and attribute ``length_m``.
    """
    if not np.isfinite(pixel_size) or pixel_size <= 0:
        raise OptionError(f"pixel_size={pixel_size!r}: expected a positive size in metres")
    length = _nice_length(0.2 * width_px * pixel_size) if length is None else float(length)
    bar = AnchoredSizeBar(
        ax.transData,
        length / pixel_size,
        _length_text(length),
        location,
        pad=0.5,
        borderpad=0.8,
        sep=4,
        frameon=False,
        size_vertical=max(1.0, 0.012 * width_px),
        color=colour,
        fontproperties=FontProperties(size=11, weight="bold"),
    )
    bar.set_gid("scale_bar")
    bar.length_m = length
    ax.add_artist(bar)
    return bar


def _pixel_size(image: xr.DataArray, pixel_size: float | None) -> float | None:
    return pixel_size if pixel_size is not None else image.attrs.get("pixel_size")


def _colour(colours: Sequence[str] | None, i: int) -> str:
    palette = colours or ROI_COLOURS
    return palette[i % len(palette)]


def _holoviews():
    """HoloViews with its bokeh plotting extension loaded (options need a backend)."""
    import holoviews as hv
    import holoviews.plotting.bokeh  # noqa: F401

    return hv


def _halo_colour(colour: str) -> str:
    """White behind a dark colour, black behind a light one (relative luminance at 0.5)."""
    r, g, b = mpl.colors.to_rgb(colour)
    return "white" if 0.2126 * r + 0.7152 * g + 0.0722 * b < 0.5 else "black"


def _halo(colour: str, linewidth: float) -> list:
    """Path effects: a contrasting halo under a line, so it shows on any background."""
    return [
        patheffects.Stroke(linewidth=linewidth + 2.0, foreground=_halo_colour(colour)),
        patheffects.Normal(),
    ]


def _add_rectangle(ax, roi: Rect, *, colour: str, gid: str, linewidth: float = 1.5) -> Rectangle:
    """Outline `roi` on its pixel edges (pixel centres at integer x, y), over a contrasting halo.

    A black ROI on a black bed gets a white halo, a gold one on a bright flat a black one.
    """
    y0, y1, x0, x1 = roi.bounds()
    patch = Rectangle(
        (x0 - 0.5, y0 - 0.5),
        x1 - x0,
        y1 - y0,
        fill=False,
        edgecolor=colour,
        linewidth=linewidth,
        gid=gid,
        path_effects=_halo(colour, linewidth),
    )
    ax.add_patch(patch)
    return patch


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


def _image_axes(fig: Figure):
    """One image axes (label ``"image"``) with detector-pixel axis labels."""
    ax = fig.add_subplot(label="image")
    ax.set_xlabel("x (pixel)")
    ax.set_ylabel("y (pixel)")
    return ax


def _corner_text(ax, text: str, gid: str | None = None, *, fontsize: float = 10):
    """White, outlined text in the top-left corner of an image (also the frames' time stamp)."""
    return ax.annotate(
        text,
        (0.03, 0.97),
        xycoords="axes fraction",
        va="top",
        color="white",
        fontsize=fontsize,
        fontweight="bold",
        path_effects=_OUTLINE,
        gid=gid,
    )


def _analysis_roi(roi, shape: tuple[int, int]) -> Rect | None:
    """The ROI to outline: None for none or the whole frame."""
    if roi is None:
        return None
    rect = Rect(*roi)
    y0, y1, x0, x1 = rect.bounds()
    if not (0 <= y0 < y1 <= shape[0] and 0 <= x0 < x1 <= shape[1]):
        raise OptionError(f"roi={tuple(roi)!r}: outside the {shape[0]} x {shape[1]} image")
    return None if (y0, y1, x0, x1) == (0, shape[0], 0, shape[1]) else rect


def _scale_bar(ax, image: xr.DataArray, pixel_size, length, levels: np.ndarray) -> None:
    """A scale bar, white or black after the colour `levels` (0-1, dark to bright) under it."""
    size = _pixel_size(image, pixel_size)
    if size:
        colour = _contrast_colour(levels, "lower right", limits=(0.0, 1.0))
        scale_bar(ax, size, image.shape[1], length=length, colour=colour)
