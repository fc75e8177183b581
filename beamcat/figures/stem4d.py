"""4D-STEM calibration figures: the two checks of ePSIC's Au calibration notebook.

- `calibration_profile_figure`: the mean pattern's radial profile after the
  ellipse correction (each pixel binned by its corrected radius,
  `beamcat.analyses.stem4d_calibration.corrected_profile`), against s = 1/d,
  with the uncorrected (circular) profile beside it and the Au reflections
  marked: a good calibration puts sharp peaks on every mark.
- `calibration_pattern_figure`: the pattern with the ellipticity undone (for
  display only: an affine resampling, bilinear) beside the raw pattern, the
  fitted ellipse and the other Au rings drawn: circles on the corrected
  pattern, ellipses on the raw one.

Images are drawn with pixel centres at integer (x, y), rows downwards.

Examples
--------
>>> import beamcat
>>> from beamcat.analyses.stem4d_calibration import calibrate_au
>>> ref = beamcat.open_catalog()["stem4d_au_reference"].read()  # doctest: +SKIP
>>> cal = calibrate_au(ref, voltage_kv=300)  # doctest: +SKIP
>>> fig = calibration_profile_figure(ref, cal)  # doctest: +SKIP
>>> fig = calibration_pattern_figure(ref, cal)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses

import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from scipy import ndimage

from beamcat.analyses.stem4d_calibration import (
    AU_REFLECTIONS,
    AuCalibration,
    as_calibration,
    corrected_profile,
    mean_pattern,
)
from beamcat.figures._common import _figure, _limits, _styled

__all__ = [
    "RING_COLOUR",
    "calibration_pattern_figure",
    "calibration_profile_figure",
    "ellipse_xy",
]

#: colour of the Au reflections and the fitted ellipse
RING_COLOUR = "#e4002b"


@_styled
def calibration_profile_figure(
    reference: xr.Dataset | xr.DataArray | np.ndarray,
    calibration: AuCalibration | dict | str,
    *,
    step: float = 0.5,
    log: bool = False,
    width: float = 6.0,
) -> Figure:
    """The ellipse-corrected radial profile of the mean pattern, Au reflections marked.

    Parameters
    ----------
    reference : Dataset, DataArray (..., y, x) or ndarray (y, x)
        The Au reference scan (averaged here: this computes) or its mean pattern.
    calibration : AuCalibration, dict or path
        The calibration, attrs holding it (``ds.attrs`` after ``calibration=``),
        or its JSON (`beamcat.analyses.stem4d_calibration.as_calibration`).
    step : float
        Bin width (px along the major axis).
    log : bool
        Logarithmic intensity axis (else linear, scaled to the rings).
    width : float
        Width (in).

    Returns
    -------
    Figure
        Axes ``"profile"``: `Line2D` gids ``"corrected"`` and ``"uncorrected"``
        (the circular profile about the same centre), a `LineCollection` gid
        ``"reflections"`` (one vertical line per Au reflection at s = 1/d, in
        `AU_REFLECTIONS` order) with their hkl as text.
    """
    cal = as_calibration(calibration)
    pattern = mean_pattern(reference)
    profile = corrected_profile(pattern, cal, step=step)
    circle = dataclasses.replace(cal, b=cal.a)  # the same centre and scale, no correction
    plain = corrected_profile(pattern, circle, step=step)
    fig = _figure((width, width * 0.55), layout="constrained")
    ax = fig.add_subplot(label="profile")
    ax.plot(plain.s, plain, color="0.6", lw=1.0, label="uncorrected", gid="uncorrected")
    ax.plot(profile.s, profile, color="black", lw=1.0, label="ellipse corrected", gid="corrected")
    s = [1.0 / d for d in AU_REFLECTIONS.values()]
    if log:
        ax.set_yscale("log")
    else:  # the rings' range: the direct beam would flatten them
        rings = profile.where(profile.s > 0.75 * min(s))
        ax.set_ylim(0, 1.15 * float(rings.max()))
    ax.vlines(s, 0, 1, transform=ax.get_xaxis_transform(), color=RING_COLOUR, lw=0.8,
              linestyles="dashed", gid="reflections")  # fmt: skip
    for hkl, x in zip(AU_REFLECTIONS, s, strict=True):
        ax.annotate(hkl, (x, 0.97), xycoords=("data", "axes fraction"), color=RING_COLOUR,
                    ha="center", va="top", fontsize=8, backgroundcolor="white")  # fmt: skip
    ax.set_xlim(0, min(float(profile.s[-1]), 1.25 * max(s)))
    ax.set_xlabel("s = 1/d (Å⁻¹)")
    ax.set_ylabel("Mean intensity")
    ax.set_title(
        f"Au {cal.reflection or ''} calibration: {cal.reciprocal_pixel_size:.5g} Å⁻¹/px, "
        f"b/a = {cal.b / cal.a:.4f}, θ = {np.degrees(cal.theta):.1f}°",
        loc="left",
        fontsize=9,
    )
    ax.legend(loc="center right")
    return fig


def _undistorted(pattern: np.ndarray, cal: AuCalibration) -> np.ndarray:
    """The pattern resampled so the rings are circles of radius ``a`` (bilinear; NaN outside).

    A corrected point q comes from the raw point ``c + R diag(1, b/a) Rᵀ (q - c)``,
    R the rotation by theta (the inverse of `beamcat.analyses.ellipse`'s correction).
    """
    cos, sin = np.cos(cal.theta), np.sin(cal.theta)
    rotation = np.array([[cos, -sin], [sin, cos]])  # (x, y) columns: along and across theta
    matrix = rotation @ np.diag([1.0, cal.b / cal.a]) @ rotation.T
    matrix = matrix[::-1, ::-1]  # (x, y) -> (row, column) order
    centre = np.array([cal.y0, cal.x0])
    return ndimage.affine_transform(
        np.nan_to_num(pattern, nan=0.0),
        matrix,
        offset=centre - matrix @ centre,
        order=1,
        mode="constant",
        cval=np.nan,
    )


def ellipse_xy(cal: AuCalibration, a: float, b: float, n: int = 361):
    """Vertices (x, y) of the ellipse with semi-axes a, b about the calibration's centre."""
    t = np.linspace(0, 2 * np.pi, n)
    u, v = a * np.cos(t), b * np.sin(t)
    cos, sin = np.cos(cal.theta), np.sin(cal.theta)
    return cal.x0 + u * cos - v * sin, cal.y0 + u * sin + v * cos


def _rings(cal: AuCalibration, ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """The Au rings' outlines (NaN between them), minor/major axis `ratio` (1: circles)."""
    xs, ys = [], []
    for d in AU_REFLECTIONS.values():
        r = 1.0 / d / cal.reciprocal_pixel_size
        x, y = ellipse_xy(cal, r, r * ratio)
        xs += [x, [np.nan]]
        ys += [y, [np.nan]]
    return np.concatenate(xs), np.concatenate(ys)


@_styled
def calibration_pattern_figure(
    reference: xr.Dataset | xr.DataArray | np.ndarray,
    calibration: AuCalibration | dict | str,
    *,
    log: bool = True,
    cmap: str = "magma",
    width: float = 9.0,
) -> Figure:
    """The mean pattern with the ellipticity corrected, beside the raw one with the fit drawn.

    Parameters
    ----------
    reference, calibration
        As for `calibration_profile_figure`.
    log : bool
        Log colour scale (values below the smallest positive one drawn as it).
    cmap : str
        Matplotlib colour map.
    width : float
        Width (in).

    Returns
    -------
    Figure
        Axes ``"corrected"`` (the resampled pattern, NaN where it falls
        outside the frame; the Au rings as circles, `Line2D` gid ``"rings"``)
        and ``"raw"`` (the pattern as read; the fitted ellipse, gid
        ``"ellipse"``, and the Au rings as ellipses, gid ``"rings"``).
    """
    cal = as_calibration(calibration)
    raw = mean_pattern(reference)
    images = {"corrected": _undistorted(raw, cal), "raw": raw}
    ny, nx = raw.shape
    fig = _figure((width, width * ny / nx / 2 + 0.6), layout="constrained")
    floor = np.nanmin(raw[raw > 0], initial=1.0) if log else None
    lo, hi = _limits(np.log10(np.fmax(raw, floor)) if log else raw, 1.0, 99.9)
    for i, (name, image) in enumerate(images.items()):
        ax = fig.add_subplot(1, 2, i + 1, label=name)
        shown = np.log10(np.fmax(image, floor)) if log else image  # NaN (outside) stays NaN
        ax.imshow(shown, cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
        ratio = 1.0 if name == "corrected" else cal.b / cal.a
        ax.plot(*_rings(cal, ratio), color="white", lw=0.5, ls=":", gid="rings")
        if name == "raw":
            ax.plot(*ellipse_xy(cal, cal.a, cal.b), color=RING_COLOUR, lw=1.0, gid="ellipse")
        ax.set_xlim(-0.5, nx - 0.5)
        ax.set_ylim(ny - 0.5, -0.5)
        ax.set_xlabel("x (pixel)")
        ax.set_ylabel("y (pixel)" if i == 0 else "")
        ax.set_title(
            "ellipticity corrected" if name == "corrected" else "raw, fitted ellipse",
            loc="left",
            fontsize=9,
        )
    return fig
