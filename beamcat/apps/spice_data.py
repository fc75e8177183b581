"""What the SPICE page computes, off the event loop: windows, line-fit maps, one pixel's fit.

Everything here takes a `CatalogContext`, an entry name and a window index
(or plain arrays) and returns what the page draws; no raster is held in memory
beyond a chunk:

- `spectral_entries`, `window_choices`: the entries whose signal has a
  ``wavelength`` dim (SPICE L2, Hinode EIS) and the windows of an entry's file;
- `prepared`: the window opened and prepared lazily (``ds.spice.prepare()``:
  SAFFRON's preclean, the noise model, despike), chunked along ``y`` so a fit
  reports its progress chunk by chunk;
- `window_model`: the `LineModel` of the window's catalog lines (an EIS
  window's own line) with the page's `FitOptions` (background, a lock, bounds);
- `fit_window`: ``ds.spice.fit(model=...)`` over the whole window in one dask
  pass with a progress callback, cached per (catalog, entry, window, options);
- `spectrum_at`: ONE spectrum read (``isel`` of the lazy prepared window), and
  `fit_pixel`: `fit_block` on it with a model, `evaluate` for the model,
  its components and the residuals: the same numbers the maps hold there.

EIS: the fit runs on the window's wavelength table, as the accessor's maps do,
and the corrected wavelength of a pixel is ``wavelength - wave_corr`` (eispac):
a pixel's centres and its spectrum's wavelength axis are shifted by it.

Examples
--------
>>> FitOptions(locks=(("o_iii_2", "o_iii_1", None),)).model_options()["locks"]
[('o_iii_2', 'o_iii_1', None)]
>>> [s.name for s in FitStatus][:2]
['CONVERGED', 'MAX_ITERATIONS']
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import xarray as xr

import beamcat.accessors.spice  # noqa: F401  (registers ds.spice)
from beamcat.accessors.spice import EIS_BOUNDS, eis_line
from beamcat.analyses.linefit import (
    DEFAULT_BOUNDS,
    SPEED_OF_LIGHT,
    FitStatus,
    LineModel,
    evaluate,
    fit_block,
    line_model,
)
from beamcat.analyses.lines import LineCatalog
from beamcat.apps.state import CatalogContext
from beamcat.errors import OptionError

__all__ = [
    "FitOptions",
    "FitStatus",
    "PixelFit",
    "Spectrum",
    "default_bounds",
    "fit_pixel",
    "fit_window",
    "open_window",
    "prepared",
    "spectral_entries",
    "spectrum_at",
    "window_choices",
    "window_lines",
    "window_model",
]

#: the spatial dims of the maps; any other spatial dim (SPICE's ``time``) is shown at index 0
MAP_DIMS = ("y", "x")
#: bounds per format over `DEFAULT_BOUNDS` (SPICE's): the accessor's for EIS's narrow lines
FORMAT_BOUNDS = {"eis": EIS_BOUNDS}
#: spectra per chunk of a fit (the progress bar moves chunk by chunk)
CHUNK_SPECTRA = 2048
#: fits kept (per catalog, entry, window, options)
CACHE_SIZE = 16


@dataclass(frozen=True)
class FitOptions:
    """The page's model choices (hashable: the cache key of a fit).

    Attributes
    ----------
    background : {"constant", "linear"}
    locks : tuple of (line_b, line_a, offset or None)
        ``center_b = center_a + offset`` (Angstrom; None: the rest wavelengths' difference).
    bounds : tuple of (kind, (low, high))
        Overrides of the format's bounds (`default_bounds`); ``center`` as an
        offset from the rest wavelength (Angstrom).
    """

    background: str = "constant"
    locks: tuple = ()
    bounds: tuple = field(default=())

    def model_options(self) -> dict:
        """`line_model` keywords: ``background``, ``locks``, ``bounds``."""
        return {
            "background": self.background,
            "locks": [tuple(lock) for lock in self.locks],
            "bounds": dict(self.bounds),
        }


def spectral_entries(infos: Mapping) -> list[str]:
    """Names of the entries (`CatalogContext.entry_infos`) whose signal has a ``wavelength`` dim."""
    return [name for name, info in infos.items() if "wavelength" in info.dims]


def _row(context: CatalogContext, name: str) -> dict:
    return context.rows[name]


def _source(context: CatalogContext, name: str) -> str:
    """The entry's file, resolved (the catalog row's source may be a template)."""
    return str(context.open(name).attrs["source"])


def window_choices(context: CatalogContext, name: str) -> dict[str, int]:
    """The windows of the entry's file, label -> index (SPICE EXTNAMEs, EIS line IDs).

    A format without windows gives the entry's own window only.
    """
    row = _row(context, name)
    if row["format"] == "spice":
        from beamcat.catalog.spice import open_spice_tree

        labels = open_spice_tree(_source(context, name)).attrs["windows"]
    elif row["format"] == "eis":
        from beamcat.catalog.eis import eis_windows

        labels = eis_windows(_source(context, name))
    else:
        labels = [str(context.open(name).attrs.get("window", name))]
    return {str(label): k for k, label in enumerate(labels)}


def entry_window(context: CatalogContext, name: str) -> int:
    """The window the entry itself opens (its catalog ``window`` option, else 0), as an index."""
    window = _row(context, name)["options"].get("window", 0)
    if isinstance(window, int):
        return window
    labels = list(window_choices(context, name))
    own = str(context.open(name).attrs.get("window", ""))
    return labels.index(own) if own in labels else 0


@functools.lru_cache(maxsize=CACHE_SIZE)
def open_window(context: CatalogContext, name: str, window: int) -> xr.Dataset:
    """Window `window` (index) of the entry's file, opened lazily with the entry's options."""
    if window == entry_window(context, name):
        return context.open(name)
    from beamcat.catalog.formats import open_dataset

    row = _row(context, name)
    options = {**row["options"], "window": window}
    return open_dataset(_source(context, name), format=row["format"], **options)


@functools.lru_cache(maxsize=CACHE_SIZE)
def chunked(context: CatalogContext, name: str, window: int) -> xr.Dataset:
    """The window (lazy) in chunks of about `CHUNK_SPECTRA` spectra along ``y``."""
    ds = open_window(context, name, window)
    signal = ds.attrs.get("signal", "radiance")
    rows = max(1, CHUNK_SPECTRA // max(1, ds.sizes.get("x", 1)))
    return ds.chunk({d: -1 for d in ds[signal].dims} | {"y": rows})


@functools.lru_cache(maxsize=CACHE_SIZE)
def prepared(context: CatalogContext, name: str, window: int) -> xr.Dataset:
    """The window prepared for fitting (``ds.spice.prepare()``, lazy): signal, sigma, spikes."""
    return chunked(context, name, window).spice.prepare()


def window_lines(ds: xr.Dataset) -> dict[str, float]:
    """The lines fitted in a window: an EIS window's own (its line ID), else the catalog's in it.

    Raises
    ------
    OptionError
        No catalog line in the window, an EIS window ID without a wavelength.
    """
    if ds.attrs.get("format") == "eis":
        return eis_line(ds)
    wave = ds["wavelength"].values
    lo, hi = float(np.nanmin(wave)), float(np.nanmax(wave))
    lines = LineCatalog.default().lines_in(lo, hi)
    if not lines:
        raise OptionError(
            f"{ds.attrs.get('source', 'window')} window {ds.attrs.get('window', '')!r}: no "
            f"catalog line in {lo:.3f}-{hi:.3f} Angstrom"
        )
    return lines


def default_bounds(fmt: str | None) -> dict:
    """`DEFAULT_BOUNDS` with the format's (`FORMAT_BOUNDS`): what the page's bound widgets show."""
    return DEFAULT_BOUNDS | FORMAT_BOUNDS.get(fmt, {})


def window_model(ds: xr.Dataset, options: FitOptions) -> LineModel:
    """The `LineModel` of the window's lines (`window_lines`) with `options`."""
    kwargs = options.model_options()
    kwargs["bounds"] = default_bounds(ds.attrs.get("format")) | kwargs["bounds"]
    return line_model(window_lines(ds), **kwargs)


_FITS: OrderedDict = OrderedDict()
_FITS_LOCK = threading.Lock()


def fit_window(
    context: CatalogContext,
    name: str,
    window: int,
    options: FitOptions,
    progress: Callable[[float], None] | None = None,
) -> xr.Dataset:
    """The line-fit maps of a window, computed; cached per (context, entry, window, options).

    Parameters
    ----------
    progress : callable(fraction), optional
        Called from the computing threads as the fit's tasks finish (0 to 1).

    Returns
    -------
    Dataset
        `fit_lines`' result (``intensity``, ``velocity``, ``width``,
        ``reduced_chi2``, ``status`` ...), NumPy-backed; EIS centres and
        velocities at the corrected wavelength.
    """
    key = (id(context), name, int(window), options)
    with _FITS_LOCK:
        if key in _FITS:
            _FITS.move_to_end(key)
            return _FITS[key]
    window_ds = chunked(context, name, window)
    result = window_ds.spice.fit(model=window_model(prepared(context, name, window), options))
    if progress is None:
        result = result.compute()
    else:  # this compute's callback only: other sessions' computes do not move the bar
        progress(0.0)
        result = result.compute(callbacks=[_progress_callback(progress)])
        progress(1.0)
    with _FITS_LOCK:
        _FITS[key] = result
        while len(_FITS) > CACHE_SIZE:
            _FITS.popitem(last=False)
    return result


def _progress_callback(report: Callable[[float], None]) -> tuple:
    """A dask callback (local schedulers) reporting the fraction of this compute's tasks done."""
    from dask.callbacks import Callback

    def done(key, result, dsk, state, worker_id) -> None:
        finished = len(state["finished"])
        left = sum(len(state[k]) for k in ("ready", "waiting", "running"))
        report(finished / max(1, finished + left))

    return Callback(posttask=done)._callback


@dataclass(frozen=True)
class Spectrum:
    """One pixel's prepared spectrum.

    Attributes
    ----------
    position : (i, j)
        Row (``y``) and column (``x``).
    wavelength : ndarray (n_lambda,)
        The window's wavelength table, Angstrom (what the fit uses).
    shift : float
        Subtract from `wavelength` for the pixel's corrected wavelength (EIS
        ``wave_corr``; 0 for SPICE).
    values, sigma : ndarray (n_lambda,)
        Prepared data and its 1σ uncertainty (data units).
    spikes : ndarray of bool (n_lambda,)
        Samples despike replaced.
    units : str or None
    """

    position: tuple[int, int]
    wavelength: np.ndarray
    shift: float
    values: np.ndarray
    sigma: np.ndarray
    spikes: np.ndarray
    units: str | None


def spectrum_at(ds: xr.Dataset, i: int, j: int) -> Spectrum:
    """The prepared spectrum of pixel (row `i`, column `j`): one spectrum read.

    `ds` is `prepared`'s window; other spatial dims (``time``) at index 0.

    Raises
    ------
    OptionError
        A pixel outside the window.
    """
    ny, nx = (ds.sizes[d] for d in MAP_DIMS)
    if not (0 <= i < ny and 0 <= j < nx):
        raise OptionError(f"pixel ({i}, {j}) outside the {ny} x {nx} window")
    signal = ds.attrs["signal"]
    where = {d: 0 for d in ds[signal].dims if d not in (*MAP_DIMS, "wavelength")}
    one = ds[[signal, "sigma", "spikes"]].isel(where | {"y": i, "x": j}).compute()
    shift = float(one["wave_corr"]) if "wave_corr" in one.coords else 0.0
    return Spectrum(
        (i, j),
        ds["wavelength"].values.astype(np.float64),
        shift,
        one[signal].transpose("wavelength").values,
        one["sigma"].transpose("wavelength").values,
        one["spikes"].transpose("wavelength").values,
        ds[signal].attrs.get("units"),
    )


@dataclass(frozen=True)
class PixelFit:
    """A fit of one spectrum: parameters, the model and its parts at the spectrum's samples.

    Attributes
    ----------
    spectrum : Spectrum
    model : LineModel
    params, errors : dict name -> float
        Every model parameter (`LineModel.param_names`; centres at the
        corrected wavelength) and its 1σ error.
    status : FitStatus
    chi2, reduced_chi2 : float
    total : ndarray (n_lambda,)
        The model spectrum.
    components : dict name -> ndarray (n_lambda,)
        Each line's Gaussian and ``"background"``.
    residuals : ndarray (n_lambda,)
        Data minus model.
    """

    spectrum: Spectrum
    model: LineModel
    params: dict
    errors: dict
    status: FitStatus
    chi2: float
    reduced_chi2: float
    total: np.ndarray
    components: dict
    residuals: np.ndarray

    def velocity(self, line: str) -> tuple[float, float]:
        """The line's Doppler velocity and its error (km/s, positive = red shift)."""
        rest = self.model.rest[self.model.lines.index(line)]
        shift = self.params[f"{line}_center"] - rest
        return SPEED_OF_LIGHT * shift / rest, SPEED_OF_LIGHT * self.errors[f"{line}_center"] / rest


def fit_pixel(spectrum: Spectrum, model: LineModel) -> PixelFit:
    """`fit_block` on one spectrum with `model`; `evaluate` for the model and its components."""
    out = fit_block(spectrum.wavelength, spectrum.values[None], spectrum.sigma[None], model)
    params = out["params"][0]
    total, components = evaluate(model, params, spectrum.wavelength)
    values = dict(zip(model.param_names, params.tolist(), strict=True))
    for line in model.lines:
        values[f"{line}_center"] -= spectrum.shift
    return PixelFit(
        spectrum,
        model,
        values,
        dict(zip(model.param_names, out["errors"][0].tolist(), strict=True)),
        FitStatus(int(out["status"][0])),
        float(out["chi2"][0]),
        float(out["reduced_chi2"][0]),
        total,
        dict(zip([*model.lines, "background"], components, strict=True)),
        spectrum.values - total,
    )
