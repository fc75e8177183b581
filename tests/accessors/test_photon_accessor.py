"""``ds.detector`` and ``ds.photon``: the accessors give the analyses' numbers, lazily."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr

import beamcat  # noqa: F401 - registers the accessors
from beamcat.analyses.detector import subtract_background, threshold
from beamcat.analyses.photon import clean_image, detect, histogram, is_event_tables
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
    # a Dataset method returns a Dataset: on dask-backed frames the lazy per-frame event
    # tables (an event dim of unknown length cannot be a Dataset's), labelled like the frames
    with raise_if_dask_computes():
        lazy = ds.photon.detect(**OPTIONS)
    assert is_event_tables(lazy) and lazy.attrs["source"] == "synthetic.cbors"
    assert isinstance(lazy.events.data, da.Array) and lazy.events.chunks == ((5, 5, 2),)
    assert "step" in lazy.coords
    events = lazy.compute().photon.events()
    xr.testing.assert_identical(events, detect(_frames(ds), **OPTIONS))
    assert events.sizes["event"] == 72  # 6 planted photons in each of 12 frames
    in_memory = _frames(ds).to_dataset(promote_attrs=True).photon.detect(**OPTIONS)
    xr.testing.assert_identical(in_memory, events)  # in-memory frames: the event list


def test_histogram_and_clean_image(ds, raise_if_dask_computes):
    events = detect(_frames(ds), **OPTIONS)
    with raise_if_dask_computes():
        hist = ds.photon.histogram(20, **OPTIONS)
        image = ds.photon.clean_image(energy_min=1100.0, roi=(0, 0, 32, 64), threshold=8.0)
    # Dataset methods return Datasets whose signal is the analysis' DataArray
    assert isinstance(hist, xr.Dataset) and hist.attrs["signal"] == "events"
    assert isinstance(hist.events.data, da.Array) and isinstance(image.photons.data, da.Array)
    xr.testing.assert_identical(hist.events.compute(), histogram(events, 20))
    xr.testing.assert_identical(events.photon.histogram(20).events, histogram(events, 20))
    in_roi = detect(_frames(ds), roi=(0, 0, 32, 64), threshold=8.0)
    xr.testing.assert_identical(image.photons.compute(), clean_image(in_roi))
    assert image.photons.values[:, 32:].sum() == 0
    assert image.photons.sum() == in_roi.sizes["event"]
    # a DataArray's are DataArrays
    on_array = ds.counts.photon.histogram(20, **OPTIONS)
    expected = histogram(detect(ds.counts.compute(), **OPTIONS), 20)  # no Dataset attrs
    xr.testing.assert_identical(on_array.compute(), expected)


@pytest.mark.parametrize("chunk", [1, 5, 12])
def test_chaining_on_lazy_frames(ds, chunk, raise_if_dask_computes):
    # ds.photon.detect(...).photon.histogram(...) / .clean_image() on dask-backed frames:
    # nothing computes, the results are dask-backed (one per frame chunk, summed), and any
    # chunking gives NumPy's numbers: np.histogram of the event list's energies and
    # np.add.at at (floor(y), floor(x)); both count integers, so they are equal exactly
    chunked = ds.chunk({"frame": chunk})
    with raise_if_dask_computes():
        events = chunked.photon.detect(**OPTIONS)
        hist = events.photon.histogram(30, range=(1000.0, 3000.0))
        image = events.photon.clean_image()
    assert isinstance(hist.events.data, da.Array) and isinstance(image.photons.data, da.Array)
    assert hist.events.data.npartitions == 1 and events.events.data.npartitions == -(-12 // chunk)
    ev = detect(_frames(ds), **OPTIONS)
    expected, edges = np.histogram(ev.energy.values, 30, range=(1000.0, 3000.0))
    np.testing.assert_array_equal(hist.events.values, expected)
    np.testing.assert_allclose(hist.energy_low.values, edges[:-1])
    twin = np.zeros((64, 64), np.int64)
    np.add.at(twin, (np.floor(ev.y.values).astype(int), np.floor(ev.x.values).astype(int)), 1)
    np.testing.assert_array_equal(image.photons.values, twin)
    assert image.photons.sum() == 72
