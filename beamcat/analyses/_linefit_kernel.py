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
Converged when χ² falls by less than ``ftol`` relative, or a lightly damped
step is predicted to (`_loosened`: 30 ``ftol`` in Gauss–Newton's fast final
phase), or the step is shorter than ``xtol`` relative to the parameters, or
when no damping can lower χ² (the minimum to rounding). A parameter within
1e-9 of its scale from a bound is then put on it (AT_BOUND). The covariance
is ``(JᵀJ)⁻¹`` at the solution, over every free parameter (pinned ones too, as
scipy's ``curve_fit`` does).

Start: per spectrum in the kernel (`beamcat.analyses._linefit_start`, no
per-pixel Python): bounds (the background's scaled to the spectrum), then the
given start or the guess.

Speed (a fit of 3 lines + background on 50 samples takes ~6 µs, 4.3 steps):
the Gaussians use a vectorised ``exp`` (`beamcat.analyses._fast_exp`); J is
built over the full parameters, row by row as vectors, and mapped onto the
free ones in `_normal`; each parallel task fits `_BATCH` spectra with one set
of scratch arrays (`_fit_rows`) and inverts their JᵀJ together, one spectrum
per vector lane (`beamcat.analyses._cholesky.inverse_lanes`: 10 x 10 inverses
one at a time are chains of dependent steps, ~0.7 µs each); the helpers run
without numba's reference counting (``_nrt=False``: they allocate nothing,
and counting the references of their array arguments, atomically on every
call, was a sixth of a fit).
"""

from __future__ import annotations

import numba
import numpy as np

from beamcat.analyses._cholesky import cholesky, inverse, inverse_lanes, solve
from beamcat.analyses._fast_exp import exp_into
from beamcat.analyses._linefit_model import FitStatus
from beamcat.analyses._linefit_start import _BATCH, _compact, _level, _row, _span, _start

__all__ = ["fit_spectra"]

_CONVERGED, _MAX_ITERATIONS = int(FitStatus.CONVERGED), int(FitStatus.MAX_ITERATIONS)
_TOO_FEW_POINTS, _SINGULAR = int(FitStatus.TOO_FEW_POINTS), int(FitStatus.SINGULAR)
_AT_BOUND, _NO_DATA = int(FitStatus.AT_BOUND), int(FitStatus.NO_DATA)
_MAX_DAMPING_TRIES = 12  # λ x 10 each: 1e12 beyond the current damping
_SNAP = 1e-9  # a solution this fraction of the span from a bound is on it
_LOOSE = 30.0  # x ftol: the predicted fall that ends a fit in Gauss–Newton's final phase


@numba.njit(nogil=True, cache=True, _nrt=False)
def _evaluate(p, x, y, w, seg, m, src, scale, shift, n_bg, reference, full, f, z, gauss, bits,
              powers, r, jac):  # fmt: skip
    """χ² at free parameters `p` over the first `m` samples; residuals into `r`, J into `jac`.

    `jac` (n_full, ≥ m) is the weighted Jacobian of the full parameters, each
    row written whole (the loops run as vectors); `_normal` maps it onto the
    free ones. `full` to `powers` are scratch.
    """
    for j in range(full.size):
        full[j] = scale[j] * p[src[j]] + shift[j]
    nl3 = full.size - n_bg * reference.size
    for k in range(reference.size):
        b = nl3 + n_bg * k
        for t in range(m):
            jac[b, t] = w[t] if seg[t] == k else 0.0
            if n_bg == 2:
                jac[b + 1, t] = (x[t] - reference[k]) * w[t] if seg[t] == k else 0.0
    for t in range(m):
        b = nl3 + n_bg * seg[t]
        f[t] = full[b] + (full[b + 1] * (x[t] - reference[seg[t]]) if n_bg == 2 else 0.0)
    for j0 in range(0, nl3, 3):
        amp, centre, width = full[j0], full[j0 + 1], full[j0 + 2]
        inv2 = 1.0 / (width * width)
        for t in range(m):
            d = x[t] - centre
            z[t] = -0.5 * d * d * inv2
        exp_into(z, gauss, bits, powers, m)
        slope, curve = amp * inv2, amp * inv2 / width
        for t in range(m):
            d = x[t] - centre
            f[t] += amp * gauss[t]
            gw = gauss[t] * w[t]
            jac[j0, t] = gw
            jac[j0 + 1, t] = slope * gw * d
            jac[j0 + 2, t] = curve * gw * d * d
    chi2 = 0.0
    for t in range(m):
        r[t] = (y[t] - f[t]) * w[t]
        chi2 += r[t] * r[t]
    return chi2


@numba.njit(nogil=True, cache=True, inline="always")
def _loosened(damping, promised, last_promised):
    """The factor on `ftol` for the predicted fall that ends a fit.

    `_LOOSE` once the damping is negligible and each prediction is under a
    quarter of the last (Gauss–Newton's fast final phase: what the model
    promises is then what is left); else 1. A slowly shrinking prediction
    (a long flat valley) does not bound what is left, so it keeps `ftol`.
    """
    return _LOOSE if damping <= 1e-5 and promised <= 0.25 * last_promised else 1.0


@numba.njit(nogil=True, cache=True, _nrt=False)
def _damped_step(a, g, active, n, damping, chol, step):
    """The step δ of the `n` `active` parameters: ``(A + λ diag A) δ = g``; False if singular."""
    for i in range(n):
        for k in range(n):
            chol[i, k] = a[active[i], active[k]]
        chol[i, i] += damping * max(a[active[i], active[i]], 1e-30)
        step[i] = g[active[i]]
    if not cholesky(chol, n):
        return False
    solve(chol, step, n)
    return True


@numba.njit(nogil=True, cache=True, _nrt=False)
def _predicted(a, g, step, active, n, damping):
    """The fall of χ² the linear model predicts for `step`: ``2 δᵀg - δᵀAδ`` (active part).

    As ``(A + λD) δ = g``, that is ``δᵀg + λ δᵀDδ``: no product with A.
    """
    total = 0.0
    for i in range(n):
        j = active[i]
        total += step[i] * (g[j] + damping * max(a[j, j], 1e-30) * step[i])
    return total


@numba.njit(nogil=True, cache=True, _nrt=False, fastmath={"reassoc", "contract", "nsz", "arcp"})
def _normal(jac, r, m, a, g):
    """``a = JᵀJ`` and ``g = Jᵀr`` of the full parameters (rows of `jac`, first `m` samples).

    Two products per pass over row i (its loads shared). Fast-math
    (reassociation: the sums run as vectors) here only: in `_evaluate` it made
    a freshly compiled kernel and its cached copy differ in the last bits. No
    "nnan"/"ninf": NaN keeps its meaning.
    """
    for i in range(jac.shape[0]):
        s = 0.0
        for t in range(m):
            s += jac[i, t] * r[t]
        g[i] = s
        for j in range(0, i, 2):
            s0, s1 = 0.0, 0.0
            for t in range(m):
                v = jac[i, t]
                s0 += v * jac[j, t]
                s1 += v * jac[j + 1, t]
            a[i, j] = a[j, i] = s0
            a[i, j + 1] = a[j + 1, i] = s1
        if i % 2 == 0:
            s = 0.0
            for t in range(m):
                s += jac[i, t] * jac[i, t]
            a[i, i] = s


@numba.njit(nogil=True, cache=True, _nrt=False)
def _normal_free(jac, r, m, plain, src, scale, a_full, g_full, a, g):
    """``a = JᵀJ`` and ``g = Jᵀr`` of the free parameters (`a_full` is `a` for a plain model)."""
    _normal(jac, r, m, a_full, g_full)
    if not plain:
        _to_free(a_full, g_full, src, scale, a, g)


@numba.njit(nogil=True, cache=True, _nrt=False)
def _to_free(a_full, g_full, src, scale, a, g):
    """JᵀJ and Jᵀr of the free parameters from the full ones'.

    Full parameter ``i`` is ``scale[i] * free[src[i]] + ...``, so the free
    Jacobian is ``J S`` with ``S[i, src[i]] = scale[i]``: each full product is
    added, scaled, to its free pair.
    """
    a[:, :] = 0.0
    g[:] = 0.0
    for i in range(src.size):
        g[src[i]] += scale[i] * g_full[i]
        for j in range(src.size):
            a[src[i], src[j]] += scale[i] * scale[j] * a_full[i, j]


@numba.njit(nogil=True, cache=True)
def _fit_rows(rows, wave, data, sigma, segment, model, p0, max_iterations, ftol, xtol, params, cov,
              chi2_out, n_samples, iterations, status):  # fmt: skip
    """Fit the spectra `rows` (a range) into the outputs' rows (`fit_spectra`'s arguments).

    One function for the range, with its scratch arrays made and the model's
    taken out of their tuple once: every array taken out of a tuple (or
    sliced) costs a reference count, and per spectrum those were a sixth of
    a fit.
    """
    src, scale, shift, n_bg, reference, rest, root, code, owner, lo_kind, hi_kind, scaled = model
    n_lambda, nf, n_full = data.shape[1], root.size, src.size
    x, y, w = np.empty(n_lambda), np.empty(n_lambda), np.empty(n_lambda)
    seg = np.empty(n_lambda, np.int64)
    full, f, z, gauss = np.empty(n_full), np.empty(n_lambda), np.empty(n_lambda), np.empty(n_lambda)
    bits, r, jac = np.empty(n_lambda, np.int64), np.empty(n_lambda), np.empty((n_full, n_lambda))
    powers = bits.view(np.float64)  # exp_into's 2**k
    # JᵀJ and Jᵀr of the full parameters, and of the free ones: the same arrays when they are one
    a_full, g_full = np.empty((n_full, n_full)), np.empty(n_full)
    plain = nf == n_full
    for j in range(n_full):
        plain = plain and src[j] == j and scale[j] == 1.0
    a, g = (a_full, g_full) if plain else (np.empty((nf, nf)), np.empty(nf))
    chol, step = np.empty((nf, nf)), np.empty(nf)
    p, p_new, lo, hi = np.empty(nf), np.empty(nf), np.empty(nf), np.empty(nf)
    active, background = np.empty(nf, np.int64), np.empty(reference.size)
    # JᵀJ at each solution, one lane per spectrum, inverted together after the loop
    lane_a, lane_work = np.zeros((nf, nf, _BATCH)), np.empty((nf, nf, _BATCH))
    lane_diag, lane_ok = np.empty((nf, _BATCH)), np.empty(_BATCH, np.bool_)
    lane_row = np.full(_BATCH, -1)
    for j in range(nf):
        lane_a[j, j, :] = 1.0  # lanes without a fit invert the identity
    no_start = p0[0:0, 0]
    lane = -1
    for row in rows:
        lane += 1
        m = _compact(wave, data, sigma, segment, row, x, y, w, seg)
        n_samples[row] = m
        if m < nf + 1:
            status[row] = _NO_DATA if m == 0 else _TOO_FEW_POINTS
            continue
        start = p0[_row(p0, row)] if p0.shape[0] else no_start
        # z is free scratch until _evaluate: the start's sorted smallest samples
        _start(x[:m], y[:m], seg[:m], rest, root, code, owner, lo_kind, hi_kind, scaled, start,
               p, lo, hi, background, z)  # fmt: skip
        chi2 = _evaluate(p, x, y, w, seg, m, src, scale, shift, n_bg, reference, full, f, z, gauss,
                         bits, powers, r, jac)  # fmt: skip
        if not np.isfinite(chi2):
            status[row] = _SINGULAR
            continue
        # a and g always belong to p: made here and when a step is taken (a rejected trial
        # overwrites r and J, which nothing reads again)
        _normal_free(jac, r, m, plain, src, scale, a_full, g_full, a, g)
        damping, promised, last_promised = 1e-3, np.inf, np.inf
        state = _MAX_ITERATIONS
        iterations[row] = 0
        while iterations[row] < max_iterations:
            iterations[row] += 1
            n_active = 0
            for j in range(nf):
                if not ((p[j] <= lo[j] and g[j] < 0.0) or (p[j] >= hi[j] and g[j] > 0.0)):
                    active[n_active] = j
                    n_active += 1
            if n_active == 0:
                state = _CONVERGED  # every parameter pinned on a bound
                break
            chi2_new = np.inf
            for _ in range(_MAX_DAMPING_TRIES):
                if _damped_step(a, g, active, n_active, damping, chol, step):
                    promised = _predicted(a, g, step, active, n_active, damping)
                    if damping <= 1e-3 and promised <= ftol * chi2 * _loosened(
                        damping, promised, last_promised
                    ):
                        break  # lightly damped and the quadratic model promises nothing more
                    for j in range(nf):
                        p_new[j] = p[j]
                    for i in range(n_active):
                        j = active[i]
                        p_new[j] = min(max(p[j] + step[i], lo[j]), hi[j])
                    chi2_new = _evaluate(p_new, x, y, w, seg, m, src, scale, shift, n_bg,
                                         reference, full, f, z, gauss, bits, powers, r,
                                         jac)  # fmt: skip
                    if chi2_new < chi2:
                        break
                damping *= 10.0
            if not chi2_new < chi2:
                state = _CONVERGED  # no damping lowers χ² (or none is expected to): the minimum
                break
            last_promised = promised if damping <= 1e-3 else np.inf
            damping = max(damping * 0.1, 1e-12)
            size, norm = 0.0, 0.0
            for j in range(nf):
                size += (p_new[j] - p[j]) ** 2
                norm += p_new[j] ** 2
            for j in range(nf):  # element copies: slices and swaps of arrays cost references
                p[j] = p_new[j]
            _normal_free(jac, r, m, plain, src, scale, a_full, g_full, a, g)
            drop, chi2 = chi2 - chi2_new, chi2_new
            if drop <= ftol * chi2 or np.sqrt(size) <= xtol * (np.sqrt(norm) + xtol):
                state = _CONVERGED
                break
        # a parameter within 1e-9 of its scale from a bound is on it (damped steps only approach
        # a bound): snapped there, so a line of zero peak leaves its centre and width singular
        level, at_bound = _level(y[:m]), False  # y is scratch: past m, earlier spectra
        for j in range(nf):
            tol = _SNAP * _span(lo[j], hi[j], level)
            if p[j] - lo[j] <= tol or hi[j] - p[j] <= tol:
                p[j] = lo[j] if p[j] - lo[j] <= tol else hi[j]
                at_bound = True
        if at_bound:
            chi2 = _evaluate(p, x, y, w, seg, m, src, scale, shift, n_bg, reference, full, f, z,
                             gauss, bits, powers, r, jac)  # fmt: skip
            _normal_free(jac, r, m, plain, src, scale, a_full, g_full, a, g)
        chi2_out[row] = chi2
        for j in range(nf):
            params[row, j] = p[j]
        status[row] = _AT_BOUND if state == _CONVERGED and at_bound else state
        lane_row[lane] = row
        for i in range(nf):
            for k in range(nf):
                lane_a[i, k, lane] = cov[row, i, k] = a[i, k]  # kept for the slow way below
    _block_covariances(lane_a, lane_row, lane_work, lane_diag, lane_ok, a, chol, active, cov,
                       status)  # fmt: skip


@numba.njit(nogil=True, cache=True)
def _block_covariances(lane_a, lane_row, work, diag, ok, a, chol, kept, cov, status):
    """``(JᵀJ)⁻¹`` of the block's fits into `cov`: lane `l` holds JᵀJ of row ``lane_row[l]``.

    All lanes are inverted together (`inverse_lanes`); a lane it refuses (a zero
    column, a singular JᵀJ) takes `_covariance`, from the JᵀJ `_fit_rows` left
    in `cov`, and a row found singular gets that status. `work` to `kept` are
    scratch.
    """
    nf = a.shape[0]
    inverse_lanes(lane_a, nf, work, diag, ok)
    for lane in range(lane_row.size):
        row = lane_row[lane]
        if row < 0:
            continue
        if ok[lane]:
            for i in range(nf):
                for k in range(nf):
                    cov[row, i, k] = lane_a[i, k, lane]
            continue
        for i in range(nf):
            for k in range(nf):
                a[i, k], cov[row, i, k] = cov[row, i, k], np.nan
        if not _covariance(a, chol, kept, cov[row]):
            status[row] = _SINGULAR


@numba.njit(nogil=True, cache=True, _nrt=False)
def _covariance(a, chol, kept, cov):
    """``(JᵀJ)⁻¹`` from ``a = JᵀJ`` into `cov` (NaN-filled); False when singular.

    Parameters the model does not depend on here (a zero column: the centre and
    width of a line of zero peak) keep NaN and make it singular; the others get
    the inverse of the rest of JᵀJ. `chol` and `kept` are scratch.
    """
    nf, n_kept = a.shape[0], 0
    for j in range(nf):
        if a[j, j] > 0.0:
            kept[n_kept] = j
            n_kept += 1
    for i in range(n_kept):
        for k in range(n_kept):
            chol[i, k] = a[kept[i], kept[k]]
    if not cholesky(chol, n_kept):
        return False
    inverse(chol, n_kept, a, chol)
    for i in range(n_kept):
        for k in range(n_kept):
            cov[kept[i], kept[k]] = chol[i, k]
    return n_kept == nf


@numba.njit(parallel=True, cache=True)
def fit_spectra(wave, data, sigma, segment, model, p0, max_iterations, ftol, xtol):
    """Fit every spectrum of a block (``prange`` over spectra).

    Parameters
    ----------
    wave, sigma : ndarray (n or 1, n_lambda) float64
    data : ndarray (n, n_lambda) float64
    segment : ndarray (n or 1, n_lambda) int64
    model : tuple
        ``(src, scale, shift, n_bg, reference, rest, root, code, owner, lo_kind,
        hi_kind, scaled)``: `LineModel.arrays`.
    p0 : ndarray (n or 1, n_param) or (0, n_param)
        Start as full parameters; empty for the guess.

    Returns
    -------
    params (n, n_free) free parameters (NaN where no fit); cov (n, n_free,
    n_free) (NaN where singular); chi2 (n,); n_samples (n,) finite samples;
    iterations (n,); status (n,).
    """
    n, nf = data.shape[0], model[6].size
    params = np.full((n, nf), np.nan)
    cov = np.full((n, nf, nf), np.nan)
    chi2 = np.full(n, np.nan)
    n_samples = np.zeros(n, np.int64)
    iterations = np.zeros(n, np.int64)
    status = np.zeros(n, np.int64)
    for batch in numba.prange((n + _BATCH - 1) // _BATCH):
        rows = range(batch * _BATCH, min(n, (batch + 1) * _BATCH))
        _fit_rows(rows, wave, data, sigma, segment, model, p0, max_iterations, ftol, xtol, params,
                  cov, chi2, n_samples, iterations, status)  # fmt: skip
    return params, cov, chi2, n_samples, iterations, status
