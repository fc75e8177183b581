"""Gain-map files: float32 TIFF, GSAS-II integer map, NeXus/HDF5; all written atomically.

The maps of `beamcat.analyses.gainmap.gain_map` (or any ``(y, x)`` gain, pyFAI's
``flat=`` convention: ``corrected = raw / gain``) leave beamcat three ways:

- `write_gain_tiff`: float32 TIFF ``<name>_YYYY-MM-DD.tif``, the seed
  notebook's file, holding the ``gain`` (divide raw images by it; pyFAI's and
  Dioptas' flat field) or the ``correction`` (``1 / gain``, multiply). Which one
  is written into the TIFF ImageDescription (JSON, ``"form"``), which
  `beamcat.open_dataset` gives back as ``attrs["form"]``: the seed's comment and
  README contradicted each other on its ``g_form``. Invalid pixels are NaN
  (pyFAI masks pixels whose flat is not finite; the seed wrote 0).
- `write_gsas2_map`: GSAS-II's "gain map" image, int32 TIFF of
  ``floor(correction * 1000)``: GSAS-II multiplies an image by ``map / 1000``
  (GSASIIimgGUI ``sumImg*GMimage/1000``), so it takes the correction, not the
  gain; values above 2000 (more than a 200 % correction) and invalid pixels are 0.
- `write_gain_nexus`: NeXus/HDF5 with ``gain`` (the NXdata signal),
  ``correction``, ``damaged``, ``valid`` and the NeXus ``pixel_mask`` (nonzero =
  do not use), and the provenance (options, sources, history, beamcat version)
  in an NXprocess. ``open_dataset(path, variables=NEXUS_VARIABLES)`` opens it
  all again (the signal as ``counts``).

The writers take a Dataset with ``gain`` (and optionally ``valid``,
``damaged``) or a DataArray ``(y, x)``, and never touch their input.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import h5py
import numpy as np
import tifffile
import xarray as xr

from beamcat._util import __version__, atomic_path
from beamcat.errors import OptionError

__all__ = [
    "FORMS",
    "GSAS2_MAX",
    "NEXUS_VARIABLES",
    "gain_file_name",
    "write_gain_nexus",
    "write_gain_tiff",
    "write_gsas2_map",
]

#: what a float TIFF can hold: the gain (divide by it) or its inverse (multiply)
FORMS = ("gain", "correction")
#: GSAS-II map values above this (a correction over 200 %) are written as 0, as the seed did
GSAS2_MAX = 2000
#: ``variables=`` of `beamcat.open_dataset` that opens every map of a `write_gain_nexus` file
NEXUS_VARIABLES = {
    name: f"entry/gain_map/{name}" for name in ("correction", "damaged", "valid", "pixel_mask")
}
_ATTR_TYPES = (str, int, float, np.integer, np.floating)


def _maps(gain) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, dict]:
    """(gain float64 with NaN where invalid, damaged or None, valid, attrs) of `gain`."""
    attrs: dict = {}
    damaged = None
    if isinstance(gain, xr.Dataset):
        if "gain" not in gain:
            raise OptionError(f"gain map: the Dataset has no 'gain'; variables {list(gain)}")
        attrs = dict(gain.attrs)
        damaged = np.asarray(gain["damaged"].values, bool) if "damaged" in gain else None
        valid = np.asarray(gain["valid"].values, bool) if "valid" in gain else None
        gain = gain["gain"]
    else:
        valid = None
    if isinstance(gain, xr.DataArray):
        attrs = {**gain.attrs, **attrs}
    values = np.asarray(gain, dtype=np.float64)
    if values.ndim != 2:
        raise OptionError(f"gain map: expected a (y, x) map, got shape {values.shape}")
    ok = np.isfinite(values) & (values > 0)
    if valid is not None:
        ok &= valid
    return np.where(ok, values, np.nan), damaged, ok, attrs


def gain_file_name(name: str, date: dt.date | None = None, suffix: str = ".tif") -> str:
    """``<name>_YYYY-MM-DD<suffix>`` (the seed's naming; today by default).

    Examples
    --------
    >>> gain_file_name("pilatus_gain", dt.date(2024, 3, 4))
    'pilatus_gain_2024-03-04.tif'
    """
    date = dt.date.today() if date is None else date
    return f"{name}_{date:%Y-%m-%d}{suffix}"


def _path(folder, name: str, date, suffix: str) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / gain_file_name(name, date, suffix)


def _description(form: str, attrs: dict) -> str:
    meta = {
        "beamcat": "gain map",
        "form": form,
        "use": "corrected = raw / map" if form == "gain" else "corrected = raw * map",
        "written": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "beamcat_version": __version__,
    }
    for key in ("history", "flat_range", "median_window", "polarization_factor"):
        if key in attrs:
            meta[key] = attrs[key] if isinstance(attrs[key], str) else json.dumps(attrs[key])
    return json.dumps(meta)


def _write_tiff(path: Path, values: np.ndarray, form: str, attrs: dict) -> Path:
    with atomic_path(path) as tmp:
        tifffile.imwrite(
            tmp,
            values,
            description=_description(form, attrs),
            software=f"beamcat {__version__}",
            metadata=None,
        )
    return path


def write_gain_tiff(
    gain,
    folder: str | os.PathLike,
    *,
    name: str = "gain_map",
    form: str = "gain",
    date: dt.date | None = None,
) -> Path:
    """Write a gain map as float32 TIFF ``folder/<name>_YYYY-MM-DD.tif`` (atomically).

    Parameters
    ----------
    gain : Dataset (``gain``, optionally ``valid``) or DataArray/array (y, x)
        A `beamcat.analyses.gainmap.gain_map` result, or a gain map.
    folder : path
        Created if missing; a file of the same name is replaced.
    name : str
        The file name's stem.
    form : {"gain", "correction"}
        Write the gain (divide images by it: pyFAI's and Dioptas' flat field) or
        ``1 / gain`` (multiply); said in the ImageDescription as ``"form"``.
    date : datetime.date, optional
        Date in the name; today by default.

    Returns
    -------
    Path

    Examples
    --------
    >>> path = write_gain_tiff(gm, "maps", name="pilatus", form="gain")  # doctest: +SKIP
    >>> beamcat.open_dataset(path).attrs["form"]  # doctest: +SKIP
    'gain'
    """
    if form not in FORMS:
        raise OptionError(f"form={form!r}: expected one of {', '.join(FORMS)}")
    values, _, _, attrs = _maps(gain)
    if form == "correction":
        values = 1.0 / values
    return _write_tiff(_path(folder, name, date, ".tif"), values.astype(np.float32), form, attrs)


def write_gsas2_map(
    gain,
    folder: str | os.PathLike,
    *,
    name: str = "gain_map_gsas2",
    date: dt.date | None = None,
) -> Path:
    """Write GSAS-II's integer gain map, ``floor(1000 / gain)`` as int32 TIFF (atomically).

    GSAS-II multiplies an image by ``map / 1000``, so this is the correction
    ``1 / gain`` in thousandths; values above `GSAS2_MAX` and invalid pixels are 0.

    Parameters
    ----------
    gain, folder, name, date
        As `write_gain_tiff`.

    Returns
    -------
    Path
        ``folder/<name>_YYYY-MM-DD.tif``.
    """
    values, _, ok, _ = _maps(gain)
    with np.errstate(divide="ignore", invalid="ignore"):
        thousandths = np.floor(1000.0 / values)
    thousandths[~ok | (thousandths > GSAS2_MAX)] = 0
    return _write_tiff(_path(folder, name, date, ".tif"), thousandths.astype(np.int32), "gsas2", {})


def write_gain_nexus(
    gain,
    path: str | os.PathLike,
    *,
    metadata: dict | None = None,
) -> Path:
    """Write a gain map, its masks and provenance as NeXus/HDF5 (atomically).

    Layout: ``/entry`` (NXentry, default) -> ``gain_map`` (NXdata, signal
    ``gain``) with ``correction``, ``damaged`` (uint8), ``valid`` (uint8) and
    ``pixel_mask`` (uint32, NeXus: nonzero = do not use: 1 invalid, 2 damaged);
    ``/entry/process`` (NXprocess): ``program``, ``version``, ``date``,
    ``sources`` (one line per position), ``history``, ``parameters`` (JSON of
    the gain map's options) and `metadata`.

    Parameters
    ----------
    gain : Dataset or DataArray/array (y, x)
        As `write_gain_tiff`.
    path : path
        The file; its folder is created; an existing file is replaced.
    metadata : dict, optional
        More strings for ``/entry/process`` (e.g. the detector, the scatterer).

    Returns
    -------
    Path

    Examples
    --------
    >>> write_gain_nexus(gm, "pilatus_gain.nxs")  # doctest: +SKIP
    >>> ds = beamcat.open_dataset("pilatus_gain.nxs", variables=NEXUS_VARIABLES)  # doctest: +SKIP
    """
    values, damaged, ok, attrs = _maps(gain)
    damaged = np.zeros(values.shape, bool) if damaged is None else damaged & ok
    sources = []
    if isinstance(gain, xr.Dataset) and "source" in gain.coords:
        sources = [str(s) for s in np.atleast_1d(gain["source"].values)]
    parameters = {k: v for k, v in attrs.items() if k not in ("history", "source", "format")}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["default"] = "entry"
        entry = f.create_group("entry")
        entry.attrs.update({"NX_class": "NXentry", "default": "gain_map"})
        data = entry.create_group("gain_map")
        data.attrs.update({"NX_class": "NXdata", "signal": "gain"})
        with np.errstate(divide="ignore", invalid="ignore"):
            correction = 1.0 / values
        for key, array, text in (
            ("gain", values, "relative pixel gain: corrected = raw / gain (pyFAI flat)"),
            ("correction", correction, "1 / gain: corrected = raw * correction"),
        ):
            dset = data.create_dataset(key, data=array.astype(np.float32), compression="gzip")
            dset.attrs.update({"units": "1", "long_name": text})
        data.create_dataset("damaged", data=damaged.astype(np.uint8), compression="gzip")
        data.create_dataset("valid", data=ok.astype(np.uint8), compression="gzip")
        pixel_mask = np.where(ok, 0, 1) | np.where(damaged, 2, 0)
        data.create_dataset("pixel_mask", data=pixel_mask.astype(np.uint32), compression="gzip")
        process = entry.create_group("process")
        process.attrs["NX_class"] = "NXprocess"
        process["program"] = "beamcat gain_map"
        process["version"] = __version__
        process["date"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        process["sources"] = "\n".join(sources)
        process["history"] = str(attrs.get("history", ""))
        process["parameters"] = json.dumps(
            {k: v for k, v in parameters.items() if isinstance(v, (*_ATTR_TYPES, list))},
            default=lambda v: v.item() if hasattr(v, "item") else str(v),
        )
        for key, value in (metadata or {}).items():
            process[str(key)] = str(value)
    return path
