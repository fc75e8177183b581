"""Zarr stores registered back into a catalog (CSV layout: tests/workflows)."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from beamcat.catalog.build import add_source
from beamcat.catalog.catalogs import open_catalog
from beamcat.catalog.zarr_store import to_zarr
from beamcat.errors import OptionError

TIMES = pd.date_range("2024-12-13T14:01:00", periods=6, freq="62s").to_numpy("datetime64[ns]")
RNG = np.random.default_rng(7)


# ------------------------------------------------------------------------------ Zarr


def _lazy_dataset() -> xr.Dataset:
    frames = da.from_array(RNG.uniform(0, 1, (6, 8, 10)).astype(np.float32), chunks=(2, 8, 5))
    return xr.Dataset(
        {"transmission": (("time", "y", "x"), frames, {"units": "1"})},
        coords={
            "time": TIMES,
            "file": ("time", [f"f{i}.tif" for i in range(6)]),
            "y": np.arange(8),
        },
        attrs={
            "signal": "transmission",
            "pixel_size": np.float32(2e-4),
            "roi": (134, 75, 52, 30),
            "taken": np.datetime64("2024-12-13T14:00", "ns"),
            "shape": np.array([8, 10]),
            "frame_times": TIMES[:2],
            "source": "/data/run_0042",
            "format": "tiff",
        },
    )


def test_zarr_round_trip_is_lazy_streamed_and_registrable(tmp_path, raise_if_dask_computes):
    ds = _lazy_dataset()
    store = tmp_path / "derived" / "run1.zarr"
    store.parent.mkdir()
    with raise_if_dask_computes(max_computes=1):  # one streamed compute, chunk by chunk
        assert to_zarr(ds, store) == store
    assert (store / "zarr.json").is_file()
    assert '"zarr_format": 3' in (store / "zarr.json").read_text()
    catalog = tmp_path / "catalog.yaml"
    add_source(catalog, "run1_transmission", store, format="zarr")
    back = open_catalog(catalog)["run1_transmission"].read()
    assert back.transmission.chunks == ds.transmission.chunks  # the store keeps the chunks
    xr.testing.assert_equal(back.compute(), ds.compute())  # values, coords, dims exactly
    assert back.attrs["source"].endswith("derived/run1.zarr") and back.attrs["format"] == "zarr"
    assert back.attrs["derived_from"] == "/data/run_0042"
    assert back.attrs["pixel_size"] == pytest.approx(2e-4, rel=1e-7)  # float32 -> JSON
    assert back.attrs["roi"] == [134, 75, 52, 30]
    assert back.attrs["taken"] == "2024-12-13T14:00:00.000000000"
    assert back.attrs["frame_times"] == [str(t) for t in TIMES[:2]]
    assert back.attrs["shape"] == [8, 10] and back.transmission.attrs["units"] == "1"
    assert isinstance(ds.attrs["pixel_size"], np.float32)  # the input's attrs untouched


def test_zarr_irregular_chunks_dataarray_and_overwrite(tmp_path):
    ds = _lazy_dataset()
    uneven = ds.transmission.chunk({"time": (1, 3, 2)})
    store = to_zarr(uneven, tmp_path / "t.zarr")
    back = xr.open_zarr(store, consolidated=False)
    assert back.attrs["signal"] == "transmission"
    assert back.transmission.chunks[0] == (3, 3)  # made regular at the largest chunk
    np.testing.assert_array_equal(back.transmission, ds.transmission)
    with pytest.raises(OptionError, match="already exists"):
        to_zarr(ds, store)
    to_zarr(ds.isel(time=slice(0, 2)), store, overwrite=True)
    assert xr.open_zarr(store, consolidated=False).sizes["time"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.zarr"]  # no old/temp left


def test_zarr_failure_mid_write_leaves_nothing(tmp_path):
    def explode(block, block_info=None):
        if block_info[None]["chunk-location"][0] == 2:  # the third chunk along time
            raise RuntimeError("detector file unreadable")
        return block

    ds = _lazy_dataset()
    ds["transmission"] = ds.transmission.copy(
        data=ds.transmission.data.map_blocks(explode, dtype=np.float32)
    )
    with pytest.raises(RuntimeError, match="unreadable"):
        to_zarr(ds, tmp_path / "broken.zarr")
    assert list(tmp_path.iterdir()) == []  # neither the store nor its temporary folder
