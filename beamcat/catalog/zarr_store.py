"""Zarr stores of derived results: written atomically by `to_zarr`, opened as Datasets.

`to_zarr` writes any Dataset as a Zarr v3 store that
`beamcat.catalog.build.add_source` registers back into a catalog (format
``"zarr"``) and `open_zarr_store` (``beamcat.open_dataset``) reads back.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

import dask.array
import numpy as np
import pandas as pd
import xarray as xr

from beamcat._util import atomic_directory, provenance, temp_beside
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
        Dask chunks (`xarray.open_zarr`); default each variable's stored
        chunks, or its shards when sharded (a task per shard file); "auto"
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
        ds = xr.open_zarr(path, group=group, chunks=chunks, consolidated=False)
        if chunks is None:
            ds = _stored_chunks(ds)
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


def _stored_chunks(ds: xr.Dataset) -> xr.Dataset:
    """Each variable dask-backed in its stored chunks, or its shards when sharded.

    A task per shard file: a 4D-STEM store's inner chunks are a few frames each,
    and a task per inner chunk is mostly overhead.
    """
    chunked = {}
    for name, v in ds.variables.items():
        if name in ds.indexes:
            continue
        sizes = v.encoding.get("shards") or v.encoding.get("chunks")
        chunked[name] = v.chunk(dict(zip(v.dims, sizes, strict=True)))
    return ds.assign(chunked)


#: variable-length strings (NumPy 2), which Zarr v3 stores without loading dask chunks first
_VLEN_STR = np.dtypes.StringDType() if hasattr(np.dtypes, "StringDType") else object


def to_zarr(ds: xr.Dataset | xr.DataArray, path: str | os.PathLike, *, overwrite=False) -> Path:
    """Write a Dataset to a Zarr v3 store, atomically, computing dask chunks one by one.

    The store is written into a temporary folder beside `path` and renamed
    onto it when complete, so `path` never holds a partial store. Dask-backed
    variables are computed chunk by chunk as they are written (memory bounded
    by a few chunks); irregular chunks are made regular (Zarr needs a fixed
    chunk shape). Fixed-width strings are stored as variable-length strings
    (they come back as NumPy ``StringDType``). Attrs are made JSON-serialisable
    (numpy scalars and arrays, times, tuples). Register the store with
    ``add_source(catalog, name, path, format="zarr")`` and open it with
    ``beamcat.open_dataset(path)``.

    Parameters
    ----------
    ds : Dataset or DataArray
        What to write (a DataArray becomes a one-variable Dataset, its name the
        signal).
    path : path
        The store folder, conventionally ending ``.zarr``.
    overwrite : bool
        Replace an existing store at `path` (only once the new one is complete).

    Returns
    -------
    Path
        `path`.

    Raises
    ------
    OptionError
        `path` exists and `overwrite` is False.

    Examples
    --------
    >>> from beamcat.catalog.build import add_source
    >>> store = to_zarr(means, "derived/run1_means.zarr")  # doctest: +SKIP
    >>> add_source("catalog.yaml", "run1_means", store, format="zarr")  # doctest: +SKIP
    """
    path = Path(path)
    if isinstance(ds, xr.DataArray):
        name = ds.name if ds.name is not None else "data"
        ds = ds.to_dataset(name=name).assign_attrs(signal=str(name), **ds.attrs)
    if path.exists() and not overwrite:
        raise OptionError(f"{path}: already exists; pass overwrite=True to replace it")
    ds = _storable(ds)
    old = temp_beside(path)
    with atomic_directory(path) as tmp:
        ds.to_zarr(tmp, mode="w-", zarr_format=3, consolidated=False, compute=True)
        if path.exists():
            os.rename(path, old)
    shutil.rmtree(old, ignore_errors=True)
    return path


def _storable(ds: xr.Dataset) -> xr.Dataset:
    """A copy Zarr v3 can store: regular chunks, variable-length strings, JSON attrs."""
    ds = _regular_chunks(ds.drop_encoding().copy())  # own Variables: attrs are set below
    # fixed-width unicode has no Zarr v3 data type yet (zarr warns); variable-length has
    strings = {k: v.astype(_VLEN_STR) for k, v in ds.variables.items() if v.dtype.kind == "U"}
    ds = ds.assign_coords({k: v for k, v in strings.items() if k in ds.coords})
    ds = ds.assign({k: v for k, v in strings.items() if k in ds.data_vars})
    for v in ds.variables.values():
        v.attrs = _jsonable(v.attrs)
    return ds.assign_attrs(_jsonable(ds.attrs))


def _regular_chunks(ds: xr.Dataset) -> xr.Dataset:
    """Rechunk dask variables whose chunks Zarr cannot store (uneven, not just a short last)."""
    for name, v in ds.variables.items():
        if not isinstance(v.data, dask.array.Array):
            continue
        sizes = {
            dim: max(c)
            for dim, c in zip(v.dims, v.data.chunks, strict=True)
            if len(set(c[:-1])) > 1 or (len(c) > 1 and c[-1] > c[0])
        }
        if sizes:
            ds[name] = v.chunk(sizes)
    return ds


def _jsonable(value):
    """Attrs as JSON values: numpy scalars/arrays -> Python, times -> ISO strings."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray | list | tuple | set):  # element by element: times stay np
        return [_jsonable(v) for v in value]
    if isinstance(value, np.datetime64 | np.timedelta64):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dt.datetime | dt.date | pd.Timestamp):
        return value.isoformat()
    if value is None or isinstance(value, str | int | float):  # bool is an int
        return value
    return str(value)
