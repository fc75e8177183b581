"""elliptical_radius against the demo's planted distortion (its own independent formula)."""

from __future__ import annotations

import numpy as np

from beamcat.analyses.ellipse import elliptical_radius
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
