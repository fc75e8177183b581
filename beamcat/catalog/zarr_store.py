"""Zarr stores (derived results written by `beamcat.analyses.tables.to_zarr`) as Datasets."""

from __future__ import annotations

import json
import os
from pathlib import Path

import xarray as xr

from beamcat._util import provenance
from beamcat.errors import FormatError, OptionError, SourceNotFoundError

FORMAT = "zarr"


def open_zarr_store(
    source: str | os.PathLike,
    *,
    group: str | None = None,
    chunks: dict | str | None = None,
) -> xr.Dataset:
    """Open a Zarr (v2 or v3) store folder as a lazily backed Dataset.

    Parameters
    ----------
    source : path
        The store folder (``results.zarr``).
    group : str, optional
        A group inside the store.
    chunks : dict or "auto", optional
        Dask chunks (`xarray.open_zarr`); default the stored chunks, "auto"
        lets dask merge small ones (not for string variables).

    Returns
    -------
    Dataset
        Variables as stored, dask-backed; attrs as stored, with ``source``
        and ``format`` set to this store (a stored ``source`` other than the
        store is kept as ``derived_from``) and ``signal`` set to the only
        variable when the store does not name one.

    Raises
    ------
    SourceNotFoundError
        No such folder.
    FormatError
        The folder is not a Zarr store (no ``zarr.json`` / ``.zgroup``), or
        `group` is not in it.

    Examples
    --------
    >>> import beamcat
    >>> ds = beamcat.open_dataset("run1_means.zarr")  # doctest: +SKIP
    """
    if not isinstance(source, str | os.PathLike):
        raise OptionError(f"{source!r}: a Zarr source is one store folder, not a list")
    path = Path(source).expanduser()
    if not path.is_dir():
        raise SourceNotFoundError(f"{path}: no such Zarr store folder")
    if not ((path / "zarr.json").is_file() or (path / ".zgroup").is_file()):
        raise FormatError(f"{path}: not a Zarr store (expected zarr.json or .zgroup inside)")
    try:
        ds = xr.open_zarr(
            path, group=group, chunks={} if chunks is None else chunks, consolidated=False
        )
    except (FileNotFoundError, KeyError) as err:
        raise FormatError(f"{path}: no group {group!r} in the store ({err})") from None
    except (ValueError, json.JSONDecodeError) as err:
        raise FormatError(f"{path}: unreadable Zarr metadata ({err})") from None
    attrs = dict(ds.attrs)
    stored = attrs.pop("source", None)
    if stored is not None and stored != os.fspath(source):
        attrs["derived_from"] = stored
    if "signal" not in attrs and len(ds.data_vars) == 1:
        attrs["signal"] = str(next(iter(ds.data_vars)))
    ds.attrs = {**attrs, **provenance(source, FORMAT)}
    return ds
