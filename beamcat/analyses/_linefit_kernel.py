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
Converged when χ² falls by less than ``ftol`` relative (or a lightly damped
step is predicted to), or the step is shorter than ``xtol`` relative to the
parameters, or when no damping can lower χ² (the minimum to rounding). A
parameter within 1e-9 of its scale from a bound is then put on it (AT_BOUND).
The covariance is ``(JᵀJ)⁻¹`` at the solution, over every free parameter
(pinned ones too, as scipy's ``curve_fit`` does).

Start: per spectrum in the kernel (`_start`, no per-pixel Python): bounds (the
background's scaled to the spectrum), then the given start or the guess.
"""

from __future__ import annotations

import numba
import numpy as np

from beamcat.analyses._linefit_model import FitStatus

__all__ = ["fit_spectra", "start_spectra"]

_CONVERGED, _MAX_ITERATIONS = int(FitStatus.CONVERGED), int(FitStatus.MAX_ITERATIONS)
_TOO_FEW_POINTS, _SINGULAR = int(FitStatus.TOO_FEW_POINTS), int(FitStatus.SINGULAR)
_AT_BOUND, _NO_DATA = int(FitStatus.AT_BOUND), int(FitStatus.NO_DATA)
_MAX_DAMPING_TRIES = 12  # λ x 10 each: 1e12 beyond the current damping
_PIVOT = 1e-13  # a Cholesky pivot this small relative to its diagonal means singular
_MARGIN = 1e-6  # starts are this fraction of the bounds' span inside them (trf needs it)
_SNAP = 1e-9  # a solution this fraction of the span from a bound is on it
#: samples this close (Angstrom) to an even grid are evenly spaced (`_gaussian`'s
#: recurrence): the model is then the Gaussian on that grid, 1e-10 A = 0.04 m/s away
_EVEN = 1e-10

#: Free-parameter kinds (the `code` array of the model)
INTENSITY, CENTER, WIDTH, BACKGROUND, SLOPE = range(5)
BACKGROUND_SCALE = 5.0  # default background bound: ± this x the spectrum's largest |sample|
WIDTH_GUESS = 0.35  # Angstrom, SAFFRON's gen_inits
PEAK_SEARCH = 0.3  # Angstrom: a peak guess looks this far from the rest wavelength
BACKGROUND_QUANTILE = 0.1  # the background guess: this quantile of the segment's samples


@numba.njit(nogil=True, cache=True, inline="always")
def _usable(wave, value, sigma):
    """A sample is fitted when its wavelength, value and σ are finite and σ > 0."""
    return np.isfinite(value) and np.isfinite(wave) and np.isfinite(sigma) and sigma > 0.0


@numba.njit(nogil=True, cache=True)
def _compact(wave, data, sigma, segment):
    """The usable samples of one spectrum: ``x, y, w = 1/σ, seg``."""
    m = 0
    for t in range(data.size):
        if _usable(wave[t], data[t], sigma[t]):
            m += 1
    x, y, w = np.empty(m), np.empty(m), np.empty(m)
    seg = np.empty(m, np.int64)
    m = 0
    for t in range(data.size):
        if _usable(wave[t], data[t], sigma[t]):
            x[m], y[m], w[m], seg[m] = wave[t], data[t], 1.0 / sigma[t], segment[t]
            m += 1
    return x, y, w, seg


@numba.njit(nogil=True, cache=True)
def _low_quantile(values):
    """`BACKGROUND_QUANTILE` of `values` (numpy's linear rule); 0 for none."""
    if values.size == 0:
        return 0.0
    position = BACKGROUND_QUANTILE * (values.size - 1)
    below = int(np.floor(position))
    above = min(below + 1, values.size - 1)
    ordered = np.partition(values, above)  # [above] in place, the smaller ones before it
    low = ordered[below] if below == above else np.max(ordered[:above])
    return low + (position - below) * (ordered[above] - low)


@numba.njit(nogil=True, cache=True)
def _start(x, y, seg, rest, n_segments, root, code, owner, lo_kind, hi_kind, scaled, p0,
           p, lo, hi):  # fmt: skip
    """Bounds and start of one spectrum's free parameters into `p`, `lo`, `hi`.

    Background bounds marked `scaled` are ± `BACKGROUND_SCALE` x the largest
    |sample|; the start is `p0` (full parameters, at the free ones' roots) when
    it has a value, else the guess: per segment the low quantile of its samples,
    per line its rest wavelength, `WIDTH_GUESS`, and the largest sample within
    `PEAK_SEARCH` (or the nearest sample) above its segment's background. Starts
    are clipped a hair inside the bounds.
    """
    level = _level(y)
    background = np.empty(n_segments)
    for k in range(n_segments):
        background[k] = _low_quantile(y if n_segments == 1 else y[seg == k])
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


@numba.njit(nogil=True, cache=True)
def _evaluate(p, x, y, w, seg, src, scale, shift, n_bg, reference, h, gauss, full, f, r, jac):
    """χ² at free parameters `p`; residuals into `r`, the weighted Jacobian (nf, m) into `jac`.

    `h` is the samples' step when they are evenly spaced (else 0), `gauss` a buffer.
    """
    for j in range(full.size):
        full[j] = scale[j] * p[src[j]] + shift[j]
    jac[:, :] = 0.0
    nl3 = full.size - n_bg * reference.size
    for t in range(x.size):
        k = seg[t]
        b = nl3 + n_bg * k
        f[t] = full[b]
        jac[src[b], t] += scale[b] * w[t]
        if n_bg == 2:
            f[t] += full[b + 1] * (x[t] - reference[k])
            jac[src[b + 1], t] += scale[b + 1] * (x[t] - reference[k]) * w[t]
    for j0 in range(0, nl3, 3):
        amp, centre, width = full[j0], full[j0 + 1], full[j0 + 2]
        inv2 = 1.0 / (width * width)
        ja, jc, jw = src[j0], src[j0 + 1], src[j0 + 2]
        sa, sc, sw = scale[j0], scale[j0 + 1] * amp * inv2, scale[j0 + 2] * amp * inv2 / width
        _gaussian(x, centre, inv2, h, gauss)
        for t in range(x.size):
            d = x[t] - centre
            g = gauss[t]
            f[t] += amp * g
            gw = g * w[t]
            jac[ja, t] += sa * gw
            jac[jc, t] += sc * gw * d
            jac[jw, t] += sw * gw * d * d
    chi2 = 0.0
    for t in range(x.size):
        r[t] = (y[t] - f[t]) * w[t]
        chi2 += r[t] * r[t]
    return chi2


@numba.njit(nogil=True, cache=True)
def _gaussian(x, centre, inv2, h, out):
    """``exp(-(x - centre)² inv2 / 2)`` into `out`; by a product recurrence when `h` > 0.

    On evenly spaced samples (step `h`) the ratio of neighbours is itself
    geometric, so from the sample nearest the centre outwards each value is a
    product of the last: 3 ``exp`` per line instead of one per sample, relative
    error ~1e-14 (the products' rounding), and the values only fall outwards
    (underflow to 0 far away, as ``exp`` does).
    """
    m = x.size
    if h <= 0.0:
        for t in range(m):
            d = x[t] - centre
            out[t] = np.exp(-0.5 * d * d * inv2)
        return
    k0 = min(max(int(np.rint((centre - x[0]) / h)), 0), m - 1)
    d = x[k0] - centre
    out[k0] = np.exp(-0.5 * d * d * inv2)
    factor = np.exp(-h * h * inv2)
    ratio = np.exp(-(d * h + 0.5 * h * h) * inv2)  # out[t + 1] / out[t]
    for t in range(k0 + 1, m):
        out[t] = out[t - 1] * ratio
        ratio *= factor
    ratio = np.exp((d * h - 0.5 * h * h) * inv2)  # out[t - 1] / out[t]
    for t in range(k0 - 1, -1, -1):
        out[t] = out[t + 1] * ratio
        ratio *= factor


@numba.njit(nogil=True, cache=True)
def _even_step(x, seg):
    """The step of evenly spaced samples of one segment (to 1e-10 Angstrom), else 0."""
    m = x.size
    if m < 3 or seg[0] != seg[m - 1]:
        return 0.0
    h = (x[m - 1] - x[0]) / (m - 1)
    if not h > 0.0:
        return 0.0
    for t in range(m):
        if abs(x[t] - (x[0] + t * h)) > _EVEN:
            return 0.0
    return h


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
def _predicted(a, g, step, active, n):
    """The fall of χ² the linear model predicts for `step`: ``2 δᵀg - δᵀAδ`` (active part)."""
    total = 0.0
    for i in range(n):
        s = 0.0
        for k in range(n):
            s += a[active[i], active[k]] * step[k]
        total += step[i] * (2.0 * g[active[i]] - s)
    return total


@numba.njit(nogil=True, cache=True)
def _inverse(chol, n, work, out):
    """``(L Lᵀ)⁻¹`` into `out` from `_cholesky`'s factor: ``L⁻¹`` (in `work`), then ``L⁻ᵀ L⁻¹``."""
    for j in range(n):
        work[j, j] = 1.0 / chol[j, j]
        for i in range(j + 1, n):
            s = 0.0
            for k in range(j, i):
                s -= chol[i, k] * work[k, j]
            work[i, j] = s / chol[i, i]
    for i in range(n):
        for j in range(i + 1):
            s = 0.0
            for k in range(i, n):
                s += work[k, i] * work[k, j]
            out[i, j] = s
            out[j, i] = s


@numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract", "nsz", "arcp"})
def _normal(jac, r, a, g):
    """``a = JᵀJ`` and ``g = Jᵀr`` for the Jacobian `jac` (nf, m).

    Fast-math (reassociation: the sums run as vectors, ~30 % of a fit) here
    only: in `_evaluate` it made a freshly compiled kernel and its cached copy
    differ in the last bits. No "nnan"/"ninf": NaN keeps its meaning.
    """
    nf, m = jac.shape
    for i in range(nf):
        s = 0.0
        for t in range(m):
            s += jac[i, t] * r[t]
        g[i] = s
        for j in range(i + 1):
            s = 0.0
            for t in range(m):
                s += jac[i, t] * jac[j, t]
            a[i, j] = s
            a[j, i] = s


@numba.njit(nogil=True, cache=True)
def _fit_one(wave, data, sigma, segment, model, p0, max_iterations, ftol, xtol, params, cov):
    """Fit one spectrum; parameters into `params`, covariance into `cov`.

    Returns ``(chi2, n_samples, iterations, status)``.
    """
    src, scale, shift, n_bg, reference, rest, root, code, owner, lo_kind, hi_kind, scaled = model
    nf = params.size
    x, y, w, seg = _compact(wave, data, sigma, segment)
    m = x.size
    if m == 0:
        return np.nan, m, 0, _NO_DATA
    if m < nf + 1:
        return np.nan, m, 0, _TOO_FEW_POINTS
    p, p_new, lo, hi = np.empty(nf), np.empty(nf), np.empty(nf), np.empty(nf)
    _start(x, y, seg, rest, reference.size, root, code, owner, lo_kind, hi_kind, scaled, p0,
           p, lo, hi)  # fmt: skip
    full, f = np.empty(src.size), np.empty(m)
    r, r_new = np.empty(m), np.empty(m)
    jac, jac_new = np.empty((nf, m)), np.empty((nf, m))
    a, chol = np.empty((nf, nf)), np.empty((nf, nf))
    g, step = np.empty(nf), np.empty(nf)
    active = np.empty(nf, np.int64)
    h, gauss = _even_step(x, seg), np.empty(m)
    terms = (x, y, w, seg, src, scale, shift, n_bg, reference, h, gauss, full, f)
    chi2 = _evaluate(p, *terms, r, jac)
    if not np.isfinite(chi2):
        return np.nan, m, 0, _SINGULAR
    damping = 1e-3
    status = _MAX_ITERATIONS
    iterations = 0
    while iterations < max_iterations:
        iterations += 1
        _normal(jac, r, a, g)
        n_active = 0
        for j in range(nf):
            if not ((p[j] <= lo[j] and g[j] < 0.0) or (p[j] >= hi[j] and g[j] > 0.0)):
                active[n_active] = j
                n_active += 1
        if n_active == 0:
            status = _CONVERGED  # every parameter pinned on a bound
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
                if damping <= 1e-3 and _predicted(a, g, step, active, n_active) <= ftol * chi2:
                    break  # lightly damped and the quadratic model promises nothing more
                p_new[:] = p
                for i in range(n_active):
                    j = active[i]
                    p_new[j] = min(max(p[j] + step[i], lo[j]), hi[j])
                chi2_new = _evaluate(p_new, *terms, r_new, jac_new)
                if chi2_new < chi2:
                    break
            damping *= 10.0
        if not chi2_new < chi2:
            status = _CONVERGED  # no damping lowers χ² (or none is expected to): the minimum
            break
        damping = max(damping * 0.1, 1e-12)
        size, norm = 0.0, 0.0
        for j in range(nf):
            size += (p_new[j] - p[j]) ** 2
            norm += p_new[j] ** 2
        p, p_new = p_new, p
        r, r_new = r_new, r
        jac, jac_new = jac_new, jac
        drop, chi2 = chi2 - chi2_new, chi2_new
        if drop <= ftol * chi2 or np.sqrt(size) <= xtol * (np.sqrt(norm) + xtol):
            status = _CONVERGED
            break
    # a parameter within 1e-9 of its scale from a bound is on it (damped steps only approach
    # a bound): snapped there, so a line of zero peak leaves its centre and width singular
    level, at_bound = _level(y), False
    for j in range(nf):
        tol = _SNAP * _span(lo[j], hi[j], level)
        if p[j] - lo[j] <= tol or hi[j] - p[j] <= tol:
            p[j] = lo[j] if p[j] - lo[j] <= tol else hi[j]
            at_bound = True
    if at_bound:
        chi2 = _evaluate(p, *terms, r, jac)
    params[:] = p
    _normal(jac, r, a, g)
    # parameters the model does not depend on here (zero column: the centre and width of a
    # line of zero peak) get NaN errors; the others the inverse of the rest of JᵀJ
    n_kept = 0
    for j in range(nf):
        if a[j, j] > 0.0:
            active[n_kept] = j
            n_kept += 1
    for i in range(n_kept):
        for k in range(n_kept):
            chol[i, k] = a[active[i], active[k]]
    if not _cholesky(chol, n_kept):
        return chi2, m, iterations, _SINGULAR
    _inverse(chol, n_kept, a, chol)
    for i in range(n_kept):
        for k in range(n_kept):
            cov[active[i], active[k]] = chol[i, k]
    if n_kept < nf:
        return chi2, m, iterations, _SINGULAR
    if status == _CONVERGED and at_bound:
        status = _AT_BOUND
    return chi2, m, iterations, status


@numba.njit(nogil=True, cache=True, inline="always")
def _row(values, i):
    """Row `i` of a per-spectrum array, or its only row when shared by the block."""
    return values[i] if values.shape[0] > 1 else values[0]


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
        hi_kind, scaled)``: see `beamcat.analyses.linefit` (``_kernel_model``).
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
    for i in numba.prange(n):
        start = _row(p0, i) if p0.shape[0] else p0[0:0, 0]
        c, ns, it, st = _fit_one(
            _row(wave, i), data[i], _row(sigma, i), _row(segment, i), model, start,
            max_iterations, ftol, xtol, params[i], cov[i],
        )  # fmt: skip
        chi2[i], n_samples[i], iterations[i], status[i] = c, ns, it, st
    return params, cov, chi2, n_samples, iterations, status


@numba.njit(parallel=True, cache=True)
def start_spectra(wave, data, sigma, segment, model, p0):
    """The start and bounds `fit_spectra` uses, ``(n, n_free)`` each (NaN for unusable spectra)."""
    src, scale, shift, n_bg, reference, rest, root, code, owner, lo_kind, hi_kind, scaled = model
    n, nf = data.shape[0], root.size
    p, lo, hi = np.full((n, nf), np.nan), np.full((n, nf), np.nan), np.full((n, nf), np.nan)
    for i in numba.prange(n):
        x, y, w, seg = _compact(_row(wave, i), data[i], _row(sigma, i), _row(segment, i))
        if x.size:
            start = _row(p0, i) if p0.shape[0] else p0[0:0, 0]
            _start(x, y, seg, rest, reference.size, root, code, owner, lo_kind, hi_kind, scaled,
                   start, p[i], lo[i], hi[i])  # fmt: skip
    return p, lo, hi
