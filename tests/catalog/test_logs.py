"""Experiment-log readers and writers: real ISIS examples, round trips, alignment, errors.

Ground truths: the real example files read independently the way
imat_roi_analysis' 02a/02b scripts read them (pandas with fixed rows), values
and times pinned from the raw text, and data planted by the writers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import beamcat
from beamcat.catalog.formats import sniff_format
from beamcat.catalog.logs import (
    open_imat_log,
    open_massspec_csv,
    open_temperature_log,
    write_imat_log,
    write_massspec_csv,
    write_temperature_log,
)
from beamcat.errors import BeamcatWarning, FormatError, OptionError, SourceNotFoundError


@pytest.fixture
def ms_path(shared_data):
    return shared_data / "imat_roi_analysis" / "example-ms.csv"


@pytest.fixture
def temp_path(shared_data):
    return shared_data / "imat_roi_analysis" / "example-temp.csv"


def ns(text: str) -> np.datetime64:
    return np.datetime64(text, "ns")


# --- the real examples ------------------------------------------------------------------------


def test_real_massspec(ms_path):
    ds = open_massspec_csv(ms_path, timezone="UTC")
    assert list(ds.data_vars) == ["Hydrogen", "Helium", "Water"]
    assert ds.sizes == {"time": 22}
    assert ds.time.dtype == "datetime64[ns]"
    # start 13/12/2024 11:46:49 + first/last ms column (4635, 277801): exact to the ns
    assert ds.time.values[0] == ns("2024-12-13T11:46:53.635")
    assert ds.time.values[-1] == ns("2024-12-13T11:51:26.801")
    # independent read, as the original 02a script does (data header at 0-based row 27)
    ref = pd.read_csv(ms_path, header=27)
    np.testing.assert_array_equal(ds.elapsed.values, ref["ms"].to_numpy() / 1000)
    for name, column in [("Hydrogen", "Hydrogen (2)"), ("Helium", "Helium (4)")]:
        # the same decimal text parsed by two parsers: exact
        np.testing.assert_array_equal(ds[name].values, ref[column].to_numpy())
        assert ds[name].attrs["long_name"] == column
    assert ds["Water"].values[0] == 9.11e-7 and ds["Water"].values[-1] == 6.95e-7
    assert [ds[v].attrs["mass"] for v in ds.data_vars] == [2, 4, 18]
    assert ds["Hydrogen"].attrs["detector"] == "Faraday"
    # the export names no unit: Hiden's default, and the variable says it was assumed
    assert ds["Hydrogen"].attrs["units"] == "Torr"
    assert "assumed" in ds["Hydrogen"].attrs["comment"]
    assert ds.elapsed.attrs["units"] == "s"
    assert ds.attrs["signal"] == "Hydrogen"
    assert ds.attrs["format"] == "massspec-csv"
    assert ds.attrs["source"] == str(ms_path)
    assert ds.attrs["start_time"] == "2024-12-13T11:46:49+00:00"
    assert ds.attrs["instrument"] == "HAL 8 RC RGA 201 #14052"
    assert ds.attrs["instrument_version"] == 4
    assert ds.attrs["scan_masses"] == "2, 4, 18, 27, 28, 30"
    assert ds.attrs["detector"] == "Faraday"
    assert ds.attrs["env_electron_energy"] == 70
    assert ds.attrs["env_electron_energy_units"] == "V"
    assert ds.attrs["env_mass"] == 5.5
    assert "env_F1_units" not in ds.attrs  # '( 1 = on, 0 = off )' is a legend, not a unit
    assert "env_Data" not in ds.attrs
    for value in ds.attrs.values():
        assert isinstance(value, str | int | float)


def test_real_massspec_whole_second_clock(ms_path):
    # the original script's clock: start + Timedelta('HH:MM:SS'), truncated to whole seconds
    ds = open_massspec_csv(ms_path, elapsed_column="Time", timezone="UTC")
    assert ds.time.values[0] == ns("2024-12-13T11:46:53")
    assert ds.time.values[-1] == ns("2024-12-13T11:51:26")


def test_real_massspec_units_option(ms_path):
    ds = open_massspec_csv(ms_path, units="mbar", timezone="UTC")
    assert ds["Water"].attrs["units"] == "mbar"
    assert "comment" not in ds["Water"].attrs


def test_real_temperature(temp_path):
    ds = open_temperature_log(temp_path, timezone="UTC")
    assert list(ds.data_vars) == ["Temp2"]
    assert ds.sizes == {"time": 975}
    assert ds.time.values[0] == ns("2024-12-13T14:20:29")
    assert ds.time.values[-1] == ns("2024-12-13T15:47:25")
    assert ds.elapsed.values[0] == -2410 and ds.elapsed.values[-1] == 2806
    assert ds["Temp2"].values[0] == 17.2908 and ds["Temp2"].values[-1] == 17.9283
    # independent read, as the original 02b script does
    ref = pd.read_csv(
        temp_path, sep=" ", skipinitialspace=True, usecols=[0, 1, 2], skiprows=[0, 1], header=None
    )
    np.testing.assert_array_equal(ds["Temp2"].values, ref[1].to_numpy())
    np.testing.assert_array_equal(ds.elapsed.values, ref[0].to_numpy())
    stamps = pd.to_datetime(ref[2], format="%d/%m/%yT%H:%M:%S").to_numpy(dtype="datetime64[ns]")
    np.testing.assert_array_equal(ds.time.values, stamps)
    # relative seconds and timestamps agree: one run start (15:00:39) for every row
    origin = ds.time.values - (ds.elapsed.values * 1e9).astype("timedelta64[ns]")
    assert set(origin) == {ns("2024-12-13T15:00:39")}
    assert ds["Temp2"].attrs["units"] == "degC"
    assert ds.attrs["signal"] == "Temp2" and ds.attrs["property"] == "Temp2"
    assert ds.attrs["format"] == "temperature-log"


def test_real_logs_align_on_one_utc_axis(ms_path, temp_path):
    utc = [
        open_massspec_csv(ms_path, timezone="UTC"),
        open_temperature_log(temp_path, timezone="UTC"),
    ]
    london = [
        open_massspec_csv(ms_path, timezone="Europe/London"),
        open_temperature_log(temp_path, timezone="Europe/London"),
    ]
    for a, b in zip(utc, london, strict=True):
        # December: London wall clock is UTC+0, so the times are the same
        np.testing.assert_array_equal(a.time.values, b.time.values)
    # the log repeats one timestamp (two readings at 15:25:26): kept, but aligning by
    # label needs unique times
    temp = london[1].drop_duplicates("time")
    assert temp.sizes == {"time": 974}
    both = xr.merge(
        [london[0]["Hydrogen"], temp["Temp2"]],
        join="outer",
        compat="no_conflicts",
        combine_attrs="drop",
    )
    assert both.sizes == {"time": 22 + 974}  # no shared timestamps
    assert both.time.values[0] == ns("2024-12-13T11:46:53.635")
    assert both.time.values[-1] == ns("2024-12-13T15:47:25")
    # the mass-spec run ends before the first temperature reading
    assert int(both["Hydrogen"].notnull().sum()) == 22
    assert both.time.values[21] == ns("2024-12-13T11:51:26.801")


def test_summer_wall_clock_shifts_all_logs_by_one_hour(tmp_path):
    # files whose wall clock reads 13 July 2024 11:00:00 (BST = UTC+1)
    wall = pd.Timestamp("2024-07-13T11:00:00")
    stamps = wall + pd.to_timedelta([0, 30, 60], unit="s")
    ms = write_massspec_csv(
        tmp_path / "ms.csv", wall, [0.0, 30.0, 60.0], {"Water": (18, [1, 2, 3])}
    )
    temp = write_temperature_log(tmp_path / "temp.csv", stamps, [20.0, 21.0, 22.0])
    frames = write_imat_log(tmp_path / "frames.csv", stamps)
    expected = (stamps - pd.Timedelta(1, "h")).to_numpy(dtype="datetime64[ns]")
    for path, opener in [(ms, open_massspec_csv), (temp, open_temperature_log)]:
        utc = opener(path, timezone="UTC").time.values
        np.testing.assert_array_equal(utc, stamps.to_numpy("datetime64[ns]"))
        np.testing.assert_array_equal(opener(path, timezone="Europe/London").time.values, expected)
    np.testing.assert_array_equal(open_imat_log(frames, timezone="Europe/London").time, expected)


def test_sniff_routes_real_and_written_logs(ms_path, temp_path, tmp_path):
    assert sniff_format(ms_path) == "massspec-csv"
    assert sniff_format(temp_path) == "temperature-log"
    t = pd.date_range("2024-12-13T14:20:29", periods=3, freq="30s")
    write_massspec_csv(tmp_path / "ms.csv", t[0], [1.0, 2.0, 3.0], {"Helium": (4, [1, 2, 3])})
    write_temperature_log(tmp_path / "temp.csv", t, [1.0, 2.0, 3.0])
    write_imat_log(tmp_path / "log.csv", t)
    write_imat_log(tmp_path / "bare_log.csv", t, header=False)
    expected = {
        "ms.csv": "massspec-csv",
        "temp.csv": "temperature-log",
        "log.csv": "imat-log",
        "bare_log.csv": "imat-log",
    }
    for name, format in expected.items():
        assert sniff_format(tmp_path / name) == format
        ds = beamcat.open_dataset(tmp_path / name, timezone="UTC")
        assert ds.attrs["format"] == format and ds.sizes == {"time": 3}


# --- writers: same layout as the real files, round trips --------------------------------------


def test_massspec_writer_reproduces_the_example_layout(ms_path, tmp_path):
    real = open_massspec_csv(ms_path, timezone="UTC")
    out = write_massspec_csv(
        tmp_path / "copy.csv",
        pd.Timestamp(real.attrs["start_time"]).tz_localize(None),
        real.elapsed.values,
        {
            real[v].attrs["long_name"].split(" (")[0]: (real[v].attrs["mass"], real[v].values)
            for v in real
        },
    )
    ours = out.read_text().splitlines()
    theirs = ms_path.read_text().splitlines()
    # 3 scans written where the example lists 6, so the data header is 3 rows earlier
    header = ours.index("Time,ms,Hydrogen (2),Helium (4),Water (18),,,,,,")
    assert header == 24 and theirs[27] == ours[24]
    assert ours[header:] == theirs[27:]  # the data rows byte for byte
    # header block: the same row kinds in the same order, rows padded to the same width
    kinds = [line.split(",")[0] for line in theirs[1:27] if not line.startswith("Scan ")]
    assert [line.split(",")[0] for line in ours[1:24] if not line.startswith("Scan ")] == kinds
    assert ours[0] == "22,scans,22,DataLength,,,,,,,"  # the example says 58 ... 106
    assert ours[1] == "header,22,lines,,,,,,,," and theirs[1] == "header,25,lines,,,,,,,,"
    assert ours[2] == theirs[2] == "Date,13/12/2024,Time,11:46:49,,,,,,,"
    assert ours[5] == theirs[5]  # the scan-table header
    assert ours[11] == theirs[14] == 'F1,1,"( 1 = on, 0 = off )",,,,,,,,'
    assert ours[12:22] == theirs[15:25]  # the rest of the environment block
    assert (ours[22], theirs[25]) == ("Data,3,,,,,,,,,", "Data,6,,,,,,,,,")  # the scan count
    assert ours[23] == theirs[26] == ",,,,,,,,,,"
    back = open_massspec_csv(out, timezone="UTC")
    xr.testing.assert_identical(back.drop_attrs(), real.drop_attrs())


def test_temperature_writer_reproduces_the_example_bytes(temp_path, tmp_path):
    real = open_temperature_log(temp_path, timezone="UTC")
    run_start = np.datetime64("2024-12-13T15:00:39", "ns")  # time - relative seconds
    out = write_temperature_log(
        tmp_path / "copy.csv", real.time.values, real["Temp2"].values, run_start=run_start
    )
    theirs = temp_path.read_text().split("\n")
    theirs[2] = theirs[2].split("   #")[0]  # the one trailing '# 12345' comment is not written
    assert out.read_text() == "\n".join(theirs)


def test_windows_line_endings_and_cp1252(ms_path, temp_path, tmp_path):
    # exports copied off the instrument PCs keep CRLF and may carry cp1252 signs ('\xb0')
    for path, opener in [(ms_path, open_massspec_csv), (temp_path, open_temperature_log)]:
        text = path.read_text().replace("\n", "\r\n")
        text = text.replace("uA", "\xb5A").replace("absolute)", "absolute, \xb0C)")
        copy = tmp_path / path.name
        copy.write_bytes(text.encode("cp1252"))
        xr.testing.assert_identical(
            opener(copy, timezone="UTC").drop_attrs(), opener(path, timezone="UTC").drop_attrs()
        )
    assert (
        open_massspec_csv(tmp_path / ms_path.name, timezone="UTC").attrs["env_emission_units"]
        == "\xb5A"
    )


def test_massspec_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    elapsed = np.cumsum(rng.uniform(10, 14, 40)).round(3)  # the format keeps ms
    pressures = {
        "Hydrogen": (2, 10 ** rng.uniform(-9, -6, 40)),
        "Ethylene/Ethane": (27, 10 ** rng.uniform(-9, -6, 40)),
        "Ethylene": (28, 10 ** rng.uniform(-9, -6, 40)),
    }
    pressures["Hydrogen"][1][5] = np.nan  # a missing reading: an empty cell
    start = pd.Timestamp("2024-12-13T11:46:49.250")  # sub-second start moves into elapsed
    path = write_massspec_csv(
        tmp_path / "ms.csv", start, elapsed, pressures, timezone="Europe/London"
    )
    ds = open_massspec_csv(path, timezone="Europe/London")
    assert list(ds.data_vars) == ["Hydrogen", "Ethylene_Ethane", "Ethylene"]
    expected = (start + pd.to_timedelta(np.round(elapsed * 1e3), unit="ms")).to_numpy("M8[ns]")
    np.testing.assert_array_equal(ds.time.values, expected)
    np.testing.assert_allclose(ds.elapsed.values, elapsed + 0.25, rtol=0, atol=5e-10)
    for (name, (mass, values)), var in zip(pressures.items(), ds.data_vars, strict=True):
        # shortest round-trip decimal text: exact, NaN included
        np.testing.assert_array_equal(ds[var].values, values)
        assert ds[var].attrs["mass"] == mass
        assert ds[var].attrs["long_name"] == f"{name} ({mass})"


def test_temperature_round_trip(tmp_path):
    t = pd.date_range("2024-07-01T23:59:50", periods=30, freq="1s")  # crosses midnight
    values = 20 + np.round(np.sin(np.arange(30)), 4)
    path = write_temperature_log(tmp_path / "t.csv", t, values, property="Sample T")
    ds = open_temperature_log(path, timezone="UTC")
    assert list(ds.data_vars) == ["Sample_T"]
    assert ds["Sample_T"].attrs["long_name"] == "Sample T"
    np.testing.assert_array_equal(ds.time.values, t.to_numpy("M8[ns]"))
    np.testing.assert_array_equal(ds["Sample_T"].values, values)
    np.testing.assert_array_equal(ds.elapsed.values, np.arange(30))


def test_imat_round_trip(tmp_path):
    t = pd.date_range("2024-03-05T09:00:00", periods=50, freq="37s")  # single-digit day
    before = np.arange(50) * 1_000_000 + 4_577_907
    after = before + 142_364
    path = write_imat_log(tmp_path / "log.csv", t, np.arange(50), monbefore=before, monafter=after)
    assert path.read_text().splitlines()[1] == (
        "Tue Mar  5 09:00:00 2024,Radiography,0,Monitor 3 before: 4577907,Monitor 3 after: 4720271"
    )
    ds = open_imat_log(path, timezone="UTC")
    np.testing.assert_array_equal(ds.time.values, t.to_numpy("M8[ns]"))
    np.testing.assert_array_equal(ds["count"].values, np.arange(50))
    np.testing.assert_array_equal(ds["monbefore"].values, before)
    np.testing.assert_array_equal(ds["monafter"].values, after)
    assert set(ds["type"].values) == {"Radiography"}
    np.testing.assert_array_equal(ds.elapsed.values, np.arange(50) * 37.0)
    assert ds.attrs["signal"] == "count"


def test_imat_log_variants(tmp_path):
    # no header, a 'Stopping' row (skipped as the original script does), ISO times
    path = tmp_path / "log.csv"
    path.write_text(
        "2024-12-13 14:20:29,Radiography,0,4577907,4720271\n"
        "2024-12-13 14:21:02,Radiography,1,4729337,4871319\n"
        "2024-12-13 14:21:30,Stopping acquisition,,,\n"
    )
    ds = open_imat_log(path, timezone="UTC")
    assert ds.sizes == {"time": 2}
    assert ds.time.values[-1] == ns("2024-12-13T14:21:02")
    np.testing.assert_array_equal(ds["monafter"].values, [4720271, 4871319])
    # a PC clock stepping back keeps the file order: row i is frame i
    path.write_text(
        "Fri Dec 13 14:20:29 2024,Radiography,0,1,2\nFri Dec 13 14:20:28 2024,Radiography,1,3,4\n"
    )
    np.testing.assert_array_equal(open_imat_log(path, timezone="UTC")["count"].values, [0, 1])
    # tomography log: a sixth column, the angle (mantidimaging's CSV layout)
    tomo = tmp_path / "tomo.csv"
    tomo.write_text(
        "TIME STAMP,IMAGE TYPE,IMAGE COUNTER,PROJECTION ANGLE DEG,COUNTS BEFORE,COUNTS AFTER\n"
        "Tue Nov 15 19:58:17 2022,Projection,0,0.0,12588,145908\n"
        "Tue Nov 15 19:58:50 2022,Projection,1,Angle:0.3152,145910,279015\n"
    )
    assert sniff_format(tomo) == "imat-log"
    ds = open_imat_log(tomo, timezone="UTC")
    np.testing.assert_array_equal(ds["angle"].values, [0.0, 0.3152])
    assert ds.time.values[1] == ns("2022-11-15T19:58:50")


def test_several_files_join_along_time(tmp_path):
    a = write_massspec_csv(
        tmp_path / "2_later.csv", "2024-12-13T12:00:00", [0.0, 10.0], {"Hydrogen": (2, [1, 2])}
    )
    b = write_massspec_csv(
        tmp_path / "1_first.csv",
        "2024-12-13T11:00:00",
        [0.0, 10.0],
        {"Hydrogen": (2, [3, 4]), "Argon": (40, [5, 6])},
    )
    ds = open_massspec_csv([a, b], timezone="UTC")
    np.testing.assert_array_equal(ds["Hydrogen"].values, [3, 4, 1, 2])  # sorted by time
    np.testing.assert_array_equal(ds["Argon"].values, [5, 6, np.nan, np.nan])
    # elapsed from the earliest file's start
    np.testing.assert_array_equal(ds.elapsed.values, [0, 10, 3600, 3610])
    assert ds.attrs["source"] == f"{a};{b}"
    assert len(open_massspec_csv(tmp_path / "*.csv", timezone="UTC").time) == 4


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("opener", [open_massspec_csv, open_temperature_log, open_imat_log])
def test_empty_and_binary_files(opener, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("\n  \n")
    with pytest.raises(FormatError, match=f"{empty}: empty file"):
        opener(empty)
    binary = tmp_path / "image.csv"
    binary.write_bytes(b"II*\x00" + bytes(range(256)))
    with pytest.raises(FormatError, match="binary"):
        opener(binary)
    with pytest.raises(SourceNotFoundError):
        opener(tmp_path / "missing.csv")


def test_massspec_without_data_header(tmp_path):
    path = tmp_path / "ms.csv"
    path.write_text("Date,13/12/2024,Time,11:46:49\nID,HAL\n00:00:04,4635,3.6e-08\n")
    with pytest.raises(FormatError, match=rf"{path}: no data header row: expected .*'Time,ms,'"):
        open_massspec_csv(path, timezone="UTC")


def test_massspec_without_start_row(tmp_path):
    path = tmp_path / "ms.csv"
    path.write_text("Time,ms,Hydrogen (2)\n00:00:04,4635,3.6e-08\n")
    with pytest.raises(FormatError, match="no start-time row .*'Date,dd/mm/YYYY,Time,HH:MM:SS'"):
        open_massspec_csv(path, timezone="UTC")


def _export_with_row(tmp_path, row: str):
    path = write_massspec_csv(
        tmp_path / "ms.csv", "2024-12-13T11:46:49", [1.0, 2.0], {"Hydrogen": (2, [1e-8, 2e-8])}
    )
    lines = path.read_text().splitlines()
    lines.insert(-1, row)  # lands on line len(lines), 1-based
    path.write_text("\n".join(lines) + "\n")
    return path, len(lines) - 1


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("00:00:05,5000,abc,,,,,,,,", "'Hydrogen' value 'abc' is not a number"),
        ("00:00:05,five,1e-8,,,,,,,,", "ms 'five' is not a number"),
        ("00:00:05,5000,1e-8,,,7,,,,,", "value '7' beyond the 3 named columns"),
    ],
)
def test_massspec_bad_row_names_its_line(tmp_path, row, message):
    path, line = _export_with_row(tmp_path, row)
    with pytest.raises(FormatError, match=rf"{path}, line {line}: {message}"):
        open_massspec_csv(path, timezone="UTC")


def test_massspec_bad_start_and_option(tmp_path):
    path = tmp_path / "ms.csv"
    path.write_text("Date,32/13/2024,Time,11:46:49\nTime,ms,Hydrogen (2)\n00:00:04,4635,1\n")
    with pytest.raises(FormatError, match=rf"{path}, line 1: start '32/13/2024 11:46:49'"):
        open_massspec_csv(path, timezone="UTC")
    with pytest.raises(OptionError, match="elapsed_column"):
        open_massspec_csv(path, elapsed_column="seconds", timezone="UTC")
    with pytest.raises(OptionError, match="expected 2 values"):
        write_massspec_csv(tmp_path / "x.csv", "2024-01-01", [1.0, 2.0], {"H": (2, [1.0])})


def test_temperature_errors(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("# Property: 'Temp2'\nsome text\nmore text here\n")
    with pytest.raises(FormatError, match=rf"{path}: no data rows: expected lines"):
        open_temperature_log(path, timezone="UTC")
    path.write_text(
        "# Property: 'Temp2'\n# seconds(absolute)  y   time(relative)\n"
        "-2410     17.2908     13/12/24T14:20:29\n"
        "-2401     17.2805\n"
    )
    with pytest.raises(FormatError, match=rf"{path}, line 4: 2 fields: expected"):
        open_temperature_log(path, timezone="UTC")
    path.write_text(
        "-2410     17.2908     13/12/24T14:20:29\n-2401     hot     13/12/24T14:20:38\n"
    )
    with pytest.raises(FormatError, match=r"line 2: value 'hot' is not a number"):
        open_temperature_log(path, timezone="UTC")
    path.write_text(
        "-2410     17.2908     13/12/24T14:20:29\n-2401     17.3     13/13/24T14:20:38\n"
    )
    with pytest.raises(FormatError, match=r"line 2: timestamp '13/13/24T14:20:38' is not a time"):
        open_temperature_log(path, timezone="UTC")


def test_imat_errors(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(
        "TIME STAMP,IMAGE TYPE,IMAGE COUNTER,COUNTS BM3 before image,COUNTS BM3 after image\n"
        "Fri Dec 13 14:20:29 2024,Radiography,0,Monitor 3 before: 1,Monitor 3 after: 2\n"
        "Fri Dec 13 14:20:59 2024,Radiography,x,Monitor 3 before: 3,Monitor 3 after: 4\n"
    )
    with pytest.raises(FormatError, match=rf"{path}, line 3: image counter 'x' is not an integer"):
        open_imat_log(path, timezone="UTC")
    path.write_text("Fri Dec 13 14:20:29 2024,Radiography,0,1\n")
    with pytest.raises(FormatError, match=r"line 1: 4 fields: expected 5"):
        open_imat_log(path, timezone="UTC")
    path.write_text("yesterday,Radiography,0,1,2\n")
    with pytest.raises(FormatError, match=r"line 1: time stamp 'yesterday' is not a time like"):
        open_imat_log(path, timezone="UTC")
    path.write_text("TIME STAMP,IMAGE TYPE,IMAGE COUNTER,BEFORE,AFTER\n")
    with pytest.raises(FormatError, match=rf"{path}: no frame rows"):
        open_imat_log(path, timezone="UTC")
    times = pd.date_range("2024-12-13", periods=3, freq="1s")
    with pytest.raises(OptionError, match=r"monbefore: expected 3 values \(one per time\)"):
        write_imat_log(path, times, monbefore=[1])
    with pytest.raises(OptionError, match="temperatures: expected 3 values"):
        write_temperature_log(path, times, [20.0, 21.0])


def test_garbage_text_is_a_format_error(tmp_path):
    path = tmp_path / "notes.csv"
    path.write_text("hello, world\nthis is not a log\n")
    for opener in (open_massspec_csv, open_temperature_log, open_imat_log):
        with pytest.raises(FormatError, match=str(path)):
            opener(path)


@pytest.mark.parametrize("opener", [open_massspec_csv, open_temperature_log])
def test_no_timezone_reads_local_times_as_utc_and_says_so(opener, ms_path, temp_path):
    # issue 8: naive local times are not silently taken as UTC
    path = ms_path if opener is open_massspec_csv else temp_path
    with pytest.warns(BeamcatWarning, match=rf"{path.name}: .*without a zone.*read as UTC"):
        assumed = opener(path)
    assert (
        assumed.attrs["timezone"] == "UTC"
        and "no timezone= was given" in (assumed.attrs["timezone_assumed"])
    )
    given = opener(path, timezone="UTC")  # said: no warning, no assumption recorded
    assert "timezone_assumed" not in given.attrs
    np.testing.assert_array_equal(assumed.time.values, given.time.values)
