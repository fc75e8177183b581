"""The original IMAT scripts' CSV layout: ``<run>_greyvalues.csv`` (a radiography job output).

`to_original_csv` writes ROI or grid means as the original scripts
(hamishcavaye/imat_roi_analysis, 03_Image_Processing.py) did, so existing
spreadsheets and plotting scripts keep working: ``Absolute Time``, ``Elapsed
Time``, one column per ROI (named by the ROI, or ``ROI n``) or grid cell, then
the internal standards. It is an output format of the radiography job
(`beamcat.workflows.radiography`), hence this floor; derived results as Zarr are
written by `beamcat.catalog.zarr_store.to_zarr`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr

from beamcat._util import atomic_open, to_utc
from beamcat.analyses._frames import pick
from beamcat.errors import OptionError

__all__ = ["to_original_csv"]


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
        obj = pick(obj, var, default="mean", what=f"{what} means")
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
