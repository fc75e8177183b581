"""Tables out of ROI and grid time series: the original scripts' CSV, and Zarr for everything.

`to_original_csv` writes the ``<run>_greyvalues.csv`` layout of the original
IMAT scripts (hamishcavaye/imat_roi_analysis, 03_Image_Processing.py), so
existing spreadsheets and plotting scripts keep working. `to_zarr` writes any
Dataset as a Zarr v3 store that `beamcat.catalog.build.add_source` registers
back into a catalog (format ``"zarr"``).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import dask.array
import numpy as np
import pandas as pd
import xarray as xr

from beamcat._util import atomic_directory, atomic_open, temp_beside, to_utc
from beamcat.errors import OptionError

#: variable-length strings (NumPy 2), which Zarr v3 stores without loading dask chunks first
_VLEN_STR = np.dtypes.StringDType() if hasattr(np.dtypes, "StringDType") else object


def to_original_csv(
    means: xr.Dataset | xr.DataArray,
    path: str | os.PathLike,
    *,
    origin: str | np.datetime64 | pd.Timestamp | None = None,
    labels: Literal["original", "names"] = "original",
    standards: Sequence[str] | xr.Dataset | xr.DataArray = (),
    timezone: str | None = None,
    var: str | None = None,
) -> Path:
    """Write ROI or grid means in the original scripts' CSV layout (atomically).

    Columns, in order: ``Absolute Time`` (wall-clock time, ``YYYY-MM-DD
    HH:MM:SS[.ffffff]``), ``Elapsed Time`` (s since `origin`, float), one
    column per ROI (``ROI 1``, ``ROI 2`` ... in the order of the ``roi`` dim)
    or per grid cell (``r,c``, zero-based, row-major), then ``Standard 1``,
    ``Standard 2`` ... - in the original these are the means of
    internal-standard ROIs (a reference material in the beam), not standard
    deviations. One row per frame.

    Parameters
    ----------
    means : Dataset or DataArray (roi, time) or (row, col, time)
        `beamcat.analyses.roi.roi_means` / `grid_means` output; the ``time``
        coordinate may lie along another dim (``frame``).
    path : path
        The CSV file to write.
    origin : datetime-like, optional
        Where ``Elapsed Time`` is 0; default the first frame (the original's
        choice). A naive time is local time of `timezone`.
    labels : {"original", "names"}
        ROI columns named ``ROI n`` like the original, or by the ``roi``
        coordinate (``Standard <name>`` then too).
    standards : sequence of str, or Dataset/DataArray (roi, time)
        Internal-standard ROIs: names along the ``roi`` dim of `means` (moved
        to the end), or their own means (for a grid) with the same times.
    timezone : str, optional
        IANA zone of the written ``Absolute Time`` (the original wrote the
        IMAT log's local times); default ``attrs["timezone"]``, else UTC.
    var : str, optional
        The variable of a Dataset; default ``attrs["signal"]``, else ``mean``.

    Returns
    -------
    Path
        `path`.

    Raises
    ------
    OptionError
        No ``time`` coordinate, dims other than (roi, time) / (row, col,
        time), an unknown standard ROI, or standards on other times.

    Examples
    --------
    >>> to_original_csv(means, "run1_greyvalues.csv", timezone="Europe/London")  # doctest: +SKIP
    """
    table = _series(means, var, "means")
    timezone = timezone or means.attrs.get("timezone") or "UTC"
    if labels not in ("original", "names"):
        raise OptionError(f"labels={labels!r}: expected 'original' or 'names'")
    table, extra = _split_standards(table, standards, var)
    columns = _columns(table, labels)
    for i, name in enumerate(extra["roi"].values if extra is not None else []):
        label = f"Standard {i + 1}" if labels == "original" else f"Standard {name}"
        columns[label] = extra.isel(roi=i)

    times = table["time"].values
    zero = times[0] if origin is None else to_utc([origin], timezone)[0]
    local = pd.DatetimeIndex(times).tz_localize("UTC").tz_convert(timezone).tz_localize(None)
    frame = pd.DataFrame(
        {
            "Absolute Time": local,
            "Elapsed Time": (times - zero) / np.timedelta64(1, "s"),
            **{k: np.asarray(v.values, dtype=np.float64) for k, v in columns.items()},
        }
    )
    with atomic_open(path, "w", newline="", encoding="utf-8") as f:
        frame.to_csv(f, index=False)
    return Path(path)


def _series(obj: xr.Dataset | xr.DataArray, var: str | None, what: str) -> xr.DataArray:
    """The means DataArray, along a ``time`` dim."""
    if isinstance(obj, xr.Dataset):
        var = var or obj.attrs.get("signal") or "mean"
        if var not in obj.data_vars:
            raise OptionError(f"{what}: no variable {var!r}; has {list(obj.data_vars)}")
        obj = obj[var]
    if "time" not in obj.coords or obj["time"].ndim != 1:
        raise OptionError(f"{what}: no 1-d 'time' coordinate to write Absolute Time from")
    (dim,) = obj["time"].dims
    return obj.swap_dims({dim: "time"}) if dim != "time" else obj


def _split_standards(
    table: xr.DataArray, standards, var
) -> tuple[xr.DataArray, xr.DataArray | None]:
    """(the ROI/grid means, the internal-standard means or None)."""
    if isinstance(standards, xr.Dataset | xr.DataArray):
        extra = _series(standards, var, "standards")
        if "roi" not in extra.dims or not np.array_equal(extra["time"], table["time"]):
            raise OptionError("standards: expected means over (roi, time) on the same times")
        return table, extra
    standards = list(standards)
    if not standards:
        return table, None
    if "roi" not in table.coords:
        raise OptionError(f"standards={standards}: the means have no 'roi' coordinate")
    unknown = [s for s in standards if s not in table["roi"].values]
    if unknown:
        raise OptionError(
            f"standards={unknown}: not ROIs of the means ({list(table['roi'].values)})"
        )
    return table.drop_sel(roi=standards), table.sel(roi=standards)


def _columns(table: xr.DataArray, labels: str) -> dict[str, xr.DataArray]:
    dims = set(table.dims)
    if dims == {"roi", "time"}:
        names = table["roi"].values if "roi" in table.coords else range(table.sizes["roi"])
        return {
            f"ROI {i + 1}" if labels == "original" else str(name): table.isel(roi=i)
            for i, name in enumerate(names)
        }
    if dims == {"row", "col", "time"}:
        return {
            f"{r},{c}": table.isel(row=r, col=c)
            for r in range(table.sizes["row"])
            for c in range(table.sizes["col"])
        }
    raise OptionError(f"means over {table.dims}: expected (roi, time) or (row, col, time)")


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
