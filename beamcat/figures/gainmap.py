"""Gain-map figures: the map with its histogram and damaged pixels, the profiles, the check.

For `beamcat.analyses.gainmap`: `gain_map_figure` (the combined gain, damaged
pixels circled, invalid pixels grey, and the histogram with the damaged
threshold), `profiles_figure` (each position's radial median profile, its
continuation beyond its own 2θ range and the flat window) and
`position_spread_figure` (the positions' 1D patterns before and after the
correction, the seed's first figure). Each has a HoloViews twin (``*_hv``) for
the pages.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr
from matplotlib import colormaps
from matplotlib.figure import Figure

from beamcat.errors import OptionError
from beamcat.figures._common import _colour, _figure, _holoviews, _limits, _styled

__all__ = [
    "gain_map_figure",
    "gain_map_hv",
    "position_spread_figure",
    "position_spread_hv",
    "profiles_figure",
    "profiles_hv",
]

_PALETTE = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")


def _check(gm: xr.Dataset, names: Sequence[str], what: str) -> xr.Dataset:
    if not isinstance(gm, xr.Dataset) or not set(names) <= set(gm.variables):
        got = sorted(map(str, gm.variables)) if isinstance(gm, xr.Dataset) else type(gm).__name__
        raise OptionError(f"{what}: expected a Dataset with {', '.join(names)}, got {got}")
    return gm.compute()


def _gain_limits(gain: np.ndarray, damaged: np.ndarray) -> tuple[float, float]:
    """Colour limits from the undamaged pixels (damaged ones would stretch the scale)."""
    return _limits(np.where(damaged, np.nan, gain), 0.5, 99.5)


def _position_labels(data: xr.Dataset) -> list[str]:
    if "source" in data.coords:
        return [str(s).rstrip("/").split("/")[-1] for s in np.atleast_1d(data["source"].values)]
    return [f"position {k}" for k in range(data.sizes["position"])]


@_styled
def gain_map_figure(
    gm: xr.Dataset,
    *,
    title: str | None = None,
    cmap: str = "viridis",
    bins: int = 200,
    width: float = 8.0,
) -> Figure:
    """The gain map (damaged pixels circled, invalid ones grey) and the histogram of gains.

    Parameters
    ----------
    gm : Dataset
        `beamcat.analyses.gainmap.gain_map` output (``gain``, ``damaged``; the
        attr ``damaged_threshold`` is drawn on the histogram).
    title : str, optional
        Above the map.
    cmap : str
        Colour map of the gain, between the 0.5 and 99.5 % percentiles of the
        undamaged pixels.
    bins : int
        Histogram bins, over the gains of all valid pixels (log counts).
    width : float
        Inches; the height follows the detector's aspect.

    Returns
    -------
    Figure
        Axes ``"map"`` (the gain image, gid ``"gain"``; damaged pixels a
        scatter with gid ``"damaged"``) with a colour bar, and ``"histogram"``
        (a `StepPatch`, gid ``"histogram"``; the threshold a line, gid ``"threshold"``).
    """
    gm = _check(gm, ("gain", "damaged"), "gain map figure")
    gain, damaged = np.asarray(gm.gain.values, float), np.asarray(gm.damaged.values, bool)
    ny, nx = gain.shape
    fig = _figure((width, width * 0.62 * ny / nx + 2.4), layout="constrained")
    grid = fig.add_gridspec(2, 1, height_ratios=[ny / nx * 3.0, 1.0])
    ax = fig.add_subplot(grid[0], label="map")
    vmin, vmax = _gain_limits(gain, damaged)
    colours = colormaps[cmap].with_extremes(bad="0.6")
    image = ax.imshow(
        np.ma.masked_invalid(gain), cmap=colours, vmin=vmin, vmax=vmax, interpolation="nearest"
    )
    image.set_gid("gain")
    rows, cols = np.nonzero(damaged)
    ax.scatter(
        cols,
        rows,
        s=18,
        facecolors="none",
        edgecolors="red",
        linewidths=0.8,
        gid="damaged",
        label=f"damaged ({damaged.sum()})",
    )
    if damaged.any():
        ax.legend(loc="upper right", fontsize=7, frameon=True)
    fig.colorbar(image, ax=ax, label="Relative gain", shrink=0.9)
    ax.set_xlabel("x (pixel)")
    ax.set_ylabel("y (pixel)")
    if title:
        ax.set_title(title)
    hist_ax = fig.add_subplot(grid[1], label="histogram")
    finite = gain[np.isfinite(gain)]
    counts, edges = np.histogram(finite, bins=bins)
    hist_ax.stairs(counts, edges, fill=True, color="tab:blue", alpha=0.8, gid="histogram")
    threshold = gm.attrs.get("damaged_threshold")
    if threshold is not None:
        hist_ax.axvline(
            threshold,
            color="red",
            linestyle="--",
            gid="threshold",
            label=f"damaged above {threshold:.3f}",
        )
        hist_ax.legend(loc="upper right")
    hist_ax.set_yscale("log")
    hist_ax.set_xlabel("Relative gain")
    hist_ax.set_ylabel("Pixels")
    return fig


def gain_map_hv(gm: xr.Dataset, *, cmap: str = "viridis", bins: int = 200):
    """Interactive twin of `gain_map_figure`.

    Returns
    -------
    holoviews.Layout
        ``(Image * Points) + Histogram``: the gain with damaged pixels as red
        points, and the histogram of gains with the damaged threshold.
    """
    hv = _holoviews()
    gm = _check(gm, ("gain", "damaged"), "gain map figure")
    gain, damaged = np.asarray(gm.gain.values, float), np.asarray(gm.damaged.values, bool)
    ny, nx = gain.shape
    image = hv.Image(
        (np.arange(nx), np.arange(ny), gain.astype(np.float32)), kdims=["x", "y"], vdims=["gain"]
    ).opts(
        cmap=cmap,
        clim=_gain_limits(gain, damaged),
        invert_yaxis=True,
        data_aspect=1,
        responsive=True,
        colorbar=True,
        clipping_colors={"NaN": "grey"},
        tools=["hover"],
    )
    rows, cols = np.nonzero(damaged)
    points = hv.Points((cols, rows), kdims=["x", "y"], label="damaged").opts(
        color="red", marker="circle", fill_alpha=0, size=8
    )
    counts, edges = np.histogram(gain[np.isfinite(gain)], bins=bins)
    hist = hv.Histogram((edges, counts), kdims=["gain"], vdims=["pixels"]).opts(
        logy=True, responsive=True, min_height=200
    )
    threshold = gm.attrs.get("damaged_threshold")
    if threshold is not None:
        hist = hist * hv.VLine(float(threshold)).opts(color="red", line_dash="dashed")
    return (image * points + hist).cols(1)


def _profile_parts(gm: xr.Dataset):
    """(tth, measured (position, tth), continued (NaN where measured), expected, window, labels)."""
    gm = _check(gm, ("profile", "extrapolated", "expected_profile"), "profiles figure")
    measured = np.asarray(gm.profile.values, float)
    continued = np.where(np.isfinite(measured), np.nan, gm.extrapolated.values)
    window = gm.attrs.get("flat_range")
    return (
        np.asarray(gm.tth.values, float),
        measured,
        continued,
        np.asarray(gm.expected_profile.values, float),
        None if window is None else (float(window[0]), float(window[1])),
        _position_labels(gm),
    )


@_styled
def profiles_figure(
    gm: xr.Dataset,
    *,
    colours: Sequence[str] | None = None,
    figsize: tuple[float, float] = (7.0, 3.8),
) -> Figure:
    """Each position's radial median profile, its continuation and the flat window.

    Parameters
    ----------
    gm : Dataset
        `beamcat.analyses.gainmap.gain_map` output.
    colours : sequence of str, optional
        One per position.
    figsize : (width, height)

    Returns
    -------
    Figure
        Axes ``"profiles"``: per position a solid line (gid ``"profile:<k>"``)
        where it measured and a dashed one (gid ``"extrapolated:<k>"``) where it
        is continued; the expected profile (their mean, gid ``"expected"``) in
        black; the flat window shaded (gid ``"flat_window"``).
    """
    tth, measured, continued, expected, window, labels = _profile_parts(gm)
    fig = _figure(figsize, layout="constrained")
    ax = fig.add_subplot(label="profiles")
    for k, label in enumerate(labels):
        colour = _colour(colours or _PALETTE, k)
        ax.plot(tth, measured[k], color=colour, label=label, gid=f"profile:{k}")
        ax.plot(tth, continued[k], color=colour, linestyle="--", lw=1, gid=f"extrapolated:{k}")
    ax.plot(tth, expected, color="black", lw=1, label="expected (mean)", gid="expected")
    if window is not None:
        ax.axvspan(
            *window,
            color="0.85",
            zorder=0,
            gid="flat_window",
            label=f"flat window {window[0]:.2f}-{window[1]:.2f}°",
        )
    ax.set_xlabel("2θ (deg)")
    ax.set_ylabel("Radial median (counts / solid angle)")
    ax.legend(loc="best", ncols=2)
    return fig


def profiles_hv(gm: xr.Dataset, *, colours: Sequence[str] | None = None):
    """Interactive twin of `profiles_figure`.

    Returns
    -------
    holoviews.Overlay
        A ``Curve`` per position (measured) and a dashed one (continued), the
        expected ``Curve``, and the flat window as a ``VSpan`` (a page may make
        it draggable with a ``BoundsX`` stream).
    """
    hv = _holoviews()
    tth, measured, continued, expected, window, labels = _profile_parts(gm)
    kdims, vdims = [hv.Dimension("tth", label="2θ (deg)")], ["intensity"]
    curves = []
    for k, label in enumerate(labels):
        colour = _colour(colours or _PALETTE, k)
        curves.append(hv.Curve((tth, measured[k]), kdims, vdims, label=label).opts(color=colour))
        curves.append(
            hv.Curve((tth, continued[k]), kdims, vdims).opts(color=colour, line_dash="dashed")
        )
    curves.append(hv.Curve((tth, expected), kdims, vdims, label="expected").opts(color="black"))
    if window is not None:
        curves.append(hv.VSpan(*window).opts(color="grey", alpha=0.2))
    return hv.Overlay(curves).opts(responsive=True, min_height=300, legend_position="top_right")


def _spread_pair(before: xr.Dataset, after: xr.Dataset) -> list[tuple[str, xr.Dataset]]:
    names = ("relative", "spread", "rms_spread")
    return [
        (f"{which} (RMS spread {float(data.rms_spread) * 100:.3f} %)", data)
        for which, data in (
            ("Before correction", _check(before, names, "position spread (before)")),
            ("After correction", _check(after, names, "position spread (after)")),
        )
    ]


@_styled
def position_spread_figure(
    before: xr.Dataset,
    after: xr.Dataset,
    *,
    figsize: tuple[float, float] = (7.0, 6.0),
    colours: Sequence[str] | None = None,
) -> Figure:
    """The positions' 1D patterns before and after the gain correction, and their spread.

    Parameters
    ----------
    before, after : Dataset
        `beamcat.analyses.gainmap.position_spread` without and with the gain.
    figsize : (width, height)
        Inches.
    colours : sequence of str, optional
        A colour per position (as in `profiles_figure`).

    Returns
    -------
    Figure
        Axes ``"before"`` and ``"after"`` (each position's pattern over its
        median, gid ``"pattern:<k>"``; the RMS spread in the title) sharing 2θ
        and the y range, and ``"spread"``: the relative spread per bin before
        (gid ``"spread:before"``) and after (``"spread:after"``), in %.
    """
    pair = _spread_pair(before, after)
    fig = _figure(figsize, layout="constrained")
    grid = fig.add_gridspec(3, 1, height_ratios=[2, 2, 1.3])
    first = None
    for row, (title, data) in enumerate(pair):
        ax = fig.add_subplot(grid[row], label=("before", "after")[row], sharex=first, sharey=first)
        first = first or ax
        for k, label in enumerate(_position_labels(data)):
            ax.plot(
                data.tth.values,
                data.relative.values[k],
                lw=1,
                color=_colour(colours or _PALETTE, k),
                label=label,
                gid=f"pattern:{k}",
            )
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("Pattern / median")
    first.legend(loc="best", ncols=3, fontsize=7)
    ax = fig.add_subplot(grid[2], label="spread", sharex=first)
    for which, (_, data), colour in zip(
        ("before", "after"), pair, ("tab:red", "black"), strict=True
    ):
        ax.plot(
            data.tth.values,
            data.spread.values * 100,
            color=colour,
            lw=1,
            label=which,
            gid=f"spread:{which}",
        )
    ax.set_xlabel("2θ (deg)")
    ax.set_ylabel("Spread (%)")
    ax.legend(loc="upper right")
    return fig


def position_spread_hv(before: xr.Dataset, after: xr.Dataset, *, colours=None):
    """Interactive twin of `position_spread_figure`.

    Returns
    -------
    holoviews.Layout
        Before and after overlays of the positions' patterns, and the spread curves.
    """
    hv = _holoviews()
    pair = _spread_pair(before, after)
    kdims = [hv.Dimension("tth", label="2θ (deg)")]
    panels = []
    for title, data in pair:
        curves = [
            hv.Curve(
                (data.tth.values, data.relative.values[k]), kdims, ["relative"], label=label
            ).opts(color=_colour(colours or _PALETTE, k))
            for k, label in enumerate(_position_labels(data))
        ]
        panels.append(hv.Overlay(curves).opts(title=title, responsive=True, min_height=250))
    spread = hv.Overlay(
        [
            hv.Curve((data.tth.values, data.spread.values * 100), kdims, ["spread %"], label=which)
            for which, (_, data) in zip(("before", "after"), pair, strict=True)
        ]
    ).opts(responsive=True, min_height=200)
    return hv.Layout([*panels, spread]).cols(1)
