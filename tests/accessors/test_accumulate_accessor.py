"""``ds.accumulate`` (and ``ds.roi.step_means``): pick the signal, delegate to the analyses."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr

import beamcat.accessors  # noqa: F401  (registers the accessors)
from beamcat.analyses.accumulate import accumulate, running_sum
from beamcat.analyses.roi import roi_means
from beamcat.analyses.steps import step_means
from beamcat.errors import OptionError


@pytest.fixture
def ds():
    rng = np.random.default_rng(4)
    counts = rng.integers(0, 1000, (6, 5, 7), dtype=np.uint16)
    return xr.Dataset(
        {
            "counts": (("frame", "y", "x"), da.from_array(counts, chunks=(2, 5, 7))),
            "gaps": (("frame", "y", "x"), np.where(counts > 500, -1.0, 2.0)),
        },
        coords={
            "step": ("frame", [0, 0, 0, 1, 1, 1]),
            "theta": ("frame", [1.0, 1.0, 1.0, 2.0, 2.0, 2.0]),
        },
        attrs={"signal": "counts", "source": "/data/balor", "pixel_size": 12e-6},
    )


def test_total_equals_the_function_and_the_numpy_sum(ds, raise_if_dask_computes):
    with raise_if_dask_computes():
        out = ds.accumulate.total()
    assert isinstance(out["sum"].data, da.Array)
    xr.testing.assert_identical(out, accumulate(ds.counts.assign_attrs(ds.attrs)))
    np.testing.assert_array_equal(out["sum"].values, ds.counts.values.astype(np.int64).sum(0))
    assert int(out["count"]) == 6 and out.attrs["pixel_size"] == 12e-6  # carried for q overlays
    assert out.attrs["source"] == "/data/balor"


def test_running_and_options(ds):
    out = ds.accumulate.running(var="gaps", mask_negative=True)
    xr.testing.assert_identical(
        out, running_sum(ds.gaps.assign_attrs(ds.attrs), mask_negative=True)
    )
    np.testing.assert_array_equal(out["sum"].values, np.cumsum(ds.gaps.clip(min=0).values, 0))
    da_total = ds.gaps.accumulate.total()  # on a DataArray too
    np.testing.assert_array_equal(da_total["sum"].values, ds.gaps.values.sum(0))


def test_unknown_variable_is_named(ds):
    with pytest.raises(OptionError, match="no variable 'nope'"):
        ds.accumulate.total(var="nope")


def test_roi_step_means_is_roi_means_then_step_means(ds, raise_if_dask_computes):
    rois = {"a": (1, 1, 3, 2)}
    with raise_if_dask_computes():
        out = ds.roi.step_means(rois, motor="theta")
    frames = ds.counts.assign_attrs(ds.attrs)
    xr.testing.assert_identical(out, step_means(roi_means(frames, rois), motor="theta"))
    per_frame = ds.counts.values[:, 1:3, 1:4].mean(axis=(1, 2))
    np.testing.assert_allclose(out["mean"].values[0], [per_frame[:3].mean(), per_frame[3:].mean()])
    assert out["theta"].values.tolist() == [1.0, 2.0]


def test_roi_step_means_rejects_a_roi_outside_the_frame(ds):
    with pytest.raises(
        OptionError, match=r"reaches outside the image of shape \(y, x\) = \(5, 7\)"
    ):
        ds.roi.step_means({"far": (5, 3, 4, 4)})
