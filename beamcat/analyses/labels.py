"""The per-pixel-label reduction: per-bin sums of every frame against a pixel -> bin table.

A table (`PixelTable`, `beamcat.analyses._pixel_tables`) gives each detector
pixel its bins and the fraction ``c`` of the pixel in each: a *label map* (one
bin, fraction 1: azimuthal integration without pixel splitting, 4D-STEM radial
bins of elliptical radius, a bin per ROI), a *band* of consecutive bins (pixel
splitting along a radial axis, pyFAI's "bbox"), or *slots* of any bins
(splitting in two dims, caking).

The reduction of a frame is, per bin, pyFAI's five sums (``integrate_ng``):

- ``signal`` Σ c·s, the pixel values s (times an optional per-pixel ``scale``);
- ``variance`` Σ c²·σ², with σ² per pixel from the error model: ``"poisson"``
  max(1, s), ``"variance"`` given per pixel, ``"squares"`` s² (sum of squares);
  or ``"azimuthal"``, the spread around the bin's mean by pyFAI's one-pass
  update (``CSR_common.pxi``): VV += (c·ω)²·(x - mean before)·(x - mean
  after), x = s/ω, which is Σ c²·ω²·(x - mean)² when ω and c are equal in the
  bin and close to it otherwise;
- ``norm`` Σ c·ω, with the per-pixel normalisation ω (solid angle, polarisation,
  flat field: what the signal is divided by);
- ``count`` Σ c (pixels per bin, fractional with splitting);
- ``norm_sq`` Σ c²·ω² (left 0 without an error model: it serves the spread only).

A pixel drops out of a frame when its value is not finite (NaN, inf), equals
``dummy`` (within ``delta_dummy``, compared in float32 as pyFAI does), its ω is
0 or not finite, or its given variance is not finite.

One module-level numba kernel (`table_sums`, ``nogil``, ``cache``) reduces a
chunk of frames; `table_sums_reference` is its ``np.bincount`` twin
(`TABLE_KERNELS`). `label_sums` (sum, sum of squares, count per label, weights
multiplying the values) is the kernel on a label map; `label_stats` wraps it
lazily with `beamcat.analyses._frames.map_frames` over any leading dims
(``frame``, ``time``, ``scan_y, scan_x``): one task per chunk of whole frames.

Examples
--------
>>> frames = xr.DataArray(np.arange(8.0).reshape(2, 2, 2), dims=("frame", "y", "x"))
>>> labels = np.array([[0, 0], [1, -1]])
>>> out = label_stats(frames, labels)
>>> out["sum"].values.tolist(), out["count"].values.tolist()
([[1.0, 2.0], [9.0, 6.0]], [[2.0, 1.0], [2.0, 1.0]])
>>> out["mean"].values.tolist()
[[0.5, 2.0], [4.5, 6.0]]
>>> sums = table_sums(np.arange(4.0).reshape(2, 2), label_table(labels, 2), np.full((2, 2), 2.0))
>>> sums[:, SUMS.index("signal")].tolist(), sums[:, SUMS.index("norm")].tolist()
([1.0, 2.0], [4.0, 2.0])
"""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numba
import numpy as np
import xarray as xr

from beamcat.analyses._frames import check_pixel_dims, describe, map_frames
from beamcat.analyses._history import carried, history
from beamcat.analyses._pixel_tables import (
    PixelTable,
    first_bin,
    label_table,
    slot_bin,
    slot_fraction,
    split_table,
    table_entries,
    without_pixels,
)
from beamcat.errors import OptionError

__all__ = [
    "ERROR_MODELS",
    "KERNELS",
    "SUMS",
    "Known",
    "TABLE_KERNELS",
    "PixelTable",
    "known_sums",
    "label_stats",
    "label_sums",
    "label_sums_reference",
    "label_table",
    "split_table",
    "table_sums",
    "table_sums_reference",
]

#: the per-bin sums of `table_sums`, in pyFAI's order
SUMS = ("signal", "variance", "norm", "count", "norm_sq")
#: error model -> the kernel's code for it
ERROR_MODELS = {None: 0, "poisson": 1, "variance": 2, "azimuthal": 3, "squares": 4}


@numba.njit(nogil=True, cache=True, inline="always")
def _pixel(frames, i, y, x, norm, scale, variance, model, dummy, delta):  # pragma: no cover
    """(valid, s, σ², ω) of pixel (y, x) of frame i, by the rules of the module docstring."""
    value = frames[i, y, x]
    if dummy is not None:  # None arguments: numba compiles these branches away
        raw = np.float32(value)
        if (delta == 0.0 and raw == dummy) or (delta != 0.0 and abs(raw - dummy) <= delta):
            return False, 0.0, 0.0, 0.0
    s = np.float64(value)
    if scale is not None:
        s = s * scale[y, x]
    if not s - s == 0.0:  # NaN or inf
        return False, 0.0, 0.0, 0.0
    w = 1.0
    if norm is not None:
        w = np.float64(norm[y, x])
    if not (w != 0.0 and w - w == 0.0):
        return False, 0.0, 0.0, 0.0
    v = 0.0
    if model == 1:
        v = max(1.0, s)
    elif model == 2 and variance is not None:
        v = np.float64(variance[i, y, x])
        if not v - v == 0.0:
            return False, 0.0, 0.0, 0.0
    elif model == 4:
        v = s * s
    return True, s, v, w


@numba.njit(nogil=True, cache=True, inline="always")
def _add(acc, b, c, s, v, w, model, known):  # pragma: no cover - numba
    """Add one entry (fraction c of a valid pixel) to bin b's sums acc[b]."""
    wb = c * w
    if known is not None:  # norm, count and Σ c²ω² known: the signal and variance, or a
        # dropped pixel (s = 0, w = -ω) taken off; `known` None compiles this branch away
        if w < 0.0:
            acc[b, 2] += wb
            acc[b, 3] -= c
            acc[b, 4] -= wb * wb
        else:
            acc[b, 0] += c * s
            if model != 0:
                acc[b, 1] += c * c * v
        return
    acc[b, 3] += c
    if model != 3:
        acc[b, 0] += c * s
        acc[b, 2] += wb
        if model != 0:  # without an error model: no variance, no Σ c²ω² (its only use)
            acc[b, 1] += c * c * v
            acc[b, 4] += wb * wb
    elif acc[b, 4] <= 0.0:  # pyFAI's one-pass update: the bin's first pixel
        acc[b, 0] = c * s
        acc[b, 2] = wb
        acc[b, 4] = wb * wb
    else:  # VV += (cω)²·(x - mean before)·(x - mean after), x = s/ω
        x = s / w
        before = acc[b, 0] / acc[b, 2] - x
        acc[b, 0] += c * s
        acc[b, 2] += wb
        acc[b, 4] += wb * wb
        acc[b, 1] += wb * wb * before * (acc[b, 0] / acc[b, 2] - x)


@numba.njit(nogil=True, cache=True)
def _rows(
    frames, i, rows, bins, fractions, up, checked, norm, scale, variance, model, dummy, delta,
    known, acc,
):  # fmt: skip  # pragma: no cover - numba
    """Rows ``rows[0]:rows[1]`` of frame i into acc (n_bins, 5), bottom up when `up`.

    `checked` is the ω read and checked for every pixel: `norm`, or None with
    `known` (the ``norm``, ``count`` and ``norm_sq`` of the table's pixels,
    already in acc, all of valid ω): then only the signal and variance are
    added, and the pixels that drop out of this frame are taken off with their ω.
    """
    labelled = len(fractions) == 0
    height, width = frames.shape[1], frames.shape[2]
    for t in range(rows[0], rows[1]):
        y = height - 1 - t if up else t
        for x in range(width):
            p = y * width + x
            b = first_bin(bins, p)
            if b < 0:
                continue
            ok, s, v, w = _pixel(frames, i, y, x, checked, scale, variance, model, dummy, delta)
            if known is not None and not ok:  # take a dropped pixel off the known sums
                w = 1.0 if norm is None else np.float64(norm[y, x])
                if not (w != 0.0 and w - w == 0.0):
                    continue
                s, w = 0.0, -w
            elif not ok:
                continue
            if labelled:  # fraction 1: 1·s and 1·1·v are exact, the label map's sums to the bit
                _add(acc, b, 1.0, s, v, w, model, known)
                continue
            for k in range(len(fractions)):  # W, known to the compiler; padding adds 0
                c = slot_fraction(fractions, p, k)
                _add(acc, slot_bin(bins, p, k, b), c, s, v, w, model, known)


@numba.njit(nogil=True, cache=True)
def _table_sums_kernel(
    frames, bins, fractions, flip, checked, norm, scale, variance, model, dummy, delta, known,
    rows, out,
):  # fmt: skip  # pragma: no cover - numba
    """The five sums of rows ``rows[0]:rows[1]`` of frames (n, y, x) into out (n, n_bins, 5).

    Pixel p = y·width + x, rows top down, or bottom up for the azimuthal model
    of a flipped table: each bin gets its pixels in pyFAI's order (its one-pass
    azimuthal variance depends on it). `out` starts zeroed, or holding `known`.
    """
    up = flip and model == 3
    if up:
        rows = (frames.shape[1] - rows[1], frames.shape[1] - rows[0])
    for i in range(frames.shape[0]):
        _rows(frames, i, rows, bins, fractions, up, checked, norm, scale, variance, model,
              dummy, delta, known, out[i])  # fmt: skip


def _table_inputs(
    frames,
    table,
    norm,
    *,
    scale=None,
    variance=None,
    error_model=None,
    dummy=None,
    delta_dummy=None,
):
    """Kernel arguments: frames (n, y, x), per-pixel (y, x) arrays (views where possible)."""
    if error_model not in ERROR_MODELS:
        raise OptionError(f"error_model={error_model!r}: expected one of {list(ERROR_MODELS)}")
    model = ERROR_MODELS[error_model]
    frames = np.asarray(frames)
    lead, shape = frames.shape[:-2], frames.shape[-2:]
    stack = frames.reshape(-1, *shape)

    def pixels(a):
        return None if a is None else np.asarray(a).reshape(shape)

    if model == 2:
        if variance is None:
            raise OptionError('error_model="variance" needs the variance of every pixel')
        var = np.broadcast_to(np.asarray(variance, np.float64), frames.shape).reshape(stack.shape)
    else:
        var = None
    dummy = None if dummy is None else np.float32(dummy)
    delta = np.float32(0.0 if delta_dummy is None else delta_dummy)
    tables = (table.bins, table.fractions, bool(table.flip))
    args = (stack, *tables, pixels(norm), pixels(scale), var)
    return lead, args, model, dummy, delta


def table_sums(
    frames: np.ndarray,
    table: PixelTable,
    norm=None,
    *,
    scale=None,
    variance=None,
    error_model: str | None = None,
    dummy: float | None = None,
    delta_dummy: float | None = None,
    known=None,
    threads: int = 1,
) -> np.ndarray:
    """The kernel: frames ``(..., y, x)`` -> ``(..., n_bins, 5)``, the `SUMS` per bin.

    Parameters
    ----------
    frames : ndarray (..., y, x)
        Any numeric dtype.
    table : PixelTable
        Pixel -> bins (`label_table`, or `split_table` of a CSR table) for pixels numbered
        ``y * width + x``; not checked here.
    norm : ndarray (y, x), optional
        The normalisation ω of each pixel (default 1).
    scale : ndarray (y, x), optional
        Multiplies each pixel's value before anything else (label weights).
    variance : ndarray (y, x) or (..., y, x), optional
        Per-pixel variance, for ``error_model="variance"``.
    error_model : {None, "poisson", "variance", "azimuthal", "squares"}
        What the ``variance`` sum holds (module docstring); None: zeros.
    dummy, delta_dummy : float, optional
        Pixels whose value is `dummy` (within `delta_dummy`) drop out.
    known : Known, optional
        `known_sums` of this table and norm (any error model but
        ``"azimuthal"``): the kernel then streams its table (the pixels whose ω
        is valid) and adds the signal and variance only, reading ω just for the
        pixels a frame drops (the same numbers to rounding; a third of the work
        without an error model).
    threads : int
        Threads sharing the work (the kernel releases the GIL): blocks of
        frames, or for a single frame blocks of rows, each into sums of its own
        added at the end (not for the ``"azimuthal"`` model, whose one-pass
        update depends on the order). 1 inside dask tasks, which already fill
        the cores; a NumPy call on one frame uses more to answer sooner.
    """
    options = {"scale": scale, "variance": variance, "error_model": error_model}
    options.update(dummy=dummy, delta_dummy=delta_dummy)
    if known is not None:
        if error_model == "azimuthal":
            raise OptionError('known sums do not serve the "azimuthal" model (its order matters)')
        table = known.table
    lead, args, model, dummy, delta = _table_inputs(frames, table, norm, **options)
    stack, (bins, fractions, flip, norm, scale, variance) = args[0], args[1:]
    out = np.zeros((stack.shape[0], table.n_bins, len(SUMS)))
    checked = norm  # ω read (and checked) for every pixel, or with `known` for the dropped only
    if known is not None:
        out[..., 2:] = known.sums
        checked = None
    rest = (bins, fractions, flip, checked, norm, scale, variance, model, dummy, delta)

    def run(block, rows, sums):
        _table_sums_kernel(block, *rest, None if known is None else known.sums, rows, sums)

    height = stack.shape[1]
    if threads <= 1 or (stack.shape[0] == 1 and (model == 3 or height < 2 * threads)):
        run(stack, (0, height), out)
    elif stack.shape[0] == 1:  # rows: sums of their own (known in the first), added up
        edges = np.linspace(0, height, threads + 1).astype(int)
        parts = [out] + [np.zeros_like(out) for _ in range(threads - 1)]
        rows = zip(edges[:-1], edges[1:], strict=True)
        _in_threads(run, [(stack, row, part) for row, part in zip(rows, parts, strict=True)])
        out = sum(parts[1:], parts[0])
    else:
        edges = np.linspace(0, stack.shape[0], min(threads, stack.shape[0]) + 1).astype(int)
        frames = zip(edges[:-1], edges[1:], strict=True)
        blocks = [(stack[a:b], (0, height), out[a:b]) for a, b in frames]
        _in_threads(run, blocks)
    if model == 0:
        out[..., 4] = 0.0  # Σ c²ω² serves the error models only (known sums hold it)
    return out.reshape((*lead, table.n_bins, len(SUMS)))


@functools.cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(thread_name_prefix="beamcat-table-sums")


def _in_threads(run, calls) -> None:
    """run(*call) for every call in the shared pool, and wait for all (errors re-raised)."""
    for future in [_pool().submit(run, *call) for call in calls]:
        future.result()


class Known(NamedTuple):
    """What every frame shares (`known_sums`): the sums of its pixels that do not hold values."""

    #: the table without the pixels whose ω is 0 or not finite (no frame uses them)
    table: PixelTable
    #: (n_bins, 3): Σ c·ω, Σ c and Σ c²ω² per bin over the table's pixels
    sums: np.ndarray


def known_sums(table: PixelTable, norm, shape: tuple[int, int]) -> Known:
    """The `Known` sums of a table and norm: `table_sums`' ``known``."""
    sums = table_sums(np.ones(shape), table, norm, error_model="poisson")[:, 2:]
    if norm is None:
        return Known(table, sums)
    w = np.asarray(norm).ravel()
    return Known(without_pixels(table, ~(np.isfinite(w) & (w != 0))), sums)


def table_sums_reference(frames: np.ndarray, table: PixelTable, norm=None, **options) -> np.ndarray:
    """NumPy twin of `table_sums`: ``np.bincount`` over the table's entries, same arguments."""
    options = {"scale": None, "variance": None, "error_model": None, **options}
    for shortcut in ("known", "threads"):  # the kernel's: the twin sums everything, serially
        options.pop(shortcut, None)
    lead, args, model, dummy, delta = _table_inputs(frames, table, norm, **options)
    stack, _, _, flip, norm, scale, var = args
    flat = stack.reshape(stack.shape[0], -1)
    npix = flat.shape[1]
    pixel, bins, c = table_entries(table)
    w = np.ones(npix) if norm is None else norm.astype(np.float64).ravel()
    out = np.zeros((flat.shape[0], table.n_bins, len(SUMS)))
    with np.errstate(invalid="ignore", divide="ignore"):
        for i, frame in enumerate(flat):
            s = frame.astype(np.float64) * (1.0 if scale is None else scale.ravel())
            ok = np.isfinite(s) & (w != 0) & np.isfinite(w)
            if dummy is not None:
                raw = frame.astype(np.float32)
                ok &= (raw != dummy) if delta == 0 else ~(np.abs(raw - dummy) <= delta)
            v = {1: np.maximum(1.0, s), 2: None if var is None else var[i].ravel(), 4: s * s}
            v = v.get(model)
            v = np.zeros(npix) if v is None else v
            ok &= np.isfinite(v)
            e = ok[pixel]
            b, ce, pe = bins[e], c[e], pixel[e]
            squares = ce * ce * w[pe] ** 2 if model else np.zeros(ce.size)
            sums = (ce * s[pe], ce * ce * v[pe], ce * w[pe], ce, squares)
            for k, values in enumerate(sums):
                out[i, :, k] = np.bincount(b, values, minlength=table.n_bins)
            if model == 3:  # rows bottom up for a flipped table, as the kernel
                rank = (stack.shape[1] - 1 - pe // stack.shape[2], pe % stack.shape[2])
                rank = np.ravel_multi_index(rank, stack.shape[1:]) if flip else pe
                out[i, :, 1] = _azimuthal_reference(b, ce, s[pe], w[pe], rank, table.n_bins)
    return out.reshape((*lead, table.n_bins, len(SUMS)))


def _azimuthal_reference(bins, c, s, w, rank, n_bins: int) -> np.ndarray:
    """The one-pass azimuthal variance of `_add`, vectorised: running sums per bin."""
    used = c != 0  # the kernel's zero fractions change nothing
    bins, c, s, w, rank = bins[used], c[used], s[used], w[used], rank[used]
    order = np.lexsort((rank, bins))  # each bin's entries in the kernel's order
    bins, c, s, w = bins[order], c[order], s[order], w[order]
    first = np.r_[True, bins[1:] != bins[:-1]]
    start = np.maximum.accumulate(np.where(first, np.arange(bins.size), 0))

    def running(values):  # per-bin cumulative sums (after each entry)
        total = np.cumsum(values)
        return total - (total[start] - values[start])

    sig, nrm = running(c * s), running(c * w)
    x = s / w
    before = (sig - c * s) / (nrm - c * w) - x
    terms = np.where(first, 0.0, (c * w) ** 2 * before * (sig / nrm - x))
    return np.bincount(bins, terms, minlength=n_bins)


#: kernel -> NumPy twin (frames (..., y, x), table, norm, keyword options)
TABLE_KERNELS = {table_sums: table_sums_reference}

#: the label statistics picked from the kernel's sums: sum, sum of squares, count
_LABEL_SUMS = [SUMS.index("signal"), SUMS.index("variance"), SUMS.index("count")]


#: frames the integer kernel reads together: each table entry read once for all of
#: them, and their independent sums hide the latency of adding into a bin
_FRAMES_AT_ONCE = 4


@numba.njit(nogil=True, cache=True)
def _integer_label_sums(frames, bins, out):  # pragma: no cover - numba
    """Σs and Σs² per label of integer frames (n, y, x) of at most 16 bits, into out (n, labels, 3).

    Integer sums in int64 are exact in any order, and so are their float64
    values (below 2**53): the numbers of the float64 kernel, without its
    checks (an integer is always finite) or its floating-point add latency.
    Frames go `_FRAMES_AT_ONCE` together, the last ones one at a time.
    """
    n, height, width = frames.shape
    group = _FRAMES_AT_ONCE
    acc = np.zeros((out.shape[1], 2 * group), np.int64)
    first = 0
    while first < n:
        m = group if n - first >= group else 1
        acc[:] = 0
        for y in range(height):
            for x in range(width):
                b = bins[y * width + x]
                if b < 0:
                    continue
                if m == group:
                    for k in range(group):  # a constant: unrolled
                        v = np.int64(frames[first + k, y, x])
                        acc[b, 2 * k] += v
                        acc[b, 2 * k + 1] += v * v
                else:
                    v = np.int64(frames[first, y, x])
                    acc[b, 0] += v
                    acc[b, 1] += v * v
        for k in range(m):
            for b in range(out.shape[1]):
                out[first + k, b, 0] = acc[b, 2 * k]
                out[first + k, b, 1] = acc[b, 2 * k + 1]
        first += m


def label_sums(frames: np.ndarray, labels: np.ndarray, weights, n_labels: int) -> np.ndarray:
    """Frames ``(..., y, x)`` -> ``(..., n_labels, 3)`` sum, sum of squares, count per label.

    `table_sums` on the label map, with the weights as its ``scale`` and the
    ``"squares"`` error model: the values are added in pixel order, as
    ``np.bincount`` adds them, so its twin's numbers are equal to the last bit.
    Unweighted integer frames of up to 16 bits (detector counts) take an
    integer kernel, ~4x faster and exact: every order gives the same sums.

    Parameters
    ----------
    frames : ndarray (..., y, x)
        Any numeric dtype.
    labels : ndarray (y, x) of int
        Bin of each pixel, ``0 .. n_labels - 1``, or -1 to exclude it (checked by
        `label_stats`, not here).
    weights : ndarray (y, x) or None
        Multiplies each pixel's value before it is summed.
    n_labels : int
        Number of bins.
    """
    table = label_table(labels, n_labels)
    frames = np.asarray(frames)
    if weights is None and frames.dtype.kind in "iu" and frames.dtype.itemsize <= 2:
        lead, shape = frames.shape[:-2], frames.shape[-2:]
        out = np.empty((int(np.prod(lead)), n_labels, 3))
        _integer_label_sums(frames.reshape(-1, *shape), table.bins, out)
        out[..., 2] = np.bincount(table.bins[table.bins >= 0], minlength=n_labels)
        return out.reshape((*lead, n_labels, 3))
    known = known_sums(table, None, frames.shape[-2:])  # the count: one frame's pass
    sums = table_sums(frames, table, scale=weights, error_model="squares", known=known)
    return sums[..., _LABEL_SUMS]


def label_sums_reference(
    frames: np.ndarray, labels: np.ndarray, weights, n_labels: int
) -> np.ndarray:
    """NumPy twin of `label_sums`: ``np.bincount`` per frame, same arguments and result."""
    frames = np.asarray(frames)
    lead = frames.shape[:-2]
    flat = frames.reshape(-1, frames.shape[-2] * frames.shape[-1])
    labels = np.asarray(labels, np.int64).ravel()
    weights = np.ones(labels.shape[0]) if weights is None else np.asarray(weights).ravel()
    out = np.zeros((flat.shape[0], n_labels, 3))
    for i, frame in enumerate(flat):
        values = frame.astype(np.float64) * weights
        keep = (labels >= 0) & np.isfinite(values)
        bins, values = labels[keep], values[keep]
        out[i, :, 0] = np.bincount(bins, values, minlength=n_labels)
        out[i, :, 1] = np.bincount(bins, values * values, minlength=n_labels)
        out[i, :, 2] = np.bincount(bins, minlength=n_labels)
    return out.reshape((*lead, n_labels, 3))


#: kernel -> NumPy twin (frames (..., y, x), labels (y, x), weights (y, x) or None, n_labels)
KERNELS = {label_sums: label_sums_reference}


#: what `_label_moments` gives per label
_LABEL_STATS = ("sum", "sum_sq", "count", "mean", "variance")


def _label_moments(frames: np.ndarray, labels, weights, n_labels: int) -> np.ndarray:
    """`label_sums` with the mean and variance: ``(..., n_labels, 5)`` in `_LABEL_STATS` order.

    The variance is the population one, clipped at 0; both are NaN where a label has no pixel.
    """
    sums = label_sums(frames, labels, weights, n_labels)
    total, squares, count = sums[..., 0], sums[..., 1], sums[..., 2]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / count, np.nan)
        variance = np.maximum(squares / np.where(count > 0, count, np.nan) - mean**2, 0.0)
    return np.concatenate([sums, mean[..., None], variance[..., None]], axis=-1)


def _check_labels(labels, shape: tuple[int, int], n_labels: int | None, where: str):
    """The label map as int64 ``(y, x)`` and the number of bins; OptionError if it does not fit."""
    values = np.asarray(labels.data if isinstance(labels, xr.DataArray) else labels)
    if values.shape != tuple(shape):
        raise OptionError(
            f"{where}: label map of shape {values.shape}, expected the frames' (y, x) {shape}"
        )
    if values.dtype.kind not in "iu":
        raise OptionError(f"{where}: label map of dtype {values.dtype}, expected integers")
    values = values.astype(np.int64)
    top = int(values.max()) if values.size else -1
    if n_labels is None:
        n_labels = top + 1
    if isinstance(n_labels, bool) or not isinstance(n_labels, int | np.integer) or n_labels < 1:
        raise OptionError(f"{where}: n_labels={n_labels!r}, expected a positive integer")
    bad = (values < -1) | (values >= n_labels)
    if bad.any():
        y, x = np.argwhere(bad)[0]
        raise OptionError(
            f"{where}: {int(bad.sum())} labels outside -1 .. {n_labels - 1} "
            f"(first at y={y}, x={x}: {values[y, x]}); -1 excludes a pixel"
        )
    return values, int(n_labels)


def _check_weights(weights, shape: tuple[int, int], where: str):
    if weights is None:
        return None
    values = np.asarray(weights.data if isinstance(weights, xr.DataArray) else weights)
    if values.shape != tuple(shape) or values.dtype.kind not in "biuf":
        raise OptionError(
            f"{where}: weights of shape {values.shape} and dtype {values.dtype}, "
            f"expected numbers of the frames' (y, x) shape {shape}"
        )
    return values.astype(np.float64)


def label_stats(
    frames: xr.DataArray,
    labels,
    *,
    weights=None,
    n_labels: int | None = None,
    dim: str = "label",
) -> xr.Dataset:
    """Per-label sum, sum of squares, count, mean and variance of every frame.

    Parameters
    ----------
    frames : DataArray (..., y, x)
        Any leading dims (``frame``, ``time``, ``scan_y, scan_x``), NumPy- or
        dask-backed, any numeric dtype.
    labels : ndarray or DataArray (y, x) of int
        Bin of each pixel, ``0 .. n_labels - 1``; -1 excludes the pixel. Kept in
        memory (a geometry, the size of one frame).
    weights : ndarray or DataArray (y, x), optional
        Multiplies each pixel's value before it is summed (solid angle,
        polarisation, flat field ...).
    n_labels : int, optional
        Number of bins (default: the largest label + 1). Bins without pixels
        give count 0 and NaN mean.
    dim : str
        Name of the label dim.

    Returns
    -------
    Dataset
        ``sum``, ``sum_sq``, ``count`` (float64; count of finite pixels) and
        ``mean = sum / count``, ``variance = sum_sq / count - mean**2``
        (population variance, clipped at 0; NaN where count is 0), over the
        leading dims of `frames` then `dim`. Lazy when `frames` is: one
        task per chunk of whole frames (`map_frames`; ``y``/``x`` are
        rechunked to one chunk), nothing computed here.

    Raises
    ------
    OptionError
        `frames` without pixel dims (y, x) last, a label map or weights not of
        the frames' (y, x) shape, non-integer labels, or labels outside
        ``-1 .. n_labels - 1``.
    """
    shape = check_pixel_dims(frames)
    where = describe(frames, "label_stats")
    labels, n_labels = _check_labels(labels, shape, n_labels, where)
    weights = _check_weights(weights, shape, where)
    options = {"labels": labels, "weights": weights, "n_labels": n_labels}
    sizes = {dim: n_labels, "_stats": len(_LABEL_STATS)}
    stats = map_frames(_label_moments, frames, dims=(dim, "_stats"), sizes=sizes, **options)
    # one task per chunk makes every statistic; each variable picks its own out of it
    total, squares, count, mean, variance = (
        stats.isel(_stats=i, drop=True) for i in range(len(_LABEL_STATS))
    )
    units = frames.attrs.get("units")
    unit = {"units": units} if units else {}
    square = {"units": f"({units})^2"} if units else {}
    ds = xr.Dataset(
        {
            "sum": total.assign_attrs(long_name="sum per label", **unit),
            "sum_sq": squares.assign_attrs(long_name="sum of squares per label", **square),
            "count": count.assign_attrs(long_name="finite pixels per label", units="1"),
            "mean": mean.assign_attrs(long_name="mean per label", **unit),
            "variance": variance.assign_attrs(long_name="variance (ddof=0) per label", **square),
        },
        coords={dim: np.arange(n_labels)},
    )
    line = f"label_stats: {n_labels} labels, weights={'yes' if weights is not None else 'no'}"
    ds.attrs = {**carried(frames.attrs), "signal": "mean", "history": history(frames.attrs, line)}
    return ds
