"""ISIS JournalViewer log exports (e.g. a sample temperature): reader and writer.

An export is two comment lines, then space-separated rows of seconds relative
to the run start, the value, and a local timestamp; a row may end in a
``# comment``::

    # Property: 'Temp2'
    # seconds(absolute)  y   time(relative)
    -2410     17.2908     13/12/24T14:20:29   # 12345
    -2401     17.2805     13/12/24T14:20:38

(The second line's labels are the other way round from the columns.)
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from beamcat.catalog._localtime import local_to_utc
from beamcat.catalog._logtable import (
    from_utc,
    open_logs,
    parse_numbers,
    parse_times,
    per_time,
    read_lines,
    row_error,
    strptime_parser,
    write_atomic,
)
from beamcat.errors import FormatError, OptionError

FORMAT = "temperature-log"
_EXPECTED = "an ISIS JournalViewer log export ('<seconds> <value> <dd/mm/yyTHH:MM:SS>' rows)"
_STAMP = "%d/%m/%yT%H:%M:%S"
_STAMPS = {"dd/mm/yyTHH:MM:SS": _STAMP, "dd/mm/YYYYTHH:MM:SS": "%d/%m/%YT%H:%M:%S"}
_PARSERS = {layout: strptime_parser(format) for layout, format in _STAMPS.items()}
_PROPERTY = re.compile(r"^#\s*Property:\s*'?(?P<name>[^']*?)'?\s*$")


def open_temperature_log(
    source: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    timezone: str | None = None,
    units: str = "degC",
    name: str | None = None,
) -> xr.Dataset:
    """Open ISIS JournalViewer log exports (a sample temperature) as a time series.

    Parameters
    ----------
    source : path, glob, folder or list of paths
        One export, or several (joined along ``time``).
    timezone : str, optional
        IANA zone of the wall clock of the timestamps; times come out in UTC.
        None (default) reads them as UTC with a `BeamcatWarning`, and
        ``attrs["timezone_assumed"]`` says so.
    units : str
        Units of the logged value (the export does not say); ``degC`` for
        ISIS sample temperatures such as ``Temp2``.
    name : str, optional
        Variable name; by default the ``# Property: '<name>'`` line's name
        (``"temperature"`` when there is none).

    Returns
    -------
    xarray.Dataset
        The value along ``(time,)``; coordinates ``time`` (UTC) and
        ``elapsed`` (s relative to the run start, as logged: negative before
        it). ``attrs["signal"]`` names the variable, ``attrs["property"]`` is
        the logged property. Every row is kept, so ``time`` can repeat (the
        ISIS example logs two readings at 15:25:26); use
        ``ds.drop_duplicates("time")`` before aligning with other logs by label.

    Raises
    ------
    FormatError
        Empty or binary file, no data row, or a row that does not parse (the
        message names the line).

    Examples
    --------
    >>> ds = open_temperature_log("example-temp.csv", timezone="Europe/London")  # doctest: +SKIP
    >>> ds["Temp2"].plot()  # doctest: +SKIP
    """
    return open_logs(
        source, lambda path: _read_export(path, timezone=timezone, units=units, name=name), FORMAT
    )


def _read_export(path: Path, *, timezone: str | None, units: str, name: str | None) -> xr.Dataset:
    lines = read_lines(path, _EXPECTED)
    prop, stray = None, None
    rows, line_numbers = [], []
    for i, line in enumerate(lines, start=1):
        fields = line.partition("#")[0].split()  # rows may end in '# 12345'
        if not rows:  # before the data: comments, and the first row found by its content
            match = _PROPERTY.match(line.strip())
            if match and prop is None:
                prop = match["name"]
            if not _is_data_row(fields):
                if fields and not line.lstrip().startswith("#"):
                    stray = stray or (i, line.strip())  # text that is not a comment
                continue
            if stray:  # before the first data row: a garbled row, not a header
                raise row_error(
                    path,
                    stray[0],
                    f"{stray[1]!r} is neither a '#' comment nor a row "
                    "'<seconds> <value> <dd/mm/yyTHH:MM:SS>'",
                )
        elif not fields:
            continue
        if len(fields) != 3:
            raise row_error(
                path, i, f"{len(fields)} fields: expected '<seconds> <value> <dd/mm/yyTHH:MM:SS>'"
            )
        rows.append(fields)
        line_numbers.append(i)
    if not rows:
        raise FormatError(
            f"{path}: no data rows: expected lines '<seconds> <value> <dd/mm/yyTHH:MM:SS>' "
            "after the '# Property' header (ISIS JournalViewer export)"
        )
    line_numbers = np.asarray(line_numbers)
    relative, value, stamp = zip(*rows, strict=True)
    var = name or (re.sub(r"\W+", "_", prop).strip("_") if prop else "") or "temperature"
    local = parse_times(stamp, line_numbers, path, "timestamp", _PARSERS)
    time, zone = local_to_utc(local, timezone, path)
    ds = xr.Dataset(
        {
            var: (
                "time",
                parse_numbers(value, line_numbers, path, "value"),
                {"long_name": prop or var, "units": units},
            )
        },
        coords={
            "time": ("time", time),
            "elapsed": (
                "time",
                parse_numbers(relative, line_numbers, path, "relative seconds"),
                {"units": "s", "long_name": "time relative to the run start"},
            ),
        },
    )
    ds.attrs.update(signal=var, property=prop or "", **zone, **lines.attrs())
    return ds


def _is_data_row(fields: list[str]) -> bool:
    """Whether split fields read as '<seconds> <value> <timestamp>'."""
    if len(fields) != 3:
        return False
    try:
        float(fields[0]), float(fields[1])
    except ValueError:
        return False
    for format in _STAMPS.values():
        try:
            datetime.strptime(fields[2], format)
        except ValueError:
            continue
        return True
    return False


def write_temperature_log(
    path: str | os.PathLike,
    times: Sequence | np.ndarray | pd.DatetimeIndex,
    temperatures: Sequence[float] | np.ndarray,
    *,
    property: str = "Temp2",
    run_start=None,
    timezone: str = "UTC",
) -> Path:
    """Write an ISIS JournalViewer log export in the layout of the real ones.

    Parameters
    ----------
    path : path
        Output file (written atomically).
    times : datetimes (time,)
        UTC when naive; written to the second (the format's resolution) as
        the local wall clock of `timezone`.
    temperatures : array (time,)
        Logged values (degC for a temperature).
    property : str
        The ``# Property: '<property>'`` name; the reader names the variable so.
    run_start : datetime-like, optional
        Origin of the relative-seconds column (UTC when naive); the first time
        by default.
    timezone : str
        IANA zone of the written wall clock.

    Returns
    -------
    Path
        The written file; `open_temperature_log` reads it back.

    Examples
    --------
    >>> write_temperature_log(  # doctest: +SKIP
    ...     "temp.csv", ["2024-12-13T14:20:29", "2024-12-13T14:20:38"], [17.2908, 17.2805]
    ... )
    """
    local = from_utc(times, timezone).round("s")
    values = per_time(temperatures, len(local), "temperatures", np.float64)
    if not np.all(np.isfinite(values)):
        raise OptionError("temperatures: the format has no missing-value marker; got NaN or inf")
    origin = local[0] if run_start is None else from_utc([run_start], timezone)[0]
    relative = np.round((local - origin) / pd.Timedelta(1, "s")).astype(np.int64)
    rows = [
        f"{r}     {np.format_float_positional(v, trim='-')}     {t:{_STAMP}}\n"
        for r, v, t in zip(relative, values, local, strict=True)
    ]
    # JournalViewer ends the export with an empty line
    text = f"# Property: '{property}'\n# seconds(absolute)  y   time(relative)\n{''.join(rows)}\n"
    return write_atomic(path, text)
