"""Line-fit maps as SAFFRON's L3 FITS files: one file per line, and back.

SAFFRON (``RasterFit.write_data``) writes one FITS file per fitted line: the
primary HDU holds the peak intensity (``MEASRMNT = 'int'``), then image HDUs
for the line centre (``'wav'``), the width (``'wid'``, Gaussian sigma) and the
three errors (``'int_err'``, ``'wav_err'``, ``'wid_err'``). Every HDU carries
the map's WCS (the L2 window's WCS without its spectral axis), ``BTYPE`` /
``BUNIT``, ``OBSERVATORY``, ``INSTRUMENT``, ``WAVELENGTH`` (the line's rest
wavelength, Angstrom), ``ION`` (CHIANTI's ``o_3``), ``LINE_ID``
(``f"{wvl:08.2f}-{ion}"``) and ``WAVEUNIT``; the file is named after the L2
file with ``L2`` -> ``L2.5`` and the LINE_ID appended.

SAFFRON 0.4 (PyPI) names the extensions (``wavelength``, ``width``,
``intensity_err``, ``wavelength_err``, ``width_err``), writes ``LEVEL =
'L2.5'``, ``L2PARENT``, ``L2WINDOW``, ``FILENAME`` and copies a list of L2
keywords (`CARRIED`), and appends a ``FIT_MODEL`` table.

`write_l3` writes the same six HDUs in the same order with the same names and
keywords, then beamcat's own (ignored by SAFFRON's reader, which files every
HDU under its MEASRMNT): ``vel``/``vel_err`` (km/s), ``rad``/``rad_err`` (the
radiance in the fit's convention and units), ``chi2``, ``red_chi2`` and
``status`` (with the status's flag values and meanings). `open_l3` reads one or many such
files back into the fit result's layout: ``(line, [time,] y, x)``.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import xarray as xr
from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning
from astropy.wcs import WCS

from beamcat._util import atomic_path, provenance
from beamcat.catalog._paths import expand_source
from beamcat.catalog.fits import FITS_SUFFIXES, hdu_dask_array, open_hdus, reading_fits
from beamcat.errors import FormatError, OptionError

Source = str | os.PathLike | Iterable[str | os.PathLike]

#: MEASRMNT of each HDU -> (result variable, BTYPE, default BUNIT), in file order: SAFFRON's
#: six first, then beamcat's (written when the result has the variable)
L3_HDUS = {
    "int": ("intensity", "Spectral Radiance", "W/m2/sr/nm"),
    "wav": ("center", "Wavelength", "Angstrom"),
    "wid": ("width", "Line Width", "Angstrom"),
    "int_err": ("intensity_error", "Spectral Radiance", "W/m2/sr/nm"),
    "wav_err": ("center_error", "Wavelength", "Angstrom"),
    "wid_err": ("width_error", "Line Width", "Angstrom"),
    "vel": ("velocity", "Doppler Velocity", "km/s"),
    "vel_err": ("velocity_error", "Doppler Velocity", "km/s"),
    "rad": ("radiance", "Radiance", "W/m2/sr"),
    "rad_err": ("radiance_error", "Radiance", "W/m2/sr"),
    "chi2": ("chi2", "Chi-square", ""),
    "red_chi2": ("reduced_chi2", "Reduced chi-square", ""),
    "status": ("status", "Fit status", ""),
}
#: EXTNAME of SAFFRON 0.4's extensions (the primary HDU has none); beamcat's get their variable's
EXTNAMES = {
    "wav": "wavelength",
    "wid": "width",
    "int_err": "intensity_err",
    "wav_err": "wavelength_err",
    "wid_err": "width_err",
}
#: the HDUs SAFFRON writes (and its reader needs)
SAFFRON_HDUS = tuple(L3_HDUS)[:6]
#: keywords carried from the L2 header into every HDU (SAFFRON 0.4's list, and the dates)
CARRIED = (
    "DATE-OBS", "DATE-BEG", "DATE-END", "STUDYTYP", "STUDYDES", "STUDY", "OBS_MODE", "OBS_ID",
    "SPIOBSID", "OBS_DESC", "PURPOSE", "SOOPNAME", "SOOPTYPE", "NRASTERS", "RASTERNO",
    "STUDY_ID", "MISOSTUD", "XSTART", "XPOSURE", "FOCUSPOS", "SLIT_WID", "RADCAL", "DSUN_OBS",
    "DSUN_AU", "RSUN_ARC", "RSUN_REF", "SOLAR_B0", "SOLAR_P0", "CAR_ROT", "HGLT_OBS",
    "HGLN_OBS", "CRLT_OBS", "CRLN_OBS", "OBS_VR", "EAR_TDEL", "SUN_TIME", "DATE_EAR",
    "DATE_SUN", "CROTA",
)  # fmt: skip
_SPATIAL = ("y", "x")
_ROMAN = {"i": 1, "v": 5, "x": 10, "l": 50, "c": 100}
_DEG_TO_ARCSEC = 3600.0
#: per-HDU keywords not copied into attrs (structure, checksums, WCS)
_WCS_KEY = re.compile(r"(C(TYPE|UNIT|RVAL|DELT|RPIX|ROTA)|PC|CD|PV|PS)\d|DATEREF|MJDREF|TIMESYS")
_STRUCTURE_OR_WCS = re.compile(
    r"SIMPLE|BITPIX|NAXIS|EXTEND|XTENSION|PCOUNT|GCOUNT|CHECKSUM|DATASUM|BUNIT|BTYPE|FLAG"
    r"|WCSAXES|(C(TYPE|UNIT|RVAL|DELT|RPIX|ROTA)|PC|CD|PV|PS)\d|LONPOLE|LATPOLE|MJDREF|DATEREF"
)


def write_l3(
    result: xr.Dataset,
    folder: str | os.PathLike,
    *,
    source_header: fits.Header | Mapping | None = None,
) -> list[Path]:
    """Write a line-fit result as SAFFRON L3 files, one per line (each atomically).

    Parameters
    ----------
    result : xarray.Dataset
        `beamcat.analyses.linefit.fit_lines`'s output: ``intensity``,
        ``center``, ``width`` and their ``*_error`` over ``(line, [time,] y,
        x)``, a ``line`` coordinate and ``rest_wavelength (line)`` in Angstrom;
        ``velocity``, ``radiance``, ``chi2``, ``reduced_chi2`` and ``status``
        are written too when present. An ``ion (line)`` coordinate, if any,
        gives ION; else it comes from the line name (``"o_iii_1"`` ->
        ``"o_3"``, ``"Fe XII 192"`` -> ``"fe_12"``).
    folder : path
        Created if missing.
    source_header : astropy Header or dict, optional
        The L2 window's header (or `open_spice`'s attrs, which hold its
        keywords; `open_eis`'s lower-case ones serve too: OBSERVATORY from
        TELESCOP, INSTRUMENT, DATE-OBS); default ``result.attrs``. Its spatial WCS (axes 1, 2; and
        the time axis 4 when the maps have a ``time`` dim), the keywords in
        `CARRIED` and ``FILENAME`` (as ``L2PARENT``, and for the file names)
        are copied.

    Returns
    -------
    list of Path
        The files, in line order, named ``<L2 name with L2 -> L2.5>_<LINE_ID>.fits``
        (``beamcat_L3_<LINE_ID>.fits`` without an L2 name).

    Raises
    ------
    OptionError
        `result` lacks a ``line`` dim or one of SAFFRON's six variables, or
        its maps are not ``([time,] y, x)``.

    Examples
    --------
    >>> from beamcat.catalog.spice_l3 import open_l3, write_l3
    >>> files = write_l3(result, "l3/", source_header=l2.attrs)  # doctest: +SKIP
    >>> open_l3("l3/").intensity.sel(line="ne_viii_1").plot()  # doctest: +SKIP
    """
    folder = Path(folder)
    header = dict(result.attrs if source_header is None else source_header)
    dims = _map_dims(result)
    # one computation of every map written (a lazy fit would be redone per variable)
    result = result[[v for v, _, _ in L3_HDUS.values() if v in result]].compute()
    base = _l2_wcs_header(header, has_time="time" in dims)
    for key in CARRIED:
        value = _keyword(header, key)
        if value is not None:
            base[key] = value
    l2_name = str(header.get("FILENAME", "")).strip()
    base["LEVEL"] = "L2.5"  # SAFFRON's level for its fits
    if l2_name:
        base["L2PARENT"] = l2_name
    if "EXTNAME" in header or "window" in header:
        base["L2WINDOW"] = str(header.get("EXTNAME", header.get("window")))
    stem = l2_name.replace("L2", "L2.5")[:-5] if l2_name.lower().endswith(".fits") else ""
    observatory = str(
        _keyword(header, "OBSRVTRY") or _keyword(header, "TELESCOP") or "Solar Orbiter"
    )
    instrument = str(_keyword(header, "INSTRUME") or "SPICE")
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for index, name in enumerate(result["line"].values):
        one = result.isel(line=index)
        wavelength = float(result["rest_wavelength"].values[index])
        ion = str(one["ion"].values) if "ion" in one.coords else chianti_ion(str(name))
        line_id = f"{wavelength:08.2f}-{ion}".replace(" ", "_")
        path = folder / (f"{stem}_{line_id}.fits" if stem else f"beamcat_L3_{line_id}.fits")
        common = fits.Header(base)
        common["FILENAME"] = path.name
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", fits.verify.VerifyWarning)
            common.update(
                {
                    "OBSERVATORY": observatory,
                    "INSTRUMENT": instrument,
                    "WAVELENGTH": wavelength,
                    "ION": ion,
                    "LINE_ID": line_id,
                    "LINENAME": str(name),
                    "WAVEUNIT": "Angstrom",
                }
            )
        hdus = []
        for measurement, (variable, btype, bunit) in L3_HDUS.items():
            if variable not in one:
                continue
            array = one[variable].transpose(*dims)
            card = fits.Header(common)
            card.update(
                MEASRMNT=measurement,
                BTYPE=btype,
                BUNIT=str(array.attrs.get("units", bunit)),
            )
            if measurement == "status":
                card["FLAGVALS"] = " ".join(str(v) for v in array.attrs.get("flag_values", []))
                card["FLAGMEAN"] = str(array.attrs.get("flag_meanings", ""))
            data = np.asarray(array.values)
            data = data.astype(np.int16 if measurement == "status" else np.float32)
            if hdus:
                extname = EXTNAMES.get(measurement, variable)
                hdus.append(fits.ImageHDU(data, header=card, name=extname))
            else:
                hdus.append(fits.PrimaryHDU(data, header=card))
        with atomic_path(path) as tmp, warnings.catch_warnings():
            # SAFFRON's keywords longer than 8 characters are HIERARCH cards, as in its files
            warnings.simplefilter("ignore", fits.verify.VerifyWarning)
            fits.HDUList(hdus).writeto(tmp, checksum=True)
        written.append(path)
    return written


def open_l3(source: Source) -> xr.Dataset:
    """Read SAFFRON-layout L3 files (one per line) into a line-fit Dataset, lazily.

    Parameters
    ----------
    source : path, folder, glob or list
        One or several L3 FITS files (`write_l3`'s or SAFFRON's); a folder
        contributes its ``.fits`` files. All must have maps of one shape.
        SAFFRON's background files (primary ``MEASRMNT = 'bg'``), which it
        writes beside the line files, are left out.

    Returns
    -------
    xarray.Dataset
        One variable per HDU, named as in `fit_lines`'s result (``intensity``,
        ``center``, ``width``, their ``*_error``; beamcat's extra HDUs as
        ``velocity``, ``radiance``, ``chi2``, ``reduced_chi2``, ``status``)
        over ``(line, [time,] y, x)``, dask-backed; ``units`` from BUNIT.
        Coordinates: ``line`` (LINENAME, else LINE_ID), ``rest_wavelength``
        (WAVELENGTH, Angstrom), ``ion`` (ION), ``line_id``, and ``hpln``,
        ``hplt (y, x)`` in arcsec from the maps' WCS when they have one.
        ``attrs``: the first file's primary keywords common to all HDUs
        (DATE-OBS, SPIOBSID, OBSERVATORY, INSTRUMENT, L2PARENT ...), ``source``,
        ``format``.

    Raises
    ------
    FormatError
        A file is not an L3 file (an HDU without MEASRMNT, or no ``int``, ``wav``
        and ``wid`` HDU), or the files' map shapes differ.
    """
    files = [f for f in expand_source(source, suffixes=FITS_SUFFIXES) if _measured(f) != "bg"]
    if not files:
        raise FormatError(f"{source}: only SAFFRON background files (MEASRMNT 'bg'), no line")
    lines = [_read_one(path) for path in files]
    shapes = {tuple(one.sizes.items()) for one in lines}
    if len(shapes) != 1:
        listing = ", ".join(f"{p.name}: {dict(o.sizes)}" for p, o in zip(files, lines, strict=True))
        raise FormatError(f"L3 files of different map shapes: {listing}")
    result = xr.concat(lines, dim="line", combine_attrs="drop_conflicts")
    result.attrs.update(provenance(files if len(files) > 1 else files[0], "spice-l3"))
    for key in ("WAVELENGTH", "ION", "LINE_ID", "LINENAME", "MEASRMNT", "EXTNAME", "FILENAME"):
        result.attrs.pop(key, None)
    return result


def is_l3(path: Path) -> bool:
    """Whether a FITS file's primary header says ``MEASRMNT = 'int'`` (SAFFRON's L3)."""
    return _measured(path) == "int"


def _measured(path: Path) -> str | None:
    """The primary header's MEASRMNT, None for other files."""
    try:
        return fits.getheader(path).get("MEASRMNT")
    except (OSError, ValueError):
        return None


def chianti_ion(name: str) -> str:
    """CHIANTI's ion name (``"o_3"``) from a line name like ``"o_iii_1"`` or ``"Fe XII 192"``.

    SAFFRON derives ION the same way from its catalogue names (element, then
    the Roman numeral of the ionisation stage). Names that do not start with
    an element and a stage give ``"unknown"`` (SAFFRON's value without names).

    Examples
    --------
    >>> chianti_ion("ne_viii_1"), chianti_ion("Fe XII 192.394"), chianti_ion("fe_12_192")
    ('ne_8', 'fe_12', 'fe_12')
    >>> chianti_ion("ghost")
    'unknown'
    """
    parts = re.split(r"[_\s]+", name.strip().lower())
    if len(parts) < 2 or not parts[0].isalpha() or len(parts[0]) > 2:
        return "unknown"
    stage = parts[1]
    if stage.isdigit():
        return f"{parts[0]}_{int(stage)}"
    if not stage or set(stage) - set(_ROMAN):
        return "unknown"
    values = [_ROMAN[c] for c in stage]
    number = sum(-v if v < w else v for v, w in zip(values, values[1:] + [0], strict=True))
    return f"{parts[0]}_{number}"


# ---------------------------------------------------------------- helpers


def _keyword(header: Mapping, key: str):
    """A header keyword, also as EIS's lower-case index names it (``date_obs`` for DATE-OBS)."""
    for name in (key, key.lower(), key.lower().replace("-", "_")):
        if name in header:
            return header[name]
    return None


def _map_dims(result: xr.Dataset) -> tuple[str, ...]:
    if "line" not in result.dims or "rest_wavelength" not in result.coords:
        raise OptionError(
            "write_l3: expected a line-fit result with a 'line' dim and a 'rest_wavelength' "
            f"coordinate; got dims {dict(result.sizes)}"
        )
    missing = [L3_HDUS[m][0] for m in SAFFRON_HDUS if L3_HDUS[m][0] not in result]
    if missing:
        raise OptionError(f"write_l3: the result lacks {missing}: SAFFRON's L3 layout needs them")
    dims = tuple(d for d in result["intensity"].dims if d != "line")
    if dims not in (_SPATIAL, ("time", *_SPATIAL)):
        raise OptionError(f"write_l3: intensity maps over {dims}: expected ([time,] y, x)")
    return dims


def _l2_wcs_header(header: Mapping, *, has_time: bool) -> fits.Header:
    """The L2 WCS without the spectral axis (SAFFRON drops it too), or nothing without one."""
    if "CTYPE1" not in header:
        return fits.Header()
    card = fits.Header(
        {k: v for k, v in header.items() if _WCS_KEY.match(k) and isinstance(v, str | int | float)}
    )
    with warnings.catch_warnings():  # CROTA, VELOSYS, datfix: astropy's notes on valid files
        warnings.simplefilter("ignore", AstropyWarning)
        wcs = WCS(card)
        axes = [1, 2, 4] if has_time and wcs.naxis >= 4 else [1, 2]
        return wcs.sub(axes).to_header()


def _read_one(path: Path) -> xr.Dataset:
    hdul = open_hdus(path)
    with reading_fits(path):  # image HDUs (SAFFRON 0.4 adds a FIT_MODEL table: not a map)
        images = [
            (i, h.header)
            for i, h in enumerate(hdul)
            if isinstance(h, fits.PrimaryHDU | fits.ImageHDU)
        ]
    measurements = [h.get("MEASRMNT") for _, h in images]
    if None in measurements or not {"int", "wav", "wid"} <= set(measurements):
        raise FormatError(
            f"{path}: HDUs with MEASRMNT {measurements}: expected an L3 file with 'int', 'wav' "
            "and 'wid' (SAFFRON's layout)"
        )
    primary = images[0][1]
    ndim = int(primary["NAXIS"])
    dims = (("time", *_SPATIAL) if ndim == 3 else _SPATIAL)[-ndim:]
    variables = {}
    for (index, card), measurement in zip(images, measurements, strict=True):
        variable = L3_HDUS.get(measurement, (measurement, "", ""))[0]
        data = hdu_dask_array(path, hdul, index, chunks=-1)
        attrs = {"units": str(card.get("BUNIT", "")), "long_name": str(card.get("BTYPE", ""))}
        if measurement == "status":
            attrs["flag_values"] = np.array(str(card.get("FLAGVALS", "")).split(), np.int16)
            attrs["flag_meanings"] = str(card.get("FLAGMEAN", ""))
        variables[variable] = (("line", *dims), data[None], attrs)
    name = str(primary.get("LINENAME", primary["LINE_ID"]))
    coords = {
        "line": ("line", [name]),
        "rest_wavelength": ("line", [float(primary["WAVELENGTH"])], {"units": "Angstrom"}),
        "ion": ("line", [str(primary.get("ION", "unknown"))]),
        "line_id": ("line", [str(primary["LINE_ID"])]),
    }
    if "CTYPE1" in primary:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyWarning)
            wcs = WCS(primary)  # the time axis depends on x: not separable, keep it
        yy, xx = np.mgrid[0 : primary["NAXIS2"], 0 : primary["NAXIS1"]].astype(float)
        pixels = [xx, yy] + [np.zeros_like(xx)] * (wcs.naxis - 2)
        lon, lat = wcs.all_pix2world(*pixels, 0)[:2]
        arcsec = {"units": "arcsec"}
        coords["hpln"] = (_SPATIAL, ((lon + 180) % 360 - 180) * _DEG_TO_ARCSEC, arcsec)
        coords["hplt"] = (_SPATIAL, lat * _DEG_TO_ARCSEC, arcsec)
    attrs = {
        k: v
        for k, v in primary.items()
        if isinstance(v, str | int | float) and not _STRUCTURE_OR_WCS.match(k)
    }
    return xr.Dataset(variables, coords=coords, attrs=attrs)
