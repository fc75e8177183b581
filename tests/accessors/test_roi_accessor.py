"""``ds.roi`` / ``da.roi``: the accessor picks the signal and delegates to analyses.roi."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr

import beamcat.accessors.roi  # noqa: F401  (registers the accessor)
from beamcat.analyses.roi import grid_means, roi_means
from beamcat.errors import OptionError

ROIS = {"a": (1, 2, 4, 3), "b": (0, 0, 6, 5)}


@pytest.fixture
def ds():
    rng = np.random.default_rng(0)
    counts = da.from_array(rng.integers(0, 1000, (4, 5, 6), dtype=np.uint16), chunks=(2, 5, 6))
    return xr.Dataset(
        {
            "counts": (("frame", "y", "x"), counts, {"units": "counts"}),
            "other": (("frame", "y", "x"), counts * 2),
        },
        coords={"time": ("frame", np.arange(4).astype("datetime64[s]").astype("datetime64[ns]"))},
        attrs={"signal": "counts", "source": "/data/run_0042", "format": "tiff"},
    )


def test_means_on_dataset_equals_the_function_and_keeps_provenance(ds, raise_if_dask_computes):
    with raise_if_dask_computes():
        out = ds.roi.means(ROIS)
    # the accessor adds nothing numerical: identical to the analyses function
    np.testing.assert_array_equal(out["mean"].values, roi_means(ds.counts, ROIS)["mean"].values)
    assert out.attrs["source"] == "/data/run_0042" and out.attrs["format"] == "tiff"
    assert out["mean"].attrs["units"] == "counts" and "time" in out.coords
    # ground truth: the plain NumPy mean of the slice
    want = ds.counts.values[:, 2:5, 1:5].mean(axis=(1, 2))
    np.testing.assert_allclose(out["mean"].sel(roi="a").values, want, rtol=1e-12)


def test_var_picks_another_variable(ds):
    out = ds.roi.means(ROIS, var="other")
    np.testing.assert_allclose(out["mean"].values, 2 * ds.roi.means(ROIS)["mean"].values)


def test_grid_on_dataarray(ds, raise_if_dask_computes):
    with raise_if_dask_computes():
        out = ds.counts.roi.grid(2, 3, region=(0, 1, 6, 4), edges="original")
    ref = grid_means(ds.counts, 2, 3, region=(0, 1, 6, 4), edges="original")
    xr.testing.assert_identical(out.compute(), ref.compute())
    want = ds.counts.values[:, 3:5, 4:6].mean(axis=(1, 2))
    np.testing.assert_allclose(out["mean"].values[1, 2], want, rtol=1e-12)


def test_missing_signal_and_var_on_dataarray(ds):
    ds.attrs.pop("signal")
    with pytest.raises(
        OptionError, match=r"no attrs\['signal'\]; pass var= one of \['counts', 'other'\]"
    ):
        ds.roi.means(ROIS)
    with pytest.raises(OptionError, match="a DataArray has no variables"):
        ds.counts.roi.means(ROIS, var="counts")
