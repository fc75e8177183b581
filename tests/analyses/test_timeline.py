"""Runs and logs on one time axis: the real IMAT log examples, the demo's logs, synthetic runs."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import beamcat
from beamcat.analyses.timeline import interp_onto, timeline
from beamcat.analyses.timeseries import savgol
from beamcat.catalog import demo
from beamcat.catalog.catalogs import open_catalog
from beamcat.errors import BeamcatError, OptionError

S = np.timedelta64(1, "s")


@pytest.fixture(scope="module")
def real_logs(shared_data):
    folder = shared_data / "imat_roi_analysis"
    # naive local times: read as UTC, said explicitly (readers warn when it is assumed)
    ms = beamcat.open_dataset(folder / "example-ms.csv", timezone="UTC")
    temp = beamcat.open_dataset(folder / "example-temp.csv", timezone="UTC")
    return ms, temp


@pytest.fixture(scope="session")
def demo_catalog(demo_dir):
    catalog = open_catalog(demo_dir / demo.CATALOG_NAME)
    return catalog, demo.read_truth(demo_dir / "radiography")


def _run(start: str, n: int, period_s: float, values=None, chunks=None) -> xr.Dataset:
    """ROI means of a run: (roi, time), times `period_s` apart from `start` (UTC)."""
    times = pd.Timestamp(start) + pd.to_timedelta(np.arange(n) * period_s, "s")
    data = np.arange(2 * n, dtype=float).reshape(2, n) if values is None else values
    if chunks:
        data = da.from_array(data, chunks=chunks)
    return xr.Dataset(
        {"mean": (("roi", "time"), data)},
        coords={"roi": ["bed", "wall"], "time": times.to_numpy("datetime64[ns]")},
        attrs={"signal": "mean", "source": f"/data/run_{start[11:13]}"},
    )


# ------------------------------------------------------------------ real IMAT examples


def test_real_massspec_and_temperature_do_not_overlap(real_logs):
    """The examples were logged on 13/12/2024 at 11:46:53-11:51:26 and 14:20:29-15:47:25."""
    with pytest.raises(BeamcatError) as err:
        timeline(*real_logs)
    text = str(err.value)
    assert "'example-ms': 2024-12-13T11:46:53.635000 to 2024-12-13T11:51:26.801000" in text
    assert "'example-temp': 2024-12-13T14:20:29 to 2024-12-13T15:47:25" in text


def test_real_logs_each_from_its_own_start(real_logs):
    ms, temp = real_logs
    aligned = timeline(ms, temp, names=["ms", "temp"], origin="each")
    a_ms, a_temp = aligned["ms"], aligned["temp"]
    # mass spec: start 11:46:49 (row 2) + "00:00:04" / 4635 ms of the first data row
    assert a_ms.time.values[0] == np.datetime64("2024-12-13T11:46:53.635")
    # its elapsed is the export's ms column, shifted to its first row
    np.testing.assert_allclose(a_ms.elapsed, (ms.elapsed - ms.elapsed[0]).values, atol=1e-9)
    assert a_ms.elapsed.attrs == {
        "units": "s",
        "long_name": "time since 2024-12-13T11:46:53.635000 UTC",
    }
    # temperature: the relative-seconds column runs -2410 .. 2806 -> 0 .. 5216 s;
    # 13/12/24T15:25:26 appears twice (18.0723, 18.062) and becomes one averaged sample
    assert a_temp.sizes["time"] == temp.sizes["time"] - 1 == 974
    np.testing.assert_array_equal(a_temp.elapsed, (a_temp.time - a_temp.time[0]) / S)
    assert a_temp.elapsed.values[-1] == 5216.0
    repeated = a_temp.Temp2.sel(time="2024-12-13T15:25:26").item()
    assert repeated == pytest.approx((18.0723 + 18.062) / 2, abs=1e-12)
    assert "1 repeated times reduced by 'mean'" in a_temp.attrs["history"]
    first = timeline(temp, duplicates="first")["example-temp"]
    assert first.Temp2.sel(time="2024-12-13T15:25:26").item() == 18.0723
    with pytest.raises(OptionError, match="1 repeated times .*15:25:26"):
        timeline(temp, duplicates="error")


def test_real_logs_on_one_absolute_axis_when_asked(real_logs):
    aligned = timeline(*real_logs, require_overlap=False)
    ms, temp = aligned["example-ms"], aligned["example-temp"]
    # origin None = the earliest sample of all: the mass spec's first row
    assert ms.elapsed.values[0] == 0.0
    assert (
        temp.elapsed.values[0]
        == (np.datetime64("2024-12-13T14:20:29") - np.datetime64("2024-12-13T11:46:53.635")) / S
    )
    table = interp_onto(aligned, "example-temp")
    assert np.isnan(table["example-ms.Hydrogen"]).all()  # no mass spec at those times
    np.testing.assert_array_equal(table["example-temp.Temp2"], temp.Temp2)


# ---------------------------------------------------------------------- demo logs


def test_demo_logs_and_run_align_on_the_gas_switch(demo_catalog):
    cat, (truth, arrays) = demo_catalog
    run, ms, temp, log = (
        cat[name].read()
        for name in ("imat_run", "imat_massspec", "imat_temperature", "imat_frame_log")
    )
    event = np.datetime64(truth["massspec_event_time"].replace("+00:00", ""))
    aligned = timeline(
        run, ms, temp, log, names=["run", "ms", "temp", "log"], origin=truth["massspec_event_time"]
    )
    # the run's frames (dim swapped from frame to time) sit at the frame-log end times
    np.testing.assert_array_equal(aligned["run"].time, arrays["frame_end"])
    np.testing.assert_array_equal(aligned["run"].elapsed, (arrays["frame_end"] - event) / S)
    assert aligned["run"].counts.dims == ("time", "y", "x")
    np.testing.assert_array_equal(aligned["log"].time, aligned["run"].time)
    # the Ar step (a logistic of 8 s width) crosses half height at elapsed 0; the
    # crossing interpolated between RGA scans (12.29 s apart, 2 % noise) lands within 5 s
    ar = aligned["ms"].Argon
    level = (ar - ar[:20].mean()) / (ar[-20:].mean() - ar[:20].mean())
    k = int(np.argmax(level.values > 0.5))
    e0, e1, v0, v1 = *ar.elapsed.values[k - 1 : k + 1], *level.values[k - 1 : k + 1]
    assert abs(e0 + (0.5 - v0) * (e1 - e0) / (v1 - v0)) < 5.0
    # the thermocouple's exotherm starts at the event (4 K * p * exp(1 - p), p = elapsed /
    # 300 s): +0.2 K (10x the 0.02 K noise) is reached 5.5 s later, seen at the next
    # sample (3-10 s apart); smoothed (21 samples, ~140 s) it peaks at 300 s, 4 K up
    t = aligned["temp"]
    assert abs(float(t.Temp2.where(t.elapsed < 0).mean()) - 150.0) < 0.01
    assert 5.5 <= float(t.elapsed[int(np.argmax((t.Temp2 > 150.2).values))]) <= 16.0
    smooth = savgol(t.Temp2, window=21, order=2)
    assert abs(float(t.elapsed[int(np.argmax(smooth.values))]) - 300.0) < 20.0
    assert float(smooth.max()) == pytest.approx(154.0, abs=0.05)


def test_demo_run_is_not_computed(demo_catalog, raise_if_dask_computes):
    cat, _ = demo_catalog
    run, ms = cat["imat_run"].read(), cat["imat_massspec"].read()
    with raise_if_dask_computes():
        aligned = timeline(run, ms, names=["run", "ms"], origin="run")
    assert isinstance(aligned["run"].counts.data, da.Array)
    assert aligned["run"].elapsed.values[0] == 0.0


# ------------------------------------------------------------------ synthetic runs


def test_several_runs_share_a_log_axis():
    run1 = _run("2024-12-13T10:00:00", 5, 60)
    run2 = _run("2024-12-13T10:10:00", 5, 60)
    times = pd.date_range("2024-12-13T09:55", "2024-12-13T10:20", freq="30s")
    log = xr.Dataset({"T": ("time", np.arange(times.size, dtype=float))}, coords={"time": times})
    aligned = timeline({"run1": run1, "run2": run2, "temp": log}, origin="first")
    np.testing.assert_array_equal(aligned["run2"].elapsed, 600 + 60 * np.arange(5))
    assert aligned["temp"].elapsed.values[0] == -300.0
    table = interp_onto(aligned, "run2")
    # the log rises by 1 per 30 s from 09:55 -> at 10:10 + 60 k s it is 30 + 2 k
    np.testing.assert_allclose(table["temp.T"], 30 + 2 * np.arange(5), atol=1e-12)
    np.testing.assert_array_equal(table["run1.mean"], np.full((2, 5), np.nan))
    # two consecutive runs without a log have a gap: refused unless asked for
    with pytest.raises(OptionError, match="'run1': 2024-12-13T10:00:00 to 2024-12-13T10:04:00"):
        timeline(run1, run2, names=["run1", "run2"])
    both = timeline(run1, run2, require_overlap=False, origin="2024-12-13T10:00:00")
    assert list(both) == ["run_10", "run_10_2"]  # names from the sources' file stems
    for same in (np.datetime64("2024-12-13T10:00"), pd.Timestamp("2024-12-13T11:00+01:00")):
        again = timeline(run1, run2, require_overlap=False, origin=same)
        np.testing.assert_array_equal(again["run_10_2"].elapsed, both["run_10_2"].elapsed)
    overlaid = timeline(run1, run2, names=["a", "b"], origin="each")
    np.testing.assert_array_equal(overlaid["a"].elapsed, overlaid["b"].elapsed)


def test_origin_local_time_unsorted_input_and_dataarrays():
    run = _run("2024-12-13T10:00:00", 4, 60).isel(time=[2, 0, 3, 1])
    mean = run["mean"].rename("bed_mean")
    aligned = timeline(mean, origin="2024-06-01T11:00", timezone="Europe/London")
    out = aligned["bed_mean"]
    assert isinstance(out, xr.DataArray)
    # sorted back into time order; 11:00 BST = 10:00 UTC, 195 days earlier
    np.testing.assert_array_equal(out.values, np.arange(8.0).reshape(2, 4))
    np.testing.assert_array_equal(out.elapsed, 195 * 86400 + 60 * np.arange(4))


def test_lazy_sources_with_repeated_times_stay_lazy(raise_if_dask_computes):
    values = np.array([[1.0, 2.0, 4.0, 5.0], [0.0, 1.0, 1.0, 3.0]])
    run = _run("2024-12-13T10:00:00", 4, 60, values=values, chunks=(1, 3))
    run = run.assign_coords(time=run.time.values[[0, 1, 1, 2]])
    run["kind"] = ("time", np.array(["a", "b", "c", "d"]))  # not numeric: keeps the first
    with raise_if_dask_computes():
        out = timeline(run)["run_10"]
        alone = timeline(run["mean"].rename("m"))["m"]
    assert isinstance(out["mean"].data, da.Array) and isinstance(alone.data, da.Array)
    averaged = [[1.0, 3.0, 5.0], [0.0, 1.0, 3.0]]  # the two samples at 10:01 averaged
    np.testing.assert_array_equal(out["mean"], averaged)
    np.testing.assert_array_equal(alone, averaged)
    assert out["kind"].values.tolist() == ["a", "b", "d"]


def test_bad_sources_raise():
    run = _run("2024-12-13T10:00:00", 3, 60)
    with pytest.raises(OptionError, match="no 1-d 'time' coordinate"):
        timeline(run.drop_vars("time"), names=["r"])
    with pytest.raises(OptionError, match="expected 2 distinct names"):
        timeline(run, run, names=["a", "a"])
    with pytest.raises(OptionError, match="origin='gas'"):
        timeline(run, origin="gas")
    with pytest.raises(OptionError, match="NaT"):
        timeline(run.assign_coords(time=np.full(3, np.datetime64("NaT", "ns"))))
    with pytest.raises(OptionError, match="expected a Dataset or DataArray"):
        timeline(np.zeros(3))
