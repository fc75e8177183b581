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
- `box_sum_block`: sums over a (y, x) box, zero outside the array (scipy
  ``correlate`` with a ones kernel: every output is the same sum in the same
  order whatever the chunking).
- `denoise_block`: SAFFRON's wavelet denoising (``saffron/utils/denoise.py``):
  NaNs filled with the mean spectrum, ``watroo.denoise`` (B3-spline à trous,
  Anscombe transform), NaNs put back.
"""

from __future__ import annotations

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
        for _ in range(iterations):
            median = median_filter(part, size=size, mode="reflect")
            mean = uniform_filter(part, size=size, mode="reflect")
            variance = uniform_filter(part * part, size=size, mode="reflect") - mean**2
            variance[variance <= 0] = VARIANCE_FLOOR
            spikes = np.abs(part - median) > clip * np.sqrt(variance)
            part[spikes] = median[spikes]
        out[index][finite[0] : finite[-1] + 1] = part
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
