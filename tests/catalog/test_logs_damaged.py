"""Damaged experiment logs: cut, garbled or oversized rows fail or say what is missing.

Each case is a finding of the fuzzing run of issue 8, made from the real ISIS
examples (or a log the writer made); the values of what does open are
compared with the intact file's, which the readers' own tests pin.
"""

from __future__ import annotations

import numpy as np
import pytest

from beamcat.catalog.logs import (
    open_imat_log,
    open_massspec_csv,
    open_temperature_log,
    write_imat_log,
)
from beamcat.errors import BeamcatWarning, FormatError

EXAMPLES = "imat_roi_analysis"


def _cut_inside_last_line(source, target, keep: int = 3):
    """`source` cut `keep` characters into its last line (the end of line lost too)."""
    raw = source.read_bytes().rstrip(b"\n")
    start = raw.rindex(b"\n") + 1
    target.write_bytes(raw[: start + keep])
    return target


def _with_line_changed(source, target, index: int, start: str, old: str, new: str):
    """`source` with `old` replaced by `new` in line `index` (0-based), which starts `start`."""
    lines = source.read_text().splitlines()
    assert lines[index].startswith(start)
    lines[index] = lines[index].replace(old, new)
    target.write_text("\n".join(lines) + "\n")
    return target


def test_massspec_cut_mid_line_leaves_the_cut_row_out_and_says_so(shared_data, tmp_path):
    # the fuzzing run: a cut export opened with fewer rows and no word; a row cut
    # inside its ms cell ("320" of "32041") would even give a wrong time
    source = shared_data / EXAMPLES / "example-ms.csv"
    intact = open_massspec_csv(source, timezone="UTC")
    cut = _cut_inside_last_line(source, tmp_path / "ms.csv", keep=12)
    with pytest.warns(BeamcatWarning, match=r"ms\.csv, line 50: the file ends inside this line"):
        ds = open_massspec_csv(cut, timezone="UTC")
    assert ds.attrs["cut_line"] == 50
    assert ds.sizes["time"] == intact.sizes["time"] - 1
    np.testing.assert_array_equal(ds.Hydrogen.values, intact.Hydrogen.values[:-1])  # same text
    np.testing.assert_array_equal(ds.time.values, intact.time.values[:-1])


def test_imat_log_cut_mid_line_leaves_the_cut_row_out_and_says_so(tmp_path):
    times = np.datetime64("2024-12-13T11:00:00") + np.arange(5) * np.timedelta64(30, "s")
    source = write_imat_log(tmp_path / "full.csv", times, monbefore=np.arange(5) * 1000)
    cut = _cut_inside_last_line(source, tmp_path / "log.csv", keep=30)
    with pytest.warns(BeamcatWarning, match=r"log\.csv, line 6: the file ends inside"):
        log = open_imat_log(cut, timezone="UTC")
    assert log.attrs["cut_line"] == 6
    np.testing.assert_array_equal(log.time.values, times[:4].astype("datetime64[ns]"))
    np.testing.assert_array_equal(log.monbefore.values, [0, 1000, 2000, 3000])


def test_a_2_mb_field_names_its_line(shared_data, tmp_path):
    # csv: "field larger than field limit (131072)"
    lines = (shared_data / EXAMPLES / "example-ms.csv").read_text().splitlines()
    lines[30] = '00:01:00,"' + "9" * 2_000_000 + '",1e-8,1e-8,1e-8'
    path = tmp_path / "ms.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(FormatError, match=r"ms\.csv, line 31: not a CSV row \(field larger"):
        open_massspec_csv(path, timezone="UTC")
    log = tmp_path / "log.csv"
    log.write_text('Fri Dec 13 14:20:29 2024,Radiography,"' + "1" * 2_000_000 + '",0,0\n')
    with pytest.raises(FormatError, match=r"log\.csv, line 1: not a CSV row"):
        open_imat_log(log, timezone="UTC")


def test_infinite_ms_names_its_row(shared_data, tmp_path):
    # the fuzzing run: 'inf' became a NaT time with only NumPy's RuntimeWarning
    source = shared_data / EXAMPLES / "example-ms.csv"
    path = _with_line_changed(source, tmp_path / "ms.csv", 29, "00:00:32,", ",32041,", ",inf,")
    with pytest.raises(FormatError, match=r"ms\.csv, line 30: ms 'inf' is not a number: it is"):
        open_massspec_csv(path, timezone="UTC")


def test_garbled_first_temperature_row_names_its_line(shared_data, tmp_path):
    # the fuzzing run: the first data row garbled was skipped as if a header line
    source = shared_data / EXAMPLES / "example-temp.csv"
    path = _with_line_changed(source, tmp_path / "temp.csv", 2, "-2410", "17.2908", "17.29x8")
    with pytest.raises(FormatError, match=r"temp\.csv, line 3: '-2410 .*17\.29x8.*' is neither"):
        open_temperature_log(path, timezone="UTC")
