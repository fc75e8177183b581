"""Preparation of EUV spectral rasters before line fitting, in SAFFRON's order.

SAFFRON (slimguat/SAFFRON @90de426, MIT; ``fit_functions/fit_raster.py``)
prepares a window as preclean -> sigma -> despike -> convolve -> denoise. Each
step here is a lazy function on DataArrays with a ``wavelength`` dim and two
spatial dims (``("y", "x")`` by default; any others, e.g. ``time``, are looped
over): dask in, dask out, chunked over the spatial dims, neighbours through
`dask.array.map_overlap` where a filter needs them; `prepare` chains them.

- `preclean`: values above `high` or below `low` (SAFFRON: 490 and -10, for
  SPICE radiances in W/m2/sr/nm) become NaN.
- `spice_sigma`: the SPICE noise model, ``sospice.spice_error(...)["Total"]``
  called on each chunk with the window's header (dark current, background,
  read and shot noise from RADCAL, XPOSURE, NBIN2/NBIN3 and the detector of
  (WAVEMIN + WAVEMAX)/2). When sospice gives no noise at all (a window
  outside both detectors' ranges: no gain) sigma is 1, as SAFFRON does, with a
  `BeamcatWarning` and a note in ``attrs["noise_model"]``.
- `despike`: SAFFRON's median sigma clip (`_spectral_filters.sigma_clip_block`);
  NaNs are filled with the mean spectrum for the filter (SAFFRON), and NaN again
  afterwards (SAFFRON keeps the filled values, making up data where there were
  none). Returns the cleaned radiance and a boolean ``spikes`` mask.
- `convolve`: box average over (y, x) of the finite samples; ``error="mean"``
  gives the error of that mean, sqrt(Σσ²)/N. SAFFRON's ``sqrt(box(σ²))`` =
  sqrt(Σσ²/N) is the typical σ of one sample in the box, not the error of their
  mean (sqrt(N) times too large for equal σ): ``error="saffron"`` gives it for
  comparison. Edges: only the pixels inside the array count (SAFFRON reflects).
- `bin_pixels`: n x m pixels summed or averaged (σ added in quadrature).
- `denoise`: SAFFRON's wavelet denoising with ``watroo`` (optional: the
  ``spice`` extra), per (wavelength, y, x) cube.

Examples
--------
>>> import dask.array as da
>>> cube = xr.DataArray(da.ones((4, 5, 6), chunks=(4, 2, 3)), dims=("wavelength", "y", "x"))
>>> spiky = cube.where((cube.x != 2) | (cube.y != 3), 50.0)  # a cosmic ray at y=3, x=2
>>> cleaned, spikes = despike(spiky)
>>> int(spikes.sum()), float(cleaned.max())
(4, 1.0)
>>> mean, sigma = convolve(cube, cube * 0.5, 3)
>>> round(float(sigma[0, 2, 2]), 4)  # 0.5 / sqrt(9)
0.1667
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence

import numpy as np
import xarray as xr

from beamcat.analyses._history import history
from beamcat.analyses._spectral_arrays import (
    block_rows,
    check_size,
    finish,
    is_dask,
    map_overlap,
    rechunked,
    signal,
    spectral_order,
    where,
    whole_along,
)
from beamcat.analyses._spectral_filters import (
    box_sum_block,
    denoise_block,
    mean_spectra,
    sigma_clip_block,
)
from beamcat.errors import BeamcatWarning, FormatError, OptionError

SPATIAL = ("y", "x")
#: SAFFRON's preparation order
STEPS = ("preclean", "sigma", "despike", "convolve", "bin", "denoise")
#: header keywords sospice.spice_error reads
SOSPICE_KEYWORDS = (
    "LEVEL",
    "BUNIT",
    "XPOSURE",
    "NBIN2",
    "NBIN3",
    "SLIT_WID",
    "WAVEMIN",
    "WAVEMAX",
    "WAVEUNIT",
    "RADCAL",
)


def preclean(radiance: xr.DataArray, *, high: float = 490.0, low: float = -10.0) -> xr.DataArray:
    """NaN where the radiance is above `high` or below `low` (SAFFRON's ``Preclean``).

    >>> preclean(xr.DataArray([-20.0, 3.0, 500.0])).values.tolist()
    [nan, 3.0, nan]
    """
    out = radiance.where((radiance >= low) & (radiance <= high))
    out.attrs = {**radiance.attrs, "history": history(radiance.attrs, _preclean_line(high, low))}
    return out


def _preclean_line(high, low):
    return f"preclean: NaN outside [{low}, {high}] (SAFFRON's Preclean)"


def spice_sigma(window: xr.Dataset, *, variable: str | None = None) -> xr.DataArray:
    """SPICE 1σ uncertainties as ``sospice.spice_error`` computes them, lazily.

    Parameters
    ----------
    window : Dataset
        One SPICE L2 window (`beamcat.catalog.spice.open_spice`): its radiance
        in W/m2/sr/nm and the header keywords in ``attrs`` (`SOSPICE_KEYWORDS`).
    variable : str, optional
        The radiance variable; default ``attrs["signal"]`` or ``"radiance"``.

    Returns
    -------
    DataArray
        Same dims, chunks and dtype as the radiance; ``attrs["noise_model"]``
        says what was computed.

    Raises
    ------
    FormatError
        No radiance data (a header-only window), a keyword sospice needs is
        missing, LEVEL is not L2, or BUNIT is not a unit.
    """
    radiance = signal(window, variable)
    header = _sospice_header(window, radiance)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        probe = _sospice_total(np.zeros(1), header=header)
    if not np.isfinite(probe).all():
        note = (
            f"1: sospice gives no noise for a window at {_mean_wavelength_nm(header):.2f} nm "
            "(outside both detectors), so sigma = 1 as SAFFRON does"
        )
        warnings.warn(f"{where(window)}: {note}", BeamcatWarning, stacklevel=2)
        sigma = xr.ones_like(radiance)
    else:
        import sospice

        note = (
            f"sospice {sospice.__version__} spice_error Total (RADCAL={header['RADCAL']}, "
            f"XPOSURE={header['XPOSURE']} s, NBIN2={header['NBIN2']}, NBIN3={header['NBIN3']})"
        )
        sigma = xr.apply_ufunc(
            functools.partial(_sospice_total, header=header),
            radiance,
            dask="parallelized",
            output_dtypes=[radiance.dtype],
        ).astype(radiance.dtype)
    sigma.attrs = {
        "units": radiance.attrs.get("units", window.attrs.get("BUNIT", "")),
        "long_name": "1-sigma uncertainty",
        "noise_model": note,
    }
    return sigma.rename("sigma")


def _sospice_total(block: np.ndarray, *, header) -> np.ndarray:
    from sospice import spice_error

    total = spice_error(data=np.array(block), header=header, verbose=False)[1]["Total"]
    return total.value.astype(block.dtype)


def _sospice_header(window: xr.Dataset, radiance: xr.DataArray):
    import astropy.units as u
    from astropy.io import fits

    attrs = window.attrs
    missing = [k for k in SOSPICE_KEYWORDS if k not in attrs]
    if missing:
        raise FormatError(
            f"{where(window)}: header keyword(s) {missing} missing; sospice's noise model "
            f"needs {list(SOSPICE_KEYWORDS)}"
        )
    if attrs["LEVEL"] != "L2":
        raise FormatError(f"{where(window)}: LEVEL {attrs['LEVEL']!r}, sospice needs 'L2'")
    try:
        with warnings.catch_warnings():  # 'W/m2/sr/nm': FITS frowns on repeated slashes
            warnings.simplefilter("ignore", u.UnitsWarning)
            unit = u.Unit(attrs["BUNIT"])
    except ValueError:
        raise FormatError(f"{where(window)}: BUNIT {attrs['BUNIT']!r} is not a unit") from None
    header = fits.Header({k: attrs[k] for k in SOSPICE_KEYWORDS})
    header["BUNIT"] = unit.to_string()
    header["NAXIS3"] = radiance.sizes["wavelength"]
    return header


def _mean_wavelength_nm(header) -> float:
    return (header["WAVEMIN"] + header["WAVEMAX"]) / 2 * 10 ** (header["WAVEUNIT"] + 9)


def despike(
    radiance: xr.DataArray,
    *,
    clip: float = 2.5,
    size: Sequence[int] = (6, 3, 3),
    iterations: int = 3,
    spatial: tuple[str, str] = SPATIAL,
) -> tuple[xr.DataArray, xr.DataArray]:
    """SAFFRON's despiking: iterated median sigma clip over (wavelength, y, x).

    Parameters
    ----------
    radiance : DataArray (..., wavelength, y, x)
        Spectra; NaN = no sample.
    clip : float
        Threshold in local standard deviations (SAFFRON: 2.5).
    size : (int, int, int)
        Filter size along (wavelength, y, x) (SAFFRON: [6, 3, 3]).
    iterations : int
        Clipping passes (SAFFRON: 3).
    spatial : (str, str)
        The spatial dims.

    Returns
    -------
    cleaned : DataArray
        Spikes replaced by the local median, NaN where the input is NaN.
    spikes : DataArray of bool
        Where a sample was replaced.

    Notes
    -----
    The NaN samples are filled with the mean spectrum (over the spatial dims,
    per other index) before filtering. Dask input is one chunk along
    ``wavelength`` and overlaps ``iterations * (size // 2)`` pixels along the
    spatial dims, so the result does not depend on the spatial chunking.
    """
    size = check_size(size, 3, "despike size")
    cube = spectral_order(radiance, spatial)
    cube = whole_along(cube, ["wavelength"])
    filled = cube.fillna(_mean_spectrum(cube, spatial))
    depth = {dim: iterations * (n // 2) for dim, n in zip(spatial, size[1:], strict=True)}
    clipped = map_overlap(
        sigma_clip_block, filled, depth, size=size, clip=float(clip), iterations=int(iterations)
    )
    valid = cube.notnull()
    spikes = ((clipped != filled) & valid).transpose(*radiance.dims)
    cleaned = clipped.astype(radiance.dtype).where(valid).transpose(*radiance.dims)
    line = f"despike: median {list(size)}, {clip} sigma, {iterations} iterations (SAFFRON)"
    cleaned.attrs = {**radiance.attrs, "history": history(radiance.attrs, line)}
    spikes.attrs = {"long_name": "spike replaced by the local median"}
    return cleaned.rename(radiance.name), spikes.rename("spikes")


def _mean_spectrum(cube: xr.DataArray, spatial) -> xr.DataArray:
    """Mean over the spatial dims of finite values, from one block per spectrum set."""
    if not is_dask(cube):
        return cube.isel({d: 0 for d in spatial}, drop=True).copy(data=mean_spectra(cube.values))
    data = cube.data.rechunk({cube.get_axis_num(d): -1 for d in spatial})
    mean = data.map_blocks(mean_spectra, drop_axis=[data.ndim - 2, data.ndim - 1], dtype=float)
    return xr.DataArray(mean, dims=cube.dims[:-2], coords={"wavelength": cube.wavelength})


def convolve(
    radiance: xr.DataArray,
    sigma: xr.DataArray,
    size: int | Sequence[int],
    *,
    error: str = "mean",
    spatial: tuple[str, str] = SPATIAL,
) -> tuple[xr.DataArray, xr.DataArray]:
    """Box average over (y, x) with its error: SAFFRON's box convolution, error corrected.

    Parameters
    ----------
    radiance, sigma : DataArray (..., wavelength, y, x)
        Values and their 1σ errors; a sample counts where both are finite.
    size : int or (int, int)
        Box size in pixels along the spatial dims (see `box_size` for SAFFRON's
        convolution levels).
    error : {"mean", "saffron"}
        ``"mean"``: the error of the box mean, sqrt(Σσ²)/N (independent
        samples). ``"saffron"``: SAFFRON's sqrt(Σσ²/N), for comparison.

    Returns
    -------
    (radiance, sigma) : DataArrays
        The box means (NaN where the input is, or the box holds no sample) and
        their errors, in the input dtype.
    """
    box = check_size(size if np.ndim(size) else (size, size), 2, "convolve size")
    if error not in ("mean", "saffron"):
        raise OptionError(f"convolve: error={error!r}, expected 'mean' or 'saffron'")
    values = spectral_order(radiance, spatial)
    errors = spectral_order(sigma, spatial)
    ok = values.notnull() & errors.notnull()
    depth = {dim: n // 2 for dim, n in zip(spatial, box, strict=True)}

    def box_sum(array):
        return map_overlap(box_sum_block, array.where(ok, 0.0), depth, box=box)

    total, variance, count = box_sum(values), box_sum(errors**2), box_sum(ok)
    mean = (total / count).where(values.notnull() & (count > 0))
    spread = np.sqrt(variance) / count if error == "mean" else np.sqrt(variance / count)
    line = f"convolve: box {list(box)} mean over {spatial}, sigma {_ERROR_TEXT[error]}"
    return finish(radiance, sigma, mean, spread.where(mean.notnull()), line)


_ERROR_TEXT = {
    "mean": "of the mean sqrt(sum sigma^2)/N",
    "saffron": "SAFFRON's sqrt(sum sigma^2/N) (not the error of the mean)",
}


def box_size(level: int, pixel_size: tuple[float, float]) -> tuple[int, int]:
    """SAFFRON's box for convolution level `level`: 1 + level pixels along the finer axis.

    `pixel_size` is (y, x) in arcsec (CDELT2, CDELT1); the coarser axis gets
    ``int(1 + level * fine / coarse)`` pixels (``saffron/utils/utils.py:convolve``).

    >>> box_size(2, (1.1, 4.0))
    (3, 1)
    """
    dy, dx = pixel_size
    if dy < dx:
        return 1 + level, int(1 + level * dy / dx)
    return int(1 + level * dx / dy), 1 + level


def bin_pixels(
    radiance: xr.DataArray,
    sigma: xr.DataArray,
    factors: int | Sequence[int],
    *,
    how: str = "mean",
    spatial: tuple[str, str] = SPATIAL,
) -> tuple[xr.DataArray, xr.DataArray]:
    """Bin n x m pixels: sum or mean of the finite samples, σ added in quadrature.

    ``how="sum"``: Σx, sqrt(Σσ²); ``how="mean"``: Σx/N, sqrt(Σσ²)/N, with N the
    samples where value and σ are finite; NaN where a bin has none. Pixels
    past the last whole bin are dropped; coordinates are averaged.
    """
    factors = check_size(factors if np.ndim(factors) else (factors, factors), 2, "bin factors")
    if how not in ("mean", "sum"):
        raise OptionError(f"bin_pixels: how={how!r}, expected 'mean' or 'sum'")
    ok = radiance.notnull() & sigma.notnull()
    window = dict(zip(spatial, factors, strict=True))

    def coarse_sum(array):
        return array.where(ok, 0.0).coarsen(window, boundary="trim", coord_func="mean").sum()

    total, variance, count = coarse_sum(radiance), coarse_sum(sigma**2), coarse_sum(ok)
    value, spread = (
        (total / count, np.sqrt(variance) / count)
        if how == "mean"
        else (
            total,
            np.sqrt(variance),
        )
    )
    value, spread = value.where(count > 0), spread.where(count > 0)
    line = f"bin: {how} of {list(factors)} pixels over {spatial}, sigma in quadrature"
    return finish(radiance, sigma, value, spread, line)


def denoise(
    radiance: xr.DataArray,
    *,
    weights: Sequence[float] = (6, 2, 1, 0, 0),
    spatial: tuple[str, str] = SPATIAL,
) -> xr.DataArray:
    """SAFFRON's wavelet denoising (``watroo.denoise``, B3-spline, Anscombe) per cube.

    Needs ``watroo`` (``pip install beamcat[spice]``). The transform is global
    over each (wavelength, y, x) cube (its noise level too), so dask input is
    made one chunk along those dims.
    """
    try:
        import watroo  # noqa: F401
    except ImportError:
        raise OptionError(
            "denoise needs watroo (SAFFRON's wavelet denoising): pip install 'beamcat[spice]'"
        ) from None
    cube = spectral_order(radiance, spatial)
    core = ["wavelength", *spatial]
    cube = whole_along(cube, core)
    out = xr.apply_ufunc(
        functools.partial(denoise_block, weights=tuple(weights)),
        cube,
        input_core_dims=[core],
        output_core_dims=[core],
        dask="parallelized",
        output_dtypes=[np.float64],
    )
    out = out.astype(radiance.dtype).transpose(*radiance.dims)
    line = f"denoise: watroo B3spline weights {list(weights)}, Anscombe (SAFFRON)"
    out.attrs = {**radiance.attrs, "history": history(radiance.attrs, line)}
    return out.rename(radiance.name)


def prepare(
    dataset: xr.Dataset,
    steps: Sequence[str] = ("preclean", "sigma", "despike"),
    *,
    variable: str | None = None,
    **options,
) -> xr.Dataset:
    """Run preparation steps on a window, lazily, in the order given; SAFFRON's is `STEPS`.

    Parameters
    ----------
    dataset : Dataset
        A window with a spectral variable (``attrs["signal"]``, else
        ``radiance``) over (..., wavelength, y, x).
    steps : sequence of str
        Any of `STEPS`, each run by `prepare_step` (see it for each step's options).
    variable : str, optional
        The spectral variable's name (kept in the output).
    **options
        `prepare_step`'s options.

    Returns
    -------
    Dataset
        The input with its spectral variable prepared, ``sigma`` (1 everywhere,
        said in ``history``, when no step gave one: SAFFRON's unweighted fit),
        ``spikes`` (False everywhere without ``"despike"``), one ``history``
        line per step.

    Raises
    ------
    OptionError
        An unknown step, or ``convolve``/``bin`` without `box`/`factors`.
    FormatError
        No spectra to prepare (see `spice_sigma` for the noise model's own).

    Examples
    --------
    >>> import numpy as np
    >>> ds = xr.Dataset({"radiance": (("wavelength", "y", "x"), np.ones((8, 4, 4)))})
    >>> out = prepare(ds, ("preclean", "despike"))
    >>> sorted(out.data_vars), out.attrs["history"].splitlines()[0]
    (['radiance', 'sigma', 'spikes'], "preclean: NaN outside [-10.0, 490.0] (SAFFRON's Preclean)")
    """
    unknown = [step for step in steps if step not in STEPS]
    if unknown:
        raise OptionError(f"prepare: unknown step(s) {unknown}; expected some of {list(STEPS)}")
    for step in ("convolve", "bin"):  # before any work
        if step in steps:
            _step_options(step, options)
    name = signal(dataset, variable).name
    dim = options.get("spatial", SPATIAL)[0]
    rows = block_rows(dataset[name], dim) if dim in dataset[name].dims else None
    if rows:  # a one-block raster cut so that the cores share every step
        cut = {v: rechunked(a, {dim: rows}) for v, a in dataset.data_vars.items() if is_dask(a)}
        dataset = dataset.assign({v: a for v, a in cut.items() if dim in a.dims})
    for step in steps:
        dataset = prepare_step(dataset, step, variable=name, **options)
    if "sigma" not in dataset.data_vars:
        line = "sigma: 1 (no noise model: unweighted)"
        dataset = dataset.assign(sigma=_unit_sigma(dataset[name]))
        dataset.attrs["history"] = history(dataset.attrs, line)
    if "spikes" not in dataset.data_vars:
        dataset = dataset.assign(spikes=xr.zeros_like(dataset[name], dtype=bool))
    return dataset.assign_attrs(signal=name)


def prepare_step(
    dataset: xr.Dataset,
    step: str,
    *,
    variable: str | None = None,
    high: float = 490.0,
    low: float = -10.0,
    clip: float = 2.5,
    size: Sequence[int] = (6, 3, 3),
    iterations: int = 3,
    box: int | Sequence[int] | None = None,
    error: str = "mean",
    factors: int | Sequence[int] | None = None,
    how: str = "mean",
    weights: Sequence[float] = (6, 2, 1, 0, 0),
    spatial: tuple[str, str] = SPATIAL,
) -> xr.Dataset:
    """One preparation step on a window, lazily; ``sigma`` and ``spikes`` carried through.

    The spectral variable is replaced, so steps chain (the ``ds.spice`` methods).
    Steps and their options: ``"preclean"`` (`high`, `low`: SAFFRON's limits
    for SPICE W/m2/sr/nm; leave the step out for other units, e.g. EIS),
    ``"sigma"`` (the dataset's own ``sigma`` variable if it has one, e.g. EIS's
    from eispac's formula, else `spice_sigma` on the window, as SAFFRON does),
    ``"despike"`` (`clip`, `size`, `iterations`: ``spikes`` becomes the union
    with any earlier flags), ``"convolve"`` (`box`, `error`), ``"bin"``
    (`factors`, `how`), ``"denoise"`` (`weights`). Convolving or binning
    carries ``sigma`` (1 when there is none yet) and flags a box or bin holding
    a spike. One ``history`` line per step.
    """
    if step not in STEPS:
        raise OptionError(f"prepare: unknown step {step!r}; expected one of {list(STEPS)}")
    name = signal(dataset, variable).name
    values = dataset[name].assign_attrs(history=dataset.attrs.get("history", ""))
    out = {}
    if step == "preclean":
        values = preclean(values, high=high, low=low)
    elif step == "sigma":
        out["sigma"], line = _noise(dataset, dataset[name])
        values.attrs["history"] = history(values.attrs, line)
    elif step == "despike":
        options = {"clip": clip, "size": size, "iterations": iterations, "spatial": spatial}
        values, spikes = despike(values, **options)
        if "spikes" in dataset.data_vars:
            spikes = spikes | dataset["spikes"]
        out["spikes"] = spikes
    elif step == "denoise":
        values = denoise(values, weights=weights, spatial=spatial)
    else:
        setting = _step_options(step, {"box": box, "factors": factors})
        sigma = dataset["sigma"] if "sigma" in dataset.data_vars else _unit_sigma(values)
        flags = dataset["spikes"].astype(float) if "spikes" in dataset.data_vars else None
        if step == "convolve":
            values, out["sigma"] = convolve(values, sigma, setting, error=error, spatial=spatial)
        else:
            values, out["sigma"] = bin_pixels(values, sigma, setting, how=how, spatial=spatial)
        if flags is not None:  # a box or bin holding a spike is flagged: the fraction > 0
            zero = xr.zeros_like(flags)
            if step == "convolve":
                flags = convolve(flags, zero, setting, spatial=spatial)[0]
            else:
                flags = bin_pixels(flags, zero, setting, spatial=spatial)[0]
            out["spikes"] = (flags > 0).transpose(*values.dims)
        dataset = dataset.drop_vars([v for v in ("sigma", "spikes") if v in dataset.data_vars])
        if step == "bin":  # new spatial sizes: what else lives on the old pixels goes
            dataset = dataset.drop_dims([d for d in spatial if d in dataset.dims])
    line_history = values.attrs.pop("history")
    result = dataset.assign({name: values, **out})
    return result.assign_attrs(signal=name, history=line_history)


def _step_options(step: str, options) -> int | Sequence[int]:
    """The box of ``convolve`` or the factors of ``bin``, which have no default."""
    key = "box" if step == "convolve" else "factors"
    if options.get(key) is None:
        hint = "pixels, or see box_size" if step == "convolve" else "pixels per bin along y, x"
        raise OptionError(f"prepare: step {step!r} needs {key}= ({hint})")
    return options[key]


def _noise(dataset: xr.Dataset, raw: xr.DataArray) -> tuple[xr.DataArray, str]:
    if "sigma" in dataset.data_vars:
        sigma = dataset["sigma"]
        return sigma, f"sigma: the dataset's own ({sigma.attrs.get('long_name', 'sigma')})"
    sigma = spice_sigma(dataset, variable=raw.name)
    return sigma, f"sigma: {sigma.attrs['noise_model']}"


def _unit_sigma(values: xr.DataArray) -> xr.DataArray:
    return xr.ones_like(values).rename("sigma").assign_attrs(long_name="1-sigma uncertainty")
