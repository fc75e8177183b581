"""The format registry: format name -> opener, and sniffing a source's format.

Each opener is ``open_<format>(source, **options) -> xr.Dataset`` in its own
module of `beamcat.catalog`; it is imported on first use so that opening a TIFF
does not import astropy or cbor2.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import xarray as xr

from beamcat.catalog._paths import expand_source
from beamcat.errors import FormatError, OptionError

#: format name -> "module:function" of its opener
OPENERS: dict[str, str] = {
    "tiff": "beamcat.catalog.tiff:open_tiff",
    "fits": "beamcat.catalog.fits:open_fits",
    "spice": "beamcat.catalog.spice:open_spice",
    "mib": "beamcat.catalog.mib:open_mib",
    "hdf5": "beamcat.catalog.hdf5:open_hdf5",
    "cbor-stream": "beamcat.catalog.cbor_stream:open_cbor_stream",
    "massspec-csv": "beamcat.catalog.logs:open_massspec_csv",
    "temperature-log": "beamcat.catalog.logs:open_temperature_log",
    "imat-log": "beamcat.catalog.logs:open_imat_log",
    "zarr": "beamcat.catalog.zarr_store:open_zarr_store",
    "photon-list": "beamcat.catalog.photon_list:open_photon_list",
}

_BY_SUFFIX = {
    ".tif": "tiff",
    ".tiff": "tiff",
    ".mib": "mib",
    ".h5": "hdf5",
    ".hdf5": "hdf5",
    ".hdf": "hdf5",
    ".nxs": "hdf5",
    ".nx5": "hdf5",
    ".cbors": "cbor-stream",
    ".cbor": "cbor-stream",
    ".cbors.gz": "cbor-stream",
    ".cbor.gz": "cbor-stream",
    ".zarr": "zarr",
}
_FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz")


def get_opener(format: str) -> Callable[..., xr.Dataset]:
    """Return the opener function of a format name."""
    try:
        target = OPENERS[format]
    except KeyError:
        known = ", ".join(sorted(OPENERS))
        raise OptionError(f"unknown format {format!r}: expected one of {known}") from None
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)


def sniff_format(source: str | os.PathLike | Iterable[str | os.PathLike]) -> str:
    """Guess the format of a source from its first file's name and first bytes."""
    if isinstance(source, str | os.PathLike) and Path(source).suffix.lower() == ".zarr":
        return "zarr"  # a store is a folder: its own name tells, not its files'
    first = expand_source(source)[0]
    name = first.name.lower()
    for suffix in sorted(_BY_SUFFIX, key=len, reverse=True):
        if name.endswith(suffix):
            if _BY_SUFFIX[suffix] == "hdf5" and _is_photon_list(first):
                return "photon-list"
            return _BY_SUFFIX[suffix]
    if name.endswith(_FITS_SUFFIXES):
        return "spice" if _is_spice(first) else "fits"
    if name.endswith((".csv", ".txt", ".dat", ".log")):
        return _sniff_text(first)
    raise FormatError(
        f"{first}: cannot tell the format from the name; pass format= "
        f"(one of {', '.join(sorted(OPENERS))})"
    )


def _is_spice(path: Path, *, max_blocks: int = 64) -> bool:
    """SPICE L2 files say so in their primary header (or their name).

    The primary HDU of a SPICE file is its first window, whose header runs to
    ~12 blocks of 2880 bytes before INSTRUME; read card by card up to END.
    """
    if path.name.lower().startswith("solo_l2_spice"):
        return True
    with open(path, "rb") as f:
        for _ in range(max_blocks):
            block = f.read(2880)
            for start in range(0, len(block), 80):
                card = block[start : start + 80]
                if card.startswith(b"INSTRUME="):
                    return b"'SPICE" in card
                if card.rstrip() == b"END":
                    return False
            if len(block) < 2880:
                return False
    return False


def _is_photon_list(path: Path) -> bool:
    """HDF5 photon lists (``hits/hits_xye``) share the suffix of detector HDF5 files."""
    from beamcat.catalog.photon_list import is_photon_list  # imports h5py: only for .h5 files

    return is_photon_list(path)


def _sniff_text(path: Path) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        head = f.read(4096)
    if "DataLength" in head or ",scans," in head or "Time,ms" in head:
        return "massspec-csv"
    if head.lstrip().startswith("# Property") or "seconds(absolute)" in head:
        return "temperature-log"
    first_line = head.splitlines()[0] if head else ""
    if "monbefore" in head or "IMAGE COUNTER" in first_line or first_line.count(",") == 4:
        return "imat-log"
    raise FormatError(
        f"{path}: text file of unknown kind; pass format='massspec-csv', "
        "'temperature-log' or 'imat-log'"
    )


def open_dataset(
    source: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    format: str | None = None,
    attrs: Mapping[str, Any] | None = None,
    **options,
) -> xr.Dataset:
    """Open any supported source as a labelled, lazily backed Dataset.

    Parameters
    ----------
    source : path, folder, glob or list of paths
        What to open.
    format : str, optional
        One of ``tiff, fits, spice, mib, hdf5, cbor-stream, massspec-csv,
        temperature-log, imat-log, zarr, photon-list``; sniffed from the name and
        first bytes when not given.
    attrs : dict, optional
        Attributes to set on the Dataset, for what the file does not record
        (``{"pixel_size": 55e-6, "energy": 8048}``); a catalog entry can carry
        them as an option.
    **options
        Passed to the format's opener (``scan_shape=`` for MIB, ``path=`` for
        HDF5, ``timezone=`` for logs ...).

    Returns
    -------
    xarray.Dataset
        Pixel data stays on disk until computed; ``attrs["signal"]`` names the
        main variable, ``attrs["source"]`` and ``attrs["format"]`` say where it
        came from.

    Examples
    --------
    >>> import beamcat
    >>> ds = beamcat.open_dataset("run_0001/*.tif")  # doctest: +SKIP
    >>> ds[ds.attrs["signal"]].mean("frame")  # doctest: +SKIP
    """
    if format is None:
        format = sniff_format(source)
    ds = get_opener(format)(source, **options)
    return ds.assign_attrs(attrs) if attrs else ds
