"""The ``zarr`` format: stores of derived results open lazily, through open_dataset and Intake."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr

import beamcat
from beamcat.catalog.build import add_source, describe_entries
from beamcat.catalog.catalogs import open_catalog
from beamcat.catalog.formats import sniff_format
from beamcat.catalog.intake_readers import DATATYPES, READERS
from beamcat.catalog.zarr_store import open_zarr_store
from beamcat.errors import FormatError, OptionError, SourceNotFoundError


def _dataset() -> xr.Dataset:
    rng = np.random.default_rng(11)
    return xr.Dataset(
        {
            "mean": (("roi", "time"), rng.uniform(0.5, 1, (2, 5))),
            "count": (("roi", "time"), np.full((2, 5), 1560)),
        },
        coords={
            "roi": np.array(["bed_top", "wall"], dtype=np.dtypes.StringDType()),
            "time": np.arange(5) * np.timedelta64(62, "s"),
        },
        attrs={"signal": "mean", "source": "/data/run_0042", "format": "tiff"},
    )


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_opens_stores_written_by_xarray_lazily(tmp_path, zarr_format, raise_if_dask_computes):
    ds = _dataset().chunk({"time": 2})
    store = tmp_path / f"means_v{zarr_format}.zarr"
    ds.to_zarr(store, zarr_format=zarr_format, consolidated=False)
    with raise_if_dask_computes():
        back = beamcat.open_dataset(store)  # sniffed from the folder's suffix
    assert isinstance(back["mean"].data, da.Array)
    assert back["mean"].chunks == ((2,), (2, 2, 1))  # the stored chunks
    xr.testing.assert_equal(back.compute(), ds.compute())
    assert back.attrs == {
        "signal": "mean",
        "derived_from": "/data/run_0042",
        "source": str(store),
        "format": "zarr",
    }


def test_signal_of_a_one_variable_store_and_groups(tmp_path):
    store = tmp_path / "one.zarr"
    xr.Dataset({"t": ("time", np.arange(3.0))}).to_zarr(store, zarr_format=3, consolidated=False)
    _dataset().to_zarr(store, group="runs/run1", zarr_format=3, consolidated=False, mode="a")
    assert open_zarr_store(store).attrs["signal"] == "t"
    run1 = open_zarr_store(store, group="runs/run1")
    np.testing.assert_array_equal(run1["count"], 1560)
    with pytest.raises(FormatError, match="no group 'runs/run9'"):
        open_zarr_store(store, group="runs/run9")


def test_bad_sources(tmp_path):
    with pytest.raises(SourceNotFoundError, match="no such Zarr store"):
        open_zarr_store(tmp_path / "missing.zarr")
    (tmp_path / "plain.zarr").mkdir()
    (tmp_path / "plain.zarr" / "notes.txt").write_text("not a store")
    with pytest.raises(FormatError, match="not a Zarr store"):
        beamcat.open_dataset(tmp_path / "plain.zarr")
    with pytest.raises(OptionError, match="one store folder"):
        open_zarr_store([tmp_path / "a.zarr", tmp_path / "b.zarr"])


def test_catalog_entry_and_intake_datatype(tmp_path):
    store = tmp_path / "data" / "means.zarr"
    _dataset().to_zarr(store, zarr_format=3, consolidated=False)
    assert sniff_format(store) == sniff_format(f"{store}/") == "zarr"
    assert DATATYPES["zarr"].__name__ == "ZarrStore" and "zarr" in READERS
    catalog = tmp_path / "catalog.yaml"
    add_source(catalog, "means", store, metadata={"run": "42"})  # format sniffed
    cat = open_catalog(catalog)
    (row,) = describe_entries(cat)
    assert row["format"] == "zarr" and row["source"] == "{CATALOG_DIR}/data/means.zarr"
    back = cat["means"].read()
    np.testing.assert_array_equal(back["mean"], _dataset()["mean"])
    assert back.attrs["source"] == str(store) and back.attrs["format"] == "zarr"
