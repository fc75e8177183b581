"""IMAT camera frame logs: one CSV row per saved frame; reader and writer.

The IMAT acquisition scripts write, per saved image, ``time.ctime()``, the
image type, the image counter and the beam-monitor counts before and after::

    TIME STAMP,IMAGE TYPE,IMAGE COUNTER,COUNTS BM3 before image,COUNTS BM3 after image
    Fri Dec 13 14:20:29 2024,Radiography,0,Monitor 3 before: 4577907,Monitor 3 after: 4720271

The header row may be missing, monitor cells may be plain integers, and
tomography logs have a sixth column, the angle, before the monitor counts.
Rows whose type says ``Stopping`` are not frames and are skipped (as
imat_roi_analysis' 03_Image_Processing.py does).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
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
    split_csv,
    strptime_parser,
    write_atomic,
)
from beamcat.errors import FormatError, OptionError

FORMAT = "imat-log"
_EXPECTED = "an IMAT frame log (CSV rows: time,type,count,monbefore,monafter)"
HEADER = "TIME STAMP,IMAGE TYPE,IMAGE COUNTER,COUNTS BM3 before image,COUNTS BM3 after image"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_CTIME = (
    r"^\w{3}\s+(?P<month>\w{3})\s+(?P<day>\d{1,2})\s+"
    r"(?P<clock>\d{1,2}:\d{2}:\d{2})\s+(?P<year>\d{4})$"
)


def _parse_ctime(text: pd.Series) -> pd.DatetimeIndex:
    """Locale-free parse of ``time.ctime()`` ('Fri Dec 13 14:20:29 2024'; day space-padded)."""
    parts = text.str.extract(_CTIME)
    month = parts["month"].map({m: f"{i:02d}" for i, m in enumerate(_MONTHS, start=1)})
    iso = parts["year"] + "-" + month + "-" + parts["day"].str.zfill(2) + " " + parts["clock"]
    return pd.DatetimeIndex(pd.to_datetime(iso, format="%Y-%m-%d %H:%M:%S", errors="coerce"))


_PARSERS = {
    "Fri Dec 13 14:20:29 2024": _parse_ctime,
    "2024-12-13 14:20:29": strptime_parser("ISO8601"),
    "13/12/2024 14:20:29": strptime_parser("%d/%m/%Y %H:%M:%S"),
}


def open_imat_log(
    source: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    timezone: str | None = None,
) -> xr.Dataset:
    """Open IMAT frame logs: one time per saved frame.

    Parameters
    ----------
    source : path, glob, folder or list of paths
        One log, or several (joined along ``time``).
    timezone : str, optional
        IANA zone of the acquisition PC's wall clock (``"Europe/London"`` at
        ISIS); times come out in UTC, aligned with the other logs. None
        (default) reads them as UTC with a `BeamcatWarning`, and
        ``attrs["timezone_assumed"]`` says so.

    Returns
    -------
    xarray.Dataset
        Along ``(time,)``: ``count`` (image counter), ``monbefore`` and
        ``monafter`` (beam-monitor counts around the exposure), ``type``
        (str, e.g. ``"Radiography"``), and ``angle`` (deg) for tomography
        logs. Coordinates ``time`` (UTC; 1 s resolution) and ``elapsed`` (s
        since the first frame), in file order: row i is frame i (less
        ``Stopping`` rows). ``attrs["signal"]`` is ``"count"``.

    Raises
    ------
    FormatError
        Empty or binary file, no frame row, or a row that does not parse
        (the message names the line).

    Examples
    --------
    >>> log = open_imat_log("IMAT00032939_log.csv", timezone="Europe/London")  # doctest: +SKIP
    >>> log.time.size  # one per TIFF frame  # doctest: +SKIP
    """
    # rows stay in file order, one per frame, even where the PC clock stepped back
    return open_logs(source, lambda path: _read_log(path, timezone=timezone), FORMAT, sort=False)


def _read_log(path: Path, *, timezone: str | None) -> xr.Dataset:
    rows, line_numbers = [], []
    first = True
    lines = read_lines(path, _EXPECTED)
    for i, fields in enumerate(split_csv(lines, path), start=1):
        if not any(fields):
            continue
        if first and _is_header(fields):
            first = False
            continue
        first = False
        if len(fields) > 1 and "stopping" in fields[1].lower():
            continue
        if len(fields) not in (5, 6):
            raise row_error(
                path,
                i,
                f"{len(fields)} fields: expected 5 (time,type,count,monbefore,monafter), "
                "or 6 with the angle",
            )
        if rows and len(fields) != len(rows[0]):
            raise row_error(path, i, f"{len(fields)} fields where earlier rows have {len(rows[0])}")
        rows.append(fields)
        line_numbers.append(i)
    line_numbers = np.asarray(line_numbers)
    if not rows:
        raise FormatError(
            f"{path}: no frame rows: expected CSV rows time,type,count,monbefore,monafter"
        )
    columns = list(zip(*rows, strict=True))
    monitors = [_after_colon(c) for c in columns[-2:]]

    def integers(values, what):
        return parse_numbers(values, line_numbers, path, what, integer=True)

    data = {
        "count": ("time", integers(columns[2], "image counter"), {"long_name": "image counter"}),
        "monbefore": (
            "time",
            integers(monitors[0], "monitor count before"),
            {"long_name": "beam monitor counts before the image", "units": "counts"},
        ),
        "monafter": (
            "time",
            integers(monitors[1], "monitor count after"),
            {"long_name": "beam monitor counts after the image", "units": "counts"},
        ),
        "type": ("time", np.asarray(columns[1], dtype=str), {"long_name": "image type"}),
    }
    if len(rows[0]) == 6:
        angle = parse_numbers(_after_colon(columns[3]), line_numbers, path, "angle")
        data["angle"] = ("time", angle, {"long_name": "projection angle", "units": "deg"})
    local = parse_times(columns[0], line_numbers, path, "time stamp", _PARSERS)
    time, zone = local_to_utc(local, timezone, path)
    elapsed = (time - time[0]) / np.timedelta64(1, "s")
    return xr.Dataset(
        data,
        coords={
            "time": ("time", time),
            "elapsed": ("time", elapsed, {"units": "s", "long_name": "time since the first frame"}),
        },
        attrs={"signal": "count", **zone, **lines.attrs()},
    )


def _is_header(fields: list[str]) -> bool:
    """A first row whose image-counter cell is not a number ('IMAGE COUNTER', 'count')."""
    try:
        float(fields[2] if len(fields) > 2 else "")
    except ValueError:
        return True
    return False


def _after_colon(values: Sequence[str]) -> list[str]:
    """'Monitor 3 before: 4577907' -> '4577907'; plain numbers pass through."""
    return [v.rpartition(":")[2] for v in values]


def write_imat_log(
    path: str | os.PathLike,
    times: Sequence | np.ndarray | pd.DatetimeIndex,
    counts: Sequence[int] | np.ndarray | None = None,
    *,
    monbefore: Sequence[int] | np.ndarray | None = None,
    monafter: Sequence[int] | np.ndarray | None = None,
    image_type: str = "Radiography",
    header: bool = True,
    timezone: str = "UTC",
) -> Path:
    """Write an IMAT frame log in the layout of the IMAT acquisition scripts.

    Parameters
    ----------
    path : path
        Output file (written atomically).
    times : datetimes (time,)
        One per frame, UTC when naive; written to the second with
        ``time.ctime()``'s layout as the wall clock of `timezone`.
    counts : ints (time,), optional
        Image counter; ``0, 1, 2, ...`` by default.
    monbefore, monafter : ints (time,), optional
        Beam-monitor counts before and after each image; 0 by default.
    image_type : str
        ``"Radiography"``, ``"Dark Field"`` ...
    header : bool
        Write the ``TIME STAMP,IMAGE TYPE,...`` header row.
    timezone : str
        IANA zone of the written wall clock.

    Returns
    -------
    Path
        The written file; `open_imat_log` reads it back.

    Examples
    --------
    >>> times = ["2024-12-13T14:20:29", "2024-12-13T14:20:59"]
    >>> write_imat_log("run_log.csv", times, monbefore=[0, 9], monafter=[9, 18])  # doctest: +SKIP
    """
    local = from_utc(times, timezone).round("s")
    n = len(local)
    columns = [
        per_time(np.arange(n) if counts is None else counts, n, "counts", np.int64),
        per_time(np.zeros(n) if monbefore is None else monbefore, n, "monbefore", np.int64),
        per_time(np.zeros(n) if monafter is None else monafter, n, "monafter", np.int64),
    ]
    if "," in image_type or "stopping" in image_type.lower():
        raise OptionError(f"image_type={image_type!r}: expected a name without ',' or 'Stopping'")
    rows = [HEADER] if header else []
    rows += [
        f"{_ctime(t)},{image_type},{c},Monitor 3 before: {b},Monitor 3 after: {a}"
        for t, c, b, a in zip(local, *columns, strict=True)
    ]
    return write_atomic(path, "".join(r + "\n" for r in rows))


def _ctime(t: pd.Timestamp) -> str:
    """``time.ctime()`` layout without the locale: 'Fri Dec  3 14:20:29 2024'."""
    return f"{_DAYS[t.day_of_week]} {_MONTHS[t.month - 1]} {t.day:2d} {t:%H:%M:%S} {t.year}"
