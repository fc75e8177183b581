"""Finding a diffraction ring and the ellipse through it (the Au calibration's steps).

- `beam_centre`: the direct beam (pixels above half the median-filtered maximum);
- `ring_sums`, `profile_peaks`: the circular radial profile about it and how
  far it stands above its grey opening, in standard errors;
- `match_scale`: the scale that puts a set of reflections on those peaks;
- `ring_points`: the pattern sampled along `RAYS` rays about an expected
  ellipse (bilinear, `STEP` px along each ray), averaged in `SECTORS` sectors;
  per sector, the maximum above the straight line between the window's ends,
  refined to sub-pixel by a parabola through the samples within 1 px.
- `fit_ellipse`: pyFAI's algebraic fit (`pyFAI.utils.ellipse.fit_ellipse`)
  refined by geometric least squares (soft-L1 loss: outliers weigh less), in
  `beamcat.analyses.ellipse`'s convention (``a`` the major semi-axis along
  ``theta`` in ``(-pi/2, pi/2]``, from +x towards +y).

Examples
--------
>>> phi = np.linspace(0, 2 * np.pi, 60, endpoint=False)
>>> x, y = 10 + 8 * np.cos(phi), 20 + 6 * np.sin(phi)
>>> [round(v, 6) for v in fit_ellipse(x, y)[0]]
[10.0, 20.0, 8.0, 6.0, 0.0]
"""

from __future__ import annotations

import numpy as np
from pyFAI.utils.ellipse import fit_ellipse as pyfai_fit_ellipse
from scipy import ndimage, optimize

from beamcat.analyses.ellipse import elliptical_radius

__all__ = [
    "RAYS",
    "SECTORS",
    "STEP",
    "beam_centre",
    "fit_ellipse",
    "match_scale",
    "profile_peaks",
    "ring_points",
    "ring_sums",
]

#: rays sampled, sectors they are averaged in (2° each), sampling step along a ray (px)
RAYS, SECTORS, STEP = 720, 180, 0.25


def beam_centre(pattern: np.ndarray) -> tuple[float, float]:
    """(x, y) centre of the direct beam: the pixels above half the maximum, hot pixels aside.

    The maximum is that of the 5 x 5 median-filtered pattern, so single hot
    pixels (and clusters of up to 12) neither set it nor join the beam.
    """
    smooth = ndimage.median_filter(np.nan_to_num(pattern, nan=0.0, posinf=0.0), size=5)
    y, x = ndimage.center_of_mass(smooth > 0.5 * smooth.max())
    return float(x), float(y)


def ring_sums(pattern: np.ndarray, r: np.ndarray, step: float = 1.0):
    """Per ring of radius ``r`` (bins of `step` px, centred on multiples): count, Σv, Σv²."""
    valid = np.isfinite(pattern)
    bins = np.rint(r[valid] / step).astype(np.intp)
    values = pattern[valid]
    return np.bincount(bins), np.bincount(bins, values), np.bincount(bins, values * values)


def profile_peaks(pattern: np.ndarray, centre: tuple[float, float]) -> np.ndarray:
    """How far the circular radial profile (1 px bins) stands above its grey opening, in SE.

    The profile's peaks (the profile minus its grey opening, which removes
    peaks narrower than a twelfth of the profile) in standard errors of each
    bin's mean (the spread of its pixels / sqrt(count)), up to the last radius
    where at least half the circle is inside the frame.
    """
    r = elliptical_radius(pattern.shape, x0=centre[0], y0=centre[1], a=1.0, b=1.0, theta=0.0)
    count, total, squares = ring_sums(pattern, r)
    inside = np.flatnonzero(count >= np.pi * np.arange(len(count)))[-1] + 1
    count, total, squares = np.maximum(count[:inside], 1), total[:inside], squares[:inside]
    mean = total / count
    error = np.sqrt(np.maximum(squares / count - mean**2, 0) / count)
    above = mean - ndimage.grey_opening(mean, size=max(5, inside // 12))
    return np.divide(above, error, out=np.zeros_like(above), where=error > 0)


def match_scale(peaks: np.ndarray, s: np.ndarray, window: tuple[float, float] | None) -> float:
    """The scale k (px per 1/Angstrom) that puts the reflections `s` best on `peaks`.

    Scored by the mean of `peaks` at the radii ``k * s`` inside the profile,
    over a geometric grid of k whose outermost ring moves by 0.25 px a step:
    within `window`, else from the first ring at 3 px to the second at the
    profile's end; two rings at least inside, so their ratios decide.
    """
    n_edge = len(peaks) - 1
    lo, hi = window if window else (3.0 / s[0], n_edge / s[1])
    grid = np.geomspace(lo, hi, max(2, int(np.log(hi / lo) * s[-1] * hi * 4)))
    radii = grid[:, None] * s[None, :]
    values = np.interp(radii, np.arange(len(peaks)), peaks)
    inside = radii < n_edge
    score = np.where(inside, values, 0.0).sum(1) / np.maximum(inside.sum(1), 1)
    score[inside.sum(1) < 2] = -np.inf
    return float(grid[np.argmax(score)])


def ring_points(
    pattern: np.ndarray,
    x0: float,
    y0: float,
    a: float,
    b: float,
    theta: float,
    *,
    half_width: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel points ``(x, y)`` on the ring nearest an expected ellipse, one per 2° sector.

    Parameters
    ----------
    pattern : ndarray (y, x)
    x0, y0, a, b, theta : float
        The expected ring (px, rad; `beamcat.analyses.ellipse` convention).
    half_width : float
        How far (px) on either side of the expected ring to look.

    Returns
    -------
    x, y : ndarray (n,)
        Points of the sectors whose whole window lies inside the frame (and
        whose ring stands above the window's straight background).
    """
    ny, nx = pattern.shape
    phi = (np.arange(RAYS) + 0.5) * (2 * np.pi / RAYS)
    # the expected radius along each ray: the ellipse in polar form about its centre
    rho = a * b / np.hypot(b * np.cos(phi - theta), a * np.sin(phi - theta))
    offsets = np.arange(-half_width, half_width + STEP / 2, STEP)
    r = rho[:, None] + offsets[None, :]
    xs, ys = x0 + r * np.cos(phi)[:, None], y0 + r * np.sin(phi)[:, None]
    inside = (xs >= 0) & (xs <= nx - 1) & (ys >= 0) & (ys <= ny - 1)
    values = ndimage.map_coordinates(np.nan_to_num(pattern), [ys, xs], order=1)
    values[~inside | ~ndimage.map_coordinates(np.isfinite(pattern), [ys, xs], order=0)] = np.nan
    per = RAYS // SECTORS
    sectors = values.reshape(SECTORS, per, -1).mean(1)
    mid_r = r.reshape(SECTORS, per, -1).mean(1)
    phi_s = phi.reshape(SECTORS, per).mean(1)
    xs_out, ys_out = [], []
    for k in np.flatnonzero(np.isfinite(sectors).all(1)):
        radius = _subpixel_peak(sectors[k], mid_r[k])
        if radius is not None:
            xs_out.append(x0 + radius * np.cos(phi_s[k]))
            ys_out.append(y0 + radius * np.sin(phi_s[k]))
    return np.array(xs_out), np.array(ys_out)


def _subpixel_peak(values: np.ndarray, radii: np.ndarray) -> float | None:
    """The radius of the maximum above a straight background (parabola within 1 px), or None.

    None also where the maximum is not above both ends of the window (a step,
    such as the direct beam's edge, is no ring).
    """
    line = np.linspace(values[0], values[-1], len(values))
    above = values - line
    i = int(np.argmax(above))
    near = np.abs(radii - radii[i]) <= 1.0
    if values[i] <= max(values[0], values[-1]) or i in (0, len(values) - 1) or near.sum() < 3:
        return None
    c2, c1, _ = np.polyfit(radii[near] - radii[i], above[near], 2)
    if c2 >= 0:
        return None
    return float(radii[i] - c1 / (2 * c2))


def fit_ellipse(x: np.ndarray, y: np.ndarray) -> tuple[tuple[float, ...], np.ndarray] | None:
    """(x0, y0, a, b, theta) through points, and their residuals (px); None if none fits.

    pyFAI's algebraic fit, refined by geometric least squares with a soft-L1 loss.
    """
    try:
        start = pyfai_fit_ellipse(y, x)
    except ValueError:  # pyFAI: no ellipse through these points
        return None
    p0 = [start.center_2, start.center_1, start.half_long_axis, start.half_short_axis, start.angle]

    def residuals(p):
        # each point's offset along (u) and across (v) the major axis, as elliptical_radius does
        w = ((x - p[0]) + 1j * (y - p[1])) * np.exp(-1j * p[4])
        return np.hypot(w.real, w.imag * p[2] / p[3]) - p[2]

    fit = optimize.least_squares(residuals, p0, loss="soft_l1", f_scale=0.5, x_scale="jac")
    x0, y0, a, b, theta = fit.x
    if b > a:  # a is the major axis
        a, b, theta = b, a, theta + np.pi / 2
    theta = np.pi / 2 - (np.pi / 2 - theta) % np.pi  # in (-pi/2, pi/2]
    return (float(x0), float(y0), float(a), float(b), float(theta)), fit.fun
