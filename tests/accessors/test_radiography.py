"""``ds.radiography`` / ``da.radiography``: the same numbers as the analyses, lazily."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import beamcat.accessors.radiography  # noqa: F401  (registers the accessor)
from beamcat.analyses import calibration, difference, masters, outliers
from beamcat.errors import OptionError

DIMS = ("frame", "y", "x")


def _dataset(rng, n, level, source, times=False):
    """A reader-like Dataset: dask ``counts (frame, y, x)`` uint16, in-memory coordinates."""
    counts = rng.poisson(level, (n, 10, 14)).astype(np.uint16)
    if times:
        counts[3, 4, 4] = 9000  # a gamma spot in the run
    coords = {"frame": np.arange(n)}
    if times:
        coords["time"] = ("frame", pd.date_range("2024-12-13T14:00", periods=n, freq="62s"))
    attrs = {"signal": "counts", "source": source, "format": "tiff", "pixel_size": 2e-4}
    data = xr.DataArray(da.from_array(counts, chunks=(2, 10, 14)), dims=DIMS, coords=coords)
    return xr.Dataset({"counts": data.assign_attrs(units="counts")}, attrs=attrs)


@pytest.fixture
def stacks():
    rng = np.random.default_rng(5)
    run = _dataset(rng, 5, 1500.0, "/data/run", times=True)
    return run, _dataset(rng, 3, 100.0, "/data/dark"), _dataset(rng, 4, 3000.0, "/data/flat")


def test_dataset_calibrate_matches_the_function(stacks, raise_if_dask_computes):
    run, dark, flat = stacks
    options = {"air_roi": (1, 1, 4, 3), "outliers": {"bright": 500.0, "dark": 500.0}}
    with raise_if_dask_computes():
        result = run.radiography.calibrate(dark, flat, **options)
    expected = calibration.calibrate(run.counts, dark.counts, flat.counts, **options)
    assert isinstance(result, xr.Dataset) and result.attrs["signal"] == "transmission"
    assert isinstance(result.transmission.data, da.Array)
    assert result.transmission.dims == ("time", "y", "x")
    # exactly the analysis: the accessor only picks variables
    np.testing.assert_array_equal(result.transmission.values, expected.values)
    # the run's attrs (pixel size, source) stay; the history names the dark and flat files
    assert result.attrs["pixel_size"] == 2e-4 and result.attrs["source"] == "/data/run"
    assert "dark (/data/dark)" in result.attrs["history"]
    assert "flat (/data/flat)" in result.attrs["history"]


def test_masters_as_dataarrays_and_dataarray_accessor(stacks):
    run, dark, flat = stacks
    d = masters.dark_master(dark.counts)
    f = masters.flat_master(flat.counts, d)
    by_masters = run.counts.radiography.calibrate(d, f)
    assert isinstance(by_masters, xr.DataArray) and by_masters.name == "transmission"
    by_frames = run.radiography.calibrate(dark, flat).transmission
    # masters made inside from frames are the same masters: identical numbers
    np.testing.assert_array_equal(by_masters.values, by_frames.values)


def test_difference_and_chaining(stacks, raise_if_dask_computes):
    run, dark, flat = stacks
    with raise_if_dask_computes():
        t = run.radiography.calibrate(dark, flat)
        result = t.radiography.difference(reference=slice(0, 2), stretch=(5, 90))
    expected = difference.difference(t.transmission, reference=slice(0, 2), stretch=(5, 90))
    assert result.attrs["signal"] == "difference" and result.attrs["pixel_size"] == 2e-4
    for name in ("difference", "display"):
        assert isinstance(result[name].data, da.Array)
        np.testing.assert_array_equal(result[name].values, expected[name].values)
    # a DataArray's difference is the analysis' Dataset as it is
    xr.testing.assert_identical(
        t.transmission.radiography.difference(), difference.difference(t.transmission)
    )


def test_remove_outliers_dataset_and_dataarray(stacks):
    run, _, _ = stacks
    result = run.radiography.remove_outliers(bright=500.0, dark=500.0)
    assert result.attrs["signal"] == "counts" and result.counts.dtype == np.uint16
    expected = outliers.remove_outliers(run.counts, bright=500.0, dark=500.0)
    np.testing.assert_array_equal(result.counts.values, expected.values)
    assert result.counts.values[3, 4, 4] < 3000  # the spot is gone
    np.testing.assert_array_equal(
        run.counts.radiography.remove_outliers(radius=5).values,
        outliers.remove_outliers(run.counts, radius=5).values,
    )


def test_var_selects_a_variable(stacks):
    run, dark, flat = stacks
    two = run.assign(other=run.counts * 2).drop_attrs()
    t = two.radiography.calibrate(dark, flat, var="other").transmission
    expected = calibration.calibrate(run.counts * 2, dark.counts, flat.counts)
    np.testing.assert_array_equal(t.values, expected.values)
    with pytest.raises(OptionError, match="no attrs\\['signal'\\]"):
        two.radiography.calibrate(dark, flat)
    with pytest.raises(OptionError, match="no variable 'missing'.*'counts', 'other'"):
        two.radiography.remove_outliers(var="missing")
    with pytest.raises(OptionError, match="var= selects a variable of a Dataset"):
        run.counts.radiography.difference(var="counts")
    with pytest.raises(OptionError, match="dark: expected an xarray Dataset or DataArray"):
        run.radiography.calibrate(dark.counts.values, flat)


def test_shape_mismatch_names_the_file(stacks):
    run, dark, flat = stacks
    with pytest.raises(OptionError, match=r"dark \(/data/dark\): shape \(y: 9, x: 14\)"):
        run.radiography.calibrate(dark.isel(y=slice(1, None)), flat)
