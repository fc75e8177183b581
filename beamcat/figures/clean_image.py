"""The photon clean image: photons per pixel, the analysis ROI, the photon count, a scale bar.

`clean_image_figure` (matplotlib) and its HoloViews twin `clean_image_hv`, for
`beamcat.analyses.photon.clean_image`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from beamcat.figures._common import (
    _add_rectangle,
    _analysis_roi,
    _check_image,
    _figure,
    _holoviews,
    _image_axes,
    _scale_bar,
    _styled,
)

__all__ = ["clean_image_figure", "clean_image_hv"]


def _clean(clean: xr.DataArray) -> xr.DataArray:
    clean = _check_image(clean, "clean")
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
