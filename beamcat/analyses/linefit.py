"""Batched multi-Gaussian line fitting of spectra (SPICE, EIS): every pixel, errors and a status.

The model (`line_model`, `LineModel`): Gaussian lines ``I exp(-(λ - x)² / 2σ²)``
(peak ``I`` in data units, centre ``x`` and width ``σ`` in Angstrom) plus a
constant or linear background per window segment, with locks (fixed centre
offsets, also across fused windows), tied widths and fixed intensity ratios
that leave the free vector, so they hold exactly.

`fit_block` fits a block of spectra with one numba kernel
(`beamcat.analyses._linefit_kernel.fit_spectra`, bounded Levenberg–Marquardt,
analytic Jacobian, weights 1/σ², ``prange`` over spectra); `fit_lines` maps it
lazily over the spatial chunks of a radiance cube (one or several fused
windows) and returns line maps in xarray's ``curvefit`` layout (a ``param``
dim) plus per-line variables; `evaluate` gives the model spectra and their
components.

Errors are ``sqrt(diag((JᵀWJ)⁻¹))`` with ``W = 1/σ²``: the σ are taken as the
real 1σ uncertainties of the samples (scipy's ``absolute_sigma=True``), not
rescaled by χ². Without σ, unit weights and the covariance scaled by the
reduced χ² (``absolute_sigma=False``).

Every spectrum gets a `FitStatus`; a NaN parameter never comes with
``CONVERGED`` (see `FitStatus` for what each status leaves).

Examples
--------
>>> wave = np.linspace(700.0, 706.0, 60)
>>> model = line_model({"a": 703.0})
>>> truth = model.expand([[2.0, 703.1, 0.4, 0.2]])
>>> spectrum, _ = evaluate(model, truth, wave)
>>> out = fit_block(wave, spectrum, np.full_like(spectrum, 0.01), model)
>>> out["params"].round(4).tolist(), FitStatus(out["status"][0]).name
([[2.0, 703.1, 0.4, 0.2]], 'CONVERGED')
>>> cube = xr.DataArray(np.broadcast_to(spectrum, (2, 3, 60)), dims=("y", "x", "wavelength"),
...                     coords={"wavelength": wave}, attrs={"units": "W/m2/sr/nm"})
>>> maps = fit_lines(cube, xr.full_like(cube, 0.01), lines={"a": 703.0})
>>> maps["velocity"].sel(line="a").values.round(1).tolist()
[[42.6, 42.6, 42.6], [42.6, 42.6, 42.6]]
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr

from beamcat.analyses._history import carried, history
from beamcat.analyses._linefit_block import (
    MAX_ITERATIONS,
    fit_block,
    model_spectra,
    starting_point,
)
from beamcat.analyses._linefit_model import DEFAULT_BOUNDS, FitStatus, LineModel, line_model
from beamcat.analyses._linefit_windows import checked_correction, joined, model_of, windows_of
from beamcat.errors import OptionError

__all__ = [
    "DEFAULT_BOUNDS",
    "MAX_ITERATIONS",
    "SPEED_OF_LIGHT",
    "FitStatus",
    "LineModel",
    "evaluate",
    "fit_block",
    "fit_lines",
    "line_model",
    "starting_point",
]

SPEED_OF_LIGHT = 299792.458  # km/s
CONVENTIONS = {"gaussian": np.sqrt(2 * np.pi), "saffron": np.sqrt(np.pi)}
_SCALARS = ("chi2", "reduced_chi2", "iterations", "status")


def fit_lines(
    radiance: xr.DataArray | Sequence[xr.DataArray],
    sigma: xr.DataArray | Sequence[xr.DataArray] | None = None,
    model: LineModel | None = None,
    *,
    lines: Mapping[str, float] | Sequence[str] | None = None,
    background: str = "constant",
    locks=None,
    tied_widths=None,
    ratios=None,
    bounds: Mapping | None = None,
    wavelength_range=None,
    p0: np.ndarray | xr.DataArray | None = None,
    wavelength_correction: xr.DataArray | None = None,
    max_iterations: int = MAX_ITERATIONS,
    radiance_convention: str = "gaussian",
) -> xr.Dataset:
    """Fit Gaussian lines to every spectrum of a cube, lazily over its spatial chunks.

    Parameters
    ----------
    radiance : DataArray (..., wavelength, ...) or sequence of them
        Spectra along a ``wavelength`` dim (coordinate in Angstrom), any other
        dims spatial (``time, y, x``). Several windows of one raster are fused:
        fitted as one spectrum, each window with its own background.
    sigma : DataArray or sequence of them, optional
        1σ uncertainty per sample, shaped as `radiance`. None: unit weights,
        errors scaled by the reduced χ².
    model : LineModel, optional
        The model (its ``segments`` = number of windows); else built by
        `line_model` from `lines` and the options below.
    lines : mapping name -> rest wavelength (Angstrom), or names, optional
        Names are looked up in the bundled catalog
        (`beamcat.analyses.lines.LineCatalog.default`); None takes the
        catalog's lines inside each window. Each line belongs to the window
        its rest wavelength falls in.
    background, locks, tied_widths, ratios, bounds
        As `line_model`.
    wavelength_range : (lo, hi) or sequence of them, optional
        Only samples with lo <= wavelength <= hi (Angstrom) are fitted; one
        range for all windows or one per window.
    p0 : ndarray (n_param,) or DataArray (..., param), optional
        Start as full parameters; default the guess of `starting_point`.
    wavelength_correction : DataArray (spatial dims), optional
        Angstrom subtracted from the wavelength per spectrum: the corrected
        wavelength is ``wavelength - wavelength_correction`` (EIS's
        ``wave_corr``, slit tilt and orbital drift, as eispac fits). Centres
        and velocities are then in the corrected frame; ranges, catalog
        lookups and bounds use the uncorrected table.
    max_iterations : int
    radiance_convention : {"gaussian", "saffron"}
        ``radiance = I σ √(2π)``, the integral of the Gaussian; ``"saffron"``
        gives SAFFRON's ``I σ √π`` (a slip in its code: √π integrates
        ``exp(-(λ-x)²/σ²)``, not its model), for comparison with old L3 files.

    Returns
    -------
    Dataset
        Over ``(line, <spatial dims>)``: ``intensity`` (peak, data units),
        ``center`` (Angstrom), ``width`` (σ, Angstrom), ``velocity`` (km/s,
        c (x - rest) / rest, positive = red shift), ``radiance`` (σ converted to
        the data's wavelength unit from its ``units`` attr: SPICE W/m2/sr/nm
        gives W/m2/sr; without units σ stays in Angstrom), each with
        ``<name>_error`` (radiance's from the covariance of I and σ); over
        ``(window, <spatial dims>)``: ``background`` (and ``slope`` per
        Angstrom when linear) with errors; over the spatial dims: ``chi2``,
        ``reduced_chi2``, ``iterations``, ``status`` (`FitStatus`, CF
        ``flag_values``/``flag_meanings``); ``parameters`` and
        ``parameter_errors`` over ``(<spatial dims>, param)``. Coordinates
        ``line``, ``rest_wavelength (line)``, ``line_window (line)`` (the index
        of the window each line belongs to), ``param``, ``window`` (the
        windows' ``window`` attrs or indices) and the spatial ones. Dask in,
        dask out: nothing is computed here.

    Raises
    ------
    OptionError
        Not a DataArray with a ``wavelength`` dim, sigma not shaped as the
        radiance, windows of different rasters, an empty wavelength range, a
        window without catalog lines, a line outside every window (a lock
        across windows needs them fused), a bad model option.
    """
    if radiance_convention not in CONVENTIONS:
        raise OptionError(
            f"radiance_convention={radiance_convention!r}: expected one of {list(CONVENTIONS)}"
        )
    windows, sigmas = windows_of(radiance, sigma, wavelength_range)
    spatial = [d for d in windows[0].dims if d != "wavelength"]
    waves = [w["wavelength"].values.astype(np.float64) for w in windows]
    if model is None:
        model = model_of(windows, waves, lines, background, locks, tied_widths, ratios, bounds)
    elif lines is not None:
        raise OptionError("fit_lines: pass either model= or lines=, not both")
    elif model.segments != len(windows):
        raise OptionError(
            f"model has {model.segments} window segment(s), but {len(windows)} window(s) given"
        )
    wavelength = np.concatenate(waves)
    segment = np.concatenate([np.full(w.size, k) for k, w in enumerate(waves)])
    extra = {}  # optional inputs of the chunk function: name -> (array, its core dims)
    if sigmas[0] is not None:
        extra["sigma"] = (joined(sigmas, spatial), ["wavelength"])
    if isinstance(p0, xr.DataArray):
        extra["p0"], p0 = (p0.transpose(..., "param"), ["param"]), None
    if wavelength_correction is not None:
        extra["correction"] = (checked_correction(wavelength_correction, spatial), [])
    n_param, n_lines = len(model.param_names), model.n_lines
    factor, units = _per_wavelength(windows[0].attrs.get("units"))
    packed = xr.apply_ufunc(
        _fit_chunk,
        joined(windows, spatial),
        *(array for array, _ in extra.values()),
        input_core_dims=[["wavelength"], *(dims for _, dims in extra.values())],
        output_core_dims=[["packed"]],
        dask="parallelized",
        output_dtypes=[np.float64],
        dask_gufunc_kwargs={"output_sizes": {"packed": 2 * n_param + 4 + 2 * n_lines}},
        kwargs={
            "wavelength": wavelength,
            "segment": segment,
            "model": model,
            "names": tuple(extra),
            "p0": None if p0 is None else np.asarray(p0, dtype=np.float64),
            "max_iterations": int(max_iterations),
            "scale": factor * CONVENTIONS[radiance_convention],
        },
    )
    return _dataset(packed, windows, spatial, model, units, radiance_convention)


def _fit_chunk(values, *more, names, wavelength, segment, model, p0, max_iterations, scale):
    """`fit_block` on one chunk ``(..., n_lambda)`` -> ``(..., packed)``.

    `more` are the optional inputs `names` (``sigma``, ``p0``, ``correction``).
    Packed per spectrum: parameters, their errors, χ², reduced χ², iterations,
    status, then per line the radiance and its error.
    """
    lead, n_lambda = values.shape[:-1], values.shape[-1]
    lead_size = int(np.prod(lead))
    extra = dict(zip(names, more, strict=True))
    sigma = extra["sigma"].reshape(-1, n_lambda) if "sigma" in extra else None
    if "p0" in extra:
        p0 = np.broadcast_to(extra["p0"], (*lead, extra["p0"].shape[-1])).reshape(lead_size, -1)
    if "correction" in extra:
        shift = np.broadcast_to(extra["correction"], lead).reshape(-1, 1)
        wavelength = wavelength - shift
    out = fit_block(
        wavelength,
        values.reshape(-1, n_lambda),
        sigma,
        model,
        p0=p0,
        segment=segment,
        max_iterations=max_iterations,
    )
    amp, width = 3 * np.arange(model.n_lines), 3 * np.arange(model.n_lines) + 2
    i, s = out["params"][:, amp], out["params"][:, width]
    cov = out["covariance"]
    var_i, var_s = out["errors"][:, amp] ** 2, out["errors"][:, width] ** 2
    variance = s**2 * var_i + i**2 * var_s + 2 * i * s * model.covariance(cov, amp, width)
    scalars = [out[k][:, None].astype(np.float64) for k in _SCALARS]
    packed = np.concatenate(
        [out["params"], out["errors"], *scalars, scale * i * s, abs(scale) * np.sqrt(variance)],
        axis=1,
    )
    return packed.reshape(*lead, packed.shape[-1])


def _per_wavelength(units) -> tuple[float, str | None]:
    """Factor from Angstrom to the data's per-wavelength unit, and the integrated units.

    ``"W/m2/sr/nm"`` -> (0.1, ``"W / (m2 sr)"``); ``"erg/cm2/s/sr/Angstrom"`` ->
    (1.0, ...). Without units, or units without a per-length term, σ stays in
    Angstrom: (1.0, ``"<units> Angstrom"`` or None).
    """
    if not units:
        return 1.0, None
    import astropy.units as u

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", u.UnitsWarning)
        try:
            unit = u.Unit(units)
        except ValueError:
            return 1.0, f"{units} Angstrom"
    for base, power in zip(unit.bases, unit.powers, strict=True):
        if power == -1 and base.physical_type == "length":
            return float(u.AA.to(base)), (unit * base).to_string()
    return 1.0, (unit * u.AA).to_string()


def _dataset(packed, windows, spatial, model: LineModel, units, convention) -> xr.Dataset:
    """The result Dataset from the packed kernel output ``(*spatial, packed)``."""
    n_param, nl = len(model.param_names), 3 * model.n_lines
    first = windows[0]

    def part(index, dim, labels):
        return packed.isel(packed=list(index)).rename(packed=dim).assign_coords({dim: labels})

    data_units = first.attrs.get("units")
    line_units = {"intensity": data_units, "center": "Angstrom", "width": "Angstrom"}
    out = {}
    for k, kind in enumerate(("intensity", "center", "width")):
        for suffix, offset in (("", 0), ("_error", n_param)):
            var = part(range(offset + k, offset + nl, 3), "line", list(model.lines))
            out[kind + suffix] = (
                var.assign_attrs(units=line_units[kind]) if line_units[kind] else var
            )
    rest = xr.DataArray(np.asarray(model.rest), dims="line", coords={"line": list(model.lines)})
    out["velocity"] = (SPEED_OF_LIGHT * (out["center"] - rest) / rest).assign_attrs(units="km/s")
    out["velocity_error"] = (SPEED_OF_LIGHT * out["center_error"] / rest).assign_attrs(units="km/s")
    base = 2 * n_param + len(_SCALARS)
    for suffix, offset in (("", base), ("_error", base + model.n_lines)):
        var = part(range(offset, offset + model.n_lines), "line", list(model.lines))
        attrs = {"convention": convention} | ({"units": units} if units else {})
        out["radiance" + suffix] = var.assign_attrs(attrs)
    names = [str(w.attrs.get("window", k)) for k, w in enumerate(windows)]
    kinds = ("background", "slope")[: model.n_background]
    for b, kind in enumerate(kinds):
        for suffix, offset in (("", 0), ("_error", n_param)):
            index = range(offset + nl + b, offset + n_param, model.n_background)
            out[kind + suffix] = part(index, "window", names)
    for k, name in enumerate(_SCALARS):
        out[name] = packed.isel(packed=2 * n_param + k)
    out["iterations"] = out["iterations"].astype(np.int32)
    out["status"] = (
        out["status"]
        .astype(np.uint8)
        .assign_attrs(
            flag_values=np.array([s.value for s in FitStatus], np.uint8),
            flag_meanings=" ".join(s.name.lower() for s in FitStatus),
        )
    )
    out["parameters"] = part(range(n_param), "param", list(model.param_names))
    out["parameter_errors"] = part(range(n_param, 2 * n_param), "param", list(model.param_names))
    order = ("line", "window", *spatial, "param")
    variables = {k: v.transpose(*[d for d in order if d in v.dims]) for k, v in out.items()}
    coords = {k: c for k, c in first.coords.items() if set(c.dims) <= set(spatial)}
    ds = xr.Dataset(variables, coords=coords)
    ds = ds.assign_coords(
        rest_wavelength=rest.assign_attrs(units="Angstrom"),
        line_window=("line", np.asarray(model.line_segment), {"long_name": "window index"}),
    )
    line = (
        f"fit_lines: {model.n_lines} line(s) {list(model.lines)}, {model.background} background, "
        f"{model.segments} window(s) {names}, {model.n_free} free parameters, "
        f"radiance_convention={convention!r}"
    )
    return ds.assign_attrs({**carried(first.attrs), "history": history(first.attrs, line)})


def evaluate(model: LineModel, parameters, wavelength, *, segment=None):
    """The model spectra and their components at `wavelength`.

    Parameters
    ----------
    model : LineModel
    parameters : ndarray (..., n_param) or DataArray (..., param)
        Full parameters (``fit_block(...)["params"]`` or ``fit_lines(...)["parameters"]``).
    wavelength : ndarray (n_lambda,) or DataArray (wavelength)
        Angstrom.
    segment : ndarray of int (n_lambda,), optional
        Window segment of each sample (fused windows); default all 0.

    Returns
    -------
    total : ndarray (..., n_lambda) or DataArray (..., wavelength)
    components : ndarray (..., n_lines + 1, n_lambda) or DataArray (..., component, wavelength)
        Each line's Gaussian, then the background (component ``"background"``).
    """
    if not isinstance(parameters, xr.DataArray):
        return model_spectra(model, parameters, wavelength, segment=segment)
    wave = xr.DataArray(np.asarray(wavelength, dtype=np.float64), dims="wavelength")
    if isinstance(wavelength, xr.DataArray):
        wave = wavelength
    total, components = xr.apply_ufunc(
        functools.partial(model_spectra, model),  # not an argument: dask would wrap it
        parameters,
        wave,
        input_core_dims=[["param"], ["wavelength"]],
        output_core_dims=[["wavelength"], ["component", "wavelength"]],
        dask="parallelized",
        output_dtypes=[np.float64, np.float64],
        dask_gufunc_kwargs={"output_sizes": {"component": model.n_lines + 1}},
        kwargs={"segment": segment},
    )
    return total, components.assign_coords(component=[*model.lines, "background"])
