"""Helpers shared by the experiment-log readers and writers (small text tables).

Logs are a few thousand rows, so they are read eagerly: lines are split in
Python (keeping each row's line number for error messages) and columns are
converted with vectorised pandas calls. Writers write atomically.
"""

from __future__ import annotations

import csv
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from beamcat._util import atomic_open, provenance
from beamcat.catalog._paths import expand_source
from beamcat.errors import BeamcatWarning, FormatError, OptionError

#: parses a column of strings into naive times, NaT where a string does not fit
TimeParser = Callable[[pd.Series], pd.DatetimeIndex]


class LogLines(list):
    """The lines of a log file; ``cut_line`` is the number of a last line left out as cut."""

    cut_line: int | None = None

    def attrs(self) -> dict:
        """``{"cut_line": n}`` when the last line was left out, else nothing."""
        return {} if self.cut_line is None else {"cut_line": self.cut_line}


def read_lines(path: Path, expected: str) -> LogLines:
    """The lines of a text file; FormatError for an empty or binary file.

    Loggers end every line they write; a file whose last line has no end of line
    was cut while being written or copied, and that line may hold a number cut
    short ("320" of "32041"). It is left out with a `BeamcatWarning`, and
    `LogLines.attrs` gives the ``cut_line`` attr that records it.
    """
    data = path.read_bytes()
    if not data.strip():
        raise FormatError(f"{path}: empty file: expected {expected}")
    if b"\x00" in data[:8192]:
        raise FormatError(f"{path}: binary data (NUL bytes): expected {expected}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:  # Windows exports may carry cp1252 unit signs
        text = data.decode("latin-1")
    lines = LogLines(text.splitlines())
    if not data.endswith((b"\n", b"\r")) and lines[-1].strip():
        lines.cut_line = len(lines)
        warnings.warn(
            f"{path}, line {len(lines)}: the file ends inside this line (no end of line): "
            f"it was cut; the line is left out ({lines.pop()!r}); attrs['cut_line'] says so",
            BeamcatWarning,
            stacklevel=3,
        )
    return lines


def split_csv(lines: Sequence[str], path: Path) -> list[list[str]]:
    """Each line's comma-separated cells, stripped; one parse per line keeps row == line.

    csv's own errors (a field over its size limit, a NUL byte) name the line.
    """
    rows = []
    for i, line in enumerate(lines, start=1):
        try:
            rows.append([c.strip() for c in next(csv.reader([line]), [])])
        except csv.Error as err:
            raise row_error(path, i, f"not a CSV row ({err})") from None
    return rows


def row_error(path: Path, line: int, message: str) -> FormatError:
    """A FormatError naming the file and its 1-based line number."""
    return FormatError(f"{path}, line {line}: {message}")


def parse_numbers(
    values: Sequence[str],
    lines: np.ndarray,
    path: Path,
    what: str,
    *,
    allow_empty: bool = False,
    integer: bool = False,
) -> np.ndarray:
    """Convert a column of strings to float64 (or int64), naming the first bad row.

    Empty cells (and ``nan``) become NaN where `allow_empty`, else they are errors.
    """
    text = pd.Series([v.strip() for v in values], dtype=object)
    out = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
    missing = text.str.lower().isin(["", "nan"]).to_numpy()
    bad = (np.isnan(out) & ~(missing & allow_empty)) | np.isinf(out)
    if integer:
        bad |= ~np.isnan(out) & (out != np.round(out))
    if bad.any():
        i = int(np.argmax(bad))
        kind = "an integer" if integer else "a number"
        kind = f"{kind}: it is infinite" if np.isinf(out[i]) else kind
        raise row_error(path, int(lines[i]), f"{what} {values[i]!r} is not {kind}")
    return out.astype(np.int64) if integer else out


def parse_times(
    values: Sequence[str],
    lines: np.ndarray,
    path: Path,
    what: str,
    parsers: dict[str, TimeParser],
) -> pd.DatetimeIndex:
    """Parse a column of timestamps with the first parser that reads every row.

    `parsers` maps a description of the layout (for the error message) to a
    parser. When none reads every row, the error names the first row that the
    best parser could not read.
    """
    text = pd.Series([v.strip() for v in values], dtype=object)
    best = None
    for layout, parse in parsers.items():
        parsed = parse(text)
        failed = np.asarray(parsed.isna())
        if not failed.any():
            return parsed
        if best is None or failed.sum() < best[1].sum():
            best = (layout, failed)
    i = int(np.argmax(best[1]))
    expected = " or ".join(repr(k) for k in parsers)
    raise row_error(path, int(lines[i]), f"{what} {values[i]!r} is not a time like {expected}")


def strptime_parser(format: str) -> TimeParser:
    """A TimeParser for one strftime layout."""

    def parse(text: pd.Series) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(pd.to_datetime(text, format=format, errors="coerce"))

    return parse


def from_utc(times: Sequence | np.ndarray | pd.DatetimeIndex, timezone: str) -> pd.DatetimeIndex:
    """Wall-clock (naive local) times of `timezone` for UTC times; the writers' inverse of to_utc.

    Naive input is UTC (the data model's convention); aware input is converted.
    """
    try:
        index = pd.DatetimeIndex(pd.to_datetime(times))
    except (TypeError, ValueError) as err:
        raise OptionError(f"times: expected datetimes, got {err}") from None
    if index.tz is None:
        index = index.tz_localize("UTC")
    return index.tz_convert(timezone).tz_localize(None)


def per_time(values, n: int, what: str, dtype) -> np.ndarray:
    """A writer's column as a 1-d array of `n` values (one per time), else OptionError."""
    out = np.asarray(values)
    if out.shape != (n,):
        raise OptionError(f"{what}: expected {n} values (one per time), got shape {out.shape}")
    return out.astype(dtype)


def write_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write `text` to a temporary file beside `path`, then rename it into place."""
    path = Path(path)
    with atomic_open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    return path


def open_logs(
    source,
    read_one: Callable[[Path], xr.Dataset],
    format: str,
    *,
    sort: bool = True,
) -> xr.Dataset:
    """Read every file of `source` with `read_one` and join them along ``time``.

    Rows are sorted by time where `sort` (else they keep file order). With
    several files (an experiment's logs split over runs), ``elapsed`` is
    re-expressed in seconds since the earliest file's origin (time - elapsed
    of its first row), and species missing from a file are NaN there.
    """
    files = expand_source(source)
    parts = [read_one(f) for f in files]
    if len(parts) == 1:
        ds = parts[0]
    else:
        origins = [p.time.values[0] - _seconds_to_ns(p.elapsed.values[0]) for p in parts]
        ds = xr.concat(
            parts,
            dim="time",
            data_vars="all",
            coords="different",
            compat="equals",
            join="outer",
            combine_attrs="drop_conflicts",
        )
        elapsed = (ds.time.values - min(origins)) / np.timedelta64(1, "s")
        ds = ds.assign_coords(elapsed=("time", elapsed, parts[0].elapsed.attrs))
    if sort and not ds.indexes["time"].is_monotonic_increasing:
        ds = ds.sortby("time")  # stable: equal times keep file order
    ds.attrs.update(provenance(files[0] if len(files) == 1 else files, format))
    return ds


def _seconds_to_ns(seconds: float) -> np.timedelta64:
    return np.timedelta64(round(float(seconds) * 1e9), "ns")
