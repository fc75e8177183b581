"""Gain-map files: float32 TIFF (gain or correction), GSAS-II integer map, NeXus; round trips."""

from __future__ import annotations

import datetime as dt
import os

import h5py
import numpy as np
import pytest
import tifffile
import xarray as xr

import beamcat
from beamcat.analyses.detector import as_gain
from beamcat.catalog.gain_files import (
    GSAS2_MAX,
    NEXUS_VARIABLES,
    gain_file_name,
    write_gain_nexus,
    write_gain_tiff,
    write_gsas2_map,
)
from beamcat.errors import OptionError

DAY = dt.date(2024, 3, 4)


def _gain_map() -> xr.Dataset:
    """A small gain map as gain_map returns it: NaN, 0 and a huge correction among the pixels."""
    rng = np.random.default_rng(3)
    gain = rng.normal(1.0, 0.03, (6, 9))
    gain[0, 0] = np.nan  # no position saw it
    gain[1, 1] = 0.4  # correction 2.5: above GSAS-II's 2000
    gain[2, 2] = 1.8  # damaged
    valid = np.isfinite(gain)
    valid[3, 3] = False  # invalid though finite
    damaged = np.zeros(gain.shape, bool)
    damaged[2, 2] = True
    return xr.Dataset(
        {
            "gain": (("y", "x"), gain),
            "valid": (("y", "x"), valid),
            "damaged": (("y", "x"), damaged),
        },
        coords={"source": ("position", ["pos1", "pos2", "pos3"])},
        attrs={
            "flat_range": [8.0, 9.25],
            "bins": np.int64(300),
            "history": "gain_map(3 pos)",
            "source": "pos1",
        },
    )


def _expected_gain(gm: xr.Dataset) -> np.ndarray:
    return np.where(gm.valid, gm.gain, np.nan)


def test_file_name_is_the_seeds():
    assert gain_file_name("Calculated gain map", DAY) == "Calculated gain map_2024-03-04.tif"


@pytest.mark.parametrize("form", ["gain", "correction"])
def test_tiff_round_trip_says_its_form(tmp_path, form):
    gm = _gain_map()
    path = write_gain_tiff(gm, tmp_path / "maps", name="pilatus", form=form, date=DAY)
    assert path == tmp_path / "maps" / "pilatus_2024-03-04.tif"
    ds = beamcat.open_dataset(path)
    assert ds.attrs["form"] == form  # the ImageDescription says which map it is
    values = ds.counts.values[0]
    assert values.dtype == np.float32
    want = _expected_gain(gm) if form == "gain" else 1.0 / _expected_gain(gm)
    # float32 storage: relative rounding 6e-8; invalid pixels (NaN, valid False) are NaN
    np.testing.assert_allclose(values, want, rtol=1e-7, equal_nan=True)
    assert ds.attrs["history"] == "gain_map(3 pos)"  # provenance in the description
    assert ds.attrs["source"] == str(path)  # ... which does not override the reader's


def test_tiff_of_a_plain_map_and_bad_form(tmp_path):
    path = write_gain_tiff(np.full((3, 4), 2.0), tmp_path, form="correction", date=DAY)
    np.testing.assert_array_equal(beamcat.open_dataset(path).counts.values[0], 0.5)
    with pytest.raises(OptionError, match="form='divide'"):
        write_gain_tiff(np.ones((3, 4)), tmp_path, form="divide")
    with pytest.raises(OptionError, match=r"\(y, x\) map"):
        write_gain_tiff(np.ones((2, 3, 4)), tmp_path)


def test_gsas2_map_is_the_correction_in_thousandths(tmp_path):
    gm = _gain_map()
    path = write_gsas2_map(gm, tmp_path, name="pilatus_gsas", date=DAY)
    assert path.name == "pilatus_gsas_2024-03-04.tif"
    values = beamcat.open_dataset(path).counts.values[0]
    assert values.dtype == np.int32
    # GSAS-II multiplies images by map / 1000, so the map is floor(1000 / gain)
    gain = _expected_gain(gm)
    with np.errstate(divide="ignore", invalid="ignore"):
        want = np.floor(1000.0 / gain)
    want[~np.isfinite(want) | (want > GSAS2_MAX)] = 0
    np.testing.assert_array_equal(values, want.astype(np.int32))
    assert values[1, 1] == 0 and values[0, 0] == 0 and values[3, 3] == 0
    assert values[2, 2] == np.floor(1000 / 1.8)  # damaged pixels keep their own correction


def test_nexus_round_trip_with_masks_and_provenance(tmp_path):
    gm = _gain_map()
    path = write_gain_nexus(gm, tmp_path / "out" / "gain.nxs", metadata={"detector": "Pilatus"})
    ds = beamcat.open_dataset(path, variables=NEXUS_VARIABLES)
    gain = _expected_gain(gm)
    np.testing.assert_allclose(ds.counts.values, gain, rtol=1e-7, equal_nan=True)
    np.testing.assert_allclose(ds.correction.values, 1 / gain, rtol=1e-7, equal_nan=True)
    np.testing.assert_array_equal(ds.valid.values.astype(bool), gm.valid.values)
    np.testing.assert_array_equal(ds.damaged.values.astype(bool), gm.damaged.values)
    # NeXus pixel_mask: 0 good, bit 1 invalid, bit 2 damaged
    want_mask = (~gm.valid.values).astype(int) | (gm.damaged.values.astype(int) * 2)
    np.testing.assert_array_equal(ds.pixel_mask.values, want_mask)
    with h5py.File(path) as f:
        process = f["entry/process"]
        assert process["sources"][()].decode().splitlines() == ["pos1", "pos2", "pos3"]
        assert process["history"][()].decode() == "gain_map(3 pos)"
        assert process["detector"][()].decode() == "Pilatus"
        assert b'"bins": 300' in process["parameters"][()]
    # the file opened again is a gain map flatfield understands (invalid pixels NaN)
    np.testing.assert_allclose(as_gain(ds, gain.shape).values, gain, rtol=1e-7, equal_nan=True)


def test_writes_are_atomic(tmp_path, monkeypatch):
    path = write_gain_tiff(np.ones((3, 4)), tmp_path, date=DAY)
    before = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(tifffile, "imwrite", broken)
    with pytest.raises(OSError, match="disk full"):
        write_gain_tiff(np.full((3, 4), 2.0), tmp_path, date=DAY)
    assert path.read_bytes() == before  # the old file stands, no temporary left beside it
    assert sorted(os.listdir(tmp_path)) == [path.name]
