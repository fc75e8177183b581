"""The NumPy layer of the line fitter: a block of spectra in, parameters, errors and statuses out.

`fit_block` runs the numba kernel (`beamcat.analyses._linefit_kernel.fit_spectra`)
on ``(n, n_lambda)`` spectra and maps the free parameters back onto the full
vector; `starting_point` gives the start and bounds it uses (for reference
fits); `model_spectra` the model spectra and components.
"""

from __future__ import annotations

import numpy as np

from beamcat.analyses._linefit_kernel import fit_spectra
from beamcat.analyses._linefit_model import LineModel
from beamcat.analyses._linefit_start import start_spectra
from beamcat.errors import OptionError

__all__ = ["MAX_ITERATIONS", "fit_block", "model_spectra", "starting_point"]

MAX_ITERATIONS = 200
# χ² falling by less than FTOL relative ends a fit (30 FTOL predicted in Gauss–Newton's fast
# final phase, the kernel's _LOOSE): parameters are then within ~0.03 σ of the minimum
# (Δχ² ≲ 3e-5 χ², σ being where Δχ² = 1) and χ² 30x inside the parity bar (1e-3); scipy's
# default 1e-8 costs ~2.5 more iterations for nothing a user could see
FTOL = 1e-6
XTOL = 1e-8  # relative step under which a fit has converged


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
    sigma : ndarray (n_lambda,) or (n, n_lambda), or None
        1σ uncertainty of each sample (data units); samples with a non-finite
        or non-positive σ are dropped. None: unit weights, errors scaled by
        the reduced χ².
    model : LineModel
    p0 : ndarray (n_param,) or (n, n_param), optional
        Start, as full parameters (constrained ones are ignored), clipped a
        hair inside the bounds; by default the guess of `starting_point`.
    segment : ndarray of int (n_lambda,) or (n, n_lambda), optional
        Window segment of each sample (fused windows); default all 0.
    max_iterations : int

    Returns
    -------
    dict of ndarray
        ``params (n, n_param)`` all parameters (`LineModel.param_names`, the
        constrained ones filled in), ``errors (n, n_param)`` their 1σ errors,
        ``covariance (n, n_free, n_free)`` of the free parameters (map it onto
        full ones with `LineModel.covariance`), ``chi2 (n,)``,
        ``reduced_chi2 (n,)`` (χ² / (samples - free parameters)),
        ``iterations (n,)``, ``status (n,)`` (`FitStatus` values).
    """
    args = _kernel_args(wavelength, spectra, sigma, model, p0, segment)
    free, cov, chi2, n_samples, iterations, status = fit_spectra(
        *args, int(max_iterations), FTOL, XTOL
    )
    dof = n_samples - model.n_free
    with np.errstate(invalid="ignore", divide="ignore"):
        reduced = np.where(dof > 0, chi2 / np.maximum(dof, 1), np.nan)
    if sigma is None:
        cov = cov * reduced[:, None, None]
    every = np.arange(len(model.param_names))
    return {
        "params": model.expand(free),
        "errors": np.sqrt(model.covariance(cov, every, every)),
        "covariance": cov,
        "chi2": chi2,
        "reduced_chi2": reduced,
        "iterations": iterations,
        "status": status,
    }


def starting_point(
    wavelength: np.ndarray,
    spectra: np.ndarray,
    sigma: np.ndarray | None,
    model: LineModel,
    *,
    p0: np.ndarray | None = None,
    segment: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The start and bounds of the free parameters `fit_block` uses, ``(n, n_free)`` each.

    Arguments as `fit_block`'s. The guess: per segment the 10 % quantile of its
    finite samples (background), per line its rest wavelength (centre),
    SAFFRON's 0.35 A (width) and the largest sample within 0.3 A of the rest
    wavelength (or the nearest sample) above the background (peak). Rows of
    spectra without a usable sample are NaN. For a reference fit with the same
    start (scipy ``curve_fit`` in the tests and benchmark).
    """
    return start_spectra(*_kernel_args(wavelength, spectra, sigma, model, p0, segment))


def _kernel_args(wavelength, spectra, sigma, model: LineModel, p0, segment) -> tuple:
    """The arrays `fit_spectra` / `start_spectra` take, checked, contiguous and writable.

    Writable (a read-only input, such as a broadcast row, is copied): numba
    compiles the kernel once per array type, and read-only is a type of its
    own, ~15 s each time.
    """
    spectra = np.require(np.atleast_2d(spectra), np.float64, ["C", "W"])
    if spectra.ndim != 2:
        raise OptionError(f"spectra: expected (n, n_lambda), got shape {spectra.shape}")
    wave = _rows("wavelength", wavelength, spectra.shape, np.float64)
    sig = _rows("sigma", 1.0 if sigma is None else sigma, spectra.shape, np.float64)
    seg = _rows("segment", 0 if segment is None else segment, spectra.shape, np.int64)
    if seg.size and (seg.min() < 0 or seg.max() >= model.segments):
        raise OptionError(f"segment: expected values in 0..{model.segments - 1} for this model")
    if p0 is None:
        start = np.empty((0, len(model.param_names)))
    else:
        start = _rows("p0", p0, (spectra.shape[0], len(model.param_names)), np.float64)
    return wave, spectra, sig, seg, model.arrays, start


def _rows(name: str, values, shape: tuple[int, int], dtype) -> np.ndarray:
    """`values` as ``(1 or n, k)`` rows fitting `shape` ``(n, k)`` (writable); else OptionError."""
    values = np.asarray(values, dtype=dtype)
    if values.ndim < 2:
        values = np.broadcast_to(values, shape[-1:])[None]
    if values.ndim != 2 or values.shape[1] != shape[1] or values.shape[0] not in (1, shape[0]):
        raise OptionError(
            f"{name}: shape {values.shape} does not fit the spectra's (n, n_lambda) = {shape}"
        )
    return np.require(values, dtype, ["C", "W"])


def model_spectra(
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
