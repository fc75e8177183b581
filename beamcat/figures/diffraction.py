"""X-ray diffraction figures: the detector image with calibrant rings, the 1D pattern, the cake.

- `diffraction_image_figure`: the image on a log colour scale, invalid pixels
  (negative: Pilatus gaps -1/-2, NaN, or a given mask) drawn in `MASK_COLOUR`,
  the calibrant rings' contours (`beamcat.analyses.calibrant.rings`) over it.
- `pattern_figure`: intensity against 2θ or q (`beamcat.analyses.azimuthal.integrate1d`
  output; one line per leading index), its ``sigma`` as a band, the ring
  positions as ticks along the bottom axis.
- `cake_figure`: intensity on (χ, 2θ or q) (``integrate2d`` output), empty
  bins blank, the ring positions as vertical lines.

Each has an interactive HoloViews twin (``*_hv``) for the pages. Rings come
as the Dataset of ``ds.diffraction.rings`` (`beamcat.analyses.calibrant.rings`),
or as a calibrant name drawn with the data's own geometry (``attrs["poni"]``).
Images are drawn with pixel centres at integer (x, y), rows downwards, as the
reader returns them (a Dioptas-oriented PONI, ``poni_flip``, is honoured by the
geometry, so the rings fall on the raw image).

Examples
--------
>>> import beamcat
>>> ds = beamcat.open_catalog()["diffraction_ceo2"].read()  # doctest: +SKIP
>>> fig = diffraction_image_figure(ds.counts.isel(frame=0), rings="CeO2")  # doctest: +SKIP
>>> fig = pattern_figure(ds.diffraction.integrate1d(npt=1000), rings="CeO2")  # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from matplotlib.colors import ListedColormap, LogNorm, Normalize
from matplotlib.figure import Figure

from beamcat.analyses.calibrant import rings as calibrant_rings
from beamcat.analyses.geometry import as_geometry
from beamcat.errors import OptionError
from beamcat.figures._common import (
    _check_image,
    _figure,
    _holoviews,
    _image_axes,
    _label,
    _limits,
    _styled,
)

__all__ = [
    "MASK_COLOUR",
    "RING_COLOUR",
    "cake_figure",
    "cake_hv",
    "diffraction_image_figure",
    "diffraction_image_hv",
    "pattern_figure",
    "pattern_hv",
]

#: colour of invalid (masked) pixels
MASK_COLOUR = "#d9d9d9"
#: colour of the calibrant rings and ring ticks
RING_COLOUR = "#e4002b"
#: radial dims of the integration results -> the rings' variable at the same unit
_RADIAL = {"tth": "tth", "q": "q"}
_SYMBOLS = {"tth": "2θ", "q": "q", "r": "r", "chi": "χ"}
_UNITS = {"deg": "°", "nm^-1": "nm⁻¹", "A^-1": "Å⁻¹", "Angstrom^-1": "Å⁻¹"}


# ------------------------------------------------------------------ shared pieces


def _ring_table(rings, data: xr.DataArray, shape=None) -> xr.Dataset | None:
    """The rings to draw: a `rings` Dataset, or a calibrant's on the data's geometry and energy."""
    if rings is None or (isinstance(rings, xr.Dataset) and "tth" in rings):
        return rings
    if not isinstance(rings, str):
        raise OptionError(
            f"rings: expected a calibrant name or ds.diffraction.rings' Dataset, got {rings!r}"
        )
    if data.attrs.get("poni") is None:
        raise OptionError(
            f"{data.attrs.get('source', 'the data')}: no geometry to draw {rings} rings with; "
            "open the entry with poni=PATH, or pass rings=ds.diffraction.rings(...)"
        )
    return calibrant_rings(rings, geometry=as_geometry(data), shape=shape)


def _rings_title(table: xr.Dataset | None) -> str:
    if table is None:
        return ""
    return f"{table.attrs.get('calibrant', '')} rings, {table.attrs['energy'] / 1e3:.4g} keV"


def _intensity(result: xr.Dataset | xr.DataArray, name: str) -> xr.DataArray:
    """The ``intensity`` of an integration result (computed), with its attrs."""
    if isinstance(result, xr.Dataset):
        if "intensity" not in result.data_vars:
            raise OptionError(
                f"{name}: no 'intensity' variable; has {list(result.data_vars)} "
                "(pass integrate1d / integrate2d output)"
            )
        intensity = result["intensity"].assign_attrs({**result.attrs, **result["intensity"].attrs})
        if "count" in result.data_vars:  # empty bins are blank, not 0
            intensity = intensity.where(result["count"] > 0)
    else:
        intensity = result
    if not intensity.dims or intensity.dims[-1] not in (*_RADIAL, "r"):
        raise OptionError(
            f"{name}: expected a last dim tth, q or r (integration output), got {intensity.dims}"
        )
    return intensity.compute()


def _ring_positions(table: xr.Dataset | None, radial: xr.DataArray) -> np.ndarray:
    """Where the rings fall on the radial axis (its unit), those within its range."""
    if table is None:
        return np.empty(0)
    if radial.name not in _RADIAL:
        raise OptionError(f"ring positions need a 2θ or q axis, not {radial.name!r}")
    positions = np.asarray(table[_RADIAL[radial.name]].values, dtype=np.float64)
    if radial.name == "q" and radial.attrs.get("units") in ("A^-1", "Angstrom^-1", "1/Angstrom"):
        positions = positions / 10.0  # the rings' q is in nm^-1
    lo, hi = float(radial.min()), float(radial.max())
    return positions[(positions >= lo) & (positions <= hi)]


def _ring_lines(ax, table: xr.Dataset | None, radial: xr.DataArray, height: float, **style):
    """Vertical lines at the rings, from the bottom up to `height` (axes fraction), gid "rings"."""
    if table is not None:
        positions = _ring_positions(table, radial)
        transform = ax.get_xaxis_transform()
        ax.vlines(
            positions, 0, height, transform=transform, color=RING_COLOUR, gid="rings", **style
        )


def _labels(ax, xlabel: str, ylabel: str, table: xr.Dataset | None) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(_rings_title(table), loc="left", fontsize=9)


def _axis_label(coord: xr.DataArray) -> str:
    """``"2θ (°)"``, ``"q (nm⁻¹)"``, ``"χ (°)"``: symbols keep their case (`_label` capitalises)."""
    units = coord.attrs.get("units", "deg" if coord.name in ("tth", "chi") else "")
    symbol = _SYMBOLS.get(str(coord.name), str(coord.name))
    return f"{symbol} ({_UNITS.get(units, units)})" if units else symbol


def _image_values(image: xr.DataArray, mask) -> tuple[np.ndarray, np.ndarray]:
    """The image as float64 with invalid pixels NaN, and the invalid pixels."""
    values = np.asarray(image.values, dtype=np.float64)
    invalid = ~np.isfinite(values) | (values < 0)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != values.shape:
            raise OptionError(f"mask: {mask.shape} pixels, the image {values.shape}")
        invalid |= mask
    return np.where(invalid, np.nan, values), invalid


def _image_parts(image, mask, rings):
    """The image (computed), its values with invalid pixels NaN, those pixels, the rings."""
    image = _check_image(image, "image").compute()
    values, invalid = _image_values(image, mask)
    table = _ring_table(rings, image, shape=values.shape)
    return image, values, invalid, table


def _pattern_parts(pattern, rings):
    """The intensity, its radial coordinate, ``(label, line)`` per pattern, the rings."""
    intensity = _intensity(pattern, "pattern")
    if intensity.ndim > 2:
        raise OptionError(
            f"pattern: one line per index of at most one leading dim, got {intensity.dims}"
        )
    radial = intensity[intensity.dims[-1]]
    lead = intensity.dims[0]
    if intensity.ndim == 1:
        lines = [("", intensity)]
    else:
        labels = intensity[lead].values if lead in intensity.coords else range(intensity.shape[0])
        lines = [(f"{lead} {v}", intensity.isel({lead: i})) for i, v in enumerate(labels)]
    return intensity, radial, lines, _ring_table(rings, intensity)


def _cake_parts(cake, rings):
    """The cake's intensity (chi, radial), its χ and radial coordinates, the rings."""
    intensity = _intensity(cake, "cake")
    if intensity.ndim != 2 or intensity.dims[0] != "chi":
        raise OptionError(f"cake: expected dims (chi, tth | q | r), got {intensity.dims}")
    table = _ring_table(rings, intensity)
    return intensity, intensity["chi"], intensity[intensity.dims[-1]], table


def _log_limits(values: np.ndarray) -> tuple[float, float]:
    """Log-scale limits: the 1st and 99.9th percentiles of the positive values."""
    positive = values[np.isfinite(values) & (values > 0)]
    if positive.size == 0:
        return 0.1, 1.0
    lo, hi = np.percentile(positive, [1.0, 99.9])
    return float(lo), float(max(hi, lo * 10))


def _norm(values: np.ndarray, log: bool) -> Normalize:
    return LogNorm(*_log_limits(values), clip=True) if log else Normalize(*_limits(values))


# ------------------------------------------------------------------ the image


@_styled
def diffraction_image_figure(
    image: xr.DataArray | xr.Dataset,
    *,
    rings: xr.Dataset | str | None = None,
    mask=None,
    log: bool = True,
    cmap: str = "viridis",
    width: float = 6.0,
) -> Figure:
    """The detector image, invalid pixels masked, with the calibrant rings drawn over it.

    Parameters
    ----------
    image : DataArray (y, x), or a Dataset whose signal is one
        One image as the reader gives it (pick or average frames first);
        computed here if lazy.
    rings : Dataset or str, optional
        The rings to draw: ``ds.diffraction.rings`` (`beamcat.analyses.calibrant.rings`
        with a geometry and shape: contours), or the name of a calibrant pyFAI
        ships (``"CeO2"``, ``"LaB6"`` ...) drawn with the image's own
        ``attrs["poni"]`` at its wavelength.
    mask : bool array (y, x), optional
        Pixels to mask besides the negative and non-finite ones.
    log : bool
        Log colour scale (1st-99.9th percentile of the positive pixels).
    cmap : str
    width : float
        Figure width in inches.

    Returns
    -------
    Figure
        Axes ``"image"``: the image (`AxesImage`, invalid pixels NaN), the
        mask overlay (an `AxesImage` with gid ``"mask"``), the rings (one
        `Line2D`, gid ``"rings"``, NaN between polylines); a colour bar.
    """
    image, values, invalid, table = _image_parts(image, mask, rings)
    ny, nx = values.shape
    fig = _figure((width, width * ny / nx * 0.85 + 0.5), layout="constrained")
    ax = _image_axes(fig)
    shown = ax.imshow(values, cmap=cmap, norm=_norm(values, log), interpolation="nearest")
    ax.imshow(
        np.where(invalid, 1.0, np.nan),
        cmap=ListedColormap([MASK_COLOUR]),
        interpolation="nearest",
        gid="mask",
    )
    fig.colorbar(shown, ax=ax, shrink=0.9).set_label(_label(image, "intensity"))
    if table is not None and "contour_x" in table:
        ax.plot(
            table["contour_x"],
            table["contour_y"],
            color=RING_COLOUR,
            lw=0.6,
            alpha=0.7,
            gid="rings",
        )
        ax.set_xlim(-0.5, nx - 0.5)
        ax.set_ylim(ny - 0.5, -0.5)
    ax.set_title(_rings_title(table), loc="left", fontsize=9)
    return fig


def diffraction_image_hv(
    image: xr.DataArray | xr.Dataset,
    *,
    rings: xr.Dataset | str | None = None,
    mask=None,
    log: bool = True,
    cmap: str = "viridis",
):
    """Interactive twin of `diffraction_image_figure`.

    Returns
    -------
    holoviews.Overlay
        ``Image`` (invalid pixels NaN, drawn in `MASK_COLOUR`; hover), and the
        rings as a ``Path`` (one path per polyline) when there are any.
    """
    hv = _holoviews()

    image, values, _, table = _image_parts(image, mask, rings)
    ny, nx = values.shape
    clim = _log_limits(values) if log else _limits(values)
    element = hv.Image(
        (np.arange(nx), np.arange(ny), values),
        kdims=["x", "y"],
        vdims=[hv.Dimension("intensity", label=_label(image, "intensity"))],
    ).opts(
        cmap=cmap,
        clim=clim,
        logz=log,
        clipping_colors={"NaN": MASK_COLOUR},
        invert_yaxis=True,
        data_aspect=1,
        colorbar=True,
        tools=["hover"],
        responsive=True,
        title=_rings_title(table),
    )
    if table is None or "contour_x" not in table:
        return hv.Overlay([element])
    xy = np.column_stack([table["contour_x"].values, table["contour_y"].values])
    pieces = np.split(xy, np.flatnonzero(np.isnan(xy[:, 0])))  # each polyline, NaN first
    lines = [piece[~np.isnan(piece[:, 0])] for piece in pieces]
    path = hv.Path([line for line in lines if len(line)], kdims=["x", "y"])
    return element * path.opts(color=RING_COLOUR, line_width=1)


# ------------------------------------------------------------------ the 1D pattern


@_styled
def pattern_figure(
    pattern: xr.Dataset | xr.DataArray,
    *,
    rings: xr.Dataset | str | None = None,
    log: bool = False,
    width: float = 6.0,
) -> Figure:
    """The 1D powder pattern, with the calibrant's ring positions as ticks.

    Parameters
    ----------
    pattern : Dataset or DataArray (..., tth | q | r)
        `beamcat.analyses.azimuthal.integrate1d` output (``intensity``, and
        ``sigma`` drawn as a band, ``count`` blanking empty bins); one leading
        dim gives one line per index.
    rings : Dataset or str, optional
        The rings to tick, as for `diffraction_image_figure` (contours not needed).
    log : bool
        Log intensity axis.
    width : float
        Figure width in inches.

    Returns
    -------
    Figure
        Axes ``"pattern"``: one `Line2D` per pattern (gid ``"pattern"``, or
        ``"pattern-<i>"`` with a leading dim), the ``sigma`` band (gid
        ``"sigma"``, 1D only), the ring ticks (a `LineCollection`, gid ``"rings"``).

    Raises
    ------
    OptionError
        Not integration output, more than one leading dim, rings on an ``r`` axis.
    """
    intensity, radial, lines, table = _pattern_parts(pattern, rings)
    fig = _figure((width, width * 0.55), layout="constrained")
    ax = fig.add_subplot(label="pattern")
    if intensity.ndim == 1:
        ax.plot(radial, intensity, color="black", lw=1.0, gid="pattern")
        if isinstance(pattern, xr.Dataset) and "sigma" in pattern.data_vars:
            sigma = np.asarray(pattern["sigma"].values, dtype=np.float64)
            low, high = intensity.values - sigma, intensity.values + sigma
            ax.fill_between(radial, low, high, color="0.6", alpha=0.5, lw=0, gid="sigma")
    else:
        for i, (label, line) in enumerate(lines):
            ax.plot(radial, line, lw=1.0, label=label, gid=f"pattern-{i}")
        ax.legend(loc="upper right")
    if log:
        ax.set_yscale("log")
    _ring_lines(ax, table, radial, 0.06, lw=1.2)
    ax.set_xlim(float(radial.min()), float(radial.max()))
    _labels(ax, _axis_label(radial), _label(intensity, "intensity"), table)
    return fig


def pattern_hv(
    pattern: xr.Dataset | xr.DataArray,
    *,
    rings: xr.Dataset | str | None = None,
    log: bool = False,
):
    """Interactive twin of `pattern_figure`.

    Returns
    -------
    holoviews.Overlay
        One ``Curve`` per pattern, and the ring positions as ``Spikes`` along
        the bottom when there are rings.
    """
    hv = _holoviews()

    intensity, radial, lines, table = _pattern_parts(pattern, rings)
    x = hv.Dimension(str(radial.name), label=_axis_label(radial))
    y = hv.Dimension("intensity", label=_label(intensity, "intensity"))
    curves = [
        hv.Curve((radial.values, line.values), kdims=[x], vdims=[y], label=label).opts(
            logy=log, tools=["hover"], responsive=True, title=_rings_title(table)
        )
        for label, line in lines
    ]
    overlay = hv.Overlay(curves)
    if table is None:
        return overlay
    spikes = hv.Spikes(_ring_positions(table, radial), kdims=[x]).opts(
        color=RING_COLOUR, spike_length=0.06 * float(np.nanmax(intensity.values)), line_width=1.5
    )
    return overlay * spikes


# ------------------------------------------------------------------ the cake


def _edges(centres: np.ndarray) -> tuple[float, float]:
    """The outer edges of evenly spaced bin centres."""
    step = (centres[-1] - centres[0]) / max(len(centres) - 1, 1)
    return float(centres[0] - step / 2), float(centres[-1] + step / 2)


@_styled
def cake_figure(
    cake: xr.Dataset | xr.DataArray,
    *,
    rings: xr.Dataset | str | None = None,
    log: bool = True,
    cmap: str = "viridis",
    width: float = 6.0,
) -> Figure:
    """The cake: intensity on (χ, radial), empty bins blank, ring positions as lines.

    Parameters
    ----------
    cake : Dataset or DataArray (chi, tth | q | r)
        `beamcat.analyses.azimuthal.integrate2d` output of one image.
    rings : Dataset or str, optional
        The rings to mark, as for `pattern_figure`.
    log : bool
        Log colour scale.
    cmap : str
    width : float
        Figure width in inches.

    Returns
    -------
    Figure
        Axes ``"cake"``: the image (`AxesImage`, χ upwards, extent on the bin
        edges), the ring lines (a `LineCollection`, gid ``"rings"``); a colour bar.
    """
    intensity, chi, radial, table = _cake_parts(cake, rings)
    values = np.asarray(intensity.values, dtype=np.float64)
    fig = _figure((width, width * 0.6), layout="constrained")
    ax = fig.add_subplot(label="cake")
    shown = ax.imshow(
        values,
        cmap=cmap,
        norm=_norm(values, log),
        origin="lower",
        aspect="auto",
        interpolation="nearest",
        extent=(*_edges(radial.values), *_edges(chi.values)),
    )
    fig.colorbar(shown, ax=ax).set_label(_label(intensity, "intensity"))
    _ring_lines(ax, table, radial, 1.0, lw=0.8, alpha=0.8)
    _labels(ax, _axis_label(radial), _axis_label(chi), table)
    return fig


def cake_hv(
    cake: xr.Dataset | xr.DataArray,
    *,
    rings: xr.Dataset | str | None = None,
    log: bool = True,
    cmap: str = "viridis",
):
    """Interactive twin of `cake_figure`.

    Returns
    -------
    holoviews.Overlay
        ``Image`` on (radial, χ) with hover, and the rings as ``VLines``.
    """
    hv = _holoviews()

    intensity, chi, radial, table = _cake_parts(cake, rings)
    values = np.asarray(intensity.values, dtype=np.float64)
    x = hv.Dimension(str(radial.name), label=_axis_label(radial))
    y = hv.Dimension("chi", label=_axis_label(chi))
    element = hv.Image(
        (radial.values, chi.values, values),
        kdims=[x, y],
        vdims=[hv.Dimension("intensity", label=_label(intensity, "intensity"))],
    ).opts(
        cmap=cmap,
        clim=_log_limits(values) if log else _limits(values),
        logz=log,
        colorbar=True,
        tools=["hover"],
        responsive=True,
        title=_rings_title(table),
    )
    if table is None:
        return hv.Overlay([element])
    lines = hv.VLines(_ring_positions(table, radial)).opts(
        color=RING_COLOUR, line_width=1, alpha=0.8
    )
    return element * lines
