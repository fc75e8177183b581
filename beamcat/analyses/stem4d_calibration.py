"""4D-STEM Au calibration: ring ellipticity and reciprocal pixel size from a gold reference.

What ePSIC's ``au_xgrating_cal_submit.ipynb`` computes (``shared/reference/algorithms.md``,
seed 003) with py4DSTEM, here without it: the mean pattern of a polycrystalline
Au scan, the ring of one reflection (220 by default), an ellipse fitted to
points on it, and the reciprocal pixel size ``s = 1/d`` per pixel along the
ellipse's major axis. The ellipse is ePSIC's ``p_ellipse`` ``(x0, y0, a, b,
theta)`` in `beamcat.analyses.ellipse`'s convention: centre x = column, y = row
(pixel centres at integer indices), semi-axis ``a`` (the major one) along
``theta`` (rad, from +x towards +y, in ``(-pi/2, pi/2]``), ``b`` across.

How the ring is found (`calibrate_au`):

1. the scale: the circular radial profile about the direct beam (the centre
   of mass of the pixels above half the pattern's maximum), its peaks above a
   grey opening, is matched against all four Au reflections at once over a
   grid of scales (px per 1/Angstrom); a start pixel size (given, or from
   ePSIC's camera-length table, `CAMERA_LENGTHS`) limits the search to
   ±`START_TOLERANCE` about it;
2. ring points: the pattern sampled along 720 rays (bilinear, 0.25 px steps)
   in a window of half the distance to the neighbouring reflections, averaged
   in 180 sectors of 2°; per sector, the maximum above a straight background
   line, refined to sub-pixel by a parabola through the samples within 1 px;
3. the ellipse: pyFAI's algebraic fit (`pyFAI.utils.ellipse.fit_ellipse`)
   refined by geometric least squares (soft-L1 loss, outliers weigh less);
   steps 2 and 3 are repeated once about the fitted ellipse.

Examples
--------
>>> round(AU_REFLECTIONS["220"], 4)
1.4425
>>> table_pixel_size(300, 40)
0.0049
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import xarray as xr
from scipy import ndimage, optimize

from beamcat._util import atomic_open
from beamcat.analyses._frames import PIXEL_DIMS, check_pixel_dims, describe, pick
from beamcat.analyses.ellipse import elliptical_radius
from beamcat.errors import FormatError, OptionError

__all__ = [
    "AU_LATTICE",
    "AU_REFLECTIONS",
    "CAMERA_LENGTHS",
    "START_TOLERANCE",
    "AuCalibration",
    "calibrate_au",
    "corrected_profile",
    "mean_pattern",
    "ring_points",
    "table_pixel_size",
]

#: Au fcc lattice parameter (Angstrom), as ePSIC's notebook uses it
AU_LATTICE = 4.08
#: reflection hkl -> d-spacing (Angstrom) of Au: a / sqrt(h² + k² + l²)
AU_REFLECTIONS = {
    hkl: AU_LATTICE / math.sqrt(sum(int(i) ** 2 for i in hkl))
    for hkl in ("111", "200", "220", "311")
}
#: ePSIC's starting reciprocal pixel sizes (1/Angstrom per px): voltage (kV) -> camera length (cm)
CAMERA_LENGTHS = {
    300: {20: 0.0093, 40: 0.0049, 80: 0.0024},
    200: {9: 0.011, 20: 0.0053, 40: 0.0027, 80: 0.0014, 100: 0.0009},
}
#: how far (relative) the scale search goes on either side of a start pixel size
START_TOLERANCE = 0.25
#: the ePSIC JSON keys `AuCalibration.save` writes and `AuCalibration.load` needs
JSON_KEYS = ("reciprocal_space_pix", "p_ellipse")
_FIELDS = ("x0", "y0", "a", "b", "theta", "reciprocal_pixel_size")
_OPTIONAL = ("reflection", "voltage_kv", "camera_length_cm")
_RAYS, _SECTORS, _STEP = 720, 180, 0.25  # rays, sectors they are averaged in, px along a ray


@dataclass(frozen=True)
class AuCalibration:
    """An elliptical ring distortion and the reciprocal pixel size along its major axis.

    Attributes
    ----------
    x0, y0 : float
        Pattern centre (px; x = column, y = row, pixel centres at integer indices).
    a, b : float
        Semi-axes (px) of the fitted ring, ``a`` (major) along `theta`.
    theta : float
        Direction of ``a`` (rad, from +x towards +y).
    reciprocal_pixel_size : float
        ``s = 1/d`` (1/Angstrom) per px along the major axis.
    reflection : str, optional
        The Au reflection fitted (``"220"``).
    voltage_kv, camera_length_cm : float, optional
        Acquisition settings, as recorded.

    Examples
    --------
    >>> cal = AuCalibration(64.0, 63.0, 48.0, 46.5, 0.5, 0.0145)
    >>> AuCalibration.from_attrs(cal.to_attrs()) == cal
    True
    """

    x0: float
    y0: float
    a: float
    b: float
    theta: float
    reciprocal_pixel_size: float
    reflection: str | None = None
    voltage_kv: float | None = None
    camera_length_cm: float | None = None

    @property
    def ellipse(self) -> dict[str, float]:
        """``{x0, y0, a, b, theta}``: keywords of `beamcat.analyses.ellipse.elliptical_radius`."""
        return {k: getattr(self, k) for k in ("x0", "y0", "a", "b", "theta")}

    def to_attrs(self) -> dict:
        """The dict for ``attrs["calibration"]`` (the fields; unset optional ones left out)."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_attrs(cls, attrs: Mapping, *, source: str = "attrs") -> AuCalibration:
        """The calibration in ``attrs["calibration"]``, or in such a dict itself.

        Parameters
        ----------
        attrs : mapping
            A Dataset's attrs (with a ``"calibration"`` dict, as ``calibration=``
            and `to_attrs` put it there) or that dict.
        source : str
            What it came from, for messages.

        Raises
        ------
        FormatError
            Keys missing, or values that are not finite numbers (``a``, ``b``
            and the pixel size positive).
        """
        found = attrs.get("calibration", attrs) if isinstance(attrs, Mapping) else None
        if not isinstance(found, Mapping):
            raise FormatError(f"{source}: expected a calibration dict with keys {list(_FIELDS)}")
        missing = [k for k in _FIELDS if k not in found]
        if missing:
            raise FormatError(
                f"{source}: calibration lacks {missing}; expected keys {list(_FIELDS)}"
            )
        values = {k: _number(found[k], k, source) for k in _FIELDS}
        for k in ("a", "b", "reciprocal_pixel_size"):
            if values[k] <= 0:
                raise FormatError(f"{source}: calibration {k} must be > 0, got {values[k]}")
        extra = {k: found[k] for k in _OPTIONAL if found.get(k) is not None}
        return cls(**values, **extra)

    def save(self, path: str | os.PathLike) -> Path:
        """Write ePSIC's calibration JSON atomically and return its path.

        Keys: ``reciprocal_space_pix`` (1/Angstrom per px), ``p_ellipse``
        ``[x0, y0, a, b, theta]``, and the optional fields that are set.
        """
        path = Path(path)
        doc = {
            "reciprocal_space_pix": self.reciprocal_pixel_size,
            "p_ellipse": [self.x0, self.y0, self.a, self.b, self.theta],
            **{k: getattr(self, k) for k in _OPTIONAL if getattr(self, k) is not None},
        }
        with atomic_open(path, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> AuCalibration:
        """Read a calibration JSON (`save`'s, or ePSIC's own).

        Raises
        ------
        FormatError
            Not JSON, or ``reciprocal_space_pix`` / ``p_ellipse`` (5 numbers) missing.
        SourceNotFoundError
            No such file.
        """
        from beamcat.errors import SourceNotFoundError

        path = Path(path)
        if not path.is_file():
            raise SourceNotFoundError(f"{path}: calibration JSON not found")
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise FormatError(f"{path}: not a calibration JSON ({exc})") from None
        missing = [k for k in JSON_KEYS if not isinstance(doc, dict) or k not in doc]
        if missing:
            raise FormatError(
                f"{path}: calibration JSON lacks {missing}; expected {list(JSON_KEYS)}"
            )
        ellipse = doc["p_ellipse"]
        if not isinstance(ellipse, list | tuple) or len(ellipse) != 5:
            raise FormatError(f"{path}: p_ellipse must be [x0, y0, a, b, theta], got {ellipse!r}")
        fields = dict(zip(_FIELDS, [*ellipse, doc["reciprocal_space_pix"]], strict=True))
        return cls.from_attrs({**doc, **fields}, source=str(path))


def _number(value, key: str, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise FormatError(f"{source}: calibration {key} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise FormatError(f"{source}: calibration {key} must be finite, got {value!r}")
    return float(value)


# ------------------------------------------------------------------ inputs


def table_pixel_size(voltage_kv: float, camera_length_cm: float) -> float:
    """The starting reciprocal pixel size (1/Angstrom per px) of ePSIC's camera-length table.

    Raises
    ------
    OptionError
        The pair is not in `CAMERA_LENGTHS` (the message lists those that are).
    """
    table = CAMERA_LENGTHS.get(voltage_kv, {})
    if camera_length_cm not in table:
        known = "; ".join(f"{kv} kV: {sorted(cls)} cm" for kv, cls in CAMERA_LENGTHS.items())
        raise OptionError(
            f"no starting pixel size for {voltage_kv} kV, camera length {camera_length_cm} cm "
            f"(ePSIC's table has {known}); pass start_pixel_size="
        )
    return table[camera_length_cm]


def mean_pattern(reference: xr.Dataset | xr.DataArray | np.ndarray) -> np.ndarray:
    """The mean ``(y, x)`` pattern (float64) of a scan, or a single pattern as given.

    Parameters
    ----------
    reference : Dataset, DataArray (..., y, x) or ndarray (y, x)
        A scan (its signal; averaged over every dim but ``(y, x)``, computed
        here, chunk by chunk) or one pattern.

    Raises
    ------
    OptionError
        Not ``(..., y, x)`` data, or an array that is not 2D.
    """
    if isinstance(reference, xr.Dataset | xr.DataArray):
        data = pick(reference, what="diffraction patterns")
        check_pixel_dims(data, describe(data, "reference"))
        others = [d for d in data.dims if d not in PIXEL_DIMS]
        return np.asarray(data.mean(others, dtype=np.float64).values, dtype=np.float64)
    pattern = np.asarray(reference, dtype=np.float64)
    if pattern.ndim != 2:
        raise OptionError(f"reference: expected a (y, x) pattern, got shape {pattern.shape}")
    return pattern


def _reflection_s(reflection: str) -> float:
    if reflection not in AU_REFLECTIONS:
        raise OptionError(
            f"reflection={reflection!r}: not an Au reflection; expected one of "
            f"{list(AU_REFLECTIONS)}"
        )
    return 1.0 / AU_REFLECTIONS[reflection]


# ------------------------------------------------------------------ the scale


def _beam_centre(pattern: np.ndarray) -> tuple[float, float]:
    """(x, y) centre of mass of the pixels above half the finite maximum (the direct beam)."""
    finite = np.where(np.isfinite(pattern), pattern, -np.inf)
    bright = finite > 0.5 * finite.max()
    y, x = ndimage.center_of_mass(bright)
    return float(x), float(y)


def _peaks(pattern: np.ndarray, centre: tuple[float, float]) -> np.ndarray:
    """The circular radial profile (1 px bins) minus its grey opening: ring peaks, >= 0.

    Up to the last radius where at least half the circle is inside the frame.
    """
    r = elliptical_radius(pattern.shape, x0=centre[0], y0=centre[1], a=1.0, b=1.0, theta=0.0)
    valid = np.isfinite(pattern)
    bins = np.rint(r[valid]).astype(np.intp)
    count = np.bincount(bins)
    profile = np.bincount(bins, pattern[valid]) / np.maximum(count, 1)
    half = np.flatnonzero(count >= np.pi * np.arange(len(count)))
    profile = profile[: half[-1] + 1]
    return profile - ndimage.grey_opening(profile, size=max(5, len(profile) // 12))


def _scale(peaks: np.ndarray, window: tuple[float, float] | None) -> float:
    """The px per 1/Angstrom whose Au reflections sit best on the profile's peaks."""
    s = 1.0 / np.array(list(AU_REFLECTIONS.values()))
    n_edge = len(peaks) - 1
    lo, hi = window if window else (3.0 / s[0], n_edge / s[1])
    grid = np.geomspace(lo, hi, max(2, int(np.log(hi / lo) * s[-1] * hi * 4)))
    radii = grid[:, None] * s[None, :]
    values = np.interp(radii, np.arange(len(peaks)), peaks)
    inside = radii < n_edge
    score = np.where(inside, values, 0.0).sum(1) / np.maximum(inside.sum(1), 1)
    score[inside.sum(1) < 2] = -np.inf  # two rings at least, so ratios decide
    return float(grid[np.argmax(score)])


# ------------------------------------------------------------------ ring points


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
    phi = (np.arange(_RAYS) + 0.5) * (2 * np.pi / _RAYS)
    # the expected radius along each ray: the ellipse in polar form about its centre
    rho = a * b / np.hypot(b * np.cos(phi - theta), a * np.sin(phi - theta))
    offsets = np.arange(-half_width, half_width + _STEP / 2, _STEP)
    r = rho[:, None] + offsets[None, :]
    xs, ys = x0 + r * np.cos(phi)[:, None], y0 + r * np.sin(phi)[:, None]
    inside = (xs >= 0) & (xs <= nx - 1) & (ys >= 0) & (ys <= ny - 1)
    values = ndimage.map_coordinates(np.nan_to_num(pattern), [ys, xs], order=1)
    values[~inside | ~ndimage.map_coordinates(np.isfinite(pattern), [ys, xs], order=0)] = np.nan
    per = _RAYS // _SECTORS
    sectors = values.reshape(_SECTORS, per, -1).mean(1)
    mid_r = r.reshape(_SECTORS, per, -1).mean(1)
    phi_s = phi.reshape(_SECTORS, per).mean(1)
    xs_out, ys_out = [], []
    for k in np.flatnonzero(np.isfinite(sectors).all(1)):
        radius = _subpixel_peak(sectors[k], mid_r[k])
        if radius is not None:
            xs_out.append(x0 + radius * np.cos(phi_s[k]))
            ys_out.append(y0 + radius * np.sin(phi_s[k]))
    return np.array(xs_out), np.array(ys_out)


def _subpixel_peak(values: np.ndarray, radii: np.ndarray) -> float | None:
    """The radius of the maximum above a straight background (parabola within 1 px), or None."""
    line = np.linspace(values[0], values[-1], len(values))
    above = values - line
    i = int(np.argmax(above))
    near = np.abs(radii - radii[i]) <= 1.0
    if above[i] <= 0 or i in (0, len(values) - 1) or near.sum() < 3:
        return None
    c2, c1, _ = np.polyfit(radii[near] - radii[i], above[near], 2)
    if c2 >= 0:
        return None
    return float(radii[i] - c1 / (2 * c2))


# ------------------------------------------------------------------ the ellipse


def _fit_ellipse(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float, float]:
    """(x0, y0, a, b, theta) through points: pyFAI's algebraic fit, then robust geometric LSQ."""
    from pyFAI.utils.ellipse import fit_ellipse

    start = fit_ellipse(y, x)
    p0 = [start.center_2, start.center_1, start.half_long_axis, start.half_short_axis, start.angle]

    def residuals(p):
        # each point's offset along (u) and across (v) the major axis, as elliptical_radius does
        w = ((x - p[0]) + 1j * (y - p[1])) * np.exp(-1j * p[4])
        return np.hypot(w.real, w.imag * p[2] / p[3]) - p[2]

    fit = optimize.least_squares(residuals, p0, loss="soft_l1", f_scale=0.5, x_scale="jac")
    x0, y0, a, b, theta = fit.x
    if b > a:  # a is the major axis
        a, b, theta = b, a, theta + np.pi / 2
    theta = float(np.pi / 2 - (np.pi / 2 - theta) % np.pi)  # in (-pi/2, pi/2]
    return float(x0), float(y0), float(a), float(b), theta


def calibrate_au(
    reference: xr.Dataset | xr.DataArray | np.ndarray,
    *,
    voltage_kv: float,
    camera_length_cm: float | None = None,
    reflection: str = "220",
    start_pixel_size: float | None = None,
) -> AuCalibration:
    """Fit the elliptical ring distortion and the reciprocal pixel size on an Au reference.

    Parameters
    ----------
    reference : Dataset, DataArray (..., y, x) or ndarray (y, x)
        An Au (cross-grating, polycrystalline) scan, averaged here over its
        scan dims (`mean_pattern`: this computes), or its mean pattern.
    voltage_kv : float
        Accelerating voltage (kV); with `camera_length_cm` it picks ePSIC's
        starting pixel size (`CAMERA_LENGTHS`).
    camera_length_cm : float, optional
        Nominal camera length (cm).
    reflection : str
        The Au reflection whose ring is fitted (`AU_REFLECTIONS`: ``"111"``,
        ``"200"``, ``"220"``, ``"311"``).
    start_pixel_size : float, optional
        Expected reciprocal pixel size (1/Angstrom per px); the scale is searched
        within ±`START_TOLERANCE` of it (of the table's value without it;
        over the whole frame without either).

    Returns
    -------
    AuCalibration
        ``reciprocal_pixel_size = (1 / d) / a`` with ``d`` the reflection's
        d-spacing and ``a`` the fitted semi-major axis.

    Raises
    ------
    OptionError
        An unknown reflection, a voltage/camera length not in the table, a
        start that is not a positive number.
    FormatError
        The ring of `reflection` does not lie inside the frame, or too few
        points on it stand above the background to fit an ellipse.

    Examples
    --------
    >>> import beamcat
    >>> ref = beamcat.open_catalog()["stem4d_au_reference"].read()  # doctest: +SKIP
    >>> cal = calibrate_au(ref, voltage_kv=300)  # doctest: +SKIP
    >>> cal.save("au_calibration.json")  # doctest: +SKIP
    """
    s = _reflection_s(reflection)
    where = describe(reference, "reference")
    if start_pixel_size is None and camera_length_cm is not None:
        start_pixel_size = table_pixel_size(voltage_kv, camera_length_cm)
    if start_pixel_size is not None and not (
        isinstance(start_pixel_size, int | float) and start_pixel_size > 0
    ):
        raise OptionError(f"start_pixel_size must be a positive number, got {start_pixel_size!r}")
    pattern = mean_pattern(reference)
    centre = _beam_centre(pattern)
    window = None
    if start_pixel_size is not None:
        k0 = 1.0 / start_pixel_size
        window = (k0 / (1 + START_TOLERANCE), k0 * (1 + START_TOLERANCE))
    k = _scale(_peaks(pattern, centre), window)
    radius = k * s
    ellipse = (*centre, radius, radius, 0.0)
    # half the distance to the nearest other reflection, so its ring stays out of the window
    others = [abs(1 / d - s) for d in AU_REFLECTIONS.values() if abs(1 / d - s) > 0]
    half_width = max(1.5, 0.5 * k * min(others))
    for _ in range(2):
        x, y = ring_points(pattern, *ellipse, half_width=half_width)
        if len(x) < 12:
            raise FormatError(
                f"{where}: the Au {reflection} ring (radius ≈ {ellipse[2]:.1f} px about "
                f"x={ellipse[0]:.1f}, y={ellipse[1]:.1f}) lies outside the {pattern.shape[1]} x "
                f"{pattern.shape[0]} frame or is not found ({len(x)} of {_SECTORS} sectors); "
                "expected a ring at least partly inside"
            )
        ellipse = _fit_ellipse(x, y)
        half_width = max(1.5, half_width / 2)
    x0, y0, a, b, theta = ellipse
    return AuCalibration(x0, y0, a, b, theta, s / a, reflection, voltage_kv, camera_length_cm)


def corrected_profile(
    pattern: np.ndarray | xr.DataArray, calibration: AuCalibration, *, step: float = 1.0
) -> xr.DataArray:
    """The mean of a pattern's pixels in rings of elliptically corrected radius, against s.

    No warping: each pixel's corrected radius
    (`beamcat.analyses.ellipse.elliptical_radius`) decides its bin.

    Parameters
    ----------
    pattern : ndarray or DataArray (y, x)
    calibration : AuCalibration
    step : float
        Bin width (px along the major axis).

    Returns
    -------
    DataArray (s,)
        Mean intensity per bin, NaN where a bin is empty; coordinate ``s``
        (1/Angstrom, bin centres) and ``count`` (pixels per bin).

    Examples
    --------
    >>> cal = AuCalibration(2.0, 2.0, 2.0, 1.0, 0.0, 0.5)
    >>> profile = corrected_profile(np.ones((5, 5)), cal)
    >>> profile.s.values[:3].tolist(), profile.values[:3].tolist()
    ([0.0, 0.5, 1.0], [1.0, 1.0, 1.0])
    """
    values = np.asarray(pattern, dtype=np.float64)
    r = elliptical_radius(values.shape, **calibration.ellipse)
    valid = np.isfinite(values)
    bins = np.rint(r[valid] / step).astype(np.intp)
    count = np.bincount(bins)
    total = np.bincount(bins, values[valid])
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / count, np.nan)
    s = np.arange(len(count)) * step * calibration.reciprocal_pixel_size
    return xr.DataArray(
        mean,
        dims="s",
        coords={
            "s": ("s", s, {"units": "Angstrom^-1", "long_name": "s = 1/d"}),
            "count": ("s", count),
        },
        attrs={"long_name": "mean intensity", "calibration": calibration.to_attrs()},
    )
