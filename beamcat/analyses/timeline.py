"""Put runs and logs of one experiment on one time axis.

`timeline` takes Datasets (or DataArrays) that each have a UTC ``time``
coordinate - ROI means of several runs, a mass-spectrometer export, a
temperature log - and returns them keyed by name, each along a sorted, unique
``time`` dim with an ``elapsed`` coordinate in seconds from one origin. Each
source keeps its own samples: nothing is interpolated, because the double plot
(logs on top, ROI transmission below) shares the time axis, not the sampling;
`interp_onto` puts every source on one reference axis when a table is wanted.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np
import pandas as pd
import xarray as xr

from beamcat._util import to_utc
from beamcat.analyses._history import add_history
from beamcat.errors import OptionError

T = TypeVar("T", xr.Dataset, xr.DataArray)
Origin = None | str | np.datetime64 | datetime | pd.Timestamp


def timeline(
    *sources: xr.Dataset | xr.DataArray | Mapping[str, xr.Dataset | xr.DataArray],
    names: Sequence[str] | None = None,
    origin: Origin = None,
    timezone: str = "UTC",
    duplicates: Literal["mean", "first", "error"] = "mean",
    require_overlap: bool = True,
) -> dict[str, xr.Dataset | xr.DataArray]:
    """Align runs and logs on one time axis, absolute (UTC) and elapsed from an origin.

    Parameters
    ----------
    *sources : Dataset or DataArray, or one mapping name -> Dataset
        Each with a 1-d datetime64 ``time`` coordinate, as a dim (ROI means
        over ``(roi, time)``, logs over ``(time,)``) or along another dim (a
        raw run's ``frame``, which is then swapped for ``time``).
    names : sequence of str, optional
        One per source; default the mapping's keys, else each source's
        DataArray name or file stem (``attrs["source"]``), made unique.
    origin : None, str or datetime-like
        Where ``elapsed`` is 0: None, the earliest time of all sources;
        ``"first"``, the first time of the first source (e.g. the first frame
        of run 1); a source name, that source's first time; ``"each"``, every
        source from its own first time (overlaid runs, logs from different
        days); a time (``np.datetime64``, ``datetime``, ISO string), e.g. the
        gas switch. A naive time is local time of `timezone`.
    timezone : str
        IANA time zone of a naive `origin`.
    duplicates : {"mean", "first", "error"}
        What to do with repeated times (JournalViewer logs repeat a timestamp
        when two readings fall in one second): average the numeric variables
        (others keep the first), keep the first sample, or raise.
    require_overlap : bool
        Raise when the sources' time ranges do not join up (a source that
        overlaps none of the others, e.g. a log of another day or a wrong
        timezone). Not checked with ``origin="each"``. Pass False to put
        consecutive runs without logs on one absolute axis.

    Returns
    -------
    dict of str -> Dataset or DataArray
        In the order given, each sorted along a unique ``time`` dim with a
        coordinate ``elapsed`` (time,) float64 in s (replacing a reader's own
        ``elapsed``) whose attrs give the origin; data stay lazy.

    Raises
    ------
    OptionError
        A source without a ``time`` coordinate, with NaT or no samples, repeated
        times with ``duplicates="error"``, an unknown `origin`, or sources
        whose times do not overlap (the message names each and its range).

    Examples
    --------
    The demo catalog's IMAT run (its calibrated ROI means), mass spectrometer
    and temperature logs:

    >>> import beamcat
    >>> cat = beamcat.open_catalog()
    >>> run, dark, flat = (cat[n].read() for n in ("imat_run", "imat_dark", "imat_flat"))
    >>> means = run.radiography.calibrated_means(dark, flat, rois={"bed": (134, 75, 52, 30)})
    >>> ms, temp = cat["imat_massspec"].read(), cat["imat_temperature"].read()
    >>> aligned = timeline(
    ...     means["rois"], ms, temp, names=["run1", "ms", "temp"], origin="2024-12-13T14:10:00"
    ... )
    >>> list(aligned), aligned["ms"]["Argon"].dims
    (['run1', 'ms', 'temp'], ('time',))
    """
    if duplicates not in ("mean", "first", "error"):
        raise OptionError(f"duplicates={duplicates!r}: expected 'mean', 'first' or 'error'")
    items = _named(sources, names)
    series = {name: _on_time(obj, name, duplicates) for name, obj in items}
    ranges = {name: (obj["time"].values[0], obj["time"].values[-1]) for name, obj in series.items()}
    each = isinstance(origin, str) and origin == "each"
    if require_overlap and not each:
        _check_overlap(ranges)
    out = {}
    for name, obj in series.items():
        zero = _origin(origin, name, ranges, timezone)
        elapsed = (obj["time"].values - zero) / np.timedelta64(1, "s")
        stamp = pd.Timestamp(zero).isoformat()
        obj = obj.assign_coords(
            elapsed=("time", elapsed, {"units": "s", "long_name": f"time since {stamp} UTC"})
        )
        obj.attrs = add_history(obj.attrs, f"timeline(origin={stamp} UTC)")
        out[name] = obj
    return out


def interp_onto(
    aligned: Mapping[str, xr.Dataset | xr.DataArray],
    reference: str,
    *,
    method: str = "linear",
) -> xr.Dataset:
    """Interpolate every aligned source onto the ``time`` samples of one of them.

    Parameters
    ----------
    aligned : mapping name -> Dataset or DataArray
        The output of `timeline`.
    reference : str
        The source whose times (and ``elapsed``) become the axis, e.g. a run's
        ROI means.
    method : str
        `xarray.Dataset.interp` method; outside a source's time range the
        values are NaN (no extrapolation).

    Returns
    -------
    Dataset
        Along the reference's ``time``; variables named ``"<source>.<var>"``
        (a DataArray source is one variable named after the source); only
        numeric variables along ``time`` of the other sources are kept.

    Examples
    --------
    With ``means`` and ``temp`` of `timeline`'s example:

    >>> import beamcat
    >>> cat = beamcat.open_catalog()
    >>> means = cat["imat_run"].read().roi.means({"bed": (134, 75, 52, 30)})
    >>> temp = cat["imat_temperature"].read()
    >>> table = interp_onto(timeline(means, temp, names=["run1", "temp"]), "run1")
    >>> list(table.data_vars)
    ['run1.mean', 'run1.std', 'run1.count', 'temp.Temp2']
    """
    if reference not in aligned:
        raise OptionError(f"reference={reference!r}: expected one of {list(aligned)}")
    axis = aligned[reference]["time"]
    variables = {}
    for name, obj in aligned.items():
        ds = obj.to_dataset(name=name) if isinstance(obj, xr.DataArray) else obj
        for var, da in ds.data_vars.items():
            if "time" not in da.dims or not np.issubdtype(da.dtype, np.number):
                continue
            key = name if isinstance(obj, xr.DataArray) else f"{name}.{var}"
            da = da.reset_coords(drop=True).drop_vars("elapsed", errors="ignore")
            variables[key] = da if name == reference else da.interp(time=axis, method=method)
    out = xr.Dataset(variables).assign_coords(elapsed=aligned[reference]["elapsed"])
    out.attrs = add_history({}, f"interp_onto(reference={reference!r}, method={method!r})")
    return out


def _named(sources, names) -> list[tuple[str, xr.Dataset | xr.DataArray]]:
    one = sources[0] if len(sources) == 1 else None
    if isinstance(one, Mapping) and not isinstance(one, xr.Dataset):  # a Dataset is a Mapping
        mapping = sources[0]
        sources, names = tuple(mapping.values()), names or [str(k) for k in mapping]
    if not sources:
        raise OptionError("timeline: expected at least one Dataset or DataArray")
    for i, obj in enumerate(sources):
        if not isinstance(obj, xr.Dataset | xr.DataArray):
            raise OptionError(f"source {i}: expected a Dataset or DataArray, got {type(obj)}")
    if names is None:
        names = _unique([_default_name(obj, i) for i, obj in enumerate(sources)])
    names = [str(n) for n in names]
    if len(names) != len(sources) or len(set(names)) != len(names):
        raise OptionError(f"names={names}: expected {len(sources)} distinct names")
    return list(zip(names, sources, strict=True))


def _default_name(obj, index: int) -> str:
    if isinstance(obj, xr.DataArray) and obj.name is not None:
        return str(obj.name)
    source = obj.attrs.get("source")
    if isinstance(source, str) and source and ";" not in source:
        return Path(source.rstrip("/" + os.sep)).stem
    return f"source{index}"


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}_{seen[n]}")
    return out


def _on_time(obj: T, name: str, duplicates: str) -> T:
    """`obj` along a sorted, unique ``time`` dim."""
    if "time" not in obj.coords or obj["time"].ndim != 1:
        raise OptionError(
            f"{name}: no 1-d 'time' coordinate (dims {dict(obj.sizes)}); open runs with "
            "their frame log (frame_log=...) or calibrate them so frames have times"
        )
    if not np.issubdtype(obj["time"].dtype, np.datetime64):
        raise OptionError(f"{name}: 'time' is {obj['time'].dtype}, expected datetime64 (UTC)")
    (dim,) = obj["time"].dims
    if dim != "time":
        obj = obj.swap_dims({dim: "time"})
    if obj["time"].dtype != np.dtype("datetime64[ns]"):  # pandas 3 makes [us]; interp needs one
        obj = obj.assign_coords(time=obj["time"].values.astype("datetime64[ns]"))
    times = obj["time"].values
    if times.size == 0 or np.isnat(times).any():
        raise OptionError(f"{name}: 'time' has {'NaT' if times.size else 'no samples'}")
    if not (np.diff(times) >= np.timedelta64(0)).all():
        obj = obj.isel(time=np.argsort(times, kind="stable"))
    index = pd.Index(obj["time"].values)
    if not index.has_duplicates:
        return obj
    repeated = index[index.duplicated()].unique()
    if duplicates == "error":
        shown = ", ".join(str(t) for t in repeated[:3])
        raise OptionError(f"{name}: {len(repeated)} repeated times ({shown} ...)")
    first = obj.isel(time=~index.duplicated())
    out = _mean_of_repeats(obj, first, index) if duplicates == "mean" else first
    out.attrs = add_history(
        obj.attrs, f"timeline: {len(repeated)} repeated times reduced by {duplicates!r}"
    )
    return out


def _mean_of_repeats(obj: T, first: T, index: pd.Index) -> T:
    """`first` with numeric variables averaged (NaN skipped) over samples of the same time.

    The samples of a time are contiguous (sorted); with at most `m` repeats the mean is
    taken over `m` vectorised selections (the j-th sample of every time, masked where a
    time has fewer), which stays lazy and costs nothing per time, unlike a groupby.
    """
    ds = obj.to_dataset(name="_") if isinstance(obj, xr.DataArray) else obj
    numeric = [k for k, v in ds.data_vars.items() if np.issubdtype(v.dtype, np.number)]
    values = ds[numeric].reset_coords(drop=True)
    starts = np.flatnonzero(~index.duplicated())
    counts = np.diff(np.append(starts, index.size))
    parts = [
        values.isel(time=np.minimum(starts + j, starts + counts - 1)).where(
            xr.DataArray(j < counts, dims="time")
        )
        for j in range(counts.max())
    ]
    mean = xr.concat(parts, dim="_repeat").mean("_repeat", keep_attrs=True)
    mean = mean.assign({k: mean[k].transpose(*ds[k].dims) for k in numeric})
    if isinstance(obj, xr.DataArray):
        return first.copy(data=mean["_"].data) if numeric else first
    return first.assign({k: mean[k].variable for k in numeric})


def _check_overlap(ranges: Mapping[Hashable, tuple[np.datetime64, np.datetime64]]) -> None:
    """Raise unless the sources' ranges join up into one span (each overlaps a neighbour)."""
    ordered = sorted(ranges.items(), key=lambda item: item[1][0])
    end = ordered[0][1][1]
    for _, (start, stop) in ordered[1:]:
        if start > end:
            listed = "\n  ".join(
                f"{name!r}: {_iso(a)} to {_iso(b)} UTC" for name, (a, b) in ranges.items()
            )
            raise OptionError(
                "sources do not overlap in time:\n  "
                f"{listed}\ncheck the timezone= each was opened with; pass origin='each' to "
                "compare them from their own starts, or require_overlap=False"
            )
        end = max(end, stop)


def _iso(t: np.datetime64) -> str:
    return pd.Timestamp(t).isoformat()


def _origin(origin: Origin, name: str, ranges, timezone: str) -> np.datetime64:
    if origin is None:
        return min(start for start, _ in ranges.values())
    if isinstance(origin, str):
        if origin == "each":
            return ranges[name][0]
        if origin == "first":
            return next(iter(ranges.values()))[0]
        if origin in ranges:
            return ranges[origin][0]
    try:
        return to_utc([origin], timezone)[0]
    except (ValueError, TypeError) as err:
        raise OptionError(
            f"origin={origin!r}: expected None, 'first', 'each', a source name "
            f"({', '.join(map(repr, ranges))}) or a time ({err})"
        ) from None
