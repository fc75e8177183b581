"""The numba kernel of the line fitter: bounded Levenberg–Marquardt over a block of spectra.

`fit_spectra` fits every spectrum of a block (``prange`` over spectra) with the
model of `beamcat.analyses._linefit_model` given as flat arrays: full parameter
``j`` is ``scale[j] * free[src[j]] + shift[j]``; parameters ``3l, 3l+1, 3l+2``
are line ``l``'s peak, centre and width, then ``n_bg`` background parameters per
segment (``B``, and the slope about ``reference[k]``).

The method, per spectrum: samples whose value, σ or wavelength are not finite,
or whose σ is not positive, are dropped. Residuals ``r = (y - F) / σ`` and the
analytic Jacobian ``J = ∂F/∂p / σ`` of the free parameters; the step solves
``(JᵀJ + λ diag(JᵀJ)) δ = Jᵀr`` by Cholesky and is projected on the bounds
(clipped). Parameters sitting on a bound with the gradient pushing outwards are
held for that step (an active set), so a pinned parameter does not stall the
others. A step is taken when χ² falls (λ / 10), else λ × 10 and retried.
Converged when χ² falls by less than ``ftol`` relative or the step is shorter
than ``xtol`` relative to the parameters, or when no damping can lower χ² (the
minimum to rounding). The covariance is ``(JᵀJ)⁻¹`` at the solution, over every
free parameter (pinned ones too, as scipy's ``curve_fit`` does).
"""

from __future__ import annotations

import enum

import numba
import numpy as np

__all__ = ["FitStatus", "fit_spectra"]


class FitStatus(enum.IntEnum):
    """Per-spectrum outcome of a fit.

    CONVERGED
        Converged, every parameter inside its bounds.
    MAX_ITERATIONS
        Stopped at the iteration limit; parameters and errors are the last ones.
    TOO_FEW_POINTS
        Fewer finite samples than free parameters + 1: parameters NaN.
    SINGULAR
        ``JᵀWJ`` not invertible at the solution (a parameter the data do not
        constrain, e.g. the centre of a line of zero peak): parameters kept,
        errors NaN. Also a start where the model is not finite (a NaN ``p0``):
        parameters NaN.
    AT_BOUND
        Converged with at least one parameter on a bound; errors from the
        covariance as for CONVERGED (they ignore the bound).
    NO_DATA
        No finite sample: parameters NaN.
    """

    CONVERGED = 0
    MAX_ITERATIONS = 1
    TOO_FEW_POINTS = 2
    SINGULAR = 3
    AT_BOUND = 4
    NO_DATA = 5


_CONVERGED, _MAX_ITERATIONS, _TOO_FEW_POINTS, _SINGULAR, _AT_BOUND, _NO_DATA = range(6)
_MAX_DAMPING_TRIES = 12  # λ x 10 each: 1e12 beyond the current damping
_PIVOT = 1e-13  # a Cholesky pivot this small relative to its diagonal means singular


@numba.njit(nogil=True, cache=True)
def _evaluate(p, x, y, w, seg, src, scale, shift, n_lines, n_bg, reference, full, r, jac, want_jac):
    """χ² at free parameters `p`; residuals into `r`, the weighted Jacobian into `jac`."""
    for j in range(full.size):
        full[j] = scale[j] * p[src[j]] + shift[j]
    if want_jac:
        jac[:, :] = 0.0
    chi2 = 0.0
    nl3 = 3 * n_lines
    for t in range(x.size):
        k = seg[t]
        b = nl3 + n_bg * k
        f = full[b]
        if n_bg == 2:
            f += full[b + 1] * (x[t] - reference[k])
        for line in range(n_lines):
            amp, centre, width = full[3 * line], full[3 * line + 1], full[3 * line + 2]
            d = x[t] - centre
            g = np.exp(-0.5 * d * d / (width * width))
            f += amp * g
            if want_jac:
                j0 = 3 * line
                jac[t, src[j0]] += scale[j0] * g * w[t]
                jac[t, src[j0 + 1]] += scale[j0 + 1] * amp * g * d / (width * width) * w[t]
                jac[t, src[j0 + 2]] += scale[j0 + 2] * amp * g * d * d / width**3 * w[t]
        if want_jac:
            jac[t, src[b]] += scale[b] * w[t]
            if n_bg == 2:
                jac[t, src[b + 1]] += scale[b + 1] * (x[t] - reference[k]) * w[t]
        r[t] = (y[t] - f) * w[t]
        chi2 += r[t] * r[t]
    return chi2


@numba.njit(nogil=True, cache=True)
def _cholesky(a, n):
    """In-place lower Cholesky factor of ``a[:n, :n]``; False when not positive definite."""
    for j in range(n):
        diag = a[j, j]
        s = diag
        for k in range(j):
            s -= a[j, k] * a[j, k]
        if not (diag > 0.0 and s > _PIVOT * diag):
            return False
        a[j, j] = np.sqrt(s)
        for i in range(j + 1, n):
            s = a[i, j]
            for k in range(j):
                s -= a[i, k] * a[j, k]
            a[i, j] = s / a[j, j]
    return True


@numba.njit(nogil=True, cache=True)
def _solve(chol, b, n):
    """Solve ``L Lᵀ z = b`` in place for the factor of `_cholesky`."""
    for i in range(n):
        s = b[i]
        for k in range(i):
            s -= chol[i, k] * b[k]
        b[i] = s / chol[i, i]
    for i in range(n - 1, -1, -1):
        s = b[i]
        for k in range(i + 1, n):
            s -= chol[k, i] * b[k]
        b[i] = s / chol[i, i]


@numba.njit(nogil=True, cache=True)
def _normal(jac, r, m, nf, a, g):
    """``a = JᵀJ`` and ``g = Jᵀr`` over the first `m` samples."""
    for i in range(nf):
        s = 0.0
        for t in range(m):
            s += jac[t, i] * r[t]
        g[i] = s
        for j in range(i + 1):
            s = 0.0
            for t in range(m):
                s += jac[t, i] * jac[t, j]
            a[i, j] = s
            a[j, i] = s


@numba.njit(nogil=True, cache=True, inline="always")
def _usable(wave, value, sigma):
    """A sample is fitted when its wavelength, value and σ are finite and σ > 0."""
    return np.isfinite(value) and np.isfinite(wave) and np.isfinite(sigma) and sigma > 0.0


@numba.njit(nogil=True, cache=True)
def _fit_one(wave, data, sigma, segment, src, scale, shift, n_lines, n_bg, reference, p0, lo, hi,
             max_iterations, ftol, xtol, params, cov):  # fmt: skip
    """Fit one spectrum; parameters into `params`, covariance into `cov`.

    Returns ``(chi2, n_samples, iterations, status)``.
    """
    nf = p0.size
    m = 0
    for t in range(data.size):
        if _usable(wave[t], data[t], sigma[t]):
            m += 1
    if m == 0:
        return np.nan, m, 0, _NO_DATA
    if m < nf + 1:
        return np.nan, m, 0, _TOO_FEW_POINTS
    x, y, w = np.empty(m), np.empty(m), np.empty(m)
    seg = np.empty(m, np.int64)
    m = 0
    for t in range(data.size):
        if _usable(wave[t], data[t], sigma[t]):
            x[m], y[m], w[m], seg[m] = wave[t], data[t], 1.0 / sigma[t], segment[t]
            m += 1
    full = np.empty(src.size)
    r, r_new = np.empty(m), np.empty(m)
    jac, jac_unused = np.empty((m, nf)), np.empty((0, 0))
    a, chol = np.empty((nf, nf)), np.empty((nf, nf))
    g, step, p, p_new = np.empty(nf), np.empty(nf), np.empty(nf), np.empty(nf)
    active = np.empty(nf, np.int64)
    for j in range(nf):
        p[j] = min(max(p0[j], lo[j]), hi[j])
    args = (x, y, w, seg, src, scale, shift, n_lines, n_bg, reference, full)
    chi2 = _evaluate(p, *args, r, jac, True)
    if not np.isfinite(chi2):
        return np.nan, m, 0, _SINGULAR
    damping = 1e-3
    status = _MAX_ITERATIONS
    iterations = 0
    while iterations < max_iterations:
        iterations += 1
        _normal(jac, r, m, nf, a, g)
        n_active = 0
        for j in range(nf):
            pinned = (p[j] <= lo[j] and g[j] < 0.0) or (p[j] >= hi[j] and g[j] > 0.0)
            if not pinned:
                active[n_active] = j
                n_active += 1
        if n_active == 0:
            status = _CONVERGED
            break
        chi2_new = np.inf
        for _ in range(_MAX_DAMPING_TRIES):
            for i in range(n_active):
                for k in range(n_active):
                    chol[i, k] = a[active[i], active[k]]
                chol[i, i] += damping * max(a[active[i], active[i]], 1e-30)
                step[i] = g[active[i]]
            if _cholesky(chol, n_active):
                _solve(chol, step, n_active)
                for j in range(nf):
                    p_new[j] = p[j]
                for i in range(n_active):
                    j = active[i]
                    p_new[j] = min(max(p[j] + step[i], lo[j]), hi[j])
                chi2_new = _evaluate(p_new, *args, r_new, jac_unused, False)
                if chi2_new < chi2:
                    break
            damping *= 10.0
        if not chi2_new < chi2:
            status = _CONVERGED  # no damping lowers χ²: the minimum, to rounding
            break
        damping = max(damping * 0.1, 1e-12)
        size, norm = 0.0, 0.0
        for j in range(nf):
            size += (p_new[j] - p[j]) ** 2
            norm += p_new[j] ** 2
            p[j] = p_new[j]
        drop = chi2 - chi2_new
        chi2 = _evaluate(p, *args, r, jac, True)
        if drop <= ftol * chi2 or np.sqrt(size) <= xtol * (np.sqrt(norm) + xtol):
            status = _CONVERGED
            break
    for j in range(nf):
        params[j] = p[j]
    _normal(jac, r, m, nf, a, g)
    for i in range(nf):
        for k in range(nf):
            chol[i, k] = a[i, k]
    if not _cholesky(chol, nf):
        return chi2, m, iterations, _SINGULAR
    for i in range(nf):
        g[:] = 0.0
        g[i] = 1.0
        _solve(chol, g, nf)
        cov[:, i] = g
    if status == _CONVERGED:
        for j in range(nf):
            span = hi[j] - lo[j]
            tol = 1e-9 * (span if np.isfinite(span) else max(1.0, abs(p[j])))
            if p[j] - lo[j] <= tol or hi[j] - p[j] <= tol:
                status = _AT_BOUND
    return chi2, m, iterations, status


@numba.njit(parallel=True, cache=True)
def fit_spectra(wave, data, sigma, segment, src, scale, shift, n_lines, n_bg, reference, p0, lo, hi,
                max_iterations, ftol, xtol):  # fmt: skip
    """Fit every spectrum of a block; arrays ``(n, n_lambda)`` and ``(n, n_free)``.

    Returns ``params (n, n_free)`` (free parameters; NaN where no fit),
    ``cov (n, n_free, n_free)`` (NaN where singular), ``chi2 (n,)``,
    ``n_samples (n,)`` (finite samples), ``iterations (n,)``, ``status (n,)``.
    """
    n, nf = p0.shape
    params = np.full((n, nf), np.nan)
    cov = np.full((n, nf, nf), np.nan)
    chi2 = np.full(n, np.nan)
    n_samples = np.zeros(n, np.int64)
    iterations = np.zeros(n, np.int64)
    status = np.zeros(n, np.int64)
    for i in numba.prange(n):
        c, ns, it, st = _fit_one(
            wave[i], data[i], sigma[i], segment[i], src, scale, shift, n_lines, n_bg, reference,
            p0[i], lo[i], hi[i], max_iterations, ftol, xtol, params[i], cov[i],
        )  # fmt: skip
        chi2[i], n_samples[i], iterations[i], status[i] = c, ns, it, st
    return params, cov, chi2, n_samples, iterations, status
