"""Elliptical distortion of diffraction patterns: the corrected radius of every pixel.

A projector lens distorts the rings of a diffraction pattern into ellipses. An
ellipse is ``(x0, y0, a, b, theta)``, ePSIC's ``p_ellipse``: centre (x = column,
y = row, pixel centres at integer indices), semi-axis ``a`` along the direction
``theta`` (rad, from +x towards +y) and ``b`` across it. A ring of true radius
``r`` (in pixels along ``theta``) is drawn as the ellipse with semi-axes ``r`` and
``r * b / a``; the corrected radius of a pixel is the ``r`` of the ring through it.

ePSIC's calibration JSON stores ``p_ellipse`` as py4DSTEM's ``fit_ellipse_1D``
returns it, in py4DSTEM's axes: its x is the *row* (the first array index), y
the column, and its angle runs from the row axis towards the column axis.
`from_p_ellipse` and `to_p_ellipse` convert (x0 and y0 swap, θ -> π/2 - θ), so
a JSON written by the ePSIC notebooks and one written by beamcat mean the same.

Examples
--------
>>> r = elliptical_radius((5, 5), x0=2, y0=2, a=2.0, b=1.0, theta=0.0)
>>> float(r[2, 4]), float(r[3, 2])  # two pixels along x, one along y (the short axis)
(2.0, 2.0)
>>> from_p_ellipse([10.0, 20.0, 5.0, 4.0, 0.0])  # py4DSTEM: centre row 10, a along the rows
{'x0': 20.0, 'y0': 10.0, 'a': 5.0, 'b': 4.0, 'theta': 1.5707963267948966}
"""

from __future__ import annotations

import numpy as np

__all__ = ["elliptical_radius", "from_p_ellipse", "to_p_ellipse"]


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


def _axis_angle(theta: float) -> float:
    """An axis direction (defined modulo π) in (-π/2, π/2]."""
    wrapped = float(np.pi / 2 - (np.pi / 2 - theta) % np.pi)
    return wrapped if wrapped > -np.pi / 2 else wrapped + np.pi


def from_p_ellipse(p_ellipse) -> dict[str, float]:
    """``x0, y0, a, b, theta`` (this module's axes) of py4DSTEM's / ePSIC's ``p_ellipse``."""
    row, column, a, b, angle = (float(v) for v in p_ellipse)
    return {"x0": column, "y0": row, "a": a, "b": b, "theta": _axis_angle(np.pi / 2 - angle)}


def to_p_ellipse(*, x0: float, y0: float, a: float, b: float, theta: float) -> list[float]:
    """py4DSTEM's / ePSIC's ``p_ellipse`` ``[x0, y0, a, b, theta]`` (its axes) of an ellipse."""
    return [float(y0), float(x0), float(a), float(b), _axis_angle(np.pi / 2 - theta)]
