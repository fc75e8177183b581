"""Azimuthal-integration tables built by pyFAI, and the per-pixel normalisation.

`integration_table` asks pyFAI's own sparse engine
(``AzimuthalIntegrator.setup_sparse_integrator``, CSR) for the pixel -> bin
table of a geometry, shape, binning and mask, so that bins, bin centres and
pixel fractions are pyFAI's to the last bit. pyFAI numbers the pixels in the
image as the PONI sees it: for a flipped geometry (Dioptas' view) its row r is
the raw frames' row H-1-r. The table is kept both ways: pixel-major
(`beamcat.analyses.labels.PixelTable`, a label map for ``"no"`` splitting,
remapped to the raw frames, which `table_sums` streams top down, or bottom up in
pyFAI's order where the order matters: the azimuthal error model), and
bin-major with pyFAI's numbering (each bin's pixels, what the order statistics
of `beamcat.analyses._azimuthal_order` sort). Tables are cached per (geometry,
shape, binning, mask digest), normalisations per (geometry, shape, corrections).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
from dataclasses import dataclass

import numpy as np
import scipy.sparse

from beamcat.analyses.geometry import MAP_UNITS, Geometry, pixel_array
from beamcat.analyses.labels import PixelTable, known_sums, label_table, split_table
from beamcat.errors import OptionError

__all__ = [
    "METHODS",
    "UNITS",
    "IntegrationTable",
    "integration_table",
    "known_norm",
    "normalisation",
]

#: pyFAI radial unit -> (coordinate name, units, long name): the maps' units, and two more
UNITS = {MAP_UNITS[name][0]: (name, *MAP_UNITS[name][1:]) for name in ("tth", "q", "r")}
UNITS["2th_rad"] = ("tth", "rad", MAP_UNITS["tth"][2])
UNITS["q_A^-1"] = ("q", "1/Angstrom", MAP_UNITS["q"][2])
#: pixel splitting: "no" (each pixel in the bin of its centre) or "bbox" (pyFAI's bounding box)
METHODS = ("no", "bbox")
_LOCK = threading.Lock()  # pyFAI's integrator caches its arrays without a lock


@dataclass(frozen=True, eq=False)
class IntegrationTable:
    """The pixel -> bin table of one geometry, shape, binning and mask.

    Attributes
    ----------
    shape : (int, int)
    flip : bool
        pyFAI's pixels are those of the raw frames flipped vertically.
    unit, method : str
    radial : ndarray (npt,)
        pyFAI's bin centres in `unit` (its ``bin_centers * unit.scale``).
    azimuthal : ndarray (npt_azim,) or None
        χ bin centres in deg, for 2D (caking) tables; bins are then numbered
        ``i_radial * npt_azim + i_chi``, as pyFAI numbers them.
    pixels : PixelTable
        Pixel-major, raw frames' pixels: a label map (``"no"``) or pixel
        fractions (``"bbox"``).
    bin_indptr, bin_pixels, bin_fractions : ndarray
        Bin-major CSR: pyFAI's own table (pixels numbered as the PONI sees them).
    """

    shape: tuple
    flip: bool
    unit: str
    method: str
    radial: np.ndarray
    azimuthal: np.ndarray | None
    pixels: PixelTable
    bin_indptr: np.ndarray
    bin_pixels: np.ndarray
    bin_fractions: np.ndarray

    @property
    def n_bins(self) -> int:
        """Number of bins (radial x azimuthal for 2D)."""
        return self.pixels.n_bins

    @property
    def labels(self) -> np.ndarray:
        """The bin of each raw pixel ``(y, x)`` (-1: none), for ``"no"`` splitting."""
        if self.method != "no":
            raise OptionError(f'a "{self.method}" table splits pixels: it has no label map')
        return self.pixels.bins.reshape(self.shape)


class _Mask:
    """A mask (bool ``(y, x)``, True = masked) hashed by its content, for the table cache."""

    def __init__(self, mask: np.ndarray | None):
        self.mask = mask
        if mask is None:
            self.key = None
        else:
            packed = np.packbits(mask)
            self.key = (mask.shape, hashlib.blake2b(packed.tobytes(), digest_size=16).digest())

    def __hash__(self):
        return hash(self.key)

    def __eq__(self, other):
        return isinstance(other, _Mask) and self.key == other.key


def _range(values, name: str, where: str):
    if values is None:
        return None
    try:
        lo, hi = (float(v) for v in values)
    except (TypeError, ValueError):
        raise OptionError(f"{where}: {name}={values!r}, expected (low, high)") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise OptionError(f"{where}: {name}={values!r}, expected finite low < high")
    return lo, hi


def _count(value, name: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise OptionError(f"{where}: {name}={value!r}, expected a positive integer")
    return int(value)


def integration_table(
    geometry: Geometry,
    shape: tuple[int, int],
    *,
    npt: int,
    unit: str = "2th_deg",
    radial_range=None,
    azimuth_range=None,
    mask=None,
    method: str = "no",
    npt_azim: int | None = None,
    where: str = "integration_table",
) -> IntegrationTable:
    """The cached pixel -> bin table of pyFAI's CSR engine, in the raw image's orientation.

    Parameters
    ----------
    geometry : Geometry
    shape : (int, int)
        The image shape ``(y, x)``.
    npt : int
        Radial bins.
    unit : str
        A key of `UNITS`.
    radial_range : (float, float), optional
        In `unit`; pixels outside are left out (pyFAI's ``radial_range``).
    azimuth_range : (float, float), optional
        χ in deg (pyFAI's ``azimuth_range``).
    mask : ndarray (y, x) of bool, optional
        True = masked, in the raw orientation; checked by the caller.
    method : {"no", "bbox"}
        Pixel splitting.
    npt_azim : int, optional
        χ bins: a 2D (caking) table.
    where : str
        The caller, for messages.

    Raises
    ------
    OptionError
        Unknown unit or method, a bad range or bin count.
    """
    if unit not in UNITS:
        raise OptionError(f"{where}: unknown unit {unit!r}, expected one of {list(UNITS)}")
    if method not in METHODS:
        raise OptionError(f"{where}: unknown method {method!r}, expected one of {list(METHODS)}")
    npt = _count(npt, "npt", where)
    npt_azim = None if npt_azim is None else _count(npt_azim, "npt_azim", where)
    radial_range = _range(radial_range, "radial_range", where)
    azimuth_range = _range(azimuth_range, "azimuth_range", where)
    mask = None if mask is None else np.ascontiguousarray(mask, dtype=bool)
    shape = tuple(int(n) for n in shape)
    key = (geometry, shape, npt, npt_azim, unit, radial_range, azimuth_range, method)
    return _cached_table(*key, _Mask(mask))


@functools.lru_cache(maxsize=8)
def _cached_table(geometry, shape, npt, npt_azim, unit, radial_range, azimuth_range, method, mask):
    from pyFAI import units

    ai = geometry.integrator
    logging.getLogger("pyFAI").setLevel(logging.ERROR)
    scale = units.to_unit(unit).scale
    pos0 = None if radial_range is None else tuple(r / scale for r in radial_range)
    pos1 = None if azimuth_range is None else ai.normalize_azimuth_range(azimuth_range)
    pyfai_mask = mask.mask
    if pyfai_mask is not None and geometry.flip:
        pyfai_mask = np.ascontiguousarray(pyfai_mask[::-1])
    two_d = npt_azim is not None
    with _LOCK:
        engine = ai.setup_sparse_integrator(
            shape,
            (npt, npt_azim) if two_d else npt,
            mask=pyfai_mask,
            pos0_range=pos0,
            pos1_range=pos1,
            unit=(unit, "chi_deg") if two_d else unit,
            split=method,
            algo="CSR",
            scale=False,
        )
    fractions, indices, indptr = (np.asarray(a) for a in engine.lut)
    height, width = shape
    n_bins = indptr.size - 1
    raw = (height - 1 - indices // width) * width + indices % width if geometry.flip else indices
    if method == "no":
        labels = np.full(height * width, -1, np.int32)
        labels[raw] = np.repeat(np.arange(n_bins, dtype=np.int32), np.diff(indptr))
        pixels = label_table(labels, n_bins, flip=geometry.flip)
    else:
        csc = scipy.sparse.csr_matrix((fractions, raw, indptr), (n_bins, height * width))
        csc = csc.tocsc()  # pixel-major; each pixel's bins ascending
        csc.sort_indices()
        pixels = split_table(csc.indptr, csc.indices, csc.data, n_bins, flip=geometry.flip)
    if two_d:
        radial = np.asarray(engine.bin_centers0) * scale
        azimuthal = np.asarray(engine.bin_centers1) * units.to_unit("chi_deg").scale
    else:
        radial, azimuthal = np.asarray(engine.bin_centers) * scale, None
    return IntegrationTable(
        shape, geometry.flip, unit, method, radial, azimuthal, pixels, indptr, indices, fractions
    )


def normalisation(
    geometry: Geometry,
    shape: tuple[int, int],
    *,
    correct_solid_angle: bool = True,
    polarization_factor: float | None = None,
    flat=None,
    dummy: float | None = None,
    delta_dummy: float | None = None,
) -> np.ndarray | None:
    """The per-pixel normalisation ω = flat · polarisation · solid angle, float32 ``(y, x)``.

    Multiplied in float32 in pyFAI's order (its ``preproc``); None when there is
    nothing to correct. Flat-field pixels equal to `dummy` get ω = 0 (dropped),
    as pyFAI masks them.
    """
    norm = _corrections(geometry, tuple(shape), bool(correct_solid_angle), polarization_factor)
    if flat is None:
        return norm
    flat = np.asarray(flat, np.float32)
    if norm is not None:  # pyFAI: ((1 · flat) · polarisation) · solid angle
        pol, solid = _factors(geometry, tuple(shape), correct_solid_angle, polarization_factor)
        flat = flat * pol if pol is not None else flat
        flat = flat * solid if solid is not None else flat
    if dummy is not None:
        d = np.float32(dummy)
        bad = (flat == d) if not delta_dummy else (np.abs(flat - d) <= np.float32(delta_dummy))
        flat = np.where(bad, np.float32(0), flat)
    return flat


def _factors(geometry, shape, correct_solid_angle, polarization_factor):
    pol = solid = None
    if polarization_factor is not None:
        pol = pixel_array(
            geometry, shape, "polarization", polarization_factor=float(polarization_factor)
        ).astype(np.float32)
    if correct_solid_angle:
        solid = pixel_array(geometry, shape, "solid_angle").astype(np.float32)
    return pol, solid


@functools.lru_cache(maxsize=16)
def _corrections(geometry, shape, correct_solid_angle, polarization_factor):
    pol, solid = _factors(geometry, shape, correct_solid_angle, polarization_factor)
    if pol is None or solid is None:
        norm = solid if pol is None else pol
    else:
        norm = pol * solid
    if norm is not None:
        norm.flags.writeable = False
    return norm


@functools.lru_cache(maxsize=16)
def known_norm(table: IntegrationTable, geometry, shape, correct_solid_angle, polarization_factor):
    """`known_sums` of a table and its cached normalisation (no flat field)."""
    norm = _corrections(geometry, tuple(shape), bool(correct_solid_angle), polarization_factor)
    return known_sums(table.pixels, norm, shape)
