"""Azimuthal-integration tables built by pyFAI, and the per-bin order statistics.

`integration_table` asks pyFAI's own sparse engine
(``AzimuthalIntegrator.setup_sparse_integrator``, CSR) for the pixel -> bin
table of a geometry, shape, binning and mask, so that bins, bin centres and
pixel fractions are pyFAI's to the last bit. Pixels are numbered as pyFAI numbers
them, in the image as the PONI sees it: for a flipped geometry (Dioptas' view)
row r is the raw frames' row H-1-r. The pixel-major table is remapped to the raw
frames (streamed top down), and reads them bottom up, in pyFAI's order, where the
order matters (the azimuthal error model); the bin-major one keeps pyFAI's
numbering. The table is kept both
ways: pixel-major (`beamcat.analyses.labels.PixelTable`, a label map for
``"no"`` splitting, what `table_sums` streams over) and bin-major (each bin's
pixels, what the order statistics sort). Tables are cached per
(geometry, shape, binning, mask digest), normalisations per (geometry, shape,
corrections).

The order statistics are per bin, on the bin-major table, each a numba kernel
with a NumPy twin (`ORDER_KERNELS`):

- `median_sums`: pyFAI's ``medfilt1d_ng`` quantile. A bin's valid pixels are
  sorted by s/ω; the pixels whose cumulative weight c·ω straddles the
  quantile(s) ``q·Σ c·ω`` are averaged (Σ c·s / Σ c·ω): one pixel, or two at an
  exact tie (the usual median of an even count), or all between two quantiles.
- `clip_sums`: pyFAI's ``sigma_clip_ng``: integrate, drop pixels with
  ``|s/ω - mean| > max(thres, sqrt(2 ln(n / sqrt(2π)))) · std`` (Chauvenet),
  repeat until none is dropped or `max_iter` times.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import logging
import threading
from dataclasses import dataclass

import numba
import numpy as np
import scipy.sparse

from beamcat.analyses.geometry import MAP_UNITS, Geometry, pixel_array
from beamcat.analyses.labels import (
    ERROR_MODELS,
    SUMS,
    PixelTable,
    _pixel,
    bin_dtype,
    known_sums,
    label_table,
)
from beamcat.errors import OptionError

__all__ = [
    "METHODS",
    "ORDER_KERNELS",
    "UNITS",
    "IntegrationTable",
    "clip_sums",
    "clip_sums_reference",
    "integration_table",
    "known_norm",
    "median_sums",
    "median_sums_reference",
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
        csc = csc.tocsc()
        entries = (csc.indptr.astype(np.int32), csc.indices.astype(bin_dtype(n_bins)), csc.data)
        pixels = PixelTable(*entries, n_bins, geometry.flip)
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


# --------------------------------------------------------------------------- order statistics


@numba.njit(nogil=True, cache=True)
def _gather(frames, i, rows, pixels, fractions, flip, norm, variance, model, dummy, delta, buf):
    """A bin's valid pixels of frame i into buf (k, 5): s/ω, c·s, c²σ², c·ω, c; their number."""
    m = 0
    height, width = frames.shape[1], frames.shape[2]
    for j in range(rows[0], rows[1]):
        t, x = divmod(pixels[j], width)
        y = height - 1 - t if flip else t
        ok, s, v, w = _pixel(frames, i, y, x, norm, None, variance, model, dummy, delta)
        if not ok:
            continue
        c = 1.0 if fractions is None else np.float64(fractions[j])
        buf[m, 0] = s / w
        buf[m, 1] = c * s
        buf[m, 2] = c * c * v
        buf[m, 3] = c * w
        buf[m, 4] = c
        m += 1
    return m


@numba.njit(nogil=True, cache=True)
def _median_kernel(
    frames, indptr, pixels, fractions, flip, norm, qmin, qmax, dummy, delta, out
):  # pragma: no cover - numba
    """Per bin of each frame: Σ c·s, Σ c·ω of the quantile's pixels, Σ c of all valid ones."""
    buf = np.empty((max(np.max(np.diff(indptr)), 1), 5))
    for i in range(frames.shape[0]):
        for b in range(indptr.shape[0] - 1):
            rows = (indptr[b], indptr[b + 1])
            m = _gather(frames, i, rows, pixels, fractions, flip, norm, None, 0, dummy, delta, buf)
            if m == 0:
                continue
            order = np.argsort(buf[:m, 0], kind="mergesort")
            total = 0.0
            for k in order:
                total += buf[k, 3]
            lo, hi = qmin * total, qmax * total
            cum = 0.0
            for k in order:
                former = cum
                cum += buf[k, 3]
                if buf[k, 3] != 0 and (
                    (lo <= former and cum <= hi) or (lo >= former and cum >= hi)
                ):
                    out[i, b, 0] += buf[k, 1]
                    out[i, b, 1] += buf[k, 3]
            for k in range(m):
                out[i, b, 2] += buf[k, 4]


@numba.njit(nogil=True, cache=True)
def _kept_sums(buf, keep, m, model, out):  # pragma: no cover - numba
    """The five `SUMS` of the kept rows of buf (from `_gather`) into out (5,)."""
    out[:] = 0.0
    for k in range(m):
        if keep[k]:
            out[0] += buf[k, 1]
            out[1] += buf[k, 2]
            out[2] += buf[k, 3]
            out[3] += buf[k, 4]
            out[4] += buf[k, 3] * buf[k, 3]
    if model != 3:
        return
    out[1] = 0.0  # pyFAI's one-pass azimuthal variance, as `labels._add`
    first = True
    for k in range(m):
        if keep[k]:
            if first:
                first, total, weight = False, buf[k, 1], buf[k, 3]
                continue
            before = total / weight - buf[k, 0]
            total += buf[k, 1]
            weight += buf[k, 3]
            out[1] += buf[k, 3] * buf[k, 3] * before * (total / weight - buf[k, 0])


@numba.njit(nogil=True, cache=True)
def _clip_kernel(
    frames, indptr, pixels, fractions, flip, norm, variance, model, thres, max_iter, dummy, delta,
    out,
):  # fmt: skip  # pragma: no cover - numba
    """Per bin of each frame: the five `SUMS` of the pixels that survive the sigma clipping."""
    buf = np.empty((max(np.max(np.diff(indptr)), 1), 5))
    keep = np.empty(buf.shape[0], np.bool_)
    floor = np.sqrt(2.0 * np.pi)
    for i in range(frames.shape[0]):
        for b in range(indptr.shape[0] - 1):
            rows = (indptr[b], indptr[b + 1])
            m = _gather(
                frames, i, rows, pixels, fractions, flip, norm, variance, model, dummy, delta, buf
            )
            keep[:m] = True
            sums = out[i, b]
            _kept_sums(buf, keep, m, model, sums)
            for _ in range(max_iter):
                if sums[2] == 0.0 or sums[3] == 0.0:
                    break
                mean, std = sums[0] / sums[2], np.sqrt(sums[1] / sums[4])
                cut = max(thres, np.sqrt(2.0 * np.log(max(3.0, sums[3]) / floor))) * std
                bad = 0
                for k in range(m):
                    if keep[k] and abs(buf[k, 0] - mean) > cut:
                        keep[k] = False
                        bad += 1
                if bad == 0:
                    break
                _kept_sums(buf, keep, m, model, sums)


def _bin_inputs(frames, table: IntegrationTable, norm, variance, error_model):
    frames = np.asarray(frames)
    lead = frames.shape[:-2]
    stack = frames.reshape(-1, *table.shape)
    norm = None if norm is None else np.asarray(norm)
    if error_model == "variance":
        variance = np.broadcast_to(np.asarray(variance, np.float64), frames.shape)
        variance = variance.reshape(stack.shape)
    else:
        variance = None
    fractions = None if table.method == "no" else table.bin_fractions
    return lead, stack, fractions, norm, variance


def _dummies(dummy, delta_dummy):
    return None if dummy is None else np.float32(dummy), np.float32(delta_dummy or 0.0)


def _quantiles(percentile) -> tuple[float, float]:
    q = np.atleast_1d(np.asarray(percentile, np.float64))
    if q.size not in (1, 2) or not np.all((q >= 0) & (q <= 100)):
        raise OptionError(f"percentile={percentile!r}: expected a number or two in 0 .. 100")
    return float(q.min()) / 100.0, float(q.max()) / 100.0


#: the per-bin sums of `median_sums`
MEDIAN_SUMS = ("signal", "norm", "count")


def median_sums(
    frames, table: IntegrationTable, norm=None, *, percentile=50, dummy=None, delta_dummy=None
) -> np.ndarray:
    """Frames ``(..., y, x)`` -> ``(..., n_bins, 3)``: `MEDIAN_SUMS` of the quantile's pixels.

    ``signal`` and ``norm`` are Σ c·s and Σ c·ω of the pixels at the quantile
    (two numbers in 0 .. 100: all pixels between them), so signal / norm is
    pyFAI's ``medfilt1d_ng`` intensity; ``count`` is Σ c of all valid pixels.
    """
    qmin, qmax = _quantiles(percentile)
    lead, flat, fractions, norm, _ = _bin_inputs(frames, table, norm, None, None)
    dummy, delta = _dummies(dummy, delta_dummy)
    out = np.zeros((flat.shape[0], table.n_bins, len(MEDIAN_SUMS)))
    _median_kernel(
        flat, table.bin_indptr, table.bin_pixels, fractions, table.flip, norm, qmin, qmax,
        dummy, delta, out,
    )  # fmt: skip
    return out.reshape((*lead, table.n_bins, len(MEDIAN_SUMS)))


def clip_sums(
    frames,
    table: IntegrationTable,
    norm=None,
    *,
    thres: float = 5.0,
    max_iter: int = 5,
    error_model: str = "poisson",
    variance=None,
    dummy=None,
    delta_dummy=None,
) -> np.ndarray:
    """Frames ``(..., y, x)`` -> ``(..., n_bins, 5)``: the `SUMS` of the pixels kept by clipping.

    pyFAI's ``sigma_clip_ng``: the spread is ``sqrt(Σ variance / Σ c²ω²)``
    (`error_model` ``"poisson"``, ``"variance"`` or ``"azimuthal"``).
    """
    if error_model not in ("poisson", "variance", "azimuthal"):
        raise OptionError(
            f'error_model={error_model!r}: sigma clipping needs "poisson", "variance" or '
            '"azimuthal"'
        )
    lead, flat, fractions, norm, variance = _bin_inputs(frames, table, norm, variance, error_model)
    dummy, delta = _dummies(dummy, delta_dummy)
    out = np.zeros((flat.shape[0], table.n_bins, len(SUMS)))
    _clip_kernel(
        flat, table.bin_indptr, table.bin_pixels, fractions, table.flip, norm, variance,
        ERROR_MODELS[error_model], float(thres), int(max_iter), dummy, delta, out,
    )  # fmt: skip
    return out.reshape((*lead, table.n_bins, len(SUMS)))


def _valid_rows(frame, i, table, fractions, norm, variance, model, dummy, delta, b):
    """NumPy: a bin's valid pixels as columns s/ω, c·s, c²σ², c·ω, c (twin of `_gather`)."""
    pix = table.bin_pixels[table.bin_indptr[b] : table.bin_indptr[b + 1]]
    c = 1.0 if fractions is None else fractions[table.bin_indptr[b] : table.bin_indptr[b + 1]]
    c = np.broadcast_to(np.asarray(c, np.float64), pix.shape)

    def pixels(image):  # numbered as the table numbers them
        return (image[::-1] if table.flip else image).ravel()[pix]

    s = pixels(frame).astype(np.float64)
    w = np.ones(pix.size) if norm is None else pixels(norm).astype(np.float64)
    v = {1: np.maximum(1.0, s), 2: None if variance is None else pixels(variance[i])}
    v = v.get(model)
    v = np.zeros(pix.size) if v is None else v
    ok = np.isfinite(s) & (w != 0) & np.isfinite(w) & np.isfinite(v)
    if dummy is not None:
        raw = pixels(frame).astype(np.float32)
        ok &= (raw != dummy) if delta == 0 else ~(np.abs(raw - dummy) <= delta)
    with np.errstate(invalid="ignore", divide="ignore"):
        rows = np.stack([s / w, c * s, c * c * v, c * w, c], axis=1)
    return rows[ok]


def median_sums_reference(
    frames, table: IntegrationTable, norm=None, *, percentile=50, dummy=None, delta_dummy=None
) -> np.ndarray:
    """NumPy twin of `median_sums`: a stable argsort and cumulative sums per bin."""
    qmin, qmax = _quantiles(percentile)
    lead, flat, fractions, norm, var = _bin_inputs(frames, table, norm, None, None)
    dummy, delta = _dummies(dummy, delta_dummy)
    out = np.zeros((flat.shape[0], table.n_bins, len(MEDIAN_SUMS)))
    for i, frame in enumerate(flat):
        for b in range(table.n_bins):
            rows = _valid_rows(frame, i, table, fractions, norm, var, 0, dummy, delta, b)
            if not len(rows):
                continue
            rows = rows[np.argsort(rows[:, 0], kind="stable")]
            cum = np.cumsum(rows[:, 3])
            former = np.concatenate([[0.0], cum[:-1]])
            lo, hi = qmin * cum[-1], qmax * cum[-1]
            pick = (rows[:, 3] != 0) & (
                ((lo <= former) & (cum <= hi)) | ((lo >= former) & (cum >= hi))
            )
            out[i, b] = rows[pick, 1].sum(), rows[pick, 3].sum(), rows[:, 4].sum()
    return out.reshape((*lead, table.n_bins, len(MEDIAN_SUMS)))


def clip_sums_reference(frames, table: IntegrationTable, norm=None, **options) -> np.ndarray:
    """NumPy twin of `clip_sums`: boolean masks per bin, same iterations."""
    options = {**_CLIP_DEFAULTS, **options}
    thres, max_iter, error_model = options["thres"], options["max_iter"], options["error_model"]
    lead, flat, fractions, norm, var = _bin_inputs(
        frames, table, norm, options["variance"], error_model
    )
    dummy, delta = _dummies(options["dummy"], options["delta_dummy"])
    model = ERROR_MODELS[error_model]
    out = np.zeros((flat.shape[0], table.n_bins, len(SUMS)))

    def sums(rows):
        total = [rows[:, 1].sum(), rows[:, 2].sum(), rows[:, 3].sum(), rows[:, 4].sum()]
        total.append((rows[:, 3] ** 2).sum())
        if model == 3 and len(rows):  # pyFAI's one-pass update, with running sums
            signal, weight = np.cumsum(rows[:, 1]), np.cumsum(rows[:, 3])
            x = rows[1:, 0]
            change = (signal[:-1] / weight[:-1] - x) * (signal[1:] / weight[1:] - x)
            total[1] = (rows[1:, 3] ** 2 * change).sum()
        return np.array(total)

    for i, frame in enumerate(flat):
        for b in range(table.n_bins):
            rows = _valid_rows(frame, i, table, fractions, norm, var, model, dummy, delta, b)
            total = sums(rows)
            for _ in range(int(max_iter)):
                if total[2] == 0 or total[3] == 0:
                    break
                mean, std = total[0] / total[2], np.sqrt(total[1] / total[4])
                cut = max(thres, np.sqrt(2 * np.log(max(3.0, total[3]) / np.sqrt(2 * np.pi))))
                bad = np.abs(rows[:, 0] - mean) > cut * std
                if not bad.any():
                    break
                rows = rows[~bad]
                total = sums(rows)
            out[i, b] = total
    return out.reshape((*lead, table.n_bins, len(SUMS)))


_CLIP_DEFAULTS = {
    k: p.default
    for k, p in inspect.signature(clip_sums).parameters.items()
    if p.kind is p.KEYWORD_ONLY
}
#: order-statistics kernel -> NumPy twin (frames, table, norm, keyword options)
ORDER_KERNELS = {median_sums: median_sums_reference, clip_sums: clip_sums_reference}
