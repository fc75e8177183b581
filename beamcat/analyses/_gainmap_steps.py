"""The numerical steps of the gain map (`beamcat.analyses.gainmap`), on NumPy arrays.

Private: `gain_map` chains them. Each step is a small function on ``(y, x)``
maps, ``(position, y, x)`` stacks or ``(position, tth)`` profiles:

- `Positions`: the frame means of the positions with their 2θ and
  normalisation maps; `binning` and `radial_profiles` (the per-position radial
  median, `beamcat.analyses.azimuthal.median1d`, on one grid);
- `beamstops`: shadows found, none, or given;
- `beamstop_from_ratio`: the beam stop (and its arm) of each position, from
  pixels far below their ring's median;
- `common_range`, `flat_window`, `chosen_window`: the 2θ range every position
  measured, and the window in it where the profiles are flattest (or the given one);
- `extend_profiles`: each position's radial profile continued over the 2θ
  range of all positions (the seed's extrapolation);
- `expected_gain`: measured / expected per position, normalised by its median;
- `damaged_pixels`, `nan_median_filter`, `filtered_gain`: the seed's one-sided
  damaged-pixel rule and a median filter that leaves damaged pixels out of the
  windows (they keep their own gain).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import xarray as xr
from scipy import ndimage

from beamcat.analyses._frames import PIXEL_DIMS
from beamcat.analyses.azimuthal import median1d
from beamcat.analyses.geometry import Geometry
from beamcat.errors import BeamcatWarning, OptionError

#: a pixel below this fraction of its ring's median is in a beam-stop shadow
BEAMSTOP_LEVEL = 0.5
#: shadow pixels are grown by this many pixels (the penumbra of the stop's edge)
BEAMSTOP_GROW = 2
#: a rise of the profile by more than 1 / BEAMSTOP_LEVEL within this many bins is a shadow's edge
SHADOW_STEP_BINS = 5
#: MAD -> standard deviation of a normal distribution
MAD_TO_SIGMA = 1.4826


@dataclass
class Positions:
    """Frame means of every position and what each pixel is there (NumPy, computed)."""

    images: np.ndarray  # (position, y, x) float64, NaN where invalid
    geometries: list[Geometry]
    names: list[str]
    attrs: dict
    tth: np.ndarray  # (position, y, x) deg
    norm: np.ndarray  # (position, y, x) solid angle x polarisation

    @property
    def shape(self) -> tuple[int, int]:
        return self.images.shape[1:]


def quiet_nanmedian(values: np.ndarray, axis=None) -> np.ndarray:
    """`np.nanmedian` without the all-NaN warning (an all-NaN slice is NaN, as meant)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(values, axis=axis)


def ring_reference(tth: np.ndarray, centres: np.ndarray, profile: np.ndarray) -> np.ndarray:
    """`profile` (on bin `centres`) at each pixel's 2θ, linear between finite bins.

    Outside the finite bins the end values hold (NaN when the profile has none).
    """
    finite = np.isfinite(profile)
    if not finite.any():
        return np.full(tth.shape, np.nan)
    return np.interp(tth, centres[finite], profile[finite])


def shadowed_below(
    profile: np.ndarray, centres: np.ndarray, *, level: float = BEAMSTOP_LEVEL
) -> float:
    """The 2θ below which whole rings are in the beam stop's shadow (-inf: none).

    The disc of a stop on the beam shadows whole rings, whose median is then the
    shadow's, so the pixel / ring-median rule cannot see it; its edge shows in the
    profile as a rise by more than ``1 / level`` within `SHADOW_STEP_BINS` bins.
    The last such rise in the first quarter of the measured bins ends the shadow.

    Examples
    --------
    >>> p = np.array([2.0, 2, 3, 100, 101, 102, 103, 104, 105, 104, 103, 102, 101, 100, 99, 98])
    >>> float(shadowed_below(p, np.arange(16.0)))
    3.0
    """
    finite = np.flatnonzero(np.isfinite(profile))
    values = profile[finite]
    cut = -np.inf
    for j in range(len(values) // 4):
        ahead = values[j + 1 : j + 1 + SHADOW_STEP_BINS]
        if ahead.size and values[j] < level * np.median(ahead):
            cut = float(centres[finite[j + 1]])
    return cut


def beamstop_from_ratio(ratio: np.ndarray, *, level: float = BEAMSTOP_LEVEL) -> np.ndarray:
    """Beam-stop shadows ``(position, y, x)`` from pixel / ring-median ratios.

    A pixel is shadowed at a position where its ratio is below `level`, unless
    it is that low (or unseen) at every position: then it is a dead or weak
    pixel of the detector, which moves with it, not the stop, which stays in the
    lab. Shadows are grown by `BEAMSTOP_GROW` pixels.

    Examples
    --------
    >>> ratio = np.ones((2, 5, 5)); ratio[0, 2, 2] = 0.01; ratio[:, 0, 0] = 0.0
    >>> stop = beamstop_from_ratio(ratio)
    >>> int(stop[0].sum()), int(stop[1].sum()), bool(stop[0, 0, 0])
    (13, 0, False)
    """
    with np.errstate(invalid="ignore"):
        low = ratio < level
    weak = np.all(low | ~np.isfinite(ratio), axis=0)
    shadow = low & ~weak
    grown = np.empty_like(shadow)
    for k, frame in enumerate(shadow):
        grown[k] = (
            ndimage.binary_dilation(frame, iterations=BEAMSTOP_GROW) if frame.any() else frame
        )
    return grown


def binning(pos: Positions, seen: np.ndarray, bins: int | None) -> tuple[int, tuple]:
    """Bins and the 2θ range of all positions (a hair wider, so the last pixel is in)."""
    spans = []
    for k in range(len(pos.images)):
        if not seen[k].any():
            raise OptionError(f"{pos.names[k]}: no valid pixel (all negative, NaN or masked)")
        t = pos.tth[k][seen[k]]
        spans.append((float(t.min()), float(t.max())))
    lo, hi = min(s[0] for s in spans), max(s[1] for s in spans)
    hi += 1e-6 * (hi - lo)
    if bins is None:  # about the detector's smaller side per position's range (the seed's advice)
        mean_span = np.mean([s[1] - s[0] for s in spans])
        bins = int(round(min(pos.shape) * (hi - lo) / mean_span))
    if not isinstance(bins, int | np.integer) or bins < 2:
        raise OptionError(f"bins={bins!r}: expected an integer >= 2")
    return int(bins), (lo, hi)


def each_position(reduce, images: np.ndarray, pos: Positions, seen, **options) -> list[xr.Dataset]:
    """`reduce` (`median1d`, `integrate1d`) of each position's image with its geometry, in 2θ.

    `options` (npt, radial_range, solid_angle, polarization_factor, ...) are
    `reduce`'s; unseen pixels are masked.
    """
    solid_angle = options.pop("solid_angle")
    return [
        reduce(
            xr.DataArray(image, dims=PIXEL_DIMS),
            geo,
            unit="2th_deg",
            mask=~seen[k],
            correct_solid_angle=solid_angle,
            **options,
        )
        for k, (image, geo) in enumerate(zip(images, pos.geometries, strict=True))
    ]


def radial_profiles(pos: Positions, seen, npt, radial_range, *, divide=None, **options):
    """Per position the radial median of ``image / norm`` on one grid: (profiles, counts, centres).

    `divide`: a gain estimate ``(y, x)`` the images are corrected by first.
    """
    images = pos.images
    if divide is not None:
        with np.errstate(divide="ignore", invalid="ignore"):  # dead pixels: gain 0
            images = images / divide
    out = each_position(median1d, images, pos, seen, npt=npt, radial_range=radial_range, **options)
    profiles = np.stack([np.asarray(o["intensity"].values, dtype=np.float64) for o in out])
    counts = np.stack([np.asarray(o["count"].values, dtype=np.float64) for o in out])
    return profiles, counts, np.asarray(out[0]["tth"].values, dtype=np.float64)


def beamstops(pos: Positions, beamstop, valid, npt, radial_range, **options) -> np.ndarray:
    """Beam-stop shadows (position, y, x): found (None), none (False) or given."""
    n, shape = len(pos.images), pos.shape
    if beamstop is None:
        profiles, _, centres = radial_profiles(pos, valid, npt, radial_range, **options)
        ratio = np.empty(pos.images.shape)
        for k in range(n):
            reference = ring_reference(pos.tth[k], centres, profiles[k])
            ratio[k] = pos.images[k] / (pos.norm[k] * reference)
            ratio[k][pos.tth[k] < shadowed_below(profiles[k], centres)] = 0.0
        return beamstop_from_ratio(np.where(valid, ratio, np.nan))
    if beamstop is False:
        return np.zeros((n, *shape), dtype=bool)
    given = np.asarray(beamstop, dtype=bool)
    if given.shape not in (shape, (n, *shape)):
        raise OptionError(
            f"beamstop: shape {given.shape}, expected (y, x) = {shape} or (position, y, x) = "
            f"{(n, *shape)}; or None to find it, False for none"
        )
    return np.broadcast_to(given, (n, *shape)).copy()


def measured_range(profiles: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """``(position, 2)``: the centres of the first and last finite bins of each profile."""
    out = np.full((len(profiles), 2), np.nan)
    for k, profile in enumerate(profiles):
        finite = np.flatnonzero(np.isfinite(profile))
        if finite.size:
            out[k] = centres[finite[0]], centres[finite[-1]]
    return out


def common_range(ranges: np.ndarray) -> tuple[float, float]:
    """The 2θ range every position measured: (largest start, smallest end)."""
    return float(np.max(ranges[:, 0])), float(np.min(ranges[:, 1]))


def flat_window(
    profiles: np.ndarray, centres: np.ndarray, common: tuple[float, float]
) -> tuple[float, float]:
    """The window of the upper half of `common` where the profiles are flattest.

    The mean of the profiles (each scaled to its median over `common`) is
    differentiated in log; the window, a tenth of `common` wide (at least 5
    bins), is the one with the smallest mean ``|d ln I / d2θ|``.

    Returns
    -------
    (lo, hi) : float
        Degrees, bin centres.
    """
    inside = (centres >= common[0]) & (centres <= common[1])
    levels = quiet_nanmedian(np.where(inside, profiles, np.nan), axis=1)
    mean = np.nanmean(profiles[:, inside] / levels[:, None], axis=0)
    tth = centres[inside]
    upper = tth >= 0.5 * (common[0] + common[1])
    mean, tth = mean[upper], tth[upper]
    ok = np.isfinite(mean) & (mean > 0)
    mean, tth = mean[ok], tth[ok]
    width = max(5, int(round(0.1 * inside.sum())))
    if tth.size < width + 1:
        raise OptionError(
            f"the positions share too few 2θ bins ({inside.sum()}) to find a flat window; "
            "give flat_range=(lo, hi) or more bins"
        )
    slope = np.abs(np.gradient(np.log(mean), tth))
    running = np.convolve(slope, np.ones(width) / width, mode="valid")
    start = int(np.argmin(running))
    return float(tth[start]), float(tth[start + width - 1])


def chosen_window(flat_range, profiles, centres, common) -> tuple[float, float]:
    """`flat_range` checked against the `common` range, or the flattest window (`flat_window`)."""
    if flat_range is None:
        return flat_window(profiles, centres, common)
    try:
        lo, hi = (float(v) for v in flat_range)
    except (TypeError, ValueError):
        raise OptionError(f"flat_range={flat_range!r}: expected (lo, hi) in degrees") from None
    if not (common[0] <= lo < hi <= common[1]):
        raise OptionError(
            f"flat_range=({lo:g}, {hi:g}) deg: must lie inside the 2θ range every position "
            f"measured, ({common[0]:.3f}, {common[1]:.3f}) deg"
        )
    if not np.any((centres >= lo) & (centres <= hi)):
        raise OptionError(f"flat_range=({lo:g}, {hi:g}) deg holds no bin centre; widen it")
    return lo, hi


def filtered_gain(gain: np.ndarray, damaged: np.ndarray, median_window: int | None) -> np.ndarray:
    """Median filter over the non-damaged pixels; damaged ones keep their own gain."""
    if median_window in (None, 0, 1):
        return gain.copy()
    if not isinstance(median_window, int | np.integer):
        raise OptionError(f"median_window={median_window!r}: expected an odd number of pixels")
    smooth = nan_median_filter(np.where(damaged, np.nan, gain), int(median_window))
    out = np.where(damaged, gain, smooth)
    out[~np.isfinite(gain)] = np.nan
    return out


def extend_profiles(
    profiles: np.ndarray,
    centres: np.ndarray,
    window: tuple[float, float],
    *,
    extrapolation: str = "profiles",
) -> tuple[np.ndarray, np.ndarray]:
    """Continue each position's radial profile over the 2θ of all positions.

    Each position's level (`scale`) is its mean over the flat `window`
    relative to the mean of all positions there. Where a position has no
    data, its profile continues as ``scale`` times the mean shape of the
    positions that measured there (``"profiles"``), or, above the window, as
    the straight line fitted to it over the window (``"linear"``, the seed's
    extrapolation, which only suits profiles that stay straight past the
    window). Measured bins are kept as measured.

    Returns
    -------
    extended : ndarray (position, tth)
    scale : ndarray (position,)
    """
    if extrapolation not in ("profiles", "linear"):
        raise OptionError(f"extrapolation={extrapolation!r}: expected 'profiles' or 'linear'")
    in_window = (centres >= window[0]) & (centres <= window[1])
    levels = np.nanmean(profiles[:, in_window], axis=1)
    scale = levels / np.mean(levels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # bins no position measured
        shape = np.nanmean(profiles / scale[:, None], axis=0)
    fill = scale[:, None] * ring_reference(centres, centres, shape)[None, :]
    if extrapolation == "linear":
        above = centres > window[1]
        for k, profile in enumerate(profiles):
            ok = in_window & np.isfinite(profile)
            slope, offset = np.polyfit(centres[ok], profile[ok], 1)
            fill[k, above] = offset + slope * centres[above]
    return np.where(np.isfinite(profiles), profiles, fill), scale


def position_gains(images: np.ndarray, expected: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """``measured / expected`` per position, NaN where unseen, each normalised by its median."""
    with np.errstate(invalid="ignore", divide="ignore"):
        gains = np.where(seen, images / expected, np.nan)
    gains[~np.isfinite(gains)] = np.nan
    return gains / quiet_nanmedian(gains.reshape(len(gains), -1), axis=1)[:, None, None]


def damaged_pixels(gain: np.ndarray, nsigma: float) -> tuple[np.ndarray, float]:
    """Pixels whose gain is above ``median + nsigma * 1.4826 * MAD`` (one-sided, as the seed).

    Returns the bool map and the threshold. NaN pixels are never damaged.

    Examples
    --------
    >>> g = np.array([1.0, 1.01, 0.99, 1.0, 1.02, 0.98, 1.5, np.nan])
    >>> damaged_pixels(g, 4.0)[0].tolist()
    [False, False, False, False, False, False, True, False]
    """
    median = np.nanmedian(gain)
    sigma = MAD_TO_SIGMA * np.nanmedian(np.abs(gain - median))
    threshold = float(median + nsigma * sigma)
    with np.errstate(invalid="ignore"):
        return gain > threshold, threshold


def nan_median_filter(image: np.ndarray, size: int, *, band_rows: int = 256) -> np.ndarray:
    """Median over ``size x size`` windows of the finite pixels (NaN ones are left out).

    Borders see only the pixels inside the image; a window with no finite pixel
    gives NaN. Worked in bands of rows, so memory stays at ``band_rows * nx *
    size**2`` values.

    Examples
    --------
    >>> im = np.array([[1.0, 2.0, 9.0], [np.nan, 3.0, 4.0], [5.0, 6.0, 7.0]])
    >>> float(nan_median_filter(im, 3)[1, 1])
    4.5
    """
    if size < 1 or size % 2 == 0:
        raise OptionError(f"median_window={size!r}: expected an odd number of pixels >= 1")
    half = size // 2
    padded = np.pad(np.asarray(image, dtype=np.float64), half, constant_values=np.nan)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (size, size))
    out = np.empty(image.shape)
    for start in range(0, image.shape[0], band_rows):
        band = windows[start : start + band_rows]
        out[start : start + band_rows] = quiet_nanmedian(
            band.reshape(*band.shape[:2], size * size), axis=-1
        )
    return out


def empty_bins_warning(profiles: np.ndarray, names: list[str]) -> None:
    """Warn about empty bins between a position's first and last measured bin."""
    for profile, name in zip(profiles, names, strict=True):
        finite = np.flatnonzero(np.isfinite(profile))
        if finite.size:
            inner = profile[finite[0] : finite[-1] + 1]
            gaps = int(np.count_nonzero(~np.isfinite(inner)))
            if gaps:
                warnings.warn(
                    f"{name}: {gaps} empty 2θ bin(s) inside its range (NaN, interpolated over); "
                    "fewer bins give every bin pixels",
                    BeamcatWarning,
                    stacklevel=3,
                )
