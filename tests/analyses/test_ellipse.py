"""elliptical_radius against the demo's planted distortion (its own independent formula)."""

from __future__ import annotations

import numpy as np

from beamcat.analyses.ellipse import elliptical_radius, from_p_ellipse, to_p_ellipse
from beamcat.catalog.demo import stem4d


def test_elliptical_radius_matches_planted_distortion():
    # the demo writes its rings with undistorted_radius(); both are the same closed form,
    # so they agree to float64 rounding of a ~100 px radius
    ours = elliptical_radius(
        (stem4d.DET, stem4d.DET),
        x0=stem4d.CENTRE[0],
        y0=stem4d.CENTRE[1],
        a=10.0,
        b=10.0 * stem4d.AXIS_RATIO,
        theta=stem4d.THETA,
    )
    np.testing.assert_allclose(ours, stem4d.undistorted_radius(), rtol=0, atol=1e-12)


def test_circle_is_plain_distance():
    r = elliptical_radius((4, 6), x0=2.5, y0=1.0, a=3.0, b=3.0, theta=0.7)
    yy, xx = np.indices((4, 6))
    np.testing.assert_allclose(r, np.hypot(xx - 2.5, yy - 1.0), atol=1e-12)


def test_p_ellipse_in_py4dstem_axes():
    # py4DSTEM's canonical ellipse A x² + B x y + C y² = 1 (x the row, its
    # convert_ellipse_params_r formulas): its points lie at corrected radius a once
    # p_ellipse is read with from_p_ellipse; to_p_ellipse inverts it
    row0, col0, a, b, angle = 30.0, 41.0, 12.0, 9.0, 0.4
    sin2, cos2 = np.sin(angle) ** 2, np.cos(angle) ** 2
    big_a, big_c = sin2 / b**2 + cos2 / a**2, cos2 / b**2 + sin2 / a**2
    big_b = 2 * (b**2 - a**2) * np.sin(angle) * np.cos(angle) / (a**2 * b**2)
    phi = np.linspace(0, 2 * np.pi, 50)
    direction = np.stack([np.cos(phi), np.sin(phi)])  # (row, column) offsets
    quad = (
        big_a * direction[0] ** 2 + big_b * direction[0] * direction[1] + big_c * direction[1] ** 2
    )
    rows, cols = row0 + direction[0] / np.sqrt(quad), col0 + direction[1] / np.sqrt(quad)
    ours = from_p_ellipse([row0, col0, a, b, angle])
    yy, xx = rows - ours["y0"], cols - ours["x0"]
    u = xx * np.cos(ours["theta"]) + yy * np.sin(ours["theta"])
    v = -xx * np.sin(ours["theta"]) + yy * np.cos(ours["theta"])
    np.testing.assert_allclose(np.hypot(u, v * a / b), a, rtol=1e-12)
    np.testing.assert_allclose(to_p_ellipse(**ours), [row0, col0, a, b, angle], rtol=1e-12)
