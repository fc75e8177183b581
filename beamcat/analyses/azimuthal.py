"""Azimuthal integration of frames over any leading dims: pyFAI's numbers, batched and lazy.

- `integrate1d`: the 1D pattern ``(..., tth|q|r)`` with ``intensity``, ``count``
  and, with an error model, ``sigma`` — pyFAI's ``integrate1d`` (its ``_ng``
  engine: signal Σ c·s over normalisation Σ c·ω, ``sigma`` the standard error
  of the mean sqrt(Σ c²σ²) / Σ c·ω);
- `integrate2d`: caking ``(..., chi, tth|q|r)``, pyFAI's ``integrate2d``;
- `median1d`: the per-bin median (or any percentile) of the normalised pixel
  values, pyFAI's ``medfilt1d_ng``;
- `sigma_clip1d`: pyFAI's ``sigma_clip_ng`` (Chauvenet-clipped mean, ``sigma``,
  ``std``);
- `integration_table`: the cached pixel -> bin table they share.

The tables come from pyFAI's own CSR engine, so the bins and bin centres are
pyFAI's (`beamcat.analyses._azimuthal_tables`). One numba kernel
(`beamcat.analyses.labels.table_sums`) then reduces a whole chunk of frames
per call; per-frame work runs lazily through `_frames.map_frames`, one task
per chunk of whole frames. A NumPy array in gives
the result at once, with no dask or per-call setup beyond cached lookups.

Pixels drop out where the mask is True (pyFAI's convention; the detector's own
mask, when its PONI names one, is added), where the value is NaN or the
`dummy`, or where the normalisation is 0. Negative values are *not* masked
unless `dummy` or the mask says so. Empty bins are NaN (pyFAI writes 0).

The geometry is a PONI (`beamcat.analyses.geometry`); by default the frames'
``attrs["poni"]`` and ``attrs["poni_flip"]`` (catalog entries with ``poni=``).
With ``flip=True`` (Dioptas' view) the raw image integrates as pyFAI integrates
the image flipped vertically.

Examples
--------
>>> geo = as_geometry({"dist": 0.1, "poni1": 0.005, "poni2": 0.005, "wavelength": 1e-10,
...                    "detector": "Detector",
...                    "detector_config": {"pixel1": 1e-4, "pixel2": 1e-4}})
>>> frames = xr.DataArray(np.ones((2, 100, 100)), dims=("frame", "y", "x"))
>>> out = integrate1d(frames, geo, npt=50, correct_solid_angle=False)
>>> out["intensity"].dims, float(out["intensity"][0, 10])
(('frame', 'tth'), 1.0)
"""

from __future__ import annotations

import inspect
import os

import numpy as np
import xarray as xr

from beamcat.analyses._azimuthal_order import MEDIAN_SUMS, clip_sums, median_sums
from beamcat.analyses._azimuthal_tables import (
    UNITS,
    IntegrationTable,
    integration_table,
    known_norm,
    normalisation,
)
from beamcat.analyses._frames import PIXEL_DIMS, check_pixel_dims, describe, map_frames, pick
from beamcat.analyses._history import carried, history
from beamcat.analyses.geometry import as_geometry, check_shape
from beamcat.analyses.labels import SUMS, table_sums
from beamcat.errors import OptionError

__all__ = ["integrate1d", "integrate2d", "integration_table", "median1d", "sigma_clip1d"]

_ERROR_MODELS = (None, "poisson", "azimuthal")
#: threads that share the kernel's work on NumPy frames (dask runs one task per core instead)
EAGER_THREADS = min(4, os.cpu_count() or 1)
_LONG_NAMES = {
    "intensity": "azimuthally integrated intensity",
    "sigma": "standard error of the mean intensity",
    "std": "standard deviation of the pixels' intensities",
    "count": "pixels per bin",
}


class _Setup:
    """What every integration checks and looks up once, before any frame is touched."""

    def __init__(self, frames, geometry, name, options):
        if isinstance(frames, xr.Dataset):
            frames = pick(frames, what="detector frames")
        if isinstance(frames, np.ndarray):
            if frames.ndim < 2:
                raise OptionError(f"{name}: frames of shape {frames.shape}, expected (..., y, x)")
            if geometry is None:
                raise OptionError(f"{name}: a NumPy array carries no PONI; pass geometry=")
            shape = frames.shape[-2:]
        else:
            shape = check_pixel_dims(frames)
        self.frames, self.shape = frames, tuple(shape)
        self.where = describe(frames, name)
        self.geometry = as_geometry(frames if geometry is None else geometry)
        check_shape(self.geometry, self.shape, self.where)
        self.mask = self._mask(options.get("mask"))
        detector = self.geometry.integrator.detector
        dummy, delta = options.get("dummy"), options.get("delta_dummy")
        if dummy is None:
            dummy, delta = detector.get_dummies(np.dtype(frames.dtype))
        self.dummy, self.delta = dummy, delta
        flat = options.get("flat")
        self.norm = normalisation(
            self.geometry,
            self.shape,
            correct_solid_angle=options.get("correct_solid_angle", True),
            polarization_factor=options.get("polarization_factor"),
            flat=None if flat is None else self._image(flat, "flat"),
            dummy=dummy,
            delta_dummy=delta,
        )

    def _image(self, image, what: str) -> np.ndarray:
        """A (y, x) option image as NumPy, checked against the frames."""
        if isinstance(image, xr.DataArray):
            if image.dims != PIXEL_DIMS:
                raise OptionError(f"{self.where}: {what} with dims {image.dims}, expected (y, x)")
            image = image.values
        image = np.asarray(image)
        if image.shape != self.shape:
            raise OptionError(
                f"{self.where}: {what} of shape {image.shape}, expected the frames' (y, x) "
                f"{self.shape}"
            )
        return image

    def _mask(self, mask):
        if mask is not None:
            mask = self._image(mask, "mask")
            if mask.dtype.kind not in "biuf":
                raise OptionError(f"{self.where}: mask of dtype {mask.dtype}, expected booleans")
            mask = mask.astype(bool)
        own = self.geometry.integrator.detector.mask  # in the PONI's orientation
        if own is not None:
            own = np.asarray(own, bool)[::-1] if self.geometry.flip else np.asarray(own, bool)
            mask = own if mask is None else mask | own
        return mask

    def table(self, **binning) -> IntegrationTable:
        """The cached table for this geometry, shape and mask."""
        return integration_table(
            self.geometry, self.shape, mask=self.mask, where=self.where, **binning
        )

    def line(self, name: str, **options) -> str:
        """The history line: the function, its options and the PONI."""
        shown = ", ".join(f"{k}={v!r}" for k, v in options.items() if v is not None)
        flip = ", flipped" if self.geometry.flip else ""
        return f"{name}: {shown}; geometry {self.geometry.name}{flip}"


def _finish(sums: np.ndarray, names: tuple[str, ...], npt_azim: int | None) -> np.ndarray:
    """Per-bin sums (..., n_bins, k) -> the named statistics (..., [chi,] radial, len(names))."""
    fields = SUMS if sums.shape[-1] == len(SUMS) else MEDIAN_SUMS
    index = {name: k for k, name in enumerate(fields)}
    signal, norm, count = (sums[..., index[k]] for k in ("signal", "norm", "count"))
    empty = norm == 0
    with np.errstate(invalid="ignore", divide="ignore"):
        stats = {"intensity": np.where(empty, np.nan, signal / norm), "count": count}
        if "sigma" in names or "std" in names:
            variance = sums[..., index["variance"]]
            stats["sigma"] = np.where(empty, np.nan, np.sqrt(variance) / norm)
            stats["std"] = np.where(empty, np.nan, np.sqrt(variance / sums[..., index["norm_sq"]]))
    out = np.stack([stats[n] for n in names], axis=-1)
    if npt_azim is not None:  # pyFAI numbers 2D bins radial-major: (radial, chi) -> (chi, radial)
        out = out.reshape((*out.shape[:-2], -1, npt_azim, len(names))).swapaxes(-3, -2)
    return out


def _chunk(block, *variance, reduce, names, npt_azim, **options):
    """`map_frames` step: a chunk of whole frames ``(..., y, x)`` -> its statistics."""
    if variance:
        options["variance"] = variance[0]
    return _finish(reduce(block, **options), names, npt_azim)


def _result(setup: _Setup, table, reduce, names, options, line, var=None) -> xr.Dataset:
    """Run `reduce` over the frames (at once for NumPy, lazily for dask) into a Dataset."""
    radial, units, long_name = UNITS[table.unit]
    bins = (radial,) if table.azimuthal is None else ("chi", radial)
    npt_azim = None if table.azimuthal is None else table.azimuthal.size
    kwargs = {"reduce": reduce, "names": names, "npt_azim": npt_azim, **options}
    frames = setup.frames
    sizes = {"_stat": len(names), radial: table.radial.size, "chi": npt_azim}
    if isinstance(frames, np.ndarray):
        extra = () if var is None else (setup._image(var, "var") if var.ndim == 2 else var,)
        values = _chunk(frames, *extra, **kwargs)
        lead = [f"dim_{k}" for k in range(frames.ndim - 2)] if frames.ndim > 3 else ["frame"]
        stats = xr.DataArray(values, dims=(*lead[: frames.ndim - 2], *bins, "_stat"))
        attrs = {}
    else:
        more = []
        if var is not None:
            more.append(var if isinstance(var, xr.DataArray) else _as_dataarray(var, frames))
        stats = map_frames(_chunk, frames, *more, dims=(*bins, "_stat"), sizes=sizes, **kwargs)
        attrs = frames.attrs
    unit = {"units": attrs["units"]} if attrs.get("units") else {}
    data = {}
    for k, name in enumerate(names):
        meta = {"long_name": _LONG_NAMES[name], **({"units": "1"} if name == "count" else unit)}
        data[name] = stats.isel(_stat=k, drop=True).assign_attrs(meta)
    coords = {radial: (radial, table.radial, {"units": units, "long_name": long_name})}
    if npt_azim is not None:
        coords["chi"] = ("chi", table.azimuthal, {"units": "deg", "long_name": "azimuthal angle χ"})
    ds = xr.Dataset(data, coords=coords)
    ds.attrs = {
        **carried(attrs),
        "signal": "intensity",
        "poni_flip": int(setup.geometry.flip),
        "history": history(attrs, line),
    }
    if setup.geometry.source:
        ds.attrs["poni"] = setup.geometry.source
    return ds


def _as_dataarray(var, frames: xr.DataArray) -> xr.DataArray:
    var = np.asarray(var)
    if var.shape == frames.shape:
        return xr.DataArray(var, dims=frames.dims)
    if var.shape == frames.shape[-2:]:
        return xr.DataArray(var, dims=PIXEL_DIMS)
    raise OptionError(
        f"{describe(frames, 'var')}: variance of shape {var.shape}, expected the frames' "
        f"{frames.shape} or their (y, x) {frames.shape[-2:]}"
    )


def _error_model(error_model, var, where: str):
    if error_model not in _ERROR_MODELS:
        raise OptionError(
            f"{where}: unknown error_model {error_model!r}, expected one of {list(_ERROR_MODELS)}"
        )
    return "variance" if var is not None else error_model


def integrate1d(
    frames,
    geometry=None,
    *,
    npt: int,
    unit: str = "2th_deg",
    radial_range=None,
    azimuth_range=None,
    mask=None,
    dummy: float | None = None,
    delta_dummy: float | None = None,
    method: str = "no",
    correct_solid_angle: bool = True,
    polarization_factor: float | None = None,
    error_model: str | None = None,
    flat=None,
    var=None,
) -> xr.Dataset:
    """Azimuthal integration to a 1D pattern per frame, as pyFAI's ``integrate1d``.

    Parameters
    ----------
    frames : DataArray or Dataset (..., y, x), or ndarray (..., y, x)
        Any leading dims (``frame``, ``scan_y, scan_x`` ...), NumPy- or
        dask-backed; a Dataset gives its signal variable.
    geometry : PONI path, Geometry, pyFAI integrator or config dict, optional
        Default: the frames' ``attrs["poni"]`` and ``attrs["poni_flip"]``.
    npt : int
        Radial bins.
    unit : {"2th_deg", "2th_rad", "q_nm^-1", "q_A^-1", "r_mm"}
        The radial coordinate: ``tth`` (deg or rad), ``q`` (nm^-1 or 1/Angstrom)
        or ``r`` (mm), valued pyFAI's bin centres.
    radial_range : (float, float), optional
        In `unit`; pixels outside are left out. Default: the pixels' extent.
    azimuth_range : (float, float), optional
        χ range in deg.
    mask : ndarray or DataArray (y, x) of bool, optional
        True = masked (pyFAI's convention).
    dummy, delta_dummy : float, optional
        Pixels whose value is `dummy` (within `delta_dummy`) are masked.
    method : {"no", "bbox"}
        Pixel splitting: none (each pixel in its centre's bin) or pyFAI's
        bounding-box splitting (``count`` is then fractional).
    correct_solid_angle : bool
        Divide by the solid angle (relative to the PONI pixel's, as pyFAI).
    polarization_factor : float, optional
        -1 .. 1 (0.99: a horizontally polarised synchrotron beam); None: no correction.
    error_model : {None, "poisson", "azimuthal"}
        ``sigma`` from Poisson statistics (σ² = max(1, s)) or from the spread
        of the pixels in each bin; None: no ``sigma``.
    flat : ndarray or DataArray (y, x), optional
        Flat field (pixel gain): the normalisation is multiplied by it.
    var : ndarray or DataArray (y, x) or like the frames, optional
        The pixels' variance (pyFAI's ``variance=``); implies ``sigma``.

    Returns
    -------
    Dataset (..., tth|q|r)
        ``intensity`` (NaN in empty bins), ``count`` and ``sigma`` (with an
        error model or `var`); the frames' attrs carried, ``history``
        appended. Lazy when the frames are.

    Raises
    ------
    OptionError
        Unknown unit, method or error model; a mask, flat or variance not of the
        frames' shape; no geometry.
    FormatError
        The image shape differs from the PONI detector's.
    """
    options = dict(locals())
    setup = _Setup(options.pop("frames"), options.pop("geometry"), "integrate1d", options)
    model = _error_model(error_model, var, setup.where)
    table = setup.table(
        npt=npt,
        unit=unit,
        radial_range=radial_range,
        azimuth_range=azimuth_range,
        method=method,
    )
    return _integrated(setup, table, model, var, "integrate1d", options)


#: integrate1d's keyword options and their defaults (integrate2d takes them too)
_OPTIONS = {
    k: p.default
    for k, p in inspect.signature(integrate1d).parameters.items()
    if p.kind is p.KEYWORD_ONLY and k != "npt"
}


def _integrated(setup, table, model, var, name, options) -> xr.Dataset:
    names = ("intensity", "count") if model is None else ("intensity", "count", "sigma")
    reduce_options = {
        "table": table.pixels,
        "norm": setup.norm,
        "error_model": model,
        "dummy": setup.dummy,
        "delta_dummy": setup.delta,
    }
    if isinstance(setup.frames, np.ndarray):  # answer one frame sooner; dask tasks fill the cores
        reduce_options["threads"] = EAGER_THREADS
    if model is None and options.get("flat") is None:  # norm and count known: signal only
        corrections = (options["correct_solid_angle"], options["polarization_factor"])
        reduce_options["known"] = known_norm(table, setup.geometry, setup.shape, *corrections)
    shown = {k: v for k, v in options.items() if k not in ("mask", "flat", "var")}
    shown.update(mask="yes" if options.get("mask") is not None else None)
    shown.update(flat="yes" if options.get("flat") is not None else None)
    shown.update(var="yes" if var is not None else None)
    return _result(setup, table, table_sums, names, reduce_options, setup.line(name, **shown), var)


def integrate2d(
    frames, geometry=None, *, npt_rad: int, npt_azim: int = 360, **options
) -> xr.Dataset:
    """Caking: intensity per (χ, radial) bin of each frame, as pyFAI's ``integrate2d``.

    Parameters
    ----------
    frames, geometry
        As `integrate1d`.
    npt_rad, npt_azim : int
        Radial and χ bins.
    **options
        `integrate1d`'s keyword options (``unit``, ``mask``, ``method`` ...).

    Returns
    -------
    Dataset (..., chi, tth|q|r)
        ``intensity``, ``count`` and ``sigma`` as `integrate1d`; ``chi`` in deg,
        pyFAI's bin centres.
    """
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise OptionError(f"integrate2d: unknown options {unknown}; expected {sorted(_OPTIONS)}")
    options = {**_OPTIONS, **options, "npt": npt_rad}
    setup = _Setup(frames, geometry, "integrate2d", options)
    model = _error_model(options["error_model"], options["var"], setup.where)
    table = setup.table(
        npt=npt_rad,
        unit=options["unit"],
        radial_range=options["radial_range"],
        azimuth_range=options["azimuth_range"],
        method=options["method"],
        npt_azim=npt_azim,
    )
    options = {"npt_rad": options.pop("npt"), "npt_azim": npt_azim, **options}
    return _integrated(setup, table, model, options["var"], "integrate2d", options)


def median1d(
    frames,
    geometry=None,
    *,
    npt: int,
    unit: str = "2th_deg",
    percentile=50,
    radial_range=None,
    mask=None,
    dummy: float | None = None,
    correct_solid_angle: bool = True,
    polarization_factor: float | None = None,
    flat=None,
) -> xr.Dataset:
    """Per-bin median (or percentile) of the normalised pixel values, as pyFAI's ``medfilt1d_ng``.

    The valid pixels of a bin are sorted by s/ω and weighted by ω; the value at
    the weighted `percentile` is the intensity (two values at an exact tie are
    averaged, so an unweighted even count gives the usual median). Without
    pixel splitting. NaN pixels are skipped; an empty bin is NaN.

    Parameters
    ----------
    frames, geometry, npt, unit, radial_range, mask, dummy, correct_solid_angle,
    polarization_factor, flat
        As `integrate1d`.
    percentile : float or (float, float)
        0 .. 100; two values: the weighted mean of the pixels between them.

    Returns
    -------
    Dataset (..., tth|q|r)
        ``intensity`` and ``count`` (valid pixels in the bin; pyFAI's ``count``
        is the number of pixels at the percentile instead).
    """
    options = dict(locals())
    setup = _Setup(options.pop("frames"), options.pop("geometry"), "median1d", options)
    table = setup.table(npt=npt, unit=unit, radial_range=radial_range)
    reduce_options = {"table": table, "norm": setup.norm, "percentile": percentile}
    reduce_options.update(dummy=setup.dummy, delta_dummy=setup.delta)
    line = setup.line(
        "median1d", npt=npt, unit=unit, percentile=percentile, radial_range=radial_range,
        correct_solid_angle=correct_solid_angle, polarization_factor=polarization_factor,
    )  # fmt: skip
    return _result(setup, table, median_sums, ("intensity", "count"), reduce_options, line)


def sigma_clip1d(
    frames,
    geometry=None,
    *,
    npt: int,
    unit: str = "2th_deg",
    thres: float = 5.0,
    max_iter: int = 5,
    error_model: str = "poisson",
    radial_range=None,
    azimuth_range=None,
    mask=None,
    dummy: float | None = None,
    delta_dummy: float | None = None,
    correct_solid_angle: bool = True,
    polarization_factor: float | None = None,
    flat=None,
    var=None,
) -> xr.Dataset:
    """Sigma-clipped mean per bin, as pyFAI's ``sigma_clip_ng`` (without pixel splitting).

    Per bin: the mean and spread of the valid pixels; pixels farther than
    ``max(thres, sqrt(2 ln(n / sqrt(2π)))) · std`` from the mean (Chauvenet's
    criterion for n pixels) are dropped; repeated until none is, at most
    `max_iter` times.

    Parameters
    ----------
    thres : float
        The clipping threshold in standard deviations (pyFAI's ``thres``).
    max_iter : int
        At most this many clipping rounds.
    error_model : {"poisson", "azimuthal"}
        The spread: Poisson (σ² = max(1, s)) or the pixels' own spread.
        pyFAI's default (no model) clips with a spread of 0; Poisson is what
        its documentation promises instead.
    frames, geometry, npt, unit, radial_range, azimuth_range, mask, dummy,
    delta_dummy, correct_solid_angle, polarization_factor, flat, var
        As `integrate1d`.

    Returns
    -------
    Dataset (..., tth|q|r)
        ``intensity`` (the clipped mean), ``sigma`` (its standard error),
        ``std`` (the kept pixels' standard deviation) and ``count`` (kept
        pixels).
    """
    options = dict(locals())
    setup = _Setup(options.pop("frames"), options.pop("geometry"), "sigma_clip1d", options)
    model = _error_model(error_model, var, setup.where)
    if model is None:
        raise OptionError(
            f'{setup.where}: sigma clipping needs an error model, "poisson" or "azimuthal"'
        )
    table = setup.table(npt=npt, unit=unit, radial_range=radial_range, azimuth_range=azimuth_range)
    reduce_options = {"table": table, "norm": setup.norm, "thres": thres, "max_iter": max_iter}
    reduce_options.update(error_model=model, dummy=setup.dummy, delta_dummy=setup.delta)
    line = setup.line(
        "sigma_clip1d", npt=npt, unit=unit, thres=thres, max_iter=max_iter,
        error_model=model, radial_range=radial_range, azimuth_range=azimuth_range,
    )  # fmt: skip
    names = ("intensity", "sigma", "std", "count")
    return _result(setup, table, clip_sums, names, reduce_options, line, var)
