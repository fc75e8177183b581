"""Small dense symmetric linear algebra for numba kernels: Cholesky factor, solve, inverse.

For the normal equations of the line fitter (`beamcat.analyses._linefit_kernel`),
~10 x 10, factored a few times per spectrum: plain loops, no allocation, no
reference counting (``_nrt=False``: numba would count references to the array
arguments on every call, an atomic operation each).
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["cholesky", "inverse", "solve"]

_PIVOT = 1e-13  # a pivot this small relative to its diagonal means singular


@numba.njit(nogil=True, cache=True, _nrt=False)
def cholesky(a, n):
    """In-place lower Cholesky factor L of ``a[:n, :n]``; False when not positive definite.

    The diagonal holds ``1 / L[j, j]``: `solve` and `inverse` then multiply
    instead of divide (a division costs ~5 multiplications).
    """
    for j in range(n):
        diag = a[j, j]
        s = diag
        for k in range(j):
            s -= a[j, k] * a[j, k]
        if not (diag > 0.0 and s > _PIVOT * diag):
            return False
        a[j, j] = 1.0 / np.sqrt(s)
        for i in range(j + 1, n):
            s = a[i, j]
            for k in range(j):
                s -= a[i, k] * a[j, k]
            a[i, j] = s * a[j, j]
    return True


@numba.njit(nogil=True, cache=True, _nrt=False)
def solve(chol, b, n):
    """Solve ``L Lᵀ z = b`` in place for the factor of `cholesky`."""
    for i in range(n):
        s = b[i]
        for k in range(i):
            s -= chol[i, k] * b[k]
        b[i] = s * chol[i, i]
    for i in range(n - 1, -1, -1):
        s = b[i]
        for k in range(i + 1, n):
            s -= chol[k, i] * b[k]
        b[i] = s * chol[i, i]


@numba.njit(nogil=True, cache=True, _nrt=False)
def inverse(chol, n, work, out):
    """``(L Lᵀ)⁻¹`` into `out` from `cholesky`'s factor: ``L⁻¹`` (in `work`), then ``L⁻ᵀ L⁻¹``."""
    for j in range(n):
        work[j, j] = chol[j, j]
        for i in range(j + 1, n):
            s = 0.0
            for k in range(j, i):
                s -= chol[i, k] * work[k, j]
            work[i, j] = s * chol[i, i]
    for i in range(n):
        for j in range(i + 1):
            s = 0.0
            for k in range(i, n):
                s += work[k, i] * work[k, j]
            out[i, j] = s
            out[j, i] = s
