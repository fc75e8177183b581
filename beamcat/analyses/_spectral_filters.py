"""NumPy kernels of the spectral preparation (`beamcat.analyses.spectral_prep`).

Each works on one block whose last three axes are ``(wavelength, y, x)`` (any
leading axes, e.g. ``time``, are looped over) and is what `dask.array.map_overlap`
runs per chunk; the whole array in one block is its own reference.

- `sigma_clip_block`: SAFFRON's despike (``saffron/utils/despike.py``, MIT):
  a median filter of `size` over (wavelength, y, x), the local standard
  deviation from uniform filters (``sqrt(box(x^2) - box(x)^2)``, floored at
  1e-10), values more than `clip` standard deviations from the median replaced
  by it, `iterations` times; scipy's ``reflect`` mode at the edges. Wavelength
  planes that are NaN everywhere (no mean spectrum) are left out, as in SAFFRON.
  The median is only taken where a spike is possible (`_clip_pass`); the
  result equals scipy's ``median_filter`` path bit for bit.
- `box_sum_block`: sums over a (y, x) box, zero outside the array (scipy
  ``correlate`` with a ones kernel: every output is the same sum in the same
  order whatever the chunking).
- `denoise_block`: SAFFRON's wavelet denoising (``saffron/utils/denoise.py``):
  NaNs filled with the mean spectrum, ``watroo.denoise`` (B3-spline à trous,
  Anscombe transform), NaNs put back.
"""

from __future__ import annotations

import numba
import numpy as np
from scipy.ndimage import correlate, median_filter, uniform_filter

#: floor of the local variance (SAFFRON's ``vari[vari <= 0] = 10**-20``)
VARIANCE_FLOOR = 1e-20


def _planes(block: np.ndarray):
    """(index, 3-D view) over the leading axes of a (..., wavelength, y, x) block."""
    for index in np.ndindex(block.shape[:-3]):
        yield index, block[index]


def mean_spectra(block: np.ndarray) -> np.ndarray:
    """Mean over (y, x) of the finite values of a (..., wavelength, y, x) block; NaN where none."""
    count = np.isfinite(block).sum(axis=(-2, -1))
    total = np.where(np.isfinite(block), block, 0.0).sum(axis=(-2, -1), dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def sigma_clip_block(
    filled: np.ndarray, *, size: tuple[int, int, int], clip: float, iterations: int
) -> np.ndarray:
    """SAFFRON's iterated median sigma clip of NaN-filled spectra (..., wavelength, y, x).

    Returns the clipped values (float64): a value is either the input or a median.
    """
    out = np.array(filled, dtype=np.float64)
    for index, cube in _planes(out):
        finite = np.flatnonzero(~np.isnan(cube).all(axis=(1, 2)))
        if finite.size == 0:
            continue
        part = cube[finite[0] : finite[-1] + 1]
        counting = np.isfinite(part).all()  # medians of finite values stay finite
        pad = [(n // 2, n - 1 - n // 2) for n in size]  # scipy's window: [i - n//2, i - n//2 + n)
        for _ in range(iterations):
            mean = uniform_filter(part, size=size, mode="reflect")
            variance = uniform_filter(part * part, size=size, mode="reflect") - mean**2
            variance[variance <= 0] = VARIANCE_FLOOR
            threshold = clip * np.sqrt(variance)
            if counting:
                padded = np.pad(part, pad, mode="symmetric")  # scipy's "reflect"
                part = _clip_pass(padded, part, threshold, np.prod(size) // 2, size)
            else:  # all-NaN planes inside the window: scipy's order of NaNs decides
                median = median_filter(part, size=size, mode="reflect")
                spikes = np.abs(part - median) > threshold
                part[spikes] = median[spikes]
        out[index][finite[0] : finite[-1] + 1] = part
    return out


@numba.njit(nogil=True, cache=True)
def _clip_pass(padded, values, threshold, rank, size):
    """One clip: `values`, or the window median where ``|values - median| > threshold``.

    The median is the `rank`-th smallest value of the window (scipy's choice).
    It lies in ``[values - threshold, values + threshold]`` (so no spike) when at
    most `rank` window values are below the lower end and more than `rank` are at
    or below the upper one. These counts vectorise along x; only the samples that
    fail them (~1 % of noise at 2.5 σ, plus the spikes) have their window sorted.
    The ends are pulled in by 1e-12 relative, far above rounding, so the counts
    never wrongly clear a sample that the exact test would flag.
    """
    n_wave, n_y, n_x = values.shape
    size_w, size_y, size_x = size
    out = values.copy()
    low, high = np.empty(n_x), np.empty(n_x)
    below, at_or_below = np.empty(n_x, np.int64), np.empty(n_x, np.int64)
    window = np.empty(size_w * size_y * size_x)
    for w in range(n_wave):
        for y in range(n_y):
            for x in range(n_x):
                margin = 1e-12 * (abs(values[w, y, x]) + threshold[w, y, x])
                low[x] = values[w, y, x] - threshold[w, y, x] + margin
                high[x] = values[w, y, x] + threshold[w, y, x] - margin
                below[x] = 0
                at_or_below[x] = 0
            for dw in range(size_w):
                for dy in range(size_y):
                    row = padded[w + dw, y + dy]
                    for dx in range(size_x):
                        for x in range(n_x):
                            below[x] += row[x + dx] < low[x]
                            at_or_below[x] += row[x + dx] <= high[x]
            for x in range(n_x):
                if below[x] <= rank and at_or_below[x] > rank:
                    continue
                n = 0
                for dw in range(size_w):
                    for dy in range(size_y):
                        for dx in range(size_x):
                            window[n] = padded[w + dw, y + dy, x + dx]
                            n += 1
                median = np.sort(window)[rank]
                if abs(values[w, y, x] - median) > threshold[w, y, x]:
                    out[w, y, x] = median
    return out


def box_sum_block(values: np.ndarray, *, box: tuple[int, int]) -> np.ndarray:
    """Sums over a (y, x) box of the last two axes, zero outside the array (float64)."""
    kernel = np.ones((1,) * (values.ndim - 2) + tuple(box))
    return correlate(values.astype(np.float64), kernel, mode="constant")


def denoise_block(data: np.ndarray, *, weights: tuple[float, ...]) -> np.ndarray:
    """SAFFRON's ``denoise_data`` on each (wavelength, y, x) cube of a block."""
    from watroo import B3spline, denoise

    out = np.array(data, dtype=np.float64)
    for _, cube in _planes(out):
        missing = np.isnan(cube)
        mean_spectrum = mean_spectra(cube[None])[0]
        filled = np.where(missing, mean_spectrum[:, None, None], cube)
        finite = np.flatnonzero(~np.isnan(mean_spectrum))
        if finite.size == 0:
            continue
        lo, hi = finite[0], finite[-1] + 1
        cube[lo:hi] = denoise(
            filled[lo:hi], scaling_function=B3spline, weights=list(weights), anscombe=True
        )
        cube[missing] = np.nan
    return out
