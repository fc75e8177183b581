"""HoloViews elements of the 4D-STEM page: virtual image, marker, detector, rings, profiles.

Axes follow the other pages: a scan position (row i, column j) or a detector
pixel spans ``[j, j + 1) x [i, i + 1)`` on the plot, row 0 on top, so a click at
(x, y) is position ``(floor(y), floor(x))``. Shapes drawn on a pattern (the
virtual detector, the calibration's ellipse and Au rings) come in pixel
coordinates with pixel centres at integer values and are shifted by half a
pixel here, as `beamcat.apps.diffraction_plots` shifts its rings.
"""

from __future__ import annotations

import holoviews as hv
import numpy as np
import xarray as xr

from beamcat.analyses.stem4d_calibration import AU_REFLECTIONS, AuCalibration
from beamcat.apps.quicklook import robust_limits
from beamcat.apps.stem4d_data import Detector
from beamcat.figures.stem4d import RING_COLOUR, ellipse_xy

#: colour of the virtual detector drawn on the pattern and of the selected position
DETECTOR_COLOUR = "#00c8ff"
#: largest side (screen px) of the two images
IMAGE_SIZE = 380


def scan_position(x: float | None, y: float | None, shape: tuple[int, int]) -> tuple | None:
    """The scan position (row, column) under plot coordinates (x, y), None outside the scan.

    Examples
    --------
    >>> scan_position(3.7, 0.2, (32, 32)), scan_position(32.0, 1.0, (32, 32))
    ((0, 3), None)
    """
    if x is None or y is None or not (np.isfinite(x) and np.isfinite(y)):
        return None
    i, j = int(np.floor(y)), int(np.floor(x))
    return (i, j) if 0 <= i < shape[0] and 0 <= j < shape[1] else None


def _image(values, title: str, kdims: list[str], vdim: str, cmap: str, top: float) -> hv.Image:
    """An image, pixel (i, j) over ``[j, j + 1) x [i, i + 1)``, row 0 on top; empty for None."""
    if values is None:
        return hv.Image([], kdims, vdim).opts(title=title, tools=["tap"])
    ny, nx = values.shape
    return hv.Image(values[::-1], kdims, vdim, bounds=(0, 0, nx, ny)).opts(
        cmap=cmap,
        clim=robust_limits(values, percentiles=(0.5, top)),
        invert_yaxis=True,
        data_aspect=1,
        colorbar=True,
        tools=["hover", "tap"],
        title=title,
        **({"frame_width": IMAGE_SIZE} if nx >= ny else {"frame_height": IMAGE_SIZE}),
    )


def virtual_element(data) -> hv.Image:
    """The virtual image of ``(image (scan_y, scan_x), title)``; an empty image for None."""
    image, title = data
    return _image(image, title, ["scan_x", "scan_y"], "intensity", "gray", 99.5)


def pattern_element(data) -> hv.Image:
    """The pattern of ``(pattern (y, x), title)`` on a log scale (log10 of 1 + counts)."""
    pattern, title = data
    shown = None if pattern is None else np.log10(1.0 + np.clip(np.nan_to_num(pattern), 0, None))
    return _image(shown, title, ["x", "y"], "log10(1 + counts)", "magma", 99.9)


def marker_element(position: tuple[int, int] | None) -> hv.Points:
    """The selected scan position, a cross at its pixel's centre (none before the first)."""
    points = [] if position is None else [(position[1] + 0.5, position[0] + 0.5)]
    return hv.Points(points, ["scan_x", "scan_y"]).opts(
        marker="x", size=14, line_width=3, color=DETECTOR_COLOUR
    )


def _circle(centre: tuple[float, float], radius: float, n: int = 181) -> tuple:
    t = np.linspace(0.0, 2.0 * np.pi, n)
    return centre[0] + 0.5 + radius * np.cos(t), centre[1] + 0.5 + radius * np.sin(t)


def detector_element(detector: Detector | None) -> hv.Path:
    """The virtual detector's edges on the pattern: one circle for a disc, two for an annulus."""
    paths = []
    if detector is not None:
        radii = [detector.outer] if detector.inner == 0 else [detector.inner, detector.outer]
        paths = [dict(zip(("x", "y"), _circle(detector.centre, r), strict=True)) for r in radii]
    return hv.Path(paths, ["x", "y"]).opts(color=DETECTOR_COLOUR, line_width=2, line_dash="dashed")


def calibration_element(calibration: AuCalibration | None) -> hv.Overlay:
    """The calibration's fitted ellipse (red) and the Au rings as ellipses (white).

    Two paths: the ellipse, and the rings (one path per Au reflection: 111, 200,
    220, 311); both empty without a calibration.
    """
    ellipse, rings = [], []
    if calibration is not None:
        ratio = calibration.b / calibration.a
        x, y = ellipse_xy(calibration, calibration.a, calibration.b)
        ellipse = [{"x": x + 0.5, "y": y + 0.5}]
        for d in AU_REFLECTIONS.values():
            r = 1.0 / d / calibration.reciprocal_pixel_size
            x, y = ellipse_xy(calibration, r, r * ratio)
            rings.append({"x": x + 0.5, "y": y + 0.5})
    # no hover tool: HoloViews would split every path into its segments for it
    return hv.Path(ellipse, ["x", "y"]).opts(color=RING_COLOUR, line_width=1.5) * hv.Path(
        rings, ["x", "y"]
    ).opts(color="white", line_width=1, alpha=0.7)


def profile_elements(profile: xr.Dataset | None, title: str) -> tuple[hv.Curve, hv.Curve]:
    """The radial mean and the normalised variance of one position, over q."""
    if profile is None:
        return hv.Curve([]).opts(title=f"Radial mean: {title}"), hv.Curve([]).opts(
            title=f"Normalised variance: {title}"
        )
    q = profile["q"]
    kdims = [hv.Dimension("q", label=f"q ({q.attrs.get('units', 'px')})")]
    size = {"responsive": True, "height": 280}
    mean = hv.Curve((q.values, profile["mean"].values), kdims, ["mean"]).opts(
        title=f"Radial mean {title}", color="#1f77b4", **size
    )
    variance = hv.Curve(
        (q.values, profile["normalized_variance"].values), kdims, ["variance / mean²"]
    ).opts(title=f"Normalised variance {title}", color="#d62728", **size)
    return mean, variance
