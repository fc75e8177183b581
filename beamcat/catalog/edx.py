"""Oxford AZtec EDX exports (RPL/RAW, .h5oina) as lazy ``counts (scan_y, scan_x, energy)``.

Formats served
    The Lispix ripple pair AZtec exports, ``<name>.rpl`` (tab-separated
    ``key value`` header) + ``<name>.raw`` (the counts), read with RosettaSciIO's
    ripple reader (``rsciio.ripple.file_reader(lazy=True)``: a memory map cut
    into dask chunks, nothing read at open time). ``record-by image`` (energy
    planes one after the other: how AZtec writes them, hence the ePSIC
    notebook's ``np.rollaxis(edx, 0, 3)``) and ``record-by vector`` (one
    spectrum per position: HyperSpy's export) both open as ``(scan_y, scan_x,
    energy)``.

    AZtec's HDF5 export (``.h5oina``): RosettaSciIO 0.15 has no reader for it,
    so it is read here with h5py after Oxford Instruments' published H5OINA
    specification (version 7.0+, AZtec 6.2+, which added the unprocessed
    spectra ``/1/EDS/Data/Spectrum``, one row per position, x fastest; ``X
    Cells``, ``Y Cells``, ``Start Channel`` and ``Channel Width`` in eV in
    ``/1/EDS/Header``), lazily through `beamcat.catalog.hdf5.H5Array`. Files
    with only window integrals (older exports) have no spectra to open. No
    real ``.h5oina`` has been tried: the tests write files after the
    specification.

Energy axis (keV)
    RPL: HyperSpy's ``depth-origin`` / ``depth-scale`` / ``depth-units`` keys
    (eV or keV), else the Lispix ``ev-per-chan`` key (eV per channel, first
    channel at 0). ``.h5oina``: ``Start Channel`` and ``Channel Width``. The
    options `energy_offset_kev` / `energy_scale_kev` override the file. The
    RPL key ``detector-peak-width-ev`` (FWHM at Mn Ka) becomes
    ``attrs["energy_resolution_mnka_ev"]`` (else 130 eV), which element-map
    windows use.

Scan shape (ePSIC's 4D-STEM + EDX manual)
    A 4D-STEM scan recorded with EDX has no fly-back frames and the shape
    ``(Scan_X, Scan_Y) = (Scan_X, Scan_X - 1)``: ``Scan_X - 1`` lines of
    ``Scan_X`` positions, i.e. ``(scan_y, scan_x) = (N - 1, N)``, while AZtec's
    map is ``N x N``. `match_scan` (or ``open_edx(..., scan_shape=)``) cuts the
    EDX line the 4D-STEM scan lacks (the last by default) so that maps line up
    position by position; any other mismatch is an error.

`write_edx` writes an AZtec-like pair (the demo's and the tests').

Examples
--------
>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> counts = np.arange(2 * 3 * 4, dtype=np.uint16).reshape(2, 3, 4)
>>> _ = write_edx(folder / "map.rpl", counts, energy_offset_kev=0.0, energy_scale_kev=0.01)
>>> ds = open_edx(folder / "map.rpl")
>>> ds.counts.dims, ds.energy.values.tolist()
(('scan_y', 'scan_x', 'energy'), [0.0, 0.01, 0.02, 0.03])
>>> bool((ds.counts.values == counts).all())
True
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import dask.array as da
import numpy as np
import xarray as xr

from beamcat._util import atomic_path, provenance
from beamcat.errors import FormatError, OptionError, SourceNotFoundError

__all__ = ["EDX_SUFFIXES", "match_scan", "open_edx", "write_edx"]

#: name endings of an EDX export (a ``.raw`` stands for its ``.rpl``)
EDX_SUFFIXES = (".rpl", ".h5oina")
#: FWHM at Mn Ka (eV) assumed when the header has none (a typical SDD)
DEFAULT_RESOLUTION_EV = 130.0
_UNITS_KEV = {"kev": 1.0, "ev": 1e-3}
_RAW_TYPES = {("unsigned", 1): "u1", ("unsigned", 2): "u2", ("unsigned", 4): "u4"}
_RAW_TYPES |= {("signed", 4): "i4", ("float", 4): "f4", ("float", 8): "f8"}
#: spectra per dask chunk of an .h5oina map, rounded to whole scan lines
_H5OINA_CHUNK_BYTES = 32 * 2**20
_NOT_CALIBRATED = "pass energy_scale_kev= (and energy_offset_kev=)"


def _sibling(path: Path, suffix: str) -> Path:
    """`path` with `suffix`, in upper case when only that exists (Windows exports)."""
    lower, upper = path.with_suffix(suffix), path.with_suffix(suffix.upper())
    return upper if upper.exists() and not lower.exists() else lower


def _source_path(source: str | os.PathLike) -> Path:
    path = Path(source).expanduser()
    if path.suffix.lower() == ".raw":
        path = _sibling(path, ".rpl")
    if not path.is_file():
        raise SourceNotFoundError(f"{path}: no such EDX export (.rpl or .h5oina) file")
    if path.suffix.lower() not in EDX_SUFFIXES:
        raise FormatError(
            f"{path}: expected an AZtec export {EDX_SUFFIXES} (or a .raw), got {path.suffix!r}"
        )
    return path


def _ripple_energy(info: dict, path: Path) -> tuple[float, float] | None:
    """(offset, scale) in keV from a ripple header, None when it has none."""
    if "depth-scale" in info:
        units = str(info.get("depth-units", "")).strip().lower()
        if units not in _UNITS_KEV:
            raise FormatError(
                f"{path}: depth-units {units or 'missing'!r}; expected eV or keV, or "
                + _NOT_CALIBRATED
            )
        factor = _UNITS_KEV[units]
        return float(info.get("depth-origin", 0.0)) * factor, float(info["depth-scale"]) * factor
    if "ev-per-chan" in info:
        return 0.0, float(info["ev-per-chan"]) * 1e-3
    return None


def _read_ripple(path: Path, chunks) -> tuple[da.Array, dict, tuple | None]:
    """Counts (y, x, energy), attrs and header energy axis of an RPL/RAW pair (RosettaSciIO)."""
    from rsciio.ripple import file_reader

    raw = _sibling(path, ".raw")
    if not raw.is_file():
        raise SourceNotFoundError(f"{path}: its counts file {raw.name} is missing")
    try:
        (found,) = file_reader(str(path), lazy=True, chunks=chunks)
    except (OSError, KeyError, ValueError, TypeError) as err:
        raise FormatError(f"{path}: not a readable RPL header ({err})") from None
    info = found["original_metadata"]
    ny, nx, depth = (int(info[k]) for k in ("height", "width", "depth"))
    vector = info["record-by"] != "image"
    expected = int(info.get("offset", 0)) + ny * nx * depth * int(info["data-length"])
    if raw.stat().st_size < expected:
        raise FormatError(
            f"{raw}: {raw.stat().st_size} bytes; expected {expected} for {ny} x {nx} positions "
            f"of {depth} channels of {info['data-length']} bytes ({path.name})"
        )
    data = found["data"].reshape((ny, nx, depth) if vector else (depth, ny, nx))
    attrs = {
        "record_by": info["record-by"],
        "energy_resolution_mnka_ev": info.get(
            "detector-peak-width-ev", info.get("energy-resolution")
        ),
        "beam_energy_kev": info.get("beam-energy"),
        "live_time_s": info.get("live-time"),
        "elevation_angle_deg": info.get("elevation-angle"),
        "azimuth_angle_deg": info.get("azimuth-angle"),
        "title": info.get("title") or None,
    }
    counts = data if vector else da.transpose(data, (1, 2, 0))
    return counts, attrs, _ripple_energy(info, path)


def _h5_value(group, name: str):
    """A (1, 1) header dataset's value, None when absent."""
    if name not in group:
        return None
    value = np.ravel(group[name][()])[0]
    return value.decode() if isinstance(value, bytes) else value.item()


def _read_h5oina(path: Path, detector: str, chunks) -> tuple[da.Array, dict, tuple | None]:
    """Counts (y, x, energy), attrs and energy axis of an AZtec .h5oina EDS map (spec 7.0+).

    Spectra are ``/1/<detector>/Data/Spectrum`` (positions, channels), a row per
    position with x fastest; ``X Cells``, ``Y Cells``, ``Start Channel`` and
    ``Channel Width`` (eV) are in ``/1/<detector>/Header``.
    """
    import h5py

    from beamcat.catalog.hdf5 import H5Array, reading_hdf5

    spectra = f"1/{detector}/Data/Spectrum"
    with reading_hdf5(path), h5py.File(path, "r", locking=False) as f:
        if isinstance(f.get(spectra), h5py.Group):  # some exports: a group holding "Counts"
            spectra += "/Counts"
        if not isinstance(f.get(spectra), h5py.Dataset):
            techniques = sorted(f["1"]) if "1" in f else []
            raise FormatError(
                f"{path}: no /{spectra} (unprocessed EDS spectra, exported by AZtec 6.2+); "
                f"slice 1 holds {techniques}; pass detector= one of the EDS groups"
            )
        header = f[f"1/{detector}/Header"]
        ny, nx = int(_h5_value(header, "Y Cells")), int(_h5_value(header, "X Cells"))
        start, width = _h5_value(header, "Start Channel"), _h5_value(header, "Channel Width")
        live = f.get(f"1/{detector}/Data/Live Time")
        attrs = {
            "detector": detector,
            "beam_energy_kev": _h5_value(header, "Beam Voltage"),
            "live_time_s": None if live is None else float(np.mean(live[()])),
            "elevation_angle_deg": _degrees(_h5_value(header, "Detector Elevation")),
            "azimuth_angle_deg": _degrees(_h5_value(header, "Detector Azimuth")),
            "title": _h5_value(header, "Analysis Label"),
        }
    array = H5Array(path, spectra)
    if array.shape[0] != ny * nx:
        raise FormatError(
            f"{path}: /{spectra} holds {array.shape[0]} spectra; expected Y Cells x X Cells "
            f"= {ny} x {nx}"
        )
    if chunks == "auto":
        lines = max(1, _H5OINA_CHUNK_BYTES // (nx * array.shape[1] * array.dtype.itemsize))
        chunks = (min(ny, lines) * nx, -1)
    counts = da.from_array(array, chunks=chunks).reshape(ny, nx, array.shape[1])
    energy = None if width is None else (float(start or 0.0) * 1e-3, float(width) * 1e-3)
    return counts, attrs, energy


def _degrees(radians: float | None) -> float | None:
    return None if radians is None else float(np.degrees(radians))


def open_edx(
    source: str | os.PathLike,
    *,
    scan_shape: Sequence[int] | None = None,
    extra_line: str = "last",
    energy_offset_kev: float | None = None,
    energy_scale_kev: float | None = None,
    detector: str = "EDS",
    chunks: str | tuple = "auto",
) -> xr.Dataset:
    """Open an AZtec EDX spectrum image (RPL/RAW or .h5oina) lazily.

    Parameters
    ----------
    source : path
        The ``.rpl`` header (or its ``.raw``; the ``.raw`` beside it holds the
        counts), or an ``.h5oina`` file.
    scan_shape : (ny, nx), optional
        The 4D-STEM scan the map was recorded with: checked, and cut to it by
        `match_scan`'s rule.
    extra_line : "last" or "first"
        Which EDX line the 4D-STEM scan lacks (see `match_scan`).
    energy_offset_kev, energy_scale_kev : float, optional
        Energy of the first channel and per channel (keV), overriding the header.
    detector : str
        ``.h5oina`` only: the EDS group (``EDS``, or ``EDS1``, ``EDS2`` ... of a
        multi-detector system).
    chunks : "auto" or tuple
        Dask chunks of the file's own axis order: RPL ``(energy, y, x)`` or
        ``(y, x, energy)`` by ``record-by`` (RosettaSciIO's ``chunks``);
        ``.h5oina`` ``(positions, channels)``.

    Returns
    -------
    Dataset
        ``counts`` (scan_y, scan_x, energy), dask backed, the file's dtype;
        coordinate ``energy`` (keV). Attrs: ``source``, ``format`` ("edx"),
        ``signal``, ``energy_resolution_mnka_ev``, and where the file has them
        ``record_by``, ``detector``, ``beam_energy_kev``, ``live_time_s``,
        ``elevation_angle_deg``, ``azimuth_angle_deg``, ``title``.

    Raises
    ------
    SourceNotFoundError
        No such file (or no ``.raw`` beside the ``.rpl``).
    FormatError
        A header RosettaSciIO cannot parse, a ``.raw`` too short for it, an
        ``.h5oina`` without spectra, no energy calibration and no options for it.
    OptionError
        A `scan_shape` the map cannot be matched to.
    """
    path = _source_path(source)
    if path.suffix.lower() == ".h5oina":
        counts, found, header = _read_h5oina(path, detector, chunks)
    else:
        counts, found, header = _read_ripple(path, chunks)
    if header is None and energy_scale_kev is None:
        raise FormatError(f"{path}: no energy calibration in the file; " + _NOT_CALIBRATED)
    offset, scale = header or (0.0, 0.0)
    offset = offset if energy_offset_kev is None else float(energy_offset_kev)
    scale = scale if energy_scale_kev is None else float(energy_scale_kev)
    if not scale > 0:
        raise FormatError(f"{path}: energy scale {scale} keV per channel; expected > 0")
    attrs = provenance(path, "edx", signal="counts")
    attrs.update({k: v for k, v in found.items() if v is not None})
    attrs["energy_resolution_mnka_ev"] = float(
        found.get("energy_resolution_mnka_ev") or DEFAULT_RESOLUTION_EV
    )
    ds = xr.Dataset(
        {
            "counts": (
                ("scan_y", "scan_x", "energy"),
                counts,
                {"units": "counts", "long_name": "X-ray counts"},
            )
        },
        coords={
            "energy": (
                "energy",
                offset + scale * np.arange(counts.shape[2]),
                {"units": "keV", "long_name": "X-ray energy"},
            )
        },
        attrs=attrs,
    )
    return ds if scan_shape is None else match_scan(ds, scan_shape, extra_line=extra_line)


def match_scan(
    edx: xr.Dataset, scan_shape: Sequence[int], *, extra_line: str = "last"
) -> xr.Dataset:
    """The EDX map cut to the 4D-STEM scan it was recorded with (ePSIC's simultaneous-EDX rule).

    Parameters
    ----------
    edx : Dataset (scan_y, scan_x, energy)
        `open_edx` output.
    scan_shape : (ny, nx)
        The 4D-STEM scan's ``(scan_y, scan_x)``.
    extra_line : "last" or "first"
        Which EDX line the 4D-STEM scan lacks when the map has one line more.

    Returns
    -------
    Dataset
        `edx` itself when the shapes are equal; when the 4D-STEM scan is
        ``(N - 1, N)`` and the map ``N x N``, the map without its `extra_line`
        (``attrs["edx_line_dropped"]``).

    Raises
    ------
    OptionError
        Any other pair of shapes, naming both and the rule.

    Examples
    --------
    >>> edx = xr.Dataset({"counts": (("scan_y", "scan_x", "energy"), np.zeros((4, 4, 2)))})
    >>> match_scan(edx, (3, 4)).counts.shape
    (3, 4, 2)
    """
    ny, nx = (int(v) for v in scan_shape)
    shape = (edx.sizes["scan_y"], edx.sizes["scan_x"])
    where = edx.attrs.get("source", "EDX map")
    if extra_line not in ("last", "first"):
        raise OptionError(f"extra_line={extra_line!r}: expected 'last' or 'first'")
    if shape == (ny, nx):
        return edx
    if shape == (nx, nx) and ny == nx - 1:
        cut = slice(None, -1) if extra_line == "last" else slice(1, None)
        return edx.isel(scan_y=cut).assign_attrs(edx_line_dropped=extra_line)
    raise OptionError(
        f"{where}: EDX map of {shape[0]} x {shape[1]} positions does not match the 4D-STEM "
        f"scan {ny} x {nx} (scan_y x scan_x); expected the same shape, or a 4D-STEM scan of "
        "N - 1 lines of N with an N x N map (4D-STEM recorded with EDX has no fly-back)"
    )


def write_edx(
    path: str | os.PathLike,
    counts: np.ndarray,
    *,
    energy_offset_kev: float,
    energy_scale_kev: float,
    record_by: str = "image",
    energy_resolution_ev: float = DEFAULT_RESOLUTION_EV,
    beam_energy_kev: float | None = None,
    live_time_s: float | None = None,
    title: str = "",
) -> Path:
    """Write an AZtec-like RPL/RAW pair that `open_edx` (and RosettaSciIO/HyperSpy) read.

    Parameters
    ----------
    path : path
        The ``.rpl`` to write; the ``.raw`` goes beside it. Both are written
        atomically (the ``.raw`` first, so a header never announces missing counts).
    counts : ndarray (scan_y, scan_x, energy)
        uint8/16/32, int32 or float32/64 counts.
    energy_offset_kev, energy_scale_kev : float
        Energy of the first channel and per channel (keV).
    record_by : "image" or "vector"
        Energy planes one after the other (AZtec) or one spectrum per position.
    energy_resolution_ev : float
        Detector FWHM at Mn Ka (eV), the header's ``detector-peak-width-ev``.
    beam_energy_kev, live_time_s : float, optional
    title : str

    Returns
    -------
    Path
        The ``.rpl`` written.
    """
    path = Path(path)
    counts = np.asarray(counts)
    kinds = {v: k for k, v in _RAW_TYPES.items()}
    if (
        counts.ndim != 3
        or counts.dtype.str[1:] not in kinds
        or record_by not in ("image", "vector")
    ):
        raise OptionError(
            f"{path}: expected counts (scan_y, scan_x, energy) of {sorted(kinds)} and "
            f"record_by 'image' or 'vector', got {counts.shape} {counts.dtype}, {record_by!r}"
        )
    kind, length = kinds[counts.dtype.str[1:]]
    ny, nx, depth = counts.shape
    keys = {
        "width": nx,
        "height": ny,
        "depth": depth,
        "offset": 0,
        "data-length": length,
        "data-type": kind,
        "byte-order": "dont-care" if length == 1 else "little-endian",
        "record-by": record_by,
        "ev-per-chan": energy_scale_kev * 1e3,
        "depth-origin": energy_offset_kev,
        "depth-scale": energy_scale_kev,
        "depth-units": "keV",
        "detector-peak-width-ev": energy_resolution_ev,
        "signal": "EDS_TEM",
        "title": title,
    }
    if beam_energy_kev is not None:
        keys["beam-energy"] = beam_energy_kev
    if live_time_s is not None:
        keys["live-time"] = live_time_s
    ordered = counts if record_by == "vector" else np.moveaxis(counts, 2, 0)
    header = "key\tvalue\n" + "".join(f"{k}\t{v}\n" for k, v in keys.items())
    with atomic_path(path) as rpl_tmp, atomic_path(path.with_suffix(".raw")) as raw_tmp:
        np.ascontiguousarray(ordered, dtype=counts.dtype.newbyteorder("<")).tofile(raw_tmp)
        rpl_tmp.write_text(header, encoding="latin-1")
    return path
