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
2. ring points (`beamcat.analyses._ring_fit.ring_points`): one sub-pixel
   ring maximum per 2° sector, in a window of half the distance to the
   neighbouring reflections about the expected ring;
3. the ellipse (`beamcat.analyses._ring_fit.fit_ellipse`): pyFAI's algebraic
   fit refined by robust geometric least squares; steps 2 and 3 are repeated
   once about the fitted ellipse, in a window half as wide.

The ring must stand `MIN_SIGNIFICANCE` standard errors above the circular
profile's background, in at least `MIN_POINTS` sectors inside the frame, with
half its points within 1 px of the fitted ellipse; otherwise FormatError.

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

from beamcat._util import atomic_open
from beamcat.analyses._frames import PIXEL_DIMS, check_pixel_dims, describe, pick
from beamcat.analyses._ring_fit import (
    SECTORS,
    beam_centre,
    fit_ellipse,
    match_scale,
    profile_peaks,
    ring_points,
    ring_sums,
)
from beamcat.analyses.ellipse import elliptical_radius, from_p_ellipse, to_p_ellipse
from beamcat.errors import FormatError, OptionError, SourceNotFoundError

__all__ = [
    "AU_LATTICE",
    "AU_REFLECTIONS",
    "CAMERA_LENGTHS",
    "START_TOLERANCE",
    "AuCalibration",
    "as_calibration",
    "calibrate_au",
    "corrected_profile",
    "mean_pattern",
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
#: ring points needed (of 180 sectors), and at least half of them within 1 px of the ellipse
MIN_POINTS = 12
#: how far (standard errors) the ring must stand above the circular profile's background
MIN_SIGNIFICANCE = 5.0


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
            "p_ellipse": to_p_ellipse(**self.ellipse),
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
            Not JSON; ``reciprocal_space_pix`` or ``p_ellipse`` (5 numbers) missing.
        SourceNotFoundError
            No such file.
        """
        path = Path(path)
        if not path.is_file():
            raise SourceNotFoundError(f"{path}: calibration JSON not found")
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise FormatError(f"{path}: not a calibration JSON ({exc})") from None
        return cls.from_json(doc, source=str(path))

    @classmethod
    def from_json(cls, doc, *, source: str = "calibration JSON") -> AuCalibration:
        """The calibration of a parsed ePSIC JSON (``reciprocal_space_pix``, ``p_ellipse``).

        Raises
        ------
        FormatError
            Not a dict with both keys, ``p_ellipse`` not 5 numbers.
        """
        ellipse = doc.get("p_ellipse") if isinstance(doc, dict) else None
        if not isinstance(ellipse, list | tuple) or len(ellipse) != 5 or JSON_KEYS[0] not in doc:
            raise FormatError(
                f"{source}: expected a JSON object with {JSON_KEYS[0]} and {JSON_KEYS[1]} "
                f"[x0, y0, a, b, theta], got {doc!r:.200}"
            )
        if not all(isinstance(v, int | float) for v in ellipse):
            raise FormatError(f"{source}: p_ellipse must be 5 numbers, got {ellipse!r}")
        fields = {**from_p_ellipse(ellipse), "reciprocal_pixel_size": doc[JSON_KEYS[0]]}
        return cls.from_attrs({**doc, **fields}, source=source)


def as_calibration(calibration, *, source: str = "calibration") -> AuCalibration:
    """An `AuCalibration` from whatever names one.

    Parameters
    ----------
    calibration : AuCalibration, mapping, str or path
        An `AuCalibration`; a Dataset's attrs (with ``"calibration"``) or such a
        dict (`AuCalibration.from_attrs`); a parsed ePSIC JSON (with
        ``p_ellipse``, `AuCalibration.from_json`); or the path of a JSON file.
    source : str
        What it came from, for messages.

    Raises
    ------
    FormatError, SourceNotFoundError
        As `AuCalibration.from_attrs`, `~AuCalibration.from_json` and `~AuCalibration.load`.
    OptionError
        Anything else.

    Examples
    --------
    >>> as_calibration({"reciprocal_space_pix": 0.01, "p_ellipse": [5, 6, 4, 3, 0]}).a
    4.0
    """
    if isinstance(calibration, AuCalibration):
        return calibration
    if isinstance(calibration, Mapping):
        if "p_ellipse" in calibration:
            return AuCalibration.from_json(dict(calibration), source=source)
        return AuCalibration.from_attrs(calibration, source=source)
    if isinstance(calibration, str | os.PathLike):
        return AuCalibration.load(calibration)
    raise OptionError(
        f"{source}: expected an AuCalibration, attrs['calibration'], an ePSIC JSON dict or "
        f"its path, got {type(calibration).__name__}"
    )


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
        The ring of `reflection` does not lie inside the frame (fewer than
        `MIN_POINTS` 2° sectors), or is not found: fewer than half of its
        points within 1 px of the fitted ellipse, or an axis ratio below 0.8.

    Examples
    --------
    >>> import beamcat
    >>> ref = beamcat.open_catalog()["stem4d_au_reference"].read()  # doctest: +SKIP
    >>> cal = calibrate_au(ref, voltage_kv=300)  # doctest: +SKIP
    >>> cal.save("au_calibration.json")  # doctest: +SKIP
    """
    s = _reflection_s(reflection)
    where = describe(reference, "reference")
    if isinstance(voltage_kv, bool) or not isinstance(voltage_kv, int | float) or voltage_kv <= 0:
        raise OptionError(f"voltage_kv must be a positive number (kV), got {voltage_kv!r}")
    if start_pixel_size is None and camera_length_cm is not None:
        start_pixel_size = table_pixel_size(voltage_kv, camera_length_cm)
    if start_pixel_size is not None and not (
        isinstance(start_pixel_size, int | float) and start_pixel_size > 0
    ):
        raise OptionError(f"start_pixel_size must be a positive number, got {start_pixel_size!r}")
    pattern = mean_pattern(reference)
    centre = beam_centre(pattern)
    window = None
    if start_pixel_size is not None:
        k0 = 1.0 / start_pixel_size
        window = (k0 / (1 + START_TOLERANCE), k0 * (1 + START_TOLERANCE))
    peaks = profile_peaks(pattern, centre)
    k = match_scale(peaks, 1.0 / np.array(list(AU_REFLECTIONS.values())), window)
    radius = k * s
    ellipse = (*centre, radius, radius, 0.0)
    # half the distance to the nearest other reflection, so its ring stays out of the window
    others = [abs(1 / d - s) for d in AU_REFLECTIONS.values() if abs(1 / d - s) > 0]
    half_width = max(1.5, 0.5 * k * min(others))
    near = peaks[max(0, int(radius - half_width)) : int(radius + half_width) + 1]
    if near.size and near.max() < MIN_SIGNIFICANCE:
        raise FormatError(
            f"{where}: no Au {reflection} ring found: the radial profile about the direct "
            f"beam (x={centre[0]:.1f}, y={centre[1]:.1f}) peaks {near.max():.1f} standard "
            f"errors above its background near the expected radius {radius:.1f} px; expected "
            f">= {MIN_SIGNIFICANCE} (the mean pattern of a polycrystalline Au reference)"
        )
    for _ in range(2):
        x, y = ring_points(pattern, *ellipse, half_width=half_width)
        if len(x) < MIN_POINTS:
            raise FormatError(
                f"{where}: the Au {reflection} ring (radius ≈ {ellipse[2]:.1f} px about "
                f"x={ellipse[0]:.1f}, y={ellipse[1]:.1f}) lies outside the {pattern.shape[1]} x "
                f"{pattern.shape[0]} frame ({len(x)} of {SECTORS} sectors inside); "
                "expected the ring inside the frame, at least in part"
            )
        fitted = fit_ellipse(x, y)
        close = 0 if fitted is None else int((np.abs(fitted[1]) <= 1.0).sum())
        ratio = 0.0 if fitted is None else fitted[0][3] / fitted[0][2]
        if close < max(MIN_POINTS, len(x) // 2) or ratio < 0.8:
            raise FormatError(
                f"{where}: no Au {reflection} ring found near radius {ellipse[2]:.1f} px: "
                f"{close} of {len(x)} ring points within 1 px of the fitted ellipse, axis "
                f"ratio b/a {ratio:.2f}; expected at least half within 1 px and b/a >= 0.8 "
                "(the mean pattern of a polycrystalline Au reference)"
            )
        ellipse = fitted[0]
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
    count, total, _ = ring_sums(
        values, elliptical_radius(values.shape, **calibration.ellipse), step
    )
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
