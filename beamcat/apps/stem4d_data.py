"""What the 4D-STEM page computes, off the event loop: patterns, virtual images, profiles, NMF.

Everything here takes a `CatalogContext` and an entry name (or plain arrays) and
returns NumPy-backed results the page draws; nothing holds a scan in memory:

- `scan_frames`: the entry's frames ``(scan_y, scan_x, y, x)``, lazy, with the
  Dataset's attrs (``calibration``);
- `pattern_at`: ONE frame, ``counts.isel(scan_y=i, scan_x=j).values``;
- `mean_pattern`, `virtual_image`, `scan_profiles`: one chunked pass over the
  scan each (`beamcat.analyses.stem4d`), cached per (catalog, entry, detector),
  so going back to an annulus already seen costs nothing;
- `Detector`: a bright-field disc or an annular detector, centred on the
  calibration's centre or the bright-field disc's (`find_centre`);
- `position_profile`: the elliptical radial mean and variance of one frame;
- `nmf_of`: NMF components and loading maps of the scan's radial profiles.

Examples
--------
>>> pattern = np.zeros((9, 9))
>>> pattern[3:6, 2:5] = 10.0  # a bright disc centred on column 3, row 4
>>> find_centre(pattern)
(3.0, 4.0)
>>> Detector(0.0, 2.0, (3.0, 4.0)).mask((9, 9)).sum()  # a disc: 13 pixel centres within 2 px
np.int64(13)
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import xarray as xr

from beamcat.analyses import stem4d
from beamcat.analyses._frames import pick
from beamcat.analyses.decomposition import nmf
from beamcat.analyses.stem4d_calibration import AuCalibration
from beamcat.apps.state import CatalogContext
from beamcat.errors import OptionError

__all__ = [
    "SCAN_DIMS",
    "Detector",
    "calibration_of",
    "default_detectors",
    "disc_radius",
    "find_centre",
    "mean_pattern",
    "nmf_of",
    "nmf_start",
    "pattern_at",
    "position_profile",
    "scan_frames",
    "scan_profiles",
    "virtual_image",
]

#: the scan dims the page browses
SCAN_DIMS = ("scan_y", "scan_x")
#: results kept per cache (virtual images, mean patterns, profiles)
CACHE_SIZE = 32


def scan_frames(context: CatalogContext, name: str) -> xr.DataArray:
    """The entry's frames ``(scan_y, scan_x, y, x)``, lazy, carrying the Dataset's attrs.

    Raises
    ------
    OptionError
        The entry is not a 2D scan of patterns.
    """
    frames = pick(context.open(name), what=f"entry {name!r}")
    if frames.dims != (*SCAN_DIMS, "y", "x"):
        raise OptionError(
            f"entry {name!r}: expected a 4D-STEM scan (scan_y, scan_x, y, x), got {frames.dims}"
        )
    return frames


def calibration_of(frames: xr.DataArray | xr.Dataset) -> AuCalibration | None:
    """The entry's calibration (``attrs["calibration"]``, catalog option ``calibration=``), or None.

    Raises
    ------
    FormatError
        A calibration that lacks keys.
    """
    if "calibration" not in frames.attrs:
        return None
    return AuCalibration.from_attrs(frames.attrs, source=str(frames.attrs.get("source", "entry")))


def find_centre(pattern: np.ndarray) -> tuple[float, float]:
    """The bright-field disc's centre (x, y) in px: the centroid of pixels above half the maximum.

    Parameters
    ----------
    pattern : ndarray (y, x)
        A mean pattern.
    """
    values = np.nan_to_num(np.asarray(pattern, dtype=np.float64))
    rows, cols = np.nonzero(values >= values.max() / 2)
    weights = values[rows, cols]
    return (float(np.average(cols, weights=weights)), float(np.average(rows, weights=weights)))


def disc_radius(pattern: np.ndarray) -> float:
    """The bright-field disc's radius (px): that of a disc of the pixels above half the maximum."""
    values = np.nan_to_num(np.asarray(pattern, dtype=np.float64))
    return float(np.sqrt(np.count_nonzero(values >= values.max() / 2) / np.pi))


@dataclass(frozen=True)
class Detector:
    """A virtual detector: a disc (``inner == 0``) or an annulus ``inner < r <= outer``.

    Attributes
    ----------
    inner, outer : float
        Radii, px.
    centre : (x, y)
        Centre, px (x = column, pixel centres at integer indices).
    """

    inner: float
    outer: float
    centre: tuple[float, float]

    @property
    def label(self) -> str:
        """``"BF disc r ≤ 5 px"`` or ``"annulus 8–30 px"``."""
        if self.inner == 0:
            return f"BF disc r ≤ {self.outer:g} px"
        return f"annulus {self.inner:g}–{self.outer:g} px"

    def mask(self, shape: tuple[int, int]) -> np.ndarray:
        """The detector's pixels (bool ``(y, x)``): `disc_mask` or `annulus_mask`.

        Raises
        ------
        OptionError
            Radii not ``0 <= inner < outer``, a centre outside the frame.
        """
        if self.inner == 0:
            return stem4d.disc_mask(shape, self.centre, self.outer)
        return stem4d.annulus_mask(shape, self.centre, self.inner, self.outer)


def pattern_at(frames: xr.DataArray, i: int, j: int) -> np.ndarray:
    """The pattern at scan row `i`, column `j`: one frame read (``isel(...).values``).

    Raises
    ------
    OptionError
        A position outside the scan.
    """
    ny, nx = (frames.sizes[d] for d in SCAN_DIMS)
    if not (0 <= i < ny and 0 <= j < nx):
        raise OptionError(f"scan position ({i}, {j}) outside the {ny} x {nx} scan")
    return frames.isel(scan_y=i, scan_x=j).values


def _cached(func):
    """`functools.lru_cache` of `CACHE_SIZE` results: the context is hashed by identity."""
    return functools.lru_cache(maxsize=CACHE_SIZE)(func)


@_cached
def mean_pattern(context: CatalogContext, name: str) -> np.ndarray:
    """The entry's mean pattern (y, x) float64: one chunked pass, cached."""
    return stem4d.mean_pattern(scan_frames(context, name)).values


@_cached
def virtual_image(context: CatalogContext, name: str, detector: Detector) -> np.ndarray:
    """The entry's virtual image (scan_y, scan_x) of `detector`: one chunked pass, cached."""
    frames = scan_frames(context, name)
    mask = detector.mask(frames.shape[-2:])
    return stem4d.virtual_images(frames, {"detector": mask}).isel(mask=0).values


def _geometry(frames, centre) -> dict:
    """``radial_profiles`` keywords: the calibration when there is one, else circular `centre`."""
    calibration = calibration_of(frames)
    if calibration is not None:
        return {"calibration": calibration}
    return {"centre": centre}


def position_profile(
    frames: xr.DataArray, pattern: np.ndarray, centre: tuple[float, float]
) -> xr.Dataset:
    """Elliptical radial mean and variance of one pattern (`radial_profiles`), computed.

    Parameters
    ----------
    frames : DataArray (scan_y, scan_x, y, x)
        The scan (its ``attrs["calibration"]``, when there is one).
    pattern : ndarray (y, x)
        One of its frames (`pattern_at`).
    centre : (x, y)
        Circular bins around it when the scan has no calibration.

    Returns
    -------
    Dataset (q)
        ``mean``, ``variance``, ``normalized_variance``, ``count``; q in
        1/Angstrom when calibrated, else px.
    """
    frame = xr.DataArray(pattern, dims=("y", "x"), attrs=frames.attrs)
    return stem4d.radial_profiles(frame, **_geometry(frames, centre)).compute()


@_cached
def scan_profiles(context: CatalogContext, name: str, centre: tuple[float, float]) -> xr.Dataset:
    """Radial profiles of every position (scan_y, scan_x, q): one chunked pass, cached."""
    frames = scan_frames(context, name)
    return stem4d.radial_profiles(frames, **_geometry(frames, centre)).compute()


def nmf_of(
    context: CatalogContext,
    name: str,
    n_components: int,
    *,
    centre: tuple[float, float],
    profile: str = "variance",
    q_from: float | None = None,
) -> xr.Dataset:
    """NMF of the entry's radial profiles (`beamcat.analyses.decomposition.nmf`).

    Parameters
    ----------
    context, name
        The catalog and the scan entry.
    n_components : int
    centre : (x, y)
        Circular bins around it (px) when the scan has no calibration.
    profile : {"variance", "mean"}
    q_from : float, optional
        Leave out q below it (1/Angstrom when calibrated, else px): the
        bright-field disc, whose intensity would otherwise make a component of
        its own (`nmf_start`).

    Returns
    -------
    Dataset
        ``components`` (component, q) and ``loadings`` (component, scan_y, scan_x).

    Raises
    ------
    OptionError
        More components than profiles or q bins, a bad `profile`.
    """
    if isinstance(n_components, bool) or not isinstance(n_components, int) or n_components < 1:
        raise OptionError(f"NMF of {name!r}: {n_components!r} components, expected 1 or more")
    profiles = scan_profiles(context, name, centre)
    q_range = None if not q_from else (q_from, float(profiles["q"].max()))
    return nmf(profiles, n_components, profile=profile, q_range=q_range)


def nmf_start(bf: Detector, calibration: AuCalibration | None) -> float:
    """The q where NMF starts by default: twice the bright-field disc's radius (q units).

    Examples
    --------
    >>> nmf_start(Detector(0.0, 5.0, (64.0, 64.0)), None)
    10.0
    """
    return round(2 * bf.outer * (calibration.reciprocal_pixel_size if calibration else 1.0), 4)


def default_detectors(pattern: np.ndarray, centre: tuple[float, float]) -> dict[str, Detector]:
    """The BF disc (the pixels above half the maximum) and an ADF annulus out to the edge."""
    radius = max(1.0, round(disc_radius(pattern), 1))
    ny, nx = pattern.shape
    x0, y0 = centre
    edge = math.floor(min(x0, y0, nx - 1 - x0, ny - 1 - y0))
    inner = round(1.5 * radius, 1)
    return {
        "BF": Detector(0.0, radius, centre),
        "ADF": Detector(inner, float(max(edge, inner + 1)), centre),
    }
