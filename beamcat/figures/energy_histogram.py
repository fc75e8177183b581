"""The photon energy histogram with the energy cuts and the single-photon peak marked.

`energy_histogram_figure` (matplotlib) and its HoloViews twin
`energy_histogram_hv`, for `beamcat.analyses.photon.histogram`. The pixel
`threshold` of a detection is not an energy (it applies to single pixels, the
histogram is of 3 x 3 sums), so it is written in the legend, not drawn as a line.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.transforms import ScaledTranslation

from beamcat.analyses.photon import PhotonEvents, histogram
from beamcat.errors import OptionError
from beamcat.figures._common import (
    _figure,
    _holoviews,
    _styled,
)

__all__ = ["energy_histogram_figure", "energy_histogram_hv"]

#: the energy cuts marked on a histogram: attr -> (label, colour)
_CUTS = {
    "energy_min": ("energy_min", "tab:red"),
    "energy_max": ("energy_max (pile-up)", "tab:orange"),
}


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
