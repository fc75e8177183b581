"""The start of the line fitter: usable samples, bounds and the initial guess, per spectrum.

Numba helpers of `beamcat.analyses._linefit_kernel` (which fits from this
start) and `start_spectra`, the start and bounds alone (`starting_point`).
The model comes as the flat arrays of `LineModel.arrays`.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["start_spectra"]

#: Free-parameter kinds (the `code` array of the model)
INTENSITY, CENTER, WIDTH, BACKGROUND, SLOPE = range(5)
BACKGROUND_SCALE = 5.0  # default background bound: ± this x the spectrum's largest |sample|
WIDTH_GUESS = 0.35  # Angstrom, SAFFRON's gen_inits
PEAK_SEARCH = 0.3  # Angstrom: a peak guess looks this far from the rest wavelength
BACKGROUND_QUANTILE = 0.1  # the background guess: this quantile of the segment's samples
_MARGIN = 1e-6  # starts are this fraction of the bounds' span inside them (trf needs it)
_BATCH = 32  # spectra per parallel task (here and in the kernel): one set of scratch arrays


@numba.njit(nogil=True, cache=True, inline="always")
def _usable(wave, value, sigma):
    """A sample is fitted when its wavelength, value and σ are finite and σ > 0."""
    return np.isfinite(value) and np.isfinite(wave) and np.isfinite(sigma) and sigma > 0.0


@numba.njit(nogil=True, cache=True, _nrt=False)
def _compact(wave, data, sigma, segment, i, x, y, w, seg):
    """The usable samples of spectrum `i` into ``x, y, w = 1/σ, seg``; returns their count.

    `wave`, `sigma` and `segment` have one row per spectrum or one for all.
    """
    iw, js, jg = _row(wave, i), _row(sigma, i), _row(segment, i)
    m = 0
    for t in range(data.shape[1]):
        if _usable(wave[iw, t], data[i, t], sigma[js, t]):
            x[m], y[m], w[m] = wave[iw, t], data[i, t], 1.0 / sigma[js, t]
            seg[m] = segment[jg, t]
            m += 1
    return m


@numba.njit(nogil=True, cache=True, inline="always")
def _row(values, i):
    """The row of `values` for spectrum `i`: `i`, or 0 when one row serves the block."""
    return i if values.shape[0] > 1 else 0


@numba.njit(nogil=True, cache=True, _nrt=False)
def _low_quantile(y, seg, k, smallest):
    """`BACKGROUND_QUANTILE` of the samples `y` of segment `k` (numpy's linear rule); 0 for none.

    The few smallest values are kept sorted in the scratch `smallest` by
    insertion: most samples cost one comparison, and nothing is allocated.
    """
    n = 0
    for t in range(y.size):
        n += seg[t] == k
    if n == 0:
        return 0.0
    position = BACKGROUND_QUANTILE * (n - 1)
    below = int(np.floor(position))
    above = min(below + 1, n - 1)
    kept = 0
    for t in range(y.size):
        if seg[t] != k or (kept > above and y[t] >= smallest[above]):
            continue
        j = kept if kept <= above else above
        kept = min(kept + 1, above + 1)
        while j > 0 and smallest[j - 1] > y[t]:
            smallest[j] = smallest[j - 1]
            j -= 1
        smallest[j] = y[t]
    return smallest[below] + (position - below) * (smallest[above] - smallest[below])


@numba.njit(nogil=True, cache=True, _nrt=False)
def _start(x, y, seg, rest, root, code, owner, lo_kind, hi_kind, scaled, p0, p, lo, hi,
           background, smallest):  # fmt: skip
    """Bounds and start of one spectrum's free parameters into `p`, `lo`, `hi`.

    Background bounds marked `scaled` are ± `BACKGROUND_SCALE` x the largest
    |sample|; the start is `p0` (full parameters, at the free ones' roots) when
    it has a value, else the guess: per segment the low quantile of its samples,
    per line its rest wavelength, `WIDTH_GUESS`, and the largest sample within
    `PEAK_SEARCH` (or the nearest sample) above its segment's background. Starts
    are clipped a hair inside the bounds. `background` (one per segment) and
    `smallest` (one per sample) are scratch.
    """
    level = _level(y)
    for k in range(background.size):
        background[k] = _low_quantile(y, seg, k, smallest)
    for f in range(p.size):
        if scaled[f]:
            lo[f], hi[f] = -BACKGROUND_SCALE * level, BACKGROUND_SCALE * level
        else:
            lo[f], hi[f] = lo_kind[f], hi_kind[f]
        if p0.size:
            guess = p0[root[f]]
        elif code[f] == INTENSITY:
            near = np.inf
            for t in range(x.size):
                near = min(near, abs(x[t] - rest[owner[f]]))
            near = max(near, PEAK_SEARCH)
            guess = 0.0
            for t in range(x.size):
                if abs(x[t] - rest[owner[f]]) <= near:
                    guess = max(guess, y[t] - background[seg[t]])
        elif code[f] == CENTER:
            guess = rest[owner[f]]
        elif code[f] == WIDTH:
            guess = WIDTH_GUESS
        elif code[f] == BACKGROUND:
            guess = background[owner[f]]
        else:
            guess = 0.0
        margin = _MARGIN * _span(lo[f], hi[f], level)
        p[f] = min(max(guess, lo[f] + margin), hi[f] - margin)


@numba.njit(nogil=True, cache=True)
def _level(y):
    """The data's scale: its largest |sample| (1 for an all-zero spectrum)."""
    level = 0.0
    for t in range(y.size):
        level = max(level, abs(y[t]))
    return level if level > 0.0 else 1.0


@numba.njit(nogil=True, cache=True, inline="always")
def _span(lo, hi, level):
    """A parameter's scale: its bounds' span, or for a one-sided or free one the data's level."""
    return hi - lo if np.isfinite(hi - lo) else level


@numba.njit(parallel=True, cache=True)
def start_spectra(wave, data, sigma, segment, model, p0):
    """The start and bounds `fit_spectra` uses, ``(n, n_free)`` each (NaN for unusable spectra)."""
    src, scale, shift, n_bg, reference, rest, root, code, owner, lo_kind, hi_kind, scaled = model
    n, nf = data.shape[0], root.size
    p, lo, hi = np.full((n, nf), np.nan), np.full((n, nf), np.nan), np.full((n, nf), np.nan)
    for batch in numba.prange((n + _BATCH - 1) // _BATCH):
        rows = range(batch * _BATCH, min(n, (batch + 1) * _BATCH))
        _start_rows(rows, wave, data, sigma, segment, model, p0, p, lo, hi)
    return p, lo, hi


@numba.njit(nogil=True, cache=True)
def _start_rows(rows, wave, data, sigma, segment, model, p0, p, lo, hi):
    """`start_spectra` for the spectra `rows` (a range)."""
    src, scale, shift, n_bg, reference, rest, root, code, owner, lo_kind, hi_kind, scaled = model
    x, y, w, smallest = np.empty((4, data.shape[1]))
    seg, background = np.empty(data.shape[1], np.int64), np.empty(reference.size)
    for row in rows:
        m = _compact(wave, data, sigma, segment, row, x, y, w, seg)
        if m:
            start = p0[_row(p0, row)] if p0.shape[0] else p0[0:0, 0]
            _start(x[:m], y[:m], seg[:m], rest, root, code, owner, lo_kind, hi_kind, scaled, start,
                   p[row], lo[row], hi[row], background, smallest)  # fmt: skip
