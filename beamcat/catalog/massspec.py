"""Hiden HAL RGA mass-spectrometer CSV exports: reader and writer.

An export is a header block, then a table of partial pressures per species::

    58,scans,106,DataLength,,,,,,,
    header,25,lines,,,,,,,,
    Date,13/12/2024,Time,11:46:49,,,,,,,          <- start (local wall clock)
    ID,HAL 8 RC RGA 201 #14052,Version,4,,,,,,,
    Scans,6,,,,,,,,,
    Scan ID,Mode,Input,Scanned,Start,Stop,Increment,Dwell,Settle,RS,RelSEM
    Scan 1,RGA,Faraday,mass,2,2,0.01,100.00%,100.00%,0.44,1
    ...
    Environment,,,,,,,,,,
    Global,RGA,,,,,,,,,
    cage,3,V,,,,,,,,
    ...
    Data,6,,,,,,,,,
    ,,,,,,,,,,
    Time,ms,Hydrogen (2),Helium (4),Water (18),,,,,,   <- data header
    00:00:04,4635,0.000000036,0.000034,0.000000911,,,,,,

Header rows are found by their content, not by fixed row numbers (the data
header moves with the number of scans and environment entries).
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from beamcat._util import to_utc
from beamcat.catalog._localtime import local_to_utc
from beamcat.catalog._logtable import (
    from_utc,
    open_logs,
    parse_numbers,
    per_time,
    read_lines,
    row_error,
    split_csv,
    write_atomic,
)
from beamcat.errors import FormatError, OptionError

FORMAT = "massspec-csv"
_EXPECTED = "a Hiden RGA CSV export (header block, then a 'Time,ms,<species (mass)>...' table)"
_START_FORMAT = "%d/%m/%Y %H:%M:%S"
_SPECIES = re.compile(r"^(?P<name>.*?)\s*\(\s*(?P<mass>\d+(?:\.\d+)?)\s*\)$")
_PRESSURE_UNITS = {"torr": "Torr", "mbar": "mbar", "pa": "Pa", "amps": "A"}
#: partial-pressure unit assumed when an export does not name one (an assumption: the
#: ISIS example states none, and its author plotted 'Arb. units')
DEFAULT_UNITS = "Torr"
_SCAN_COLUMNS = "Scan ID,Mode,Input,Scanned,Start,Stop,Increment,Dwell,Settle,RS,RelSEM"
#: the environment block of the example export (HAL 8 RC RGA 201), written by default
DEMO_ENVIRONMENT: dict[str, tuple[str, str]] = {
    "Global": ("RGA", ""),
    "F1": ("1", "( 1 = on, 0 = off )"),
    "F2": ("0", "( 1 = on, 0 = off )"),
    "cage": ("3", "V"),
    "delta-m": ("0", "%"),
    "electron-energy": ("70", "V"),
    "emission": ("200", "uA"),
    "focus": ("-90", "V"),
    "mass": ("5.5", "amu"),
    "mode-change-delay": ("1000", "ms"),
    "multiplier": ("980", "V"),
    "resolution": ("0", "%"),
}


def open_massspec_csv(
    source: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    timezone: str | None = None,
    units: str | None = None,
    elapsed_column: str | None = None,
) -> xr.Dataset:
    """Open Hiden HAL RGA CSV exports as partial-pressure time series.

    Parameters
    ----------
    source : path, glob, folder or list of paths
        One export, or several of one experiment (joined along ``time``).
    timezone : str, optional
        IANA zone of the wall clock the file's ``Date,...,Time,...`` row was
        written in; times come out in UTC; None (default) reads them as UTC with a
        `BeamcatWarning`, and ``attrs["timezone_assumed"]`` says so.
    units : str, optional
        Partial-pressure unit. By default the unit the header block names
        (Torr, mbar, Pa or amps); exports that name none (like the ISIS
        example) are taken to be in Torr (an assumption: Hiden software
        offers Torr, mbar and Pa), and the variables say so in
        ``attrs["comment"]``.
    elapsed_column : {"ms", "Time"}, optional
        Which column gives the time since the start: ``"ms"`` (milliseconds,
        the default when present) or ``"Time"`` (``HH:MM:SS``, whole
        seconds, truncated; what imat_roi_analysis' 02a script used).

    Returns
    -------
    xarray.Dataset
        One variable per species along ``(time,)``, named by the species
        (``"Hydrogen (2)"`` -> ``Hydrogen``; ``/`` and spaces become ``_``;
        a name repeated at several masses gets ``_<mass>``), with
        ``attrs``: ``long_name`` (the column title), ``mass`` (amu),
        ``units``, ``detector``. Coordinates ``time`` (UTC) and ``elapsed``
        (s since the start). ``attrs["signal"]`` is the first species; the
        scan table and environment block are in ``attrs`` (``scan_masses``,
        ``detector``, ``instrument``, ``env_<key>`` and ``env_<key>_units``).

    Raises
    ------
    FormatError
        Empty or binary file, no data header or start row, or a row that does
        not parse (the message names the line).

    Examples
    --------
    >>> ds = open_massspec_csv("example-ms.csv", timezone="Europe/London")  # doctest: +SKIP
    >>> ds["Hydrogen"].plot(yscale="log")  # doctest: +SKIP
    """
    if elapsed_column not in (None, "ms", "Time"):
        raise OptionError(f"elapsed_column={elapsed_column!r}: expected 'ms', 'Time' or None")
    return open_logs(
        source,
        lambda path: _read_export(
            path, timezone=timezone, units=units, elapsed_column=elapsed_column
        ),
        FORMAT,
    )


def _read_export(
    path: Path, *, timezone: str | None, units: str | None, elapsed_column: str | None
) -> xr.Dataset:
    lines = read_lines(path, _EXPECTED)
    rows = split_csv(lines, path)
    header_i = _find_data_header(rows)
    if header_i is None:
        raise FormatError(
            f"{path}: no data header row: expected a row starting 'Time,ms,' followed by "
            "species columns such as 'Hydrogen (2)' (Hiden RGA CSV export)"
        )
    start = _start_time(path, rows, header_i)
    names, columns, line_numbers = _data_table(path, rows, header_i)
    has_ms = _cell(names, 1).lower() == "ms"
    first_species = 2 if has_ms else 1
    if len(names) <= first_species:
        raise row_error(path, header_i + 1, "the data header names no species column")

    column = elapsed_column or ("ms" if has_ms else "Time")
    if column == "ms":
        if not has_ms:
            raise row_error(path, header_i + 1, "no 'ms' column after 'Time' in the data header")
        elapsed = parse_numbers(columns[1], line_numbers, path, "ms") / 1000.0
    else:
        elapsed = _hms_seconds(columns[0], line_numbers, path)
    offsets = pd.to_timedelta(np.round(elapsed * 1e9).astype(np.int64), unit="ns")

    block = rows[:header_i]
    stated = _stated_units(block)
    var_attrs = {"units": units or stated or DEFAULT_UNITS}
    if units is None and stated is None:
        var_attrs["comment"] = (
            f"the export does not name its pressure unit; {DEFAULT_UNITS} assumed (pass units=)"
        )
    detectors = _scan_detectors(block)
    species = [_species(name) for name in names[first_species:]]
    variables = {}
    for title, (label, mass), name, values in zip(
        names[first_species:],
        species,
        _unique_names(species),
        columns[first_species:],
        strict=True,
    ):
        attrs = {"long_name": title, **var_attrs}
        if mass is not None:
            attrs["mass"] = mass
            if mass in detectors:
                attrs["detector"] = detectors[mass]
        values = parse_numbers(values, line_numbers, path, f"{label!r} value", allow_empty=True)
        variables[name] = ("time", values, attrs)

    time, zone = local_to_utc(start + offsets, timezone, path)
    ds = xr.Dataset(
        variables,
        coords={
            "time": ("time", time),
            "elapsed": ("time", elapsed, {"units": "s", "long_name": "time since the start"}),
        },
    )
    ds.attrs.update(
        signal=next(iter(variables)),
        start_time=pd.Timestamp(to_utc([start], zone.get("timezone", "UTC"))[0])
        .tz_localize("UTC")
        .isoformat(),
        **zone,
        **_header_attrs(block),
        **lines.attrs(),
    )
    return ds


def _start_time(path: Path, rows: list[list[str]], header_i: int) -> pd.Timestamp:
    """The local start from the 'Date,dd/mm/YYYY,Time,HH:MM:SS' row of the header block."""
    for i, row in enumerate(rows[:header_i]):
        if _cell(row, 0) == "Date" and _cell(row, 2) == "Time":
            text = f"{_cell(row, 1)} {_cell(row, 3)}"
            try:
                return pd.to_datetime(text, format=_START_FORMAT)
            except ValueError:
                raise row_error(
                    path, i + 1, f"start {text!r} is not 'dd/mm/YYYY HH:MM:SS'"
                ) from None
    raise FormatError(
        f"{path}: no start-time row before the data header (line {header_i + 1}): "
        "expected a row 'Date,dd/mm/YYYY,Time,HH:MM:SS'"
    )


def _data_table(
    path: Path, rows: list[list[str]], header_i: int
) -> tuple[list[str], list[tuple[str, ...]], np.ndarray]:
    """Column titles, columns of cells and the line number of each data row."""
    names = rows[header_i]
    while names and not names[-1]:  # exports pad every row with empty columns
        names.pop()
    for j, name in enumerate(names):
        if not name:
            raise row_error(path, header_i + 1, f"column {j + 1} of the data header is empty")
    table, line_numbers = [], []
    for i in range(header_i + 1, len(rows)):
        row = rows[i]
        if not any(row):
            continue
        extra = [c for c in row[len(names) :] if c]
        if extra:
            raise row_error(
                path, i + 1, f"value {extra[0]!r} beyond the {len(names)} named columns"
            )
        table.append(row[: len(names)] + [""] * (len(names) - len(row)))
        line_numbers.append(i + 1)
    if not table:
        raise row_error(path, header_i + 1, "no data rows after the data header")
    return names, list(zip(*table, strict=True)), np.asarray(line_numbers)


def _cell(row: list[str], j: int) -> str:
    return row[j] if j < len(row) else ""


def _find_data_header(rows: list[list[str]]) -> int | None:
    """The 'Time,ms,...' row: first cell 'Time', then a named column."""
    for i, row in enumerate(rows):
        if _cell(row, 0) == "Time" and _cell(row, 1):
            return i
    return None


def _hms_seconds(values: Sequence[str], lines: np.ndarray, path: Path) -> np.ndarray:
    """Seconds from 'HH:MM:SS' elapsed times (hours may exceed 24)."""
    text = pd.Series([v.strip() for v in values], dtype=object)
    parsed = pd.to_timedelta(text.where(text.str.count(":") == 2), errors="coerce")
    bad = np.asarray(parsed.isna())
    if bad.any():
        i = int(np.argmax(bad))
        raise row_error(path, int(lines[i]), f"Time {values[i]!r} is not an elapsed 'HH:MM:SS'")
    return parsed.to_numpy() / np.timedelta64(1, "s")


def _species(column: str) -> tuple[str, float | int | None]:
    """'Hydrogen (2)' -> ('Hydrogen', 2); a title without a mass keeps mass None."""
    match = _SPECIES.match(column)
    if match is None:
        return column, None
    mass = float(match["mass"])
    return match["name"] or column, int(mass) if mass.is_integer() else mass


def _unique_names(species: list[tuple[str, float | int | None]]) -> list[str]:
    """Variable names: non-word runs -> '_'; a name repeated at several masses gets '_<mass>'."""
    clean = [re.sub(r"\W+", "_", label).strip("_") or f"mass_{mass}" for label, mass in species]
    repeated = {n for n in clean if clean.count(n) > 1}
    names = [
        f"{n}_{m}" if n in repeated and m is not None else n
        for n, (_, m) in zip(clean, species, strict=True)
    ]
    seen: dict[str, int] = {}
    unique = []
    for n in names:  # the same title twice: keep both columns, number the second
        seen[n] = seen.get(n, 0) + 1
        unique.append(n if seen[n] == 1 else f"{n}_{seen[n]}")
    return unique


def _stated_units(block: list[list[str]]) -> str | None:
    for row in block:
        for cell in row:
            if cell.lower() in _PRESSURE_UNITS:
                return _PRESSURE_UNITS[cell.lower()]
    return None


def _scan_table(block: list[list[str]]) -> list[dict[str, str]]:
    """The 'Scan ID,Mode,Input,...' table as one dict per scan row."""
    for i, row in enumerate(block):
        if _cell(row, 0) == "Scan ID":
            titles = row
            scans = []
            for scan in block[i + 1 :]:
                if not _cell(scan, 0).startswith("Scan "):
                    break
                scans.append(dict(zip(titles, scan, strict=False)))
            return scans
    return []


def _scan_detectors(block: list[list[str]]) -> dict[float | int, str]:
    """Map mass -> detector input (Faraday, SEM) from the scan table."""
    out = {}
    for scan in _scan_table(block):
        mass = _number(scan.get("Start", ""))
        if isinstance(mass, int | float):
            out[mass] = scan.get("Input", "")
    return out


def _header_attrs(block: list[list[str]]) -> dict[str, str | int | float]:
    """Instrument, scan table and environment block as str/int/float attrs."""
    attrs: dict[str, str | int | float] = {}
    for row in block:
        if _cell(row, 0) == "ID":
            attrs["instrument"] = _cell(row, 1)
            if _cell(row, 2) == "Version":
                attrs["instrument_version"] = _number(_cell(row, 3))
    scans = _scan_table(block)
    if scans:
        attrs["scan_masses"] = ", ".join(s.get("Start", "") for s in scans)
        attrs["detector"] = ", ".join(dict.fromkeys(s.get("Input", "") for s in scans))
        attrs["scan_mode"] = ", ".join(dict.fromkeys(s.get("Mode", "") for s in scans))
    keys = [_cell(r, 0) for r in block]
    if "Environment" in keys:
        for row in block[keys.index("Environment") + 1 :]:
            if _cell(row, 0) == "Data":  # 'Data,<scans>' closes the block
                break
            key = re.sub(r"\W+", "_", _cell(row, 0)).strip("_")
            if not key:
                continue
            attrs[f"env_{key}"] = _number(_cell(row, 1))
            unit = _cell(row, 2)
            if unit and not unit.startswith("("):  # '( 1 = on, 0 = off )' is a legend
                attrs[f"env_{key}_units"] = unit
    return attrs


def _number(text: str) -> str | int | float:
    """An int or float when `text` is one, else the text."""
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


# --- writer -----------------------------------------------------------------------------------


def write_massspec_csv(
    path: str | os.PathLike,
    start,
    elapsed_s: Sequence[float] | np.ndarray,
    pressures: Mapping[str, tuple[float, Sequence[float] | np.ndarray]],
    *,
    timezone: str = "UTC",
    instrument: str = "HAL 8 RC RGA 201 #00000",
    detector: str = "Faraday",
    environment: Mapping[str, tuple[str, str]] | None = None,
) -> Path:
    """Write a Hiden HAL RGA CSV export in the layout of the real ones.

    Parameters
    ----------
    path : path
        Output file (written atomically).
    start : datetime-like
        Start of the recording, UTC when naive. Written to the second as the
        local wall clock of `timezone`; a fraction of a second moves into the
        elapsed times, so absolute times survive.
    elapsed_s : array (time,)
        Seconds since `start`, written as ``HH:MM:SS`` (truncated) and ``ms``.
    pressures : dict
        ``species -> (mass in amu, values (time,))``; the column is titled
        ``"<species> (<mass>)"``. NaN is written as an empty cell.
    timezone : str
        IANA zone of the wall clock written in the file.
    instrument, detector : str
        The ``ID`` row and the scan table's ``Input``.
    environment : dict, optional
        ``key -> (value, unit)`` rows of the environment block; by default
        the block of the ISIS example export.

    Returns
    -------
    Path
        The written file; `open_massspec_csv` reads it back.

    Examples
    --------
    >>> write_massspec_csv(  # doctest: +SKIP
    ...     "ms.csv", "2024-12-13T11:46:49", [4.635, 32.041],
    ...     {"Hydrogen": (2, [3.6e-8, 2.57e-8])},
    ... )
    """
    elapsed = np.asarray(elapsed_s, dtype=np.float64)
    if elapsed.ndim != 1 or not np.all(np.isfinite(elapsed)):
        raise OptionError("elapsed_s: expected a 1-d array of finite seconds")
    if not pressures:
        raise OptionError("pressures: expected at least one species")
    local = from_utc([start], timezone)[0]
    fraction = (local - local.floor("s")) / pd.Timedelta(1, "s")
    elapsed = elapsed + fraction
    if np.any(elapsed < 0):
        raise OptionError("elapsed_s: expected seconds >= 0 since start")
    columns = []
    for species, (mass, values) in pressures.items():
        values = per_time(values, elapsed.size, f"pressures[{species!r}]", np.float64)
        columns.append((f"{species} ({mass:g})", values))

    environment = DEMO_ENVIRONMENT if environment is None else environment
    scans = [
        [f"Scan {i}", "RGA", detector, "mass", f"{mass:g}", f"{mass:g}", "0.01"]
        + ["100.00%", "100.00%", "1", "1"]
        for i, (_, (mass, _)) in enumerate(pressures.items(), start=1)
    ]
    header = [
        [str(len(elapsed)), "scans", str(len(elapsed)), "DataLength"],
        [],  # 'header,<n>,lines': the count of the rows before 'Data', filled below
        ["Date", f"{local:%d/%m/%Y}", "Time", f"{local:%H:%M:%S}"],
        ["ID", instrument, "Version", "4"],
        ["Scans", str(len(scans))],
        _SCAN_COLUMNS.split(","),
        *scans,
        ["Environment"],
        *([key, value, unit] for key, (value, unit) in environment.items()),
    ]
    header[1] = ["header", str(len(header)), "lines"]
    ms = np.round(elapsed * 1000).astype(np.int64)
    hms = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in ms // 1000]
    body = [
        [t, str(m), *(_positional(v[k]) for _, v in columns)]
        for k, (t, m) in enumerate(zip(hms, ms, strict=True))
    ]
    rows = [
        *header,
        ["Data", str(len(scans))],
        [],
        ["Time", "ms", *(title for title, _ in columns)],
        *body,
    ]
    # every row is padded with empty cells to the widest row, as Hiden does
    width = max(len(r) for r in rows)
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(r + [""] * (width - len(r)) for r in rows)
    return write_atomic(path, out.getvalue())


def _positional(value: float) -> str:
    """Plain decimal like the exports (0.000000036), shortest that reads back exactly."""
    if np.isnan(value):
        return ""
    return np.format_float_positional(value, trim="-")
