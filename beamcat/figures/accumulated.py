"""The accumulated image: frame count, robust colour limits, gaps masked, block-max downsampling.

`accumulated_figure` (matplotlib) and its HoloViews twin `accumulated_hv`, for
`beamcat.analyses.accumulate`. Detector gaps and defects (negative values: a
Pilatus flags them -1 and -2, which accumulate to -N and -2N) and NaN are masked
(drawn light grey) and left out of the colour limits, as are the hottest 0.1 %
of the pixels; the log scale is linear below the lowest 1 % of the positive
pixels (`SymLogNorm`) so that empty pixels stay the darkest colour.
"""

from __future__ import annotations

import math
from typing import Literal

import matplotlib as mpl
import numpy as np
import xarray as xr
from matplotlib.colors import Normalize, SymLogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, StrMethodFormatter

from beamcat.errors import OptionError
from beamcat.figures import block_reduce
from beamcat.figures._common import (
    _check_image,
    _corner_text,
    _figure,
    _holoviews,
    _image_axes,
    _scale_bar,
    _styled,
)

__all__ = ["AUTO_PIXELS", "accumulated_figure", "accumulated_hv"]

#: ``downsample="auto"``: blocks so that the longer side has at most this many
AUTO_PIXELS = 1000
_GAP_COLOUR = "0.85"
_GAP_COLOUR_HEX = "#d9d9d9"  # the same grey for bokeh


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
    accumulated = _check_image(accumulated, "accumulated")
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
