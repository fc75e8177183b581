"""``ds.detector`` and ``ds.photon``: the accessors give the analyses' numbers, lazily."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr

import beamcat  # noqa: F401 - registers the accessors
from beamcat.analyses.detector import subtract_background, threshold
from beamcat.analyses.photon import PhotonEvents, clean_image, detect, histogram
from beamcat.catalog.demo.photon import deposit

OPTIONS = {"threshold": 8.0, "energy_min": 1100.0, "energy_max": 1400.0}


@pytest.fixture(scope="module")
def ds():
    """12 frames of 64 x 64 with 6 photons each on a 100 ADU dark level, chunked by 5."""
    rng = np.random.default_rng(7)
    frames = rng.normal(100, 3, (12, 64, 64))
    for frame in frames:
        for k in range(6):
            iy, ix, box = deposit(5 + 10 * k + rng.uniform(0, 1), rng.uniform(3, 60), 1250.0)
            frame[iy - 1 : iy + 2, ix - 1 : ix + 2] += box
    counts = da.from_array(np.rint(frames).astype(np.uint16), chunks=(5, 64, 64))
    return xr.Dataset(
        {"counts": (("frame", "y", "x"), counts, {"units": "counts"})},
        coords={"frame": np.arange(12), "step": ("frame", np.repeat(np.arange(4), 3))},
        attrs={"signal": "counts", "source": "synthetic.cbors"},
    )


def _frames(ds):
    """The in-memory signal with the Dataset's attrs, as the accessors hand it on."""
    return ds.counts.compute().assign_attrs({**ds.attrs, **ds.counts.attrs})


def test_detector_chain_is_the_analyses(ds, raise_if_dask_computes):
    with raise_if_dask_computes():
        out = ds.detector.subtract_background(100).detector.threshold(12)
    assert isinstance(out, xr.Dataset) and isinstance(out.counts.data, da.Array)
    assert "step" in out.coords and out.counts.attrs["units"] == "counts"
    assert out.attrs["history"].splitlines() == [
        "subtract_background(100.0, clip=True)",
        "threshold(12)",
    ]
    expected = threshold(subtract_background(ds.counts, 100), 12)
    np.testing.assert_array_equal(out.counts.values, expected.values)
    np.testing.assert_array_equal(ds.counts.detector.threshold(12).values, threshold(ds.counts, 12))


def test_detect_is_lazy_and_the_analysis(ds, raise_if_dask_computes):
    with raise_if_dask_computes():
        lazy = ds.photon.detect(**OPTIONS)
    assert isinstance(lazy, PhotonEvents) and lazy.attrs["source"] == "synthetic.cbors"
    events = lazy.compute()
    xr.testing.assert_identical(events, detect(_frames(ds), **OPTIONS))
    assert events.sizes["event"] == 72  # 6 planted photons in each of 12 frames


def test_histogram_and_clean_image(ds, raise_if_dask_computes):
    events = detect(_frames(ds), **OPTIONS)
    with raise_if_dask_computes():
        hist = ds.photon.histogram(20, **OPTIONS)
        image = ds.photon.clean_image(energy_min=1100.0, roi=(0, 0, 32, 64), threshold=8.0)
    xr.testing.assert_identical(hist.compute(), histogram(events, 20))
    xr.testing.assert_identical(events.photon.histogram(20), histogram(events, 20))
    in_roi = detect(_frames(ds), roi=(0, 0, 32, 64), threshold=8.0)
    xr.testing.assert_identical(image.compute(), clean_image(in_roi))
    assert image.values[:, 32:].sum() == 0 and image.sum() == in_roi.sizes["event"]
