"""Per-bin order statistics of frames on an azimuthal-integration table (bin-major).

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

import inspect

import numba
import numpy as np

from beamcat.analyses._azimuthal_tables import IntegrationTable
from beamcat.analyses.labels import ERROR_MODELS, SUMS, _pixel
from beamcat.errors import OptionError

__all__ = [
    "MEDIAN_SUMS",
    "ORDER_KERNELS",
    "clip_sums",
    "clip_sums_reference",
    "median_sums",
    "median_sums_reference",
]


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
