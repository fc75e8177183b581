"""Hinode EIS level-1 HDF5 (the NRL ``.data.h5`` + ``.head.h5`` pair): one window per Dataset.

The data file holds one float32 array per spectral window, ``level1/winNN``,
in the order ``(slit pixel, raster step, wavelength)``, in counts with -100
flagging missing pixels. The head file holds per window the wavelength table
(``wavelength/winNN``, Angstrom), the pre-flight radiometric calibration
(``radcal/winNN_pre``), CCD offsets and the line ID (``wininfo``), and for the
raster the per-pixel wavelength correction ``wavelength/wave_corr``, pointing
(``pointing/solar_x`` per raster step, ``solar_y`` along the slit), exposure
times and start times per raster step, and the level-0 FITS keywords (``index``).

The Dataset follows the SPICE reader's order, spectral dim first, then the
detector-like spatial dims: ``(wavelength, y, x)`` with ``y`` along the slit and
``x`` the raster step. The counts are calibrated as eispac's ``read_cube`` does
(counts times the window's pre-flight radcal) unless ``units="counts"``, with
eispac's uncertainties beside them: ``sigma = sqrt(|counts| + read_noise**2)``,
the read noise being 14.427 electrons converted to counts at each pixel's
corrected wavelength, calibrated the same way.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import dask.array as da
import h5py
import numpy as np
import xarray as xr

from beamcat._util import provenance
from beamcat.catalog._paths import expand_source
from beamcat.catalog._windows import match_window
from beamcat.catalog.hdf5 import H5Array
from beamcat.errors import FormatError, OptionError, SourceNotFoundError

Source = str | os.PathLike | Iterable[str | os.PathLike]

#: counts at or below this are EIS's missing-data flag (eispac masks ``counts <= -100``)
MISSING = -100.0
#: the unit eispac gives calibrated intensities (counts x pre-flight radcal)
CALIBRATED_UNITS = "erg / (cm2 s sr)"
#: EIS CCD read noise in electrons and electrons per eV (eispac's calc_read_noise)
READ_NOISE_ELECTRONS = 14.427
ELECTRON_EV = 3.65
#: h c in eV Angstrom, as eispac rounds it
HC_EV_ANGSTROM = 12398.5
_DATA, _HEAD = ".data.h5", ".head.h5"
_UNITS = ("calibrated", "counts")


def is_eis(path: str | os.PathLike) -> bool:
    """Whether `path` is an EIS level-1 data file (``level1/win00``) or head file (``wininfo``)."""
    try:
        with h5py.File(path, "r", locking=False) as f:
            return "level1/win00" in f or ("wininfo" in f and "wavelength" in f)
    except (OSError, RuntimeError, ValueError):
        return False


def eis_pair(source: Source) -> tuple[Path, Path]:
    """The ``(data, head)`` files of an EIS observation from either of them.

    Raises
    ------
    OptionError
        `source` is several files or not named ``*.data.h5`` / ``*.head.h5``.
    SourceNotFoundError
        The other file of the pair is missing.
    """
    files = expand_source(source, suffixes=(_DATA, _HEAD))
    names = {f.name.lower().replace(_HEAD, _DATA) for f in files}
    if len(names) != 1:
        raise OptionError(
            f"{source}: {len(files)} files of {len(names)} observations; the EIS reader "
            "opens one observation (its .data.h5 or .head.h5) at a time"
        )
    path = files[0]
    name = path.name
    if name.lower().endswith(_DATA):
        stem = name[: -len(_DATA)]
    elif name.lower().endswith(_HEAD):
        stem = name[: -len(_HEAD)]
    else:
        raise OptionError(f"{path}: expected an EIS file named <obs>.data.h5 or <obs>.head.h5")
    data, head = path.with_name(stem + _DATA), path.with_name(stem + _HEAD)
    for part, role in ((data, "data"), (head, "head")):
        if not part.is_file():
            raise SourceNotFoundError(
                f"{part}: no such file; an EIS observation needs its {role} file beside {path.name}"
            )
    return data, head


def open_eis(source: Source, *, window: int | str | float = 0, units: str = "calibrated"):
    """Open one spectral window of a Hinode EIS level-1 observation as a lazy Dataset.

    Parameters
    ----------
    source : path
        The observation's ``.data.h5`` or ``.head.h5`` file (the other one must
        lie beside it).
    window : int, str or float
        Window index (``wininfo``'s order), its line ID matched as people type
        it (``"Fe XII 192.410"``, ``"fe xii 192"``; an unambiguous prefix or
        part), its HDF5 name (``"win02"``), or, like eispac, a wavelength in
        Angstrom inside the window (``192.4``).
    units : {"calibrated", "counts"}
        ``"calibrated"`` multiplies the counts by the window's pre-flight
        radiometric calibration (``radcal/winNN_pre``), as eispac's
        ``read_cube`` does, giving ``erg / (cm2 s sr)``; ``"counts"`` keeps
        the level-1 counts.

    Returns
    -------
    xarray.Dataset
        ``intensity (wavelength, y, x)`` float32, dask-backed; pixels flagged
        missing (counts <= -100) are NaN. ``sigma (wavelength, y, x)`` float32,
        its 1-sigma uncertainty in the same units, as eispac's ``read_cube``
        computes its ``uncertainty`` (``abs_errs=True``): see `eis_sigma`;
        NaN where the intensity is. Coordinates:

        - ``wavelength (wavelength)`` Angstrom, the window's wavelength table;
        - ``wave_corr (y, x)`` Angstrom, the per-pixel correction (slit tilt and
          orbital drift): the corrected wavelength of a pixel is
          ``wavelength - wave_corr``, as in eispac;
        - ``radcal (wavelength)`` the pre-flight calibration, intensity per count;
        - ``solar_x (x)``, ``solar_y (y)`` arcsec, the header's pointing;
        - ``time (x)`` UTC start of each raster step, ``exposure (x)`` s;
        - ``slit_width (y)`` Angstrom, the instrumental broadening.

        ``attrs``: the level-0 keywords of ``index`` (lower-case names), the
        window's ``window`` (line ID), ``window_index``, ``wvl_min``/``wvl_max``,
        the pointing offsets eispac adds to reach AIA's frame (``offset_x``,
        ``offset_y`` arcsec) and the window's mean ``ccd_offset`` (pixels),
        ``signal``, ``source``, ``format``, ``calibration``.

    Raises
    ------
    OptionError
        An unknown `window` or `units` (the message lists the windows).
    FormatError
        The files are not an EIS level-1 pair, or a window's arrays disagree.

    Examples
    --------
    >>> from beamcat.catalog.eis import open_eis
    >>> ds = open_eis("eis_20210306_064444.data.h5", window="Fe XII 192")  # doctest: +SKIP
    >>> ds.intensity.sel(wavelength=192.39, method="nearest").plot()  # doctest: +SKIP
    """
    data_path, head_path = eis_pair(source)
    if units not in _UNITS:
        raise OptionError(f"{data_path}: units={units!r}: expected one of {', '.join(_UNITS)}")
    with _h5(head_path) as head:
        info = _wininfo(head, head_path)
        index = _select(window, info, head_path)
        key = f"win{index:02d}"
        meta = _read_head(head, head_path, key)
    where = f"{data_path}:level1/{key}"
    with _h5(data_path) as f:
        if f"level1/{key}" not in f:
            raise FormatError(f"{where}: no such dataset; expected one array per window")
    counts = H5Array(data_path, f"level1/{key}")
    ny, nx = meta["wave_corr"].shape
    expected = (ny, nx, len(meta["wavelength"]))
    if counts.shape != expected:
        raise FormatError(
            f"{where}: shape {counts.shape}; expected (slit pixels, raster steps, "
            f"wavelengths) = {expected} from {head_path.name}"
        )
    raw = da.from_array(counts, chunks=-1)  # (y, x, wavelength)
    wave_corr = da.from_array(meta["wave_corr"][:, :, None], chunks=(*raw.chunks[:2], 1))
    calibrated = units == "calibrated"
    scale = meta["radcal"].astype(np.float32) if calibrated else np.float32(1.0)
    unit = CALIBRATED_UNITS if calibrated else "counts"
    options = {"wavelength": meta["wavelength"], "scale": scale, "dtype": np.float32}
    cube = da.map_blocks(_calibrated, raw, wave_corr, sigma=False, **options)
    sigma = da.map_blocks(_calibrated, raw, wave_corr, sigma=True, **options)
    cube, sigma = cube.transpose(2, 0, 1), sigma.transpose(2, 0, 1)
    line = info[index]
    attrs = {**meta["index"]}
    attrs.update(
        provenance(data_path, "eis"),
        signal="intensity",
        window=line["line_id"],
        window_index=index,
        wvl_min=line["wvl_min"],
        wvl_max=line["wvl_max"],
        offset_x=meta["offset_x"],
        offset_y=meta["offset_y"],
        ccd_offset=float(np.mean(meta["ccd_offset"])),
        calibration="pre-flight radcal" if units == "calibrated" else "none (counts)",
        missing_flag=MISSING,
    )
    return xr.Dataset(
        {
            "intensity": (
                ("wavelength", "y", "x"),
                cube,
                {"units": unit, "long_name": f"EIS {line['line_id']} intensity"},
            ),
            "sigma": (
                ("wavelength", "y", "x"),
                sigma,
                {"units": unit, "long_name": "1-sigma uncertainty (eispac: uncertainty)"},
            ),
        },
        coords={
            "wavelength": ("wavelength", meta["wavelength"], {"units": "Angstrom"}),
            "wave_corr": (
                ("y", "x"),
                meta["wave_corr"],
                {"units": "Angstrom", "long_name": "subtract from wavelength"},
            ),
            "radcal": (
                "wavelength",
                meta["radcal"],
                {"units": f"{CALIBRATED_UNITS} / counts", "long_name": "pre-flight radcal"},
            ),
            "solar_x": ("x", meta["solar_x"], {"units": "arcsec"}),
            "solar_y": ("y", meta["solar_y"], {"units": "arcsec"}),
            "time": ("x", meta["time"], {"long_name": "raster step start (UTC)"}),
            "exposure": ("x", meta["exposure"], {"units": "s"}),
            "slit_width": ("y", meta["slit_width"], {"units": "Angstrom"}),
        },
        attrs=attrs,
    )


def eis_sigma(counts, corrected_wavelength):
    """The 1-sigma uncertainty of EIS counts as eispac gives it: Poisson and read noise.

    ``sqrt(|counts| + read_noise**2)`` with ``read_noise = 14.427 e- /
    (12398.5 / lambda / 3.65 e-/photon)`` counts at the corrected wavelength
    ``lambda`` (Angstrom), as eispac's ``read_cube`` (``abs_errs=True``) and
    ``calc_read_noise``. The absolute value keeps dark-subtracted negative
    counts usable, as eispac does.

    Parameters
    ----------
    counts : array
        Counts (any shape; NaN stays NaN), NumPy or dask.
    corrected_wavelength : array
        Angstrom, broadcastable against `counts`.

    Returns
    -------
    array
        Counts, float32 when `counts` is.

    Examples
    --------
    >>> import numpy as np
    >>> from beamcat.catalog.eis import eis_sigma
    >>> round(float(eis_sigma(np.float32(100.0), 195.0)), 3)
    10.034
    """
    read_noise = READ_NOISE_ELECTRONS * ELECTRON_EV * corrected_wavelength / HC_EV_ANGSTROM
    noise = np.sqrt(abs(counts) + read_noise**2)
    dtype = getattr(counts, "dtype", np.dtype(np.float64))
    return noise.astype(dtype) if dtype == np.float32 else noise


def _calibrated(counts, wave_corr, *, wavelength, scale, sigma: bool):
    """One block (y, x, wavelength) of intensities or their sigma, NaN where flagged missing."""
    counts = np.where(counts <= MISSING, np.float32(np.nan), counts)
    if sigma:
        counts = eis_sigma(counts, wavelength - wave_corr)
    return (counts * scale).astype(np.float32, copy=False)


def eis_windows(source: Source) -> list[str]:
    """The line IDs of an EIS observation's windows, in window order."""
    _, head_path = eis_pair(source)
    with _h5(head_path) as head:
        return [w["line_id"] for w in _wininfo(head, head_path)]


# ---------------------------------------------------------------- head file


def _h5(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r", locking=False)
    except OSError as err:
        raise FormatError(f"{path}: not a readable HDF5 file ({err})") from None


def _wininfo(head: h5py.File, path: Path) -> list[dict]:
    """One dict per window: line_id, wvl_min, wvl_max (Angstrom)."""
    group = head.get("wininfo")
    if not isinstance(group, h5py.Group):
        raise FormatError(f"{path}: no 'wininfo' group; expected an EIS level-1 head file")
    names = sorted(k for k in group if k.startswith("win"))
    windows = []
    for name in names:
        win = group[name]
        try:
            windows.append(
                {
                    "line_id": _text(win["line_id"][()]),
                    "wvl_min": float(np.ravel(win["wvl_min"][()])[0]),
                    "wvl_max": float(np.ravel(win["wvl_max"][()])[0]),
                }
            )
        except KeyError as err:
            raise FormatError(f"{path}: wininfo/{name} lacks {err}") from None
    if not windows:
        raise FormatError(f"{path}: wininfo holds no window")
    return windows


def _select(window, info: list[dict], path: Path) -> int:
    """A window index from an index, a name or (a float) a wavelength inside a window."""
    if isinstance(window, float):
        inside = [i for i, w in enumerate(info) if w["wvl_min"] <= window <= w["wvl_max"]]
        if len(inside) == 1:
            return inside[0]
        ranges = ", ".join(
            f"{i}: {w['line_id']!r} {w['wvl_min']:.2f}-{w['wvl_max']:.2f} A"
            for i, w in enumerate(info)
        )
        raise OptionError(
            f"{path}: window={window} A lies in {len(inside)} windows; expected one of: {ranges}"
        )
    aliases = [(f"win{i:02d}",) for i in range(len(info))]
    return match_window(window, [w["line_id"] for w in info], where=str(path), aliases=aliases)


def _read_head(head: h5py.File, path: Path, key: str) -> dict:
    def read(name: str) -> np.ndarray:
        node = head.get(name)
        if not isinstance(node, h5py.Dataset):
            raise FormatError(f"{path}: no dataset {name!r}; expected an EIS level-1 head file")
        return node[()]

    meta = {
        "wavelength": read(f"wavelength/{key}").astype(np.float64),
        "radcal": read(f"radcal/{key}_pre").astype(np.float64),
        "ccd_offset": read(f"ccd_offsets/{key}").astype(np.float64),
        "wave_corr": read("wavelength/wave_corr").astype(np.float64),
        "solar_x": read("pointing/solar_x").astype(np.float64),
        "solar_y": read("pointing/solar_y").astype(np.float64),
        "exposure": read("exposure_times/duration").astype(np.float64),
        "slit_width": read("instrumental_broadening/slit_width").astype(np.float64),
        "offset_x": float(np.ravel(read("pointing/offset_x"))[0]),
        "offset_y": float(np.ravel(read("pointing/offset_y"))[0]),
        "index": _index_attrs(head.get("index")),
    }
    stamps = [_text(t) for t in np.ravel(read("times/date_obs"))]
    try:
        meta["time"] = np.array(stamps, dtype="datetime64[ns]")
    except ValueError:
        raise FormatError(f"{path}: times/date_obs {stamps[:2]}...: expected ISO 8601") from None
    if meta["wave_corr"].ndim != 2:
        raise FormatError(
            f"{path}: wavelength/wave_corr has shape {meta['wave_corr'].shape}; expected "
            "(slit pixels, raster steps): several exposure sets per step are not supported"
        )
    ny, nx = meta["wave_corr"].shape
    lengths = {
        "pointing/solar_x": (meta["solar_x"], nx),
        "pointing/solar_y": (meta["solar_y"], ny),
        "exposure_times/duration": (meta["exposure"], nx),
        "times/date_obs": (meta["time"], nx),
        "instrumental_broadening/slit_width": (meta["slit_width"], ny),
        f"radcal/{key}_pre": (meta["radcal"], len(meta["wavelength"])),
    }
    for name, (values, n) in lengths.items():
        if values.shape != (n,):
            raise FormatError(
                f"{path}: {name} has shape {values.shape}; expected ({n},) to match "
                f"wavelength/wave_corr {meta['wave_corr'].shape} and wavelength/{key}"
            )
    return meta


def _index_attrs(group) -> dict:
    """Scalar level-0 keywords of ``index`` as attrs (str, int, float)."""
    attrs: dict = {}
    if not isinstance(group, h5py.Group):
        return attrs
    for name, node in group.items():
        if not isinstance(node, h5py.Dataset) or node.size != 1:
            continue
        value = np.ravel(node[()])[0]
        if isinstance(value, bytes | np.bytes_):
            attrs[name] = _text(value).rstrip("&").strip()
        elif isinstance(value, np.integer | np.floating):
            attrs[name] = value.item()
    return attrs


def _text(value) -> str:
    value = np.ravel(value)[0] if isinstance(value, np.ndarray) else value
    return value.decode("utf-8", "replace").strip() if isinstance(value, bytes) else str(value)
