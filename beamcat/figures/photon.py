"""Photon and accumulation figures: clean image, energy histogram, step means, accumulated image.

The figures of FemtoMAX's single-photon and accumulation workflow
(maxiv-science/drp-femtomax, whose live viewer shows the same four):

- `clean_image_figure`: photons per pixel (`beamcat.analyses.photon.clean_image`)
  with the analysis ROI outlined, the photon count and a scale bar.
- `energy_histogram_figure`: the events' energy histogram
  (`beamcat.analyses.photon.histogram`) with the energy cuts as labelled
  vertical lines and the single-photon peak marked; optional log y.
- `step_means_figure`: ROI means against the motor position with error bars
  (the spread of the frames within a step; `beamcat.analyses.steps.step_means`),
  one colour per ROI.
- `accumulated_figure`: the accumulated image (`beamcat.analyses.accumulate`)
  with its frame count, robust colour limits and optional block-max
  downsampling for display.

Each has an interactive HoloViews twin for notebooks (``*_hv``). Matplotlib
figures are made without pyplot (see `beamcat.figures`); save them with
`beamcat.figures.save_figure`. Images are drawn with pixel centres at integer
(x, y), rows downwards, axes in detector pixels.

Choices: detector gaps and defects (negative values: a Pilatus flags them -1
and -2, which accumulate to -N and -2N) and NaN are masked in the accumulated
image (drawn light grey) and left out of its colour limits, as are the hottest
0.1 % of the pixels; the log scale is linear below the lowest 1 % of the
positive pixels (`SymLogNorm`) so that empty pixels stay the darkest colour
instead of turning into holes. The pixel `threshold` of a detection is not an
energy (it applies to single pixels, the histogram is of 3 x 3 sums), so it is
written in the histogram's legend, not drawn as a line.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import matplotlib as mpl
import numpy as np
import xarray as xr
from matplotlib.colors import Normalize, SymLogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, StrMethodFormatter
from matplotlib.transforms import ScaledTranslation

from beamcat.analyses.photon import PhotonEvents, histogram
from beamcat.analyses.roi import Rect
from beamcat.errors import OptionError
from beamcat.figures import block_reduce
from beamcat.figures._common import (
    _OUTLINE,
    _add_rectangle,
    _check_image,
    _colour,
    _contrast_colour,
    _figure,
    _holoviews,
    _pixel_size,
    _styled,
    scale_bar,
)

__all__ = [
    "accumulated_figure",
    "accumulated_hv",
    "clean_image_figure",
    "clean_image_hv",
    "energy_histogram_figure",
    "energy_histogram_hv",
    "step_means_figure",
    "step_means_hv",
]

#: step-table coordinates that are not a motor (the frame's own, when each frame is a step)
_NOT_MOTORS = ("step", "roi", "frame", "event_number", "time")
#: the energy cuts marked on a histogram: attr -> (label, colour)
_CUTS = {
    "energy_min": ("energy_min", "tab:red"),
    "energy_max": ("energy_max (pile-up)", "tab:orange"),
}
#: ``downsample="auto"``: blocks so that the longer side has at most this many
AUTO_PIXELS = 1000
_GAP_COLOUR = "0.85"
_GAP_COLOUR_HEX = "#d9d9d9"  # the same grey for bokeh


# --------------------------------------------------------------------------- helpers


def _image_axes(fig: Figure):
    """One image axes (label ``"image"``) with detector-pixel axis labels."""
    ax = fig.add_subplot(label="image")
    ax.set_xlabel("x (pixel)")
    ax.set_ylabel("y (pixel)")
    return ax


def _corner_text(ax, text: str, gid: str):
    """White, outlined text in the top-left corner of an image."""
    return ax.annotate(
        text,
        (0.03, 0.97),
        xycoords="axes fraction",
        va="top",
        color="white",
        fontsize=10,
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


# --------------------------------------------------------------------------- clean image


def _clean(clean: xr.DataArray) -> xr.DataArray:
    _check_image(clean, "clean")
    return clean.compute()


def _photons_text(clean: xr.DataArray, values: np.ndarray) -> str:
    """``"<n> photons"``, with the energy cut of the clean image when it has one."""
    text = f"{int(np.nansum(values))} photons"
    cut = clean.attrs.get("energy_min")
    return f"{text}, energy > {float(cut):g}" if cut is not None and np.isfinite(cut) else text


@_styled
def clean_image_figure(
    clean: xr.DataArray,
    *,
    roi: Sequence[int] | None = None,
    pixel_size: float | None = None,
    scale_bar_length: float | None = None,
    cmap: str = "magma",
    vmax: float | None = None,
    width: float = 5.0,
) -> Figure:
    """Photons per pixel, with the analysis ROI outlined and the number of photons.

    Parameters
    ----------
    clean : DataArray (y, x)
        `beamcat.analyses.photon.clean_image` output (computed here if lazy).
    roi : (x, y, w, h), optional
        The ROI to outline; default ``clean.attrs["roi"]`` (the detection's).
        Not drawn when it is the whole image.
    pixel_size : float, optional
        Metres per pixel for a scale bar (default ``clean.attrs["pixel_size"]``;
        no bar when unknown).
    scale_bar_length : float, optional
        Bar length in metres; default a round length near 1/5 of the width.
    cmap : str
        Matplotlib colour map; 0 photons is its darkest colour.
    vmax : float, optional
        Top of the colour scale; default the largest count (at least 1):
        hot pixels are already rejected by the detection.
    width : float
        Figure width in inches.

    Returns
    -------
    Figure
        Axes ``"image"``: the image (an `AxesImage` holding `clean`'s values), the
        ROI `Rectangle` (gid ``"roi"``), the title ``"<n> photons, energy > <cut>"``
        and the scale bar (gid ``"scale_bar"``); a colour bar with integer ticks.

    Raises
    ------
    OptionError
        `clean` is not a (y, x) DataArray; the ROI is outside it.

    Examples
    --------
    >>> clean = clean_image(detect(frames).compute())  # doctest: +SKIP
    >>> save_figure(clean_image_figure(clean, pixel_size=12e-6), "clean_image")  # doctest: +SKIP
    """
    clean = _clean(clean)
    values = np.asarray(clean.values)
    ny, nx = values.shape
    fig = _figure((width, width * ny / nx * 0.85 + 0.4), layout="constrained")
    ax = _image_axes(fig)
    top = max(1.0, float(np.nanmax(values)) if values.size else 1.0) if vmax is None else vmax
    shown = ax.imshow(values, cmap=cmap, vmin=0, vmax=top, interpolation="nearest")
    bar = fig.colorbar(shown, ax=ax, shrink=0.9)
    bar.set_label("Photons per pixel")
    bar.locator = MaxNLocator(integer=True)
    bar.update_ticks()
    rect = _analysis_roi(roi if roi is not None else clean.attrs.get("roi"), values.shape)
    if rect is not None:
        _add_rectangle(ax, rect, colour="cyan", gid="roi")
    ax.set_title(_photons_text(clean, values), loc="left", fontsize=9, gid="photons")
    _scale_bar(ax, clean, pixel_size, scale_bar_length, values / top)
    return fig


def clean_image_hv(clean: xr.DataArray, *, roi: Sequence[int] | None = None, cmap: str = "magma"):
    """Interactive twin of `clean_image_figure`.

    Returns
    -------
    holoviews.Overlay
        ``Image`` (photons per pixel, hover) with the ROI as ``Rectangles`` when
        it is not the whole image.
    """
    hv = _holoviews()

    clean = _clean(clean)
    values = np.asarray(clean.values)
    ny, nx = values.shape
    image = hv.Image(
        (np.arange(nx), np.arange(ny), values),
        kdims=["x", "y"],
        vdims=[hv.Dimension("photons", label="Photons per pixel")],
    ).opts(
        cmap=cmap,
        clim=(0, max(1.0, float(np.nanmax(values)))),
        invert_yaxis=True,
        data_aspect=1,
        colorbar=True,
        tools=["hover"],
        responsive=True,
        title=_photons_text(clean, values),
    )
    rect = _analysis_roi(roi if roi is not None else clean.attrs.get("roi"), values.shape)
    if rect is None:
        return hv.Overlay([image])
    y0, y1, x0, x1 = rect.bounds()
    box = hv.Rectangles([(x0 - 0.5, y0 - 0.5, x1 - 0.5, y1 - 0.5)]).opts(
        fill_alpha=0, line_color="cyan", line_width=2
    )
    return image * box


# --------------------------------------------------------------------------- energy histogram


def _histogram(data, bins, range) -> xr.DataArray:  # noqa: A002 - histogram's name
    """A computed energy histogram with ``energy_low``/``energy_high`` edges."""
    if isinstance(data, PhotonEvents | xr.Dataset):
        cut = data.attrs.get("energy_min")
        if range is None and np.ndim(bins) == 0 and cut is not None:
            # from below the cut, so that its line and the empty bins under it show
            range = (0.8 * cut, 3.0 * cut)
        data = histogram(data, bins, range=range)
    if not isinstance(data, xr.DataArray) or data.dims != ("energy",):
        got = getattr(data, "dims", type(data).__name__)
        raise OptionError(
            f"energy histogram: expected events (detect) or a histogram over (energy,), got {got}"
        )
    missing = [c for c in ("energy_low", "energy_high") if c not in data.coords]
    if missing:
        raise OptionError(f"energy histogram: no {missing} coordinates; use photon.histogram")
    return data.compute()


def _edges(hist: xr.DataArray) -> np.ndarray:
    return np.append(hist["energy_low"].values, hist["energy_high"].values[-1])


def _cuts(hist: xr.DataArray, energy_min, energy_max) -> dict[str, float]:
    """The energy cuts to mark: given ones, else the histogram's attrs."""
    given = {"energy_min": energy_min, "energy_max": energy_max}
    out = {}
    for name, value in given.items():
        value = hist.attrs.get(name) if value is None else value
        if value is not None:
            out[name] = float(value)
    return out


def _energy_label(hist: xr.DataArray) -> str:
    units = hist["energy"].attrs.get("units", "counts")
    # a CMOS's raw numbers are ADU; the energy is a 3 x 3 sum of them
    return f"Hit energy, 3 × 3 sum ({'ADU' if units == 'counts' else units})"


def _peak(hist: xr.DataArray, cuts: dict[str, float]) -> float | None:
    """Centre of the fullest bin below the pile-up cut: the single-photon peak."""
    centres = hist["energy"].values
    counts = np.where(centres < cuts.get("energy_max", np.inf), hist.values, 0)
    return float(centres[np.argmax(counts)]) if counts.max() > 0 else None


@_styled
def energy_histogram_figure(
    data: xr.DataArray | xr.Dataset | PhotonEvents,
    *,
    threshold: float | None = None,
    energy_min: float | None = None,
    energy_max: float | None = None,
    bins: int | Sequence[float] = 100,
    range: tuple[float, float] | None = None,  # noqa: A002 - numpy's name
    log: bool = False,
    colour: str = "tab:blue",
    figsize: tuple[float, float] = (5.0, 3.4),
) -> Figure:
    """Energy histogram of photon hits with the energy cuts marked and the single-photon peak.

    Parameters
    ----------
    data : DataArray (energy), or the events (Dataset (event) or PhotonEvents)
        `beamcat.analyses.photon.histogram` output, or events of
        `beamcat.analyses.photon.detect`, histogrammed here with `bins` and `range`.
    threshold : float, optional
        The detection's pixel threshold (ADU above background), written in the
        legend; default ``attrs["threshold"]``.
    energy_min, energy_max : float, optional
        Energy cuts drawn as labelled vertical lines (the kept events' lower
        bound, the pile-up flag); default the attrs of `data`.
    bins, range
        For events: see `beamcat.analyses.photon.histogram`; default range
        ``(0.8 * energy_min, 3 * energy_min)``: the cut, single photons and
        two-photon pile-ups.
    log : bool
        Log y axis (pile-ups and tails are a few events per bin).
    colour : str
        Bar colour.
    figsize : (width, height)
        Inches.

    Returns
    -------
    Figure
        Axes ``"histogram"``: the bars as one `StepPatch` (gid ``"histogram"``,
        ``get_data()`` gives counts and edges), each cut a vertical line (gid
        ``"cut:energy_min"``, ``"cut:energy_max"``) with a text label, the
        single-photon peak (the fullest bin below ``energy_max``) a marker above
        its bar (gid ``"peak"``) named with its energy in the legend.

    Raises
    ------
    OptionError
        `data` is neither events nor a histogram over ``energy``.
    """
    hist = _histogram(data, bins, range)
    edges, counts = _edges(hist), np.asarray(hist.values)
    cuts = _cuts(hist, energy_min, energy_max)
    fig = _figure(figsize, layout="constrained")
    ax = fig.add_subplot(label="histogram")
    ax.stairs(counts, edges, fill=True, color=colour, alpha=0.8, gid="histogram", label="events")
    low, high = min(edges[0], *cuts.values()), max(edges[-1], *cuts.values())
    margin = 0.02 * (high - low)  # a cut at the first edge stays visible
    ax.set_xlim(low - margin, high + margin)
    for name, value in cuts.items():
        text, line_colour = _CUTS[name]
        ax.axvline(value, color=line_colour, linestyle="--", linewidth=1.2, gid=f"cut:{name}")
        # the lower cut's label on its empty side where there is room, labels clear of the peak
        side = -1 if name == "energy_min" and value - low > 0.05 * (high - low) else 1
        ax.annotate(
            f"{text} = {value:g}",
            (value, 0.97),
            xycoords=("data", "axes fraction"),
            xytext=(3 * side, 0),
            textcoords="offset points",
            rotation=90,
            va="top",
            ha="right" if side < 0 else "left",
            color=line_colour,
            fontsize=8,
            gid=f"cut_label:{name}",
        )
    peak = _peak(hist, cuts)
    if peak is not None:  # a marker just above the fullest bar, named in the legend
        above = ax.transData + ScaledTranslation(0, 5 / 72, fig.dpi_scale_trans)
        ax.plot(
            [peak],
            [counts[np.searchsorted(edges, peak) - 1]],
            marker="v",
            linestyle="none",
            color="black",
            transform=above,
            label=f"single-photon peak {peak:.0f}",
            gid="peak",
        )
    pixel = hist.attrs.get("threshold") if threshold is None else threshold
    if pixel is not None:
        ax.plot([], [], " ", label=f"pixel threshold {float(pixel):g} ADU")
    ax.legend(loc="upper right")
    if log:
        ax.set_yscale("log")
        # empty bins have no bar, 1 event stays visible; room above for the peak marker
        ax.set_ylim(0.7, max(1, counts.max()) * 3)
    else:
        ax.set_ylim(0, max(1, counts.max()) * 1.1)  # room for the peak marker
    ax.set_xlabel(_energy_label(hist))
    ax.set_ylabel("Events per bin")
    return fig


def energy_histogram_hv(
    data: xr.DataArray | xr.Dataset | PhotonEvents,
    *,
    energy_min: float | None = None,
    energy_max: float | None = None,
    bins: int | Sequence[float] = 100,
    range: tuple[float, float] | None = None,  # noqa: A002 - numpy's name
    log: bool = False,
):
    """Interactive twin of `energy_histogram_figure`.

    Returns
    -------
    holoviews.Overlay
        ``Histogram`` with one dashed ``VLine`` per energy cut.
    """
    hv = _holoviews()

    hist = _histogram(data, bins, range)
    energy = hv.Dimension("energy", label=_energy_label(hist))
    bars = hv.Histogram(
        (_edges(hist), np.asarray(hist.values)), kdims=[energy], vdims=["events"]
    ).opts(logy=log, tools=["hover"], responsive=True, min_height=250, alpha=0.8)
    lines = [
        hv.VLine(value, label=f"{_CUTS[name][0]} = {value:g}").opts(
            color=_CUTS[name][1], line_dash="dashed"
        )
        for name, value in _cuts(hist, energy_min, energy_max).items()
    ]
    return hv.Overlay([bars, *lines])


# --------------------------------------------------------------------------- step means


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


# --------------------------------------------------------------------------- accumulated image


def _accumulated(
    accumulated: xr.Dataset | xr.DataArray, count: int | None
) -> tuple[xr.DataArray, int | None]:
    """The accumulated image (y, x), computed, and the frame count."""
    if isinstance(accumulated, xr.Dataset):
        if "sum" not in accumulated.data_vars:
            raise OptionError(
                f"accumulated: no 'sum' variable; has {list(accumulated.data_vars)} "
                "(pass accumulate output or the sum image)"
            )
        if count is None and "count" in accumulated.data_vars:
            count = int(accumulated["count"].values)
        accumulated = accumulated["sum"].assign_attrs(
            {**accumulated.attrs, **accumulated["sum"].attrs}
        )
    _check_image(accumulated, "accumulated")
    return accumulated.compute(), count


def _block_size(shape: tuple[int, int], downsample: int | Literal["auto"] | None) -> int:
    if downsample == "auto":
        return max(1, math.ceil(max(shape) / AUTO_PIXELS))
    if downsample is None:
        return 1
    if isinstance(downsample, str) or downsample < 1:
        raise OptionError(f"downsample={downsample!r}: expected a block size >= 1, 'auto' or None")
    return int(downsample)


def _display(values: np.ndarray, factor: int, mask_negative: bool) -> np.ndarray:
    """Float image with gaps (negative, when masked) as NaN, block-max reduced by `factor`."""
    values = np.asarray(values, dtype=np.float64)
    if mask_negative:
        values = np.where(values >= 0, values, np.nan)
    return block_reduce(values, factor, how="max")


def _extent(shape: tuple[int, int], factor: int) -> tuple[float, float, float, float]:
    """Image extent in detector pixels of `shape` blocks of ``factor`` pixels (rows downwards)."""
    return (-0.5, shape[1] * factor - 0.5, shape[0] * factor - 0.5, -0.5)


def _gaps_colourmap(cmap: str):
    """`cmap` with masked pixels (gaps) light grey."""
    return mpl.colormaps[cmap].with_extremes(bad=_GAP_COLOUR)


def _colour_limits(shown: np.ndarray, log: bool, vmin, vmax) -> tuple[float, float, float]:
    """(low, high, linear threshold of the log scale) from the valid pixels' percentiles."""
    valid = shown[np.isfinite(shown)]
    positive = valid[valid > 0]
    # percentiles of the non-empty pixels: on a sparse image most pixels are 0
    pool = positive if positive.size else valid
    lo, hi = np.percentile(pool, [1.0, 99.9]) if pool.size else (0.0, 1.0)
    low = (0.0 if log or not valid.size else float(min(lo, valid.min()))) if vmin is None else vmin
    high = float(hi) if vmax is None else vmax
    if high <= low:
        high = low + 1.0
    linear = float(lo) if positive.size and 0 < lo < high else high / 1e3
    return low, high, linear


@_styled
def accumulated_figure(
    accumulated: xr.Dataset | xr.DataArray,
    count: int | None = None,
    *,
    pixel_size: float | None = None,
    log: bool = True,
    downsample: int | Literal["auto"] | None = None,
    mask_negative: bool = True,
    vmin: float | None = None,
    vmax: float | None = None,
    cmap: str = "viridis",
    scale_bar_length: float | None = None,
    width: float = 6.0,
) -> Figure:
    """The accumulated image with its frame count, robust colour limits and a scale bar.

    Parameters
    ----------
    accumulated : Dataset or DataArray (y, x)
        `beamcat.analyses.accumulate.accumulate` output (``sum`` and ``count``),
        ``Accumulator.to_dataset()``, or the summed image; computed here if lazy.
    count : int, optional
        Frames in the sum; default the Dataset's ``count``. Written in the
        top-left corner.
    pixel_size : float, optional
        Metres per pixel for a scale bar (default the attrs' ``pixel_size``).
    log : bool
        Log colour scale (linear below the lowest 1 % of the positive pixels,
        so empty pixels keep the darkest colour); else linear.
    downsample : int, "auto" or None
        Show blocks of ``downsample x downsample`` pixels by their maximum, so a
        big frame draws fast and single bright pixels stay visible instead of
        falling between the screen's or printer's dots; ``"auto"``: blocks so
        that the longer side has at most `AUTO_PIXELS`. Axes stay in detector
        pixels.
    mask_negative : bool
        Mask negative pixels (detector gaps and defects, -1/-2 per frame) and
        NaN: drawn light grey, left out of the colour limits.
    vmin, vmax : float, optional
        Colour limits; default 0 (log) or the lowest value, and the 99.9th
        percentile of the positive pixels (hot pixels saturate instead of
        washing the image out).
    cmap : str
        Matplotlib colour map.
    scale_bar_length : float, optional
        Metres; default a round length near 1/5 of the width.
    width : float
        Figure width in inches.

    Returns
    -------
    Figure
        Axes ``"image"``: the image (an `AxesImage` whose array is the displayed,
        masked and reduced image), the text ``"<count> frames"`` (gid
        ``"count"``), the scale bar (gid ``"scale_bar"``); a colour bar.

    Raises
    ------
    OptionError
        Not an image or an `accumulate` Dataset; ``downsample < 1``.

    Notes
    -----
    The colour bar's ticks are 0 and the powers of ten above the linear part
    of the log scale (round numbers when that spans less than two decades).

    Examples
    --------
    >>> acc = accumulate(ds.counts)  # doctest: +SKIP
    >>> fig = accumulated_figure(acc, pixel_size=ds.attrs["pixel_size"])  # doctest: +SKIP
    """
    image, count = _accumulated(accumulated, count)
    factor = _block_size(image.shape, downsample)
    shown = _display(image.values, factor, mask_negative)
    low, high, linear = _colour_limits(shown, log, vmin, vmax)
    norm = SymLogNorm(linear, vmin=low, vmax=high) if log else Normalize(low, high)
    ny, nx = image.shape
    fig = _figure((width, width * ny / nx * 0.85 + 0.4), layout="constrained")
    ax = _image_axes(fig)
    drawn = ax.imshow(
        np.ma.masked_invalid(shown),
        cmap=_gaps_colourmap(cmap),
        norm=norm,
        interpolation="nearest",
        extent=_extent(shown.shape, factor),
    )
    bar = fig.colorbar(drawn, ax=ax, shrink=0.9, extend="max")
    if log:  # the default symlog ticks crowd the linear part
        decades = 10.0 ** np.arange(math.ceil(np.log10(linear)), math.floor(np.log10(high)) + 1)
        if decades.size < 2:  # e.g. a few photons per pixel: plain numbers read better
            bar.set_ticks(MaxNLocator(5).tick_values(low, high))
            bar.formatter = StrMethodFormatter("{x:g}")
        else:
            bar.set_ticks([low, *decades])
    units = image.attrs.get("units")
    bar.set_label(f"Sum ({units})" if units else "Sum")
    ax.set_xlim(-0.5, nx - 0.5)  # the last block may reach past the edge
    ax.set_ylim(ny - 0.5, -0.5)
    if count is not None:
        _corner_text(ax, f"{count} frame{'s' if count != 1 else ''}", "count")
    _scale_bar(ax, image, pixel_size, scale_bar_length, np.ma.filled(norm(shown), 0.0))
    return fig


def accumulated_hv(
    accumulated: xr.Dataset | xr.DataArray,
    count: int | None = None,
    *,
    log: bool = True,
    downsample: int | Literal["auto"] | None = "auto",
    mask_negative: bool = True,
    cmap: str = "viridis",
):
    """Interactive twin of `accumulated_figure` (the frame count in the title).

    Big images are block-max reduced by default (``downsample="auto"``): a
    browser draws a 1000 x 1000 image quickly, a 4k x 4k one slowly.

    Returns
    -------
    holoviews.Image
        The displayed (masked, block-max reduced) image in detector-pixel
        bounds, log colour scale when `log`.
    """
    hv = _holoviews()

    image, count = _accumulated(accumulated, count)
    factor = _block_size(image.shape, downsample)
    shown = _display(image.values, factor, mask_negative)
    low, high, linear = _colour_limits(shown, log, None, None)
    x0, x1, y1, y0 = _extent(shown.shape, factor)
    title = f"{count} frames" if count is not None else "accumulated"
    # hv.Image rows run upwards from the bottom bound: flip so row 0 is at the top
    return hv.Image(shown[::-1], ["x", "y"], "sum", bounds=(x0, y0, x1, y1)).opts(
        cmap=cmap,
        clim=(linear if log else low, high),
        logz=log,
        clipping_colors={"NaN": _GAP_COLOUR_HEX},
        invert_yaxis=True,
        data_aspect=1,
        colorbar=True,
        tools=["hover"],
        responsive=True,
        title=title,
    )
