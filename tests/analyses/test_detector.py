"""CMOS background subtraction and threshold against the original's NumPy formulas."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr

from beamcat.analyses.detector import subtract_background, threshold
from beamcat.errors import OptionError


@pytest.fixture
def raw():
    rng = np.random.default_rng(3)
    values = rng.normal(100, 5, (4, 16, 20)).round().astype(np.uint16)
    return xr.DataArray(values, dims=("frame", "y", "x"), attrs={"units": "counts"})


def test_subtract_background_is_the_original_clip(raw):
    # the original: img.clip(min=bg) - bg; integers in float32 are exact
    got = subtract_background(raw, 100)
    np.testing.assert_array_equal(got.values, raw.values.clip(min=100) - 100)
    assert got.dtype == np.float32 and got.attrs["units"] == "counts"
    assert "subtract_background(100.0, clip=True)" in got.attrs["history"]


def test_subtract_background_unclipped_and_dark_frame(raw):
    dark = np.linspace(95, 105, 16 * 20).reshape(16, 20)
    got = subtract_background(raw, dark, clip=False)
    np.testing.assert_allclose(got.values, raw.values - dark)  # float64: exact enough at 1e-7
    assert got.dims == raw.dims and got.values.min() < 0


def test_subtract_background_bad_input(raw):
    with pytest.raises(OptionError, match="dark frame of shape"):
        subtract_background(raw, np.zeros((3, 3)))
    with pytest.raises(OptionError, match="'y', 'x'"):
        subtract_background(raw.rename(y="row"), 100)
    with pytest.raises(OptionError, match="finite"):
        subtract_background(raw, np.nan)


def test_threshold_is_the_original_zeroing():
    # the original: dark_corr[dark_corr < thr] = 0 (keeps values equal to thr, and NaN)
    im = xr.DataArray(np.array([[0.0, 11.9, 12.0, 40.0, np.nan]], np.float32), dims=("y", "x"))
    expected = im.values.copy()
    expected[expected < 12] = 0
    np.testing.assert_array_equal(threshold(im, 12).values, expected)
    assert threshold(im, 12).dtype == np.float32


def test_lazy_and_chunking(raw, raise_if_dask_computes):
    eager = threshold(subtract_background(raw, 100), 12)
    for chunks in ((1, 16, 20), (3, 5, 7)):
        lazy_in = raw.copy(data=da.from_array(raw.values, chunks=chunks))
        with raise_if_dask_computes():
            lazy = threshold(subtract_background(lazy_in, 100), 12)
        assert isinstance(lazy.data, da.Array)
        xr.testing.assert_identical(lazy.compute(), eager)


def test_real_pilatus(shared_data):
    # photon-counting Pilatus: gaps are -1/-2; no dark level -> background 0 clips the markers
    import beamcat

    counts = beamcat.open_dataset(shared_data / "drp_femtomax").counts.isel(frame=slice(0, 3))
    got = threshold(subtract_background(counts, 0), 1).values
    raw = counts.values
    expected = np.where(raw.clip(min=0) < 1, 0, raw.clip(min=0))
    np.testing.assert_array_equal(got, expected)
    assert 0 < (got > 0).mean() < 0.01  # PROVENANCE: 0.35 % of pixels > 0
