"""Small dense symmetric linear algebra for numba kernels: Cholesky factor, solve, inverse.

For the normal equations of the line fitter (`beamcat.analyses._linefit_kernel`),
~10 x 10, factored a few times per spectrum: plain loops, no allocation, no
reference counting (``_nrt=False``: numba would count references to the array
arguments on every call, an atomic operation each).
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["cholesky", "inverse", "inverse_lanes", "solve"]

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


@numba.njit(nogil=True, cache=True, _nrt=False)
def inverse_lanes(a, n, work, diag, ok):
    """Invert the matrices ``a[:n, :n, l]`` of every lane `l` in place (Cholesky, as above).

    The lanes (the last axis) are the innermost loop of every operation, so
    one pass of the factor serves them all as vectors: a single 10 x 10
    inverse is a chain of dependent scalar steps, here shared by the lanes.
    The arithmetic of each lane is that of `cholesky` and `inverse`, step for
    step (bit-equal). ``ok[l]`` is False where `cholesky` would refuse the
    matrix (its values are then meaningless). `work` (like `a`) and `diag`
    ``(n, lanes)`` are scratch.
    """
    lanes = a.shape[2]
    for t in range(lanes):
        ok[t] = True
    for j in range(n):
        for t in range(lanes):
            diag[j, t] = a[j, j, t]
        for k in range(j):
            for t in range(lanes):
                a[j, j, t] -= a[j, k, t] * a[j, k, t]
        for t in range(lanes):
            good = diag[j, t] > 0.0 and a[j, j, t] > _PIVOT * diag[j, t]
            ok[t] = ok[t] and good
            a[j, j, t] = 1.0 / np.sqrt(a[j, j, t] if good else 1.0)
        for i in range(j + 1, n):
            for k in range(j):
                for t in range(lanes):
                    a[i, j, t] -= a[i, k, t] * a[j, k, t]
            for t in range(lanes):
                a[i, j, t] *= a[j, j, t]
    for j in range(n):
        for t in range(lanes):
            work[j, j, t] = a[j, j, t]
        for i in range(j + 1, n):
            for t in range(lanes):
                work[i, j, t] = 0.0
            for k in range(j, i):
                for t in range(lanes):
                    work[i, j, t] -= a[i, k, t] * work[k, j, t]
            for t in range(lanes):
                work[i, j, t] *= a[i, i, t]
    for i in range(n):
        for j in range(i + 1):
            for t in range(lanes):
                a[i, j, t] = 0.0
            for k in range(i, n):
                for t in range(lanes):
                    a[i, j, t] += work[k, i, t] * work[k, j, t]
            for t in range(lanes):
                a[j, i, t] = a[i, j, t]
