"""How the live page shows a detector image: reduced in blocks to fit, on detector-pixel axes.

Detector images are larger than a screen: `display_image` takes blocks of
``factor x factor`` pixels, by their maximum (a single hot pixel or photon stays
visible) or their mean, of the whole image or of one ROI's region; its
coordinates stay detector pixels, so ROIs drawn on it are in detector pixels.
"""

from __future__ import annotations

import math

import holoviews as hv
import numpy as np
import xarray as xr

from beamcat.apps.quicklook import robust_limits
from beamcat.figures import block_reduce
from beamcat.rois import Rect

#: largest displayed image (rows, columns); bigger images are shown in blocks
DISPLAY_SHAPE = (400, 640)


def display_factor(shape: tuple[int, int], limit: tuple[int, int] = DISPLAY_SHAPE) -> int:
    """The smallest block size that fits an image of `shape` into `limit` (rows, columns)."""
    return max(1, math.ceil(max(n / m for n, m in zip(shape, limit, strict=True))))


def display_image(
    image: np.ndarray,
    *,
    region: Rect | None = None,
    max_filter: bool = True,
    limit: tuple[int, int] = DISPLAY_SHAPE,
) -> xr.DataArray:
    """The part of an image the page shows, reduced in blocks to fit the display.

    Parameters
    ----------
    image : ndarray (y, x)
    region : Rect, optional
        Show only ``image[y:y+h, x:x+w]`` (clipped to the image); default all.
    max_filter : bool
        Blocks by maximum (True) or mean (False), see `block_reduce`.
    limit : (rows, columns)
        Largest displayed shape.

    Returns
    -------
    DataArray (y, x) float64
        Coordinates ``y``, ``x`` are block centres in detector pixels (pixel i
        spans [i, i + 1)); attrs ``factor`` (block size) and ``region``
        ``(x, y, w, h)`` actually shown.
    """
    ny, nx = image.shape
    x, y, w, h = region if region is not None else (0, 0, nx, ny)
    x0, y0 = min(max(int(x), 0), nx - 1), min(max(int(y), 0), ny - 1)
    x1, y1 = min(max(int(x + w), x0 + 1), nx), min(max(int(y + h), y0 + 1), ny)
    part = np.asarray(image)[y0:y1, x0:x1]
    factor = display_factor(part.shape, limit)
    values = block_reduce(part, factor, how="max" if max_filter else "mean")
    # blocks are regular: the last one may reach past the edge (its value is of its pixels)
    centres = [
        start + factor * (np.arange(n) + 0.5)
        for start, n in zip((y0, x0), values.shape, strict=True)
    ]
    return xr.DataArray(
        values,
        dims=("y", "x"),
        coords={"y": centres[0], "x": centres[1]},
        attrs={"factor": factor, "region": (x0, y0, x1 - x0, y1 - y0)},
    )


def display_bounds(shown: xr.DataArray) -> tuple[float, float, float, float]:
    """``(x0, y0, x1, y1)`` in detector pixels of the blocks of a `display_image` output."""
    factor = shown.attrs["factor"]
    x0, y0 = shown["x"].values[0] - factor / 2, shown["y"].values[0] - factor / 2
    ny, nx = shown.shape
    return (x0, y0, x0 + nx * factor, y0 + ny * factor)


def image_element(data) -> hv.Image:
    """The image of ``(display_image output, title)``, row 0 on top, axes fitting its region."""
    shown, title = data
    ny, nx = shown.shape
    wide = nx * 400 > ny * 640
    return hv.Image(shown.values[::-1], ["x", "y"], "counts", bounds=display_bounds(shown)).opts(
        cmap="gray",
        clim=robust_limits(shown.values, percentiles=(1.0, 99.9)),
        invert_yaxis=True,
        data_aspect=1,
        colorbar=True,
        tools=["hover"],
        title=title,
        **({"frame_width": 640} if wide else {"frame_height": 400}),
    )
