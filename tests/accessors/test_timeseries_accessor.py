"""The ``.timeseries`` accessor calls the analyses functions on the chosen variable."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import beamcat.accessors.timeseries  # noqa: F401  (registers the accessor)
from beamcat.analyses import timeseries
from beamcat.errors import OptionError

TIMES = pd.date_range("2024-12-13T14:01", periods=40, freq="62s").to_numpy("datetime64[ns]")


def _means(chunks=None) -> xr.Dataset:
    rng = np.random.default_rng(5)
    mean = 0.9 - 0.1 * np.linspace(0, 1, 40) + rng.normal(0, 0.005, (3, 40))
    data = da.from_array(mean, chunks=chunks) if chunks else mean
    return xr.Dataset(
        {"mean": (("roi", "time"), data, {"units": "1"}), "std": (("roi", "time"), data / 10)},
        coords={"roi": ["a", "b", "c"], "time": TIMES},
        attrs={"signal": "mean", "source": "/data/run_0042"},
    )


BL = {"thickness_cm": 1.3, "cross_section_barn": 2 * 82.574}


def _signal(ds: xr.Dataset) -> xr.DataArray:
    """The result variable of a Dataset method (``attrs["signal"]``), with the Dataset's attrs."""
    return ds[ds.attrs["signal"]].assign_attrs(ds.attrs)


@pytest.mark.parametrize(
    ("method", "kwargs", "function"),
    [
        ("savgol", {"window": 11, "order": 2}, timeseries.savgol),
        ("normalise", {"reference": slice(0, 3)}, timeseries.normalise),
        ("reduced_transmission", {}, timeseries.reduced_transmission),
        ("beer_lambert", BL, timeseries.beer_lambert),
    ],
)
def test_methods_equal_their_functions(method, kwargs, function, raise_if_dask_computes):
    ds = _means(chunks=(2, 9))
    with raise_if_dask_computes():
        from_ds = getattr(ds.timeseries, method)(**kwargs)
        from_da = getattr(ds["mean"].timeseries, method)(**kwargs)
        from_std = getattr(ds.timeseries, method)(var="std", **kwargs)
    # a Dataset method returns a Dataset holding the result, named by its signal
    assert isinstance(from_ds, xr.Dataset) and isinstance(from_da, xr.DataArray)
    from_ds, from_std = _signal(from_ds), _signal(from_std)
    assert isinstance(from_ds.data, da.Array)
    # the same function on the same variable: identical numbers
    xr.testing.assert_identical(from_da.drop_attrs(), function(ds["mean"], **kwargs).drop_attrs())
    xr.testing.assert_equal(from_ds, from_da)
    xr.testing.assert_equal(from_std, function(ds["std"], **kwargs))
    assert from_ds.attrs["source"] == "/data/run_0042"  # the Dataset's attrs carried along


def test_chained_like_the_original_heat_map():
    ds = _means()
    chained = _signal(ds.timeseries.normalise().timeseries.savgol(window=21, order=3))
    direct = timeseries.savgol(timeseries.normalise(ds["mean"]), window=21, order=3)
    np.testing.assert_array_equal(chained, direct)
    assert chained.attrs["history"].splitlines()[-2:] == [
        "normalise(dim='time', reference=0)",
        "savgol(window=21, order=3, dim='time')",
    ]


def test_variable_choice_errors():
    ds = _means()
    with pytest.raises(OptionError, match="no variable 'counts'"):
        ds.timeseries.savgol(var="counts")
    with pytest.raises(OptionError, match="a DataArray has no variables"):
        ds["mean"].timeseries.normalise(var="mean")
    no_signal = ds.drop_attrs()
    with pytest.raises(OptionError, match=r"pass var= one of \['mean', 'std'\]"):
        no_signal.timeseries.reduced_transmission()
    np.testing.assert_array_equal(  # one variable needs no signal
        _signal(no_signal[["std"]].timeseries.reduced_transmission()), (1 - ds["std"]) * 100
    )
