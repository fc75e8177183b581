"""Solar Orbiter SPICE L2 FITS: one spectral window as a Dataset, all windows as a DataTree.

A SPICE L2 file holds one float32 IMAGE HDU per spectral window (the primary
HDU is the first window), each 4-D: numpy order ``(time, wavelength, y, x)``
= (exposures, dispersion, along the slit, slit positions). Extensions that are
not windows (the ``VARIABLE_KEYWORDS`` binary table, ``WCSDVARR`` distortion
arrays) are skipped. Coordinates come from each window's WCS through astropy.

`write_spice_l2` writes files of the same shape, for synthetic data and tests.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning
from astropy.wcs import WCS

from beamcat._util import atomic_path, provenance
from beamcat.catalog._paths import expand_source
from beamcat.catalog._windows import match_window
from beamcat.catalog.fits import (
    FITS_SUFFIXES,
    hdu_dask_array,
    hdu_shape,
    header_attrs,
    open_hdus,
    reading_fits,
)
from beamcat.errors import BeamcatWarning, FormatError, OptionError

Source = str | os.PathLike | Iterable[str | os.PathLike]

_M_TO_ANGSTROM = 1e10
_DEG_TO_ARCSEC = 3600.0
_TIME_CHARS = 23  # '2020-06-02T08:17:33.136'


def open_spice(source: Source, *, window: int | str = 0) -> xr.Dataset:
    """Open one spectral window of a SPICE L2 file as a lazy Dataset.

    Parameters
    ----------
    source : path
        One SPICE L2 FITS file.
    window : int or str
        Window index (counting spectral windows only) or its EXTNAME: exactly,
        ignoring case, or an unambiguous prefix or part of it
        (``"FLT02_Two Window_OB_ID_253_"``, ``"window0"``, ``"ID_254"``).

    Returns
    -------
    xarray.Dataset
        ``radiance (time, wavelength, y, x)`` float32, dask-backed (the data
        stay on disk until computed; NaN kept), ``units`` from BUNIT.
        Coordinates from the window's WCS:

        - ``wavelength (wavelength)`` in Angstrom, the spectral axis of the
          WCS (CRVAL3 + CDELT3 * (i + 1 - CRPIX3) for a linear axis);
        - ``hpln, hplt (y, x)`` helioprojective longitude/latitude in arcsec,
          PC (roll) terms applied, at the window's middle wavelength pixel;
        - ``slit_time (time, x)`` UTC mid-exposure time of each slit position:
          in a raster every slit position is a separate exposure, and the WCS
          gives it its own time (PC4_1);
        - ``time (time)`` UTC, the mean of ``slit_time`` over ``x`` (the raster's
          midpoint; for sit-and-stare, with one slit position, its exposure).

        ``attrs``: the window's header keywords (str/int/float/bool), ``window``
        (EXTNAME), ``signal``, ``source``, ``format``, ``wavelength_source``.

        A header-only window (NAXIS = 0, as in files with the data stripped)
        has no pixels: ``radiance`` is empty with sizes ``time = y = x = 0``,
        and ``wavelength`` spans the read-out range [WAVEMIN, WAVEMAX] on the
        WCS pixel grid; a `BeamcatWarning` says so.

    Raises
    ------
    FormatError
        The file is not FITS, has no spectral window, or a window is not 4-D.
    OptionError
        `window` names no window of the file, or `source` is several files.

    Examples
    --------
    >>> from beamcat.catalog.spice import open_spice
    >>> ds = open_spice("solo_L2_spice-n-ras_20220402T111537_V06_100664002-000.fits",
    ...                 window="Ne VIII 770")  # doctest: +SKIP
    >>> ds.radiance.sel(wavelength=770.4, method="nearest").isel(time=0).plot()  # doctest: +SKIP
    """
    path = _single_file(source)
    with open_hdus(path) as hdul, reading_fits(path):
        windows = _window_indices(hdul, path)
        names = list(windows)
        index = windows[names[match_window(window, names, where=str(path))]]
        return _window_dataset(path, hdul, index, source)


def open_spice_tree(source: Source) -> xr.DataTree:
    """Open every spectral window of a SPICE L2 file; one DataTree node per window.

    Node names are the windows' EXTNAMEs ('/' replaced by '_'); each node is
    what `open_spice` gives for that window. The root holds ``source``,
    ``format`` and ``windows`` (the EXTNAMEs in file order).

    Examples
    --------
    >>> from beamcat.catalog.spice import open_spice_tree
    >>> tree = open_spice_tree("solo_L2_spice-n-exp_20240101T213346_V02_234881027-000.fits")
    ... # doctest: +SKIP
    >>> for name, node in tree.children.items():  # doctest: +SKIP
    ...     print(name, node.wavelength.values[[0, -1]])
    """
    path = _single_file(source)
    with open_hdus(path) as hdul, reading_fits(path):
        windows = _window_indices(hdul, path)
        nodes = {
            name.replace("/", "_"): _window_dataset(path, hdul, index, source)
            for name, index in windows.items()
        }
    root = xr.Dataset(attrs={**provenance(source, "spice"), "windows": list(windows)})
    return xr.DataTree.from_dict({"/": root, **nodes})


def _single_file(source: Source) -> Path:
    files = expand_source(source, suffixes=FITS_SUFFIXES)
    if len(files) != 1:
        raise OptionError(
            f"{source}: {len(files)} files; a SPICE L2 reader opens one file at a time"
        )
    return files[0]


def _window_indices(hdul: fits.HDUList, path: Path) -> dict[str, int]:
    """EXTNAME -> HDU index of every spectral window (image HDU with a WAVE third axis)."""
    windows = {}
    for index, hdu in enumerate(hdul):
        is_image = isinstance(hdu, fits.PrimaryHDU | fits.ImageHDU)
        if is_image and str(hdu.header.get("CTYPE3", "")).startswith("WAVE"):
            windows[str(hdu.header.get("EXTNAME", f"HDU{index}"))] = index
    if not windows:
        raise FormatError(
            f"{path}: no SPICE spectral window: expected image HDUs with CTYPE3 = 'WAVE'"
        )
    return windows


def _window_dataset(path: Path, hdul: fits.HDUList, index: int, source: Source) -> xr.Dataset:
    header = hdul[index].header
    name = str(header.get("EXTNAME", f"HDU{index}"))
    where = f"{path} [HDU {index} {name!r}]"
    with warnings.catch_warnings():  # CROTA, VELOSYS, datfix: astropy's notes on valid files
        warnings.simplefilter("ignore", AstropyWarning)
        wcs = WCS(header)
    if wcs.naxis != 4:
        raise FormatError(f"{where}: WCS has {wcs.naxis} axes: expected 4 (x, y, wavelength, time)")
    shape = hdu_shape(header)
    if shape == ():
        first, n_wave = _readout_wavelength_pixels(header, wcs, where)
        nt = ny = nx = 0
        radiance = np.empty((0, n_wave, 0, 0), np.float32)
        wavelength_source = "WAVEMIN/WAVEMAX on the WCS grid (header-only window, NAXIS=0)"
        warnings.warn(
            f"{where}: header-only window (NAXIS=0): radiance is empty; "
            "wavelengths span WAVEMIN..WAVEMAX",
            BeamcatWarning,
            stacklevel=3,
        )
    elif len(shape) == 4:
        nt, n_wave, ny, nx = shape
        first = 0
        radiance = hdu_dask_array(path, hdul, index, chunks=("auto", -1, -1, -1))
        wavelength_source = "WCS over NAXIS3 pixels"
    else:
        raise FormatError(f"{where}: data shape {shape}: expected 4-D (time, wavelength, y, x)")

    wave_pixels = first + np.arange(n_wave, dtype=float)
    wavelength = _wavelength_m(wcs, wave_pixels) * _M_TO_ANGSTROM
    mid_wave = first + (n_wave - 1) / 2
    yy, xx = np.mgrid[0:ny, 0:nx].astype(float)
    lon, lat = wcs.all_pix2world(xx, yy, np.full_like(xx, mid_wave), np.zeros_like(xx), 0)[:2]
    tt, xt = np.mgrid[0:nt, 0:nx].astype(float)
    middle_y = np.full_like(xt, (ny - 1) / 2)
    seconds = wcs.all_pix2world(xt, middle_y, np.full_like(xt, mid_wave), tt, 0)[3]
    reference = _reference_time(wcs, header, where)
    mean_seconds = seconds.mean(axis=1) if nx else np.zeros(nt)

    attrs = header_attrs(header)
    attrs.update(
        provenance(source, "spice"),
        signal="radiance",
        window=name,
        wavelength_source=wavelength_source,
    )
    units = {"units": str(header.get("BUNIT", "")).strip()}
    if "BTYPE" in header:
        units["long_name"] = str(header["BTYPE"])
    return xr.Dataset(
        {"radiance": (("time", "wavelength", "y", "x"), radiance, units)},
        coords={
            "wavelength": ("wavelength", wavelength, {"units": "Angstrom"}),
            "time": ("time", reference + _as_timedelta(mean_seconds)),
            "slit_time": (("time", "x"), reference + _as_timedelta(seconds)),
            "hpln": (("y", "x"), _wrap_degrees(lon) * _DEG_TO_ARCSEC, {"units": "arcsec"}),
            "hplt": (("y", "x"), lat * _DEG_TO_ARCSEC, {"units": "arcsec"}),
        },
        attrs=attrs,
    )


def _readout_wavelength_pixels(header: fits.Header, wcs: WCS, where: str) -> tuple[float, int]:
    """First pixel (0-based, on the WCS grid) and count of bins covering WAVEMIN..WAVEMAX.

    WAVEMIN/WAVEMAX (nm) are the outer edges of the read-out pixels. Some early
    files (2020, V01) centre CRPIX3 on fewer pixels than that range holds, so the
    first bin need not be WCS pixel 0.
    """
    try:
        edges_nm = float(header["WAVEMIN"]), float(header["WAVEMAX"])
    except KeyError:
        raise FormatError(
            f"{where}: header-only window without WAVEMIN/WAVEMAX: its wavelengths are unknown"
        ) from None
    at_0, at_1 = _wavelength_m(wcs, np.array([0.0, 1.0]))
    lo, hi = (np.array(edges_nm) * 1e-9 - at_0) / (at_1 - at_0)  # the WAVE axis is linear
    first = round(min(lo, hi) + 0.5)
    return float(first), round(abs(hi - lo))


def _wavelength_m(wcs: WCS, pixels: np.ndarray) -> np.ndarray:
    """Wavelengths (m) of 0-based spectral pixels at x = y = t = 0.

    The full WCS is used, not its spectral sub-WCS: dumbbell windows couple the
    wavelength pixel into HPLN (PC1_3), which wcslib refuses to split off.
    """
    zeros = np.zeros_like(pixels)
    return wcs.all_pix2world(zeros, zeros, pixels, zeros, 0)[2]


def _reference_time(wcs: WCS, header: fits.Header, where: str) -> np.datetime64:
    """Zero point of the time axis: DATEREF (astropy/wcslib), else DATE-BEG or DATE-OBS."""
    text = wcs.wcs.dateref or header.get("DATE-BEG") or header.get("DATE-OBS")
    if not text:
        raise FormatError(f"{where}: no DATEREF, DATE-BEG or DATE-OBS: the times are unknown")
    try:
        return pd.Timestamp(text).to_datetime64().astype("datetime64[ns]")
    except ValueError:
        raise FormatError(f"{where}: DATEREF {text!r}: expected an ISO date-time") from None


def _as_timedelta(seconds: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(seconds) * 1e9).astype("timedelta64[ns]")


def _wrap_degrees(angle: np.ndarray) -> np.ndarray:
    """Longitudes in (-180, 180] (wcslib returns them in [0, 360))."""
    return -((-np.asarray(angle) + 180.0) % 360.0 - 180.0)


def write_spice_l2(
    path: str | os.PathLike,
    windows: Sequence[Mapping],
    *,
    date_obs: str = "2024-01-01T00:00:00.000",
    exposure: float = 60.0,
    raster_step: float = 4.0,
    slit_pixel: float = 1.098,
    pointing: tuple[float, float] = (0.0, 0.0),
    crota: float = 0.0,
    primary: Mapping | None = None,
) -> Path:
    """Write spectral windows as a SPICE-L2-shaped FITS file (atomically).

    The layout follows real L2 files: one float32 IMAGE HDU per window (the
    first is the primary HDU) with EXTNAME, the helioprojective/wavelength/time
    WCS (CTYPE HPLN-TAN, HPLT-TAN, WAVE, UTC; CUNIT3 nm), WAVEMIN/WAVEMAX,
    DATE-OBS, LEVEL 'L2', INSTRUME 'SPICE', OBSRVTRY 'Solar Orbiter', BUNIT,
    NWIN, then a ``VARIABLE_KEYWORDS`` binary table with the acquisition start
    time (TIMAQUTC) of every exposure.

    Timing model: exposures follow each other without gaps, slit position by
    slit position (x = 0 first, as a left-to-right raster), then time step by
    time step; the WCS gives each exposure's midpoint.

    Parameters
    ----------
    path : path
        File to write (replaced if it exists).
    windows : sequence of dict
        One dict per window with keys

        - ``name`` : str, the EXTNAME;
        - ``data`` : array ``(time, wavelength, y, x)``, written as float32
          (NaN kept); all windows share the ``time`` and ``x`` sizes;
        - ``wavelength_start`` : float, nm, centre of the first wavelength pixel;
        - ``wavelength_step`` : float, nm per pixel;
        - ``bunit`` : str, optional, default ``"W/m2/sr/nm"``;
        - ``detector`` : str, optional, ``"SW"`` below 90 nm else ``"LW"``.
    date_obs : str
        UTC start of the first exposure (DATE-OBS = DATE-BEG = DATEREF).
    exposure : float
        Exposure time of one slit position in s (XPOSURE).
    raster_step, slit_pixel : float
        Arcsec per slit position (CDELT1) and per pixel along the slit (CDELT2).
    pointing : (float, float)
        Helioprojective (longitude, latitude) of the field centre in arcsec.
    crota : float
        Spacecraft roll in degrees (CROTA, written as the PC matrix).
    primary : dict, optional
        Extra study-level keywords (e.g. ``{"STUDY": ..., "SPIOBSID": ...}``)
        written in every window header: a SPICE file has no separate primary
        header, its study keywords repeat in each window.

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    OptionError
        A window lacks a key, its data is not 4-D, names repeat, or windows
        disagree on the number of exposures or slit positions.

    Examples
    --------
    >>> import numpy as np
    >>> from beamcat.catalog.spice import write_spice_l2
    >>> data = np.ones((1, 40, 64, 20), np.float32)
    >>> write_spice_l2("synthetic.fits", [{"name": "Ne VIII 770", "data": data,
    ...     "wavelength_start": 76.8, "wavelength_step": 0.0095}])  # doctest: +SKIP
    """
    path = Path(path)
    arrays = _check_windows(windows)
    nt, _, _, nx = arrays[0].shape
    start = pd.Timestamp(date_obs)
    # midpoint of exposure (t, x) is (t * nx + x + 1/2) * exposure after DATE-OBS
    acquired = start + pd.to_timedelta(np.arange(nt * nx) * exposure, unit="s")
    study = {
        "STUDYTYP": "Raster" if nx > 1 else "Sit-and-stare" if nt > 1 else "Single Exposure",
        "XPOSURE": float(exposure),
        "NWIN": len(arrays),
        "TIMESYS": "UTC",
        "DATEREF": _iso(start),
        "DATE-BEG": _iso(start),
        "DATE-OBS": _iso(start),
        "DATE-END": _iso(start + pd.Timedelta(seconds=nt * nx * exposure)),
        "LEVEL": "L2",
        "CREATOR": "beamcat",
        "OBSRVTRY": "Solar Orbiter",
        "INSTRUME": "SPICE",
        "CROTA": float(crota),
        **(primary or {}),
    }
    hdus = []
    for number, (window, data) in enumerate(zip(windows, arrays, strict=True)):
        header = fits.Header({"EXTNAME": window["name"], "FILENAME": path.name})
        header.update(study)
        header.update(_window_keywords(window, data, number))
        header.update(
            _wcs_keywords(data.shape, window, exposure, raster_step, slit_pixel, pointing, crota)
        )
        header["VAR_KEYS"] = "VARIABLE_KEYWORDS;TIMAQUTC"
        kind = fits.PrimaryHDU if number == 0 else fits.ImageHDU
        hdus.append(kind(data, header=header))
    times = np.array([_iso(t) for t in acquired]).reshape(1, nt, 1, 1, nx)
    column = fits.Column(
        name="TIMAQUTC",
        format=f"{_TIME_CHARS * nt * nx}A",
        dim=f"({_TIME_CHARS},{nx},1,1,{nt})",
        array=times,
    )
    table = fits.BinTableHDU.from_columns([column], name="VARIABLE_KEYWORDS")
    with atomic_path(path) as tmp:
        fits.HDUList([*hdus, table]).writeto(tmp, checksum=True)
    return path


def _check_windows(windows: Sequence[Mapping]) -> list[np.ndarray]:
    if not windows:
        raise OptionError("write_spice_l2: no windows: expected at least one")
    arrays, names = [], set()
    for number, window in enumerate(windows):
        missing = {"name", "data", "wavelength_start", "wavelength_step"} - set(window)
        if missing:
            raise OptionError(f"window {number}: missing key(s) {sorted(missing)}")
        if window["name"] in names:
            raise OptionError(f"window {number}: name {window['name']!r} used twice")
        names.add(window["name"])
        data = np.asarray(window["data"], dtype=np.float32)
        if data.ndim != 4:
            raise OptionError(
                f"window {window['name']!r}: data shape {data.shape}: "
                "expected 4-D (time, wavelength, y, x)"
            )
        if arrays and (data.shape[0], data.shape[3]) != (arrays[0].shape[0], arrays[0].shape[3]):
            raise OptionError(
                f"window {window['name']!r}: {data.shape[0]} exposures x {data.shape[3]} slit "
                f"positions, expected {arrays[0].shape[0]} x {arrays[0].shape[3]} like window 0"
            )
        arrays.append(data)
    return arrays


def _window_keywords(window: Mapping, data: np.ndarray, number: int) -> dict:
    start, step = float(window["wavelength_start"]), float(window["wavelength_step"])
    n_wave = data.shape[1]
    detector = window.get("detector", "SW" if start < 90 else "LW")
    return {
        "DETECTOR": detector,
        "TELESCOP": f"SOLO/SPICE/{detector}",
        "WINNO": number,
        "OBS_HDU": 1,
        "WAVEUNIT": -9,
        "WAVEMIN": start - step / 2,
        "WAVEMAX": start + (n_wave - 0.5) * step,
        "WINWIDTH": n_wave * step,
        "BTYPE": "Spectral Radiance",
        "BUNIT": window.get("bunit", "W/m2/sr/nm"),
    }


def _wcs_keywords(shape, window, exposure, raster_step, slit_pixel, pointing, crota) -> dict:
    _, n_wave, ny, nx = shape
    roll = np.deg2rad(crota)
    crpix1, crpix3 = (nx + 1) / 2, (n_wave + 1) / 2
    step = float(window["wavelength_step"])
    keywords = {
        "WCSNAME": "Helioprojective-cartesian",
        "CTYPE1": "HPLN-TAN",
        "CUNIT1": "arcsec",
        "CRVAL1": float(pointing[0]),
        "CDELT1": float(raster_step),
        "CRPIX1": crpix1,
        "PC1_1": np.cos(roll),
        "PC1_2": -np.sin(roll) * slit_pixel / raster_step,
        "CTYPE2": "HPLT-TAN",
        "CUNIT2": "arcsec",
        "CRVAL2": float(pointing[1]),
        "CDELT2": float(slit_pixel),
        "CRPIX2": (ny + 1) / 2,
        "PC2_1": np.sin(roll) * raster_step / slit_pixel,
        "PC2_2": np.cos(roll),
        "CTYPE3": "WAVE",
        "CUNIT3": "nm",
        "CRVAL3": float(window["wavelength_start"]) + (crpix3 - 1) * step,
        "CDELT3": step,
        "CRPIX3": crpix3,
        "CTYPE4": "UTC",
        "CUNIT4": "s",
        # time of (x pixel CRPIX1, first exposure); one time step spans all nx positions
        "CRVAL4": (crpix1 - 0.5) * exposure,
        "CDELT4": nx * exposure,
        "CRPIX4": 1.0,
    }
    if nx > 1:
        keywords["PC4_1"] = 1 / nx
    return {k: float(v) if isinstance(v, np.floating) else v for k, v in keywords.items()}


def _iso(time: pd.Timestamp) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.%f")[:_TIME_CHARS]
