"""Batched multi-Gaussian line fitting of spectra (SPICE, EIS): every pixel, errors and a status.

The model (`line_model`, `LineModel`): Gaussian lines ``I exp(-(λ - x)² / 2σ²)``
(peak ``I`` in data units, centre ``x`` and width ``σ`` in Angstrom) plus a
constant or linear background per window segment, with locks (fixed centre
offsets, also across fused windows), tied widths and fixed intensity ratios
that leave the free vector, so they hold exactly.

`fit_block` fits a block of spectra with one numba kernel
(`beamcat.analyses._linefit_kernel.fit_spectra`, bounded Levenberg–Marquardt,
analytic Jacobian, weights 1/σ²); `fit_lines` maps it lazily over the spatial
chunks of a radiance cube and returns line maps in xarray's ``curvefit``
layout plus per-line variables; `evaluate` gives the model spectra and their
components.

Errors are ``sqrt(diag((JᵀWJ)⁻¹))`` with ``W = 1/σ²``: the σ are taken as the
real 1σ uncertainties of the samples (scipy's ``absolute_sigma=True``), not
rescaled by χ². Without σ, unit weights and the covariance scaled by the
reduced χ² (``absolute_sigma=False``).

Every spectrum gets a `FitStatus`; a NaN parameter never comes with
``CONVERGED``.

Examples
--------
>>> wave = np.linspace(700.0, 706.0, 60)
>>> model = line_model({"a": 703.0})
>>> truth = model.expand([[2.0, 703.1, 0.4, 0.2]])
>>> spectrum, _ = evaluate(model, truth, wave)
>>> out = fit_block(wave, spectrum, np.full_like(spectrum, 0.01), model)
>>> out["params"].round(4).tolist(), FitStatus(out["status"][0]).name
([[2.0, 703.1, 0.4, 0.2]], 'CONVERGED')
"""

from __future__ import annotations

import numpy as np

from beamcat.analyses._linefit_kernel import FitStatus, fit_spectra
from beamcat.analyses._linefit_model import (
    DEFAULT_BOUNDS,
    LineModel,
    initial_guess,
    line_model,
    spectrum_bounds,
)
from beamcat.errors import OptionError

__all__ = [
    "DEFAULT_BOUNDS",
    "FitStatus",
    "LineModel",
    "evaluate",
    "fit_block",
    "line_model",
]

MAX_ITERATIONS = 200
FTOL = 1e-10  # relative fall of χ² under which a fit has converged (scipy's default is 1e-8)
XTOL = 1e-10  # relative step under which a fit has converged


def fit_block(
    wavelength: np.ndarray,
    spectra: np.ndarray,
    sigma: np.ndarray | None,
    model: LineModel,
    *,
    p0: np.ndarray | None = None,
    segment: np.ndarray | None = None,
    max_iterations: int = MAX_ITERATIONS,
) -> dict[str, np.ndarray]:
    """Fit `model` to each of a block of spectra.

    Parameters
    ----------
    wavelength : ndarray (n_lambda,) or (n, n_lambda)
        Angstrom.
    spectra : ndarray (n, n_lambda)
        NaN samples are dropped (per spectrum).
    sigma : ndarray (n, n_lambda) or None
        1σ uncertainty of each sample (data units); samples with a non-finite
        or non-positive σ are dropped. None: unit weights, errors scaled by
        the reduced χ².
    model : LineModel
    p0 : ndarray (n_param,) or (n, n_param), optional
        Start, as full parameters (locked ones are ignored); by default
        `initial_guess` (catalog wavelengths and the spectrum itself).
    segment : ndarray of int (n_lambda,) or (n, n_lambda), optional
        Window segment of each sample (fused windows); default all 0.
    max_iterations : int

    Returns
    -------
    dict of ndarray
        ``params (n, n_param)`` all parameters (`LineModel.param_names`, the
        constrained ones filled in), ``errors (n, n_param)`` their 1σ errors,
        ``covariance (n, n_param, n_param)``, ``chi2 (n,)``,
        ``reduced_chi2 (n,)`` (χ² / (samples - free parameters)),
        ``iterations (n,)``, ``status (n,)`` (`FitStatus` values).
    """
    spectra = np.atleast_2d(np.asarray(spectra, dtype=np.float64))
    n, n_lambda = spectra.shape
    wave = _block("wavelength", wavelength, spectra.shape)
    weighted = sigma is not None
    sig = _block("sigma", sigma if weighted else 1.0, spectra.shape)
    seg = _block("segment", 0 if segment is None else segment, spectra.shape).astype(np.int64)
    if seg.size and (seg.min() < 0 or seg.max() >= model.segments):
        raise OptionError(f"segment: expected values in 0..{model.segments - 1} for this model")
    lo, hi = spectrum_bounds(model, spectra)
    if p0 is None:
        start = initial_guess(model, wave, spectra, seg, lo, hi)
    else:
        full = np.broadcast_to(np.asarray(p0, dtype=np.float64), (n, len(model.param_names)))
        start = np.ascontiguousarray(full[:, model.roots()])
    free, cov, chi2, n_samples, iterations, status = fit_spectra(
        wave,
        spectra,
        sig,
        seg,
        np.asarray(model.src, np.int64),
        np.asarray(model.scale, np.float64),
        np.asarray(model.shift, np.float64),
        model.n_lines,
        model.n_background,
        np.asarray(model.reference, np.float64),
        start,
        lo,
        hi,
        int(max_iterations),
        FTOL,
        XTOL,
    )
    dof = n_samples - model.n_free
    with np.errstate(invalid="ignore", divide="ignore"):
        reduced = np.where(dof > 0, chi2 / np.maximum(dof, 1), np.nan)
    if not weighted:
        cov = cov * reduced[:, None, None]
    # full = scale * free[src] + shift: the covariance maps through the same sparse matrix
    src, scale = list(model.src), np.asarray(model.scale)
    covariance = cov[:, src][:, :, src] * scale[:, None] * scale[None, :]
    return {
        "params": model.expand(free),
        "errors": np.sqrt(np.diagonal(covariance, axis1=1, axis2=2)),
        "covariance": covariance,
        "chi2": chi2,
        "reduced_chi2": reduced,
        "iterations": iterations,
        "status": status,
    }


def _block(name: str, values, shape: tuple[int, int]) -> np.ndarray:
    """`values` broadcast to the block's ``(n, n_lambda)``, contiguous; else OptionError."""
    values = np.asarray(values)
    try:
        out = np.broadcast_to(values, shape)
    except ValueError:
        raise OptionError(
            f"{name}: shape {values.shape} does not fit the spectra's (n, n_lambda) = {shape}"
        ) from None
    dtype = np.int64 if name == "segment" else np.float64
    return np.ascontiguousarray(out, dtype=dtype)


def evaluate(
    model: LineModel, parameters: np.ndarray, wavelength: np.ndarray, *, segment=None
) -> tuple[np.ndarray, np.ndarray]:
    """The model spectra and their components.

    Parameters
    ----------
    model : LineModel
    parameters : ndarray (..., n_param)
        Full parameters (`LineModel.param_names`), as `fit_block` returns them.
    wavelength : ndarray (n_lambda,)
        Angstrom.
    segment : ndarray of int (n_lambda,), optional
        Window segment of each sample (fused windows); default all 0.

    Returns
    -------
    total : ndarray (..., n_lambda)
    components : ndarray (..., n_lines + 1, n_lambda)
        Each line's Gaussian, then the background.
    """
    p = np.asarray(parameters, dtype=np.float64)[..., None]  # (..., n_param, 1)
    wave = np.asarray(wavelength, dtype=np.float64)
    seg = np.zeros(wave.shape, np.int64) if segment is None else np.asarray(segment)
    nl, nb = 3 * model.n_lines, model.n_background
    amp, centre, width = p[..., 0:nl:3, :], p[..., 1:nl:3, :], p[..., 2:nl:3, :]
    lines = amp * np.exp(-0.5 * ((wave - centre) / width) ** 2)
    index = nl + nb * seg
    background = np.take(p[..., 0], index, axis=-1)
    if nb == 2:
        slope = np.take(p[..., 0], index + 1, axis=-1)
        background = background + slope * (wave - np.asarray(model.reference)[seg])
    components = np.concatenate([lines, background[..., None, :]], axis=-2)
    return components.sum(axis=-2), components
