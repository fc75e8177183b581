"""HoloViews elements the diffraction pages draw over a displayed image: q-curves, the mask.

The 1D pattern and the cake are the figures' twins (`beamcat.figures.diffraction`);
the image is the live page's block-reduced display (`beamcat.apps.live_display`),
which megapixel detectors need and on which ROIs and mask regions are drawn.

The image axes of the pages are detector pixels with pixel ``i`` spanning
``[i, i + 1)`` (`beamcat.apps.live_display`); ring contours come in raw-image
pixel coordinates with pixel centres at integer values
(`beamcat.analyses.calibrant`), so they are shifted by half a pixel here.
"""

from __future__ import annotations

from collections.abc import Sequence

import holoviews as hv
import numpy as np

from beamcat.apps.diffraction_data import Curve
from beamcat.apps.live_display import display_bounds
from beamcat.figures.diffraction import RING_COLOUR


def rings_element(curves: Sequence[Curve], region: Sequence[int] | None = None) -> hv.Path:
    """The rings as paths on the image axes, in the figures' ring colour (one path per ring).

    Parameters
    ----------
    curves : list of Curve
        As `beamcat.apps.diffraction_data.curve_contours` returns them.
    region : (x, y, w, h), optional
        Only the parts inside this region of the image (the axes of a zoomed
        image would otherwise grow to the whole rings).
    """
    paths = []
    for c in curves:
        x, y = c.xy[:, 0] + 0.5, c.xy[:, 1] + 0.5
        if region is not None:
            x0, y0, w, h = region
            outside = (x < x0) | (x > x0 + w) | (y < y0) | (y > y0 + h)
            x, y = np.where(outside, np.nan, x), np.where(outside, np.nan, y)
        paths.append({"x": x, "y": y, "ring": c.label})
    # no hover tool: HoloViews would split every path into its segments for it
    return hv.Path(paths, ["x", "y"], vdims=["ring"]).opts(
        color=RING_COLOUR, line_width=1.5, alpha=0.8
    )


def mask_element(data) -> hv.Image:
    """Masked pixels in translucent red over the image, from ``(display_image of the mask, _)``.

    The mask is reduced like the image (a block is red when any of its pixels
    is masked) so that it lines up with the image it covers.
    """
    shown = data[0]
    values = np.where(shown.values[::-1] > 0, 1.0, np.nan)
    return hv.Image(values, ["x", "y"], "masked", bounds=display_bounds(shown)).opts(
        cmap=["#d62728"], alpha=0.45, clipping_colors={"NaN": "transparent"}, colorbar=False
    )
