"""The radiography ROI image: the reference image with coloured, labelled ROIs.

`roi_image` (matplotlib) and its HoloViews twin `roi_image_hv`. ROI outlines
and labels are drawn in their colour over a contrasting halo (white behind a
dark colour, black behind a light one), so a box stays visible on any
background: the original's black box vanished on the black bed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr
from matplotlib import patheffects
from matplotlib.figure import Figure

from beamcat.figures._common import (
    ROI_COLOURS,
    _add_rectangle,
    _check_image,
    _colour,
    _contrast_colour,
    _figure,
    _halo,
    _halo_colour,
    _holoviews,
    _hv_image,
    _pixel_size,
    _rois,
    _show_image,
    scale_bar,
)
from beamcat.rois import Rect

__all__ = ["ROI_COLOURS", "roi_image", "roi_image_hv"]


def roi_image(
    reference: xr.DataArray,
    rois,
    *,
    colours: Sequence[str] | None = None,
    pixel_size: float | None = None,
    scale_bar_length: float | None = None,
    title: str | None = None,
    width: float = 6.0,
) -> Figure:
    """The reference image with coloured, labelled ROIs.

    Parameters
    ----------
    reference : DataArray (y, x)
        E.g. the mean of the first calibrated frames; shown in grey between its
        1st and 99th percentiles.
    rois : mapping name -> (x, y, w, h) / `Rect` / bool mask (y, x), or a sequence
        Rectangles are drawn on their pixel edges; masks as outlines.
    colours : sequence of str, optional
        One per ROI, cycled; default `ROI_COLOURS`.
    pixel_size : float, optional
        Metres per pixel for a scale bar (default ``reference.attrs["pixel_size"]``;
        no bar when unknown).
    scale_bar_length : float, optional
        Bar length in metres; default a round length near 1/5 of the width.
    title : str, optional
    width : float
        Figure width in inches (height follows the image's aspect).

    Returns
    -------
    Figure
        One axes (label ``"image"``); each rectangle is a `Rectangle` patch with
        gid ``"roi:<name>"``.

    Examples
    --------
    >>> fig = roi_image(reference, {"bed": (134, 75, 52, 30)})  # doctest: +SKIP
    """
    reference = _check_image(reference, "reference")
    ny, nx = reference.shape
    fig = _figure((width, width * ny / nx + (0.3 if title else 0.0)), layout="constrained")
    ax = fig.add_subplot(label="image")
    _show_image(ax, reference)
    for i, (name, roi) in enumerate(_rois(rois).items()):
        colour = _colour(colours, i)
        if isinstance(roi, Rect):
            patch = _add_rectangle(ax, roi, colour=colour, gid=f"roi:{name}")
            anchor = (patch.get_x(), patch.get_y() - 1.0)
        else:
            contour = ax.contour(
                roi.astype(np.float32), levels=[0.5], colors=[colour], linewidths=1.5
            )
            contour.set_path_effects(_halo(colour, 1.5))
            rows, cols = np.nonzero(roi)
            anchor = (cols.min() - 0.5, rows.min() - 1.5)
        text = ax.annotate(
            name, anchor, color=colour, fontsize=8, fontweight="bold", va="bottom", ha="left"
        )
        text.set_path_effects(
            [patheffects.withStroke(linewidth=2.5, foreground=_halo_colour(colour))]
        )
    size = _pixel_size(reference, pixel_size)
    if size:
        scale_bar(
            ax,
            size,
            nx,
            length=scale_bar_length,
            colour=_contrast_colour(reference.values, "lower right"),
        )
    if title:
        ax.set_title(title)
    return fig


def roi_image_hv(reference: xr.DataArray, rois, *, colours: Sequence[str] | None = None):
    """Interactive twin of `roi_image`: HoloViews image with ROI outlines and labels.

    Returns
    -------
    holoviews.Overlay
        ``Image * Rectangles * Labels``; rectangles carry the ROI name as a value.
    """
    hv = _holoviews()

    reference = _check_image(reference, "reference")
    image = _hv_image(reference)
    rects, labels, palette = [], [], []
    for i, (name, roi) in enumerate(_rois(rois).items()):
        if not isinstance(roi, Rect):
            rows, cols = np.nonzero(roi)
            roi = Rect(
                cols.min(), rows.min(), cols.max() + 1 - cols.min(), rows.max() + 1 - rows.min()
            )
        y0, y1, x0, x1 = roi.bounds()
        rects.append((x0 - 0.5, y0 - 0.5, x1 - 0.5, y1 - 0.5, name))
        labels.append((x0, y0 - 2, name))
        palette.append(_colour(colours, i))
    boxes = hv.Rectangles(rects, vdims="roi").opts(
        fill_alpha=0, line_width=2, line_color="roi", cmap=palette, tools=["hover"]
    )
    names = hv.Labels(labels, vdims="text").opts(text_color="white", text_font_size="9pt")
    return image * boxes * names
