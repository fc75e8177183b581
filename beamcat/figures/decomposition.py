"""NMF figures: scree plot, components with their loading maps, loadings against EDX maps.

Each figure draws the arrays of `beamcat.analyses.decomposition` (`scree`,
`nmf`) and `beamcat.analyses.edx` (`element_maps`, `correlate`) as they are;
the ``*_hv`` functions are the HoloViews twins the 4D-STEM page shows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr
from matplotlib import colormaps
from matplotlib.figure import Figure

from beamcat.analyses.edx import correlate
from beamcat.errors import OptionError
from beamcat.figures._common import _colour, _figure, _holoviews, _label, _limits, _styled

__all__ = [
    "correlation_figure",
    "nmf_figure",
    "nmf_hv",
    "scree_figure",
    "scree_hv",
]

#: component colours (tab10's first, as hex: bokeh knows no "tab:" names), lines and map titles
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


def _ratio(ratio: xr.DataArray) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(ratio, xr.DataArray) or ratio.dims != ("component",):
        got = getattr(ratio, "dims", type(ratio).__name__)
        raise OptionError(f"scree figure: expected scree()'s DataArray (component,), got {got}")
    return np.arange(1, ratio.size + 1), np.asarray(ratio.values, float)


@_styled
def scree_figure(
    ratio: xr.DataArray, *, chosen: int | None = None, figsize: tuple[float, float] = (4.5, 3.2)
) -> Figure:
    """Explained-variance ratio per principal component (log scale), to choose `n_components`.

    Parameters
    ----------
    ratio : DataArray (component,)
        `beamcat.analyses.decomposition.scree` output.
    chosen : int, optional
        A number of components to mark (a dashed line, gid ``"chosen"``).
    figsize : (width, height)

    Returns
    -------
    Figure
        Axes ``"scree"`` with the ratios against component number (from 1), gid ``"scree"``.
    """
    number, values = _ratio(ratio)
    fig = _figure(figsize, layout="constrained")
    ax = fig.add_subplot(label="scree")
    ax.plot(number, values, "o-", color="black", ms=4, gid="scree")
    if chosen is not None:
        ax.axvline(chosen, color="tab:red", ls="--", gid="chosen", label=f"{chosen} components")
        ax.legend(loc="upper right")
    ax.set_yscale("log")
    ax.set_xlabel("Component")
    ax.set_ylabel("Explained variance ratio")
    return fig


def scree_hv(ratio: xr.DataArray):
    """Interactive twin of `scree_figure`: a ``Curve`` and ``Scatter`` (log y)."""
    hv = _holoviews()
    number, values = _ratio(ratio)
    kdims, vdims = [hv.Dimension("component", label="Component")], ["explained variance ratio"]
    curve = hv.Curve((number, values), kdims, vdims).opts(color="black", logy=True)
    points = hv.Scatter((number, values), kdims, vdims).opts(color="black", size=6, logy=True)
    return (curve * points).opts(responsive=True, min_height=250)


def _nmf_parts(result: xr.Dataset, dataset):
    """(q, q label, components (k, q), loadings (k, y, x), scan dims) of one dataset of `result`."""
    if not isinstance(result, xr.Dataset) or not {"components", "loadings"} <= set(result):
        raise OptionError("NMF figure: expected nmf()'s Dataset (components, loadings)")
    loadings = result["loadings"]
    if "dataset" in loadings.dims:
        names = [str(v) for v in loadings["dataset"].values]
        if dataset is None:
            dataset = names[0]
        if str(dataset) not in names:
            raise OptionError(f"NMF figure: dataset={dataset!r}; expected one of {names}")
        loadings = loadings.isel(dataset=names.index(str(dataset)))
    scan = [d for d in loadings.dims if d != "component"]
    if len(scan) != 2:
        raise OptionError(f"NMF figure: loading maps need two scan dims, got {scan}")
    q = result["q"]
    return (
        np.asarray(q.values, float),
        _label(q, "q"),
        np.asarray(result["components"].values, float),
        np.asarray(loadings.transpose("component", *scan).values, float),
        scan,
    )


@_styled
def nmf_figure(
    result: xr.Dataset,
    *,
    dataset: str | None = None,
    cmap: str = "viridis",
    colours: Sequence[str] | None = None,
    width: float = 7.0,
) -> Figure:
    """NMF components over q (top) and each component's loading map (below).

    Parameters
    ----------
    result : Dataset
        `beamcat.analyses.decomposition.nmf` output.
    dataset : str, optional
        For a fit of several datasets: whose loading maps to draw (default the first).
    cmap : str
        Colour map of the loading maps (1-99 % percentiles of each map).
    colours : sequence of str, optional
        One per component.
    width : float
        Inches.

    Returns
    -------
    Figure
        Axes ``"components"`` with one line per component (gid
        ``"component:<k>"``), and axes ``"loading:<k>"`` with its map (image gid
        ``"loading:<k>"``), titled in the component's colour.
    """
    q, q_label, components, maps, scan = _nmf_parts(result, dataset)
    n = components.shape[0]
    columns = min(n, 4)
    rows = -(-n // columns)
    fig = _figure((width, 2.6 + rows * width / columns * 0.9), layout="constrained")
    grid = fig.add_gridspec(1 + rows, columns, height_ratios=[1.3] + [1.0] * rows)
    ax = fig.add_subplot(grid[0, :], label="components")
    for k in range(n):
        ax.plot(
            q,
            components[k],
            color=_colour(colours or _PALETTE, k),
            gid=f"component:{k}",
            label=f"component {k}",
        )
    ax.set_xlabel(q_label)
    ax.set_ylabel("Component (max 1)")
    ax.legend(loc="upper right", ncols=min(n, 3))
    colour_map = colormaps[cmap].with_extremes(bad="0.6")
    for k in range(n):
        map_ax = fig.add_subplot(grid[1 + k // columns, k % columns], label=f"loading:{k}")
        vmin, vmax = _limits(maps[k])
        image = map_ax.imshow(
            np.ma.masked_invalid(maps[k]),
            cmap=colour_map,
            vmin=vmin,
            vmax=vmax,
            interpolation="nearest",
        )
        image.set_gid(f"loading:{k}")
        map_ax.set_title(f"loading {k}", color=_colour(colours or _PALETTE, k))
        map_ax.set_xlabel(scan[1])
        map_ax.set_ylabel(scan[0])
        fig.colorbar(image, ax=map_ax, shrink=0.8)
    return fig


def nmf_hv(result: xr.Dataset, *, dataset: str | None = None, cmap: str = "viridis"):
    """Interactive twin of `nmf_figure`.

    Returns
    -------
    holoviews.Layout
        An ``Overlay`` of one ``Curve`` per component, then one ``Image`` per loading map.
    """
    hv = _holoviews()
    q, q_label, components, maps, scan = _nmf_parts(result, dataset)
    kdims = [hv.Dimension("q", label=q_label)]
    curves = hv.Overlay(
        [
            hv.Curve((q, c), kdims, ["component"], label=f"component {k}").opts(
                color=_colour(_PALETTE, k)
            )
            for k, c in enumerate(components)
        ]
    ).opts(responsive=True, min_height=250, legend_position="top_right")
    images = [
        hv.Image(
            (np.arange(m.shape[1]), np.arange(m.shape[0]), m),
            [scan[1], scan[0]],
            ["loading"],
            label=f"loading {k}",
        ).opts(cmap=cmap, colorbar=True, invert_yaxis=True, aspect="equal", frame_width=220)
        for k, m in enumerate(maps)
    ]
    return hv.Layout([curves, *images]).cols(min(len(images), 3) or 1)


@_styled
def correlation_figure(
    loadings: xr.Dataset | xr.DataArray,
    maps: xr.DataArray,
    *,
    components: Sequence[int] | None = None,
    panel: float = 2.2,
) -> Figure:
    """Scatter of each loading map against each element map, position by position, with Pearson r.

    Parameters
    ----------
    loadings : DataArray (component, <scan dims>), or `nmf`'s Dataset
    maps : DataArray (element, <scan dims>)
        `beamcat.analyses.edx.element_maps` output for the same scan.
    components : sequence of int, optional
        Which components (rows); default all.
    panel : float
        Inches per panel.

    Returns
    -------
    Figure
        One axes ``"scatter:<k>:<element>"`` per pair (the points: gid
        ``"scatter:<k>:<element>"``), titled with `correlate`'s r.
    """
    r = correlate(loadings, maps)
    if isinstance(loadings, xr.Dataset):
        loadings = loadings["loadings"]
    chosen = list(r["component"].values) if components is None else list(components)
    elements = [str(e) for e in r["element"].values]
    scan = [d for d in loadings.dims if d != "component"]
    fig = _figure((panel * len(elements), panel * len(chosen)), layout="constrained")
    for i, k in enumerate(chosen):
        x = np.asarray(loadings.sel(component=k).transpose(*scan).values, float).ravel()
        for j, element in enumerate(elements):
            y = np.asarray(maps.sel(element=element).transpose(*scan).values, float).ravel()
            ax = fig.add_subplot(
                len(chosen),
                len(elements),
                i * len(elements) + j + 1,
                label=f"scatter:{k}:{element}",
            )
            ax.scatter(
                x, y, s=4, alpha=0.6, color=_colour(_PALETTE, int(k)), gid=f"scatter:{k}:{element}"
            )
            ax.set_title(f"r = {float(r.sel(component=k, element=element)):.3f}", fontsize=8)
            ax.set_xlabel(f"loading {k}")
            ax.set_ylabel(f"{element} ({maps.attrs.get('units', 'counts')})")
    return fig
