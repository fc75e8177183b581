"""Elliptical distortion of diffraction patterns: the corrected radius of every pixel.

A projector lens distorts the rings of a diffraction pattern into ellipses. An
ellipse is ``(x0, y0, a, b, theta)``, ePSIC's ``p_ellipse``: centre (x = column,
y = row, pixel centres at integer indices), semi-axis ``a`` along the direction
``theta`` (rad, from +x towards +y) and ``b`` across it. A ring of true radius
``r`` (in pixels along ``theta``) is drawn as the ellipse with semi-axes ``r`` and
``r * b / a``; the corrected radius of a pixel is the ``r`` of the ring through it.

Examples
--------
>>> r = elliptical_radius((5, 5), x0=2, y0=2, a=2.0, b=1.0, theta=0.0)
>>> float(r[2, 4]), float(r[3, 2])  # two pixels along x, one along y (the short axis)
(2.0, 2.0)
"""

from __future__ import annotations

import numpy as np

__all__ = ["elliptical_radius"]


def elliptical_radius(
    shape: tuple[int, int], *, x0: float, y0: float, a: float, b: float, theta: float
) -> np.ndarray:
    """The corrected radius (px along the major axis) of every pixel of a ``(y, x)`` frame.

    Parameters
    ----------
    shape : (ny, nx)
        The frame's shape.
    x0, y0 : float
        Centre (px; x = column, y = row).
    a, b : float
        Semi-axes of any one ring (only ``b / a`` matters), ``a`` along `theta`.
    theta : float
        Direction of ``a`` (rad, from +x towards +y).

    Returns
    -------
    ndarray (ny, nx) of float64
        ``hypot(u, v * a / b)`` with ``u``, ``v`` the pixel's offset from the
        centre along and across `theta`.
    """
    yy, xx = np.indices(shape, dtype=np.float64)
    dx, dy = xx - x0, yy - y0
    u = dx * np.cos(theta) + dy * np.sin(theta)
    v = -dx * np.sin(theta) + dy * np.cos(theta)
    return np.hypot(u, v * (a / b))
